/* task_load.c: a run's task data, prepared once and kept on disk for the
 * runs after it (store/task_cache.h; docs/architecture.md, "The task cache").
 *
 * The key is a text naming everything that changes the prepared data:
 *   - this tunebench: its version and its executable's identity (path, size,
 *     modification time), so a rebuilt preparation never reads old entries;
 *   - the task plugin: name, version, its file's path, size and mtime;
 *   - the task's resolved options (tb_plugin_args_describe: every option,
 *     defaults included);
 *   - the inputs: each PATH option's file or folder by its absolute path and
 *     identity (size, mtime, ctime, inode; a folder recursively, every entry
 *     by name, up to TREE_MAX_ENTRIES entries and TREE_MAX_DEPTH levels);
 *   - the preparation: [task] resolution, val_fraction, split_seed, folds,
 *     fold, merge_val, mean and std (augmentation is applied as samples are
 *     read, so crop_padding, hflip and random_resized_crop share an entry).
 * A task that reads files its PATH options do not name would be cached on
 * its options alone: a task plugin must name its inputs with PATH options
 * (docs/plugins.md). */
#define _DEFAULT_SOURCE /* realpath, S_IFMT, scandir */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/plugin.h"
#include "run.h"
#include "store/task_cache.h"

#define TREE_MAX_ENTRIES 200000
#define TREE_MAX_DEPTH 6
#define LOCK_WAIT_S 3600.0 /* another run preparing the same data: wait for it at most this long */

/* ---- the key ------------------------------------------------------------------------------ */

typedef struct tree_hash {
    uint64_t a, b;
    long entries;
    int too_big;
    dev_t skip_dev; /* the cache folder, when it lies inside an input: left out */
    ino_t skip_ino;
} tree_hash;

static void feed(tree_hash *t, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        t->a = (t->a ^ p[i]) * 0x100000001b3ull;
        t->b = (t->b ^ p[i]) * 0x9e3779b97f4a7c15ull;
        t->b ^= t->b >> 31;
    }
}

static void feed_stat(tree_hash *t, const char *name, const struct stat *st)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s|%o|%lld|%lld.%09ld|%lld.%09ld|%llu\n", name, (unsigned)(st->st_mode & S_IFMT),
                     (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                     (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, (unsigned long long)st->st_ino);
    feed(t, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static int by_name(const struct dirent **x, const struct dirent **y) { return strcmp((*x)->d_name, (*y)->d_name); }

/* Every entry under dir (sorted by name, so the order is the folder's, not readdir's). */
static void hash_tree(tree_hash *t, const char *dir, const char *rel, int depth)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, by_name);
    if (n < 0) {
        char why[300];
        int k = snprintf(why, sizeof why, "unreadable %s: %d\n", rel, errno);
        feed(t, why, k > 0 && (size_t)k < sizeof why ? (size_t)k : 0);
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (!t->too_big && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            char path[PATH_MAX], sub[PATH_MAX];
            struct stat st;
            if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
                snprintf(sub, sizeof sub, "%s/%s", rel, name) >= (int)sizeof sub || ++t->entries > TREE_MAX_ENTRIES) {
                t->too_big = 1;
            } else if (stat(path, &st) != 0) {
                feed(t, sub, strlen(sub));
                feed(t, "|absent\n", 8);
            } else if (!(S_ISDIR(st.st_mode) && st.st_dev == t->skip_dev && st.st_ino == t->skip_ino)) {
                feed_stat(t, sub, &st);
                if (S_ISDIR(st.st_mode)) {
                    if (depth >= TREE_MAX_DEPTH) t->too_big = 1;
                    else hash_tree(t, path, sub, depth + 1);
                }
            }
        }
        free(list[i]);
    }
    free(list);
}

