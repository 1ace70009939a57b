/* run.c: a training run from a configuration (see run.h). */
#include "run.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/plugin.h"
#include "store/checkpoint.h"
#include "store/runfile.h"
#include "engine/device.h"

/* hparams.h's hyperparameters, then the run's own keys. */
const char *const tb_run_train_keys[] = {
#define KEY(name, ...) #name,
    TB_TRAIN_HPARAMS(KEY) TB_OPTIM_HPARAMS(KEY)
#undef KEY
    "seed", "init_seed", "time_limit", "threads", "device", "eval_batch_size", "gpu_memory_mib", "tf32",
};
const int tb_run_train_key_count = (int)(sizeof tb_run_train_keys / sizeof tb_run_train_keys[0]);

static const char *const model_keys[] = {"name", "init_from", "freeze"};
static const char *const task_keys[] = {"name", "resolution", "val_fraction", "split_seed", "folds", "fold",
                                        "mean", "std", "crop_padding", "hflip", "random_resized_crop",
                                        "merge_val"};
static const char *const output_keys[] = {"run", "checkpoint"};
static const char *const plugins_keys[] = {"path"};

#define TRY(expr)                                                                                                  \
    do {                                                                                                           \
        tb_status st_ = (expr);                                                                                    \
        if (st_ != TB_OK) return st_;                                                                              \
    } while (0)

/* The torch hyperparameters of [train] (hparams.h): absent keys keep the optimizer's torch default. */
static tb_status read_optimizer(const tb_config *cfg, tb_optim_config *oc, tb_err *err)
{
    int kind;
    TRY(tb_config_choice(cfg, "train", "optimizer", NULL, tb_hparams[TB_HPARAM_optimizer].choices, &kind, err));
    tb_optim_defaults(oc, (tb_optim_kind)kind);
#define READ_FLOAT(name, lo, hi) TRY(tb_config_double(cfg, "train", #name, oc->name, lo, hi, &oc->name, err));
#define READ_BOOL(name, lo, hi) TRY(tb_config_bool(cfg, "train", #name, oc->name, &oc->name, err));
#define READ(name, type, lo, hi, ...) READ_##type(name, lo, hi)
    TB_OPTIM_HPARAMS(READ)
#undef READ
#undef READ_FLOAT
#undef READ_BOOL
    char msg[256];
    if (tb_optim_validate(oc, msg, sizeof msg) != 0) return tb_fail(err, TB_EINVAL, "[train] %s", msg);
    return TB_OK;
}

/* "0.5,0.4,0.3" into up to 4 floats; returns the count or -1. */
static int parse_floats(const char *text, float *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || n == max) return -1;
        out[n++] = (float)v;
        while (*end == ' ') end++;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

static tb_status read_task_options(const tb_config *cfg, tb_task_options *o, tb_err *err)
{
    int64_t v;
    memset(o, 0, sizeof *o);
    TRY(tb_config_int(cfg, "task", "resolution", 0, 0, 1024, &v, err));
    o->resolution = (int)v;
    TRY(tb_config_double(cfg, "task", "val_fraction", 0.1, 0, 0.9, &o->val_fraction, err));
    TRY(tb_config_int(cfg, "task", "split_seed", 0, 0, INT64_MAX, &v, err));
    o->split_seed = (uint64_t)v;
    TRY(tb_config_int(cfg, "task", "folds", 0, 0, 100, &v, err));
    o->folds = (int)v;
    TRY(tb_config_int(cfg, "task", "fold", 0, 0, 99, &v, err));
    o->fold = (int)v;
    if (o->folds == 1) return tb_fail(err, TB_EINVAL, "task.folds = 1 is not allowed: use 0 (no folds) or >= 2");
    if (o->folds > 1 && o->fold >= o->folds)
        return tb_fail(err, TB_EINVAL, "task.fold = %d is outside [0, %d] (task.folds = %d)", o->fold, o->folds - 1,
                       o->folds);
    const char *mean, *std;
    TRY(tb_config_string(cfg, "task", "mean", NULL, &mean, err));
    TRY(tb_config_string(cfg, "task", "std", NULL, &std, err));
    if (!mean != !std) return tb_fail(err, TB_EINVAL, "task.mean and task.std must be given together");
    if (mean) {
        int nm = parse_floats(mean, o->mean, 4), ns = parse_floats(std, o->std, 4);
        if (nm < 1) return tb_fail(err, TB_EINVAL, "task.mean = \"%s\" is not 1 to 4 comma-separated numbers", mean);
        if (ns != nm)
            return tb_fail(err, TB_EINVAL, "task.std = \"%s\" must have as many numbers as task.mean (%d)", std, nm);
        for (int i = 0; i < ns; i++)
            if (!(o->std[i] > 0)) return tb_fail(err, TB_EINVAL, "task.std = \"%s\": every value must be > 0", std);
        o->has_norm = 1;
    }
    TRY(tb_config_bool(cfg, "task", "merge_val", 0, &o->merge_val, err));
    if (o->merge_val && o->folds > 1)
        return tb_fail(err, TB_EINVAL, "task.merge_val = true cannot be combined with task.folds = %d", o->folds);
    TRY(tb_config_int(cfg, "task", "crop_padding", 0, 0, 64, &v, err));
    o->crop_padding = (int)v;
    TRY(tb_config_bool(cfg, "task", "hflip", 0, &o->hflip, err));
    TRY(tb_config_bool(cfg, "task", "random_resized_crop", 0, &o->random_resized_crop, err));
    return TB_OK;
}

