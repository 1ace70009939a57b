/* runfile.c: writing the run file (layout in runfile.h). */
#include "runfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "checkpoint.h"
#include "h5util.h"

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

static void write_root(tb_h5_writer *w, hid_t f, tb_status st, const char *message)
{
    char created[32];
    tb_iso_utc(tb_utc_now(), created);
    tb_h5w_attr_str(w, f, "format", TB_RUNFILE_FORMAT);
    tb_h5w_attr_i64(w, f, "format_version", TB_RUNFILE_VERSION);
    tb_h5w_attr_str(w, f, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(w, f, "git_commit", TB_GIT_COMMIT);
    tb_h5w_attr_str(w, f, "created", created);
    tb_h5w_attr_str(w, f, "status", st == TB_OK ? "finished" : tb_status_name(st));
    tb_h5w_attr_str(w, f, "message", message ? message : "");
}

static void write_config(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    hid_t g = tb_h5w_group(w, f, "config");
    if (g < 0) return;
    tb_h5w_attr_str(w, g, "ini", c->config_ini);
    tb_h5w_attr_str(w, g, "source", c->config_source);
    tb_h5w_close_group(w, g);

    g = tb_h5w_group(w, f, "seeds");
    if (g < 0) return;
    tb_h5w_attr_i64(w, g, "seed", (int64_t)c->seed);
    tb_h5w_attr_i64(w, g, "init_seed", (int64_t)c->init_seed);
    tb_h5w_attr_i64(w, g, "split_seed", (int64_t)c->split_seed);
    tb_h5w_close_group(w, g);
}

static void write_environment(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    hid_t g = tb_h5w_group(w, f, "environment");
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
    tb_h5w_attr_str(w, g, "hostname", host);
    tb_h5w_attr_str(w, g, "os", os);
    tb_h5w_attr_str(w, g, "cpu", cpu);
    tb_h5w_attr_i64(w, g, "threads", c->threads);
    tb_h5w_attr_str(w, g, "backend", c->backend);
    tb_h5w_attr_str(w, g, "device", c->device);
    /* a GPU's details: device, library versions, math mode and the cuDNN
     * algorithm ids chosen per convolution shape (the determinism record) */
    tb_h5w_attr_str(w, g, "backend_details", c->backend_details);
    tb_h5w_attr_str(w, g, "blas", openblas_get_config());
    tb_h5w_attr_str(w, g, "hdf5", hdf5);
    tb_h5w_attr_str(w, g, "compiler", "gcc " __VERSION__);
    tb_h5w_close_group(w, g);
}

static void write_model(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    hid_t g = tb_h5w_group(w, f, "model");
    if (g < 0) return;
    const tb_runfile_plugin *mp = &c->model_plugin;
    tb_h5w_attr_str(w, g, "plugin", mp->name);
    tb_h5w_attr_str(w, g, "plugin_version", mp->version);
    tb_h5w_attr_str(w, g, "plugin_file", mp->file);
    tb_h5w_attr_str(w, g, "options", mp->options);
    tb_h5w_attr_i64(w, g, "trainable_parameters", (int64_t)tb_net_trainable_count(c->net));
    tb_h5w_attr_i64(w, g, "total_parameters", (int64_t)tb_net_params_size(c->net));
    tb_h5w_attr_str(w, g, "freeze", c->freeze);
    tb_h5w_attr_str(w, g, "init_from", c->init_from);
    tb_h5w_attr_str(w, g, "head_reinitialised", c->head_reinitialised);
    tb_h5w_attr_str(w, g, "init_notes", c->init_notes ? c->init_notes : "");
    int np = tb_net_param_count(c->net), rows = 0;
    const char **names = malloc(sizeof *names * (np ? np : 1));
    int64_t *count = malloc(sizeof *count * (np ? np : 1)), *trainable = malloc(sizeof *trainable * (np ? np : 1));
    if (names && count && trainable) {
        for (int i = 0; i < np; i++) {
            const tb_param *p = tb_net_param(c->net, i);
            if (p->is_buffer) continue;
            names[rows] = p->name;
            count[rows] = (int64_t)p->count;
            trainable[rows] = p->trainable;
            rows++;
        }
        hid_t t = tb_h5w_group(w, g, "parameters");
        if (t >= 0) {
            tb_h5w_column_str(w, t, "name", names, (size_t)rows);
            tb_h5w_column_i64(w, t, "count", count, (size_t)rows);
            tb_h5w_column_i64(w, t, "trainable", trainable, (size_t)rows);
            tb_h5w_close_group(w, t);
        }
    } else {
        tb_h5w_fail(w, g, "write (out of memory)", "parameters");
    }
    free(names), free(count), free(trainable);
    tb_h5w_close_group(w, g);
}

static void write_task(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    hid_t g = tb_h5w_group(w, f, "task");
    if (g < 0) return;
    const tb_runfile_plugin *tp = &c->task_plugin;
    const tb_task *t = c->task;
    tb_h5w_attr_str(w, g, "plugin", tp->name);
    tb_h5w_attr_str(w, g, "plugin_version", tp->version);
    tb_h5w_attr_str(w, g, "options", tp->options);
    tb_h5w_attr_str(w, g, "source", t->raw.source);
    tb_h5w_attr_i64(w, g, "channels", t->raw.channels);
    tb_h5w_attr_i64(w, g, "height", t->raw.height);
    tb_h5w_attr_i64(w, g, "width", t->raw.width);
    tb_h5w_attr_i64(w, g, "classes", t->raw.classes);
    tb_h5w_attr_i64(w, g, "classes_guessed", t->raw.classes_guessed);
    tb_h5w_attr_str(w, g, "pixel_type", t->raw.pixels_f32 ? "float32" : "uint8");
    tb_h5w_attr_i64(w, g, "n_train", t->train.count);
    tb_h5w_attr_i64(w, g, "n_val", t->val.count);
    tb_h5w_attr_i64(w, g, "n_test", t->test.count);
    double mean[4], std[4];
    for (int ch = 0; ch < t->raw.channels && ch < 4; ch++) mean[ch] = t->mean[ch], std[ch] = t->std[ch];
    size_t nc = (size_t)(t->raw.channels < 4 ? t->raw.channels : 4);
    tb_h5w_column_f64(w, g, "mean", mean, nc);
    tb_h5w_column_f64(w, g, "std", std, nc);
    if (t->raw.class_names)
        tb_h5w_column_str(w, g, "class_names", (const char *const *)t->raw.class_names, (size_t)t->raw.classes);
    tb_h5w_close_group(w, g);
}

static void write_train(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    hid_t g = tb_h5w_group(w, f, "train");
    if (g < 0) return;
    const tb_train_config *t = c->train;
    const tb_optim_config *o = &t->optim;
    tb_h5w_attr_i64(w, g, "epochs", t->epochs);
    tb_h5w_attr_i64(w, g, "batch_size", t->batch_size);
    tb_h5w_attr_str(w, g, "loss", tb_loss_name(t->loss));
    tb_h5w_attr_str(w, g, "optimizer", tb_optim_name(o->kind));
    /* every optimizer hyperparameter (engine/hparams.h), booleans too, as doubles */
#define HPARAM_ATTR(name, ...) tb_h5w_attr_f64(w, g, #name, (double)o->name);
    TB_OPTIM_HPARAMS(HPARAM_ATTR)
#undef HPARAM_ATTR
    tb_h5w_attr_f64(w, g, "time_limit", t->time_limit_s);
    const tb_train_result *r = c->result;
    tb_h5w_attr_i64(w, g, "epochs_done", r->epochs_done);
    tb_h5w_attr_i64(w, g, "steps", r->steps);
    tb_h5w_attr_f64(w, g, "seconds", r->seconds);
    tb_h5w_attr_f64(w, g, "final_train_loss", r->final_train_loss);
    tb_h5w_attr_f64(w, g, "final_val_loss", r->final_val_loss);
    tb_h5w_attr_f64(w, g, "final_val_accuracy", r->final_val_accuracy);
    tb_h5w_attr_str(w, g, "ignored", c->ignored_hparams ? c->ignored_hparams : "");
    tb_h5w_close_group(w, g);
}

static void write_curves(tb_h5_writer *w, hid_t f, const tb_curves *c)
{
    hid_t g = tb_h5w_group(w, f, "curves/batch");
    if (g < 0) return;
    tb_h5w_column_i64(w, g, "epoch", c->b_epoch, c->n_batch);
    tb_h5w_column_i64(w, g, "batch", c->b_batch, c->n_batch);
    tb_h5w_column_i64(w, g, "step", c->b_step, c->n_batch);
    tb_h5w_column_f64(w, g, "loss", c->b_loss, c->n_batch);
    tb_h5w_column_f64(w, g, "elapsed_s", c->b_elapsed, c->n_batch);
    tb_h5w_close_group(w, g);
    g = tb_h5w_group(w, f, "curves/epoch");
    if (g < 0) return;
    tb_h5w_column_i64(w, g, "epoch", c->e_epoch, c->n_epoch);
    tb_h5w_column_f64(w, g, "train_loss", c->e_train_loss, c->n_epoch);
    tb_h5w_column_f64(w, g, "val_loss", c->e_val_loss, c->n_epoch);
    tb_h5w_column_f64(w, g, "val_accuracy", c->e_val_acc, c->n_epoch);
    tb_h5w_column_f64(w, g, "seconds", c->e_seconds, c->n_epoch);
    tb_h5w_column_f64(w, g, "images_per_s", c->e_ips, c->n_epoch);
    tb_h5w_column_f64(w, g, "elapsed_s", c->e_elapsed, c->n_epoch);
    tb_h5w_close_group(w, g);
}

static void write_test(tb_h5_writer *w, hid_t f, const tb_runfile_contents *c)
{
    if (!c->test) return;
    hid_t g = tb_h5w_group(w, f, "test");
    if (g < 0) return;
    const tb_metrics *m = c->test;
    tb_h5w_attr_f64(w, g, "loss", m->loss);
    tb_h5w_attr_f64(w, g, "accuracy", m->accuracy);
    tb_h5w_attr_f64(w, g, "macro_precision", m->macro_precision);
    tb_h5w_attr_f64(w, g, "macro_recall", m->macro_recall);
    tb_h5w_attr_f64(w, g, "macro_f1", m->macro_f1);
    tb_h5w_attr_i64(w, g, "count", m->count);
    tb_h5w_matrix_i64(w, g, "confusion", m->confusion, (size_t)m->classes, (size_t)m->classes);
    tb_h5w_close_group(w, g);
}

tb_status tb_runfile_write(const char *path, const tb_runfile_contents *c, tb_err *err)
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
    hid_t f = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char why[128];
        tb_h5_errno_suffix(errno, why);
        H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
        return tb_fail(err, TB_EIO, "run file %s: cannot create %s%s", path, tmp, why);
    }
    tb_h5_writer w;
    tb_h5w_init(&w, path); /* named by its final name: the temporary file is ours */
    write_root(&w, f, c->status, c->message);
    write_config(&w, f, c);
    write_environment(&w, f, c);
    write_model(&w, f, c);
    write_task(&w, f, c);
    write_train(&w, f, c);
    write_curves(&w, f, c->curves);
    write_test(&w, f, c);
    tb_err inner = {{0}};
    tb_status st = TB_OK;
    hid_t g = tb_h5w_group(&w, f, "checkpoint");
    if (g >= 0) st = tb_checkpoint_write_into(&w, g, c->net, c->optimizer, &inner);
    tb_h5w_close_group(&w, g);
    tb_h5w_close_file(&w, f);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (!tb_h5w_ok(&w) || st != TB_OK) {
        unlink(tmp);
        /* "cannot write dataset /curves/epoch/val_accuracy in runs/x.h5 (reason)" */
        if (!tb_h5w_ok(&w)) return tb_h5w_finish(&w, err);
        return tb_fail(err, st, "run file %s: checkpoint: %s", path, inner.msg);
    }
    /* the file, then its new name in the directory, survive a power loss */
    if (tb_rename_durable(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tb_fail(err, TB_EIO, "run file %s: cannot move %s into place: %s", path, tmp, strerror(e));
    }
    return c->curves->out_of_memory
               ? tb_fail(err, TB_ENOMEM, "run file %s written, but some curve points were lost (out of memory)", path)
               : TB_OK;
}
