/* cuda_internal.h: the CUDA backend's context and its kernels' launchers,
 * shared by backend_cuda.cu (the ops table, memory, cuDNN, cuBLAS) and
 * kernels.cu (everything we compute ourselves). Not for plugins. */
#ifndef TB_CUDA_INTERNAL_H
#define TB_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "cuda_module.h"

/* inputs of one concatenation (net.h allows TB_MAX_CONCAT = 8) */
#define TB_CUDA_MAX_CONCAT 8

/* ---- checks: every CUDA, cuDNN and cuBLAS call, with file and line ---------- */

typedef struct cuda_ctx cuda_ctx;

/* Records the context's first failure; returns -1 so that callers can bail out. */
int cu_fail(cuda_ctx *c, tb_status status, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int cu_check_rt(cuda_ctx *c, cudaError_t e, const char *call, const char *file, int line);
int cu_check_dnn(cuda_ctx *c, cudnnStatus_t s, const char *call, const char *file, int line);
int cu_check_blas(cuda_ctx *c, cublasStatus_t s, const char *call, const char *file, int line);

#define CU_RT(c, call) cu_check_rt((c), (call), #call, __FILE__, __LINE__)
#define CU_DNN(c, call) cu_check_dnn((c), (call), #call, __FILE__, __LINE__)
#define CU_BLAS(c, call) cu_check_blas((c), (call), #call, __FILE__, __LINE__)
/* after a kernel launch: configuration errors show up here, faults at the next sync */
#define CU_LAUNCHED(c, what) cu_check_rt((c), cudaGetLastError(), what, __FILE__, __LINE__)

/* ---- the context ------------------------------------------------------------- */

/* cuDNN descriptors and the deterministic algorithms chosen for one
 * convolution shape at one batch size. */
typedef struct conv_plan {
    tb_conv2d_shape s;
    int n;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t math_fwd, math_bwd_data, math_bwd_filter;
    size_t ws_fwd, ws_bwd_data, ws_bwd_filter;
} conv_plan;

typedef struct allocation {
    void *ptr;
    size_t bytes;
} allocation;

struct cuda_ctx {
    int device;
    cudaDeviceProp prop;
    tb_cuda_options opt;
    cudaStream_t stream; /* all compute, in order */
    cudaStream_t copy;   /* batch uploads, overlapping compute */
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    /* device memory the backend hands out, for the budget and the report */
    allocation *allocs;
    int n_allocs, cap_allocs;
    size_t used_bytes, peak_bytes;
    /* cuDNN workspace, grown on demand (the net allocates none for us) */
    void *workspace;
    size_t workspace_bytes;
    conv_plan *plans;
    int n_plans, cap_plans;
    /* upload staging: two pinned buffers, each free again when its event fires */
    void *staging[2];
    size_t staging_bytes[2];
    cudaEvent_t staging_done[2];
    cudaEvent_t compute_mark[2]; /* compute queued before an upload: the last reader of the buffer the next
                                    upload but one overwrites (the caller alternates two) */
    int staging_next;
    long long uploads;
    /* loss and all_finite: small pinned and device scratch */
    int32_t *targets_host, *targets_dev;
    double *loss_host, *loss_dev;
    int *flag_host, *flag_dev;
    int scratch_n; /* samples the loss scratch holds */
    /* the first failure */
    int failed;
    tb_status status;
    char msg[512];
};

/* ---- kernels (kernels.cu); each launches on stream and returns 0 or -1 ------- */

int k_copy_or_add(cuda_ctx *c, float *dst, const float *src, size_t count, int accumulate);
int k_relu_forward(cuda_ctx *c, float *out, const float *in, size_t count);
int k_relu_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate);
/* element-wise activations: the arithmetic of layers/activation_rules.h */
int k_tanh_forward(cuda_ctx *c, float *out, const float *in, size_t count);
int k_tanh_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate);
int k_sigmoid_forward(cuda_ctx *c, float *out, const float *in, size_t count);
int k_sigmoid_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate);
int k_leaky_relu_forward(cuda_ctx *c, float *out, const float *in, size_t count, float slope);
int k_leaky_relu_backward(cuda_ctx *c, float *din, const float *dout, const float *in, size_t count, float slope,
                          int accumulate);
int k_gelu_forward(cuda_ctx *c, float *out, const float *in, size_t count, int tanh_approx);
int k_gelu_backward(cuda_ctx *c, float *din, const float *dout, const float *in, size_t count, int tanh_approx,
                    int accumulate);
int k_maxpool_forward(cuda_ctx *c, float *out, int32_t *argmax, const float *in, const tb_pool_shape *s, int n);
int k_maxpool_backward(cuda_ctx *c, float *din, const float *dout, const int32_t *argmax, const tb_pool_shape *s,
                       int n, int accumulate);
int k_avgpool_forward(cuda_ctx *c, float *out, const float *in, const tb_pool_shape *s, int n);
int k_avgpool_backward(cuda_ctx *c, float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate);
int k_adaptive_forward(cuda_ctx *c, float *out, const float *in, const tb_pool_shape *s, int n);
int k_adaptive_backward(cuda_ctx *c, float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate);
int k_concat_forward(cuda_ctx *c, float *out, const float *const *ins, const int *channels, int n_inputs, int hw,
                     int n);
int k_concat_backward(cuda_ctx *c, float *const *dins, const float *dout, const int *channels, int n_inputs, int hw,
                      int n, const int *accumulate);
int k_dropout_forward(cuda_ctx *c, float *out, uint8_t *mask, const float *in, size_t count, float p, uint64_t seed,
                      uint32_t layer, uint64_t step);
int k_dropout_backward(cuda_ctx *c, float *din, const float *dout, const uint8_t *mask, size_t count, float p,
                       int accumulate);
int k_batchnorm_train(cuda_ctx *c, float *out, float *save_mean, float *save_invstd, float *running_mean,
                      float *running_var, const float *in, const float *gamma, const float *beta,
                      const tb_bn_shape *s, int n);
int k_batchnorm_eval(cuda_ctx *c, float *out, const float *in, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var, const tb_bn_shape *s, int n);
int k_batchnorm_backward(cuda_ctx *c, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                         const float *gamma, const float *save_mean, const float *save_invstd, const tb_bn_shape *s,
                         int n, int accumulate);
/* out [n, channels, hw] += bias[channel] */
int k_bias_add(cuda_ctx *c, float *out, const float *bias, int channels, int hw, int n);
/* dbias[channel] += sum over n and hw of dout [n, channels, hw] (deterministic) */
int k_bias_grad(cuda_ctx *c, float *dbias, const float *dout, int channels, int hw, int n);
/* per-sample losses (double) into loss_dev[0..n); dlogits assigned when non-NULL */
int k_loss(cuda_ctx *c, float *dlogits, double *loss_dev, const float *logits, const int32_t *targets_dev, int n,
           int classes, tb_loss_kind kind);
int k_optim_step(cuda_ctx *c, const void *coeffs /* tb_optim_coeffs */, float *params, const float *grads,
                 float *state, size_t n, size_t stride);
/* *flag_dev = 1 when some element is not finite (flag zeroed by the caller) */
int k_nonfinite(cuda_ctx *c, int *flag_dev, const float *x, size_t count);

#endif
