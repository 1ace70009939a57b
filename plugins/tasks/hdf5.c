/* hdf5.c: task plugin "hdf5", "bring your own data": images and labels stored
 * as arrays in an HDF5 file (h5py, MATLAB, ...):
 *
 *   x            N x C x H x W, uint8 (0..255) or float32. float32 trains as
 *                float32, exactly the values in the file (tb_task_data's
 *                pixels_f32, ABI minor 3: no rounding, no clipping); every
 *                value must be finite and within [-MAX_ABS_VALUE, MAX_ABS_VALUE]
 *                (1e6), else the first offending sample and value are named.
 *                C is 1..4. Other types and ranks are refused.
 *   y            N labels of any integer type, >= 0 and below the class count.
 *   split        optional: N integers, 0 train, 1 validation, 2 test;
 *   train_idx, val_idx, test_idx
 *                optional instead of split: sample indices of each split (any
 *                integer type); samples in none of them are left out, a
 *                sample in two is an error. With neither, every sample trains
 *                (the host carves validation with val_fraction; no test set).
 *   class_names  optional: one string per class (fixed or variable length).
 *
 * The dataset names are options (x, y, split, train_idx, val_idx, test_idx,
 * class_names; paths inside the file such as "data/images" work); an optional
 * dataset that was named explicitly must exist. `classes` fixes the class
 * count; 0 takes the number of class names, else it is guessed as the largest
 * label + 1, which is logged and marked (classes_guessed) and may be at most
 * MAX_GUESSED_CLASSES (65,536): a larger label with `classes` unset is an
 * error naming it and its sample (a stray label must not build a huge head).
 * Normalisation is computed by the host on the training split. HDF5's own
 * error printing is switched off while the file is read (and restored). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "hdf5"
#define MAX_SIDE 16384
#define MAX_CLASSES 1000000
#define MAX_GUESSED_CLASSES 65536 /* the largest class count guessed from the labels */
#define MAX_ABS_VALUE 1e6f        /* float32 values must lie in [-1e6, 1e6] */

static const tb_plugin_option options[] = {
    {"path", TB_OPTION_PATH, NULL, 0, 0, NULL, "the HDF5 file"},
    {"x", TB_OPTION_STRING, "x", 0, 0, NULL,
     "images: N x C x H x W, uint8 (0..255) or float32 (trains as given: finite, within +-1e6)"},
    {"y", TB_OPTION_STRING, "y", 0, 0, NULL, "labels: N integers"},
    {"split", TB_OPTION_STRING, "split", 0, 0, NULL,
     "optional per-sample split (0 train, 1 validation, 2 test); used when the dataset exists"},
    {"train_idx", TB_OPTION_STRING, "train_idx", 0, 0, NULL, "optional indices of the training samples (without split)"},
    {"val_idx", TB_OPTION_STRING, "val_idx", 0, 0, NULL, "optional indices of the validation samples (without split)"},
    {"test_idx", TB_OPTION_STRING, "test_idx", 0, 0, NULL, "optional indices of the test samples (without split)"},
    {"class_names", TB_OPTION_STRING, "class_names", 0, 0, NULL, "optional strings, one per class"},
    {"classes", TB_OPTION_INT, "0", 0, MAX_CLASSES, NULL, "class count; 0: from class_names, else guessed as max label + 1 (at most 65536)"},
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

/* ---- describing datasets in messages ------------------------------------------------ */

static void type_name(hid_t t, char *buf, size_t len)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    switch (cls) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * size);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", 8 * size); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    case H5T_VLEN: snprintf(buf, len, "variable-length"); break;
    case H5T_BITFIELD: snprintf(buf, len, "bitfield"); break;
    case H5T_OPAQUE: snprintf(buf, len, "opaque"); break;
    case H5T_REFERENCE: snprintf(buf, len, "reference"); break;
    default: snprintf(buf, len, "an unknown type"); break;
    }
}

