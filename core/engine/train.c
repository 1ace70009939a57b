/* train.c: epochs over a dataset, evaluation, events, cancellation. */
#include "train.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int tb_train_hooks_add(tb_train_hooks *h, tb_train_listener fn, void *user)
{
    if (h->n_listeners >= TB_MAX_LISTENERS) return -1;
    h->listener[h->n_listeners] = fn;
    h->user[h->n_listeners] = user;
    h->n_listeners++;
    return 0;
}

static void emit(const tb_train_hooks *h, const tb_train_event *ev)
{
    if (!h) return;
    for (int i = 0; i < h->n_listeners; i++) h->listener[i](h->user[i], ev);
}

/* ---- validation -------------------------------------------------------------- */

tb_status tb_train_validate(const tb_train_config *cfg, const tb_dataset *train, tb_err *err)
{
    char msg[256];
    if (cfg->epochs < 1 || cfg->epochs > 100000)
        return tb_fail(err, TB_EINVAL, "epochs = %d is outside [1, 100000]", cfg->epochs);
    if (cfg->batch_size < 1 || cfg->batch_size > train->count)
        return tb_fail(err, TB_EINVAL, "batch_size = %d is outside [1, %d] (the training set size)", cfg->batch_size,
                       train->count);
    if (cfg->eval_batch_size < 0)
        return tb_fail(err, TB_EINVAL, "eval_batch_size = %d must be >= 0", cfg->eval_batch_size);
    if (!(cfg->time_limit_s >= 0.0) || isinf(cfg->time_limit_s))
        return tb_fail(err, TB_EINVAL, "time_limit = %g seconds must be finite and >= 0", cfg->time_limit_s);
    if (tb_optim_validate(&cfg->optim, msg, sizeof msg) != 0) return tb_fail(err, TB_EINVAL, "%s", msg);
    return TB_OK;
}

/* ---- the loop ---------------------------------------------------------------- */

/* Host and device buffers for batches: two of each in training, so the next
 * batch is prepared on the CPU while the device still works on this one. */
typedef struct batch_buffers {
    float *x_host[2], *x_dev[2];
    int32_t *y[2];
    float *logits_host;
} batch_buffers;

static void free_batch(tb_backend *be, batch_buffers *b)
{
    for (int k = 0; k < 2; k++) {
        free(b->x_host[k]);
        free(b->y[k]);
        if (b->x_dev[k]) be->ops->free(be, b->x_dev[k]);
    }
    free(b->logits_host);
    memset(b, 0, sizeof *b);
}

static tb_status alloc_batch(tb_backend *be, batch_buffers *b, int batch, size_t sample, int classes, int buffers,
                             tb_err *err)
{
    memset(b, 0, sizeof *b);
    int ok = 1;
    for (int k = 0; k < buffers; k++) {
        b->x_host[k] = malloc(sizeof(float) * sample * batch);
        b->y[k] = malloc(sizeof(int32_t) * batch);
        b->x_dev[k] = be->ops->alloc(be, sizeof(float) * sample * batch);
        ok = ok && b->x_host[k] && b->y[k] && b->x_dev[k];
    }
    b->logits_host = malloc(sizeof(float) * (size_t)classes * batch);
    if (!ok || !b->logits_host) {
        free_batch(be, b);
        tb_status st = tb_backend_check(be, err); /* a GPU that failed earlier says why */
        return st ? st : tb_fail(err, TB_ENOMEM, "out of memory for a batch of %d samples", batch);
    }
    return TB_OK;
}

static tb_status check_dataset(const tb_net *net, const tb_dataset *ds, const char *what, tb_err *err)
{
    int c, h, w;
    tb_net_input_shape(net, &c, &h, &w);
    if (ds->channels != c || ds->height != h || ds->width != w)
        return tb_fail(err, TB_EINVAL, "%s samples are %dx%dx%d but the network takes %dx%dx%d", what, ds->channels,
                       ds->height, ds->width, c, h, w);
    if (ds->classes != tb_net_classes(net))
        return tb_fail(err, TB_EINVAL, "%s has %d classes but the network outputs %d", what, ds->classes,
                       tb_net_classes(net));
    if (ds->count < 1) return tb_fail(err, TB_EINVAL, "%s is empty", what);
    return TB_OK;
}

