/* tunebench_status.h: the status codes every tunebench function returns, the
 * core's and the plugins' alike. Part of the public ABI (tunebench_plugin.h
 * includes it; the core includes only this, not the whole plugin ABI):
 * append-only, values never change. */
#ifndef TUNEBENCH_STATUS_H
#define TUNEBENCH_STATUS_H

#ifndef TB_STATUS_DEFINED
#define TB_STATUS_DEFINED
typedef enum tb_status {
    TB_OK = 0,
    TB_EINVAL = 1,     /* bad argument or configuration value */
    TB_ENOMEM = 2,     /* allocation failed */
    TB_EIO = 3,        /* file could not be read or written */
    TB_EFORMAT = 4,    /* file exists but has the wrong layout or version */
    TB_EDIVERGED = 5,  /* NaN/Inf loss or parameter: the run diverged */
    TB_ECANCELLED = 6, /* cancelled by the caller between batches */
    TB_ETIMEOUT = 7,   /* wall-time limit reached */
    TB_EDEVICE = 8,    /* the GPU (driver, CUDA, cuDNN, cuBLAS) reported an error */
} tb_status;
#endif

#endif
