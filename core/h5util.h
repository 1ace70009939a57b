/* h5util.h: small HDF5 helpers for files analysts read with h5py/pandas:
 * string attributes are variable-length UTF-8, columns are 1-D datasets. */
#ifndef TB_H5UTIL_H
#define TB_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

/* Each returns 0, or -1 on an HDF5 failure. */
int tb_h5_attr_str(hid_t obj, const char *name, const char *value);
int tb_h5_attr_i64(hid_t obj, const char *name, int64_t value);
int tb_h5_attr_f64(hid_t obj, const char *name, double value);
/* 1-D columns of n values (n may be 0) */
int tb_h5_column_f64(hid_t loc, const char *name, const double *values, size_t n);
int tb_h5_column_i64(hid_t loc, const char *name, const int64_t *values, size_t n);
/* n strings as a 1-D variable-length UTF-8 string dataset */
int tb_h5_column_str(hid_t loc, const char *name, const char *const *values, size_t n);
/* a rows x cols int64 matrix */
int tb_h5_matrix_i64(hid_t loc, const char *name, const int64_t *values, size_t rows, size_t cols);
/* creates a group (intermediate groups too); returns its id or -1 */
hid_t tb_h5_group(hid_t loc, const char *name);

#endif
