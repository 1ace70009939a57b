/* fuzz_hdf5_task.c: the hdf5 task plugin's file validation, driven through
 * the host as a run does it. HDF5's own file parser is not the target: the
 * input drives a structured generator that writes a *valid* HDF5 file whose
 * contents are what a careless user might hand in: x of any of several
 * types, ranks and shapes (C and H/W zero, too large), float pixels that are
 * NaN, Inf, huge, negative or subnormal; labels of every integer type (and
 * float), negative, huge, 2^63-1, 2^64-1, a wrong count or rank; a split
 * dataset with bad values; index datasets with duplicates, overlaps,
 * negative and out-of-range entries; class names (fixed or variable length,
 * too few, too many, empty); dataset options pointing at groups or missing
 * names; `classes` set or not; and the task options (resolution, folds,
 * val_fraction, merge_val, mean/std, augmentation). The configuration goes
 * through tb_run_config_parse and tb_plugin_args_resolve, the file through
 * tb_plugin_open_task and tb_task_prepare. Errors are fine; crashes, leaks,
 * UB and hangs are not. The plugin is found once (tb_plugins_discover in
 * the build's plugin folder) and stays loaded. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "base/config.h"
#include "data/task.h"
#include "fuzz_util.h"
#include "host/plugin.h"
#include "run/run.h"

static char h5path[600];
static tb_plugin_registry reg;
static const tb_plugin *hdf5_plugin;

typedef struct rd {
    const uint8_t *p;
    size_t n, i;
} rd;

static unsigned u8(rd *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static uint64_t u64(rd *r)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)u8(r) << (8 * k);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    snprintf(h5path, sizeof h5path, "%s/data.h5", fz_dir());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    tb_err err;
    if (tb_plugins_discover(&reg, NULL, &err) != TB_OK ||
        tb_plugin_find(&reg, TB_PLUGIN_TASK, "hdf5", &hdf5_plugin, &err) != TB_OK) {
        fprintf(stderr, "fuzz_hdf5_task: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* A label or index: small mostly, then the values that break things. */
static int64_t pick_int(rd *r, int64_t n)
{
    static const int64_t special[] = {-1, -2, 999999, 1000000, 1000001, INT32_MAX, (int64_t)INT32_MAX + 1,
                                      INT64_MAX, INT64_MIN, 255, 256, 65535, 65536};
    unsigned b = u8(r);
    if (b < 200) return (int64_t)(b % (unsigned)(n + 3));
    if (b < 200 + sizeof special / sizeof special[0]) return special[b - 200];
    return (int64_t)u64(r);
}

static double pick_float(rd *r)
{
    static const double special[] = {0.0, 1.0, -0.0, 0.5, -1e-3, 1.0000001, 2.0, 255.0, 1e30, -1e30, 3.4e38,
                                     1e-45, 1e-39, 0.5 / 255, 1.5 / 255};
    unsigned b = u8(r);
    if (b < 220) return b / 219.0;
    if (b == 220) return NAN;
    if (b == 221) return INFINITY;
    if (b == 222) return -INFINITY;
    b -= 223;
    if (b < sizeof special / sizeof special[0]) return special[b];
    return (double)(int8_t)u8(r) * 1e10;
}

/* integer types for labels and indices, and one float to be refused */
static hid_t int_type(unsigned k)
{
    switch (k % 10) {
    case 0: return H5T_NATIVE_INT8;
    case 1: return H5T_NATIVE_UINT8;
    case 2: return H5T_NATIVE_INT16;
    case 3: return H5T_NATIVE_UINT16;
    case 4: return H5T_NATIVE_INT32;
    case 5: return H5T_NATIVE_UINT32;
    case 6: return H5T_NATIVE_UINT64;
    case 7: return H5T_NATIVE_FLOAT;
    default: return H5T_NATIVE_INT64;
    }
}

/* A 1-D (or, rarely, 2-D) dataset of count values drawn by pick_int, stored
 * as type (converted by HDF5 from int64 / uint64 / double as it stores). */
