/* cuda_module.h: what the CUDA backend module (libtunebench_cuda.so, built
 * from core/engine/cuda/) exports to the core, which loads it with dlopen only when a
 * run asks for a GPU or `tunebench devices` lists them. CPU-only runs never
 * load CUDA, cuDNN or cuBLAS, and a build without them still runs.
 *
 * The module fills the same backend table (backend.h) as the CPU backend. It
 * calls nothing of the core: errors come back as text in msg. The table is
 * append-only; struct_size tells what a module has. */
#ifndef TB_CUDA_MODULE_H
#define TB_CUDA_MODULE_H

#include <stddef.h>

#include "engine/backend.h"

#define TB_CUDA_MODULE_VERSION 1
#define TB_CUDA_MODULE_SYMBOL "tb_cuda_module_get"

typedef struct tb_cuda_device_info {
    int index;
    char name[128];
    int cc_major, cc_minor;   /* compute capability */
    int multiprocessors;
    size_t total_bytes, free_bytes;
    char pci_bus[32];         /* "0000:3b:00.0" */
} tb_cuda_device_info;

typedef struct tb_cuda_options {
    size_t memory_budget_bytes;    /* 0: the whole device; else alloc beyond it fails (out of memory) */
    size_t workspace_limit_bytes;  /* cuDNN workspace ceiling when choosing algorithms (0: 1 GiB) */
    int tf32;                      /* 1: allow TF32 tensor-core math in convolutions and GEMMs */
} tb_cuda_options;

typedef struct tb_cuda_module {
    size_t struct_size;
    int version;
    /* versions of the CUDA runtime, driver, cuDNN and cuBLAS, one line */
    void (*versions)(char *buf, size_t len);
    /* number of usable devices; 0 with the reason in msg (no driver, no device) */
    int (*device_count)(char *msg, size_t len);
    /* 0, or -1 with msg */
    int (*device_info)(int index, tb_cuda_device_info *info, char *msg, size_t len);
    /* a backend on device index; NULL with msg */
    tb_backend *(*backend_create)(int index, const tb_cuda_options *opt, char *msg, size_t len);
    void (*backend_destroy)(tb_backend *be);
} tb_cuda_module;

typedef const tb_cuda_module *(*tb_cuda_module_get_fn)(void);

#endif