/* The plugin's own section must exist only for the chosen plugin; other plugin
 * sections are mistakes (a typo, or options of a plugin not in use). */
static tb_status check_sections(const tb_config *cfg, const tb_plugin_registry *reg, const char *model,
                                const char *task, tb_err *err)
{
    /* a study's configuration trains as a single run too: its [study], [space],
     * [slurm] and front-end sections are read by `tunebench study` and `sweep`, not here */
    const char *valid[64] = {"model", "task", "train", "output", "plugins", "study", "space", "slurm", model, task};
    int n = 10;
    for (int i = 0; i < reg->count && n < 64; i++)
        if (reg->plugins[i].desc.kind == TB_PLUGIN_FRONTEND) valid[n++] = reg->plugins[i].desc.name;
    return tb_config_check_sections(cfg, valid, n, err);
}

/* scoring: only what scoring weights needs (tb_run_configure_scoring): the optimizer and its
 * hyperparameters are neither required nor read */
static tb_status config_parse(tb_run_config *rc, const tb_config *cfg, int scoring, tb_err *err)
{
    memset(rc, 0, sizeof *rc);
    rc->cfg = cfg;
    const char *s;
    TRY(tb_config_check_section(cfg, "model", model_keys, (int)(sizeof model_keys / sizeof *model_keys), err));
    TRY(tb_config_check_section(cfg, "task", task_keys, (int)(sizeof task_keys / sizeof *task_keys), err));
    TRY(tb_config_check_section(cfg, "train", tb_run_train_keys, tb_run_train_key_count, err));
    TRY(tb_config_check_section(cfg, "output", output_keys, (int)(sizeof output_keys / sizeof *output_keys), err));
    TRY(tb_config_check_section(cfg, "plugins", plugins_keys, 1, err));
    TRY(tb_config_string(cfg, "model", "name", NULL, &rc->model, err));
    TRY(tb_config_string(cfg, "task", "name", NULL, &rc->task, err));
    if (!rc->model) return tb_fail(err, TB_EINVAL, "model.name is missing: name a model plugin (see tunebench plugins)");
    if (!rc->task) return tb_fail(err, TB_EINVAL, "task.name is missing: name a task plugin (see tunebench plugins)");

    /* training */
    tb_train_config *t = &rc->train;
    int64_t v;
    const tb_hparam_info *epochs = &tb_hparams[TB_HPARAM_epochs], *batch = &tb_hparams[TB_HPARAM_batch_size];
    TRY(tb_config_int(cfg, "train", "epochs", 1, (int64_t)epochs->lo, (int64_t)epochs->hi, &v, err));
    t->epochs = (int)v;
    TRY(tb_config_int(cfg, "train", "batch_size", 64, (int64_t)batch->lo, (int64_t)batch->hi, &v, err));
    t->batch_size = (int)v;
    TRY(tb_config_int(cfg, "train", "eval_batch_size", 0, 0, 1 << 20, &v, err));
    t->eval_batch_size = (int)v;
    int loss;
    TRY(tb_config_choice(cfg, "train", "loss", "cross_entropy", tb_hparams[TB_HPARAM_loss].choices, &loss, err));
    t->loss = (tb_loss_kind)loss;
    if (!scoring && !tb_config_get(cfg, "train", "optimizer"))
        return tb_fail(err, TB_EINVAL, "train.optimizer is missing; allowed: %s", tb_optim_names());
    if (!scoring) TRY(read_optimizer(cfg, &t->optim, err));
    /* hyperparameters given that the chosen optimizer does not read (train.momentum with adam): a
     * warning when the run starts and a note in the run file, never an error */
    for (int i = 0; i < TB_HPARAM_COUNT && !scoring; i++) {
        const tb_hparam_info *h = &tb_hparams[i];
        if (!h->is_optim || (h->read_by & (1u << (unsigned)t->optim.kind)) || !tb_config_get(cfg, "train", h->name))
            continue;
        size_t used = strlen(rc->ignored);
        if (used + strlen(h->name) + 3 < sizeof rc->ignored)
            snprintf(rc->ignored + used, sizeof rc->ignored - used, "%s%s", used ? ", " : "", h->name);
    }
    TRY(tb_config_int(cfg, "train", "seed", 0, 0, INT64_MAX, &v, err));
    t->seed = (uint64_t)v;
    TRY(tb_config_int(cfg, "train", "init_seed", (int64_t)t->seed, 0, INT64_MAX, &v, err));
    rc->init_seed = (uint64_t)v;
    TRY(tb_config_double(cfg, "train", "time_limit", 0, 0, 1e7, &t->time_limit_s, err));
    TRY(tb_config_int(cfg, "train", "threads", 0, 0, 1024, &v, err));
    rc->threads = (int)v;
    TRY(tb_config_string(cfg, "train", "device", "cpu", &s, err));
    TRY(tb_device_parse(s, "train.device", &rc->dev, err));
    TRY(tb_config_int(cfg, "train", "gpu_memory_mib", 0, 0, 16 << 20, &v, err));
    rc->gpu_memory_mib = (int)v;
    TRY(tb_config_bool(cfg, "train", "tf32", 0, &rc->tf32, err));

    /* model extras */
    TRY(tb_config_string(cfg, "model", "init_from", "", &s, err));
    snprintf(rc->init_from, sizeof rc->init_from, "%s", s);
    TRY(tb_config_string(cfg, "model", "freeze", "none", &s, err));
    snprintf(rc->freeze, sizeof rc->freeze, "%s", s);
    if (strcmp(rc->freeze, "none") != 0 && !rc->init_from[0])
        return tb_fail(err, TB_EINVAL,
                       "model.freeze = \"%s\" needs model.init_from: freezing randomly initialised layers "
                       "is almost certainly a mistake", rc->freeze);

    TRY(read_task_options(cfg, &rc->task_opt, err));

    /* output */
    TRY(tb_config_string(cfg, "output", "run", "runs/run.h5", &s, err));
    if (snprintf(rc->run_path, sizeof rc->run_path, "%s", s) >= (int)sizeof rc->run_path)
        return tb_fail(err, TB_EINVAL, "output.run is longer than %zu characters", sizeof rc->run_path - 1);
    TRY(tb_config_string(cfg, "output", "checkpoint", "", &s, err));
    snprintf(rc->checkpoint_path, sizeof rc->checkpoint_path, "%s", s);

    TRY(tb_config_string(cfg, "plugins", "path", NULL, &rc->plugin_path, err));
    return TB_OK;
}

