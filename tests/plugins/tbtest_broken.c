/* tbtest_broken.c: one source, many deliberately broken plugins for
 * test_plugin_loader. CMake builds it once per case with -D switches:
 *   TBT_NAME="..."        the plugin's name (default "tbtest_broken")
 *   TBT_KIND=...          TB_PLUGIN_MODEL (default) or TB_PLUGIN_TASK
 *   TBT_NO_ENTRY          export no tunebench_plugin_entry (another symbol instead)
 *   TBT_NULL_DESC         the entry returns NULL
 *   TBT_MAJOR_DELTA=n     ABI major + n
 *   TBT_MINOR_DELTA=n     ABI minor + n
 *   TBT_NO_BUILD          a model without build_model
 *   TBT_NO_OPEN_TASK      no open_task (with TBT_KIND=TB_PLUGIN_TASK: a task without it)
 *   TBT_SHORT_DESC        an older, shorter descriptor (ends before open_task)
 *   TBT_OPTIONS=n         a broken option table: 1 an invalid name, 2 a name
 *                         declared twice, 3 empty choices ("a||b"), 4 min > max,
 *                         5 an unknown type, 6 n_options = 1 with options NULL,
 *                         7 a NaN bound; a default the option's own declaration
 *                         refuses: 8 an int outside its range, 9 not one of the
 *                         choices, 10 a float that does not parse, 11 an int list
 *                         item outside the range, 12 not a bool
 *   TBT_CLASSES=n         a model whose final layer (fc) has n outputs, whatever the task's classes
 *   TBT_UNDECLARED        options dropout and hidden, but build_model / open_task
 *                         read "dropuot" (a typo the host must catch); build_model
 *                         then succeeds, open_task fails as usual
 *   TBT_FRONTEND=n        a front end: 1 a working one (below), 2 without a
 *                         frontend table, 3 a table too small for run, 4 run unset
 * Without switches it is a valid model plugin: flatten, then one linear layer.
 *
 * The working front end (TBT_FRONTEND=1) has one option, mode:
 *   ok        returns TB_OK when it got the study API (and a zeroed error buffer)
 *   multiline writes a message with newlines, returns TB_EIO
 *   silent    writes nothing, returns TB_ECANCELLED
 *   long      fills the whole error buffer without a terminator, returns TB_EINVAL
 *   undeclared reads the undeclared option "mdoe", returns TB_OK
 * and fails with "the error buffer was not zeroed" when the host's buffer held anything. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tunebench_plugin.h"

#ifndef TBT_NAME
#define TBT_NAME "tbtest_broken"
#endif
#ifdef TBT_FRONTEND
#define TBT_KIND TB_PLUGIN_FRONTEND
#define TBT_NO_BUILD
#define TBT_NO_OPEN_TASK
#endif
#ifndef TBT_KIND
#define TBT_KIND TB_PLUGIN_MODEL
#endif
#ifndef TBT_MAJOR_DELTA
#define TBT_MAJOR_DELTA 0
#endif
#ifndef TBT_MINOR_DELTA
#define TBT_MINOR_DELTA 0
#endif
#ifdef TBT_SHORT_DESC
#define TBT_SIZE offsetof(tb_plugin_descriptor, open_task)
#else
#define TBT_SIZE sizeof(tb_plugin_descriptor)
#endif

#ifndef TBT_NO_BUILD
static tb_status build(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in, tb_net **out,
                       char *err, size_t errlen)
{
    (void)args;
#ifdef TBT_UNDECLARED
    if (host->arg_float(args, "dropuot") != 0.0) return TB_EINVAL; /* undeclared: 0, and the host remembers */
    if (host->arg_int(args, "hidden") != 8) return TB_EINVAL;      /* declared: read as usual */
#endif
    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    tb_init_spec init = {TB_INIT_DEFAULT, 0, TB_INIT_DEFAULT, 0};
    int x = host->net_flatten(net, TB_NET_INPUT);
#ifdef TBT_CLASSES
    host->net_linear(net, x, "fc", TBT_CLASSES, 1, init);
#else
    host->net_linear(net, x, "fc", in->classes, 1, init);
#endif
    *out = net;
    return TB_OK;
}
#endif

#ifndef TBT_NO_OPEN_TASK
static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    (void)host;
    (void)args;
    (void)out;
#ifdef TBT_UNDECLARED
    (void)host->arg_string(args, "dropuot");
#endif
    snprintf(err, errlen, "this test plugin has no data");
    return TB_EIO;
}
#endif

/* ---- option tables --------------------------------------------------------------- */

