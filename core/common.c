#include "common.h"

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
    if (!isfinite(s)) return;
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