/* The state_dict name of the last layer with parameters ("classifier.6"), or "(none)". */
static void final_layer(const tb_net *net, char *buf, size_t len)
{
    int node = -1;
    snprintf(buf, len, "(none)");
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->node < node) continue;
        node = p->node;
        snprintf(buf, len, "%s", p->name);
        char *dot = strrchr(buf, '.');
        if (dot) *dot = '\0';
    }
}

/* The model plugin's network for input `in` checked without a backend: the
 * builder's errors (naming the layer by its state_dict key) and the class
 * count. what says where the input comes from ("declared by task plugin
 * \"x\"", "of task plugin \"x\"'s data"), for the messages. classes_known 0:
 * in->classes is a stand-in, not compared. The network goes to *out (NULL:
 * freed). */
static tb_status model_fits(const tb_run *run, const tb_model_input *in, int classes_known, const char *what,
                            tb_net **out, tb_err *err)
{
    tb_net *net = NULL;
    const char *model = run->model_plugin->desc.name, *task = run->task_plugin->desc.name;
    char cls[48] = "";
    if (classes_known) snprintf(cls, sizeof cls, ", %d classes", in->classes);
    tb_err why;
    tb_status st = tb_plugin_build_model(run->model_plugin, run->model_args, in, &net, &why);
    if (st == TB_OK) st = tb_net_check(net, &why);
    if (st != TB_OK) {
        tb_net_free(net);
        /* the plugin's own message starts with its name (said once, here); the builder's names the layer */
        char prefix[96];
        snprintf(prefix, sizeof prefix, "model plugin \"%s\": ", model);
        const char *detail = strncmp(why.msg, prefix, strlen(prefix)) == 0 ? why.msg + strlen(prefix) : why.msg;
        return tb_fail(err, st, "model plugin \"%s\" does not fit the input %dx%dx%d%s %s: %s", model, in->channels,
                       in->height, in->width, cls, what, detail);
    }
    if (classes_known && tb_net_classes(net) != in->classes) {
        char last[TB_NAME_MAX];
        final_layer(net, last, sizeof last);
        int outputs = tb_net_classes(net);
        tb_net_free(net);
        return tb_fail(err, TB_EINVAL, "task plugin \"%s\" has %d classes (%s) but model plugin \"%s\" outputs %d "
                       "(its final layer %s; size it with the tb_model_input's classes)", task, in->classes,
                       strstr(what, "declared") ? "declared" : "in its data", model, outputs, last);
    }
    if (out) *out = net;
    else tb_net_free(net);
    return TB_OK;
}

