/* plugin_options.c: a plugin's options resolved from its configuration
 * section: declared types and ranges checked, defaults filled, paths expanded. */
#include "plugin_internal.h"

#define MAX_OPTIONS_LISTED 256 /* the loader refuses more (loader.c MAX_OPTIONS) */

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>


void tb_plugin_args_free(tb_plugin_args *args)
{
    if (!args) return;
    for (int i = 0; i < args->n; i++) {
        free(args->a[i].text);
        free(args->a[i].list);
    }
    free(args->a);
    free(args);
}

static void int_range(const tb_plugin_option *o, int64_t *lo, int64_t *hi)
{
    if (o->min == 0 && o->max == 0) {
        *lo = INT64_MIN;
        *hi = INT64_MAX;
        return;
    }
    *lo = o->min <= -9.2e18 ? INT64_MIN : (int64_t)ceil(o->min);
    *hi = o->max >= 9.2e18 ? INT64_MAX : (int64_t)floor(o->max);
}

static void float_range(const tb_plugin_option *o, double *lo, double *hi)
{
    if (o->min == 0 && o->max == 0) {
        *lo = -DBL_MAX;
        *hi = DBL_MAX;
        return;
    }
    *lo = o->min;
    *hi = o->max;
}

/* "~" or "~/x" with $HOME; malloc'd. */
static char *expand_home(const char *path)
{
    const char *home = getenv("HOME");
    if (path[0] != '~' || (path[1] && path[1] != '/') || !home || !*home) return strdup(path);
    size_t n = strlen(home) + strlen(path);
    char *r = malloc(n + 1);
    if (r) snprintf(r, n + 1, "%s%s", home, path + 1);
    return r;
}

