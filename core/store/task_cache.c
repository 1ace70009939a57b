/* task_cache.c: prepared task data on disk (see task_cache.h). */
#define _DEFAULT_SOURCE /* flock() */
#include "task_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "TBTASKC" /* 8 bytes with its NUL */
#define BYTE_ORDER_MARK 0x01020304u
#define MAX_KEY (1u << 20)
#define PAYLOAD_ALIGN 64 /* the payload's offset in the file: pixels (float32 too) are used where they are mapped */

/* The fixed header, written as it is in memory (native byte order, marked). */
typedef struct cache_header {
    char magic[8];
    uint32_t format, byte_order, header_bytes, key_bytes;
    uint64_t payload_bytes;
    int32_t count, channels, height, width, classes, classes_guessed, is_f32, has_names;
    int32_t raw_has_norm, n_train, n_val, n_test;
    float raw_mean[4], raw_std[4], mean[4], std[4];
    char source[256];
} cache_header;

/* Zero bytes after the key so that header + key + padding is a multiple of PAYLOAD_ALIGN. */
static size_t pad_of(size_t key_len)
{
    size_t used = sizeof(cache_header) + key_len;
    return (PAYLOAD_ALIGN - used % PAYLOAD_ALIGN) % PAYLOAD_ALIGN;
}

/* ---- hashing ------------------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

void tb_task_cache_name(const char *key, char name[TB_TASK_CACHE_NAME_MAX])
{
    snprintf(name, TB_TASK_CACHE_NAME_MAX, "task-%016llx%016llx.tbcache",
             (unsigned long long)fnv1a(key, 0xcbf29ce484222325ull), (unsigned long long)fnv1a(key, 0x84222325cbf29ce4ull));
}

/* A checksum of a byte stream in 8-byte words, the same however the stream is cut into pieces. */
typedef struct checksum {
    uint64_t h, total;
    unsigned char buf[8];
    size_t n;
} checksum;

static uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static void sum_update(checksum *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    c->total += len;
    while (len > 0 && c->n > 0) { /* finish a word begun by the last piece */
        c->buf[c->n++] = *p++, len--;
        if (c->n == 8) {
            uint64_t w;
            memcpy(&w, c->buf, 8);
            c->h = mix(c->h, w), c->n = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c->h = mix(c->h, w);
    }
    if (len > 0) { /* fewer than 8 bytes left, and c->n is 0: the loops above emptied the buffer */
        memcpy(c->buf, p, len);
        c->n = len;
    }
}

static uint64_t sum_final(const checksum *c)
{
    uint64_t w = 0;
    memcpy(&w, c->buf, c->n);
    return mix(mix(c->h, w), c->total);
}

/* ---- the payload's pieces ------------------------------------------------------------------ */

typedef struct piece {
    const void *data;
    size_t bytes;
} piece;

/* The pieces of t's payload in file order (class names excluded: written apart). */
static int pieces_of(const tb_task *t, piece out[6])
{
    const tb_task_data *d = &t->raw;
    size_t sample = (size_t)d->channels * d->height * d->width;
    out[0] = d->pixels_f32 ? (piece){d->pixels_f32, sample * d->count * sizeof(float)}
                           : (piece){d->pixels, sample * d->count};
    out[1] = (piece){d->labels, (size_t)d->count * sizeof(int32_t)};
    out[2] = (piece){d->splits, (size_t)d->count};
    out[3] = (piece){t->train_idx, (size_t)t->n_train * sizeof(int32_t)};
    out[4] = (piece){t->val_idx, (size_t)t->n_val * sizeof(int32_t)};
    out[5] = (piece){t->test_idx, (size_t)t->n_test * sizeof(int32_t)};
    return 6;
}

/* ---- writing -------------------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes data and feeds the checksum. */
static int put(int fd, checksum *sum, const void *data, size_t len)
{
    sum_update(sum, data, len);
    return write_all(fd, data, len);
}

static atomic_uint tmp_counter;

tb_status tb_task_cache_write(const char *path, const char *key, const tb_task *t, tb_err *err)
{
    const tb_task_data *d = &t->raw;
    size_t key_len = strlen(key);
    if (key_len >= MAX_KEY) return tb_fail(err, TB_EINVAL, "task cache %s: the key is %zu bytes (at most %u)", path, key_len, MAX_KEY);
    cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.format = TB_TASK_CACHE_FORMAT;
    h.byte_order = BYTE_ORDER_MARK;
    h.header_bytes = sizeof h;
    h.key_bytes = (uint32_t)key_len;
    h.count = d->count, h.channels = d->channels, h.height = d->height, h.width = d->width;
    h.classes = d->classes, h.classes_guessed = d->classes_guessed, h.is_f32 = d->pixels_f32 != NULL;
    h.has_names = d->class_names != NULL;
    h.raw_has_norm = d->has_norm, h.n_train = t->n_train, h.n_val = t->n_val, h.n_test = t->n_test;
    memcpy(h.raw_mean, d->mean, sizeof h.raw_mean);
    memcpy(h.raw_std, d->std, sizeof h.raw_std);
    memcpy(h.mean, t->mean, sizeof h.mean);
    memcpy(h.std, t->std, sizeof h.std);
    memcpy(h.source, d->source, sizeof h.source);
    h.source[sizeof h.source - 1] = '\0';
    piece p[6];
    int np = pieces_of(t, p);
    for (int i = 0; i < np; i++) h.payload_bytes += p[i].bytes;
    if (h.has_names)
        for (int c = 0; c < d->classes; c++) h.payload_bytes += sizeof(uint32_t) + strlen(d->class_names[c]);

    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1)) >=
        (int)sizeof tmp)
        return tb_fail(err, TB_EINVAL, "task cache %s: the path is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return tb_fail(err, TB_EIO, "task cache %s: cannot create %s: %s", path, tmp, strerror(errno));
    checksum sum = {0};
    static const char zeros[PAYLOAD_ALIGN] = {0};
    int rc = put(fd, &sum, &h, sizeof h);
    if (rc == 0) rc = put(fd, &sum, key, key_len);
    if (rc == 0) rc = put(fd, &sum, zeros, pad_of(key_len)); /* the payload starts aligned: mapped in place */
    for (int i = 0; rc == 0 && i < np; i++) rc = put(fd, &sum, p[i].data, p[i].bytes);
    for (int c = 0; rc == 0 && h.has_names && c < d->classes; c++) {
        uint32_t n = (uint32_t)strlen(d->class_names[c]);
        rc = put(fd, &sum, &n, sizeof n);
        if (rc == 0) rc = put(fd, &sum, d->class_names[c], n);
    }
    uint64_t total = sum_final(&sum);
    if (rc == 0) rc = write_all(fd, &total, sizeof total);
    if (rc == 0) rc = fsync(fd);
    int e = errno;
    if (close(fd) != 0 && rc == 0) rc = -1, e = errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1, e = errno;
    if (rc != 0) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "task cache %s: cannot write: %s", path, strerror(e));
    }
    if (tb_fsync_parent(path) != 0)
        return tb_fail(err, TB_EIO, "task cache %s: written, but its directory could not be synced: %s", path,
                       strerror(errno));
    return TB_OK;
}

/* ---- reading -------------------------------------------------------------------------------- */

#define UNUSABLE(...)                                                                                               \
    do {                                                                                                            \
        tb_fail(err, TB_EFORMAT, __VA_ARGS__);                                                                      \
        goto unusable;                                                                                              \
    } while (0)

/* The file is mapped whole (private, pre-faulted): the checksum is computed
 * over the mapping, the pixels stay there (tb_task.mapped) and the small
 * arrays (labels, splits, indices, names) are copied out. */