/* What the task declares (describe_task; 0s for what it cannot tell before
 * loading), with [task] resolution applied, and the model built on it, so a
 * model that does not fit the task's images or classes is refused before
 * any data loads. Unknown sides skip the check (done after loading); an
 * unknown class count is stood in by 2 for the shape check alone. */
static tb_status check_declared(tb_run *run, tb_err *err)
{
    TRY(tb_plugin_describe_task(run->task_plugin, run->task_args, &run->declared, err));
    tb_task_shape d = run->declared;
    if (run->task_opt.resolution > 0 && d.height > 0 && d.width > 0) d.height = d.width = run->task_opt.resolution;
    if (d.channels < 1 || d.height < 1 || d.width < 1) return TB_OK;
    tb_model_input in = {d.channels, d.height, d.width, d.classes > 0 ? d.classes : 2};
    char what[128];
    snprintf(what, sizeof what, "declared by task plugin \"%s\"%s", run->task_plugin->desc.name,
             d.classes > 0 ? "" : " (its class count is known only once its data have loaded)");
    return model_fits(run, &in, d.classes > 0, what, NULL, err);
}

/* An executor's placement over the configuration: its thread share, its run
 * file, and for a run that asks for a GPU the slot's GPU and memory budget
 * (the slot's unless the run sets a smaller one). */
static tb_status place(tb_run *run, const tb_run_placement *p, tb_err *err)
{
    if (p->threads > 0) run->threads = p->threads;
    if (p->cache_dir && p->cache_dir[0]) TRY(tb_run_set_task_cache(run, p->cache_dir, err));
    if (p->run_path && p->run_path[0] &&
        snprintf(run->run_path, sizeof run->run_path, "%s", p->run_path) >= (int)sizeof run->run_path)
        return tb_fail(err, TB_EINVAL, "output.run is longer than %zu characters", sizeof run->run_path - 1);
    if (!p->device || !p->device[0] || !run->dev.cuda) return TB_OK;
    TRY(tb_device_parse(p->device, "train.device", &run->dev, err));
    if (p->gpu_memory_mib > 0 && (run->gpu_memory_mib == 0 || run->gpu_memory_mib > p->gpu_memory_mib))
        run->gpu_memory_mib = p->gpu_memory_mib;
    return TB_OK;
}

