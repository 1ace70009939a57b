/* selfpath.c: the folder of this tunebench's plugins and CUDA module, from
 * the running executable (selfpath.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "selfpath.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TB_BUILD_DIR
#define TB_BUILD_DIR ""
#endif
#ifndef TB_EXE_TO_PKGLIBDIR
#define TB_EXE_TO_PKGLIBDIR "../lib/tunebench"
#endif

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tb_self_pkglibdir(char *dir, size_t len)
{
    if (len) dir[0] = '\0';
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= sizeof exe - 1) return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = '\0'; /* exe is now the executable's folder */
    const char *rel = TB_EXE_TO_PKGLIBDIR;
    char installed[PATH_MAX + 64];
    int m = rel[0] == '/' ? snprintf(installed, sizeof installed, "%s", rel)
                          : snprintf(installed, sizeof installed, "%s/%s", exe[0] ? exe : "", rel);
    if (m < 0 || (size_t)m >= sizeof installed) return NULL;
    /* an executable of the build tree: under the (still existing) build directory */
    char build[PATH_MAX];
    if (TB_BUILD_DIR[0] && realpath(TB_BUILD_DIR, build) && !is_dir(installed)) {
        size_t b = strlen(build);
        if (strncmp(exe, build, b) == 0 && (exe[b] == '\0' || exe[b] == '/')) {
            if ((size_t)snprintf(dir, len, "%s", build) >= len) {
                dir[0] = '\0';
                return NULL;
            }
            return "the build tree";
        }
    }
    /* ../lib/tunebench, written without the .. where the folder exists */
    char resolved[PATH_MAX];
    const char *out = realpath(installed, resolved) ? resolved : installed;
    if ((size_t)snprintf(dir, len, "%s", out) >= len) {
        dir[0] = '\0';
        return NULL;
    }
    return "next to the executable";
}
