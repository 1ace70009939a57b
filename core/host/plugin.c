/* plugin.c: finding, loading, checking and calling plugins (the host side of
 * tunebench_plugin.h).
 *
 * Loading follows OBS Studio's module loader: the plugin says which ABI and
 * descriptor size it was built with; the host refuses another major or a
 * newer minor, copies at most min(plugin size, host size) bytes of the
 * descriptor into a zeroed one (so an older, shorter descriptor simply lacks
 * the newer members) and checks the callbacks its kind requires. As in
 * collectd, only regular files are loaded and a failed dlopen gets a hint. */
#include "plugin.h"

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

#include "data/image.h"
#include "data/task.h"
#include "engine/net.h"
#include "base/rng.h"

#define MAX_OPTIONS 256
#define MAX_LIST 256
#define NAME_MAX_LEN 64

#ifndef TB_BUILD_PLUGIN_DIR
#define TB_BUILD_PLUGIN_DIR ""
#endif
#ifndef TB_INSTALL_PLUGIN_DIR
#define TB_INSTALL_PLUGIN_DIR ""
#endif

const char *tb_plugin_kind_name(tb_plugin_kind kind)
{
    switch (kind) {
    case TB_PLUGIN_MODEL: return "model";
    case TB_PLUGIN_TASK: return "task";
    case TB_PLUGIN_FRONTEND: return "frontend";
    }
    return "unknown";
}

static const char *kind_plural(tb_plugin_kind kind)
{
    switch (kind) {
    case TB_PLUGIN_MODEL: return "models";
    case TB_PLUGIN_TASK: return "tasks";
    case TB_PLUGIN_FRONTEND: return "frontends";
    }
    return "plugins";
}

/* [a-z0-9_]+, at most NAME_MAX_LEN - 1 characters. */
static int valid_plugin_name(const char *s)
{
    if (!s || !*s || strlen(s) >= NAME_MAX_LEN) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Appends "text\n" to a fixed buffer (problems), marking truncation. */
static void add_line(char *buf, size_t cap, const char *text)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap) return;
    int n = snprintf(buf + used, cap - used, "%s\n", text);
    if (n < 0 || (size_t)n >= cap - used) memcpy(buf + cap - 5, "...\n", 5);
}

