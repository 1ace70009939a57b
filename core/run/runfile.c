/* runfile.c: writing the run file (layout in runfile.h). */
#include "runfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "store/checkpoint.h"
#include "store/h5util.h"

char *openblas_get_config(void); /* OpenBLAS's build description */

/* ---- curves -------------------------------------------------------------------- */

void tb_curves_init(tb_curves *c) { memset(c, 0, sizeof *c); }

void tb_curves_free(tb_curves *c)
{
    free(c->b_epoch), free(c->b_batch), free(c->b_step), free(c->b_loss), free(c->b_elapsed);
    free(c->e_epoch), free(c->e_train_loss), free(c->e_val_loss), free(c->e_val_acc), free(c->e_seconds);
    free(c->e_ips), free(c->e_elapsed);
    memset(c, 0, sizeof *c);
}

/* Grows every array of a group to cap; 0 or -1. */
static int grow(void **arrays[], const size_t *elem, int n, size_t cap)
{
    for (int i = 0; i < n; i++) {
        void *p = realloc(*arrays[i], elem[i] * cap);
        if (!p) return -1;
        *arrays[i] = p;
    }
    return 0;
}

void tb_curves_add(tb_curves *c, const tb_train_event *ev)
{
    if (ev->kind == TB_EVENT_BATCH) {
        if (c->n_batch == c->cap_batch) {
            size_t cap = c->cap_batch ? 2 * c->cap_batch : 1024;
            void **arrays[] = {(void **)&c->b_epoch, (void **)&c->b_batch, (void **)&c->b_step, (void **)&c->b_loss,
                               (void **)&c->b_elapsed};
            const size_t elem[] = {8, 8, 8, 8, 8};
            if (grow(arrays, elem, 5, cap) != 0) {
                c->out_of_memory = 1;
                return;
            }
            c->cap_batch = cap;
        }
        size_t i = c->n_batch++;
        c->b_epoch[i] = ev->epoch;
        c->b_batch[i] = ev->batch;
        c->b_step[i] = ev->step;
        c->b_loss[i] = ev->batch_loss;
        c->b_elapsed[i] = ev->elapsed_s;
    } else if (ev->kind == TB_EVENT_EPOCH) {
        if (c->n_epoch == c->cap_epoch) {
            size_t cap = c->cap_epoch ? 2 * c->cap_epoch : 64;
            void **arrays[] = {(void **)&c->e_epoch,   (void **)&c->e_train_loss, (void **)&c->e_val_loss,
                               (void **)&c->e_val_acc, (void **)&c->e_seconds,    (void **)&c->e_ips,
                               (void **)&c->e_elapsed};
            const size_t elem[] = {8, 8, 8, 8, 8, 8, 8};
            if (grow(arrays, elem, 7, cap) != 0) {
                c->out_of_memory = 1;
                return;
            }
            c->cap_epoch = cap;
        }
        size_t i = c->n_epoch++;
        c->e_epoch[i] = ev->epoch;
        c->e_train_loss[i] = ev->epoch_loss;
        c->e_val_loss[i] = ev->val_loss;
        c->e_val_acc[i] = ev->val_accuracy;
        c->e_seconds[i] = ev->epoch_s;
        c->e_ips[i] = ev->images_per_s;
        c->e_elapsed[i] = ev->elapsed_s;
    }
}

/* ---- helpers ------------------------------------------------------------------- */

