/* device.c: device names, the CUDA module loader and backend creation. */
#include "device.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/selfpath.h"
#include "engine/cuda/cuda_module.h"

/* TB_INSTALL_CUDA_MODULE is defined when the module is built (CMakeLists.txt) */
#ifdef TB_INSTALL_CUDA_MODULE
#define TB_HAS_CUDA_MODULE 1
#else
#define TB_HAS_CUDA_MODULE 0
#define TB_INSTALL_CUDA_MODULE ""
#endif

#define TB_MAX_GPU_INDEX 63

tb_status tb_device_parse(const char *text, const char *field, tb_device *out, tb_err *err)
{
    if (!field) field = "device";
    memset(out, 0, sizeof *out);
    if (!text || strcmp(text, "cpu") == 0) return TB_OK;
    if (strcmp(text, "cuda") == 0) {
        out->cuda = 1;
        return TB_OK;
    }
    if (strncmp(text, "cuda:", 5) == 0 && text[5]) {
        char *end;
        errno = 0;
        long v = strtol(text + 5, &end, 10);
        if (!*end && errno == 0 && v >= 0 && v <= TB_MAX_GPU_INDEX && text[5] != '+' && text[5] != '-' &&
            text[5] != ' ') {
            out->cuda = 1;
            out->index = (int)v;
            return TB_OK;
        }
    }
    return tb_fail(err, TB_EINVAL, "%s = \"%s\" is not a device; allowed: cpu, cuda, cuda:N (N in [0, %d])", field,
                   text, TB_MAX_GPU_INDEX);
}

void tb_device_format(const tb_device *d, char *buf, size_t len)
{
    if (d->cuda) snprintf(buf, len, "cuda:%d", d->index);
    else snprintf(buf, len, "cpu");
}

/* ---- the module ------------------------------------------------------------- */

static pthread_once_t module_once = PTHREAD_ONCE_INIT;
static const tb_cuda_module *module;
static char module_why[512];

