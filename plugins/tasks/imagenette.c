/* imagenette.c: task plugin "imagenette", fastai's Imagenette (10 ImageNet
 * classes) from its published folder layout:
 *
 *   PATH/train/<wnid>/<image>.JPEG    PATH/val/<wnid>/<image>.JPEG
 *
 * as unpacked from imagenette2.tgz, imagenette2-320.tgz or imagenette2-160.tgz
 * (it cannot be downloaded on machines without network access; copy the
 * unpacked folder there). Class folders are found by listing, sorted by name
 * (torchvision's ImageFolder order), so labels 0..9 are n01440764 (tench) ..
 * n03888605 (parachute); other WordNet ids (e.g. Imagewoof) work too and keep
 * their folder name as class name.
 *
 * Images: decoded with libjpeg(-turbo) in parallel, each to its own slot, so
 * the result does not depend on the thread count. Every image becomes 3-channel
 * RGB (greyscale replicated; Adobe CMYK/YCCK converted as Pillow's convert("RGB")
 * does), is resized so its shorter side is `resolution` (the longer side
 * int(resolution * long / short)) with the host's antialiased bilinear resize,
 * then centre-cropped to resolution x resolution: torchvision's
 * Resize(resolution) + CenterCrop(resolution) on a PIL image (crop offsets
 * int(round((size - resolution) / 2)), Python's round half to even). With
 * dct_scaling (default) libjpeg decodes at the smallest scale M/8 whose output
 * is still at least the resized size, which is several times faster on large
 * JPEGs; the pixels then differ from a full-size decode by a few levels
 * (dct_scaling = false matches torchvision + Pillow bit for bit). EXIF
 * orientation is ignored, as torchvision's default loader does. A corrupt JPEG
 * is an error naming the file and libjpeg's message; recoverable damage
 * (a truncated file, extraneous bytes) is decoded, as Pillow would with
 * LOAD_TRUNCATED_IMAGES, and logged.
 *
 * Splits: "study" pools train/ and val/ and draws, per class from the fixed
 * split_seed, val_count validation and test_count test images and up to
 * train_count training images (the study's 13,000/500/500; every count
 * stratified by largest remainder). When the pool is smaller than the three
 * counts, validation and test are filled first and training gets the rest.
 * "folders" keeps train/ as training and splits val/ into validation and test
 * halves, stratified. Samples come in pool order (class, then train/ before
 * val/, then file name); the host shuffles.
 *
 * Cache: the decoded, resized images of the whole pool are kept in
 * host->cache_dir("imagenette")/imagenette-<key>.cache, one file per (absolute
 * path, resolution, dct_scaling), and stamped with a hash of the sorted file
 * list (relative paths, sizes, modification times). It is written to a
 * temporary file and renamed into place, and validated when read (magic,
 * version, header checksum, dimensions, counts, file-list stamp, labels, a
 * checksum per image); a stale or damaged cache is logged and rebuilt. A
 * cache the disk has no room for is skipped; temporary files left by killed
 * runs are removed after an hour. Only the selected images are read back, so
 * one cache serves every split setting. */
/* realpath, st_mtim; madvise's MADV_HUGEPAGE */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "imagenette"

/* TB_STREAM_SPLIT of the core's Philox streams (core/base/rng.h); sub-streams
 * SPLIT_SUB_BASE + class keep this plugin's draws apart from the host's. */
#define SPLIT_STREAM 5u
#define SPLIT_SUB_BASE 0x494e0000u /* "IN" */

#define LAYOUT_HELP                                                                                                    \
    "expected PATH/train/<wnid>/*.JPEG and PATH/val/<wnid>/*.JPEG as unpacked from imagenette2{,-320,-160}.tgz "       \
    "(Imagenette cannot be downloaded here: copy it to this machine)"

static const tb_plugin_option options[] = {
    {"path", TB_OPTION_PATH, NULL, 0, 0, NULL,
     "root of imagenette2, imagenette2-320 or imagenette2-160: the folder holding train/ and val/"},
    {"resolution", TB_OPTION_INT, "224", 16, 512, NULL,
     "shorter side resized to this, then centre crop to resolution x resolution (Resize + CenterCrop)"},
    {"split", TB_OPTION_CHOICE, "study", 0, 0, "study|folders",
     "study: pool train/ and val/, stratified draw of the counts below; folders: train/ trains, val/ halves "
     "validate and test"},
    {"split_seed", TB_OPTION_INT, "0", 0, 9007199254740991.0, NULL, "seed of the stratified split draws"},
    {"train_count", TB_OPTION_INT, "13000", 0, 100000000, NULL,
     "split=study: at most this many training images (what remains after validation and test)"},
    {"val_count", TB_OPTION_INT, "500", 0, 100000000, NULL, "split=study: validation images"},
    {"test_count", TB_OPTION_INT, "500", 0, 100000000, NULL, "split=study: test images"},
    {"threads", TB_OPTION_INT, "0", 0, 256, NULL, "decoding threads; 0: the host's thread count"},
    {"cache", TB_OPTION_BOOL, "true", 0, 0, NULL,
     "keep the decoded, resized images on disk so the next run starts in seconds"},
    {"dct_scaling", TB_OPTION_BOOL, "true", 0, 0, NULL,
     "decode large JPEGs at a reduced DCT scale (fast); false decodes at full size before resizing"},
};

/* Imagenette's classes in label order (sorted WordNet ids). */
static const char *const known_wnids[10] = {"n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                                            "n03394916", "n03417042", "n03425413", "n03445777", "n03888605"};
static const char *const known_names[10] = {"tench",     "English springer", "cassette player", "chain saw",
                                            "church",    "French horn",      "garbage truck",   "gas pump",
                                            "golf ball", "parachute"};

/* ---- small helpers ---------------------------------------------------------------- */

/* snprintf that may truncate (paths can be long; messages are cut, never overflow). */
static void fmt(char *dst, size_t n, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *dst, size_t n, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsnprintf(dst, n, format, ap);
    va_end(ap);
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv1a_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fnv1a(h, b, 8);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Fast checksum of a pixel block (four independent lanes of multiply-xor). */
static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h[4] = {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull, 0x2545f4914f6cdd1dull};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * (size_t)l, 8);
            h[l] = (h[l] ^ w) * 0x9e3779b97f4a7c15ull;
            h[l] ^= h[l] >> 31;
        }
    }
    uint64_t t = (uint64_t)n;
    for (; i < n; i++)
        t = (t ^ p[i]) * FNV_PRIME;
    return mix64(h[0] ^ mix64(h[1] + mix64(h[2] ^ mix64(h[3] + t))));
}

static int has_jpeg_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    const char *exts[] = {".jpeg", ".jpg", ".jpe"};
    for (size_t e = 0; e < sizeof exts / sizeof exts[0]; e++) {
        const char *a = dot, *b = exts[e];
        while (*a && *b && (*a | 0x20) == *b) /* ASCII lower case; '.' is unchanged by | 0x20 */
            a++, b++;
        if (!*a && !*b)
            return 1;
    }
    return 0;
}

