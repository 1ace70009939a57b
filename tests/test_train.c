/* test_train.c: the training loop on real Fashion-MNIST: bitwise
 * determinism, seeds, sample order independent of the batch size,
 * divergence, cancellation, the time limit, events, prefetching (the same
 * results as loading after each step), and overfitting one batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb_fmnist.h"
#include "tb_test.h"
#include "store/checkpoint.h"
#include "engine/train.h"
#include "engine/zoo.h"

static tb_dataset fmnist_train, fmnist_first512;
static int have_data;

static void load_data(void)
{
    tb_err err;
    if (access(TB_FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        return; /* main() has already failed the suite with the reason */
    }
    ck_assert_msg(tb_fmnist_load(&fmnist_train, TB_FMNIST_DIR, "train", &err) == TB_OK, "%s", err.msg);
    int32_t idx[512];
    for (int i = 0; i < 512; i++) idx[i] = i;
    ck_assert(tb_dataset_subset(&fmnist_first512, &fmnist_train, idx, 512, &err) == TB_OK);
    have_data = 1;
}

static void free_data(void)
{
    ck_assert(have_data);
    tb_dataset_free(&fmnist_first512);
    tb_dataset_free(&fmnist_train);
    have_data = 0;
}

/* small CNN with batch norm and dropout, so every random stream is exercised */
static tb_net *test_net(void)
{
    tb_net *net = tb_net_new(1, 28, 28);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 8, 3, 1, 1, 1, 1, init);
    x = tb_net_batchnorm(net, x, "features.1", 1e-5f, 0.1f);
    x = tb_net_relu(net, x);
    x = tb_net_maxpool(net, x, 2, 2, 0, 0);
    x = tb_net_flatten(net, x);
    x = tb_net_dropout(net, x, 0.3f);
    tb_net_linear(net, x, "classifier", 10, 1, init);
    return net;
}

static tb_train_config base_config(int batch)
{
    tb_train_config cfg = {.epochs = 2, .batch_size = batch, .loss = TB_LOSS_CROSS_ENTROPY, .seed = 5};
    tb_optim_defaults(&cfg.optim, TB_OPT_SGD);
    cfg.optim.lr = 0.05;
    cfg.optim.momentum = 0.9;
    return cfg;
}

/* Trains a fresh net on ds (hooks may be NULL) and returns its parameters and
 * buffers (malloc'd). */
static float *train_fresh(const tb_train_config *cfg, const tb_dataset *ds, uint64_t init_seed, int threads,
                          const tb_train_hooks *hooks, tb_train_result *res, tb_err *err, size_t *count)
{
    tb_backend *be = tb_backend_cpu_create(threads);
    tb_net *net = test_net();
    ck_assert(tb_net_build(net, be, cfg->batch_size, err) == TB_OK);
    tb_net_init_params(net, init_seed);
    res->status = tb_train(net, NULL, cfg, ds, NULL, hooks, res, err); /* also where it fails before starting */
    size_t np = tb_net_params_size(net), nb = tb_net_buffers_size(net);
    float *out = malloc(sizeof(float) * (np + nb));
    memcpy(out, tb_net_params(net), sizeof(float) * np);
    memcpy(out + np, tb_net_buffers(net), sizeof(float) * nb);
    *count = np + nb;
    tb_net_free(net);
    tb_backend_destroy(be);
    return out;
}

static float *train_once(const tb_train_config *cfg, uint64_t init_seed, int threads, size_t *count,
                         tb_status *status)
{
    tb_train_result res;
    tb_err err;
    float *out = train_fresh(cfg, &fmnist_first512, init_seed, threads, NULL, &res, &err, count);
    *status = res.status;
    return out;
}