static void add_problem(tb_plugin_registry *reg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_problem(tb_plugin_registry *reg, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    add_line(reg->problems, sizeof reg->problems, line);
}

static void add_searched(tb_plugin_registry *reg, const char *dir)
{
    size_t used = strlen(reg->searched);
    size_t cap = sizeof reg->searched;
    if (used + 1 >= cap) return;
    int n = snprintf(reg->searched + used, cap - used, "%s%s", used ? ", " : "", dir);
    if (n < 0 || (size_t)n >= cap - used) memcpy(reg->searched + cap - 4, "...", 4);
}

/* ---- loading one file ------------------------------------------------------------ */

static const char *dlopen_hint(const char *msg)
{
    if (strstr(msg, "undefined symbol"))
        return "the plugin uses a symbol nothing provides: link the libraries it needs and build it with "
               "-Wl,--no-undefined";
    if (strstr(msg, "wrong ELF class") || strstr(msg, "ELF file") || strstr(msg, "machine"))
        return "it was built for another architecture: rebuild it on this system";
    if (strstr(msg, "invalid ELF header") || strstr(msg, "file too short") || strstr(msg, "not an ELF"))
        return "it is not a shared library: remove it from the plugin directory";
    if (strstr(msg, "cannot open shared object"))
        return "a library it needs is missing: install it or fix the plugin's link line";
    return "is it a shared library built for this system?";
}

/* Checks an option table; 0 when fine, else a message in why. */
static int check_options(const tb_plugin_descriptor *d, char *why, size_t len)
{
    if (d->n_options < 0 || d->n_options > MAX_OPTIONS) {
        snprintf(why, len, "n_options = %d is outside [0, %d]", d->n_options, MAX_OPTIONS);
        return -1;
    }
    if (d->n_options > 0 && !d->options) {
        snprintf(why, len, "n_options = %d but options is NULL", d->n_options);
        return -1;
    }
    for (int i = 0; i < d->n_options; i++) {
        const tb_plugin_option *o = &d->options[i];
        if (!valid_plugin_name(o->name)) {
            snprintf(why, len, "option %d has an invalid name \"%s\" (use a-z, 0-9 and '_')", i,
                     o->name ? o->name : "(null)");
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(d->options[j].name, o->name) == 0) {
                snprintf(why, len, "option \"%s\" is declared twice", o->name);
                return -1;
            }
        if (o->type < TB_OPTION_INT || o->type > TB_OPTION_PATH) {
            snprintf(why, len, "option \"%s\" has an unknown type %d", o->name, (int)o->type);
            return -1;
        }
        if (o->type == TB_OPTION_CHOICE) {
            const char *c = o->choices;
            int bad = !c || !*c || c[0] == '|' || c[strlen(c) - 1] == '|' || strstr(c, "||");
            if (bad) {
                snprintf(why, len, "choice option \"%s\" needs choices like \"a|b\"", o->name);
                return -1;
            }
        }
        if (isnan(o->min) || isnan(o->max) || o->min > o->max) {
            snprintf(why, len, "option \"%s\" has an invalid range [%g, %g]", o->name, o->min, o->max);
            return -1;
        }
    }
    return 0;
}

/* Loads path into the registry.
 *   dup_from < 0: a name already present is an error naming both files;
 *   dup_from >= 0 (discovery): a name present at an index >= dup_from (same
 *   directory) is kept as a duplicate, one below it is shadowed (*shadowed = 1). */
static tb_status load_one(tb_plugin_registry *reg, const char *path, int dup_from, int *shadowed, tb_err *err)
{
    if (shadowed) *shadowed = 0;
    struct stat st;
    if (stat(path, &st) != 0) return tb_fail(err, TB_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tb_fail(err, TB_EINVAL, "%s: not a regular file (a plugin is a .so shared library)", path);
    if (!ends_with(path, ".so"))
        return tb_fail(err, TB_EINVAL, "%s: not a plugin (plugin files end in .so)", path);
    char full[sizeof reg->plugins[0].path];
    /* dlopen searches the library path for a name without '/': never do that */
    int n = snprintf(full, sizeof full, "%s%s", strchr(path, '/') ? "" : "./", path);
    if (n < 0 || (size_t)n >= sizeof full) return tb_fail(err, TB_EINVAL, "%s: path too long", path);
    for (int i = 0; i < reg->count; i++) /* already loaded (by device and inode: one stat per file) */
        if (reg->plugins[i].dev == st.st_dev && reg->plugins[i].ino == st.st_ino) return TB_OK;

    dlerror();
    void *h = dlopen(full, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *msg = dlerror();
        if (!msg) msg = "unknown error";
        size_t plen = strlen(full);
        if (strncmp(msg, full, plen) == 0 && msg[plen] == ':') msg += plen + 1;
        while (*msg == ' ') msg++;
        return tb_fail(err, TB_EFORMAT, "%s: cannot load: %s (%s)", path, msg, dlopen_hint(msg));
    }
    tb_status s = TB_OK;
    dlerror();
    void *sym = dlsym(h, TB_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        dlclose(h);
        return tb_fail(err, TB_EFORMAT,
                       "%s: no symbol " TB_PLUGIN_ENTRY_SYMBOL
                       " (is it a tunebench plugin? build it with TB_PLUGIN_EXPORT)",
                       path);
    }
    tb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, as POSIX allows */
    const tb_plugin_descriptor *d = entry();
    char why[320];
    tb_plugin p;
    memset(&p, 0, sizeof p);
    if (!d) {
        s = tb_fail(err, TB_EFORMAT,
                    "%s: " TB_PLUGIN_ENTRY_SYMBOL "() returned NULL (it must return the plugin's static descriptor)",
                    path);
        goto fail;
    }
    if (d->abi_major != TB_PLUGIN_ABI_MAJOR || d->abi_minor > TB_PLUGIN_ABI_MINOR) {
        const char *todo = d->abi_major == TB_PLUGIN_ABI_MAJOR && d->abi_minor > TB_PLUGIN_ABI_MINOR
                               ? "update tunebench, or rebuild the plugin against this tunebench's "
                                 "tunebench_plugin.h"
                               : "rebuild the plugin against this tunebench's tunebench_plugin.h";
        s = tb_fail(err, TB_EFORMAT, "%s: built for plugin ABI %u.%u, this tunebench supports %d.%d (%s)", path,
                    (unsigned)d->abi_major, (unsigned)d->abi_minor, TB_PLUGIN_ABI_MAJOR, TB_PLUGIN_ABI_MINOR, todo);
        goto fail;
    }
    size_t min_size = offsetof(tb_plugin_descriptor, n_options) + sizeof d->n_options;
    if (d->size < min_size) {
        s = tb_fail(err, TB_EFORMAT,
                    "%s: descriptor size %u is too small (at least %zu; set .size = sizeof(tb_plugin_descriptor))",
                    path, (unsigned)d->size, min_size);
        goto fail;
    }
    memcpy(&p.desc, d, d->size < sizeof p.desc ? d->size : sizeof p.desc);
    p.desc.size = (uint32_t)(d->size < sizeof p.desc ? d->size : sizeof p.desc);
    if (p.desc.kind != TB_PLUGIN_MODEL && p.desc.kind != TB_PLUGIN_TASK && p.desc.kind != TB_PLUGIN_FRONTEND) {
        s = tb_fail(err, TB_EFORMAT,
                    "%s: unknown plugin kind %d (use TB_PLUGIN_MODEL, TB_PLUGIN_TASK or TB_PLUGIN_FRONTEND)", path,
                    (int)p.desc.kind);
        goto fail;
    }
    if (!valid_plugin_name(p.desc.name)) {
        s = tb_fail(err, TB_EFORMAT, "%s: invalid plugin name \"%.64s\" (use lowercase letters, digits and '_')",
                    path, p.desc.name ? p.desc.name : "(null)");
        goto fail;
    }
    const char *kind = tb_plugin_kind_name(p.desc.kind);
    if (p.desc.kind == TB_PLUGIN_MODEL && !p.desc.build_model) {
        s = tb_fail(err, TB_EFORMAT, "%s: model plugin \"%s\" has no build_model callback (set .build_model in its "
                    "descriptor)", path, p.desc.name);
        goto fail;
    }
    if (p.desc.kind == TB_PLUGIN_TASK && !p.desc.open_task) {
        s = tb_fail(err, TB_EFORMAT, "%s: task plugin \"%s\" has no open_task callback (set .open_task in its "
                    "descriptor)", path, p.desc.name);
        goto fail;
    }
    if (p.desc.kind == TB_PLUGIN_FRONTEND) {
        /* the table is the plugin's own (static) memory: check its size before reading run */
        const tb_frontend_api *fe = p.desc.frontend;
        size_t need = offsetof(tb_frontend_api, run) + sizeof fe->run;
        if (!fe) {
            s = tb_fail(err, TB_EFORMAT, "%s: frontend plugin \"%s\" has no frontend table (set .frontend in its "
                        "descriptor to a static tb_frontend_api)", path, p.desc.name);
            goto fail;
        }
        if (fe->size < need) {
            s = tb_fail(err, TB_EFORMAT, "%s: frontend plugin \"%s\": frontend table size %u is too small (at least "
                        "%zu; set .size = sizeof(tb_frontend_api))", path, p.desc.name, (unsigned)fe->size, need);
            goto fail;
        }
        if (!fe->run) {
            s = tb_fail(err, TB_EFORMAT, "%s: frontend plugin \"%s\" has no run callback (set .run in its "
                        "tb_frontend_api)", path, p.desc.name);
            goto fail;
        }
    }
    if (check_options(&p.desc, why, sizeof why) != 0) {
        s = tb_fail(err, TB_EFORMAT, "%s: %s plugin \"%s\": %s (fix its option table)", path, kind, p.desc.name, why);
        goto fail;
    }
    for (int i = 0; i < reg->count; i++) {
        const tb_plugin *q = &reg->plugins[i];
        if (strcmp(q->desc.name, p.desc.name) != 0) continue;
        if (dup_from < 0) {
            s = tb_fail(err, TB_EINVAL, "duplicate plugin name \"%s\": %s and %s both define it (remove or rename "
                        "one of them)", p.desc.name, q->path, path);
            goto fail;
        }
        if (i < dup_from) {
            if (shadowed) *shadowed = 1;
            s = tb_fail(err, TB_OK, "%s: %s plugin \"%s\" is shadowed by %s (earlier in the search path)", path, kind,
                        p.desc.name, q->path);
            goto fail;
        }
    }
    if (reg->count == reg->cap) {
        int cap = reg->cap ? 2 * reg->cap : 16;
        tb_plugin *np = realloc(reg->plugins, sizeof *np * (size_t)cap);
        if (!np) {
            s = tb_fail(err, TB_ENOMEM, "out of memory loading %s", path);
            goto fail;
        }
        reg->plugins = np;
        reg->cap = cap;
    }
    p.handle = h;
    p.dev = st.st_dev;
    p.ino = st.st_ino;
    memcpy(p.path, full, sizeof p.path);
    reg->plugins[reg->count++] = p;
    return TB_OK;
fail:
    dlclose(h);
    return s;
}

tb_status tb_plugin_load_file(tb_plugin_registry *reg, const char *path, tb_err *err)
{
    return load_one(reg, path, -1, NULL, err);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Loads every regular *.so file of dir, in name order; failures go to problems. */
static void scan_dir(tb_plugin_registry *reg, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        if (errno != ENOENT) add_problem(reg, "%s: cannot read directory: %s", dir, strerror(errno));
        return;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".so")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, sizeof *nn * (size_t)cap);
            if (!nn) break;
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    closedir(dp);
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_names); /* names is NULL for an empty directory */
    int dup_from = reg->count;
    for (int i = 0; i < n; i++) {
        char path[sizeof reg->plugins[0].path];
        int len = snprintf(path, sizeof path, "%s%s%s", dir, ends_with(dir, "/") ? "" : "/", names[i]);
        if (len < 0 || (size_t)len >= sizeof path) add_problem(reg, "%s/%s: path too long", dir, names[i]);
        free(names[i]);
        if (len < 0 || (size_t)len >= sizeof path) continue;
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue; /* directories named x.so, broken links */
        tb_err e;
        int shadowed = 0, before = reg->count;
        if (load_one(reg, path, dup_from, &shadowed, &e) != TB_OK || shadowed) {
            add_problem(reg, "%s", e.msg);
            continue;
        }
        if (reg->count == before) continue; /* the same file again */
        const tb_plugin *added = &reg->plugins[reg->count - 1];
        for (int k = dup_from; k < reg->count - 1; k++)
            if (strcmp(reg->plugins[k].desc.name, added->desc.name) == 0) {
                add_problem(reg, "duplicate plugin name \"%s\": %s and %s both define it (remove or rename one of "
                            "them)", added->desc.name, reg->plugins[k].path, added->path);
                break;
            }
    }
    free(names);
}