/* Looks like a WordNet id: 'n' and eight digits. */
static int is_wnid(const char *s)
{
    if (s[0] != 'n' || strlen(s) != 9)
        return 0;
    for (int i = 1; i < 9; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Python's int(round(x / 2)) for an integer x >= 0: round half to even. */
static int half_round_even(int x)
{
    int q = x / 2;
    if (x % 2 == 0)
        return q;
    return (q % 2 == 0) ? q : q + 1; /* q + 0.5: to the even neighbour */
}

/* Asks for transparent huge pages under a large buffer about to be filled:
 * on virtual machines first-touch page faults otherwise cost more than
 * reading the cache (about 0.3 s per 100 MB here, 20x less with 2 MB pages).
 * Advisory only; the page-aligned interior of the block is ours. */
static void advise_huge_pages(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + n) & ~(huge - 1);
    if (b > a)
        madvise((void *)a, (size_t)(b - a), MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/* ---- listing -------------------------------------------------------------------- */

typedef struct entry {
    char *rel; /* "train/n01440764/x.JPEG" */
    int64_t size;
    int64_t mtime_ns;
    int32_t label;
    uint8_t from_val; /* 1: from val/ */
} entry;

typedef struct listing {
    entry *e;
    int n, cap;
    char **classes; /* sorted folder names (malloc'd) */
    int n_classes;
    int skipped; /* files that are not JPEGs */
    char skipped_example[256];
} listing;

static void listing_free(listing *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->e[i].rel);
    free(l->e);
    for (int c = 0; c < l->n_classes; c++)
        free(l->classes[c]);
    free(l->classes);
    memset(l, 0, sizeof *l);
}

/* Size and modification time of a listed file. */
typedef struct file_stat {
    int64_t size;
    int64_t mtime_ns;
} file_stat;

typedef struct dir_item {
    char *name;
    file_stat st;
} dir_item;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const dir_item *)a)->name, ((const dir_item *)b)->name);
}

/* Sorted names of the entries of dir that are directories (want_dirs) or
 * regular files, skipping hidden ones. The entry type comes from d_type; an
 * entry is stat()ed only when d_type cannot tell (DT_UNKNOWN, or DT_LNK, whose
 * target decides) or when stats is given (files: size and modification time
 * into (*stats)[i], malloc'd, parallel to the names), so each file is stat()ed
 * at most once. Returns the count or -1 (errno set). */
static int list_dir(const char *dir, int want_dirs, char ***out, file_stat **stats)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    dir_item *items = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    char p[4096];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        file_stat fs = {0, 0};
        int need_stat = de->d_type == DT_UNKNOWN || de->d_type == DT_LNK || (!want_dirs && stats);
        if (need_stat) {
            fmt(p, sizeof p, "%s/%s", dir, de->d_name);
            struct stat st;
            if (stat(p, &st) != 0)
                continue;
            if (want_dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
                continue;
            fs.size = (int64_t)st.st_size;
            fs.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + (int64_t)st.st_mtim.tv_nsec;
        } else if (de->d_type != (want_dirs ? DT_DIR : DT_REG)) {
            continue;
        }
        if (n == cap) {
            int nc = cap ? 2 * cap : 64;
            dir_item *t = realloc(items, (size_t)nc * sizeof *t);
            if (!t)
                goto oom;
            items = t;
            cap = nc;
        }
        if (!(items[n].name = strdup(de->d_name)))
            goto oom;
        items[n++].st = fs;
    }
    closedir(d);
    d = NULL;
    if (n > 1)
        qsort(items, (size_t)n, sizeof *items, cmp_item);
    /* nothing found: NULL arrays, as callers free only what has entries */
    char **names = n ? malloc((size_t)n * sizeof *names) : NULL;
    file_stat *st = n && stats ? malloc((size_t)n * sizeof *st) : NULL;
    if (n && (!names || (stats && !st))) {
        free(names);
        free(st);
        goto oom;
    }
    for (int i = 0; i < n; i++) {
        names[i] = items[i].name;
        if (st)
            st[i] = items[i].st;
    }
    free(items);
    *out = names;
    if (stats)
        *stats = st;
    return n;
oom:
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++)
        free(items[i].name);
    free(items);
    errno = ENOMEM;
    return -1;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* A clearer message when PATH is not the root of the layout: TB_EIO, or
 * TB_EINVAL when it is no folder at all (open_task leaves that check to this
 * listing, which only runs when PATH/train or PATH/val is missing). */
static tb_status explain_missing_split(const char *root, const char *split, char *err, size_t errlen)
{
    char **dirs = NULL, **files = NULL;
    int nd = list_dir(root, 1, &dirs, NULL);
    if (nd < 0 && errno == ENOTDIR) {
        fmt(err, errlen, "path %s is not a folder; " LAYOUT_HELP, root);
        return TB_EINVAL;
    }
    int nf = list_dir(root, 0, &files, NULL);
    char hint[768] = "";
    int wnids = 0;
    for (int i = 0; i < nd; i++)
        wnids += is_wnid(dirs[i]);
    for (int i = 0; i < nd && !hint[0]; i++)
        if (strncmp(dirs[i], "imagenette", 10) == 0 || strncmp(dirs[i], "imagewoof", 9) == 0)
            fmt(hint, sizeof hint, "; it holds %s/: set path to %s/%s", dirs[i], root, dirs[i]);
    for (int i = 0; i < nf && !hint[0]; i++)
        if (strstr(files[i], ".tgz") || strstr(files[i], ".tar"))
            fmt(hint, sizeof hint,
                "; it holds the archive %s: unpack it (tar xzf %s) and set path to the "
                "unpacked folder",
                files[i], files[i]);
    if (!hint[0] && wnids > 0)
        fmt(hint, sizeof hint,
            "; it holds class folders (%s, ...) itself: set path to its parent, the folder "
            "holding train/ and val/",
            dirs[0]);
    if (!hint[0] && nd == 0 && nf == 0)
        fmt(hint, sizeof hint, "; it is empty");
    fmt(err, errlen, "missing folder %s/%s%s; " LAYOUT_HELP, root, split, hint);
    if (nd > 0)
        free_names(dirs, nd);
    if (nf > 0)
        free_names(files, nf);
    return TB_EIO;
}

