/* cmd_plugins.c: `tunebench plugins`, the list of plugins the loader finds,
 * with their options, and what went wrong with the files it could not load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "host/plugin.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench plugins [--plugin-path P] [--help]\n"
            "\n"
            "Lists every plugin found, by kind: name, version, licence, file, description\n"
            "and options (name, type, default, allowed values, help), then the files that\n"
            "could not be loaded and why.\n"
            "\n"
            "  --plugin-path P   also search P first: plugin files or directories, ':'-separated\n"
            "  --help            this text\n"
            "\n"
            "Search order (every folder searched is printed, in order): --plugin-path, then\n"
            "TUNEBENCH_PLUGIN_PATH (':'-separated), then the folder relative to this executable\n"
            "(<prefix>/lib/tunebench/plugins installed, build/plugins in a build tree), and only\n"
            "when nothing was found the install directory compiled in (" TB_INSTALL_PLUGIN_DIR ").\n"
            "Exit codes: 0 listed, 1 no plugin found, a file failed to load or a --plugin-path\n"
            "entry is missing, 2 bad usage.\n");
}

static const char *type_name(tb_option_type t)
{
    switch (t) {
    case TB_OPTION_INT: return "int";
    case TB_OPTION_FLOAT: return "float";
    case TB_OPTION_BOOL: return "bool";
    case TB_OPTION_STRING: return "string";
    case TB_OPTION_CHOICE: return "choice";
    case TB_OPTION_INT_LIST: return "int list";
    case TB_OPTION_PATH: return "path";
    }
    return "?";
}

/* A bound of an integer option: exact up to 2^63, else %g. */
static const char *int_text(double v, char *buf, size_t len)
{
    if (fabs(v) < 9.2e18 && v == floor(v)) snprintf(buf, len, "%.0f", v);
    else snprintf(buf, len, "%g", v);
    return buf;
}

/* The allowed values of an option, as text. */
static void allowed(const tb_plugin_option *o, char *buf, size_t len)
{
    char lo[32], hi[32];
    switch (o->type) {
    case TB_OPTION_INT:
    case TB_OPTION_FLOAT:
    case TB_OPTION_INT_LIST:
        if (o->min == 0 && o->max == 0) snprintf(buf, len, "any");
        else if (o->type == TB_OPTION_FLOAT) snprintf(buf, len, "[%.15g, %.15g]", o->min, o->max);
        else snprintf(buf, len, "[%s, %s]", int_text(o->min, lo, sizeof lo), int_text(o->max, hi, sizeof hi));
        break;
    case TB_OPTION_BOOL: snprintf(buf, len, "true|false"); break;
    case TB_OPTION_CHOICE: snprintf(buf, len, "%s", o->choices ? o->choices : ""); break;
    default: snprintf(buf, len, "-"); break;
    }
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* An option's default as written in a config; "" shown quoted so it is visible. */
static const char *default_text(const tb_plugin_option *o)
{
    if (!o->default_value) return "(required)";
    return *o->default_value ? o->default_value : "\"\"";
}

static void print_plugin(const tb_plugin *p)
{
    const tb_plugin_descriptor *d = &p->desc;
    printf("  %s  (%s plugin, version %s, licence %s)\n", d->name, tb_plugin_kind_name(d->kind),
           or_dash(d->version), or_dash(d->license));
    printf("      file: %s\n", p->path);
    if (d->description && *d->description) printf("      %s\n", d->description);
    if (d->kind == TB_PLUGIN_MODEL && (d->base_prefixes || d->head_prefixes))
        printf("      base: %s   head: %s\n", or_dash(d->base_prefixes), or_dash(d->head_prefixes));
    if (d->kind == TB_PLUGIN_FRONTEND) printf("      use: tunebench study CONFIG --frontend %s\n", d->name);
    if (d->n_options == 0) {
        printf("      options: none\n");
        return;
    }
    int wn = 4, wt = 4, wd = 7, wa = 7;
    char buf[256];
    for (int i = 0; i < d->n_options; i++) {
        const tb_plugin_option *o = &d->options[i];
        int n = (int)strlen(o->name);
        if (n > wn) wn = n;
        n = (int)strlen(type_name(o->type));
        if (n > wt) wt = n;
        n = (int)strlen(default_text(o));
        if (n > wd) wd = n;
        allowed(o, buf, sizeof buf);
        n = (int)strlen(buf);
        if (n > wa) wa = n;
    }
    if (wd > 24) wd = 24;
    if (wa > 32) wa = 32;
    printf("      options (in the config section [%s]):\n", d->name);
    printf("        %-*s  %-*s  %-*s  %-*s  %s\n", wn, "name", wt, "type", wd, "default", wa, "allowed", "help");
    for (int i = 0; i < d->n_options; i++) {
        const tb_plugin_option *o = &d->options[i];
        allowed(o, buf, sizeof buf);
        printf("        %-*s  %-*s  %-*s  %-*s  %s\n", wn, o->name, wt, type_name(o->type), wd,
               default_text(o), wa, buf, or_dash(o->help));
    }
}

int tb_cmd_plugins(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--plugin-path")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tunebench plugins: --plugin-path needs a value\n");
                return 2;
            }
            path = argv[++i];
            continue;
        }
        if (!strncmp(a, "--plugin-path=", 14)) {
            path = a + 14;
            continue;
        }
        fprintf(stderr, "tunebench plugins: unknown argument %s (see tunebench plugins --help)\n", a);
        return 2;
    }

    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    if (tb_plugins_discover(&reg, path, &err) != TB_OK) {
        fprintf(stderr, "tunebench plugins: %s\n", err.msg);
        tb_plugins_free(&reg);
        return 1;
    }
    static const tb_plugin_kind kinds[] = {TB_PLUGIN_MODEL, TB_PLUGIN_TASK, TB_PLUGIN_FRONTEND};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int n = 0;
        for (int i = 0; i < reg.count; i++) n += reg.plugins[i].desc.kind == kinds[k];
        if (!n && kinds[k] == TB_PLUGIN_FRONTEND) continue;
        printf("%s plugins (%d):\n", tb_plugin_kind_name(kinds[k]), n);
        if (!n) printf("  none\n");
        for (int i = 0; i < reg.count; i++)
            if (reg.plugins[i].desc.kind == kinds[k]) print_plugin(&reg.plugins[i]);
        printf("\n");
    }
    printf("searched, in order:\n");
    if (!reg.search_log[0]) printf("  nothing\n");
    for (const char *p = reg.search_log; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        const char *tab = memchr(p, '\t', (size_t)n);
        if (tab) printf("  %-24.*s %.*s\n", (int)(tab - p), p, (int)(n - (tab + 1 - p)), tab + 1);
        else printf("  %.*s\n", n, p);
        if (!nl) break;
        p = nl + 1;
    }
    if (reg.problems[0]) {
        printf("problems:\n");
        for (const char *p = reg.problems; *p;) {
            const char *nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);
            printf("  %.*s\n", n, p);
            if (!nl) break;
            p = nl + 1;
        }
    }
    int status = 0;
    if (reg.count == 0) {
        fprintf(stderr, "tunebench plugins: no plugin found (set TUNEBENCH_PLUGIN_PATH or --plugin-path)\n");
        status = 1;
    }
    if (reg.n_failed) {
        fprintf(stderr, "tunebench plugins: %d file%s failed to load (see problems)\n", reg.n_failed,
                reg.n_failed == 1 ? "" : "s");
        status = 1;
    }
    tb_plugins_free(&reg);
    return status;
}
