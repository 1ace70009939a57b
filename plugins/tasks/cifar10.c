/* cifar10.c: task plugin "cifar10", CIFAR-10 from its binary release
 * (cifar-10-binary.tar.gz):
 *
 *   PATH/data_batch_1.bin .. data_batch_5.bin   the 50,000 training images
 *   PATH/test_batch.bin                          the 10,000 test images
 *   PATH/batches.meta.txt                        class names (optional)
 *
 * or the same inside PATH/cifar-10-batches-bin/ (the folder the archive
 * unpacks to). Each record is one label byte (0..9) and 3072 pixel bytes: the
 * red, green and blue 32x32 planes, row-major, which is already the host's
 * [C, H, W] layout. A file may hold any whole number of records (the release
 * has 10,000 per file). Class names come from batches.meta.txt (its first ten
 * non-empty lines) when the file is there, else the standard ten. There is no
 * validation split (the host carves one when val_fraction > 0). Normalisation:
 * the commonly used CIFAR-10 statistics, mean (0.4914, 0.4822, 0.4465), std
 * (0.2470, 0.2435, 0.2616). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "cifar10"
#define SIDE 32
#define CHANNELS 3
#define PIXELS (CHANNELS * SIDE * SIDE) /* 3072 */
#define RECORD (1 + PIXELS)             /* 3073 */
#define CLASSES 10
#define N_FILES 6
#define RELEASE_HINT "the binary release (cifar-10-binary.tar.gz) has data_batch_1.bin .. data_batch_5.bin and test_batch.bin"

static const tb_plugin_option options[] = {
    {"path", TB_OPTION_PATH, NULL, 0, 0, NULL,
     "folder holding data_batch_1..5.bin and test_batch.bin (or its subfolder cifar-10-batches-bin/)"},
};

