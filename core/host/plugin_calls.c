/* plugin_calls.c: calling a plugin's entry points (build a model, open a
 * task, run a front end): each call gets a zeroed error buffer, its message
 * comes back as one line naming the plugin, and what it returns is checked. */
#include "plugin_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/task.h"
#include "engine/net.h"

/* ---- calling plugins --------------------------------------------------------------------- */

/* A plugin's error text made safe: terminated, one line. */
static const char *clean_message(char *msg, size_t len, tb_status s)
{
    msg[len - 1] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return msg[0] ? msg : tb_status_name(s);
}

/* After a plugin call: fails (naming the plugin) when it read an undeclared option through args. */
static tb_status check_misuse(const tb_plugin_descriptor *d, const tb_plugin_args *args, tb_err *err)
{
    char why[sizeof err->msg];
    if (!tb_plugin_args_misuse(args, why, sizeof why)) return TB_OK;
    return tb_fail(err, TB_EINVAL, "%s plugin \"%s\" %s (a bug in the plugin)", tb_plugin_kind_name(d->kind), d->name,
                   why);
}

/* A call made without arguments gets the plugin's defaults (resolved from an
 * empty section named `section`); *own is then theirs to free afterwards. */
static tb_status default_args(const tb_plugin *plugin, const char *section, const tb_plugin_args **args,
                              tb_plugin_args **own, tb_err *err)
{
    *own = NULL;
    if (*args) return TB_OK;
    tb_status s = tb_plugin_args_resolve(plugin, NULL, section, own, err);
    if (s == TB_OK) *args = *own;
    return s;
}

tb_status tb_plugin_build_model(const tb_plugin *plugin, const tb_plugin_args *args, const tb_model_input *in,
                                tb_net **out, tb_err *err)
{
    *out = NULL;
    const tb_plugin_descriptor *d = &plugin->desc;
    if (d->kind != TB_PLUGIN_MODEL || !d->build_model)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" is a %s plugin, not a model plugin", d->name,
                       tb_plugin_kind_name(d->kind));
    if (in->channels < 1 || in->height < 1 || in->width < 1 || in->classes < 1)
        return tb_fail(err, TB_EINVAL, "model plugin \"%s\": invalid input %dx%dx%d with %d classes", d->name,
                       in->channels, in->height, in->width, in->classes);
    tb_plugin_args *own = NULL;
    tb_status resolved = default_args(plugin, "model", &args, &own, err);
    if (resolved != TB_OK) return resolved;
    char msg[512] = "";
    tb_net *net = NULL;
    tb_model_input copy = *in;
    tb_status s = d->build_model(tb_host_api_get(), args, &copy, &net, msg, sizeof msg);
    tb_status misuse = check_misuse(d, args, err);
    tb_plugin_args_free(own);
    if (s != TB_OK || misuse != TB_OK) {
        if (net) tb_net_free(net);
        if (misuse != TB_OK) return misuse;
        return tb_fail(err, s, "model plugin \"%s\": %s", d->name, clean_message(msg, sizeof msg, s));
    }
    if (!net) return tb_fail(err, TB_EINVAL, "model plugin \"%s\" returned no network (a bug in the plugin)", d->name);
    *out = net;
    return TB_OK;
}

tb_status tb_plugin_run_frontend(const tb_plugin *plugin, const tb_study_api *api, const tb_plugin_args *args,
                                 tb_err *err)
{
    const tb_plugin_descriptor *d = &plugin->desc;
    if (d->kind != TB_PLUGIN_FRONTEND || !d->frontend || !d->frontend->run)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" is a %s plugin, not a frontend plugin", d->name,
                       tb_plugin_kind_name(d->kind));
    tb_plugin_args *own = NULL;
    tb_status resolved = default_args(plugin, d->name, &args, &own, err);
    if (resolved != TB_OK) return resolved;
    char msg[512] = "";
    tb_status s = d->frontend->run(tb_host_api_get(), api, args, msg, sizeof msg);
    tb_status misuse = check_misuse(d, args, err);
    tb_plugin_args_free(own);
    if (misuse != TB_OK) return misuse;
    if (s != TB_OK) return tb_fail(err, s, "frontend plugin \"%s\": %s", d->name, clean_message(msg, sizeof msg, s));
    return TB_OK;
}