/* Visits each ':'-separated entry of list. */
typedef void (*path_visit)(tb_plugin_registry *reg, const char *entry, void *ctx);

static void for_each_entry(tb_plugin_registry *reg, const char *list, path_visit fn, void *ctx)
{
    const char *p = list;
    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && len < 1024) {
            char entry[1024];
            memcpy(entry, p, len);
            entry[len] = '\0';
            fn(reg, entry, ctx);
        }
        p = colon ? colon + 1 : NULL;
    }
}

typedef struct discover_ctx {
    dev_t seen_dev[64]; /* directories already scanned (by device and inode) */
    ino_t seen_ino[64];
    int n_seen;
    const char *origin;  /* for messages: "--plugin-path", "TUNEBENCH_PLUGIN_PATH", ... */
    int is_explicit;
    tb_status status;
    tb_err *err;
} discover_ctx;

static void visit_dir(tb_plugin_registry *reg, const char *dir, discover_ctx *c)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        for (int i = 0; i < c->n_seen; i++)
            if (c->seen_dev[i] == st.st_dev && c->seen_ino[i] == st.st_ino) return;
        if (c->n_seen < 64) {
            c->seen_dev[c->n_seen] = st.st_dev;
            c->seen_ino[c->n_seen++] = st.st_ino;
        }
    }
    add_searched(reg, dir);
    scan_dir(reg, dir);
}