static void write_ints(hid_t f, const char *name, hid_t type, hsize_t count, int rank2, rd *r, int64_t n)
{
    hsize_t dims[2] = {count, 1};
    hid_t sp = H5Screate_simple(rank2 ? 2 : 1, dims, NULL);
    int64_t *v = calloc(count ? count : 1, sizeof *v);
    for (hsize_t i = 0; i < count; i++) v[i] = pick_int(r, n);
    /* HDF5 refuses overflowing conversions by default: let it clip, as h5py would store what fits */
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, name, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        hid_t mt = H5Tequal(type, H5T_NATIVE_UINT64) > 0 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
        if (H5Tequal(type, H5T_NATIVE_FLOAT) > 0) {
            double *dv = calloc(count ? count : 1, sizeof *dv);
            for (hsize_t i = 0; i < count; i++) dv[i] = (double)v[i] + (u8(r) & 1 ? 0.5 : 0);
            H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, dxpl, dv);
            free(dv);
        } else {
            H5Dwrite(d, mt, H5S_ALL, H5S_ALL, dxpl, v);
        }
        H5Dclose(d);
    }
    H5Pclose(lcpl);
    H5Pclose(dxpl);
    H5Sclose(sp);
    free(v);
}

static void write_names(hid_t f, const char *name, unsigned count, int vlen, rd *r)
{
    static const char *const words[] = {"cat", "", "dog", "a much longer class name that goes on", "\xc3\xa9t\xc3\xa9",
                                        "x"};
    hsize_t dims[1] = {count};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t t = H5Tcopy(H5T_C_S1);
    const char *ptrs[64];
    char fixed[64][8];
    for (unsigned i = 0; i < count; i++) {
        ptrs[i] = words[u8(r) % 6];
        memset(fixed[i], 0, sizeof fixed[i]);
        strncpy(fixed[i], ptrs[i], sizeof fixed[i]); /* fixed length: cut, not NUL-terminated when full */
    }
    if (vlen) H5Tset_size(t, H5T_VARIABLE);
    else H5Tset_size(t, sizeof fixed[0]);
    hid_t d = H5Dcreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, vlen ? (const void *)ptrs : (const void *)fixed);
        H5Dclose(d);
    }
    H5Tclose(t);
    H5Sclose(sp);
}