static void shape_name(int rank, const hsize_t *dims, char *buf, size_t len)
{
    size_t at = 0;
    if (rank == 0) {
        snprintf(buf, len, "a scalar");
        return;
    }
    buf[0] = '\0';
    for (int i = 0; i < rank && at < len; i++) {
        int k = snprintf(buf + at, len - at, "%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
        if (k < 0) break;
        at += (size_t)k;
    }
}

/* An open dataset with its type and shape. */
typedef struct dset {
    const char *name;
    hid_t id, type, space;
    int rank;
    hsize_t dims[8];
    char desc[160]; /* "'x' (int16, 10 x 1 x 28 x 28)" */
} dset;

static void dset_close(dset *d)
{
    if (d->space >= 0) H5Sclose(d->space);
    if (d->type >= 0) H5Tclose(d->type);
    if (d->id >= 0) H5Dclose(d->id);
    d->id = d->type = d->space = -1;
}

static int link_exists(hid_t file, const char *name)
{
    if (!name || !*name) return 0;
    /* each component of a path in turn: H5Lexists fails on a missing parent */
    char buf[512];
    size_t n = strlen(name);
    if (n >= sizeof buf) return 0;
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = c;
        if (e <= 0) return 0;
    }
    return H5Oexists_by_name(file, name, H5P_DEFAULT) > 0;
}

/* Opens dataset `name`; 1 opened, 0 absent, -1 error (message set). */
static int dset_open(hid_t file, const char *path, const char *name, dset *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    d->id = d->type = d->space = -1;
    if (!link_exists(file, name)) return 0;
    d->id = H5Dopen2(file, name, H5P_DEFAULT);
    if (d->id < 0) {
        fail_msg(err, errlen, "%s: '%s' is not a dataset", path, name);
        return -1;
    }
    d->type = H5Dget_type(d->id);
    d->space = H5Dget_space(d->id);
    if (d->type < 0 || d->space < 0) {
        fail_msg(err, errlen, "%s: cannot read the type and shape of dataset '%s'", path, name);
        dset_close(d);
        return -1;
    }
    d->rank = H5Sget_simple_extent_ndims(d->space);
    if (d->rank < 0 || d->rank > 8) {
        fail_msg(err, errlen, "%s: dataset '%s' has an unsupported dataspace (rank %d)", path, name, d->rank);
        dset_close(d);
        return -1;
    }
    H5Sget_simple_extent_dims(d->space, d->dims, NULL);
    char tn[48], sn[96];
    type_name(d->type, tn, sizeof tn);
    shape_name(d->rank, d->dims, sn, sizeof sn);
    snprintf(d->desc, sizeof d->desc, "'%s' (%s, %s)", name, tn, sn);
    return 1;
}

/* N integers (rank 1, or N x 1) as int64; malloc'd into *out. */
static tb_status read_ints(const char *path, dset *d, hsize_t n_expected, const char *accepted, int64_t **out,
                           hsize_t *n_out, char *err, size_t errlen)
{
    *out = NULL;
    if (H5Tget_class(d->type) != H5T_INTEGER) {
        fail_msg(err, errlen, "%s: dataset %s must hold integers; accepted: %s", path, d->desc, accepted);
        return TB_EFORMAT;
    }
    if (!(d->rank == 1 || (d->rank == 2 && d->dims[1] == 1))) {
        fail_msg(err, errlen, "%s: dataset %s must be one-dimensional; accepted: %s", path, d->desc, accepted);
        return TB_EFORMAT;
    }
    hsize_t n = d->dims[0];
    if (n_expected && n != n_expected) {
        fail_msg(err, errlen, "%s: dataset %s has %llu entries, x has %llu samples; accepted: %s", path, d->desc,
                 (unsigned long long)n, (unsigned long long)n_expected, accepted);
        return TB_EFORMAT;
    }
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!*out) {
        fail_msg(err, errlen, "out of memory reading '%s'", d->name);
        return TB_ENOMEM;
    }
    /* unsigned 64-bit values above INT64_MAX would be clamped by HDF5's
     * conversion to int64: read those as uint64 and name the real value */
    const int u64 = H5Tget_sign(d->type) == H5T_SGN_NONE && H5Tget_size(d->type) >= 8;
    if (n && H5Dread(d->id, u64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        fail_msg(err, errlen, "%s: cannot read dataset %s as integers", path, d->desc);
        free(*out);
        *out = NULL;
        return TB_EIO;
    }
    for (hsize_t i = 0; u64 && i < n; i++) {
        uint64_t v;
        memcpy(&v, *out + i, sizeof v);
        if (v > (uint64_t)INT64_MAX) {
            fail_msg(err, errlen, "%s: dataset %s has %llu at position %llu, which is too large; accepted: %s", path,
                     d->desc, (unsigned long long)v, (unsigned long long)i, accepted);
            free(*out);
            *out = NULL;
            return TB_EFORMAT;
        }
    }
    *n_out = n;
    return TB_OK;
}