START_TEST(test_same_seed_bitwise_identical)
{
    ck_assert(have_data);
    tb_train_config cfg = base_config(32);
    for (int threads = 1; threads <= 2; threads++) {
        size_t na, nb;
        tb_status sa, sb;
        float *a = train_once(&cfg, 5, threads, &na, &sa), *b = train_once(&cfg, 5, threads, &nb, &sb);
        ck_assert_int_eq(sa, TB_OK);
        ck_assert_int_eq(sb, TB_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert_msg(memcmp(a, b, sizeof(float) * na) == 0, "two runs with the same seed differ (%d threads)",
                      threads);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(test_different_seeds_differ)
{
    ck_assert(have_data);
    tb_train_config cfg = base_config(32);
    size_t na, nb;
    tb_status sa, sb;
    float *a = train_once(&cfg, 5, 1, &na, &sa);
    cfg.seed = 6; /* order and dropout */
    float *b = train_once(&cfg, 5, 1, &nb, &sb);
    ck_assert_msg(memcmp(a, b, sizeof(float) * na) != 0, "a different run seed gave identical weights");
    free(b);
    cfg.seed = 5;
    b = train_once(&cfg, 6, 1, &nb, &sb); /* initial weights */
    ck_assert_msg(memcmp(a, b, sizeof(float) * na) != 0, "a different init seed gave identical weights");
    free(a);
    free(b);
}
END_TEST

/* A dataset wrapper that records the indices the loop asks for. */
typedef struct recorder {
    const tb_dataset *base;
    int32_t *seen;
    int n_seen, cap;
} recorder;

static tb_status record_load(void *ctx, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err)
{
    recorder *r = ctx;
    for (int i = 0; i < n && r->n_seen < r->cap; i++) r->seen[r->n_seen++] = idx[i];
    return r->base->load(r->base->ctx, idx, n, x, y, err);
}

static void visit_order(int batch, int32_t *seen, int cap, float *init_params, size_t *n_params)
{
    recorder rec = {.base = &fmnist_first512, .seen = seen, .cap = cap};
    tb_dataset ds = fmnist_first512;
    ds.ctx = &rec;
    ds.load = record_load;
    ds.destroy = NULL;
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = test_net();
    tb_err err;
    ck_assert(tb_net_build(net, be, batch, &err) == TB_OK);
    tb_net_init_params(net, 77);
    *n_params = tb_net_params_size(net);
    memcpy(init_params, tb_net_params(net), sizeof(float) * *n_params);
    tb_train_config cfg = base_config(batch);
    cfg.seed = 77;
    tb_optim_defaults(&cfg.optim, batch == 50 ? TB_OPT_ADAM : TB_OPT_SGD); /* other hyperparameters too */
    cfg.loss = batch == 50 ? TB_LOSS_MSE : TB_LOSS_CROSS_ENTROPY;
    ck_assert(tb_train(net, NULL, &cfg, &ds, NULL, NULL, NULL, &err) == TB_OK);
    ck_assert_int_eq(rec.n_seen, cap);
    tb_net_free(net);
    tb_backend_destroy(be);
}

START_TEST(test_order_and_init_independent_of_hyperparameters)
{
    ck_assert(have_data);
    enum { N = 2 * 512 };
    static int32_t a[N], b[N];
    static float pa[100000], pb[100000];
    size_t na, nb;
    visit_order(32, a, N, pa, &na);
    visit_order(50, b, N, pb, &nb); /* batch 50: the last batch is short; adam and mse */
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(pa, pb, sizeof(float) * na) == 0, "initial weights depend on the hyperparameters");
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "sample order depends on the batch size");
    /* each epoch is a permutation, and the two epochs differ */
    ck_assert(memcmp(a, a + 512, 512 * sizeof(int32_t)) != 0);
    int count[512] = {0};
    for (int i = 0; i < 512; i++) count[a[i]]++;
    for (int i = 0; i < 512; i++) ck_assert_int_eq(count[i], 1);
}
END_TEST

START_TEST(test_divergence_is_reported)
{
    ck_assert(have_data);
    tb_train_config cfg = base_config(64);
    cfg.optim.lr = 1e6; /* the "absurd learning rate" of the study */
    size_t n;
    tb_status st;
    float *p = train_once(&cfg, 5, 1, &n, &st);
    ck_assert_int_eq(st, TB_EDIVERGED);
    free(p);
}
END_TEST

typedef struct counter {
    int batches, epochs, ends;
    tb_status end_status;
    atomic_int *cancel;
    int cancel_after;
    double last_val_acc;
} counter;

static void count_events(void *user, const tb_train_event *ev)
{
    counter *c = user;
    if (ev->kind == TB_EVENT_BATCH) {
        c->batches++;
        ck_assert(isfinite(ev->batch_loss) && ev->images_per_s > 0);
        if (c->cancel && c->batches == c->cancel_after) atomic_store(c->cancel, 1);
    } else if (ev->kind == TB_EVENT_EPOCH) {
        c->epochs++;
        c->last_val_acc = ev->val_accuracy;
    } else {
        c->ends++;
        c->end_status = ev->status;
    }
}

START_TEST(test_events_cancel_and_time_limit)
{
    ck_assert(have_data);
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = test_net();
    tb_err err;
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    tb_net_init_params(net, 1);
    tb_train_config cfg = base_config(64);

    counter c = {0};
    tb_train_hooks hooks = {0};
    tb_train_hooks_add(&hooks, count_events, &c);
    tb_train_result res;
    ck_assert(tb_train(net, NULL, &cfg, &fmnist_first512, &fmnist_first512, &hooks, &res, &err) == TB_OK);
    ck_assert_int_eq(c.batches, 2 * 8);
    ck_assert_int_eq(c.epochs, 2);
    ck_assert_int_eq(c.ends, 1);
    ck_assert_int_eq(c.end_status, TB_OK);
    ck_assert(c.last_val_acc > 0.1 && c.last_val_acc <= 1.0);
    ck_assert_int_eq(res.steps, 16);

    atomic_int cancel = 0;
    counter c2 = {.cancel = &cancel, .cancel_after = 3};
    hooks.user[0] = &c2;
    hooks.cancel = &cancel;
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, &hooks, &res, &err), TB_ECANCELLED);
    ck_assert_int_eq(res.steps, 3);
    ck_assert_int_eq(c2.end_status, TB_ECANCELLED);
    ck_assert_msg(strstr(err.msg, "cancelled"), "%s", err.msg);

    hooks.cancel = NULL;
    cfg.epochs = 1000;
    cfg.time_limit_s = 0.2;
    double t0 = tb_now();
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, &hooks, &res, &err), TB_ETIMEOUT);
    ck_assert(tb_now() - t0 < 5.0);

    /* bad values are refused before anything runs, naming the field */
    cfg = base_config(513);
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, &res, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "batch_size = 513"), "%s", err.msg);
    cfg = base_config(64);
    cfg.optim.lr = NAN;
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, &res, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "lr"), "%s", err.msg);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* Prefetching (the next batch loaded on a thread while the step runs) changes
 * nothing: the same losses, parameters and buffers as loading after each step
 * (no_prefetch), with a short last batch, two epochs and 1 or 2 threads; a
 * load that fails mid-epoch ends the run at the same step with its message. */