static void write_x(hid_t f, rd *r, hsize_t n)
{
    unsigned b = u8(r);
    int rank = (b & 7) == 7 ? 3 : (b & 7) == 6 ? 5 : 4;
    hid_t type;
    switch ((b >> 3) & 7) {
    case 0: case 1: case 2: type = H5T_NATIVE_UINT8; break;
    case 3: case 4: case 5: type = H5T_NATIVE_FLOAT; break;
    case 6: type = (b & 0x40) ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT8; break;
    default: type = H5T_NATIVE_UINT16; break;
    }
    hsize_t dims[5] = {n, u8(r) % 6, 0, 0, 2};
    dims[2] = u8(r) % 10;
    dims[3] = u8(r) % 10;
    if (u8(r) == 0xff) dims[2] = 16385; /* too tall, with the other sides small */
    if (dims[1] == 0 && dims[2] > 2) dims[1] = 1; /* C = 0 only with tiny images */
    hsize_t total = 1;
    for (int k = 0; k < rank; k++) total *= dims[k];
    if (total > (1u << 20)) dims[2] = 1, total = total / 16385;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, "images/x", type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0 && total) {
        double *v = malloc(total * sizeof *v);
        /* one pattern per sample value: constant, ramp, or drawn */
        unsigned mode = u8(r) % 3;
        for (hsize_t i = 0; i < total; i++)
            v[i] = mode == 0 ? 0.25 : mode == 1 ? (double)(i % 256) / 255.0 : pick_float(r);
        if (type == H5T_NATIVE_UINT8 || type == H5T_NATIVE_INT8 || type == H5T_NATIVE_UINT16)
            for (hsize_t i = 0; i < total; i++) v[i] = isfinite(v[i]) ? fmod(fabs(v[i]) * 255.0, 256.0) : 0;
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        free(v);
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

/* Writes the file from the input and returns the INI text of a run that uses it. */
static char *generate(rd *r)
{
    hid_t f = H5Fcreate(h5path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) abort();
    hsize_t n = 1 + u8(r) % 24;
    write_x(f, r, n);
    unsigned b = u8(r);
    hsize_t ny = (b & 3) == 3 ? n + 1 : (b & 3) == 2 && n > 1 ? n - 1 : n;
    write_ints(f, "y", int_type(u8(r)), ny, (b & 0x1c) == 0x1c, r, 4);
    unsigned s = u8(r);
    if (s & 1) write_ints(f, "split", int_type(u8(r)), (s & 2) ? n : n + 1, 0, r, 1);
    static const char *const idx[3] = {"train_idx", "val_idx", "test_idx"};
    for (int k = 0; k < 3; k++)
        if (s & (4 << k)) write_ints(f, idx[k], int_type(u8(r)), u8(r) % (n + 3), 0, r, (int64_t)n - 2);
    unsigned c = u8(r);
    if (c & 1) write_names(f, "class_names", (c >> 1) % 12, (c >> 5) & 1, r);
    if (c & 0x40) H5Gclose(H5Gcreate2(f, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);

    /* the configuration */
    static const char *const xnames[] = {"images/x", "images/x", "images/x", "x", "group", "images"};
    static const char *const fracs[] = {"0", "0.1", "0.5", "0.9"};
    unsigned o = u8(r), t = u8(r), a = u8(r);
    char *ini = malloc(4096);
    int len = snprintf(ini, 4096,
                       "[model]\nname = cnn\n[train]\noptimizer = sgd\n"
                       "[task]\nname = hdf5\nresolution = %u\nval_fraction = %s\nsplit_seed = %u\n"
                       "folds = %u\nfold = %u\nmerge_val = %s\ncrop_padding = %u\nhflip = %s\n"
                       "random_resized_crop = %s\n%s"
                       "[hdf5]\npath = %s\nx = %s\n",
                       (t & 3) == 0 ? 0u : (t & 3) == 1 ? 2u : (t & 3) == 2 ? 7u : 32u, fracs[(t >> 2) & 3],
                       a, (t >> 4) % 4 == 1 ? 0u : (t >> 4) % 4, (a & 1) && (t >> 4) % 4 > 1 ? 1u : 0u,
                       (a & 2) && (t >> 4) % 4 < 2 ? "true" : "false", (a >> 2) & 3, (a & 16) ? "true" : "false",
                       (a & 32) ? "true" : "false",
                       (a & 64) ? "mean = 0.5, 0.4, 0.3\nstd = 0.25, 0.2, 0.1\n" : "", h5path,
                       xnames[o % 6]);
    if (o & 8) len += snprintf(ini + len, 4096 - len, "classes = %u\n", (o & 16) ? 1000000u : u8(r) % 8);
    if (o & 32) len += snprintf(ini + len, 4096 - len, "split = nosuch\n");
    if (o & 64) len += snprintf(ini + len, 4096 - len, "class_names = %s\n", (o & 128) ? "y" : "nosuch");
    if ((o & 0xc0) == 0x80) len += snprintf(ini + len, 4096 - len, "y = split\n");
    return ini;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return -1;
    rd r = {data, size, 0};
    char *ini = generate(&r);
    tb_config *cfg = NULL;
    tb_err err;
    tb_run_config rc;
    tb_plugin_args *args = NULL;
    if (tb_config_load_text(&cfg, ini, "fuzz hdf5", &err) != TB_OK) {
        fprintf(stderr, "fuzz_hdf5_task: the generated configuration does not load: %s\n%s", err.msg, ini);
        abort();
    }
    if (tb_run_config_parse(&rc, cfg, &err) == TB_OK &&
        tb_plugin_args_resolve(hdf5_plugin, cfg, "hdf5", &args, &err) == TB_OK) {
        tb_task_data raw;
        memset(&raw, 0, sizeof raw);
        if (tb_plugin_open_task(hdf5_plugin, args, &raw, &err) == TB_OK) {
            tb_task task;
            if (tb_task_prepare(&task, &raw, &rc.task_opt, &err) == TB_OK) tb_task_free(&task);
        }
    }
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    free(ini);
    return 0;
}