static tb_status list_tree(const tb_host_api *host, const char *root, listing *l, char *err, size_t errlen)
{
    static const char *const splits[2] = {"train", "val"};
    char **cls[2] = {NULL, NULL};
    int ncls[2] = {0, 0};
    char p[4096];
    tb_status st = TB_OK;

    for (int s = 0; s < 2; s++) {
        fmt(p, sizeof p, "%s/%s", root, splits[s]);
        if (!is_dir(p)) {
            st = explain_missing_split(root, splits[s], err, errlen);
            goto done;
        }
        ncls[s] = list_dir(p, 1, &cls[s], NULL);
        if (ncls[s] < 0) {
            fmt(err, errlen, "cannot list %s: %s", p, strerror(errno));
            ncls[s] = 0;
            st = TB_EIO;
            goto done;
        }
        if (ncls[s] == 0) {
            fmt(err, errlen,
                "%s holds no class folders; expected one folder per class (WordNet ids such as "
                "n01440764) of JPEG files; " LAYOUT_HELP,
                p);
            st = TB_EFORMAT;
            goto done;
        }
    }
    /* train/ and val/ must have the same classes */
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < ncls[s]; i++) {
            if (!bsearch(&cls[s][i], cls[1 - s], (size_t)ncls[1 - s], sizeof(char *), cmp_str)) {
                fmt(err, errlen,
                    "class folder %s/%s/%s has no counterpart %s/%s/%s; train/ and val/ must hold "
                    "the same class folders",
                    root, splits[s], cls[s][i], root, splits[1 - s], cls[s][i]);
                st = TB_EFORMAT;
                goto done;
            }
        }
    }
    l->classes = cls[0];
    l->n_classes = ncls[0];
    cls[0] = NULL;
    ncls[0] = 0;

    int nonwnid = 0, example = -1;
    for (int c = 0; c < l->n_classes; c++)
        if (!is_wnid(l->classes[c]) && nonwnid++ == 0)
            example = c;
    if (nonwnid)
        host->log(TB_LOG_WARN, PLUGIN_NAME,
                  "%s: %d of %d class folders are not WordNet ids (e.g. '%s'); using folder names as classes", root,
                  nonwnid, l->n_classes, l->classes[example]);

    for (int c = 0; c < l->n_classes; c++) {
        for (int s = 0; s < 2; s++) {
            fmt(p, sizeof p, "%s/%s/%s", root, splits[s], l->classes[c]);
            char **files = NULL;
            file_stat *fst = NULL;
            int nf = list_dir(p, 0, &files, &fst);
            if (nf < 0) {
                fmt(err, errlen, "cannot list %s: %s", p, strerror(errno));
                st = TB_EIO;
                goto done;
            }
            int found = 0;
            for (int i = 0; i < nf && st == TB_OK; i++) {
                if (!has_jpeg_ext(files[i])) {
                    if (l->skipped++ == 0)
                        fmt(l->skipped_example, sizeof l->skipped_example, "%s/%s/%s", splits[s], l->classes[c],
                            files[i]);
                    continue;
                }
                if (l->n == l->cap) {
                    int nc = l->cap ? 2 * l->cap : 1024;
                    entry *t = realloc(l->e, (size_t)nc * sizeof *t);
                    if (!t) {
                        st = TB_ENOMEM;
                        break;
                    }
                    l->e = t;
                    l->cap = nc;
                }
                entry *e = &l->e[l->n];
                size_t len = strlen(splits[s]) + strlen(l->classes[c]) + strlen(files[i]) + 3;
                if (!(e->rel = malloc(len))) {
                    st = TB_ENOMEM;
                    break;
                }
                fmt(e->rel, len, "%s/%s/%s", splits[s], l->classes[c], files[i]);
                e->size = fst[i].size;
                e->mtime_ns = fst[i].mtime_ns;
                e->label = c;
                e->from_val = (uint8_t)s;
                l->n++;
                found++;
            }
            free_names(files, nf);
            free(fst);
            if (st == TB_ENOMEM)
                fmt(err, errlen, "out of memory listing %s", p);
            if (st != TB_OK)
                goto done;
            if (found == 0) {
                fmt(err, errlen,
                    "class folder %s holds no JPEG files (*.JPEG, *.jpg); every class needs images "
                    "in train/ and val/",
                    p);
                st = TB_EFORMAT;
                goto done;
            }
        }
    }
    if (l->n > INT32_MAX / 2) {
        fmt(err, errlen, "%s holds too many images (%d)", root, l->n);
        st = TB_EINVAL;
    }
done:
    for (int s = 0; s < 2; s++)
        if (cls[s])
            free_names(cls[s], ncls[s]);
    if (st != TB_OK)
        listing_free(l);
    return st;
}

/* ---- splits --------------------------------------------------------------------- */

/* Distributes total over k classes in proportion to weight[c], at most cap[c]
 * each: floor shares, then one more at a time to the class furthest below its
 * exact share (ties: lower class). */
static void share(int64_t total, const int *weight, const int *cap, int k, int *out)
{
    int64_t wsum = 0, capsum = 0;
    for (int c = 0; c < k; c++) {
        wsum += weight[c];
        capsum += cap[c];
    }
    if (total <= 0 || total >= capsum || wsum == 0) {
        for (int c = 0; c < k; c++)
            out[c] = total >= capsum ? cap[c] : 0;
        return;
    }
    int64_t given = 0;
    for (int c = 0; c < k; c++) {
        int64_t f = wsum ? total * weight[c] / wsum : 0;
        out[c] = (int)(f < cap[c] ? f : cap[c]);
        given += out[c];
    }
    while (given < total) {
        int best = -1;
        int64_t best_def = 0;
        for (int c = 0; c < k; c++) {
            if (out[c] >= cap[c])
                continue;
            int64_t def = total * weight[c] - (int64_t)out[c] * wsum; /* (exact share - given) * wsum */
            if (best < 0 || def > best_def) {
                best = c;
                best_def = def;
            }
        }
        if (best < 0)
            break;
        out[best]++;
        given++;
    }
}