static const char *const standard_names[CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

static const char *const file_names[N_FILES] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
    "test_batch.bin",
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

/* 1 when path is a regular file (its stat in *st), else 0. */
static int is_file(const char *path, struct stat *st)
{
    return stat(path, st) == 0 && S_ISREG(st->st_mode);
}

/* PATH itself or PATH/cifar-10-batches-bin, whichever holds data_batch_1.bin
 * (whose stat goes to *first, so it is not looked up twice). */
static tb_status find_dir(const char *path, char *dir, size_t len, struct stat *first, char *err, size_t errlen)
{
    char probe[1200];
    snprintf(dir, len, "%s", path);
    snprintf(probe, sizeof probe, "%s/%s", dir, file_names[0]);
    if (is_file(probe, first)) return TB_OK;
    int k = snprintf(dir, len, "%s/cifar-10-batches-bin", path);
    if (k < 0 || (size_t)k >= len) {
        fail_msg(err, errlen, "folder name %s is too long", path);
        return TB_EINVAL;
    }
    snprintf(probe, sizeof probe, "%s/%s", dir, file_names[0]);
    if (is_file(probe, first)) return TB_OK;
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg(err, errlen, "%s: %s; set path to the folder of CIFAR-10's binary release (%s)", path,
                 strerror(errno), RELEASE_HINT);
    else
        fail_msg(err, errlen, "%s/%s not found (nor in %s/cifar-10-batches-bin/); %s", path, file_names[0], path,
                 RELEASE_HINT);
    return TB_EIO;
}

/* Class names from batches.meta.txt: 1 names read, 0 no file, -1 error. */
static int read_meta(const tb_host_api *host, const char *dir, char **names, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : (fail_msg(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1);
    char line[256];
    int n = 0;
    while (n < CLASSES && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        char *s = line;
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        size_t sl = strlen(s) + 1;
        if (!(names[n] = host->alloc(sl))) {
            fclose(f);
            fail_msg(err, errlen, "out of memory");
            return -1;
        }
        memcpy(names[n++], s, sl);
    }
    fclose(f);
    if (n < CLASSES) {
        fail_msg(err, errlen, "%s has %d class names, CIFAR-10 has %d (one per line); fix or remove the file", path, n,
                 CLASSES);
        return -1;
    }
    return 1;
}

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    const char *path = host->arg_string(args, "path");
    if (!path || !*path) {
        fail_msg(err, errlen, "path is empty; set it to the folder of CIFAR-10's binary release");
        return TB_EINVAL;
    }
    char dir[1100], files[N_FILES][1200];
    struct stat first;
    tb_status st = find_dir(path, dir, sizeof dir, &first, err, errlen);
    if (st != TB_OK) return st;

    /* sizes first: every file a whole number of records */
    size_t records[N_FILES], total = 0, n_train = 0;
    for (int i = 0; i < N_FILES; i++) {
        snprintf(files[i], sizeof files[i], "%s/%s", dir, file_names[i]);
        struct stat sb = first; /* data_batch_1.bin: find_dir's stat */
        if (i > 0 && stat(files[i], &sb) != 0) {
            fail_msg(err, errlen, "%s: %s (%s)", files[i], strerror(errno), RELEASE_HINT);
            return TB_EIO;
        }
        if (!S_ISREG(sb.st_mode)) {
            fail_msg(err, errlen, "%s is not a regular file", files[i]);
            return TB_EIO;
        }
        if (sb.st_size == 0 || sb.st_size % RECORD != 0) {
            fail_msg(err, errlen,
                     "%s: size %lld bytes is not a positive multiple of %d (1 label byte + 3072 pixel bytes per "
                     "record); the file is truncated or not CIFAR-10's binary format",
                     files[i], (long long)sb.st_size, RECORD);
            return TB_EFORMAT;
        }
        records[i] = (size_t)sb.st_size / RECORD;
        total += records[i];
        if (i < N_FILES - 1) n_train += records[i];
    }
    if (total > 100000000u) {
        fail_msg(err, errlen, "%zu records are more than this plugin accepts", total);
        return TB_EFORMAT;
    }

    tb_task_data d;
    memset(&d, 0, sizeof d);
    d.count = (int)total;
    d.channels = CHANNELS;
    d.height = SIDE;
    d.width = SIDE;
    d.classes = CLASSES;
    d.pixels = host->alloc(total * PIXELS);
    d.labels = host->alloc(total * sizeof *d.labels);
    d.splits = host->alloc(total);
    d.class_names = host->alloc(CLASSES * sizeof *d.class_names);
    if (d.class_names) memset(d.class_names, 0, CLASSES * sizeof *d.class_names);
    if (!d.pixels || !d.labels || !d.splits || !d.class_names) {
        fail_msg(err, errlen, "out of memory for %zu images", total);
        host->task_data_free(&d);
        return TB_ENOMEM;
    }
    int meta = read_meta(host, dir, d.class_names, err, errlen);
    if (meta < 0) {
        host->task_data_free(&d);
        return TB_EFORMAT;
    }
    if (meta == 0) {
        for (int c = 0; c < CLASSES; c++) {
            size_t len = strlen(standard_names[c]) + 1;
            if (!(d.class_names[c] = host->alloc(len))) {
                fail_msg(err, errlen, "out of memory");
                host->task_data_free(&d);
                return TB_ENOMEM;
            }
            memcpy(d.class_names[c], standard_names[c], len);
        }
    }

    size_t at = 0;
    unsigned char rec[RECORD];
    for (int i = 0; i < N_FILES; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            fail_msg(err, errlen, "%s: cannot open: %s", files[i], strerror(errno));
            host->task_data_free(&d);
            return TB_EIO;
        }
        setvbuf(f, NULL, _IOFBF, 1 << 20);
        for (size_t r = 0; r < records[i]; r++, at++) {
            if (fread(rec, 1, RECORD, f) != RECORD) {
                fail_msg(err, errlen, "%s: cannot read record %zu of %zu: %s", files[i], r, records[i],
                         ferror(f) ? strerror(errno) : "unexpected end of file");
                fclose(f);
                host->task_data_free(&d);
                return TB_EIO;
            }
            if (rec[0] >= CLASSES) {
                fail_msg(err, errlen, "%s: record %zu has label %u; CIFAR-10's labels are 0..9 (is this CIFAR-100?)",
                         files[i], r, (unsigned)rec[0]);
                fclose(f);
                host->task_data_free(&d);
                return TB_EFORMAT;
            }
            d.labels[at] = rec[0];
            d.splits[at] = i < N_FILES - 1 ? TB_SPLIT_TRAIN : TB_SPLIT_TEST;
            memcpy(d.pixels + at * PIXELS, rec + 1, PIXELS);
        }
        fclose(f);
    }
    d.has_norm = 1;
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    memcpy(d.mean, mean, sizeof mean);
    memcpy(d.std, std, sizeof std);
    size_t sl = strlen(dir) < sizeof d.source ? strlen(dir) : sizeof d.source - 1; /* truncated if need be */
    memcpy(d.source, dir, sl);
    d.source[sl] = '\0';
    host->log(TB_LOG_INFO, PLUGIN_NAME, "%zu training and %zu test images from %s", n_train, total - n_train, dir);
    *out = d;
    return TB_OK;
}

/* Always 3x32x32, 10 classes (the binary release's fixed record size). */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)host, (void)args, (void)err, (void)errlen;
    out->channels = CHANNELS;
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
    .description = "CIFAR-10 from its binary release (data_batch_1..5.bin, test_batch.bin): 50,000 training and "
                   "10,000 test images, 3x32x32, 10 classes",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