/* "file size=... mtime=..." or "folder entries=N tree=HEX" of path; -1 when it cannot stand for its contents. */
static int identity(const char *path, const struct stat *cache_dir, char *out, size_t cap, char *why, size_t why_cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(out, cap, "absent (%s)", strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(out, cap, "file size=%lld mtime=%lld.%09ld ctime=%lld.%09ld inode=%llu", (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
                 (unsigned long long)st.st_ino);
        return 0;
    }
    tree_hash t = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0, 0, 0, 0};
    if (cache_dir) t.skip_dev = cache_dir->st_dev, t.skip_ino = cache_dir->st_ino;
    feed_stat(&t, ".", &st);
    hash_tree(&t, path, ".", 1);
    if (t.too_big) {
        snprintf(why, why_cap, "the folder %s holds more than %d entries or %d levels, too many to tell a change", path,
                 TREE_MAX_ENTRIES, TREE_MAX_DEPTH);
        return -1;
    }
    snprintf(out, cap, "folder entries=%ld tree=%016llx%016llx", t.entries, (unsigned long long)t.a,
             (unsigned long long)t.b);
    return 0;
}

static void file_identity(const char *path, char *out, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) snprintf(out, cap, "%s (%s)", path, strerror(errno));
    else
        snprintf(out, cap, "%s size=%lld mtime=%lld.%09ld", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                 st.st_mtim.tv_nsec);
}