static int bad(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Checks what a task plugin returned; 0 when fine, else a message in why. */
static int check_task_data(const tb_task_data *t, char *why, size_t len)
{
    if (t->count < 1) return bad(why, len, "count = %d (no samples)", t->count);
    if (t->channels < 1 || t->channels > 4) return bad(why, len, "channels = %d is outside [1, 4]", t->channels);
    if (t->height < 1 || t->height > 16384 || t->width < 1 || t->width > 16384)
        return bad(why, len, "image size %dx%d is outside [1, 16384]", t->height, t->width);
    if (t->classes < 1 || t->classes > 1000000)
        return bad(why, len, "classes = %d is outside [1, 1000000]", t->classes);
    size_t per = (size_t)t->channels * (size_t)t->height * (size_t)t->width;
    if ((size_t)t->count > SIZE_MAX / 4 / per) return bad(why, len, "%d images of %zu bytes overflow", t->count, per);
    if ((!t->pixels && !t->pixels_f32) || !t->labels || !t->splits)
        return bad(why, len, "%s is NULL%s",
                   !t->pixels && !t->pixels_f32 ? "pixels" : !t->labels ? "labels" : "splits",
                   !t->pixels && !t->pixels_f32 ? " (and so is pixels_f32)" : "");
    if (t->pixels && t->pixels_f32) return bad(why, len, "both pixels and pixels_f32 are set; set one");
    if (t->pixels_f32) {
        const size_t total = per * (size_t)t->count;
        for (size_t j = 0; j < total; j++)
            if (!isfinite(t->pixels_f32[j]))
                return bad(why, len, "pixels_f32 value %g of sample %zu (value %zu of the sample) is not finite",
                           (double)t->pixels_f32[j], j / per, j % per);
    }
    for (int i = 0; i < t->count; i++) {
        if (t->labels[i] < 0 || t->labels[i] >= t->classes)
            return bad(why, len, "label %d of sample %d is outside [0, %d)", (int)t->labels[i], i, t->classes);
        if (t->splits[i] > TB_SPLIT_TEST)
            return bad(why, len, "split %d of sample %d is not 0 (train), 1 (val) or 2 (test)", t->splits[i], i);
    }
    if (t->class_names)
        for (int i = 0; i < t->classes; i++)
            if (!t->class_names[i]) return bad(why, len, "class_names[%d] is NULL", i);
    if (t->has_norm)
        for (int c = 0; c < t->channels; c++)
            if (!isfinite(t->mean[c]) || !isfinite(t->std[c]) || !(t->std[c] > 0))
                return bad(why, len, "normalisation of channel %d (mean %g, std %g) is invalid", c,
                           (double)t->mean[c], (double)t->std[c]);
    return 0;
}

tb_status tb_plugin_describe_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_shape *out,
                                  tb_err *err)
{
    memset(out, 0, sizeof *out);
    const tb_plugin_descriptor *d = &plugin->desc;
    if (d->kind != TB_PLUGIN_TASK)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" is a %s plugin, not a task plugin", d->name,
                       tb_plugin_kind_name(d->kind));
    if (!d->describe_task) return TB_OK; /* a plugin built before ABI minor 7: nothing declared */
    tb_plugin_args *own = NULL;
    tb_status resolved = default_args(plugin, "task", &args, &own, err);
    if (resolved != TB_OK) return resolved;
    char msg[512] = "";
    tb_status s = d->describe_task(tb_host_api_get(), args, out, msg, sizeof msg);
    tb_status misuse = check_misuse(d, args, err);
    tb_plugin_args_free(own);
    if (s != TB_OK || misuse != TB_OK) {
        memset(out, 0, sizeof *out);
        if (misuse != TB_OK) return misuse;
        return tb_fail(err, s, "task plugin \"%s\": %s", d->name, clean_message(msg, sizeof msg, s));
    }
    if (out->channels < 0 || out->channels > 4 || out->height < 0 || out->height > 16384 || out->width < 0 ||
        out->width > 16384 || out->classes < 0 || out->classes > 1000000) {
        tb_status bad_st = tb_fail(err, TB_EFORMAT, "task plugin \"%s\" declared an impossible shape %dx%dx%d with %d "
                                   "classes (allowed: channels 0..4, sides 0..16384, classes 0..1000000; 0: unknown; a "
                                   "bug in the plugin)", d->name, out->channels, out->height, out->width, out->classes);
        memset(out, 0, sizeof *out);
        return bad_st;
    }
    return TB_OK;
}

tb_status tb_plugin_check_declared(const tb_plugin *plugin, const tb_task_shape *declared, const tb_task_data *data,
                                   tb_err *err)
{
    const int got[4] = {data->channels, data->height, data->width, data->classes};
    const int want[4] = {declared->channels, declared->height, declared->width, declared->classes};
    static const char *const what[4] = {"channels", "height", "width", "classes"};
    for (int i = 0; i < 4; i++)
        if (want[i] > 0 && got[i] != want[i])
            return tb_fail(err, TB_EFORMAT, "task plugin \"%s\" declared %s = %d (describe_task) but its data have "
                           "%d (a bug in the plugin)", plugin->desc.name, what[i], want[i], got[i]);
    return TB_OK;
}

tb_status tb_plugin_open_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_data *out,
                              tb_err *err)
{
    memset(out, 0, sizeof *out);
    const tb_plugin_descriptor *d = &plugin->desc;
    if (d->kind != TB_PLUGIN_TASK || !d->open_task)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" is a %s plugin, not a task plugin", d->name,
                       tb_plugin_kind_name(d->kind));
    tb_plugin_args *own = NULL;
    tb_status resolved = default_args(plugin, "task", &args, &own, err);
    if (resolved != TB_OK) return resolved;
    char msg[512] = "";
    tb_status s = d->open_task(tb_host_api_get(), args, out, msg, sizeof msg);
    tb_status misuse = check_misuse(d, args, err);
    tb_plugin_args_free(own);
    if (s != TB_OK) {
        /* on failure the plugin keeps (and has released) what it allocated */
        memset(out, 0, sizeof *out);
        if (misuse != TB_OK) return misuse;
        return tb_fail(err, s, "task plugin \"%s\": %s", d->name, clean_message(msg, sizeof msg, s));
    }
    if (misuse != TB_OK) {
        tb_task_data_free(out);
        return misuse;
    }
    out->source[sizeof out->source - 1] = '\0';
    out->classes_guessed = out->classes_guessed != 0;
    char why[256];
    if (check_task_data(out, why, sizeof why) != 0) {
        tb_task_data_free(out);
        return tb_fail(err, TB_EFORMAT, "task plugin \"%s\" returned invalid data: %s (a bug in the plugin)", d->name,
                       why);
    }
    return TB_OK;
}