int tb_task_cache_read(const char *path, const char *key, tb_task *out, tb_err *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        tb_fail(err, TB_EIO, "task cache %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    cache_header h;
    unsigned char *map = MAP_FAILED;
    size_t size = 0, key_len = strlen(key);
    if (fstat(fd, &st) != 0) UNUSABLE("task cache %s: cannot look at it: %s", path, strerror(errno));
    size = (size_t)st.st_size;
    if (size < sizeof h + sizeof(uint64_t))
        UNUSABLE("task cache %s: shorter than its header (%zu bytes)", path, size);
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) UNUSABLE("task cache %s: cannot map it: %s", path, strerror(errno));
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, MAGIC, 8) != 0) UNUSABLE("task cache %s: not a tunebench task cache (no magic)", path);
    if (h.format != TB_TASK_CACHE_FORMAT || h.byte_order != BYTE_ORDER_MARK || h.header_bytes != sizeof h)
        UNUSABLE("task cache %s: format %u (byte order 0x%08x, header %u bytes); this tunebench reads format %d "
                 "(0x%08x, %zu bytes)", path, h.format, h.byte_order, h.header_bytes, TB_TASK_CACHE_FORMAT,
                 BYTE_ORDER_MARK, sizeof h);
    if (h.key_bytes != key_len) UNUSABLE("task cache %s: made for another key", path);
    if (h.count < 1 || h.channels < 1 || h.channels > 4 || h.height < 1 || h.width < 1 || h.classes < 1 ||
        h.n_train < 0 || h.n_val < 0 || h.n_test < 0 || h.n_train > h.count || h.n_val > h.count ||
        h.n_test > h.count)
        UNUSABLE("task cache %s: impossible sizes in its header", path);
    const size_t start = sizeof h + key_len + pad_of(key_len);
    if ((uint64_t)size != start + h.payload_bytes + sizeof(uint64_t))
        UNUSABLE("task cache %s: %zu bytes, its header announces %llu", path, size,
                 (unsigned long long)(start + h.payload_bytes + sizeof(uint64_t)));
    if (memcmp(map + sizeof h, key, key_len) != 0) UNUSABLE("task cache %s: made for another key", path);
    checksum sum = {0};
    sum_update(&sum, map, start + h.payload_bytes);
    uint64_t stored_sum;
    memcpy(&stored_sum, map + start + h.payload_bytes, sizeof stored_sum);
    if (stored_sum != sum_final(&sum)) UNUSABLE("task cache %s: damaged (its checksum does not match)", path);

    tb_task_data *d = &out->raw;
    d->count = h.count, d->channels = h.channels, d->height = h.height, d->width = h.width;
    d->classes = h.classes, d->classes_guessed = h.classes_guessed, d->has_norm = h.raw_has_norm;
    memcpy(d->mean, h.raw_mean, sizeof d->mean);
    memcpy(d->std, h.raw_std, sizeof d->std);
    memcpy(d->source, h.source, sizeof d->source);
    d->source[sizeof d->source - 1] = '\0';
    out->n_train = h.n_train, out->n_val = h.n_val, out->n_test = h.n_test;
    memcpy(out->mean, h.mean, sizeof out->mean);
    memcpy(out->std, h.std, sizeof out->std);
    const size_t sample = (size_t)h.channels * h.height * h.width;
    if (sample > SIZE_MAX / 4 / (size_t)h.count) UNUSABLE("task cache %s: impossible sizes in its header", path);
    const size_t pixel_bytes = sample * h.count * (h.is_f32 ? sizeof(float) : 1);
    const size_t fixed = pixel_bytes + (size_t)h.count * (sizeof(int32_t) + 1) +
                         ((size_t)h.n_train + h.n_val + h.n_test) * sizeof(int32_t);
    if (fixed > h.payload_bytes)
        UNUSABLE("task cache %s: %llu payload bytes, its sizes need %zu", path, (unsigned long long)h.payload_bytes,
                 fixed);
    d->labels = malloc((size_t)h.count * sizeof(int32_t));
    d->splits = malloc((size_t)h.count);
    /* as tb_task_prepare allocates them: room for every sample */
    out->train_idx = malloc((size_t)h.count * sizeof(int32_t));
    out->val_idx = malloc((size_t)h.count * sizeof(int32_t));
    out->test_idx = malloc((size_t)h.count * sizeof(int32_t));
    if (!d->labels || !d->splits || !out->train_idx || !out->val_idx || !out->test_idx)
        UNUSABLE("task cache %s: out of memory for %d samples", path, h.count);
    const unsigned char *p = map + start;
    if (h.is_f32) d->pixels_f32 = (float *)(void *)(map + start);
    else d->pixels = map + start;
    out->mapped = map, out->mapped_bytes = size;
    map = MAP_FAILED; /* the task's from here: tb_task_free unmaps it */
    p += pixel_bytes;
    memcpy(d->labels, p, (size_t)h.count * sizeof(int32_t)), p += (size_t)h.count * sizeof(int32_t);
    memcpy(d->splits, p, (size_t)h.count), p += h.count;
    memcpy(out->train_idx, p, (size_t)h.n_train * sizeof(int32_t)), p += (size_t)h.n_train * sizeof(int32_t);
    memcpy(out->val_idx, p, (size_t)h.n_val * sizeof(int32_t)), p += (size_t)h.n_val * sizeof(int32_t);
    memcpy(out->test_idx, p, (size_t)h.n_test * sizeof(int32_t)), p += (size_t)h.n_test * sizeof(int32_t);
    size_t left = h.payload_bytes - fixed;
    if (h.has_names) {
        if (!(d->class_names = calloc((size_t)h.classes, sizeof *d->class_names)))
            UNUSABLE("task cache %s: out of memory", path);
        for (int c = 0; c < h.classes; c++) {
            uint32_t n;
            if (left < sizeof n) UNUSABLE("task cache %s: its class names are cut short", path);
            memcpy(&n, p, sizeof n), p += sizeof n, left -= sizeof n;
            if (left < n) UNUSABLE("task cache %s: its class names are cut short", path);
            if (!(d->class_names[c] = malloc((size_t)n + 1))) UNUSABLE("task cache %s: out of memory", path);
            memcpy(d->class_names[c], p, n), p += n, left -= n;
            d->class_names[c][n] = '\0';
        }
    }
    if (left != 0) UNUSABLE("task cache %s: %zu payload bytes unaccounted for", path, left);
    for (int i = 0; i < h.count; i++)
        if (d->labels[i] < 0 || d->labels[i] >= h.classes || d->splits[i] > 2)
            UNUSABLE("task cache %s: sample %d has an impossible label or split", path, i);
    const int32_t *idx[3] = {out->train_idx, out->val_idx, out->test_idx};
    const int n_idx[3] = {out->n_train, out->n_val, out->n_test};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < n_idx[s]; i++)
            if (idx[s][i] < 0 || idx[s][i] >= h.count) UNUSABLE("task cache %s: an index is out of range", path);
    close(fd);
    return 1;

