/* fuzz_util.h: what the fuzz targets share: one temporary directory per
 * process (made on first use, removed at exit), writing a file, emptying a
 * directory, and journal framing (so inputs can reach past the CRC checks). */
#ifndef TB_FUZZ_UTIL_H
#define TB_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/journal.h"

static char fz_dir_[512];

static inline void fz_rm_tree(const char *path, int keep_top)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) fz_rm_tree(p, 0);
            else unlink(p);
        }
        closedir(d);
    }
    if (!keep_top) rmdir(path);
}

static inline void fz_cleanup_(void)
{
    if (fz_dir_[0]) fz_rm_tree(fz_dir_, 0);
}

/* The process's temporary directory (under $TMPDIR or /tmp). */
static inline const char * fz_dir(void)
{
    if (!fz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_dir_, sizeof fz_dir_, "%s/tbfuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fz_dir_)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_cleanup_);
    }
    return fz_dir_;
}

static inline void fz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static inline void fz_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

/* Journal input. The first byte picks the mode:
 *   odd:  the rest is the journal file, byte for byte (framing and CRCs fuzzed);
 *   even: the rest is a list of records, each u8 type, u16 length (little-endian,
 *         cut to what is left), payload; written with correct framing and CRCs,
 *         so the fuzzer works on what the records mean. If the first byte is
 *         >= 0x80 the last record is cut in half (a torn tail).
 * Returns a malloc'd file image and its size. */
static inline unsigned char * fz_journal_image(const uint8_t *data, size_t size, size_t *out_n)
{
    if (size == 0 || (data[0] & 1)) {
        unsigned char *img = malloc(size ? size : 1);
        if (size > 1) memcpy(img, data + 1, size - 1);
        *out_n = size ? size - 1 : 0;
        return img;
    }
    int torn = data[0] >= 0x80;
    size_t cap = 16 * size + 64, n = 0, last = 0;
    unsigned char *img = malloc(cap);
    size_t i = 1;
    while (i < size) {
        uint32_t type = data[i++];
        size_t len = 0;
        if (i < size) len = data[i++];
        if (i < size) len |= (size_t)data[i++] << 8;
        if (len > size - i) len = size - i;
        uint32_t plen = (uint32_t)(4 + len);
        last = n;
        fz_put32(img + n, plen);
        fz_put32(img + n + 4, tb_crc32c(0, img + n, 4));
        fz_put32(img + n + 8, type);
        memcpy(img + n + 12, data + i, len);
        fz_put32(img + n + 8 + plen, tb_crc32c(0, img + n + 8, plen));
        n += 12 + plen;
        i += len;
    }
    if (torn && n > last) n = last + (n - last) / 2;
    *out_n = n;
    return img;
}

#endif