static void visit_entry(tb_plugin_registry *reg, const char *entry, void *ctx)
{
    discover_ctx *c = ctx;
    if (c->status != TB_OK) return;
    struct stat st;
    if (stat(entry, &st) != 0) {
        if (c->is_explicit) {
            c->status = tb_fail(c->err, TB_EIO, "plugin path %s: %s (fix [plugins] path or --plugin-path)", entry,
                                strerror(errno));
            return;
        }
        add_searched(reg, entry);
        add_problem(reg, "%s entry %s: %s", c->origin, entry, strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        visit_dir(reg, entry, c);
        return;
    }
    add_searched(reg, entry);
    tb_err e;
    tb_status s = load_one(reg, entry, -1, NULL, &e);
    if (s != TB_OK) {
        if (c->is_explicit) {
            c->status = tb_fail(c->err, s, "%s", e.msg);
            return;
        }
        add_problem(reg, "%s", e.msg);
    }
}

tb_status tb_plugins_discover(tb_plugin_registry *reg, const char *explicit_path, tb_err *err)
{
    reg->searched[0] = '\0';
    reg->problems[0] = '\0';
    discover_ctx *c = calloc(1, sizeof *c);
    if (!c) return tb_fail(err, TB_ENOMEM, "out of memory");
    c->err = err;
    if (explicit_path && *explicit_path) {
        c->origin = "plugin path";
        c->is_explicit = 1;
        for_each_entry(reg, explicit_path, visit_entry, c);
        if (c->status != TB_OK) {
            tb_status s = c->status;
            free(c);
            return s;
        }
    }
    c->is_explicit = 0;
    c->origin = "TUNEBENCH_PLUGIN_PATH";
    const char *env = getenv("TUNEBENCH_PLUGIN_PATH");
    if (env && *env) for_each_entry(reg, env, visit_entry, c);
    static const char *const builtin[] = {TB_BUILD_PLUGIN_DIR, TB_INSTALL_PLUGIN_DIR};
    for (size_t i = 0; i < TB_ARRAY_LEN(builtin); i++) {
        if (!builtin[i][0]) continue;
        struct stat st;
        if (stat(builtin[i], &st) == 0 && S_ISDIR(st.st_mode)) visit_dir(reg, builtin[i], c);
        else add_searched(reg, builtin[i]);
    }
    free(c);
    return TB_OK;
}

void tb_plugins_free(tb_plugin_registry *reg)
{
    if (!reg) return;
    for (int i = 0; i < reg->count; i++)
        if (reg->plugins[i].handle) dlclose(reg->plugins[i].handle);
    free(reg->plugins);
    memset(reg, 0, sizeof *reg);
}

/* ---- lookup ------------------------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The problems line about <name>.so, copied into line, or NULL. */
static const char *problem_for(const tb_plugin_registry *reg, const char *name, char *line, size_t len)
{
    char file[NAME_MAX_LEN + 8];
    snprintf(file, sizeof file, "%s.so:", name);
    for (const char *p = reg->problems; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n < len) {
            memcpy(line, p, n);
            line[n] = '\0';
            char *colon = strstr(line, ".so:");
            if (colon && !strstr(line, "is shadowed by")) {
                colon[4] = '\0';
                if (strcmp(base_name(line), file) == 0) {
                    memcpy(line, p, n);
                    line[n] = '\0';
                    return line;
                }
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    return NULL;
}

/* "a, b, c": names of the plugins of one kind. */
static void list_kind(const tb_plugin_registry *reg, tb_plugin_kind kind, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < reg->count; i++) {
        if (reg->plugins[i].desc.kind != kind) continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", reg->plugins[i].desc.name);
        if (n < 0 || (size_t)n >= len - used) {
            if (len >= 4) memcpy(buf + len - 4, "...", 4);
            return;
        }
        used += (size_t)n;
    }
    if (!used) snprintf(buf, len, "none");
}

tb_status tb_plugin_find(const tb_plugin_registry *reg, tb_plugin_kind kind, const char *name,
                         const tb_plugin **out, tb_err *err)
{
    *out = NULL;
    const char *kname = tb_plugin_kind_name(kind);
    const tb_plugin *first = NULL, *second = NULL;
    for (int i = 0; i < reg->count; i++) {
        if (strcmp(reg->plugins[i].desc.name, name) != 0) continue;
        if (!first) first = &reg->plugins[i];
        else if (!second) second = &reg->plugins[i];
    }
    if (second)
        return tb_fail(err, TB_EINVAL, "duplicate plugin name \"%s\": %s and %s both define it (remove or rename one "
                       "of them)", name, first->path, second->path);
    char avail[256];
    if (first && first->desc.kind == kind) {
        *out = first;
        return TB_OK;
    }
    list_kind(reg, kind, avail, sizeof avail); /* only for the messages below */
    if (first)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" (%s) is a %s plugin, not a %s plugin; available %s: %s", name,
                       first->path, tb_plugin_kind_name(first->desc.kind), kname, kind_plural(kind), avail);
    char line[600];
    if (problem_for(reg, name, line, sizeof line))
        return tb_fail(err, TB_EINVAL, "%s plugin \"%s\" could not be loaded: %s", kname, name, line);
    const char *names[256];
    int n = 0;
    for (int i = 0; i < reg->count && n < 256; i++)
        if (reg->plugins[i].desc.kind == kind) names[n++] = reg->plugins[i].desc.name;
    const char *near = tb_nearest(name, names, n);
    char hint[96] = "";
    if (near) snprintf(hint, sizeof hint, " (did you mean %s?)", near);
    return tb_fail(err, TB_EINVAL,
                   "%s plugin \"%s\" not found%s; searched: %s (set TUNEBENCH_PLUGIN_PATH or [plugins] path); "
                   "available %s: %s",
                   kname, name, hint, reg->searched[0] ? reg->searched : "nothing", kind_plural(kind), avail);
}

/* ---- resolved options ------------------------------------------------------------------ */

typedef struct tb_arg {
    const tb_plugin_option *opt;
    char *text; /* resolved text (choice: as declared; path: ~ expanded) */
    int is_set;
    int64_t i;
    double f;
    int b;
    int64_t *list;
    int n_list;
} tb_arg;

struct tb_plugin_args {
    char plugin[NAME_MAX_LEN];
    int n;
    tb_arg *a;
};

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

/* ---- the host API ------------------------------------------------------------------------ */

static int parse_log_level(const char *v)
{
    if (!v || !*v) return TB_LOG_INFO;
    if (strcasecmp(v, "debug") == 0 || strcmp(v, "0") == 0) return TB_LOG_DEBUG;
    if (strcasecmp(v, "info") == 0 || strcmp(v, "1") == 0) return TB_LOG_INFO;
    if (strcasecmp(v, "warn") == 0 || strcasecmp(v, "warning") == 0 || strcmp(v, "2") == 0) return TB_LOG_WARN;
    if (strcasecmp(v, "quiet") == 0 || strcasecmp(v, "error") == 0 || strcmp(v, "3") == 0) return TB_LOG_WARN + 1;
    return TB_LOG_INFO;
}

/* TUNEBENCH_LOG_LEVEL, read at the first message: plugins log from several
 * threads (loaders, executor workers), hence the atomic. */
static int log_threshold(void)
{
    static atomic_int level = -1; /* -1: unread */
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l < 0) {
        l = parse_log_level(getenv("TUNEBENCH_LOG_LEVEL"));
        atomic_store_explicit(&level, l, memory_order_relaxed);
    }
    return l;
}