unusable:
    if (map != MAP_FAILED) munmap(map, size);
    close(fd);
    tb_task_free(out);
    return -1;
}

/* ---- locking ---------------------------------------------------------------------------------- */

int tb_task_cache_lock(const char *path, double wait_s, tb_err *err)
{
    char lock[4200];
    if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock) {
        tb_fail(err, TB_EINVAL, "task cache %s: the path is too long", path);
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        tb_fail(err, TB_EIO, "task cache %s: cannot create the lock %s: %s", path, lock, strerror(errno));
        return -1;
    }
    double start = tb_now();
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            /* the holder before us removes the file before it unlocks (tb_task_cache_unlock):
             * a lock on a file no longer at the name guards nothing, so take the new one */
            struct stat held, named;
            if (fstat(fd, &held) == 0 && stat(lock, &named) == 0 && held.st_dev == named.st_dev &&
                held.st_ino == named.st_ino)
                return fd;
            close(fd);
            fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) {
                tb_fail(err, TB_EIO, "task cache %s: cannot create the lock %s: %s", path, lock, strerror(errno));
                return -1;
            }
            continue;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            tb_fail(err, TB_EIO, "task cache %s: cannot lock %s: %s", path, lock, strerror(errno));
            break;
        }
        if (tb_now() - start >= wait_s) {
            tb_fail(err, TB_EIO, "task cache %s: another run has been preparing it for over %.0f s", path, wait_s);
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    close(fd);
    return -1;
}

void tb_task_cache_unlock(const char *path, int fd)
{
    if (fd < 0) return;
    char lock[4200];
    /* removed while still held, so no lock file stays behind and a waiter sees it is gone */
    if (snprintf(lock, sizeof lock, "%s.lock", path) < (int)sizeof lock) (void)unlink(lock);
    flock(fd, LOCK_UN);
    close(fd);
}