/* Strings of a rank-1 string dataset; malloc'd array of host->alloc'd names. */
static tb_status read_strings(const tb_host_api *host, const char *path, dset *d, char ***names, hsize_t *count,
                              char *err, size_t errlen)
{
    *names = NULL;
    if (H5Tget_class(d->type) != H5T_STRING || d->rank != 1) {
        fail_msg(err, errlen, "%s: dataset %s must be a one-dimensional array of strings", path, d->desc);
        return TB_EFORMAT;
    }
    const hsize_t n = d->dims[0];
    if (n == 0 || n > MAX_CLASSES) {
        fail_msg(err, errlen, "%s: dataset %s has %llu names; between 1 and %d are accepted", path, d->desc,
                 (unsigned long long)n, MAX_CLASSES);
        return TB_EFORMAT;
    }
    tb_status st = TB_OK;
    char **out = calloc((size_t)n, sizeof *out);
    hid_t mem = H5Tcopy(H5T_C_S1);
    if (!out || mem < 0) {
        free(out);
        if (mem >= 0) H5Tclose(mem);
        fail_msg(err, errlen, "out of memory reading '%s'", d->name);
        return TB_ENOMEM;
    }
    H5Tset_cset(mem, H5Tget_cset(d->type));
    if (H5Tis_variable_str(d->type) > 0) {
        char **vl = calloc((size_t)n, sizeof *vl);
        H5Tset_size(mem, H5T_VARIABLE);
        if (!vl) {
            st = TB_ENOMEM;
        } else if (H5Dread(d->id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl) < 0) {
            fail_msg(err, errlen, "%s: cannot read the strings of dataset %s", path, d->desc);
            st = TB_EIO;
        } else {
            for (hsize_t i = 0; i < n && st == TB_OK; i++) {
                const char *s = vl[i] ? vl[i] : "";
                size_t len = strlen(s) + 1;
                if (!(out[i] = host->alloc(len))) st = TB_ENOMEM;
                else memcpy(out[i], s, len);
            }
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mem, d->space, H5P_DEFAULT, vl);
#else
            H5Dvlen_reclaim(mem, d->space, H5P_DEFAULT, vl);
#endif
        }
        free(vl);
    } else {
        size_t size = H5Tget_size(d->type);
        char *buf = malloc((size_t)n * (size + 1));
        H5Tset_size(mem, size + 1);
        H5Tset_strpad(mem, H5T_STR_NULLTERM);
        if (!buf) {
            st = TB_ENOMEM;
        } else if (H5Dread(d->id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            fail_msg(err, errlen, "%s: cannot read the strings of dataset %s", path, d->desc);
            st = TB_EIO;
        } else {
            for (hsize_t i = 0; i < n && st == TB_OK; i++) {
                char *s = buf + i * (size + 1);
                s[size] = '\0';
                size_t len = strlen(s);
                while (len > 0 && s[len - 1] == ' ') s[--len] = '\0'; /* space-padded strings */
                if (!(out[i] = host->alloc(len + 1))) st = TB_ENOMEM;
                else memcpy(out[i], s, len + 1);
            }
        }
        free(buf);
    }
    H5Tclose(mem);
    if (st == TB_ENOMEM) fail_msg(err, errlen, "out of memory reading '%s'", d->name);
    if (st != TB_OK) {
        for (hsize_t i = 0; i < n; i++) host->free(out[i]);
        free(out);
        return st;
    }
    *names = out;
    *count = n;
    return TB_OK;
}