tb_status tb_run_configure_parsed(tb_run *run, const tb_run_config *rc, const tb_run_placement *placement,
                                  tb_err *err)
{
    memset(run, 0, sizeof *run);
    run->cfg = rc->cfg;
    run->train = rc->train;
    run->init_seed = rc->init_seed;
    memcpy(run->init_from, rc->init_from, sizeof run->init_from);
    memcpy(run->freeze, rc->freeze, sizeof run->freeze);
    memcpy(run->ignored, rc->ignored, sizeof run->ignored);
    run->task_opt = rc->task_opt;
    memcpy(run->run_path, rc->run_path, sizeof run->run_path);
    memcpy(run->checkpoint_path, rc->checkpoint_path, sizeof run->checkpoint_path);
    run->dev = rc->dev;
    run->gpu_memory_mib = rc->gpu_memory_mib;
    run->tf32 = rc->tf32;
    run->threads = rc->threads;
    if (placement) TRY(place(run, placement, err));
    TRY(tb_device_check(&run->dev, "train.device", err)); /* before any data is loaded */
    tb_device_format(&run->dev, run->device, sizeof run->device);

    /* plugins and their options */
    const tb_config *cfg = rc->cfg;
    TRY(tb_plugins_discover(&run->plugins, rc->plugin_path, err));
    TRY(tb_plugin_find(&run->plugins, TB_PLUGIN_MODEL, rc->model, &run->model_plugin, err));
    TRY(tb_plugin_find(&run->plugins, TB_PLUGIN_TASK, rc->task, &run->task_plugin, err));
    TRY(check_sections(cfg, &run->plugins, rc->model, rc->task, err));
    TRY(tb_plugin_args_resolve(run->model_plugin, cfg, rc->model, &run->model_args, err));
    TRY(tb_plugin_args_resolve(run->task_plugin, cfg, rc->task, &run->task_args, err));
    return check_declared(run, err); /* the model on the task's declared shape, before any data loads */
}

tb_status tb_run_config_check(const tb_run_config *rc, tb_err *err)
{
    tb_run run;
    tb_status st = tb_run_configure_parsed(&run, rc, NULL, err);
    tb_run_free(&run);
    return st;
}

tb_status tb_run_config_parse(tb_run_config *rc, const tb_config *cfg, tb_err *err)
{
    return config_parse(rc, cfg, 0, err);
}

tb_status tb_run_configure(tb_run *run, tb_config *cfg, tb_err *err)
{
    tb_run_config rc;
    memset(run, 0, sizeof *run);
    TRY(tb_run_config_parse(&rc, cfg, err));
    return tb_run_configure_parsed(run, &rc, NULL, err);
}

tb_status tb_run_configure_scoring(tb_run *run, tb_config *cfg, tb_err *err)
{
    tb_run_config rc;
    memset(run, 0, sizeof *run);
    TRY(config_parse(&rc, cfg, 1, err));
    return tb_run_configure_parsed(run, &rc, NULL, err);
}

tb_status tb_run_prepare(tb_run *run, tb_err *err)
{
    const tb_host_api *host = tb_host_api_get();
    TRY(tb_run_load_task(run, err)); /* from the task cache when the run has one */
    const tb_task *t = &run->task;
    if (t->raw.classes_guessed)
        host->log(TB_LOG_INFO, "task", "task %s: the class count %d is guessed (largest label + 1) and recorded as "
                  "such; set it in the task's options if a class is absent", run->task_plugin->desc.name,
                  t->raw.classes);
    if (t->train.count < 1) return tb_fail(err, TB_EFORMAT, "task %s has no training samples", run->task_plugin->desc.name);
    if (run->train.batch_size > t->train.count)
        return tb_fail(err, TB_EINVAL, "train.batch_size = %d is outside [1, %d] (the training set size)",
                       run->train.batch_size, t->train.count);

    tb_model_input in = {t->train.channels, t->train.height, t->train.width, t->train.classes};
    char what[96];
    snprintf(what, sizeof what, "of task plugin \"%s\"'s data", run->task_plugin->desc.name);
    TRY(model_fits(run, &in, 1, what, &run->net, err));
    tb_backend_options bo = {.threads = run->threads, .gpu_memory_budget = (size_t)run->gpu_memory_mib << 20,
                             .tf32 = run->tf32};
    TRY(tb_backend_create(&run->dev, &bo, &run->be, err));
    int max_batch = run->train.batch_size;
    if (run->train.eval_batch_size > max_batch) max_batch = run->train.eval_batch_size;
    TRY(tb_net_build(run->net, run->be, max_batch, err));
    tb_net_init_params(run->net, run->init_seed);

    if (run->init_from[0]) {
        const char *head = run->model_plugin->desc.head_prefixes;
        tb_checkpoint_load_report rep;
        TRY(tb_checkpoint_load_init(run->init_from, run->net, head ? head : "", &rep, err));
        snprintf(run->kept_head, sizeof run->kept_head, "%s", rep.reinitialised);
        if (rep.reinitialised[0])
            host->log(TB_LOG_INFO, "model", "init_from %s: re-initialised for another class count: %s", run->init_from,
                      rep.reinitialised);
        if (rep.n_defaulted) {
            host->log(TB_LOG_INFO, "model", "init_from %s: %d num_batches_tracked missing from the file, set to 0: %s",
                      run->init_from, rep.n_defaulted, rep.defaulted);
            snprintf(run->init_notes, sizeof run->init_notes, "num_batches_tracked missing, set to 0: %s",
                     rep.defaulted);
        }
        if (rep.n_converted) {
            host->log(TB_LOG_INFO, "model", "init_from %s: %d tensors converted to the network's types from %s",
                      run->init_from, rep.n_converted, rep.converted);
            size_t used = strlen(run->init_notes);
            snprintf(run->init_notes + used, sizeof run->init_notes - used, "%s%d tensors converted from %s",
                     used ? "; " : "", rep.n_converted, rep.converted);
        }
    }
    if (strcmp(run->freeze, "none") != 0) {
        const char *prefixes = run->freeze;
        if (strcmp(prefixes, "base") == 0) {
            prefixes = run->model_plugin->desc.base_prefixes;
            if (!prefixes)
                return tb_fail(err, TB_EINVAL, "model.freeze = base: model %s does not say which layers are its base; "
                               "give state_dict prefixes instead", run->model_plugin->desc.name);
        }
        if (tb_net_set_trainable(run->net, prefixes, 0) == 0)
            return tb_fail(err, TB_EINVAL, "model.freeze = \"%s\" matches no parameter of model %s", run->freeze,
                           run->model_plugin->desc.name);
    }
    return TB_OK;
}