static int file_exists(const char *path)
{
    struct stat st;
    return path[0] && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void load_module(void)
{
    /* TUNEBENCH_CUDA_MODULE, then beside the plugins (relative to the executable:
     * <prefix>/lib/tunebench or the build directory), then the install path */
    const char *env = getenv("TUNEBENCH_CUDA_MODULE");
    char self[4096 + 32] = "";
    if (TB_HAS_CUDA_MODULE && tb_self_pkglibdir(self, 4096))
        strcat(self, "/libtunebench_cuda.so");
    const char *candidates[] = {env && *env ? env : "", self, TB_INSTALL_CUDA_MODULE};
    const char *path = NULL;
    for (size_t i = 0; i < TB_ARRAY_LEN(candidates) && !path; i++)
        if (file_exists(candidates[i])) path = candidates[i];
    if (!path) {
        if (env && *env)
            snprintf(module_why, sizeof module_why, "the CUDA backend module %s (TUNEBENCH_CUDA_MODULE) does not exist",
                     env);
        else if (TB_HAS_CUDA_MODULE)
            snprintf(module_why, sizeof module_why,
                     "the CUDA backend module was not found (looked for %s%s%s; reinstall tunebench or set "
                     "TUNEBENCH_CUDA_MODULE)", self[0] ? self : "", self[0] ? " and " : "", TB_INSTALL_CUDA_MODULE);
        else
            snprintf(module_why, sizeof module_why,
                     "this build has no CUDA backend (libtunebench_cuda.so was not built: configure with CUDA "
                     "under /usr/local/cuda and -DTB_CUDA=ON)");
        return;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(module_why, sizeof module_why, "the CUDA backend module cannot be loaded: %s", dlerror());
        return;
    }
    tb_cuda_module_get_fn get = (tb_cuda_module_get_fn)dlsym(h, TB_CUDA_MODULE_SYMBOL);
    const tb_cuda_module *m = get ? get() : NULL;
    if (!m || m->version != TB_CUDA_MODULE_VERSION ||
        m->struct_size < offsetof(tb_cuda_module, backend_destroy) + sizeof m->backend_destroy) {
        snprintf(module_why, sizeof module_why, "%s is not a tunebench CUDA module of version %d", path,
                 TB_CUDA_MODULE_VERSION);
        dlclose(h);
        return;
    }
    module = m; /* stays loaded for the life of the process */
}

static const tb_cuda_module *cuda_module(char *why, size_t len)
{
    pthread_once(&module_once, load_module);
    if (!module && why) snprintf(why, len, "%s", module_why);
    return module;
}

int tb_cuda_device_count(char *why, size_t len)
{
    char msg[512] = "";
    const tb_cuda_module *m = cuda_module(msg, sizeof msg);
    int n = m ? m->device_count(msg, sizeof msg) : 0;
    if (n <= 0 && why) snprintf(why, len, "%s", msg[0] ? msg : "no CUDA device");
    return n > 0 ? n : 0;
}

void tb_devices_report(char *buf, size_t len)
{
    size_t used = 0;
    if (len) buf[0] = '\0';
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    tb_appendf(buf, len, &used, "cpu      %ld core%s (OpenBLAS + OpenMP)\n", cores, cores == 1 ? "" : "s");
    char why[512] = "";
    const tb_cuda_module *m = cuda_module(why, sizeof why);
    if (!m) {
        tb_appendf(buf, len, &used, "cuda     unavailable: %s\n", why);
        return;
    }
    int n = m->device_count(why, sizeof why);
    if (n <= 0) {
        tb_appendf(buf, len, &used, "cuda     unavailable: %s\n", why);
        return;
    }
    for (int i = 0; i < n; i++) {
        tb_cuda_device_info info;
        if (m->device_info(i, &info, why, sizeof why) != 0) {
            tb_appendf(buf, len, &used, "cuda:%-3d unavailable: %s\n", i, why);
            continue;
        }
        tb_appendf(buf, len, &used, "cuda:%-3d %s, %.1f GiB (%.1f GiB free), compute capability %d.%d, %d SMs, bus %s\n",
               i, info.name, (double)info.total_bytes / 1073741824.0, (double)info.free_bytes / 1073741824.0,
               info.cc_major, info.cc_minor, info.multiprocessors, info.pci_bus);
    }
    char versions[256] = "";
    m->versions(versions, sizeof versions);
    tb_appendf(buf, len, &used, "         %s\n", versions);
}

tb_status tb_device_check(const tb_device *d, const char *field, tb_err *err)
{
    if (!d->cuda) return TB_OK;
    char why[512] = "";
    const tb_cuda_module *m = cuda_module(why, sizeof why);
    if (!m) return tb_fail(err, TB_EINVAL, "%s = cuda:%d: %s; use cpu", field, d->index, why);
    int n = m->device_count(why, sizeof why);
    if (n <= 0) return tb_fail(err, TB_EINVAL, "%s = cuda:%d: no GPU is available (%s); use cpu", field, d->index, why);
    if (d->index >= n)
        return tb_fail(err, TB_EINVAL, "%s = cuda:%d does not exist; allowed: cpu, cuda, cuda:0 to cuda:%d (%d GPU%s)",
                       field, d->index, n - 1, n, n == 1 ? "" : "s");
    return TB_OK;
}

tb_status tb_backend_create(const tb_device *d, const tb_backend_options *opt, tb_backend **out, tb_err *err)
{
    tb_backend_options none = {0};
    if (!opt) opt = &none;
    *out = NULL;
    if (!d->cuda) {
        *out = tb_backend_cpu_create(opt->threads);
        return *out ? TB_OK : tb_fail(err, TB_ENOMEM, "out of memory");
    }
    tb_status st = tb_device_check(d, "device", err);
    if (st != TB_OK) return st;
    char why[512] = "";
    const tb_cuda_module *m = cuda_module(why, sizeof why);
    tb_cuda_options co = {.memory_budget_bytes = opt->gpu_memory_budget, .tf32 = opt->tf32};
    tb_backend *be = m->backend_create(d->index, &co, why, sizeof why);
    if (!be) return tb_fail(err, TB_EDEVICE, "device cuda:%d: %s", d->index, why);
    const size_t table = be->ops->struct_size;
    if (table != sizeof(tb_backend_ops)) { /* built from another tunebench */
        m->backend_destroy(be);
        return tb_fail(err, TB_EFORMAT, "the CUDA module's backend table has %zu bytes, this tunebench's %zu: rebuild "
                       "libtunebench_cuda.so with this tunebench", table, sizeof(tb_backend_ops));
    }
    be->threads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    *out = be;
    return TB_OK;
}