/* mkdir -p of path's parent directory (none, or "/": nothing to make) */
static int make_parent_dirs(const char *path)
{
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = '\0';
    return tb_make_dirs(dir);
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ') colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(buf, len, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

typedef struct writer {
    int failed;
    const char *where;
} writer;

/* Records the first failure; every call after it is skipped. */
static void check(writer *w, int rc, const char *where)
{
    if (rc < 0 && !w->failed) {
        w->failed = 1;
        w->where = where;
    }
}

static void write_root(writer *w, hid_t f, tb_status st, const char *message)
{
    char created[32];
    tb_iso_utc(tb_utc_now(), created);
    check(w, tb_h5_attr_str(f, "format", TB_RUNFILE_FORMAT), "/");
    check(w, tb_h5_attr_i64(f, "format_version", TB_RUNFILE_VERSION), "/");
    check(w, tb_h5_attr_str(f, "tunebench_version", TB_VERSION), "/");
    check(w, tb_h5_attr_str(f, "git_commit", TB_GIT_COMMIT), "/");
    check(w, tb_h5_attr_str(f, "created", created), "/");
    check(w, tb_h5_attr_str(f, "status", st == TB_OK ? "finished" : tb_status_name(st)), "/");
    check(w, tb_h5_attr_str(f, "message", message ? message : ""), "/");
}

static void write_config(writer *w, hid_t f, const tb_run *run)
{
    hid_t g = tb_h5_group(f, "config");
    check(w, (int)g, "/config");
    if (g < 0) return;
    char *ini = tb_config_to_ini(run->cfg);
    check(w, ini ? 0 : -1, "/config (out of memory)");
    if (ini) check(w, tb_h5_attr_str(g, "ini", ini), "/config");
    free(ini);
    check(w, tb_h5_attr_str(g, "source", tb_config_path(run->cfg)), "/config");
    H5Gclose(g);

    g = tb_h5_group(f, "seeds");
    check(w, (int)g, "/seeds");
    if (g < 0) return;
    check(w, tb_h5_attr_i64(g, "seed", (int64_t)run->train.seed), "/seeds");
    check(w, tb_h5_attr_i64(g, "init_seed", (int64_t)run->init_seed), "/seeds");
    check(w, tb_h5_attr_i64(g, "split_seed", (int64_t)run->task_opt.split_seed), "/seeds");
    H5Gclose(g);
}

static void write_environment(writer *w, hid_t f, const tb_run *run)
{
    hid_t g = tb_h5_group(f, "environment");
    check(w, (int)g, "/environment");
    if (g < 0) return;
    char host[256] = "unknown", cpu[256], os[512], hdf5[32];
    gethostname(host, sizeof host - 1);
    cpu_model(cpu, sizeof cpu);
    struct utsname u;
    if (uname(&u) == 0) snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    else snprintf(os, sizeof os, "unknown");
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(hdf5, sizeof hdf5, "%u.%u.%u", maj, min, rel);
    check(w, tb_h5_attr_str(g, "hostname", host), "/environment");
    check(w, tb_h5_attr_str(g, "os", os), "/environment");
    check(w, tb_h5_attr_str(g, "cpu", cpu), "/environment");
    check(w, tb_h5_attr_i64(g, "threads", run->be ? run->be->threads : 0), "/environment");
    check(w, tb_h5_attr_str(g, "backend", run->be ? run->be->name : "none"), "/environment");
    check(w, tb_h5_attr_str(g, "device", run->device[0] ? run->device : "cpu"), "/environment");
    /* a GPU's details: device, library versions, math mode and the cuDNN
     * algorithm ids chosen per convolution shape (the determinism record) */
    char details[8192] = "";
    if (run->be) run->be->ops->describe(run->be, details, sizeof details);
    check(w, tb_h5_attr_str(g, "backend_details", details), "/environment");
    check(w, tb_h5_attr_str(g, "blas", openblas_get_config()), "/environment");
    check(w, tb_h5_attr_str(g, "hdf5", hdf5), "/environment");
    check(w, tb_h5_attr_str(g, "compiler", "gcc " __VERSION__), "/environment");
    H5Gclose(g);
}

static void write_model(writer *w, hid_t f, const tb_run *run)
{
    hid_t g = tb_h5_group(f, "model");
    check(w, (int)g, "/model");
    if (g < 0) return;
    const tb_plugin *mp = run->model_plugin;
    char *opts = tb_plugin_args_describe(run->model_args);
    check(w, tb_h5_attr_str(g, "plugin", mp->desc.name), "/model");
    check(w, tb_h5_attr_str(g, "plugin_version", mp->desc.version), "/model");
    check(w, tb_h5_attr_str(g, "plugin_file", mp->path), "/model");
    check(w, tb_h5_attr_str(g, "options", opts ? opts : ""), "/model");
    free(opts);
    check(w, tb_h5_attr_i64(g, "trainable_parameters", (int64_t)tb_net_trainable_count(run->net)), "/model");
    check(w, tb_h5_attr_i64(g, "total_parameters", (int64_t)tb_net_params_size(run->net)), "/model");
    check(w, tb_h5_attr_str(g, "freeze", run->freeze), "/model");
    check(w, tb_h5_attr_str(g, "init_from", run->init_from), "/model");
    check(w, tb_h5_attr_str(g, "head_reinitialised", run->kept_head), "/model");
    int np = tb_net_param_count(run->net), rows = 0;
    const char **names = malloc(sizeof *names * (np ? np : 1));
    int64_t *count = malloc(sizeof *count * (np ? np : 1)), *trainable = malloc(sizeof *trainable * (np ? np : 1));
    if (names && count && trainable) {
        for (int i = 0; i < np; i++) {
            const tb_param *p = tb_net_param(run->net, i);
            if (p->is_buffer) continue;
            names[rows] = p->name;
            count[rows] = (int64_t)p->count;
            trainable[rows] = p->trainable;
            rows++;
        }
        hid_t t = tb_h5_group(g, "parameters");
        check(w, (int)t, "/model/parameters");
        if (t >= 0) {
            check(w, tb_h5_column_str(t, "name", names, (size_t)rows), "/model/parameters");
            check(w, tb_h5_column_i64(t, "count", count, (size_t)rows), "/model/parameters");
            check(w, tb_h5_column_i64(t, "trainable", trainable, (size_t)rows), "/model/parameters");
            H5Gclose(t);
        }
    } else {
        check(w, -1, "/model/parameters (out of memory)");
    }
    free(names), free(count), free(trainable);
    H5Gclose(g);
}

static void write_task(writer *w, hid_t f, const tb_run *run)
{
    hid_t g = tb_h5_group(f, "task");
    check(w, (int)g, "/task");
    if (g < 0) return;
    const tb_plugin *tp = run->task_plugin;
    const tb_task *t = &run->task;
    char *opts = tb_plugin_args_describe(run->task_args);
    check(w, tb_h5_attr_str(g, "plugin", tp->desc.name), "/task");
    check(w, tb_h5_attr_str(g, "plugin_version", tp->desc.version), "/task");
    check(w, tb_h5_attr_str(g, "options", opts ? opts : ""), "/task");
    free(opts);
    check(w, tb_h5_attr_str(g, "source", t->raw.source), "/task");
    check(w, tb_h5_attr_i64(g, "channels", t->raw.channels), "/task");
    check(w, tb_h5_attr_i64(g, "height", t->raw.height), "/task");
    check(w, tb_h5_attr_i64(g, "width", t->raw.width), "/task");
    check(w, tb_h5_attr_i64(g, "classes", t->raw.classes), "/task");
    check(w, tb_h5_attr_i64(g, "n_train", t->train.count), "/task");
    check(w, tb_h5_attr_i64(g, "n_val", t->val.count), "/task");
    check(w, tb_h5_attr_i64(g, "n_test", t->test.count), "/task");
    double mean[4], std[4];
    for (int c = 0; c < t->raw.channels && c < 4; c++) mean[c] = t->mean[c], std[c] = t->std[c];
    size_t nc = (size_t)(t->raw.channels < 4 ? t->raw.channels : 4);
    check(w, tb_h5_column_f64(g, "mean", mean, nc), "/task");
    check(w, tb_h5_column_f64(g, "std", std, nc), "/task");
    if (t->raw.class_names)
        check(w, tb_h5_column_str(g, "class_names", (const char *const *)t->raw.class_names, (size_t)t->raw.classes),
              "/task");
    H5Gclose(g);
}

static void write_train(writer *w, hid_t f, const tb_run *run)
{
    hid_t g = tb_h5_group(f, "train");
    check(w, (int)g, "/train");
    if (g < 0) return;
    const tb_train_config *t = &run->train;
    const tb_optim_config *o = &t->optim;
    check(w, tb_h5_attr_i64(g, "epochs", t->epochs), "/train");
    check(w, tb_h5_attr_i64(g, "batch_size", t->batch_size), "/train");
    check(w, tb_h5_attr_str(g, "loss", tb_loss_name(t->loss)), "/train");
    check(w, tb_h5_attr_str(g, "optimizer", tb_optim_name(o->kind)), "/train");
    /* every optimizer hyperparameter (hparams.h), booleans too, as doubles */
#define HPARAM_ATTR(name, ...) check(w, tb_h5_attr_f64(g, #name, (double)o->name), "/train");
    TB_OPTIM_HPARAMS(HPARAM_ATTR)
#undef HPARAM_ATTR
    check(w, tb_h5_attr_f64(g, "time_limit", t->time_limit_s), "/train");
    const tb_train_result *r = &run->result;
    check(w, tb_h5_attr_i64(g, "epochs_done", r->epochs_done), "/train");
    check(w, tb_h5_attr_i64(g, "steps", r->steps), "/train");
    check(w, tb_h5_attr_f64(g, "seconds", r->seconds), "/train");
    check(w, tb_h5_attr_f64(g, "final_train_loss", r->final_train_loss), "/train");
    check(w, tb_h5_attr_f64(g, "final_val_loss", r->final_val_loss), "/train");
    check(w, tb_h5_attr_f64(g, "final_val_accuracy", r->final_val_accuracy), "/train");
    H5Gclose(g);
}

static void write_curves(writer *w, hid_t f, const tb_curves *c)
{
    hid_t g = tb_h5_group(f, "curves/batch");
    check(w, (int)g, "/curves/batch");
    if (g < 0) return;
    check(w, tb_h5_column_i64(g, "epoch", c->b_epoch, c->n_batch), "/curves/batch");
    check(w, tb_h5_column_i64(g, "batch", c->b_batch, c->n_batch), "/curves/batch");
    check(w, tb_h5_column_i64(g, "step", c->b_step, c->n_batch), "/curves/batch");
    check(w, tb_h5_column_f64(g, "loss", c->b_loss, c->n_batch), "/curves/batch");
    check(w, tb_h5_column_f64(g, "elapsed_s", c->b_elapsed, c->n_batch), "/curves/batch");
    H5Gclose(g);
    g = tb_h5_group(f, "curves/epoch");
    check(w, (int)g, "/curves/epoch");
    if (g < 0) return;
    check(w, tb_h5_column_i64(g, "epoch", c->e_epoch, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "train_loss", c->e_train_loss, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "val_loss", c->e_val_loss, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "val_accuracy", c->e_val_acc, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "seconds", c->e_seconds, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "images_per_s", c->e_ips, c->n_epoch), "/curves/epoch");
    check(w, tb_h5_column_f64(g, "elapsed_s", c->e_elapsed, c->n_epoch), "/curves/epoch");
    H5Gclose(g);
}

static void write_test(writer *w, hid_t f, const tb_run *run)
{
    if (!run->tested) return;
    hid_t g = tb_h5_group(f, "test");
    check(w, (int)g, "/test");
    if (g < 0) return;
    const tb_metrics *m = &run->test;
    check(w, tb_h5_attr_f64(g, "loss", m->loss), "/test");
    check(w, tb_h5_attr_f64(g, "accuracy", m->accuracy), "/test");
    check(w, tb_h5_attr_f64(g, "macro_precision", m->macro_precision), "/test");
    check(w, tb_h5_attr_f64(g, "macro_recall", m->macro_recall), "/test");
    check(w, tb_h5_attr_f64(g, "macro_f1", m->macro_f1), "/test");
    check(w, tb_h5_attr_i64(g, "count", m->count), "/test");
    check(w, tb_h5_matrix_i64(g, "confusion", m->confusion, (size_t)m->classes, (size_t)m->classes), "/test");
    H5Gclose(g);
}

tb_status tb_runfile_write(const char *path, const tb_run *run, const tb_optimizer *opt, const tb_curves *curves,
                           tb_status train_status, const char *train_message, tb_err *err)
{
    char tmp[1100];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return tb_fail(err, TB_EINVAL, "run file name too long: %s", path);
    if (make_parent_dirs(path) != 0)
        return tb_fail(err, TB_EIO, "run file %s: cannot create its directory: %s", path, strerror(errno));
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
        return tb_fail(err, TB_EIO, "run file %s: cannot create %s", path, tmp);
    }
    writer w = {0, NULL};
    write_root(&w, f, train_status, train_message);
    write_config(&w, f, run);
    write_environment(&w, f, run);
    write_model(&w, f, run);
    write_task(&w, f, run);
    write_train(&w, f, run);
    write_curves(&w, f, curves);
    write_test(&w, f, run);
    tb_err inner = {{0}};
    tb_status st = TB_OK;
    hid_t g = tb_h5_group(f, "checkpoint");
    if (g < 0) check(&w, -1, "/checkpoint");
    else {
        st = tb_checkpoint_write_group(g, run->net, opt, &inner);
        H5Gclose(g);
    }
    if (H5Fclose(f) < 0) check(&w, -1, "closing the file");
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (w.failed || st != TB_OK) {
        unlink(tmp);
        if (st != TB_OK) return tb_fail(err, st, "run file %s: checkpoint: %s", path, inner.msg);
        return tb_fail(err, TB_EIO, "run file %s: HDF5 failed writing %s (disk full?)", path, w.where);
    }
    /* the file, then its new name in the directory, survive a power loss */
    if (tb_rename_durable(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tb_fail(err, TB_EIO, "run file %s: cannot move %s into place: %s", path, tmp, strerror(e));
    }
    return curves->out_of_memory
               ? tb_fail(err, TB_ENOMEM, "run file %s written, but some curve points were lost (out of memory)", path)
               : TB_OK;
}
