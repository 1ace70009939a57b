/* tb_fmnist.h: Fashion-MNIST for the tests (tb_fmnist.c). */
#ifndef TB_FMNIST_H
#define TB_FMNIST_H

#include "data/dataset.h"

/* Fashion-MNIST from the IDX files (gzip or plain) in dir; split "train" or
 * "test". Normalised with the training set's mean 0.2860 and std 0.3530. */
tb_status tb_fmnist_load(tb_dataset *out, const char *dir, const char *split, tb_err *err);
extern const char *const tb_fmnist_class_names[10];

#endif