/* Assigns each pool entry a split (TB_SPLIT_*) or 255 (not used). */
static tb_status assign_splits(const tb_host_api *host, const tb_plugin_args *args, const listing *l, int folders,
                               uint8_t *split, int counts[3], char *err, size_t errlen)
{
    int k = l->n_classes;
    uint64_t seed = (uint64_t)host->arg_int(args, "split_seed");
    int *n_c = calloc((size_t)k, sizeof *n_c), *first = calloc((size_t)k, sizeof *first);
    int *cap = calloc((size_t)k, sizeof *cap), *q[3];
    int32_t *perm = malloc((size_t)l->n * sizeof *perm);
    int32_t *members = malloc((size_t)l->n * sizeof *members);
    for (int s = 0; s < 3; s++)
        q[s] = calloc((size_t)k, sizeof *q[s]);
    tb_status st = TB_OK;
    if (!n_c || !first || !cap || !perm || !members || !q[0] || !q[1] || !q[2]) {
        fmt(err, errlen, "out of memory assigning splits");
        st = TB_ENOMEM;
        goto done;
    }
    memset(split, 255, (size_t)l->n);
    counts[0] = counts[1] = counts[2] = 0;

    if (!folders) {
        /* pool order is class-major, so class c's members are contiguous */
        for (int i = 0; i < l->n; i++)
            n_c[l->e[i].label]++;
        for (int c = 1; c < k; c++)
            first[c] = first[c - 1] + n_c[c - 1];
        int64_t want[3] = {host->arg_int(args, "train_count"), host->arg_int(args, "val_count"),
                           host->arg_int(args, "test_count")};
        int64_t left = l->n;
        memcpy(cap, n_c, (size_t)k * sizeof *cap);
        static const int order[3] = {TB_SPLIT_VAL, TB_SPLIT_TEST, TB_SPLIT_TRAIN};
        for (int o = 0; o < 3; o++) {
            int s = order[o];
            int64_t t = want[s] < left ? want[s] : left;
            share(t, n_c, cap, k, q[s]);
            for (int c = 0; c < k; c++) {
                cap[c] -= q[s][c];
                left -= q[s][c];
            }
        }
        for (int c = 0; c < k; c++) {
            host->permutation(perm, n_c[c], seed, SPLIT_STREAM, SPLIT_SUB_BASE + (uint32_t)c);
            int j = 0;
            for (int o = 0; o < 3; o++) {
                int s = order[o];
                for (int m = 0; m < q[s][c]; m++, j++)
                    split[first[c] + perm[j]] = (uint8_t)s;
                counts[s] += q[s][c];
            }
        }
        if (counts[0] < want[0] || counts[1] < want[1] || counts[2] < want[2])
            host->log(TB_LOG_INFO, PLUGIN_NAME,
                      "the pool holds %d images, fewer than train_count %lld + val_count %lld + test_count %lld: "
                      "validation and test filled first, %d training images",
                      l->n, (long long)want[0], (long long)want[1], (long long)want[2], counts[0]);
    } else {
        /* train/ trains; val/ is halved, stratified, into validation and test */
        int nv = 0;
        for (int i = 0; i < l->n; i++) {
            if (l->e[i].from_val)
                n_c[l->e[i].label]++, nv++;
            else
                split[i] = TB_SPLIT_TRAIN, counts[TB_SPLIT_TRAIN]++;
        }
        memcpy(cap, n_c, (size_t)k * sizeof *cap);
        share(nv / 2, n_c, cap, k, q[TB_SPLIT_VAL]);
        for (int c = 0; c < k; c++) {
            int m = 0;
            for (int i = 0; i < l->n; i++)
                if (l->e[i].from_val && l->e[i].label == c)
                    members[m++] = i;
            host->permutation(perm, m, seed, SPLIT_STREAM, SPLIT_SUB_BASE + (uint32_t)c);
            for (int j = 0; j < m; j++) {
                int s = j < q[TB_SPLIT_VAL][c] ? TB_SPLIT_VAL : TB_SPLIT_TEST;
                split[members[perm[j]]] = (uint8_t)s;
                counts[s]++;
            }
        }
    }
done:
    free(n_c);
    free(first);
    free(cap);
    free(perm);
    free(members);
    for (int s = 0; s < 3; s++)
        free(q[s]);
    return st;
}

/* ---- decoding ------------------------------------------------------------------- */

typedef struct jerr_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int warnings;
    char warning[JMSG_LENGTH_MAX];
} jerr_mgr;

static void jerr_exit(j_common_ptr cinfo)
{
    jerr_mgr *m = (jerr_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, m->msg);
    longjmp(m->jump, 1);
}

static void jerr_output(j_common_ptr cinfo)
{
    (void)cinfo; /* plugins never print */
}

static void jerr_emit(j_common_ptr cinfo, int level)
{
    jerr_mgr *m = (jerr_mgr *)cinfo->err;
    if (level < 0) { /* a warning: corrupt but decodable data */
        if (m->warnings++ == 0)
            (*cinfo->err->format_message)(cinfo, m->warning);
        cinfo->err->num_warnings++;
    }
}

typedef struct decode_job {
    const tb_host_api *host;
    const char *root;
    const listing *l;
    const int32_t *which; /* pool indices to decode; slot j gets which[j] */
    int n;
    int res;
    int dct_scaling;
    uint8_t *pixels; /* [n, 3, res, res] */
    uint64_t *sums;  /* [n] checksum per slot, or NULL */
    atomic_int next;
    atomic_int done;
    atomic_int min_failed; /* smallest failed slot (n: none) */
    atomic_int warned;     /* files with libjpeg warnings */
    pthread_mutex_t lock;
    char err[1024]; /* the error of slot min_failed */
    tb_status err_status;
    char warning[1024]; /* first warning of the smallest warned slot */
    int warning_slot;
} decode_job;

typedef struct scratch {
    uint8_t *file, *hwc, *chw, *resized;
    size_t file_cap, hwc_cap, chw_cap, resized_cap;
} scratch;

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    uint8_t *t = realloc(*buf, need);
    if (!t)
        return -1;
    *buf = t;
    *cap = need;
    return 0;
}

static void scratch_free(scratch *s)
{
    free(s->file);
    free(s->hwc);
    free(s->chw);
    free(s->resized);
}

/* What decode_jpeg hands back besides pixels (kept out of the setjmp frame). */
typedef struct decoded {
    int width, height, components;
    int cmyk;
    int tw, th; /* the Resize target, from the original dimensions */
} decoded;

/* The part that runs under libjpeg's error handler (longjmp target in decode_jpeg). */
static void decode_body(struct jpeg_decompress_struct *cinfo, const decode_job *job, scratch *s, size_t nbytes,
                        decoded *d)
{
    jpeg_mem_src(cinfo, s->file, (unsigned long)nbytes);
    jpeg_read_header(cinfo, TRUE);
    int W = (int)cinfo->image_width, H = (int)cinfo->image_height;
    /* torchvision Resize(r): shorter side r, longer int(r * long / short), from
     * the original dimensions (also what process_slot resizes the decoded image to) */
    int r = job->res, tw, th;
    if (W <= H) {
        tw = r;
        th = (int)((double)r * H / W);
    } else {
        th = r;
        tw = (int)((double)r * W / H);
    }
    d->tw = tw;
    d->th = th;
    d->cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    cinfo->out_color_space = d->cmyk ? JCS_CMYK : JCS_RGB;
    cinfo->scale_num = 8;
    cinfo->scale_denom = 8;
    if (job->dct_scaling) {
        for (unsigned m = 1; m <= 8; m++) {
            cinfo->scale_num = m;
            jpeg_calc_output_dimensions(cinfo);
            if ((int)cinfo->output_width >= tw && (int)cinfo->output_height >= th)
                break;
        }
    }
    jpeg_start_decompress(cinfo);
    d->width = (int)cinfo->output_width;
    d->height = (int)cinfo->output_height;
    d->components = cinfo->output_components;
    size_t stride = (size_t)d->width * (size_t)d->components;
    if (grow(&s->hwc, &s->hwc_cap, stride * (size_t)d->height)) {
        strcpy(((jerr_mgr *)cinfo->err)->msg, "out of memory");
        longjmp(((jerr_mgr *)cinfo->err)->jump, 2);
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW rows[16];
        int nr = 0;
        for (; nr < 16 && cinfo->output_scanline + (unsigned)nr < cinfo->output_height; nr++)
            rows[nr] = s->hwc + (size_t)(cinfo->output_scanline + (unsigned)nr) * stride;
        jpeg_read_scanlines(cinfo, rows, (JDIMENSION)nr);
    }
    jpeg_finish_decompress(cinfo);
}