/* x into pixels (uint8, n * sample bytes) or fpixels (float32, n * sample
 * values, kept exactly as stored); a float value that is not finite or lies
 * outside [-MAX_ABS_VALUE, MAX_ABS_VALUE] is an error naming the first one. */
static tb_status read_images(const char *path, dset *x, uint8_t *pixels, float *fpixels, char *err, size_t errlen)
{
    const hsize_t n = x->dims[0];
    const size_t sample = (size_t)(x->dims[1] * x->dims[2] * x->dims[3]);
    if (!fpixels) {
        if (H5Dread(x->id, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels) < 0) {
            fail_msg(err, errlen, "%s: cannot read dataset %s", path, x->desc);
            return TB_EIO;
        }
        return TB_OK;
    }
    if (H5Dread(x->id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fpixels) < 0) {
        fail_msg(err, errlen, "%s: cannot read dataset %s", path, x->desc);
        return TB_EIO;
    }
    const size_t total = (size_t)n * sample;
    for (size_t i = 0; i < total; i++) {
        const float v = fpixels[i];
        if (isfinite(v) && v >= -MAX_ABS_VALUE && v <= MAX_ABS_VALUE) continue;
        const char *what = isnan(v) ? "NaN" : isinf(v) ? (v > 0 ? "Inf" : "-Inf") : "a value outside [-1e6, 1e6]";
        fail_msg(err, errlen,
                 "%s: dataset %s has %s (%g) at sample %llu, value %zu of the sample; float32 images must be finite "
                 "and within [-1e6, 1e6]",
                 path, x->desc, what, (double)v, (unsigned long long)(i / sample), i % sample);
        return TB_EFORMAT;
    }
    return TB_OK;
}

/* ---- splits ----------------------------------------------------------------------------- */

#define NO_SPLIT 255

/* Split of each sample from the split dataset or the index datasets; NO_SPLIT
 * for samples left out. 1 when a split was given, 0 when none. */
