/* journal.c: the checksummed append-only record log (format in journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- CRC32C -------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t tb_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- little-endian helpers ------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- reading ------------------------------------------------------------------------ */

/* Reads the whole file; *buf is malloc'd (NULL when empty). */
static tb_status slurp(const char *path, unsigned char **buf, uint64_t *size, tb_err *err)
{
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tb_fail(err, TB_EIO, "journal %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tb_fail(err, TB_EIO, "journal %s: cannot stat: %s", path, strerror(e));
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = n ? malloc(n) : NULL;
    if (n && !p) {
        close(fd);
        return tb_fail(err, TB_ENOMEM, "journal %s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            return tb_fail(err, TB_EIO, "journal %s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break; /* shrank while reading: use what is there */
        got += (size_t)r;
    }
    close(fd);
    *buf = p;
    *size = got;
    return TB_OK;
}

/* The whole record at off (length, both checksums and bounds check): its
 * payload length, or 0 when there is no intact record at off. */
static uint32_t record_at(const unsigned char *buf, uint64_t size, uint64_t off)
{
    if (off > size || size - off < 8) return 0;
    uint32_t len = get_u32(buf + off);
    if (len < 4 || len > TB_JOURNAL_MAX_PAYLOAD) return 0;
    if (get_u32(buf + off + 4) != tb_crc32c(0, buf + off, 4)) return 0;
    if (size - off - 8 < (uint64_t)len + 4) return 0;
    const unsigned char *payload = buf + off + 8;
    if (get_u32(payload + len) != tb_crc32c(0, payload, len)) return 0;
    return len;
}

/* Walks the records in buf; returns the valid prefix length, or calls fn and
 * sets *rejected to the offset of a record fn refused (else UINT64_MAX).
 * *count (may be NULL): records in the valid prefix. */
static uint64_t walk(const unsigned char *buf, uint64_t size, tb_journal_fn fn, void *ctx, uint64_t *rejected,
                     uint64_t *count)
{
    uint64_t off = 0, n = 0;
    *rejected = UINT64_MAX;
    for (;;) {
        uint32_t len = record_at(buf, size, off);
        if (!len) break;
        const unsigned char *payload = buf + off + 8;
        if (fn && fn(ctx, get_u32(payload), payload + 4, len - 4) != 0) {
            *rejected = off;
            break;
        }
        off += 8 + (uint64_t)len + 4;
        n++;
    }
    if (count) *count = n;
    return off;
}

tb_status tb_journal_read(const char *path, tb_journal_fn fn, void *ctx, uint64_t *valid_bytes, uint64_t *file_bytes,
                          tb_err *err)
{
    unsigned char *buf;
    uint64_t size, rejected;
    tb_status st = slurp(path, &buf, &size, err);
    if (st != TB_OK) return st;
    uint64_t valid = walk(buf, size, fn, ctx, &rejected, NULL);
    free(buf);
    if (valid_bytes) *valid_bytes = valid;
    if (file_bytes) *file_bytes = size;
    if (rejected != UINT64_MAX)
        return tb_fail(err, TB_EFORMAT, "journal %s: the record at byte %llu has a valid checksum but bad contents",
                       path, (unsigned long long)rejected);
    return TB_OK;
}

/* The next offset after from where an intact record starts, or size. */
static uint64_t resync(const unsigned char *buf, uint64_t size, uint64_t from)
{
    for (uint64_t o = from; size >= 16 && o <= size - 16; o++)
        if (record_at(buf, size, o)) return o;
    return size;
}

tb_status tb_journal_scan(const char *path, tb_journal_damage *out, tb_err *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    uint64_t size, rejected;
    tb_status st = slurp(path, &buf, &size, err);
    if (st != TB_OK) return st;
    out->file_bytes = size;
    out->valid_bytes = walk(buf, size, NULL, NULL, &rejected, &out->records_valid);
    out->resync_at = size;
    if (out->valid_bytes < size) {
        /* past the damage: the next offset where a whole record checks, and
         * every intact record from there on (re-synchronising past more damage) */
        uint64_t off = resync(buf, size, out->valid_bytes + 1);
        out->resync_at = off;
        while (off < size) {
            uint32_t len = record_at(buf, size, off);
            if (len) {
                out->records_after++;
                out->bytes_after += 8 + (uint64_t)len + 4;
                off += 8 + (uint64_t)len + 4;
            } else {
                off = resync(buf, size, off + 1);
            }
        }
    }
    free(buf);
    return TB_OK;
}

tb_status tb_journal_save_tail(const char *path, uint64_t from, char *aside, size_t cap, tb_err *err)
{
    if (cap) aside[0] = '\0';
    unsigned char *buf;
    uint64_t size;
    tb_status st = slurp(path, &buf, &size, err);
    if (st != TB_OK) return st;
    if (from > size) from = size;
    char name[4096];
    int fd = -1;
    for (int k = 1; k < 100000 && fd < 0; k++) {
        if ((size_t)snprintf(name, sizeof name, "%s.damaged-%d", path, k) >= sizeof name) {
            free(buf);
            return tb_fail(err, TB_EINVAL, "journal %s: path too long to keep its damaged tail", path);
        }
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644); /* never overwrites */
        if (fd < 0 && errno != EEXIST) {
            int e = errno;
            free(buf);
            return tb_fail(err, TB_EIO, "journal %s: cannot create %s to keep its damaged tail: %s", path, name,
                           strerror(e));
        }
    }
    if (fd < 0) {
        free(buf);
        return tb_fail(err, TB_EIO, "journal %s: no free name for its damaged tail (%s)", path, name);
    }
    const unsigned char *p = buf ? buf + from : NULL;
    size_t left = (size_t)(size - from);
    int e = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        p += w, left -= (size_t)w;
    }
    free(buf);
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && tb_fsync_parent(name) != 0) e = errno;
    if (e) {
        unlink(name);
        return tb_fail(err, TB_EIO, "journal %s: cannot write its damaged tail to %s: %s", path, name, strerror(e));
    }
    if (cap) tb_copy_str(aside, cap, name);
    return TB_OK;
}

