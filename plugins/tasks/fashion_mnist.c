/* fashion_mnist.c: task plugin "fashion_mnist", Zalando's Fashion-MNIST from
 * its four IDX files:
 *
 *   PATH/train-images-idx3-ubyte.gz   PATH/train-labels-idx1-ubyte.gz
 *   PATH/t10k-images-idx3-ubyte.gz    PATH/t10k-labels-idx1-ubyte.gz
 *
 * gzip-compressed or plain (the same names without .gz), by default in
 * /usr/share/datasets/fashion-mnist where Debian's package
 * dataset-fashion-mnist installs them. The 60,000 training images form the
 * training split and the 10,000 test images the test split; there is no
 * validation split (the host carves one when val_fraction > 0). Images are
 * 1x28x28 uint8, labels 0..9 with torchvision's FashionMNIST.classes as
 * names, normalisation the training set's mean 0.2860 and std 0.3530. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "fashion_mnist"
#define DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define PACKAGE_HINT "Debian's package dataset-fashion-mnist installs them in " DEFAULT_DIR

#define SIDE 28
#define CLASSES 10
#define IDX_MAGIC_IMAGES 2051u /* 0x00000803: uint8, 3 dimensions */
#define IDX_MAGIC_LABELS 2049u /* 0x00000801: uint8, 1 dimension */
#define IDX_MAX_COUNT 10000000u

static const tb_plugin_option options[] = {
    {"path", TB_OPTION_PATH, DEFAULT_DIR, 0, 0, NULL,
     "folder holding the four IDX files (train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz])"},
};

/* torchvision.datasets.FashionMNIST.classes */
static const char *const class_names[CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static void fail_msg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_msg(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint32_t be32(const unsigned char *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* <dir>/<base>.gz, else <dir>/<base>. */
static tb_status find_file(char *out, size_t len, const char *dir, const char *base, char *err, size_t errlen)
{
    int k = snprintf(out, len, "%s/%s.gz", dir, base);
    if (k < 0 || (size_t)k >= len) {
        fail_msg(err, errlen, "folder name %s is too long", dir);
        return TB_EINVAL;
    }
    if (is_file(out)) return TB_OK;
    char plain[1100];
    k = snprintf(plain, sizeof plain, "%s/%s", dir, base);
    if (k < 0 || (size_t)k >= sizeof plain || (size_t)k >= len) {
        fail_msg(err, errlen, "folder name %s is too long", dir);
        return TB_EINVAL;
    }
    if (is_file(plain)) {
        memcpy(out, plain, (size_t)k + 1);
        return TB_OK;
    }
    fail_msg(err, errlen, "%s not found (nor uncompressed %s); " PACKAGE_HINT ", or set path to the folder with the files",
             out, plain);
    return TB_EIO;
}

/* Reads exactly len bytes. */
static tb_status read_exact(gzFile f, void *buf, size_t len, const char *path, const char *what, char *err,
                            size_t errlen)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        size_t want = len - done;
        if (want > (1u << 30)) want = 1u << 30;
        int got = gzread(f, p + done, (unsigned)want);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(f, &zerr);
            fail_msg(err, errlen, "%s: cannot read %s: %s (a damaged file? reinstall dataset-fashion-mnist)", path,
                     what, zerr == Z_ERRNO ? strerror(errno) : msg);
            return TB_EFORMAT;
        }
        if (got == 0) break;
        done += (size_t)got;
    }
    if (done < len) {
        fail_msg(err, errlen, "%s is truncated: %s needs %zu bytes, the file has %zu", path, what, len, done);
        return TB_EFORMAT;
    }
    return TB_OK;
}