/* Decodes one file held in s->file; 0, or -1 with msg filled. */
static int decode_jpeg(const decode_job *job, scratch *s, size_t nbytes, decoded *d, jerr_mgr *jerr)
{
    struct jpeg_decompress_struct cinfo;
    cinfo.err = jpeg_std_error(&jerr->pub);
    jerr->pub.error_exit = jerr_exit;
    jerr->pub.output_message = jerr_output;
    jerr->pub.emit_message = jerr_emit;
    jerr->warnings = 0;
    jerr->msg[0] = jerr->warning[0] = 0;
    if (setjmp(jerr->jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    decode_body(&cinfo, job, s, nbytes, d);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

static void fail_slot(decode_job *job, int slot, tb_status st, const char *format, const char *path, const char *detail)
{
    pthread_mutex_lock(&job->lock);
    if (slot < atomic_load(&job->min_failed)) {
        atomic_store(&job->min_failed, slot);
        fmt(job->err, sizeof job->err, format, path, detail);
        job->err_status = st;
    }
    pthread_mutex_unlock(&job->lock);
}

/* Decodes, converts, resizes and crops pool entry which[slot] into its slot. */
static void process_slot(decode_job *job, scratch *s, int slot)
{
    const entry *e = &job->l->e[job->which[slot]];
    char path[4096];
    fmt(path, sizeof path, "%s/%s", job->root, e->rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail_slot(job, slot, TB_EIO, "cannot open %s: %s", path, strerror(errno));
        return;
    }
    size_t cap = e->size > 0 ? (size_t)e->size : 1;
    if (grow(&s->file, &s->file_cap, cap + 1)) {
        fclose(f);
        fail_slot(job, slot, TB_ENOMEM, "out of memory reading %s%s", path, "");
        return;
    }
    size_t nbytes = fread(s->file, 1, cap + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        fail_slot(job, slot, TB_EIO, "cannot read %s: %s", path, "read error");
        return;
    }
    if (nbytes > cap || (int64_t)nbytes != e->size) {
        fail_slot(job, slot, TB_EIO, "%s changed while loading%s; run again", path, "");
        return;
    }
    decoded d;
    jerr_mgr jerr;
    if (decode_jpeg(job, s, nbytes, &d, &jerr) != 0) {
        fail_slot(job, slot, TB_EFORMAT, "corrupt JPEG %s: %s", path, jerr.msg);
        return;
    }
    if (jerr.warnings) {
        pthread_mutex_lock(&job->lock);
        atomic_fetch_add(&job->warned, 1);
        if (job->warning_slot < 0 || slot < job->warning_slot) {
            job->warning_slot = slot;
            fmt(job->warning, sizeof job->warning, "%s: %s", path, jerr.warning);
        }
        pthread_mutex_unlock(&job->lock);
    }
    int w = d.width, h = d.height, r = job->res;
    size_t plane = (size_t)w * (size_t)h;
    if (d.components != 3 && d.components != 4) {
        char detail[64];
        fmt(detail, sizeof detail, "%d colour components", d.components);
        fail_slot(job, slot, TB_EFORMAT, "unsupported JPEG %s: %s", path, detail);
        return;
    }
    if (grow(&s->chw, &s->chw_cap, 3 * plane)) {
        fail_slot(job, slot, TB_ENOMEM, "out of memory decoding %s%s", path, "");
        return;
    }
    /* interleaved -> planar RGB */
    uint8_t *R = s->chw, *G = s->chw + plane, *B = s->chw + 2 * plane;
    const uint8_t *src = s->hwc;
    if (d.components == 3) {
        for (size_t i = 0; i < plane; i++, src += 3) {
            R[i] = src[0];
            G[i] = src[1];
            B[i] = src[2];
        }
    } else {
        /* libjpeg hands Adobe's inverted CMYK; Pillow reads it as "CMYK;I" and
         * converts with R = (255 - K) - C * (255 - K) / 255, i.e. here
         * v_c * v_k / 255 rounded as Pillow's MULDIV255. */
        for (size_t i = 0; i < plane; i++, src += 4) {
            unsigned k = src[3], t;
            t = src[0] * k + 128;
            R[i] = (uint8_t)(((t >> 8) + t) >> 8);
            t = src[1] * k + 128;
            G[i] = (uint8_t)(((t >> 8) + t) >> 8);
            t = src[2] * k + 128;
            B[i] = (uint8_t)(((t >> 8) + t) >> 8);
        }
    }
    /* resize: shorter side r (decode_body's target, from the original dimensions, as torchvision) */
    const int tw = d.tw, th = d.th;
    const uint8_t *img = s->chw;
    if (tw != w || th != h) {
        if (grow(&s->resized, &s->resized_cap, 3 * (size_t)tw * (size_t)th)) {
            fail_slot(job, slot, TB_ENOMEM, "out of memory resizing %s%s", path, "");
            return;
        }
        job->host->resize_u8(s->resized, th, tw, s->chw, h, w, 3);
        img = s->resized;
    }
    /* centre crop r x r: offsets int(round((size - r) / 2)) */
    int top = half_round_even(th - r), left = half_round_even(tw - r);
    uint8_t *dst = job->pixels + (size_t)slot * 3 * (size_t)r * (size_t)r;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < r; y++)
            memcpy(dst + ((size_t)c * r + y) * r, img + ((size_t)c * th + (size_t)(top + y)) * tw + left, (size_t)r);
    if (job->sums)
        job->sums[slot] = checksum(dst, 3 * (size_t)r * r);
}

static void *decode_worker(void *arg)
{
    decode_job *job = arg;
    scratch s;
    memset(&s, 0, sizeof s);
    for (;;) {
        int slot = atomic_fetch_add(&job->next, 1);
        if (slot >= job->n)
            break;
        /* slots after a failure are skipped; slots before it still run, so the
         * error reported is the first failing file whatever the thread count */
        if (slot < atomic_load(&job->min_failed))
            process_slot(job, &s, slot);
        atomic_fetch_add(&job->done, 1);
    }
    scratch_free(&s);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static tb_status decode_all(const tb_host_api *host, const char *root, const listing *l, const int32_t *which, int n,
                            int res, int dct_scaling, int threads, uint8_t *pixels, uint64_t *sums, char *err,
                            size_t errlen)
{
    decode_job job;
    memset(&job, 0, sizeof job);
    job.host = host;
    job.root = root;
    job.l = l;
    job.which = which;
    job.n = n;
    job.res = res;
    job.dct_scaling = dct_scaling;
    job.pixels = pixels;
    job.sums = sums;
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    atomic_init(&job.min_failed, n);
    atomic_init(&job.warned, 0);
    job.warning_slot = -1;
    job.err_status = TB_OK;
    pthread_mutex_init(&job.lock, NULL);

    if (threads > n)
        threads = n;
    if (threads < 1)
        threads = 1;
    double t0 = now_s();
    host->log(TB_LOG_INFO, PLUGIN_NAME, "decoding %d JPEGs from %s at %dx%d with %d thread%s", n, root, res, res,
              threads, threads == 1 ? "" : "s");
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int started = 0;
    if (tid)
        for (; started < threads; started++)
            if (pthread_create(&tid[started], NULL, decode_worker, &job) != 0)
                break;
    if (started == 0) {
        decode_worker(&job); /* no threads: decode here */
    } else {
        /* report progress on long loads (only this thread logs) */
        double last = t0;
        while (atomic_load(&job.done) < n) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            double t = now_s();
            if (t - last >= 10.0) {
                int dn = atomic_load(&job.done);
                host->log(TB_LOG_INFO, PLUGIN_NAME, "decoded %d/%d images (%.0f/s)", dn, n, dn / (t - t0));
                last = t;
            }
            if (atomic_load(&job.min_failed) < n && atomic_load(&job.next) >= n)
                break; /* workers are finishing their last slots */
        }
        for (int t = 0; t < started; t++)
            pthread_join(tid[t], NULL);
    }
    free(tid);
    pthread_mutex_destroy(&job.lock);
    double dt = now_s() - t0;
    int warned = atomic_load(&job.warned);
    if (warned > 0)
        host->log(TB_LOG_WARN, PLUGIN_NAME, "%d JPEG%s had recoverable errors and %s decoded anyway; first: %s", warned,
                  warned == 1 ? "" : "s", warned == 1 ? "was" : "were", job.warning);
    if (atomic_load(&job.min_failed) < n) {
        fmt(err, errlen, "%s", job.err);
        return job.err_status;
    }
    host->log(TB_LOG_INFO, PLUGIN_NAME, "decoded %d images in %.2f s (%.0f images/s, %d thread%s)", n, dt,
              dt > 0 ? n / dt : 0.0, threads, threads == 1 ? "" : "s");
    return TB_OK;
}

/* ---- cache ---------------------------------------------------------------------- */

#define CACHE_MAGIC "TBIMNETC"
#define CACHE_VERSION 1u

/* Fixed little-endian-in-practice header (the cache never leaves the machine). */
typedef struct cache_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t count, channels, height, width, classes, resolution, dct_scaling, reserved;
    uint64_t slot_key;    /* (absolute path, resolution, dct_scaling) */
    uint64_t content_key; /* the sorted file list with sizes and mtimes, and class folders */
    uint64_t table_sum;   /* checksum of labels + per-image checksums */
    uint64_t header_sum;  /* checksum of everything above */
} cache_header;

static uint64_t header_checksum(const cache_header *h)
{
    return checksum((const uint8_t *)h, offsetof(cache_header, header_sum));
}

static uint64_t table_checksum(const int32_t *labels, const uint64_t *sums, int n)
{
    return mix64(checksum((const uint8_t *)labels, (size_t)n * sizeof *labels) ^
                 mix64(checksum((const uint8_t *)sums, (size_t)n * sizeof *sums)));
}

static uint64_t slot_key_of(const char *abs, int res, int dct)
{
    uint64_t h = fnv1a(FNV_OFFSET, abs, strlen(abs) + 1);
    h = fnv1a_u64(h, (uint64_t)res);
    h = fnv1a_u64(h, (uint64_t)dct);
    return fnv1a_u64(h, CACHE_VERSION);
}

static uint64_t content_key_of(const listing *l)
{
    uint64_t h = FNV_OFFSET;
    for (int c = 0; c < l->n_classes; c++)
        h = fnv1a(h, l->classes[c], strlen(l->classes[c]) + 1);
    for (int i = 0; i < l->n; i++) {
        h = fnv1a(h, l->e[i].rel, strlen(l->e[i].rel) + 1);
        h = fnv1a_u64(h, (uint64_t)l->e[i].size);
        h = fnv1a_u64(h, (uint64_t)l->e[i].mtime_ns);
    }
    return mix64(h);
}

/* Reads the images which[0..n) of the cached pool into pixels; 0 on success,
 * else -1 with why (stale, damaged, absent) in reason. */
static int cache_read(const char *file, const cache_header *want, const listing *l, const int32_t *which, int n,
                      uint8_t *pixels, char *reason, size_t rlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fmt(reason, rlen, "%s", errno == ENOENT ? "absent" : strerror(errno));
        return -1;
    }
    int ok = -1;
    int32_t *labels = NULL;
    uint64_t *sums = NULL;
    cache_header h;
    size_t img = 3 * (size_t)want->resolution * want->resolution;
    if (fread(&h, sizeof h, 1, f) != 1) {
        fmt(reason, rlen, "damaged: shorter than its header");
        goto done;
    }
    if (memcmp(h.magic, CACHE_MAGIC, 8) != 0) {
        fmt(reason, rlen, "damaged: not a tunebench imagenette cache (bad magic)");
        goto done;
    }
    if (h.version != CACHE_VERSION || h.header_bytes != sizeof h) {
        fmt(reason, rlen, "stale: format version %u, this plugin writes %u", h.version, CACHE_VERSION);
        goto done;
    }
    if (h.header_sum != header_checksum(&h)) {
        fmt(reason, rlen, "damaged: header checksum mismatch");
        goto done;
    }
    if (h.slot_key != want->slot_key || h.resolution != want->resolution || h.dct_scaling != want->dct_scaling ||
        h.channels != 3 || h.height != want->resolution || h.width != want->resolution) {
        fmt(reason, rlen, "stale: made for another path or resolution (%ux%u)", h.height, h.width);
        goto done;
    }
    if (h.content_key != want->content_key || h.count != want->count || h.classes != want->classes) {
        fmt(reason, rlen, "stale: the files changed since it was written (%u cached, %u now)", h.count, want->count);
        goto done;
    }
    struct stat st;
    memset(&st, 0, sizeof st);
    off_t expect =
        (off_t)sizeof h + (off_t)h.count * (off_t)(sizeof *labels + sizeof *sums) + (off_t)h.count * (off_t)img;
    if (fstat(fileno(f), &st) != 0 || st.st_size != expect) {
        fmt(reason, rlen, "damaged: %lld bytes, expected %lld (truncated?)", (long long)st.st_size, (long long)expect);
        goto done;
    }
    labels = malloc((size_t)h.count * sizeof *labels);
    sums = malloc((size_t)h.count * sizeof *sums);
    if (!labels || !sums) {
        fmt(reason, rlen, "out of memory");
        goto done;
    }
    if (fread(labels, sizeof *labels, h.count, f) != h.count || fread(sums, sizeof *sums, h.count, f) != h.count) {
        fmt(reason, rlen, "damaged: read error");
        goto done;
    }
    if (h.table_sum != table_checksum(labels, sums, (int)h.count)) {
        fmt(reason, rlen, "damaged: label table checksum mismatch");
        goto done;
    }
    for (int i = 0; i < l->n; i++) {
        if (labels[i] != l->e[i].label) {
            fmt(reason, rlen, "stale: labels differ from the folders");
            goto done;
        }
    }
    off_t base = (off_t)sizeof h + (off_t)h.count * (off_t)(sizeof *labels + sizeof *sums);
    off_t pos = -1;
    for (int j = 0; j < n; j++) {
        off_t at = base + (off_t)which[j] * (off_t)img;
        if (at != pos && fseeko(f, at, SEEK_SET) != 0) {
            fmt(reason, rlen, "damaged: seek failed");
            goto done;
        }
        uint8_t *dst = pixels + (size_t)j * img;
        if (fread(dst, 1, img, f) != img) {
            fmt(reason, rlen, "damaged: read error at image %d", which[j]);
            goto done;
        }
        pos = at + (off_t)img;
        if (checksum(dst, img) != sums[which[j]]) {
            fmt(reason, rlen, "damaged: checksum mismatch of image %d (%s)", which[j], l->e[which[j]].rel);
            goto done;
        }
    }
    ok = 0;
done:
    free(labels);
    free(sums);
    fclose(f);
    return ok;
}

