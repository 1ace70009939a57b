#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

tb_status tb_fail(tb_err *err, tb_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *tb_status_name(tb_status s)
{
    switch (s) {
    case TB_OK: return "ok";
    case TB_EINVAL: return "invalid";
    case TB_ENOMEM: return "out-of-memory";
    case TB_EIO: return "io-error";
    case TB_EFORMAT: return "bad-format";
    case TB_EDIVERGED: return "diverged";
    case TB_ECANCELLED: return "cancelled";
    case TB_ETIMEOUT: return "time-limit";
    case TB_EDEVICE: return "device-error";
    }
    return "unknown";
}

double tb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *tb_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}

void tb_aligned_free(void *p) { free(p); }

double tb_utc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tb_iso_utc(double s, char out[32])
{
    out[0] = '\0';
    /* years 0 to 9999 only: a damaged record's 1e180 must not reach the time_t conversion */
    if (!isfinite(s) || s < -62167219200.0 || s >= 253402300800.0) return;
    time_t t = (time_t)floor(s);
    int ms = (int)((s - floor(s)) * 1000.0);
    if (ms > 999) ms = 999;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (k == 0 || k > 24) {
        out[0] = '\0';
        return;
    }
    snprintf(out + k, 32 - k, ".%03uZ", (unsigned)ms % 1000u);
}

void tb_copy_str(char *dst, size_t cap, const char *src)
{
    if (!cap) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

int tb_appendf(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (cap == 0 || *used >= cap - 1) return -1;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (w < 0) {
        buf[*used] = '\0';
        return -1;
    }
    if ((size_t)w >= cap - *used) {
        *used = cap - 1;
        return -1;
    }
    *used += (size_t)w;
    return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

int tb_fsync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int tb_fsync_parent(const char *path)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    return tb_fsync_path(dir, 1);
}

int tb_rename_into_place(const char *tmp, const char *path)
{
    for (int tries = 0; tries < 3; tries++) {
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                errno = EISDIR;
                return -1;
            }
            if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
                errno = EEXIST; /* a FIFO, socket or device node: never replaced */
                return -1;
            }
            return rename(tmp, path);
        }
        if (errno != ENOENT) return -1;
        /* nothing there: link() fails rather than replace what appeared since */
        if (link(tmp, path) == 0) {
            (void)unlink(tmp);
            return 0;
        }
        if (errno == EEXIST) continue; /* something appeared: look again */
        /* a file system without hard links */
        if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != EMLINK && errno != ENOSYS)
            return -1;
        return rename(tmp, path);
    }
    errno = EEXIST;
    return -1;
}

int tb_rename_durable(const char *tmp, const char *path)
{
    if (tb_fsync_path(tmp, 0) != 0 || tb_rename_into_place(tmp, path) != 0) return -1;
    return tb_fsync_parent(path);
}

int tb_make_dirs(const char *path)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char ch = *p;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
        *p = ch;
        if (!ch) break;
    }
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