tb_status tb_journal_truncate(const char *path, uint64_t valid_bytes, tb_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return tb_fail(err, TB_EIO, "journal %s: cannot open to cut its torn tail: %s", path, strerror(errno));
    if (ftruncate(fd, (off_t)valid_bytes) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return tb_fail(err, TB_EIO, "journal %s: cannot cut the torn tail at byte %llu: %s", path,
                       (unsigned long long)valid_bytes, strerror(e));
    }
    close(fd);
    return TB_OK;
}

tb_status tb_journal_truncate_to_valid(const char *path, uint64_t *dropped_bytes, tb_err *err)
{
    uint64_t valid, size;
    if (dropped_bytes) *dropped_bytes = 0;
    tb_status st = tb_journal_read(path, NULL, NULL, &valid, &size, err);
    if (st != TB_OK) return st;
    if (valid == size) return TB_OK;
    st = tb_journal_truncate(path, valid, err);
    if (st == TB_OK && dropped_bytes) *dropped_bytes = size - valid;
    return st;
}

/* ---- appending ------------------------------------------------------------------------- */

struct tb_journal {
    int fd;
    uint64_t size;
    char path[];
};

/* Opens path for appending; size: its length in whole records (0 when created). */
static tb_status open_append(const char *path, int existed, uint64_t size, tb_journal **out, tb_err *err)
{
    size_t n = strlen(path);
    tb_journal *j = malloc(sizeof *j + n + 1);
    if (!j) return tb_fail(err, TB_ENOMEM, "journal %s: out of memory", path);
    memcpy(j->path, path, n + 1);
    j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        int e = errno;
        free(j);
        return tb_fail(err, TB_EIO, "journal %s: cannot open for appending: %s", path, strerror(e));
    }
    j->size = size;
    if (existed) {
        struct stat sb;
        if (fstat(j->fd, &sb) != 0 || (uint64_t)sb.st_size != size) {
            tb_journal_close(j);
            return tb_fail(err, TB_EFORMAT, "journal %s: changed while it was being opened (expected %llu bytes)",
                           path, (unsigned long long)size);
        }
    } else if (tb_fsync_parent(path) != 0) {
        int e = errno;
        tb_journal_close(j);
        return tb_fail(err, TB_EIO, "journal %s: cannot fsync its directory: %s", path, strerror(e));
    }
    *out = j;
    return TB_OK;
}

tb_status tb_journal_open(const char *path, tb_journal **out, tb_err *err)
{
    *out = NULL;
    struct stat st;
    int existed = stat(path, &st) == 0;
    uint64_t size = 0;
    if (existed) {
        uint64_t valid;
        tb_status s = tb_journal_read(path, NULL, NULL, &valid, &size, err);
        if (s != TB_OK) return s;
        if (valid != size)
            return tb_fail(err, TB_EFORMAT,
                           "journal %s: torn or damaged after byte %llu of %llu (recover it before appending)", path,
                           (unsigned long long)valid, (unsigned long long)size);
    }
    return open_append(path, existed, size, out, err);
}

tb_status tb_journal_open_valid(const char *path, uint64_t valid_bytes, tb_journal **out, tb_err *err)
{
    *out = NULL;
    return open_append(path, 1, valid_bytes, out, err);
}

tb_status tb_journal_append(tb_journal *j, uint32_t type, const void *data, size_t len, int durable, tb_err *err)
{
    if (len > TB_JOURNAL_MAX_PAYLOAD - 4)
        return tb_fail(err, TB_EINVAL, "journal %s: a record of %zu bytes is over the limit of %u", j->path, len,
                       TB_JOURNAL_MAX_PAYLOAD - 4);
    size_t total = 8 + 4 + len + 4;
    unsigned char stackbuf[512];
    unsigned char *rec = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!rec) return tb_fail(err, TB_ENOMEM, "journal %s: out of memory for a record of %zu bytes", j->path, len);
    put_u32(rec, (uint32_t)(len + 4));
    put_u32(rec + 4, tb_crc32c(0, rec, 4));
    put_u32(rec + 8, type);
    if (len) memcpy(rec + 12, data, len);
    put_u32(rec + 12 + len, tb_crc32c(0, rec + 8, len + 4));
    size_t done = 0;
    tb_status st = TB_OK;
    while (done < total) {
        ssize_t w = write(j->fd, rec + done, total - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = tb_fail(err, TB_EIO, "journal %s: write failed: %s", j->path, w < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)w;
    }
    if (rec != stackbuf) free(rec);
    if (st != TB_OK) {
        /* cut the partial record off so later appends stay readable */
        if (done > 0 && ftruncate(j->fd, (off_t)j->size) != 0) {
            /* the tail stays torn; recovery will cut it */
        }
        return st;
    }
    j->size += total;
    if (durable) return tb_journal_sync(j, err);
    return TB_OK;
}

tb_status tb_journal_sync(tb_journal *j, tb_err *err)
{
    if (fsync(j->fd) != 0) return tb_fail(err, TB_EIO, "journal %s: fsync failed: %s", j->path, strerror(errno));
    return TB_OK;
}

uint64_t tb_journal_size(const tb_journal *j) { return j->size; }

const char *tb_journal_path(const tb_journal *j) { return j->path; }

void tb_journal_close(tb_journal *j)
{
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    free(j);
}