static void host_log(tb_log_level level, const char *plugin, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void host_log(tb_log_level level, const char *plugin, const char *fmt, ...)
{
    if ((int)level < log_threshold() || !fmt) return;
    char line[1024];
    const char *tag = level == TB_LOG_WARN ? "warning: " : level == TB_LOG_DEBUG ? "debug: " : "";
    int n = snprintf(line, sizeof line, "[%s] %s", plugin && *plugin ? plugin : "plugin", tag);
    if (n < 0 || (size_t)n >= sizeof line) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    fprintf(stderr, "%s\n", line); /* one call: lines from threads do not interleave */
}

static const tb_arg *arg_find(const tb_plugin_args *args, const char *name, const char *fn)
{
    if (!args || !name) {
        host_log(TB_LOG_WARN, args ? args->plugin : NULL, "host->%s(%s): no such option", fn, name ? name : "NULL");
        return NULL;
    }
    for (int i = 0; i < args->n; i++)
        if (strcmp(args->a[i].opt->name, name) == 0) return &args->a[i];
    host_log(TB_LOG_WARN, args->plugin, "host->%s(\"%s\"): not a declared option (a bug in the plugin)", fn, name);
    return NULL;
}

static int64_t host_arg_int(const tb_plugin_args *args, const char *name)
{
    const tb_arg *a = arg_find(args, name, "arg_int");
    return a ? a->i : 0;
}

static double host_arg_float(const tb_plugin_args *args, const char *name)
{
    const tb_arg *a = arg_find(args, name, "arg_float");
    return a ? a->f : 0.0;
}

static int host_arg_bool(const tb_plugin_args *args, const char *name)
{
    const tb_arg *a = arg_find(args, name, "arg_bool");
    if (!a) return 0;
    return a->opt->type == TB_OPTION_BOOL ? a->b : a->i != 0;
}

static const char *host_arg_string(const tb_plugin_args *args, const char *name)
{
    const tb_arg *a = arg_find(args, name, "arg_string");
    return a ? a->text : NULL;
}

static int host_arg_int_list(const tb_plugin_args *args, const char *name, int64_t *out, int max)
{
    const tb_arg *a = arg_find(args, name, "arg_int_list");
    if (!a) return 0;
    if (a->opt->type != TB_OPTION_INT_LIST) {
        if (out && max > 0) out[0] = a->i;
        return 1;
    }
    for (int i = 0; i < a->n_list && i < max && out; i++) out[i] = a->list[i];
    return a->n_list;
}

static int host_arg_is_set(const tb_plugin_args *args, const char *name)
{
    const tb_arg *a = arg_find(args, name, "arg_is_set");
    return a ? a->is_set : 0;
}

static void *host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }

static void host_free(void *ptr) { free(ptr); }

static void host_permutation(int32_t *perm, int32_t n, uint64_t seed, uint32_t stream, uint32_t sub)
{
    tb_rng_permutation(perm, n, seed, (tb_stream)stream, sub);
}

static int host_threads(void) { return omp_get_max_threads(); }

static const char *host_cache_dir(const char *plugin)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char dirs[32][1024];
    static int n_dirs;
    if (!valid_plugin_name(plugin)) {
        host_log(TB_LOG_WARN, plugin, "cache_dir: \"%s\" is not a plugin name", plugin ? plugin : "NULL");
        return NULL;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char path[1024];
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(path, sizeof path, "%s/tunebench/%s", xdg, plugin);
    else if (home && *home) n = snprintf(path, sizeof path, "%s/.cache/tunebench/%s", home, plugin);
    else {
        host_log(TB_LOG_WARN, plugin, "cache_dir: neither XDG_CACHE_HOME nor HOME is set");
        return NULL;
    }
    if (n < 0 || (size_t)n >= sizeof path) {
        host_log(TB_LOG_WARN, plugin, "cache_dir: path too long");
        return NULL;
    }
    if (tb_make_dirs(path) != 0) {
        host_log(TB_LOG_WARN, plugin, "cache_dir: cannot create %s: %s", path, strerror(errno));
        return NULL;
    }
    const char *r = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_dirs && !r; i++)
        if (strcmp(dirs[i], path) == 0) r = dirs[i];
    if (!r && n_dirs < 32) {
        memcpy(dirs[n_dirs], path, sizeof path);
        r = dirs[n_dirs++];
    }
    pthread_mutex_unlock(&lock);
    if (!r) host_log(TB_LOG_WARN, plugin, "cache_dir: too many plugins asked for a cache directory");
    return r;
}