static int read_splits(const tb_host_api *host, const tb_plugin_args *args, hid_t file, const char *path,
                       hsize_t n, uint8_t *split, tb_status *st, char *err, size_t errlen)
{
    static const char *const idx_opts[3] = {"train_idx", "val_idx", "test_idx"};
    static const char *const accepted_split = "N integers: 0 train, 1 validation, 2 test";
    const char *split_name = host->arg_string(args, "split");
    dset d;
    int have_idx = 0;
    *st = TB_OK;
    int r = dset_open(file, path, split_name, &d, err, errlen);
    if (r < 0) return *st = TB_EFORMAT, -1;
    if (r == 0 && host->arg_is_set(args, "split") && split_name && *split_name) {
        fail_msg(err, errlen, "%s has no dataset '%s' (option split)", path, split_name);
        return *st = TB_EFORMAT, -1;
    }
    for (int s = 0; s < 3; s++) {
        const char *nm = host->arg_string(args, idx_opts[s]);
        int e = link_exists(file, nm);
        if (!e && host->arg_is_set(args, idx_opts[s]) && nm && *nm) {
            if (r == 1) dset_close(&d);
            fail_msg(err, errlen, "%s has no dataset '%s' (option %s)", path, nm, idx_opts[s]);
            return *st = TB_EFORMAT, -1;
        }
        have_idx |= e;
    }
    if (r == 1) {
        if (have_idx)
            host->log(TB_LOG_INFO, PLUGIN_NAME, "%s: using dataset '%s' for the splits; the index datasets are ignored",
                      path, split_name);
        int64_t *v = NULL;
        hsize_t m = 0;
        *st = read_ints(path, &d, n, accepted_split, &v, &m, err, errlen);
        if (*st == TB_OK) {
            for (hsize_t i = 0; i < n; i++) {
                if (v[i] < 0 || v[i] > 2) {
                    fail_msg(err, errlen, "%s: dataset %s has %lld at sample %llu; accepted: %s", path, d.desc,
                             (long long)v[i], (unsigned long long)i, accepted_split);
                    *st = TB_EFORMAT;
                    break;
                }
                split[i] = (uint8_t)v[i];
            }
        }
        free(v);
        dset_close(&d);
        return *st == TB_OK ? 1 : -1;
    }
    if (!have_idx) {
        memset(split, TB_SPLIT_TRAIN, (size_t)n);
        return 0;
    }
    memset(split, NO_SPLIT, (size_t)n);
    for (int s = 0; s < 3; s++) {
        const char *nm = host->arg_string(args, idx_opts[s]);
        dset e;
        int k = dset_open(file, path, nm, &e, err, errlen);
        if (k < 0) return *st = TB_EFORMAT, -1;
        if (k == 0) continue;
        int64_t *v = NULL;
        hsize_t m = 0;
        *st = read_ints(path, &e, 0, "integer sample indices in [0, N)", &v, &m, err, errlen);
        for (hsize_t i = 0; i < m && *st == TB_OK; i++) {
            if (v[i] < 0 || (hsize_t)v[i] >= n) {
                fail_msg(err, errlen, "%s: dataset %s has index %lld at position %llu, outside [0, %llu)", path,
                         e.desc, (long long)v[i], (unsigned long long)i, (unsigned long long)n);
                *st = TB_EFORMAT;
            } else if (split[v[i]] == (uint8_t)s) {
                hsize_t first = 0;
                while (first < i && v[first] != v[i]) first++;
                fail_msg(err, errlen, "%s: sample %lld is listed twice in dataset %s (positions %llu and %llu)", path,
                         (long long)v[i], e.desc, (unsigned long long)first, (unsigned long long)i);
                *st = TB_EFORMAT;
            } else if (split[v[i]] != NO_SPLIT) {
                fail_msg(err, errlen, "%s: sample %lld is in both '%s' and '%s'", path, (long long)v[i],
                         host->arg_string(args, idx_opts[split[v[i]]]), nm);
                *st = TB_EFORMAT;
            } else {
                split[v[i]] = (uint8_t)s;
            }
        }
        free(v);
        dset_close(&e);
        if (*st != TB_OK) return -1;
    }
    return 1;
}

/* ---- the task ---------------------------------------------------------------------------- */