static tb_status expect_end(gzFile f, const char *path, size_t expected, char *err, size_t errlen)
{
    unsigned char extra[16];
    int got = gzread(f, extra, sizeof extra);
    if (got < 0) {
        int zerr = 0;
        const char *msg = gzerror(f, &zerr);
        fail_msg(err, errlen, "%s: cannot read: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
        return TB_EFORMAT;
    }
    if (got > 0) {
        fail_msg(err, errlen, "%s has data after the %zu bytes its header announces", path, expected);
        return TB_EFORMAT;
    }
    return TB_OK;
}

/* One IDX file: opened, header checked (magic, for images 28x28), count in *n. */
static gzFile idx_open(const char *path, int images, uint32_t *n, char *err, size_t errlen, tb_status *st)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fail_msg(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        *st = TB_EIO;
        return NULL;
    }
    gzbuffer(f, 1u << 17);
    unsigned char h[16];
    const size_t hlen = images ? 16 : 8;
    *st = read_exact(f, h, hlen, path, images ? "the 16-byte IDX image header" : "the 8-byte IDX label header", err,
                     errlen);
    if (*st != TB_OK) goto fail;
    const uint32_t magic = be32(h), want = images ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS;
    *n = be32(h + 4);
    if (magic != want) {
        fail_msg(err, errlen, "%s: magic number %u (0x%08x) is not %u, an IDX file of uint8 %s", path,
                 (unsigned)magic, (unsigned)magic, (unsigned)want, images ? "images" : "labels");
        *st = TB_EFORMAT;
        goto fail;
    }
    if (images && (be32(h + 8) != SIDE || be32(h + 12) != SIDE)) {
        fail_msg(err, errlen, "%s: images are %ux%u, Fashion-MNIST's are %dx%d", path, (unsigned)be32(h + 8),
                 (unsigned)be32(h + 12), SIDE, SIDE);
        *st = TB_EFORMAT;
        goto fail;
    }
    if (*n == 0 || *n > IDX_MAX_COUNT) {
        fail_msg(err, errlen, "%s: %s count %u is outside [1, %u]", path, images ? "image" : "label", (unsigned)*n,
                 (unsigned)IDX_MAX_COUNT);
        *st = TB_EFORMAT;
        goto fail;
    }
    return f;
fail:
    gzclose(f);
    return NULL;
}

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    const char *dir = host->arg_string(args, "path");
    if (!dir || !*dir) dir = DEFAULT_DIR;
    static const char *const bases[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char paths[4][1100];
    tb_status st;
    for (int i = 0; i < 4; i++)
        if ((st = find_file(paths[i], sizeof paths[i], dir, bases[i], err, errlen)) != TB_OK) return st;

    gzFile f[4] = {NULL, NULL, NULL, NULL};
    uint32_t n[4] = {0, 0, 0, 0};
    tb_task_data d;
    memset(&d, 0, sizeof d);
    uint8_t *raw_labels = NULL;
    for (int i = 0; i < 4; i++) {
        f[i] = idx_open(paths[i], i % 2 == 0, &n[i], err, errlen, &st);
        if (!f[i]) goto done;
    }
    for (int s = 0; s < 2; s++) {
        if (n[2 * s] != n[2 * s + 1]) {
            fail_msg(err, errlen, "%s holds %u images but %s holds %u labels", paths[2 * s], (unsigned)n[2 * s],
                     paths[2 * s + 1], (unsigned)n[2 * s + 1]);
            st = TB_EFORMAT;
            goto done;
        }
    }
    const size_t total = (size_t)n[0] + n[2], plane = SIDE * SIDE;
    d.count = (int)total;
    d.channels = 1;
    d.height = SIDE;
    d.width = SIDE;
    d.classes = CLASSES;
    d.pixels = host->alloc(total * plane);
    d.labels = host->alloc(total * sizeof *d.labels);
    d.splits = host->alloc(total);
    d.class_names = host->alloc(CLASSES * sizeof *d.class_names);
    if (d.class_names) memset(d.class_names, 0, CLASSES * sizeof *d.class_names);
    raw_labels = host->alloc(total);
    if (!d.pixels || !d.labels || !d.splits || !d.class_names || !raw_labels) {
        fail_msg(err, errlen, "out of memory for %zu images", total);
        st = TB_ENOMEM;
        goto done;
    }
    for (int c = 0; c < CLASSES; c++) {
        size_t len = strlen(class_names[c]) + 1;
        if (!(d.class_names[c] = host->alloc(len))) {
            fail_msg(err, errlen, "out of memory");
            st = TB_ENOMEM;
            goto done;
        }
        memcpy(d.class_names[c], class_names[c], len);
    }
    size_t at = 0;
    for (int s = 0; s < 2; s++) {
        const size_t cnt = n[2 * s];
        char what[64];
        snprintf(what, sizeof what, "%zu images of 28x28", cnt);
        if ((st = read_exact(f[2 * s], d.pixels + at * plane, cnt * plane, paths[2 * s], what, err, errlen)) ||
            (st = expect_end(f[2 * s], paths[2 * s], 16 + cnt * plane, err, errlen)))
            goto done;
        snprintf(what, sizeof what, "%zu labels", cnt);
        if ((st = read_exact(f[2 * s + 1], raw_labels + at, cnt, paths[2 * s + 1], what, err, errlen)) ||
            (st = expect_end(f[2 * s + 1], paths[2 * s + 1], 8 + cnt, err, errlen)))
            goto done;
        for (size_t i = 0; i < cnt; i++) {
            if (raw_labels[at + i] >= CLASSES) {
                fail_msg(err, errlen, "%s: label %u of sample %zu is outside [0, %d)", paths[2 * s + 1],
                         (unsigned)raw_labels[at + i], i, CLASSES);
                st = TB_EFORMAT;
                goto done;
            }
            d.labels[at + i] = raw_labels[at + i];
            d.splits[at + i] = s == 0 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST;
        }
        at += cnt;
    }
    d.has_norm = 1;
    d.mean[0] = 0.2860f;
    d.std[0] = 0.3530f;
    snprintf(d.source, sizeof d.source, "%s", dir);
    host->log(TB_LOG_INFO, PLUGIN_NAME, "%u training and %u test images from %s", (unsigned)n[0], (unsigned)n[2],
              dir);
    *out = d;
    memset(&d, 0, sizeof d);
    st = TB_OK;
done:
    for (int i = 0; i < 4; i++)
        if (f[i]) gzclose(f[i]);
    host->free(raw_labels);
    host->task_data_free(&d);
    return st;
}

/* Always 1x28x28, 10 classes (idx_open refuses other sizes). */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)host, (void)args, (void)err, (void)errlen;
    out->channels = 1;
    out->height = out->width = SIDE;
    out->classes = CLASSES;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_TASK,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .license = "MIT",
    .description = "Fashion-MNIST from its IDX files (gzip or plain; Debian's dataset-fashion-mnist): 60,000 "
                   "training and 10,000 test images, 1x28x28, 10 classes",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
