/* loader.c: finding, loading and checking plugins (the host side of
 * tunebench_plugin.h), and looking them up by kind and name.
 *
 * Loading follows OBS Studio's module loader: the plugin says which ABI and
 * descriptor size it was built with; the host refuses another major or a
 * newer minor, copies at most min(plugin size, host size) bytes of the
 * descriptor into a zeroed one (so an older, shorter descriptor simply lacks
 * the newer members) and checks the callbacks its kind requires. As in
 * collectd, only regular files are loaded and a failed dlopen gets a hint. */
#include "plugin_internal.h"

#include "base/selfpath.h"

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

#define MAX_OPTIONS 256

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

/* [a-z0-9_]+, at most NAME_MAX_LEN - 1 characters (plugin_internal.h). */
int tb_valid_plugin_name(const char *s)
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

/* Records a searched entry: in searched ("a, b (not found), c") and in
 * search_log ("origin<TAB>entry[ (not found)]" lines, for `tunebench plugins`). */
static void add_searched(tb_plugin_registry *reg, const char *dir, const char *origin, int missing)
{
    const char *note = missing ? " (not found)" : "";
    size_t used = strlen(reg->searched);
    size_t cap = sizeof reg->searched;
    if (used + 1 < cap) {
        int n = snprintf(reg->searched + used, cap - used, "%s%s%s", used ? ", " : "", dir, note);
        if (n < 0 || (size_t)n >= cap - used) memcpy(reg->searched + cap - 4, "...", 4);
    }
    char line[1200];
    snprintf(line, sizeof line, "%s\t%s%s", origin, dir, note);
    add_line(reg->search_log, sizeof reg->search_log, line);
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
        if (!tb_valid_plugin_name(o->name)) {
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
        if (tb_plugin_option_check_default(o, why, len) != 0) return -1;
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
    if (!tb_valid_plugin_name(p.desc.name)) {
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
        if (errno != ENOENT) {
            add_problem(reg, "%s: cannot read directory: %s", dir, strerror(errno));
            reg->n_failed++;
        }
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
            if (!shadowed) reg->n_failed++; /* shadowed: loaded, and a note only */
            continue;
        }
        if (reg->count == before) continue; /* the same file again */
        const tb_plugin *added = &reg->plugins[reg->count - 1];
        for (int k = dup_from; k < reg->count - 1; k++)
            if (strcmp(reg->plugins[k].desc.name, added->desc.name) == 0) {
                add_problem(reg, "duplicate plugin name \"%s\": %s and %s both define it (remove or rename one of "
                            "them)", added->desc.name, reg->plugins[k].path, added->path);
                reg->n_failed++;
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
    add_searched(reg, dir, c->origin, 0);
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
        add_searched(reg, entry, c->origin, 1);
        add_problem(reg, "%s entry %s: %s", c->origin, entry, strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        visit_dir(reg, entry, c);
        return;
    }
    add_searched(reg, entry, c->origin, 0);
    tb_err e;
    tb_status s = load_one(reg, entry, -1, NULL, &e);
    if (s != TB_OK) {
        if (c->is_explicit) {
            c->status = tb_fail(c->err, s, "%s", e.msg);
            return;
        }
        add_problem(reg, "%s", e.msg);
        reg->n_failed++;
    }
}

tb_status tb_plugins_discover(tb_plugin_registry *reg, const char *explicit_path, tb_err *err)
{
    reg->searched[0] = '\0';
    reg->search_log[0] = '\0';
    reg->problems[0] = '\0';
    reg->n_failed = 0;
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
    /* the plugins of this tunebench, relative to its executable: <prefix>/lib/tunebench/plugins
     * for an installed one, the build directory's plugins/ for the build tree's */
    char self[4096 + 16];
    const char *how = tb_self_pkglibdir(self, 4096);
    struct stat self_st = {0};
    int have_self = 0;
    if (how) {
        strcat(self, "/plugins");
        c->origin = how;
        have_self = stat(self, &self_st) == 0 && S_ISDIR(self_st.st_mode);
        if (have_self) visit_dir(reg, self, c);
        else add_searched(reg, self, how, 1);
    }
    /* last resort, when nothing was found: the install directory compiled in */
    const char *installed = TB_INSTALL_PLUGIN_DIR;
    if (installed[0] && reg->count == 0 && (!how || strcmp(installed, self) != 0)) {
        struct stat st;
        c->origin = "install directory";
        if (stat(installed, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (!(have_self && st.st_dev == self_st.st_dev && st.st_ino == self_st.st_ino)) visit_dir(reg, installed, c);
        } else {
            add_searched(reg, installed, c->origin, 1);
        }
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
