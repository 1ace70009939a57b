/* backend.h: a backend is a table of operations plus a context.
 *
 * The network code (net.c) calls only these; the CPU backend (backend_cpu.c)
 * fills the table with the kernels of layers/, the CUDA backend fills the same
 * table with cuDNN/cuBLAS calls and its own kernels. Buffers passed to an op
 * are the backend's own memory (from alloc). Append new ops at the end only;
 * struct_size tells which ops a table has. */
#ifndef TB_BACKEND_H
#define TB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "engine/layers/layers.h"
#include "loss.h"
#include "optim.h"

typedef struct tb_backend tb_backend;

typedef struct tb_backend_ops {
    size_t struct_size;
    const char *name;

    /* memory */
    void *(*alloc)(tb_backend *be, size_t bytes); /* zeroed; NULL when out of memory */
    void (*free)(tb_backend *be, void *ptr);
    void (*to_device)(tb_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*to_host)(tb_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*zero)(tb_backend *be, void *dst, size_t bytes);
    void (*copy_or_add)(tb_backend *be, float *dst, const float *src, size_t count, int accumulate);
    /* 1 when every element is finite */
    int (*all_finite)(tb_backend *be, const float *x, size_t count);

    /* layers: same arguments and gradient rule as layers/layers.h */
    size_t (*conv2d_workspace_floats)(tb_backend *be, const tb_conv2d_shape *s, int n);
    void (*conv2d_forward)(tb_backend *be, float *out, const float *in, const float *weight, const float *bias,
                           const tb_conv2d_shape *s, int n, float *ws);
    void (*conv2d_backward)(tb_backend *be, float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, const tb_conv2d_shape *s, int n,
                            int accumulate_din, float *ws);
    void (*linear_forward)(tb_backend *be, float *out, const float *in, const float *weight, const float *bias,
                           const tb_linear_shape *s, int n);
    void (*linear_backward)(tb_backend *be, float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, const tb_linear_shape *s, int n,
                            int accumulate_din);
    void (*relu_forward)(tb_backend *be, float *out, const float *in, size_t count);
    void (*relu_backward)(tb_backend *be, float *din, const float *dout, const float *out, size_t count,
                          int accumulate_din);
    void (*maxpool_forward)(tb_backend *be, float *out, int32_t *argmax, const float *in, const tb_pool_shape *s,
                            int n);
    void (*maxpool_backward)(tb_backend *be, float *din, const float *dout, const int32_t *argmax,
                             const tb_pool_shape *s, int n, int accumulate_din);
    void (*avgpool_forward)(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n);
    void (*avgpool_backward)(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s, int n,
                             int accumulate_din);
    void (*adaptive_avgpool_forward)(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n);
    void (*adaptive_avgpool_backward)(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s,
                                      int n, int accumulate_din);
    void (*concat_forward)(tb_backend *be, float *out, const float *const *ins, const int *channels,
                           int n_inputs, int hw, int n);
    void (*concat_backward)(tb_backend *be, float *const *dins, const float *dout, const int *channels,
                            int n_inputs, int hw, int n, const int *accumulate);
    void (*dropout_forward)(tb_backend *be, float *out, uint8_t *mask, const float *in, size_t count, float p,
                            uint64_t seed, uint32_t layer, uint64_t step);
    void (*dropout_backward)(tb_backend *be, float *din, const float *dout, const uint8_t *mask, size_t count,
                             float p, int accumulate_din);
    void (*batchnorm_forward_train)(tb_backend *be, float *out, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *in, const float *gamma,
                                    const float *beta, const tb_bn_shape *s, int n);
    void (*batchnorm_forward_eval)(tb_backend *be, float *out, const float *in, const float *gamma,
                                   const float *beta, const float *running_mean, const float *running_var,
                                   const tb_bn_shape *s, int n);
    void (*batchnorm_backward)(tb_backend *be, float *din, float *dgamma, float *dbeta, const float *dout,
                               const float *in, const float *gamma, const float *save_mean,
                               const float *save_invstd, const tb_bn_shape *s, int n, int accumulate_din);

    /* loss on device logits, host-visible result; dlogits assigned (may be NULL) */
    float (*loss)(tb_backend *be, float *dlogits, const float *logits, const int32_t *targets, int n, int classes,
                  tb_loss_kind kind);
    /* one optimizer step over params/grads [n]; slot s of element i at state[s * stride + i] */
    void (*optim_step)(tb_backend *be, const tb_optim_config *cfg, tb_optim_scalars *sc, float *params,
                       const float *grads, float *state, size_t n, size_t stride);
    /* ensure queued work is done (GPU); no-op on CPU */
    void (*synchronize)(tb_backend *be);

    /* ---- appended for the CUDA backend; every backend has them (a CUDA
     * module with a shorter table is refused when it is created) ---- */
    /* Copies one batch of input to dst, which queued work does not touch (the
     * training loop alternates two input buffers). A GPU copies on its own
     * stream, overlapping the compute already queued; src may be reused on return. */
    void (*upload)(tb_backend *be, void *dst, const void *host_src, size_t bytes);
    /* 0 while every op succeeded. Ops return nothing, so a GPU backend keeps
     * its first failure (out of memory, a device error: "file:line: call:
     * reason"), skips the ops after it, and reports it here with TB_ENOMEM or
     * TB_EDEVICE in *status. The CPU backend never fails. */
    int (*failed)(tb_backend *be, tb_status *status, char *msg, size_t len);
    /* Details for the run file's /environment (device, library versions,
     * the convolution algorithms chosen per shape); "" when there are none. */
    void (*describe)(tb_backend *be, char *buf, size_t len);
    /* frees the backend and everything it holds (tb_backend_destroy calls it) */
    void (*destroy)(tb_backend *be);

    /* ---- appended for tanh, sigmoid, leaky ReLU and GELU (issue 18); every
     * backend has them: same arguments and gradient rule as layers/layers.h ---- */
    void (*tanh_forward)(tb_backend *be, float *out, const float *in, size_t count);
    void (*tanh_backward)(tb_backend *be, float *din, const float *dout, const float *out, size_t count,
                          int accumulate_din);
    void (*sigmoid_forward)(tb_backend *be, float *out, const float *in, size_t count);
    void (*sigmoid_backward)(tb_backend *be, float *din, const float *dout, const float *out, size_t count,
                             int accumulate_din);
    void (*leaky_relu_forward)(tb_backend *be, float *out, const float *in, size_t count, float negative_slope);
    void (*leaky_relu_backward)(tb_backend *be, float *din, const float *dout, const float *in, size_t count,
                                float negative_slope, int accumulate_din);
    void (*gelu_forward)(tb_backend *be, float *out, const float *in, size_t count, int tanh_approx);
    void (*gelu_backward)(tb_backend *be, float *din, const float *dout, const float *in, size_t count,
                          int tanh_approx, int accumulate_din);

    /* ---- appended for benchmarks (issue 16); may be NULL ---- */
    /* The best single-precision GEMM rate this backend reaches on square
     * size x size products with its thread count, in GFLOP/s: the ceiling
     * `tunebench bench` reports each step's rate against. */
    double (*sgemm_gflops)(tb_backend *be, int size);

    /* ---- appended for batch-minor activations (issue 16); NULL where a
     * backend keeps [n, c, h, w] everywhere (CUDA: cuDNN's NCHW) ----
     * With all four present, a network with convolutions keeps its 4-D
     * activations as [c, n, h, w] between its input and its flatten (net.c),
     * and calls these for its convolutions; per-plane and per-channel layers
     * (pooling, BatchNorm2d, concat, element-wise) need no ops of their own. */
    size_t (*conv2d_cn_workspace_floats)(tb_backend *be, const tb_conv2d_shape *s, int n);
    void (*conv2d_cn_forward)(tb_backend *be, float *out, const float *in, const float *weight, const float *bias,
                              const tb_conv2d_shape *s, int n, float *ws);
    void (*conv2d_cn_backward)(tb_backend *be, float *din, float *dweight, float *dbias, const float *dout,
                               const float *in, const float *weight, const tb_conv2d_shape *s, int n,
                               int accumulate_din, float *ws);
    /* out [b, a, inner] (= or +=) in [a, b, inner] */
    void (*swap_outer_axes)(tb_backend *be, float *out, const float *in, int a, int b, size_t inner, int accumulate);

    /* ---- appended for ReLU in place over its producer (issue 16); NULL
     * where a backend keeps every layer's output apart (CUDA) ----
     * With it present, net.c lets a ReLU that is the only consumer of a
     * convolution, linear or batch norm overwrite that layer's output, and
     * calls this instead of relu_backward over a convolution: the mask and
     * the bias gradient in one pass (conv2d_relu_backward in layers.h).
     * A backend that has it must also honour tb_conv2d_shape.relu and
     * tb_bn_shape.relu in its convolution and batch-norm forwards: net.c then
     * skips those ReLUs' own forward. */
    void (*conv2d_relu_backward)(tb_backend *be, float *dout, const float *out, float *dbias,
                                 const tb_conv2d_shape *s, int n, int batch_minor);
} tb_backend_ops;


struct tb_backend {
    const tb_backend_ops *ops;
    void *ctx;
    int threads;       /* CPU threads used by this backend's kernels */
    char name[96];     /* e.g. "cpu (openblas, 2 threads)", "cuda:0 (NVIDIA H100 80GB HBM3)" */
    char device[16];   /* "cpu", "cuda:0" */
};

/* The CPU backend with `threads` threads (0: all cores). Sets OpenMP's and
 * OpenBLAS's thread counts for the calling process. A GPU backend comes from
 * tb_backend_create (device.h). */
tb_backend *tb_backend_cpu_create(int threads);
void tb_backend_destroy(tb_backend *be);
/* TB_OK, or the backend's first failure (see ops->failed) as a status and a
 * message naming the device. */
tb_status tb_backend_check(tb_backend *be, tb_err *err);

#endif