#if defined(TBT_OPTIONS) && TBT_OPTIONS != 6
static const tb_plugin_option options[] = {
    {"width", TB_OPTION_INT, "4", 1, 64, NULL, "a valid option first"},
#if TBT_OPTIONS == 1
    {"Bad-Opt", TB_OPTION_INT, "1", 0, 0, NULL, "an invalid name"},
#elif TBT_OPTIONS == 2
    {"width", TB_OPTION_INT, "8", 1, 64, NULL, "declared twice"},
#elif TBT_OPTIONS == 3
    {"act", TB_OPTION_CHOICE, "a", 0, 0, "a||b", "an empty choice"},
#elif TBT_OPTIONS == 4
    {"rate", TB_OPTION_FLOAT, "1", 2, 1, NULL, "min > max"},
#elif TBT_OPTIONS == 5
    {"mystery", (tb_option_type)99, "1", 0, 0, NULL, "an unknown type"},
#elif TBT_OPTIONS == 7
    {"rate", TB_OPTION_FLOAT, "1", NAN, 1, NULL, "a NaN bound"},
#elif TBT_OPTIONS == 8
    {"depth", TB_OPTION_INT, "100", 1, 64, NULL, "a default outside its range"},
#elif TBT_OPTIONS == 9
    {"act", TB_OPTION_CHOICE, "gelu", 0, 0, "relu|none", "a default that is not a choice"},
#elif TBT_OPTIONS == 10
    {"rate", TB_OPTION_FLOAT, "fast", 0, 1, NULL, "a default that is not a number"},
#elif TBT_OPTIONS == 11
    {"widths", TB_OPTION_INT_LIST, "4,100", 1, 64, NULL, "a list default with an item outside the range"},
#elif TBT_OPTIONS == 12
    {"shuffle", TB_OPTION_BOOL, "maybe", 0, 0, NULL, "a default that is not a bool"},
#endif
};
#define TBT_OPTION_TABLE options
#define TBT_N_OPTIONS ((int)(sizeof options / sizeof options[0]))
#elif defined(TBT_OPTIONS)
#define TBT_OPTION_TABLE NULL
#define TBT_N_OPTIONS 1
#elif defined(TBT_UNDECLARED)
static const tb_plugin_option options[] = {
    {"dropout", TB_OPTION_FLOAT, "0.5", 0, 1, NULL, "the option the plugin meant"},
    {"hidden", TB_OPTION_INT, "8", 1, 64, NULL, "another declared option"},
};
#define TBT_OPTION_TABLE options
#define TBT_N_OPTIONS 2
#endif

/* ---- front ends ---------------------------------------------------------------------- */

#ifdef TBT_FRONTEND
#if TBT_FRONTEND == 1
static const tb_plugin_option options[] = {
    {"mode", TB_OPTION_CHOICE, "ok", 0, 0, "ok|multiline|silent|long|undeclared", "what run does"},
};
#define TBT_OPTION_TABLE options
#define TBT_N_OPTIONS 1
#endif

#if TBT_FRONTEND != 2 /* 2: no table at all */
#if TBT_FRONTEND != 4
static tb_status run(const tb_host_api *host, const tb_study_api *study, const tb_plugin_args *args, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < errlen; i++)
        if (err[i]) {
            snprintf(err, errlen, "the error buffer was not zeroed (byte %zu)", i);
            return TB_EINVAL;
        }
    const char *mode = host->arg_string(args, "mode");
    if (!mode || !strcmp(mode, "ok")) {
        if (!study || study->version != TB_STUDY_API_VERSION) {
            snprintf(err, errlen, "no study API");
            return TB_EINVAL;
        }
        return TB_OK;
    }
    if (!strcmp(mode, "multiline")) {
        snprintf(err, errlen, "first line\nsecond line\r\n");
        return TB_EIO;
    }
    if (!strcmp(mode, "silent")) return TB_ECANCELLED;
    if (!strcmp(mode, "undeclared")) return host->arg_is_set(args, "mdoe") ? TB_EINVAL : TB_OK; /* a typo */
    memset(err, 'x', errlen); /* long: no terminator */
    return TB_EINVAL;
}
#endif

static const tb_frontend_api frontend = {
#if TBT_FRONTEND == 3
    .size = offsetof(tb_frontend_api, run), /* ends before run */
#else
    .size = sizeof(tb_frontend_api),
#endif
#if TBT_FRONTEND != 4
    .run = run,
#endif
};
#endif
#endif

static const tb_plugin_descriptor descriptor = {
    .abi_major = TB_PLUGIN_ABI_MAJOR + TBT_MAJOR_DELTA,
    .abi_minor = TB_PLUGIN_ABI_MINOR + TBT_MINOR_DELTA,
    .size = TBT_SIZE,
    .kind = TBT_KIND,
    .name = TBT_NAME,
    .version = "0.0.1",
    .license = "MIT",
    .description = "a deliberately broken plugin for the loader tests",
#ifdef TBT_OPTION_TABLE
    .options = TBT_OPTION_TABLE,
    .n_options = TBT_N_OPTIONS,
#endif
#ifndef TBT_NO_BUILD
    .build_model = build,
#endif
#ifndef TBT_NO_OPEN_TASK
    .open_task = open_task,
#endif
#if defined(TBT_FRONTEND) && TBT_FRONTEND != 2
    .frontend = &frontend,
#endif
};

#ifdef TBT_NO_ENTRY
/* exported, but under the wrong name */
TB_PLUGIN_EXPORT const tb_plugin_descriptor *plugin_entry(void);
TB_PLUGIN_EXPORT const tb_plugin_descriptor *plugin_entry(void) { return &descriptor; }
#else
TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void);
TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void)
{
#ifdef TBT_NULL_DESC
    (void)descriptor;
    return NULL;
#else
    return &descriptor;
#endif
}
#endif