static const tb_host_api host_api = {
    .version = TB_HOST_API_VERSION,
    .size = sizeof(tb_host_api),
    .arg_int = host_arg_int,
    .arg_float = host_arg_float,
    .arg_bool = host_arg_bool,
    .arg_string = host_arg_string,
    .arg_int_list = host_arg_int_list,
    .arg_is_set = host_arg_is_set,
    .log = host_log,
    .alloc = host_alloc,
    .free = host_free,
    .net_new = tb_net_new,
    .net_free = tb_net_free,
    .net_conv2d = tb_net_conv2d,
    .net_linear = tb_net_linear,
    .net_relu = tb_net_relu,
    .net_maxpool = tb_net_maxpool,
    .net_avgpool = tb_net_avgpool,
    .net_adaptive_avgpool = tb_net_adaptive_avgpool,
    .net_concat = tb_net_concat,
    .net_dropout = tb_net_dropout,
    .net_batchnorm = tb_net_batchnorm,
    .net_flatten = tb_net_flatten,
    .net_shape = tb_net_layer_shape,
    .resize_u8 = tb_resize_u8,
    .permutation = host_permutation,
    .threads = host_threads,
    .cache_dir = host_cache_dir,
    .task_data_free = tb_task_data_free,
    .nearest = tb_nearest,
};