tb_status tb_evaluate(tb_net *net, const tb_dataset *ds, tb_loss_kind loss, int batch_size, tb_metrics *m,
                      tb_err *err)
{
    tb_status st = check_dataset(net, ds, "evaluation set", err);
    if (st) return st;
    tb_backend *be = tb_net_backend(net);
    const int classes = tb_net_classes(net);
    const size_t sample = (size_t)ds->channels * ds->height * ds->width;
    if (batch_size < 1 || batch_size > tb_net_max_batch(net)) batch_size = tb_net_max_batch(net);
    batch_buffers b;
    if ((st = alloc_batch(be, &b, batch_size, sample, classes, 1, err))) return st;
    int32_t *idx = malloc(sizeof(int32_t) * batch_size);
    if (!idx) {
        free_batch(be, &b);
        return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    tb_metrics_reset(m);
    for (int start = 0; start < ds->count && st == TB_OK; start += batch_size) {
        int n = ds->count - start < batch_size ? ds->count - start : batch_size;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        if ((st = ds->load(ds->ctx, idx, n, b.x_host[0], b.y[0], err))) break;
        be->ops->upload(be, b.x_dev[0], b.x_host[0], sizeof(float) * sample * n);
        tb_net_forward(net, b.x_dev[0], n, 0, 0);
        float l = be->ops->loss(be, NULL, tb_net_output(net), b.y[0], n, classes, loss);
        be->ops->to_host(be, b.logits_host, tb_net_output(net), sizeof(float) * classes * n);
        if ((st = tb_backend_check(be, err))) break;
        tb_metrics_add(m, b.logits_host, b.y[0], n, l);
    }
    tb_metrics_finish(m);
    free(idx);
    free_batch(be, &b);
    return st;
}

/* ---- prefetching ------------------------------------------------------------ */

/* The next training batch is loaded (train->load: copy, normalise, augment; a
 * pure function of the indices, seed and epoch) on a thread of its own while
 * the current step runs, so input preparation overlaps compute on every
 * backend instead of adding to each step. The same batch goes to the same slot
 * as when loading after the step, so results cannot change (TB_PREFETCH=0 or
 * cfg->no_prefetch loads after the step, as before). On the CPU the worker also
 * uploads: a memcpy into the input slot the running step does not read. A GPU
 * backend's upload orders itself against the compute stream (events recorded
 * there mark the compute queued so far), so it stays on the training thread,
 * after the step is queued, where it always was. The worker writes its own
 * tb_err, never the caller's, and is joined in the iteration that started it. */
typedef struct prefetch {
    pthread_t thread;
    int running;               /* a thread was started and not yet joined */
    const tb_dataset *ds;
    const int32_t *idx;
    int n;
    float *x_host, *x_dev;
    int32_t *y;
    size_t bytes;
    tb_backend *upload_be;     /* non-NULL: the worker uploads too (the CPU backend) */
    tb_status st;
    tb_err err;
} prefetch;

static void prefetch_load(prefetch *f)
{
    f->st = f->ds->load(f->ds->ctx, f->idx, f->n, f->x_host, f->y, &f->err);
    if (f->st == TB_OK && f->upload_be) f->upload_be->ops->upload(f->upload_be, f->x_dev, f->x_host, f->bytes);
}

static void *prefetch_main(void *p)
{
    /* one thread: the step's OpenMP team keeps the cores, and a second team
     * here would stall its barriers whenever the two share a core */
    omp_set_num_threads(1);
    prefetch_load(p);
    return NULL;
}

/* Starts the worker; without a thread (pthread_create failed) it loads here. */
static void prefetch_start(prefetch *f)
{
    f->st = TB_OK;
    f->err.msg[0] = '\0';
    f->running = pthread_create(&f->thread, NULL, prefetch_main, f) == 0;
    if (!f->running) prefetch_load(f);
}

static void prefetch_join(prefetch *f)
{
    if (f->running) pthread_join(f->thread, NULL);
    f->running = 0;
}

static int prefetch_enabled(const tb_train_config *cfg)
{
    const char *e = getenv("TB_PREFETCH");
    return !cfg->no_prefetch && !(e && !strcmp(e, "0"));
}

tb_status tb_train(tb_net *net, tb_optimizer *opt, const tb_train_config *cfg, const tb_dataset *train,
                   const tb_dataset *val, const tb_train_hooks *hooks, tb_train_result *result, tb_err *err)
{
    tb_train_result res = {.status = TB_OK, .final_train_loss = NAN, .final_val_loss = NAN,
                           .final_val_accuracy = NAN};
    tb_status st;
    if ((st = tb_train_validate(cfg, train, err)) || (st = check_dataset(net, train, "training set", err)) ||
        (val && (st = check_dataset(net, val, "validation set", err)))) {
        if (result) *result = res, result->status = st;
        return st;
    }
    /* torch's BatchNorm refuses a training batch with one value per channel */
    const int bn_plane = tb_net_min_bn_plane(net), last = train->count % cfg->batch_size;
    if (bn_plane == 1 && (cfg->batch_size == 1 || last == 1)) {
        st = tb_fail(err, TB_EINVAL,
                     "batch_size = %d: %s batch would hold one sample, and batch norm over [n, c] (BatchNorm1d) "
                     "or a 1x1 feature map needs more than one value per channel in training (as torch's); choose "
                     "another batch size", cfg->batch_size, cfg->batch_size == 1 ? "every" : "the last");
        if (result) *result = res, result->status = st;
        return st;
    }
    if (cfg->batch_size > tb_net_max_batch(net)) {
        st = tb_fail(err, TB_EINVAL, "batch_size = %d exceeds the %d the network was built for", cfg->batch_size,
                     tb_net_max_batch(net));
        if (result) *result = res, result->status = st;
        return st;
    }

    tb_backend *be = tb_net_backend(net);
    const int classes = tb_net_classes(net);
    const size_t sample = (size_t)train->channels * train->height * train->width;
    const int batch = cfg->batch_size;
    const int batches = (train->count + batch - 1) / batch;
    tb_optimizer own;
    int owns_opt = opt == NULL;
    batch_buffers b = {0};
    int32_t *perm = malloc(sizeof(int32_t) * train->count);
    tb_metrics val_metrics = {0};
    int have_metrics = 0;
    if (!perm) {
        st = tb_fail(err, TB_ENOMEM, "out of memory");
        goto out;
    }
    if (owns_opt) {
        if ((st = tb_optimizer_create(&own, net, &cfg->optim, err))) goto out;
        opt = &own;
    }
    if ((st = alloc_batch(be, &b, batch, sample, classes, 2, err))) goto out;
    if (val) {
        if (tb_metrics_init(&val_metrics, classes) != 0) {
            st = tb_fail(err, TB_ENOMEM, "out of memory");
            goto out;
        }
        have_metrics = 1;
    }
    tb_net_set_seed(net, cfg->seed);

    /* the loader thread's job; on the CPU it uploads too (see prefetch above).
     * A CPU run given one thread keeps to one: the loader would take a core
     * that belongs to another run (the executors give each run its share). */
    const int on_cpu = strcmp(be->device, "cpu") == 0;
    const int prefetching = prefetch_enabled(cfg) && (!on_cpu || be->threads > 1);
    prefetch pf = {.ds = train, .upload_be = on_cpu ? be : NULL};
    if (!prefetching) pf.upload_be = NULL;

    const double t0 = tb_now();
    float *dlogits = tb_net_output_grad_buffer(net);
    for (int epoch = 1; epoch <= cfg->epochs && st == TB_OK; epoch++) {
        /* the order depends on (seed, epoch) only, never on the batch size */
        tb_rng_permutation(perm, train->count, cfg->seed, TB_STREAM_SHUFFLE, (uint32_t)epoch);
        if (train->begin_epoch) train->begin_epoch(train->ctx, cfg->seed, epoch);
        const double epoch_start = tb_now();
        double loss_sum = 0.0;
        int64_t seen = 0;
        double wait = 0.0;       /* seconds this epoch waited for input */
        int cur = 0, loaded = 0; /* loaded: batch bi is already in slot cur */
        for (int bi = 0; bi < batches; bi++) {
            if (hooks && hooks->cancel && atomic_load(hooks->cancel)) {
                st = tb_fail(err, TB_ECANCELLED, "cancelled after %d batches of epoch %d", bi, epoch);
                break;
            }
            if (cfg->time_limit_s > 0 && tb_now() - t0 >= cfg->time_limit_s) {
                st = tb_fail(err, TB_ETIMEOUT, "time limit of %g s reached in epoch %d", cfg->time_limit_s, epoch);
                break;
            }
            const int start = bi * batch;
            const int n = train->count - start < batch ? train->count - start : batch;
            if (!loaded) { /* else it was loaded and sent during the previous step */
                const double w0 = tb_now();
                if ((st = train->load(train->ctx, perm + start, n, b.x_host[cur], b.y[cur], err))) break;
                be->ops->upload(be, b.x_dev[cur], b.x_host[cur], sizeof(float) * sample * n);
                wait += tb_now() - w0;
            }
            /* the next batch goes to the other slot, whose data the step before (done) last read */
            const int next = start + batch, nn = train->count - next < batch ? train->count - next : batch;
            if (prefetching && bi + 1 < batches) {
                pf.idx = perm + next;
                pf.n = nn;
                pf.x_host = b.x_host[cur ^ 1];
                pf.x_dev = b.x_dev[cur ^ 1];
                pf.y = b.y[cur ^ 1];
                pf.bytes = sizeof(float) * sample * nn;
                prefetch_start(&pf);
            }
            /* the step; a failure ends the epoch after the loader is joined below */
            tb_net_forward(net, b.x_dev[cur], n, 1, (uint64_t)opt->scalars.step);
            float loss = be->ops->loss(be, dlogits, tb_net_output(net), b.y[cur], n, classes, cfg->loss);
            st = tb_backend_check(be, err);
            if (st == TB_OK && !isfinite(loss))
                st = tb_fail(err, TB_EDIVERGED, "loss is %s at epoch %d, batch %d", isnan(loss) ? "NaN" : "Inf",
                             epoch, bi + 1);
            if (st == TB_OK) {
                tb_net_zero_grads(net);
                tb_net_backward(net, dlogits, n);
                tb_optimizer_step(opt, net);
            }
            /* the next batch: the loader's, or (not prefetching) loaded and sent here
             * while the device (a GPU) finishes this step */
            tb_status load_st = TB_OK;
            loaded = 0;
            if (bi + 1 < batches) {
                const double w0 = tb_now();
                if (prefetching) {
                    prefetch_join(&pf);
                    load_st = pf.st;
                    if (load_st && st == TB_OK && err) *err = pf.err;
                } else if (st == TB_OK) {
                    load_st = train->load(train->ctx, perm + next, nn, b.x_host[cur ^ 1], b.y[cur ^ 1], err);
                }
                loaded = st == TB_OK && load_st == TB_OK;
                if (loaded && !pf.upload_be)
                    be->ops->upload(be, b.x_dev[cur ^ 1], b.x_host[cur ^ 1], sizeof(float) * sample * nn);
                wait += tb_now() - w0;
            }
            if (st != TB_OK) break;
            const int finite = be->ops->all_finite(be, tb_net_params(net), tb_net_params_size(net));
            if ((st = tb_backend_check(be, err))) break;
            if (!finite) {
                st = tb_fail(err, TB_EDIVERGED, "a parameter became NaN/Inf at epoch %d, batch %d", epoch, bi + 1);
                break;
            }
            cur ^= 1;
            loss_sum += (double)loss * n;
            seen += n;
            res.steps++;
            int every = cfg->batch_events > 1 ? cfg->batch_events : 1;
            if ((bi + 1) % every == 0 || bi + 1 == batches) {
                double now = tb_now();
                tb_train_event ev = {.kind = TB_EVENT_BATCH, .epoch = epoch, .batch = bi + 1,
                                     .batches_per_epoch = batches, .step = opt->scalars.step, .batch_loss = loss,
                                     .epoch_loss = loss_sum / seen, .val_loss = NAN, .val_accuracy = NAN,
                                     .elapsed_s = now - t0, .epoch_s = now - epoch_start,
                                     .images_per_s = seen / (now - epoch_start + 1e-12), .input_wait_s = wait};
                emit(hooks, &ev);
            }
            if ((st = load_st)) break;
        }
        res.input_wait_s += wait;
        if (st != TB_OK) break;
        const double train_s = tb_now() - epoch_start;
        res.final_train_loss = loss_sum / (double)seen;
        tb_train_event ev = {.kind = TB_EVENT_EPOCH, .epoch = epoch, .batch = batches, .batches_per_epoch = batches,
                             .step = opt->scalars.step, .batch_loss = NAN, .epoch_loss = res.final_train_loss,
                             .val_loss = NAN, .val_accuracy = NAN, .images_per_s = seen / (train_s + 1e-12),
                             .input_wait_s = wait};
        if (val) {
            if ((st = tb_evaluate(net, val, cfg->loss, cfg->eval_batch_size ? cfg->eval_batch_size : batch,
                                  &val_metrics, err)))
                break;
            ev.val_loss = res.final_val_loss = val_metrics.loss;
            ev.val_accuracy = res.final_val_accuracy = val_metrics.accuracy;
        }
        ev.epoch_s = tb_now() - epoch_start;
        ev.elapsed_s = tb_now() - t0;
        res.epochs_done = epoch;
        emit(hooks, &ev);
    }
    res.seconds = tb_now() - t0;

out:
    res.status = st;
    {
        tb_train_event end = {.kind = TB_EVENT_END, .epoch = res.epochs_done, .step = res.steps,
                              .epoch_loss = res.final_train_loss, .val_loss = res.final_val_loss,
                              .val_accuracy = res.final_val_accuracy, .elapsed_s = res.seconds, .status = st,
                              .input_wait_s = res.input_wait_s};
        emit(hooks, &end);
    }
    if (have_metrics) tb_metrics_free(&val_metrics);
    free_batch(be, &b);
    free(perm);
    if (owns_opt && opt == &own) tb_optimizer_destroy(&own);
    if (result) *result = res;
    return st;
}
