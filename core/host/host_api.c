/* host_api.c: the services a plugin is handed (tb_host_api): logging, its
 * options, memory, the layer builder, seeded permutations, image resizing,
 * threads, a cache folder. Append-only, like the ABI. */
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

#include "base/rng.h"
#include "data/image.h"
#include "data/task.h"
#include "engine/net.h"


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
    /* a bug in the plugin: the call that made it fails once the plugin returns (plugin_calls.c) */
    host_log(TB_LOG_DEBUG, args->plugin, "host->%s(\"%s\"): not a declared option", fn, name);
    tb_plugin_args_record_misuse(args, name);
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
    if (!tb_valid_plugin_name(plugin)) {
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
    .task_data_free = tb_task_data_free_v2, /* members up to source: an old plugin's struct ends there */
    .nearest = tb_nearest,
    .task_data_release = tb_task_data_release,
    .net_tanh = tb_net_tanh,
    .net_sigmoid = tb_net_sigmoid,
    .net_leaky_relu = tb_net_leaky_relu,
    .net_gelu = tb_net_gelu,
    .net_identity = tb_net_identity,
    .net_batchnorm1d = tb_net_batchnorm1d,
    .net_sequential = tb_net_sequential,
    .conv2d = tb_nn_conv2d,
    .linear = tb_nn_linear,
    .batchnorm2d = tb_nn_batchnorm2d,
    .batchnorm1d = tb_nn_batchnorm1d,
    .maxpool2d = tb_nn_maxpool2d,
    .avgpool2d = tb_nn_avgpool2d,
    .adaptive_avgpool2d = tb_nn_adaptive_avgpool2d,
    .dropout = tb_nn_dropout,
    .leaky_relu = tb_nn_leaky_relu,
    .gelu = tb_nn_gelu,
    .relu = tb_nn_relu,
    .tanh = tb_nn_tanh,
    .sigmoid = tb_nn_sigmoid,
    .identity = tb_nn_identity,
    .flatten = tb_nn_flatten,
};

const tb_host_api *tb_host_api_get(void) { return &host_api; }