static tb_status open_file(const tb_host_api *host, const tb_plugin_args *args, const char *path, hid_t file,
                           tb_task_data *out, char *err, size_t errlen)
{
    static const char *const accepted_x =
        "uint8 or float32 (finite, within +-1e6), shape N x C x H x W with C = 1..4 (for greyscale use C = 1)";
    tb_status st = TB_OK;
    tb_task_data d;
    memset(&d, 0, sizeof d);
    dset x, y;
    x.id = x.type = x.space = y.id = y.type = y.space = -1;
    int64_t *labels = NULL;
    uint8_t *split = NULL;
    char **names = NULL;
    hsize_t n_names = 0;
    const char *xname = host->arg_string(args, "x"), *yname = host->arg_string(args, "y");

    int r = dset_open(file, path, xname, &x, err, errlen);
    if (r <= 0) {
        if (r == 0) fail_msg(err, errlen, "%s has no dataset '%s' (option x: the images, %s)", path, xname, accepted_x);
        st = TB_EFORMAT;
        goto done;
    }
    H5T_class_t xc = H5Tget_class(x.type);
    size_t xs = H5Tget_size(x.type);
    int is_u8 = xc == H5T_INTEGER && xs == 1 && H5Tget_sign(x.type) == H5T_SGN_NONE;
    int is_f32 = xc == H5T_FLOAT && xs == 4;
    if (!is_u8 && !is_f32) {
        fail_msg(err, errlen, "%s: dataset %s has an unsupported type; accepted: %s", path, x.desc, accepted_x);
        st = TB_EFORMAT;
        goto done;
    }
    if (x.rank != 4) {
        fail_msg(err, errlen, "%s: dataset %s has rank %d; accepted: %s", path, x.desc, x.rank, accepted_x);
        st = TB_EFORMAT;
        goto done;
    }
    const hsize_t n = x.dims[0];
    if (n < 1 || n > 100000000 || x.dims[1] < 1 || x.dims[1] > 4 || x.dims[2] < 1 || x.dims[2] > MAX_SIDE ||
        x.dims[3] < 1 || x.dims[3] > MAX_SIDE) {
        fail_msg(err, errlen, "%s: dataset %s has an unsupported shape; accepted: %s, N >= 1, H and W 1..%d", path,
                 x.desc, accepted_x, MAX_SIDE);
        st = TB_EFORMAT;
        goto done;
    }
    const size_t sample = (size_t)(x.dims[1] * x.dims[2] * x.dims[3]);
    if (sample > SIZE_MAX / 8 / (size_t)n) {
        fail_msg(err, errlen, "%s: dataset %s is too large to load", path, x.desc);
        st = TB_EFORMAT;
        goto done;
    }

    r = dset_open(file, path, yname, &y, err, errlen);
    if (r <= 0) {
        if (r == 0) fail_msg(err, errlen, "%s has no dataset '%s' (option y: the labels, N integers)", path, yname);
        st = TB_EFORMAT;
        goto done;
    }
    hsize_t ny = 0;
    if ((st = read_ints(path, &y, n, "N integer labels >= 0", &labels, &ny, err, errlen))) goto done;
    int64_t max_label = -1;
    hsize_t max_at = 0;
    for (hsize_t i = 0; i < n; i++) {
        if (labels[i] < 0) {
            fail_msg(err, errlen, "%s: dataset %s has label %lld at sample %llu; labels must be >= 0", path, y.desc,
                     (long long)labels[i], (unsigned long long)i);
            st = TB_EFORMAT;
            goto done;
        }
        if (labels[i] > max_label) max_label = labels[i], max_at = i;
    }

    /* class names and count */
    const char *cn = host->arg_string(args, "class_names");
    dset c;
    r = dset_open(file, path, cn, &c, err, errlen);
    if (r < 0) {
        st = TB_EFORMAT;
        goto done;
    }
    if (r == 0 && host->arg_is_set(args, "class_names") && cn && *cn) {
        fail_msg(err, errlen, "%s has no dataset '%s' (option class_names)", path, cn);
        st = TB_EFORMAT;
        goto done;
    }
    if (r == 1) {
        st = read_strings(host, path, &c, &names, &n_names, err, errlen);
        dset_close(&c);
        if (st) goto done;
    }
    int64_t classes = host->arg_int(args, "classes");
    int guessed = 0;
    if (classes == 0 && !names) {
        if (max_label >= MAX_GUESSED_CLASSES) {
            fail_msg(err, errlen,
                     "%s: dataset %s has label %lld at sample %llu; with classes unset the class count would be "
                     "guessed as %llu (the largest label + 1), above the limit of %d for a guess: fix the label, or "
                     "set classes (up to %d) if it is meant",
                     path, y.desc, (long long)max_label, (unsigned long long)max_at,
                     (unsigned long long)max_label + 1, /* unsigned: the label may be INT64_MAX */
                     MAX_GUESSED_CLASSES, MAX_CLASSES);
            st = TB_EFORMAT;
            goto done;
        }
        classes = max_label + 1;
        guessed = 1;
    } else if (classes == 0) {
        classes = (int64_t)n_names;
    }
    if (max_label >= classes) {
        hsize_t at = 0;
        while (labels[at] < classes) at++; /* the first label out of range */
        if (host->arg_int(args, "classes") > 0)
            fail_msg(err, errlen, "%s: dataset %s has label %lld at sample %llu, but classes = %lld (labels must be "
                     "in [0, %lld))", path, y.desc, (long long)labels[at], (unsigned long long)at,
                     (long long)classes, (long long)classes);
        else
            fail_msg(err, errlen, "%s: dataset %s has label %lld at sample %llu, but '%s' names only %llu classes",
                     path, y.desc, (long long)labels[at], (unsigned long long)at, cn, (unsigned long long)n_names);
        st = TB_EFORMAT;
        goto done;
    }
    if (names && (int64_t)n_names != classes) {
        fail_msg(err, errlen, "%s: dataset '%s' has %llu names, but classes = %lld", path, cn,
                 (unsigned long long)n_names, (long long)classes);
        st = TB_EFORMAT;
        goto done;
    }

    /* splits */
    split = malloc((size_t)n);
    if (!split) {
        fail_msg(err, errlen, "out of memory");
        st = TB_ENOMEM;
        goto done;
    }
    int given = read_splits(host, args, file, path, n, split, &st, err, errlen);
    if (given < 0) goto done;
    hsize_t kept = 0;
    int counts[3] = {0, 0, 0};
    for (hsize_t i = 0; i < n; i++)
        if (split[i] != NO_SPLIT) kept++, counts[split[i]]++;
    if (!given)
        host->log(TB_LOG_INFO, PLUGIN_NAME,
                  "%s: no dataset '%s' nor index datasets: all %llu samples train (no test split)", path,
                  host->arg_string(args, "split"), (unsigned long long)n);
    else if (kept < n)
        host->log(TB_LOG_INFO, PLUGIN_NAME, "%s: %llu samples are in none of the index datasets and are left out",
                  path, (unsigned long long)(n - kept));
    if (kept == 0) {
        fail_msg(err, errlen, "%s: the index datasets select no sample", path);
        st = TB_EFORMAT;
        goto done;
    }

    /* images */
    const size_t elem = is_f32 ? sizeof(float) : 1;
    unsigned char *all = host->alloc((size_t)n * sample * elem);
    if (!all) {
        fail_msg(err, errlen, "out of memory for %llu images of %zu bytes", (unsigned long long)n, sample * elem);
        st = TB_ENOMEM;
        goto done;
    }
    if (is_f32)
        d.pixels_f32 = (float *)(void *)all;
    else
        d.pixels = all;
    if ((st = read_images(path, &x, d.pixels, d.pixels_f32, err, errlen))) goto done;
    d.labels = host->alloc((size_t)kept * sizeof *d.labels);
    d.splits = host->alloc((size_t)kept);
    if (!d.labels || !d.splits) {
        fail_msg(err, errlen, "out of memory");
        st = TB_ENOMEM;
        goto done;
    }
    /* keep the selected samples, in file order (in place) */
    hsize_t k = 0;
    for (hsize_t i = 0; i < n; i++) {
        if (split[i] == NO_SPLIT) continue;
        if (k != i) memmove(all + (size_t)k * sample * elem, all + (size_t)i * sample * elem, sample * elem);
        d.labels[k] = (int32_t)labels[i];
        d.splits[k] = split[i];
        k++;
    }
    d.count = (int)kept;
    d.channels = (int)x.dims[1];
    d.height = (int)x.dims[2];
    d.width = (int)x.dims[3];
    d.classes = (int)classes;
    d.classes_guessed = guessed;
    if (guessed)
        host->log(TB_LOG_INFO, PLUGIN_NAME,
                  "%s: classes = %d guessed from the largest label (%lld at sample %llu) + 1; set classes if a class "
                  "is absent from the file",
                  path, d.classes, (long long)max_label, (unsigned long long)max_at);
    if (names) {
        d.class_names = host->alloc((size_t)classes * sizeof *d.class_names);
        if (!d.class_names) {
            fail_msg(err, errlen, "out of memory");
            st = TB_ENOMEM;
            goto done;
        }
        for (hsize_t i = 0; i < n_names; i++) d.class_names[i] = names[i];
        free(names);
        names = NULL;
        n_names = 0;
    }
    d.has_norm = 0;
    snprintf(d.source, sizeof d.source, "%s", path);
    host->log(TB_LOG_INFO, PLUGIN_NAME, "%s: %d samples (%d train, %d validation, %d test) of %dx%dx%d%s, %d classes",
              path, d.count, counts[0], counts[1], counts[2], d.channels, d.height, d.width,
              is_f32 ? " (float32, kept as float32)" : "", d.classes);
    *out = d;
    memset(&d, 0, sizeof d);

done:
    dset_close(&x);
    dset_close(&y);
    free(labels);
    free(split);
    if (names) {
        for (hsize_t i = 0; i < n_names; i++) host->free(names[i]);
        free(names);
    }
    host->task_data_release(&d, sizeof d); /* host API version 4: ABI minor 3 guarantees it */
    return st;
}

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    const char *path = host->arg_string(args, "path");
    if (!path || !*path) {
        fail_msg(err, errlen, "path is empty; set it to an HDF5 file with datasets x and y");
        return TB_EINVAL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fail_msg(err, errlen, "%s: %s", path, strerror(errno));
        return TB_EIO;
    }
    if (!S_ISREG(sb.st_mode)) {
        fail_msg(err, errlen, "%s is not a regular file", path);
        return TB_EIO;
    }
    /* HDF5 prints its error stack by default; messages here say what went wrong */
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    tb_status st;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fail_msg(err, errlen, "%s: cannot open as an HDF5 file (not HDF5, damaged, or locked by a writer)", path);
        st = TB_EFORMAT;
    } else {
        st = open_file(host, args, path, file, out, err, errlen);
        H5Fclose(file);
    }
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return st;
}