typedef struct loss_log {
    double loss[64];
    int n;
    double wait;
} loss_log;

static void log_losses(void *user, const tb_train_event *ev)
{
    loss_log *l = user;
    if (ev->kind == TB_EVENT_BATCH && l->n < 64) l->loss[l->n++] = ev->batch_loss;
    ck_assert(ev->input_wait_s >= 0.0 && isfinite(ev->input_wait_s));
    if (ev->kind == TB_EVENT_END) l->wait = ev->input_wait_s;
}

typedef struct failing {
    const tb_dataset *base;
    int calls, fail_at;
} failing;

static tb_status failing_load(void *ctx, const int32_t *idx, int n, float *x, int32_t *y, tb_err *err)
{
    failing *f = ctx;
    if (++f->calls == f->fail_at) return tb_fail(err, TB_EIO, "load %d failed", f->calls);
    return f->base->load(f->base->ctx, idx, n, x, y, err);
}

static float *train_logged(const tb_train_config *cfg, const tb_dataset *ds, int threads, loss_log *log,
                           tb_train_result *res, tb_err *err, size_t *count)
{
    tb_train_hooks hooks = {0};
    tb_train_hooks_add(&hooks, log_losses, log);
    return train_fresh(cfg, ds, 3, threads, &hooks, res, err, count);
}