/* Writes the whole pool (pixels [l->n, 3, r, r], sums [l->n]) atomically:
 * a temporary file in the same directory, renamed over the old one. */
/* Removes temporary files of `file` (file.XXXXXX) left by a run killed while
 * writing; only those untouched for an hour, so a concurrent writer is safe. */
static void remove_stale_temps(const char *dir, const char *file)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    time_t now = time(NULL);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, base, blen) != 0 || de->d_name[blen] != '.' || strlen(de->d_name) != blen + 7)
            continue;
        char p[4400];
        fmt(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > 3600)
            unlink(p);
    }
    closedir(d);
}

static void cache_write(const tb_host_api *host, const char *dir, const char *file, const cache_header *want,
                        const listing *l, const uint8_t *pixels, const uint64_t *sums)
{
    size_t img = 3 * (size_t)want->resolution * want->resolution;
    remove_stale_temps(dir, file);
    /* leave room on the disk: skip the cache rather than fill it */
    double need = (double)sizeof *want + (double)l->n * ((double)img + 12.0);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < need * 1.05 + 256e6) {
        host->log(TB_LOG_WARN, PLUGIN_NAME,
                  "not writing the cache to %s: it needs %.0f MB and the disk has %.0f MB free; continuing without",
                  dir, need / 1e6, (double)vfs.f_bavail * (double)vfs.f_frsize / 1e6);
        return;
    }
    char tmp[4200];
    fmt(tmp, sizeof tmp, "%s.XXXXXX", file);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        host->log(TB_LOG_WARN, PLUGIN_NAME, "cannot write the cache %s: %s; continuing without", tmp, strerror(errno));
        return;
    }
    FILE *f = fdopen(fd, "wb");
    int32_t *labels = malloc((size_t)l->n * sizeof *labels);
    int ok = f != NULL && labels != NULL;
    if (ok) {
        for (int i = 0; i < l->n; i++)
            labels[i] = l->e[i].label;
        cache_header h = *want;
        h.table_sum = table_checksum(labels, sums, l->n);
        h.header_sum = header_checksum(&h);
        ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(labels, sizeof *labels, (size_t)l->n, f) == (size_t)l->n &&
             fwrite(sums, sizeof *sums, (size_t)l->n, f) == (size_t)l->n &&
             fwrite(pixels, img, (size_t)l->n, f) == (size_t)l->n;
    }
    int saved = errno;
    if (f) {
        if (fclose(f) != 0 && ok) {
            ok = 0;
            saved = errno;
        }
    } else {
        close(fd);
    }
    free(labels);
    if (ok && rename(tmp, file) != 0) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        host->log(TB_LOG_WARN, PLUGIN_NAME, "cannot write the cache %s: %s; continuing without", file, strerror(saved));
        return;
    }
    host->log(TB_LOG_INFO, PLUGIN_NAME, "cached %d images at %dx%d in %s (%.1f MB)", l->n, want->resolution,
              want->resolution, file, (double)l->n * (double)img / 1e6);
}