/* The shape from x's dataspace (the file's metadata, not the samples); the
 * class count from the option classes, else from class_names' length, else
 * unknown (0: guessed from the labels when they load). Whatever cannot be
 * read here is left 0 and reported by open_task as usual. */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)err, (void)errlen;
    const char *path = host->arg_string(args, "path");
    int64_t classes = host->arg_int(args, "classes");
    if (classes > 0) out->classes = (int)classes;
    struct stat sb;
    if (!path || !*path || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return TB_OK;
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file >= 0) {
        char ignored[8];
        dset x, names;
        if (dset_open(file, path, host->arg_string(args, "x"), &x, ignored, sizeof ignored) == 1) {
            if (x.rank == 4 && x.dims[1] >= 1 && x.dims[1] <= 4 && x.dims[2] >= 1 && x.dims[2] <= MAX_SIDE &&
                x.dims[3] >= 1 && x.dims[3] <= MAX_SIDE) {
                out->channels = (int)x.dims[1];
                out->height = (int)x.dims[2];
                out->width = (int)x.dims[3];
            }
            dset_close(&x);
        }
        if (classes == 0 &&
            dset_open(file, path, host->arg_string(args, "class_names"), &names, ignored, sizeof ignored) == 1) {
            if (names.rank == 1 && names.dims[0] >= 1 && names.dims[0] <= MAX_CLASSES)
                out->classes = (int)names.dims[0];
            dset_close(&names);
        }
        H5Fclose(file);
    }
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_TASK,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .license = "MIT",
    .description = "bring your own data: images (N x C x H x W uint8 or float32) and labels stored as arrays in an "
                   "HDF5 file, with optional splits and class names",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