char *tb_run_task_cache_key(const tb_run *run, char *why, size_t why_cap)
{
    why[0] = '\0';
    size_t cap = 1 << 16, used = 0;
    char *key = malloc(cap);
    char *options = tb_plugin_args_describe(run->task_args);
    if (!key || !options) {
        snprintf(why, why_cap, "out of memory");
        free(key), free(options);
        return NULL;
    }
    key[0] = '\0';
    char exe[PATH_MAX], id[PATH_MAX + 128];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    file_identity(exe, id, sizeof id);
    tb_appendf(key, cap, &used, "tunebench task cache key, format %d\ntunebench %s, executable %s\n",
               TB_TASK_CACHE_FORMAT, TB_VERSION, id);
    const tb_plugin *tp = run->task_plugin;
    file_identity(tp->path, id, sizeof id);
    tb_appendf(key, cap, &used, "task plugin %s %s, file %s\noptions:\n%s", tp->desc.name,
               tp->desc.version ? tp->desc.version : "", id, options);
    free(options);
    struct stat cache_st, *cache = stat(run->cache_dir, &cache_st) == 0 ? &cache_st : NULL;
    const char *name, *value;
    for (int i = 0; tb_plugin_args_path(run->task_args, i, &name, &value); i++) {
        char abs[PATH_MAX], ident[256];
        if (!realpath(value, abs)) tb_copy_str(abs, sizeof abs, value);
        if (identity(abs, cache, ident, sizeof ident, why, why_cap) != 0) {
            free(key);
            return NULL;
        }
        tb_appendf(key, cap, &used, "input %s = %s: %s\n", name, abs, ident);
    }
    const tb_task_options *o = &run->task_opt;
    tb_appendf(key, cap, &used,
               "preparation: resolution=%d val_fraction=%.17g split_seed=%llu folds=%d fold=%d merge_val=%d",
               o->resolution, o->val_fraction, (unsigned long long)o->split_seed, o->folds, o->folds > 1 ? o->fold : 0,
               o->merge_val);
    if (o->has_norm)
        for (int c = 0; c < 4; c++)
            tb_appendf(key, cap, &used, " mean%d=%.9g std%d=%.9g", c, (double)o->mean[c], c, (double)o->std[c]);
    if (tb_appendf(key, cap, &used, "\n") != 0) {
        snprintf(why, why_cap, "its key is longer than %zu bytes", cap - 1);
        free(key);
        return NULL;
    }
    return key;
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Opens the task with its plugin and prepares it (the work the cache saves). */
static tb_status open_and_prepare(tb_run *run, tb_err *err)
{
    tb_task_data raw;
    memset(&raw, 0, sizeof raw);
    tb_status st = tb_plugin_open_task(run->task_plugin, run->task_args, &raw, err);
    if (st != TB_OK) return st;
    if ((st = tb_plugin_check_declared(run->task_plugin, &run->declared, &raw, err)) != TB_OK) {
        tb_task_data_free(&raw);
        return st;
    }
    if ((st = tb_task_prepare(&run->task, &raw, &run->task_opt, err)) != TB_OK) return st;
    run->task_loaded = 1;
    return TB_OK;
}

tb_status tb_run_set_task_cache(tb_run *run, const char *dir, tb_err *err)
{
    if (!dir || !dir[0] || strcmp(dir, "off") == 0) {
        run->cache_dir[0] = '\0';
        return TB_OK;
    }
    if (snprintf(run->cache_dir, sizeof run->cache_dir, "%s", dir) >= (int)sizeof run->cache_dir) {
        run->cache_dir[0] = '\0';
        return tb_fail(err, TB_EINVAL, "task cache = \"%.60s...\" is longer than %zu characters; allowed: a folder "
                       "path, or off", dir, sizeof run->cache_dir - 1);
    }
    return TB_OK;
}

/* The cache entry's key and file for this run into *key (malloc'd) and path;
 * 0 when the run has no cache or it cannot be used (said on stderr). */
static int cache_entry(const tb_run *run, char **key, char *path, size_t cap)
{
    const tb_host_api *host = tb_host_api_get();
    char why[512], name[TB_TASK_CACHE_NAME_MAX];
    *key = NULL;
    if (!run->cache_dir[0]) return 0;
    if (!(*key = tb_run_task_cache_key(run, why, sizeof why))) {
        host->log(TB_LOG_WARN, "task", "task cache: not used for task %s: %s", run->task_plugin->desc.name, why);
        return 0;
    }
    tb_task_cache_name(*key, name);
    if (tb_make_dirs(run->cache_dir) != 0)
        host->log(TB_LOG_WARN, "task", "task cache %s: cannot create the folder (%s); preparing the data without it",
                  run->cache_dir, strerror(errno));
    else if (snprintf(path, cap, "%s/%s", run->cache_dir, name) >= (int)cap)
        host->log(TB_LOG_WARN, "task", "task cache %s: the path is too long; preparing the data without it",
                  run->cache_dir);
    else
        return 1;
    free(*key);
    *key = NULL;
    return 0;
}

tb_status tb_run_load_task(tb_run *run, tb_err *err)
{
    const tb_host_api *host = tb_host_api_get();
    const char *task = run->task_plugin->desc.name;
    char *key = NULL, path[PATH_MAX];
    tb_err e;
    int lock = -1;
    if (cache_entry(run, &key, path, sizeof path)) {
        double t0 = tb_now();
        int r = tb_task_cache_read(path, key, &run->task, &e);
        if (r < 0) host->log(TB_LOG_WARN, "task", "%s; preparing the data again", e.msg);
        if (r != 1) {
            /* one run prepares and writes, the others that miss at the same time wait for it and read */
            if ((lock = tb_task_cache_lock(path, LOCK_WAIT_S, &e)) < 0)
                host->log(TB_LOG_WARN, "task", "%s; preparing the data without the cache", e.msg);
            else if ((r = tb_task_cache_read(path, key, &run->task, &e)) < 0)
                host->log(TB_LOG_WARN, "task", "%s; preparing the data again", e.msg);
        }
        if (r == 1) {
            tb_task_cache_unlock(path, lock);
            free(key);
            tb_status st = tb_task_adopt(&run->task, &run->task_opt, err);
            if (st != TB_OK) return st;
            run->task_loaded = 1;
            host->log(TB_LOG_INFO, "task", "task %s: prepared data from the cache %s (%.2f s)", task, path,
                      tb_now() - t0);
            return TB_OK;
        }
    }
    double t0 = tb_now();
    tb_status st = open_and_prepare(run, err);
    if (st == TB_OK && key && lock >= 0) {
        double t1 = tb_now();
        if (tb_task_cache_write(path, key, &run->task, &e) != TB_OK)
            host->log(TB_LOG_WARN, "task", "%s; training without caching", e.msg);
        else
            host->log(TB_LOG_INFO, "task", "task %s: prepared data cached in %s (prepared in %.2f s, written in %.2f s)",
                      task, path, t1 - t0, tb_now() - t1);
    }
    tb_task_cache_unlock(path, lock);
    free(key);
    return st;
}