START_TEST(test_prefetch_changes_nothing)
{
    ck_assert(have_data);
    /* 2 and 3 threads: a CPU run given one thread never starts the loader
     * (train.c), so there prefetching on and off would be the same code */
    for (int threads = 2; threads <= 3; threads++) {
        tb_train_config cfg = base_config(48); /* 512 = 10 x 48 + 32: a short last batch */
        float *p[2];
        size_t n[2];
        loss_log log[2];
        memset(log, 0, sizeof log);
        tb_train_result res[2];
        tb_err err[2];
        for (int k = 0; k < 2; k++) {
            cfg.no_prefetch = k;
            p[k] = train_logged(&cfg, &fmnist_first512, threads, &log[k], &res[k], &err[k], &n[k]);
            ck_assert_int_eq(res[k].status, TB_OK);
            ck_assert_int_eq(res[k].steps, 22);
            ck_assert(res[k].input_wait_s >= 0.0 && res[k].input_wait_s <= res[k].seconds);
            ck_assert(log[k].wait == res[k].input_wait_s);
        }
        ck_assert_int_eq(log[0].n, 22);
        ck_assert_int_eq(log[1].n, 22);
        ck_assert_msg(memcmp(log[0].loss, log[1].loss, sizeof log[0].loss) == 0,
                      "batch losses differ with and without prefetching (%d threads)", threads);
        ck_assert_uint_eq(n[0], n[1]);
        ck_assert_msg(memcmp(p[0], p[1], sizeof(float) * n[0]) == 0,
                      "parameters differ with and without prefetching (%d threads)", threads);
        free(p[0]);
        free(p[1]);

        /* the 4th load (batch 4 of epoch 1, loaded during step 3) fails: 3 steps, the loader's message */
        for (int k = 0; k < 2; k++) {
            failing f = {.base = &fmnist_first512, .fail_at = 4};
            tb_dataset ds = fmnist_first512;
            ds.ctx = &f;
            ds.load = failing_load;
            ds.destroy = NULL;
            cfg.no_prefetch = k;
            memset(&log[k], 0, sizeof log[k]);
            p[k] = train_logged(&cfg, &ds, threads, &log[k], &res[k], &err[k], &n[k]);
            ck_assert_int_eq(res[k].status, TB_EIO);
            ck_assert_int_eq(res[k].steps, 3);
            ck_assert_int_eq(f.calls, 4);
            ck_assert_str_eq(err[k].msg, "load 4 failed");
        }
        ck_assert_msg(memcmp(p[0], p[1], sizeof(float) * n[0]) == 0, "a failed load: parameters differ");
        free(p[0]);
        free(p[1]);
    }
}
END_TEST

/* The small CNN drives the training loss on one batch of real images near zero. */
START_TEST(test_overfit_one_batch)
{
    ck_assert(have_data);
    tb_dataset one;
    int32_t idx[64];
    for (int i = 0; i < 64; i++) idx[i] = i;
    tb_err err;
    ck_assert(tb_dataset_subset(&one, &fmnist_train, idx, 64, &err) == TB_OK);
    tb_backend *be = tb_backend_cpu_create(0);
    tb_net *net = tb_zoo_small_cnn(1, 28, 28, 10);
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    tb_net_init_params(net, 3);
    tb_train_config cfg = {.epochs = 150, .batch_size = 64, .loss = TB_LOSS_CROSS_ENTROPY, .seed = 3};
    tb_optim_defaults(&cfg.optim, TB_OPT_ADAM);
    tb_train_result res;
    ck_assert_msg(tb_train(net, NULL, &cfg, &one, NULL, NULL, &res, &err) == TB_OK, "%s", err.msg);
    tb_metrics m;
    tb_metrics_init(&m, 10);
    ck_assert(tb_evaluate(net, &one, TB_LOSS_CROSS_ENTROPY, 64, &m, &err) == TB_OK);
    printf("overfit: training loss %.2e, eval loss %.2e, accuracy %.3f after %d steps\n", res.final_train_loss,
           m.loss, m.accuracy, (int)res.steps);
    ck_assert_msg(m.loss < 1e-2, "loss %g after %d steps", m.loss, (int)res.steps);
    ck_assert(m.accuracy == 1.0);
    tb_metrics_free(&m);
    tb_net_free(net);
    tb_backend_destroy(be);
    tb_dataset_free(&one);
}
END_TEST