/* ---- output paths ------------------------------------------------------------------ */

/* The root attribute "format" of an HDF5 file into out ("" when it has none
 * or is not HDF5); the file is only read. */
static void file_format(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    H5E_auto2_t fn;
    void *data;
    int saved = H5Eget_auto2(H5E_DEFAULT, &fn, &data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    hid_t a = f >= 0 && H5Aexists(f, "format") > 0 ? H5Aopen(f, "format", H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            if (H5Aread(a, t, &v) >= 0 && v) snprintf(out, cap, "%s", v);
            if (v) H5free_memory(v);
        } else {
            size_t n = H5Tget_size(t);
            char *v = n > 0 && n < 4096 ? calloc(1, n + 1) : NULL;
            if (v && H5Aread(a, t, v) >= 0) snprintf(out, cap, "%s", v);
            free(v);
        }
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (f >= 0) H5Fclose(f);
    if (saved) H5Eset_auto2(H5E_DEFAULT, fn, data);
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISREG(m) ? "a regular file"
         : "not a regular file";
}

#define ALLOWED "allowed: a new file, or a tunebench run file or checkpoint to replace"

/* The directory that will hold path: the nearest existing ancestor must be a
 * writable directory (the rest is created when the file is written). */
static tb_status check_dir(const char *field, const char *path, char dir[PATH_MAX], tb_err *err)
{
    char *slash;
    for (;;) {
        struct stat st;
        if (stat(dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return tb_fail(err, TB_EINVAL, "%s = \"%s\": %s is %s, not a directory, so no file can be made under it; %s", field,
                               path, dir, kind_of(st.st_mode), "allowed: a path in a writable directory");
            if (access(dir, W_OK | X_OK) != 0)
                return tb_fail(err, TB_EINVAL, "%s = \"%s\": the directory %s is not writable (%s); allowed: a path "
                               "in a writable directory", field, path, dir, strerror(errno));
            return TB_OK;
        }
        if (errno == ENOTDIR)
            return tb_fail(err, TB_EINVAL, "%s = \"%s\": a part of %s is not a directory; allowed: a path in a "
                           "writable directory", field, path, dir);
        if (errno != ENOENT)
            return tb_fail(err, TB_EINVAL, "%s = \"%s\": cannot look at %s: %s", field, path, dir, strerror(errno));
        /* missing: it will be created under its own parent */
        slash = strrchr(dir, '/');
        if (!slash) strcpy(dir, ".");
        else if (slash == dir) dir[1] = '\0';
        else *slash = '\0';
    }
}

tb_status tb_run_check_dir(const char *field, const char *path, tb_err *err)
{
    if (!path || !path[0]) return tb_fail(err, TB_EINVAL, "%s = \"\" is empty; allowed: a directory path", field);
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return tb_fail(err, TB_EINVAL, "%s = \"%.60s...\" is too long", field, path);
    return check_dir(field, path, dir, err);
}

static tb_status check_parent(const char *field, const char *path, tb_err *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    return check_dir(field, path, dir, err);
}

typedef struct run_input {
    const char *what, *path;
} run_input;

static tb_status check_output(const char *field, const char *path, const run_input *inputs, int n_inputs, int force,
                              tb_err *err)
{
    if (!path[0])
        return tb_fail(err, TB_EINVAL, "%s = \"\" is empty; allowed: the path of the %s to write", field,
                       strstr(field, "checkpoint") ? "checkpoint" : "run file");
    size_t len = strlen(path);
    if (len >= 1000)
        return tb_fail(err, TB_EINVAL, "%s = \"%.60s...\" is %zu characters long; allowed: at most 999", field, path,
                       len);
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n > TB_RUN_NAME_MAX)
            return tb_fail(err, TB_EINVAL, "%s = \"%.60s...\": the name \"%.40s...\" is %zu characters long; allowed: "
                           "at most %d characters per file or directory name", field, path, p, n, TB_RUN_NAME_MAX);
        p += n;
        while (*p == '/') p++;
    }
    if (path[len - 1] == '/')
        return tb_fail(err, TB_EINVAL, "%s = \"%s\" names a directory; allowed: a file name", field, path);
    struct stat st;
    if (stat(path, &st) != 0) {
        /* absent (a dangling symbolic link too: it is replaced, not followed), or under a non-directory */
        if (errno == ENOENT || errno == ENOTDIR) return check_parent(field, path, err);
        return tb_fail(err, TB_EINVAL, "%s = \"%s\": cannot look at it: %s", field, path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return tb_fail(err, TB_EINVAL, "%s = \"%s\" is %s, which tunebench never replaces; %s", field, path,
                       kind_of(st.st_mode), ALLOWED);
    for (int i = 0; i < n_inputs; i++) {
        struct stat in;
        if (inputs[i].path && inputs[i].path[0] && stat(inputs[i].path, &in) == 0 && in.st_dev == st.st_dev &&
            in.st_ino == st.st_ino)
            return tb_fail(err, TB_EINVAL, "%s = \"%s\" is the run's input %s (%s); %s that is not an input of the "
                           "run", field, path, inputs[i].what, inputs[i].path, ALLOWED);
    }
    char format[64];
    file_format(path, format, sizeof format);
    if (!force && strcmp(format, "tunebench-run") != 0 && strcmp(format, "tunebench-checkpoint") != 0)
        return tb_fail(err, TB_EINVAL, "%s = \"%s\" is a file tunebench did not write (%s%s%s); %s, or any regular "
                       "file with --force", field, path, format[0] ? "format \"" : "no format attribute", format,
                       format[0] ? "\"" : "", ALLOWED);
    return check_parent(field, path, err);
}

tb_status tb_run_check_outputs(const tb_run *run, const char *run_field, int force, tb_err *err)
{
    run_input in[2 + 16 + 16];
    int n = 0;
    in[n++] = (run_input){"the configuration file", tb_config_path(run->cfg)};
    in[n++] = (run_input){"model.init_from", run->init_from};
    char names[32][80];
    const tb_plugin_args *args[2] = {run->task_args, run->model_args};
    const char *sections[2] = {run->task_plugin ? run->task_plugin->desc.name : "task",
                               run->model_plugin ? run->model_plugin->desc.name : "model"};
    for (int a = 0; a < 2; a++) {
        const char *name, *value;
        for (int i = 0; i < 16 && tb_plugin_args_path(args[a], i, &name, &value); i++) {
            int k = n - 2;
            snprintf(names[k], sizeof names[0], "%s.%s", sections[a], name);
            in[n++] = (run_input){names[k], value};
        }
    }
    const char *field = run_field ? run_field : "output.run";
    TRY(check_output(field, run->run_path, in, n, force, err));
    if (run->checkpoint_path[0]) {
        if (strcmp(run->checkpoint_path, run->run_path) == 0)
            return tb_fail(err, TB_EINVAL, "output.checkpoint = \"%s\" is also %s; allowed: a file other than the "
                           "run file", run->checkpoint_path, field);
        TRY(check_output("output.checkpoint", run->checkpoint_path, in, n, force, err));
    }
    return TB_OK;
}

/* The run file from the run's pieces (store/runfile.h); train_status and
 * train_message say how training ended. */
static tb_status write_run_file(const tb_run *run, const tb_optimizer *opt, const tb_curves *curves,
                                tb_status train_status, const char *train_message, tb_err *err)
{
    char *ini = tb_config_to_ini(run->cfg);
    char *model_options = tb_plugin_args_describe(run->model_args);
    char *task_options = tb_plugin_args_describe(run->task_args);
    char details[8192] = "";
    if (run->be) run->be->ops->describe(run->be, details, sizeof details);
    const tb_plugin *mp = run->model_plugin, *tp = run->task_plugin;
    tb_runfile_contents c = {
        .status = train_status,
        .message = train_message,
        .config_ini = ini,
        .config_source = tb_config_path(run->cfg),
        .seed = run->train.seed,
        .init_seed = run->init_seed,
        .split_seed = run->task_opt.split_seed,
        .threads = run->be ? run->be->threads : 0,
        .backend = run->be ? run->be->name : "none",
        .device = run->device[0] ? run->device : "cpu",
        .backend_details = details,
        .model_plugin = {mp->desc.name, mp->desc.version, mp->path, model_options ? model_options : ""},
        .net = run->net,
        .freeze = run->freeze,
        .init_from = run->init_from,
        .head_reinitialised = run->kept_head,
        .init_notes = run->init_notes,
        .ignored_hparams = run->ignored,
        .task_plugin = {tp->desc.name, tp->desc.version, tp->path, task_options ? task_options : ""},
        .task = &run->task,
        .train = &run->train,
        .result = &run->result,
        .curves = curves,
        .test = run->tested ? &run->test : NULL,
        .optimizer = opt,
    };
    tb_status st = ini ? tb_runfile_write(run->run_path, &c, err)
                       : tb_fail(err, TB_ENOMEM, "run file %s: out of memory for the configuration", run->run_path);
    free(ini), free(model_options), free(task_options);
    return st;
}

/* Curves kept in memory for the run file. */
static void record_curves(void *user, const tb_train_event *ev) { tb_curves_add(user, ev); }

tb_status tb_run_execute(tb_run *run, const tb_train_hooks *hooks, tb_err *err)
{
    tb_curves curves;
    tb_curves_init(&curves);
    tb_train_hooks all = {0};
    if (hooks) all = *hooks;
    if (tb_train_hooks_add(&all, record_curves, &curves) != 0)
        return tb_fail(err, TB_EINVAL, "too many training listeners (at most %d)", TB_MAX_LISTENERS - 1);
    tb_optimizer opt;
    tb_status st = tb_optimizer_create(&opt, run->net, &run->train.optim, err);
    if (st != TB_OK) {
        tb_curves_free(&curves);
        return st;
    }
    const tb_dataset *val = run->task.val.count > 0 ? &run->task.val : NULL;
    tb_err train_err = {{0}};
    tb_status train_st = tb_train(run->net, &opt, &run->train, &run->task.train, val, &all, &run->result, &train_err);
    if (train_st == TB_OK && run->task.test.count > 0) {
        if (tb_metrics_init(&run->test, run->task.train.classes) != 0) {
            st = tb_fail(err, TB_ENOMEM, "out of memory");
            goto out;
        }
        run->tested = 1;
        if ((st = tb_evaluate(run->net, &run->task.test, run->train.loss, run->train.eval_batch_size, &run->test,
                              err)) != TB_OK)
            goto out;
    }
    /* a configuration tb_train refused before its first step (its own checks,
     * TB_EINVAL) never trained: no run file, as for everything refused before
     * (docs/run-files.md); any other outcome of training is written */
    if (train_st == TB_EINVAL && run->result.steps == 0) {
        st = tb_fail(err, TB_EINVAL, "%s", train_err.msg);
        goto out;
    }
    if ((st = write_run_file(run, &opt, &curves, train_st, train_err.msg, err)) != TB_OK) goto out;
    if (run->checkpoint_path[0] && (st = tb_checkpoint_save(run->checkpoint_path, run->net, &opt, err)) != TB_OK)
        goto out;
    if (train_st != TB_OK) {
        st = train_st;
        tb_fail(err, train_st, "%s", train_err.msg);
    }
out:
    tb_optimizer_destroy(&opt);
    tb_curves_free(&curves);
    return st;
}

void tb_run_free(tb_run *run)
{
    if (run->tested) tb_metrics_free(&run->test);
    tb_net_free(run->net);
    if (run->be) tb_backend_destroy(run->be);
    if (run->task_loaded) tb_task_free(&run->task);
    tb_plugin_args_free(run->model_args);
    tb_plugin_args_free(run->task_args);
    tb_plugins_free(&run->plugins);
    memset(run, 0, sizeof *run);
}