const tb_host_api *tb_host_api_get(void) { return &host_api; }

/* ---- calling plugins --------------------------------------------------------------------- */

/* A plugin's error text made safe: terminated, one line. */
static const char *clean_message(char *msg, size_t len, tb_status s)
{
    msg[len - 1] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return msg[0] ? msg : tb_status_name(s);
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
    if (!args) {
        tb_status s = tb_plugin_args_resolve(plugin, NULL, "model", &own, err);
        if (s != TB_OK) return s;
        args = own;
    }
    char msg[512] = "";
    tb_net *net = NULL;
    tb_model_input copy = *in;
    tb_status s = d->build_model(tb_host_api_get(), args, &copy, &net, msg, sizeof msg);
    tb_plugin_args_free(own);
    if (s != TB_OK) {
        if (net) tb_net_free(net);
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
    if (!args) {
        tb_status s = tb_plugin_args_resolve(plugin, NULL, d->name, &own, err);
        if (s != TB_OK) return s;
        args = own;
    }
    char msg[512] = "";
    tb_status s = d->frontend->run(tb_host_api_get(), api, args, msg, sizeof msg);
    tb_plugin_args_free(own);
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
    if ((size_t)t->count > SIZE_MAX / per) return bad(why, len, "%d images of %zu bytes overflow", t->count, per);
    if (!t->pixels || !t->labels || !t->splits)
        return bad(why, len, "%s is NULL", !t->pixels ? "pixels" : !t->labels ? "labels" : "splits");
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

tb_status tb_plugin_open_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_data *out,
                              tb_err *err)
{
    memset(out, 0, sizeof *out);
    const tb_plugin_descriptor *d = &plugin->desc;
    if (d->kind != TB_PLUGIN_TASK || !d->open_task)
        return tb_fail(err, TB_EINVAL, "plugin \"%s\" is a %s plugin, not a task plugin", d->name,
                       tb_plugin_kind_name(d->kind));
    tb_plugin_args *own = NULL;
    if (!args) {
        tb_status s = tb_plugin_args_resolve(plugin, NULL, "task", &own, err);
        if (s != TB_OK) return s;
        args = own;
    }
    char msg[512] = "";
    tb_status s = d->open_task(tb_host_api_get(), args, out, msg, sizeof msg);
    tb_plugin_args_free(own);
    if (s != TB_OK) {
        /* on failure the plugin keeps (and has released) what it allocated */
        memset(out, 0, sizeof *out);
        return tb_fail(err, s, "task plugin \"%s\": %s", d->name, clean_message(msg, sizeof msg, s));
    }
    out->source[sizeof out->source - 1] = '\0';
    char why[256];
    if (check_task_data(out, why, sizeof why) != 0) {
        tb_task_data_free(out);
        return tb_fail(err, TB_EFORMAT, "task plugin \"%s\" returned invalid data: %s (a bug in the plugin)", d->name,
                       why);
    }
    return TB_OK;
}