/* ASGD's averaged parameters can be swapped in for evaluation and back. */
START_TEST(test_asgd_averaged_parameters)
{
    ck_assert(have_data);
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = test_net();
    tb_err err;
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    tb_net_init_params(net, 2);
    tb_train_config cfg = base_config(64);
    cfg.epochs = 1;
    tb_optim_defaults(&cfg.optim, TB_OPT_ASGD);
    cfg.optim.t0 = 2; /* start averaging after two steps */
    tb_optimizer opt;
    ck_assert(tb_optimizer_create(&opt, net, &cfg.optim, &err) == TB_OK);
    ck_assert(tb_train(net, &opt, &cfg, &fmnist_first512, NULL, NULL, NULL, &err) == TB_OK);
    size_t n = tb_net_params_size(net);
    float *raw = malloc(sizeof(float) * n), *avg = malloc(sizeof(float) * n);
    memcpy(raw, tb_net_params(net), sizeof(float) * n);
    memcpy(avg, tb_optim_averaged(&opt.cfg, opt.state, n), sizeof(float) * n);
    ck_assert_msg(memcmp(raw, avg, sizeof(float) * n) != 0, "averaging never started");
    ck_assert(tb_optimizer_swap_averaged(&opt, net, &err) == TB_OK);
    ck_assert(memcmp(tb_net_params(net), avg, sizeof(float) * n) == 0);
    ck_assert(tb_optimizer_swap_averaged(&opt, net, &err) == TB_OK);
    ck_assert(memcmp(tb_net_params(net), raw, sizeof(float) * n) == 0);
    tb_optimizer_destroy(&opt);
    tb_optim_defaults(&cfg.optim, TB_OPT_SGD);
    ck_assert(tb_optimizer_create(&opt, net, &cfg.optim, &err) == TB_OK);
    ck_assert_int_eq(tb_optimizer_swap_averaged(&opt, net, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "asgd"), "%s", err.msg);
    tb_optimizer_destroy(&opt);
    free(raw);
    free(avg);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

static float *param_copy(const tb_net *net, const char *name, size_t *count)
{
    const tb_param *p = tb_net_param(net, tb_net_find_param(net, name));
    float *v = malloc(sizeof(float) * p->count);
    tb_net_param_get(net, tb_net_find_param(net, name), v);
    *count = p->count;
    return v;
}

/* A frozen base keeps its weights (weight decay included) while the head trains;
 * BN running statistics still update, as with requires_grad=False in PyTorch. */
START_TEST(test_frozen_base)
{
    ck_assert(have_data);
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = test_net();
    tb_err err;
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    tb_net_init_params(net, 4);
    ck_assert_int_eq(tb_net_set_trainable(net, "features.", 0), 4);
    ck_assert_uint_eq(tb_net_trainable_count(net), 10 * 8 * 14 * 14 + 10);
    size_t n;
    float *conv = param_copy(net, "features.0.weight", &n), *gamma = param_copy(net, "features.1.weight", &n);
    float *head = param_copy(net, "classifier.weight", &n), *rm = param_copy(net, "features.1.running_mean", &n);
    tb_train_config cfg = base_config(64);
    cfg.epochs = 1;
    tb_optim_defaults(&cfg.optim, TB_OPT_ADAM);
    cfg.optim.weight_decay = 0.1;
    ck_assert(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, NULL, &err) == TB_OK);
    size_t m;
    float *conv2 = param_copy(net, "features.0.weight", &m), *gamma2 = param_copy(net, "features.1.weight", &m);
    float *head2 = param_copy(net, "classifier.weight", &m), *rm2 = param_copy(net, "features.1.running_mean", &m);
    ck_assert(memcmp(conv, conv2, sizeof(float) * 8 * 9) == 0);
    ck_assert(memcmp(gamma, gamma2, sizeof(float) * 8) == 0);
    ck_assert(memcmp(head, head2, sizeof(float) * 10 * 8 * 14 * 14) != 0);
    ck_assert(memcmp(rm, rm2, sizeof(float) * 8) != 0);
    char *report = tb_net_param_report(net);
    ck_assert_msg(strstr(report, "features.0: 0 trainable, 80 frozen"), "%s", report);
    free(report);
    free(conv), free(conv2), free(gamma), free(gamma2), free(head), free(head2), free(rm), free(rm2);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* Initialising a 5-class model from a 10-class checkpoint re-initialises the head only. */
START_TEST(test_transfer_from_checkpoint)
{
    tb_backend *be = tb_backend_cpu_create(1);
    tb_err err;
    tb_net *src = tb_zoo_small_cnn(1, 28, 28, 10), *dst = tb_zoo_small_cnn(1, 28, 28, 5);
    ck_assert(tb_net_build(src, be, 8, &err) == TB_OK && tb_net_build(dst, be, 8, &err) == TB_OK);
    tb_net_init_params(src, 1);
    tb_net_init_params(dst, 2);
    char path[] = "/tmp/tb_transfer_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_msg(tb_checkpoint_save(path, src, NULL, &err) == TB_OK, "%s", err.msg);
    size_t n;
    float *head_before = param_copy(dst, "classifier.2.weight", &n);
    ck_assert_int_eq(tb_checkpoint_load(path, dst, NULL, &err), TB_EFORMAT); /* plain load refuses */
    ck_assert_msg(strstr(err.msg, "classifier.2.weight"), "%s", err.msg);
    char kept[256];
    ck_assert_msg(tb_checkpoint_load_transfer(path, dst, "classifier.2.", kept, sizeof kept, &err) == TB_OK, "%s",
                  err.msg);
    ck_assert_str_eq(kept, "classifier.2.weight, classifier.2.bias");
    const char *same[] = {"features.0.weight", "features.3.bias", "classifier.0.weight"};
    for (int i = 0; i < 3; i++) {
        size_t a, b;
        float *x = param_copy(src, same[i], &a), *y = param_copy(dst, same[i], &b);
        ck_assert(a == b && memcmp(x, y, sizeof(float) * a) == 0);
        free(x), free(y);
    }
    float *head_after = param_copy(dst, "classifier.2.weight", &n);
    ck_assert(memcmp(head_before, head_after, sizeof(float) * n) == 0);
    unlink(path);
    free(head_before), free(head_after);
    tb_net_free(src);
    tb_net_free(dst);
    tb_backend_destroy(be);
}
END_TEST

/* Batch norm over a 1x1 map (or BatchNorm1d over [n, c]) with a one-sample batch is refused
 * before training, as torch does. */
START_TEST(test_batchnorm_single_value_refused)
{
    ck_assert(have_data);
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = tb_net_new(1, 28, 28);
    int x = tb_net_conv2d(net, TB_NET_INPUT, "c", 4, 3, 1, 1, 1, 1, tb_init_torch_default());
    x = tb_net_adaptive_avgpool(net, x, 1, 1);
    x = tb_net_batchnorm(net, x, "bn", 1e-5f, 0.1f);
    x = tb_net_flatten(net, x);
    tb_net_linear(net, x, "fc", 10, 1, tb_init_torch_default());
    tb_err err;
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    tb_train_config cfg = base_config(73); /* 512 = 7 * 73 + 1: the last batch holds one sample */
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, NULL, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "batch_size = 73") && strstr(err.msg, "last"), "%s", err.msg);
    cfg = base_config(64); /* 512 = 8 * 64: fine */
    cfg.epochs = 1;
    ck_assert_msg(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, NULL, &err) == TB_OK, "%s", err.msg);
    tb_net_free(net);
    /* the same for BatchNorm1d over [n, c] (torch.nn.BatchNorm1d raises the same) */
    net = tb_net_new(1, 28, 28);
    x = tb_nn_flatten(net, TB_NET_INPUT);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 16});
    x = tb_nn_batchnorm1d(net, x, NULL);
    tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 10});
    ck_assert(tb_net_build(net, be, 64, &err) == TB_OK);
    cfg = base_config(73);
    ck_assert_int_eq(tb_train(net, NULL, &cfg, &fmnist_first512, NULL, NULL, NULL, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "batch_size = 73") && strstr(err.msg, "BatchNorm1d"), "%s", err.msg);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_add_unchecked_fixture(tc, load_data, free_data);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_same_seed_bitwise_identical);
    tcase_add_test(tc, test_different_seeds_differ);
    tcase_add_test(tc, test_order_and_init_independent_of_hyperparameters);
    tcase_add_test(tc, test_divergence_is_reported);
    tcase_add_test(tc, test_events_cancel_and_time_limit);
    tcase_add_test(tc, test_prefetch_changes_nothing);
    tcase_add_test(tc, test_overfit_one_batch);
    tcase_add_test(tc, test_asgd_averaged_parameters);
    tcase_add_test(tc, test_frozen_base);
    tcase_add_test(tc, test_transfer_from_checkpoint);
    tcase_add_test(tc, test_batchnorm_single_value_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access(TB_FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        /* a dependency scripts/deps.sh installs: absent means a broken install, which must fail */
        printf("test_train: %s not found: install Debian's dataset-fashion-mnist (scripts/deps.sh does)\n",
               TB_FMNIST_DIR);
        return 1;
    }
    return tbt_run(suite());
}