/* Reads option o of section from src into a (already validated by the accessors). */
static tb_status resolve_one(const tb_config *src, const char *section, const tb_plugin_option *o, tb_arg *a,
                             tb_err *err)
{
    tb_status s = TB_OK;
    const char *raw = tb_config_get(src, section, o->name);
    switch (o->type) {
    case TB_OPTION_INT: {
        int64_t lo, hi;
        int_range(o, &lo, &hi);
        s = tb_config_int(src, section, o->name, 0, lo, hi, &a->i, err);
        a->f = (double)a->i;
        break;
    }
    case TB_OPTION_FLOAT: {
        double lo, hi;
        float_range(o, &lo, &hi);
        s = tb_config_double(src, section, o->name, 0, lo, hi, &a->f, err);
        /* arg_int of a FLOAT: truncated, clamped (a cast of |f| >= 2^63 is undefined; without a range any
         * finite double gets here) */
        a->i = a->f >= 0x1p63 ? INT64_MAX : a->f < -0x1p63 ? INT64_MIN : (int64_t)a->f;
        break;
    }
    case TB_OPTION_BOOL:
        s = tb_config_bool(src, section, o->name, 0, &a->b, err);
        a->i = a->b;
        break;
    case TB_OPTION_CHOICE: {
        int idx = -1;
        s = tb_config_choice(src, section, o->name, NULL, o->choices, &idx, err);
        if (s == TB_OK) {
            /* keep the spelling the plugin declared */
            const char *p = o->choices;
            for (int k = 0; k < idx; k++) p = strchr(p, '|') + 1;
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            a->text = malloc(n + 1);
            if (!a->text) return tb_fail(err, TB_ENOMEM, "out of memory");
            memcpy(a->text, p, n);
            a->text[n] = '\0';
            a->i = idx;
        }
        break;
    }
    case TB_OPTION_INT_LIST: {
        int64_t lo, hi;
        int_range(o, &lo, &hi);
        a->list = malloc(sizeof *a->list * MAX_LIST);
        if (!a->list) return tb_fail(err, TB_ENOMEM, "out of memory");
        s = tb_config_int_list(src, section, o->name, NULL, lo, hi, a->list, MAX_LIST, &a->n_list, err);
        break;
    }
    case TB_OPTION_PATH:
        a->text = expand_home(raw ? raw : "");
        if (!a->text) return tb_fail(err, TB_ENOMEM, "out of memory");
        break;
    case TB_OPTION_STRING:
        break;
    }
    if (s == TB_OK && !a->text) {
        a->text = strdup(raw ? raw : "");
        if (!a->text) return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    return s;
}

/* The range an option's message shows: "[lo, hi]", or "any" without one. */
static void range_text(const tb_plugin_option *o, char *buf, size_t len)
{
    if (o->min == 0 && o->max == 0) snprintf(buf, len, "any");
    else if (o->type == TB_OPTION_FLOAT) snprintf(buf, len, "[%g, %g]", o->min, o->max);
    else {
        int64_t lo, hi;
        int_range(o, &lo, &hi);
        snprintf(buf, len, "[%" PRId64 ", %" PRId64 "]", lo, hi);
    }
}

/* Resolves value as option o would be from a configuration; TB_OK when it is valid. */
static tb_status try_value(const tb_plugin_option *o, const char *value)
{
    tb_config *cfg = tb_config_new();
    if (!cfg) return TB_ENOMEM;
    char key[NAME_MAX_LEN + 8];
    snprintf(key, sizeof key, "default.%s", o->name);
    tb_err e;
    tb_arg a;
    memset(&a, 0, sizeof a);
    tb_status s = tb_config_set(cfg, key, value, &e);
    if (s == TB_OK) s = resolve_one(cfg, "default", o, &a, &e);
    free(a.text);
    free(a.list);
    tb_config_free(cfg);
    return s;
}

int tb_plugin_option_check_default(const tb_plugin_option *o, char *why, size_t len)
{
    const char *def = o->default_value;
    if (!def || o->type == TB_OPTION_STRING || o->type == TB_OPTION_PATH) return 0; /* required, or any text */
    if (try_value(o, def) == TB_OK) return 0;
    const char *type = o->type == TB_OPTION_INT ? "int" : o->type == TB_OPTION_FLOAT ? "float" : "int list";
    char range[96];
    range_text(o, range, sizeof range);
    if (o->type == TB_OPTION_CHOICE) {
        snprintf(why, len, "option \"%s\" has the default \"%s\", which is not one of its choices %s", o->name, def,
                 o->choices);
        return -1;
    }
    if (o->type == TB_OPTION_BOOL) {
        snprintf(why, len, "option \"%s\" has the default \"%s\", which is not a bool (true/false, yes/no, on/off, 1/0)", o->name, def);
        return -1;
    }
    /* a number: unparseable, or outside the range? (the same value without a range tells) */
    tb_plugin_option any = *o;
    any.min = any.max = 0;
    if (try_value(&any, def) != TB_OK)
        snprintf(why, len, "option \"%s\" has the default \"%s\", which is not a valid %s (range %s)", o->name, def,
                 type, range);
    else
        snprintf(why, len, "option \"%s\" has the default %s, outside its range %s", o->name, def, range);
    return -1;
}

tb_status tb_plugin_args_resolve_ex(const tb_plugin *plugin, const tb_config *cfg, const char *section,
                                    const char *const *host_keys, int n_host_keys, tb_plugin_args **out,
                                    tb_err *err)
{
    *out = NULL;
    const tb_plugin_descriptor *d = &plugin->desc;
    const char *kind = tb_plugin_kind_name(d->kind);
    if (n_host_keys < 0) n_host_keys = 0;
    int n_valid = n_host_keys + d->n_options;
    const char **valid = malloc(sizeof *valid * (size_t)(n_valid + 1));
    if (!valid) return tb_fail(err, TB_ENOMEM, "out of memory");
    for (int i = 0; i < n_host_keys; i++) valid[i] = host_keys[i];
    for (int i = 0; i < d->n_options; i++) valid[n_host_keys + i] = d->options[i].name;
    tb_status s = tb_config_check_section(cfg, section, valid, n_valid, err);
    free(valid);
    if (s != TB_OK) return s;

    tb_plugin_args *args = calloc(1, sizeof *args);
    tb_config *defaults = tb_config_new();
    if (!args || !defaults || (d->n_options > 0 && !(args->a = calloc((size_t)d->n_options, sizeof *args->a)))) {
        free(args);
        tb_config_free(defaults);
        return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    snprintf(args->plugin, sizeof args->plugin, "%s", d->name);
    args->n = d->n_options;
    for (int i = 0; i < d->n_options && s == TB_OK; i++) {
        const tb_plugin_option *o = &d->options[i];
        tb_arg *a = &args->a[i];
        a->opt = o;
        const char *given = tb_config_get(cfg, section, o->name);
        if (given) {
            a->is_set = 1;
            s = resolve_one(cfg, section, o, a, err);
            continue;
        }
        if (!o->default_value) {
            s = tb_fail(err, TB_EINVAL, "%s.%s is required by %s plugin \"%s\" (add %s = ... to [%s])%s%s", section,
                        o->name, kind, d->name, o->name, section, o->help ? ": " : "", o->help ? o->help : "");
            continue;
        }
        char key[NAME_MAX_LEN * 2 + 2];
        snprintf(key, sizeof key, "%s.%s", section, o->name);
        tb_err e;
        s = tb_config_set(defaults, key, o->default_value, &e);
        if (s == TB_OK) s = resolve_one(defaults, section, o, a, &e);
        if (s != TB_OK)
            tb_fail(err, s, "%s plugin \"%s\" has an invalid default (a bug in the plugin): %s", kind, d->name, e.msg);
    }
    tb_config_free(defaults);
    if (s != TB_OK) {
        tb_plugin_args_free(args);
        return s;
    }
    *out = args;
    return TB_OK;
}

void tb_plugin_args_record_misuse(const tb_plugin_args *cargs, const char *name)
{
    /* args are const to the plugin, not to the host that allocated them */
    tb_plugin_args *args = (tb_plugin_args *)cargs;
    if (!args) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&args->misuse_state, &expected, 1)) return; /* not the first */
    snprintf(args->misuse_name, sizeof args->misuse_name, "%s", name ? name : "(null)");
    atomic_store_explicit(&args->misuse_state, 2, memory_order_release);
}

