/* h5util.h: small HDF5 helpers for files analysts read with h5py/pandas:
 * string attributes are variable-length UTF-8, columns are 1-D datasets. */
#ifndef TB_H5UTIL_H
#define TB_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* A new variable-length UTF-8 string type (H5Tclose it), or -1: the file and
 * memory type of every string these helpers write. */
hid_t tb_h5_utf8_type(void);

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
/* a dataset of rank dims (rank 0: a scalar) written from values (skipped when it has no elements) */
int tb_h5_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                  const void *values);
/* Reads the string attribute name of obj (variable or fixed length, its own
 * character set; fixed-length space padding dropped) into out, always
 * terminated. Returns 1 when read, 0 when absent, -1 when it is not one
 * readable string, -2 when it is longer than cap - 1 bytes (a variable-length
 * one is left cut in out). why (may be NULL) receives a phrase for a message:
 * "is absent", "is not a string", "is too long", ... ("" when read). */
int tb_h5_read_attr_str(hid_t obj, const char *name, char *out, size_t cap, const char **why);
/* creates a group (intermediate groups too); returns its id or -1 */
hid_t tb_h5_group(hid_t loc, const char *name);

#endif
