/* device.h: where a run trains, and the backends for it.
 *
 * A device is "cpu", "cuda" (the first GPU) or "cuda:N". The CUDA backend is a
 * module (libtunebench_cuda.so, core/engine/cuda/) loaded on first use, so machines
 * and builds without CUDA run everything else; its path is
 * $TUNEBENCH_CUDA_MODULE, else the build tree's, else the installed one. */
#ifndef TB_DEVICE_H
#define TB_DEVICE_H

#include <stddef.h>

#include "backend.h"
#include "base/common.h"

typedef struct tb_device {
    int cuda;  /* 0: cpu */
    int index; /* GPU index (0 for plain "cuda") */
} tb_device;

/* "cpu" | "cuda" | "cuda:N" (N in [0, 63]); field names the config key in errors. */
tb_status tb_device_parse(const char *text, const char *field, tb_device *out, tb_err *err);
/* "cpu" or "cuda:N" */
void tb_device_format(const tb_device *d, char *buf, size_t len);

/* Number of CUDA devices this process can use; 0 with the reason in why
 * (module not built or not loadable, no driver, no device). */
int tb_cuda_device_count(char *why, size_t len);

/* What `tunebench devices` prints: the CPU, then each GPU with its memory and
 * compute capability, or why there is none. */
void tb_devices_report(char *buf, size_t len);

/* TB_OK when d can be used here: the CPU, or a GPU that exists (TB_EINVAL
 * naming field, the device and what is available otherwise). */
tb_status tb_device_check(const tb_device *d, const char *field, tb_err *err);

typedef struct tb_backend_options {
    int threads;               /* CPU threads (the CPU backend's kernels; data loading on either) */
    size_t gpu_memory_budget;  /* bytes a GPU run may allocate (0: no limit but the device's) */
    int tf32;                  /* GPU: allow TF32 tensor-core math (faster, ~1e-3 relative error) */
} tb_backend_options;

/* A backend for d. A GPU that is absent or cannot start fails with the
 * reason (TB_EINVAL naming the device and what is available, or TB_EDEVICE). */
tb_status tb_backend_create(const tb_device *d, const tb_backend_options *opt, tb_backend **out, tb_err *err);

#endif