int tb_plugin_args_misuse(const tb_plugin_args *cargs, char *msg, size_t len)
{
    tb_plugin_args *args = (tb_plugin_args *)cargs;
    if (!args) return 0;
    int state;
    while ((state = atomic_load_explicit(&args->misuse_state, memory_order_acquire)) == 1)
        sched_yield(); /* another thread is writing the name: a few instructions */
    if (state == 0) return 0;
    const char *names[MAX_OPTIONS_LISTED];
    int n = args->n < MAX_OPTIONS_LISTED ? args->n : MAX_OPTIONS_LISTED;
    size_t used = 0;
    msg[0] = '\0';
    tb_appendf(msg, len, &used, "read option \"%s\", which it does not declare (declared: ", args->misuse_name);
    for (int i = 0; i < n; i++) {
        names[i] = args->a[i].opt->name;
        tb_appendf(msg, len, &used, "%s%s", i ? ", " : "", names[i]);
    }
    if (args->n == 0) tb_appendf(msg, len, &used, "none");
    else if (args->n > n) tb_appendf(msg, len, &used, ", ...");
    const char *near = tb_nearest(args->misuse_name, names, n);
    if (near) tb_appendf(msg, len, &used, "; did you mean %s?", near);
    tb_appendf(msg, len, &used, ")");
    return 1;
}

tb_status tb_plugin_args_resolve(const tb_plugin *plugin, const tb_config *cfg, const char *section,
                                 tb_plugin_args **out, tb_err *err)
{
    return tb_plugin_args_resolve_ex(plugin, cfg, section, NULL, 0, out, err);
}

char *tb_plugin_args_describe(const tb_plugin_args *args)
{
    size_t len = 1;
    int n = args ? args->n : 0;
    for (int i = 0; i < n; i++) len += strlen(args->a[i].opt->name) + strlen(args->a[i].text) + 4;
    char *buf = malloc(len);
    if (!buf) return NULL;
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) tb_appendf(buf, len, &used, "%s = %s\n", args->a[i].opt->name, args->a[i].text);
    return buf;
}

int tb_plugin_args_path(const tb_plugin_args *args, int i, const char **name, const char **value)
{
    int n = args ? args->n : 0;
    for (int k = 0; k < n; k++) {
        const tb_arg *a = &args->a[k];
        if (a->opt->type != TB_OPTION_PATH || !a->text || !a->text[0] || i-- > 0) continue;
        *name = a->opt->name;
        *value = a->text;
        return 1;
    }
    return 0;
}
