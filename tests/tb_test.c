#include "tb_test.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *tbt_fixture(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", TB_FIXTURES_DIR, name);
    return path;
}

static hid_t open_dataset(const char *file, const char *path, hid_t *fid)
{
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(*fid >= 0, "cannot open fixture %s", file);
    hid_t d = H5Dopen2(*fid, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "fixture %s has no dataset %s", file, path);
    return d;
}

static void *read_any(const char *file, const char *path, hid_t memtype, size_t elem, size_t *count,
                      int64_t shape[4], int *ndim)
{
    hid_t fid;
    hid_t d = open_dataset(file, path, &fid);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[8] = {0};
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    void *buf = malloc(n * elem + 1);
    ck_assert(buf != NULL);
    ck_assert(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    if (count) *count = n;
    if (ndim) *ndim = rank;
    if (shape)
        for (int i = 0; i < 4; i++) shape[i] = i < rank ? (int64_t)dims[i] : 1;
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(fid);
    return buf;
}

float *tbt_read_f32(const char *file, const char *path, size_t *count, int64_t shape[4], int *ndim)
{
    return read_any(file, path, H5T_NATIVE_FLOAT, sizeof(float), count, shape, ndim);
}

int32_t *tbt_read_i32(const char *file, const char *path, size_t *count)
{
    return read_any(file, path, H5T_NATIVE_INT32, sizeof(int32_t), count, NULL, NULL);
}

double tbt_read_attr(const char *file, const char *path, const char *attr)
{
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(fid >= 0, "cannot open fixture %s", file);
    hid_t a = H5Aopen_by_name(fid, path, attr, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "fixture %s: %s has no attribute %s", file, path, attr);
    double v = 0;
    ck_assert(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Fclose(fid);
    return v;
}

double tbt_close_ratio(const float *a, const float *b, size_t n, double rtol, double atol, size_t *worst)
{
    double max_ratio = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double ratio = diff / (atol + rtol * fabs((double)b[i]));
        if (isnan(a[i]) != isnan(b[i])) ratio = INFINITY;
        if (ratio > max_ratio || isnan(ratio)) {
            max_ratio = isnan(ratio) ? INFINITY : ratio;
            *worst = i;
        }
    }
    return max_ratio;
}

int tbt_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