/* ---- open_task ------------------------------------------------------------------ */

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    /* The plugin is built with ABI minor TB_PLUGIN_ABI_MINOR and the loader
     * refuses it on a host with an older minor (core/host/loader.c), so every
     * tb_host_api member up to task_data_free is there and set. */
    const char *path = host->arg_string(args, "path");
    int res = (int)host->arg_int(args, "resolution");
    int folders = host->arg_int(args, "split") == 1; /* the index in "study|folders" */
    int threads = (int)host->arg_int(args, "threads");
    int use_cache = host->arg_bool(args, "cache");
    int dct = host->arg_bool(args, "dct_scaling");
    if (threads <= 0)
        threads = host->threads();
    if (threads <= 0)
        threads = 1;

    if (!path || !path[0]) {
        fmt(err, errlen, "option path is required; " LAYOUT_HELP);
        return TB_EINVAL;
    }
    if (res < 1) {
        fmt(err, errlen, "resolution %d must be positive", res);
        return TB_EINVAL;
    }
    char abs[4096];
    if (!realpath(path, abs)) {
        fmt(err, errlen, "path %s: %s; " LAYOUT_HELP, path, strerror(errno));
        return TB_EIO;
    }
    /* a path that is no folder is reported by list_tree (explain_missing_split) */

    listing l;
    memset(&l, 0, sizeof l);
    tb_status st = list_tree(host, abs, &l, err, errlen);
    if (st != TB_OK)
        return st;
    if (l.skipped)
        host->log(TB_LOG_WARN, PLUGIN_NAME, "skipped %d file%s that %s not JPEG (e.g. %s)", l.skipped,
                  l.skipped == 1 ? "" : "s", l.skipped == 1 ? "is" : "are", l.skipped_example);

    uint8_t *split = malloc((size_t)l.n);
    int32_t *which = malloc((size_t)l.n * sizeof *which);
    uint64_t *sums = NULL;
    tb_task_data d;
    memset(&d, 0, sizeof d);
    int counts[3];
    size_t img = 3 * (size_t)res * (size_t)res;
    if (!split || !which) {
        fmt(err, errlen, "out of memory");
        st = TB_ENOMEM;
        goto fail;
    }
    st = assign_splits(host, args, &l, folders, split, counts, err, errlen);
    if (st != TB_OK)
        goto fail;
    int n = 0;
    for (int i = 0; i < l.n; i++)
        if (split[i] != 255)
            which[n++] = i;
    if (n == 0) {
        fmt(err, errlen,
            "the split settings select no images (train_count, val_count and "
            "test_count are all 0)");
        st = TB_EINVAL;
        goto fail;
    }
    host->log(TB_LOG_INFO, PLUGIN_NAME,
              "%s: %d classes, %d images (train/ and val/); split=%s: %d train, %d val, "
              "%d test",
              abs, l.n_classes, l.n, folders ? "folders" : "study", counts[TB_SPLIT_TRAIN], counts[TB_SPLIT_VAL],
              counts[TB_SPLIT_TEST]);

    d.count = n;
    d.channels = 3;
    d.height = d.width = res;
    d.classes = l.n_classes;
    d.labels = host->alloc((size_t)n * sizeof *d.labels);
    d.splits = host->alloc((size_t)n);
    d.class_names = host->alloc((size_t)l.n_classes * sizeof *d.class_names);
    if (d.class_names)
        memset(d.class_names, 0, (size_t)l.n_classes * sizeof *d.class_names);
    if (!d.labels || !d.splits || !d.class_names) {
        fmt(err, errlen, "out of memory");
        st = TB_ENOMEM;
        goto fail;
    }
    for (int c = 0; c < l.n_classes; c++) {
        const char *name = l.classes[c];
        for (int k = 0; k < 10; k++)
            if (strcmp(name, known_wnids[k]) == 0)
                name = known_names[k];
        size_t len = strlen(name) + 1;
        if (!(d.class_names[c] = host->alloc(len))) {
            fmt(err, errlen, "out of memory");
            st = TB_ENOMEM;
            goto fail;
        }
        memcpy(d.class_names[c], name, len);
    }
    for (int j = 0; j < n; j++) {
        d.labels[j] = l.e[which[j]].label;
        d.splits[j] = split[which[j]];
    }
    d.has_norm = 1;
    d.mean[0] = 0.485f, d.mean[1] = 0.456f, d.mean[2] = 0.406f;
    d.std[0] = 0.229f, d.std[1] = 0.224f, d.std[2] = 0.225f;
    fmt(d.source, sizeof d.source, "imagenette %s (%d images, %dx%d)", abs, l.n, res, res);
    if (n > 0 && img > SIZE_MAX / (size_t)n) {
        fmt(err, errlen, "%d images at %dx%d do not fit in memory", n, res, res);
        st = TB_ENOMEM;
        goto fail;
    }
    d.pixels = host->alloc((size_t)n * img);
    if (d.pixels)
        advise_huge_pages(d.pixels, (size_t)n * img);
    if (!d.pixels) {
        fmt(err, errlen, "out of memory for %d images at %dx%d (%.1f GB)", n, res, res, (double)n * (double)img / 1e9);
        st = TB_ENOMEM;
        goto fail;
    }

    /* the cache */
    const char *cdir = NULL;
    char cfile[4096] = "";
    cache_header want;
    memset(&want, 0, sizeof want);
    if (use_cache) {
        cdir = host->cache_dir(PLUGIN_NAME);
        if (!cdir)
            host->log(TB_LOG_WARN, PLUGIN_NAME, "no cache directory; decoding without a cache");
    }
    if (cdir) {
        memcpy(want.magic, CACHE_MAGIC, 8);
        want.version = CACHE_VERSION;
        want.header_bytes = sizeof want;
        want.count = (uint32_t)l.n;
        want.channels = 3;
        want.height = want.width = want.resolution = (uint32_t)res;
        want.classes = (uint32_t)l.n_classes;
        want.dct_scaling = (uint32_t)dct;
        want.slot_key = slot_key_of(abs, res, dct);
        want.content_key = content_key_of(&l);
        fmt(cfile, sizeof cfile, "%s/imagenette-%016llx.cache", cdir, (unsigned long long)want.slot_key);
        char reason[512];
        double t0 = now_s();
        if (cache_read(cfile, &want, &l, which, n, d.pixels, reason, sizeof reason) == 0) {
            double dt = now_s() - t0;
            host->log(TB_LOG_INFO, PLUGIN_NAME, "loaded %d images from the cache %s in %.2f s (%.0f images/s)", n,
                      cfile, dt, dt > 0 ? n / dt : 0.0);
            goto success;
        }
        if (strcmp(reason, "absent") == 0)
            host->log(TB_LOG_INFO, PLUGIN_NAME, "no cache yet for %s at %dx%d; it will be written to %s", abs, res, res,
                      cfile);
        else
            host->log(TB_LOG_WARN, PLUGIN_NAME, "cache %s not used (%s); decoding and rewriting it", cfile, reason);

        /* decode the whole pool so the cache serves any split setting, into one
         * buffer of l.n images that becomes the output: after the cache is
         * written it is compacted in place to the n selected images, as hdf5.c
         * does (which[] ascends, so image j moves down from which[j] >= j and
         * no source is overwritten before it is read). Peak memory: l.n images,
         * not n + l.n; the tail stays allocated until the host frees the data. */
        if (n < l.n) {
            host->free(d.pixels);
            d.pixels = img > SIZE_MAX / (size_t)l.n ? NULL : host->alloc((size_t)l.n * img);
            if (d.pixels)
                advise_huge_pages(d.pixels, (size_t)l.n * img);
        }
        sums = malloc((size_t)l.n * sizeof *sums);
        int32_t *all = malloc((size_t)l.n * sizeof *all);
        if (!sums || !all || !d.pixels) {
            free(all);
            fmt(err, errlen, "out of memory for the %d images of the pool", l.n);
            st = TB_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < l.n; i++)
            all[i] = i;
        st = decode_all(host, abs, &l, all, l.n, res, dct, threads, d.pixels, sums, err, errlen);
        free(all);
        if (st != TB_OK)
            goto fail;
        cache_write(host, cdir, cfile, &want, &l, d.pixels, sums);
        for (int j = 0; j < n; j++)
            if (which[j] != j)
                memcpy(d.pixels + (size_t)j * img, d.pixels + (size_t)which[j] * img, img);
        goto success;
    }
    st = decode_all(host, abs, &l, which, n, res, dct, threads, d.pixels, NULL, err, errlen);
    if (st != TB_OK)
        goto fail;

success:
    free(sums);
    free(split);
    free(which);
    listing_free(&l);
    *out = d;
    return TB_OK;

fail:
    free(sums);
    free(split);
    free(which);
    listing_free(&l);
    host->task_data_free(&d);
    return st;
}

/* 3 x resolution x resolution (Resize + CenterCrop); the class count is the
 * number of class folders, which only the load counts: left unknown (0). */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)err, (void)errlen;
    out->channels = 3;
    out->height = out->width = (int)host->arg_int(args, "resolution");
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_TASK,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .license = "MIT",
    .description = "fastai's Imagenette (10 ImageNet classes) from its train/ and val/ JPEG folders, resized and "
                   "cached; the study's 13,000/500/500 split",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
