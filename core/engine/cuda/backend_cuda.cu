/* backend_cuda.cu: the CUDA backend: the ops table of backend.h on one GPU.
 *
 * Convolutions go to cuDNN with deterministic algorithms only, chosen by
 * cuDNN's heuristics (never by timing, which could pick differently from run
 * to run) and recorded per shape for the run file; linear layers to cuBLAS;
 * everything else to our kernels (kernels.cu). All compute is queued on one
 * stream, in order; batch uploads use a second stream from pinned staging
 * buffers so they overlap the compute already queued. FP32 throughout unless
 * the run allows TF32.
 *
 * Ops return nothing: the first failing call (checked with file and line)
 * is kept, the ops after it do nothing, and `failed` reports it; out of memory
 * is TB_ENOMEM, anything else TB_EDEVICE. The module calls nothing of the
 * core (it is loaded with dlopen, core/engine/device.c). */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optim_rules.h"
#include "cuda_internal.h"

#define CTX(be) ((cuda_ctx *)(be)->ctx)
#define MIB (1024.0 * 1024.0)

/* ---- failures ------------------------------------------------------------------ */

int cu_fail(cuda_ctx *c, tb_status status, const char *file, int line, const char *fmt, ...)
{
    if (c->failed) return -1;
    c->failed = 1;
    c->status = status;
    const char *base = strrchr(file, '/');
    int w = snprintf(c->msg, sizeof c->msg, "%s:%d: ", base ? base + 1 : file, line);
    if (w < 0 || (size_t)w >= sizeof c->msg) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg + w, sizeof c->msg - (size_t)w, fmt, ap);
    va_end(ap);
    return -1;
}

int cu_check_rt(cuda_ctx *c, cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess) return 0;
    (void)cudaGetLastError(); /* clear a non-sticky error so the message is about this call */
    return cu_fail(c, e == cudaErrorMemoryAllocation ? TB_ENOMEM : TB_EDEVICE, file, line, "%s: %s (%s)", call,
                   cudaGetErrorString(e), cudaGetErrorName(e));
}

int cu_check_dnn(cuda_ctx *c, cudnnStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUDNN_STATUS_SUCCESS) return 0;
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    const int oom = s == CUDNN_STATUS_ALLOC_FAILED || s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
    return cu_fail(c, oom ? TB_ENOMEM : TB_EDEVICE, file, line, "%s: %s%s%s", call, cudnnGetErrorString(s),
                   detail[0] ? ": " : "", detail);
}

int cu_check_blas(cuda_ctx *c, cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return cu_fail(c, s == CUBLAS_STATUS_ALLOC_FAILED ? TB_ENOMEM : TB_EDEVICE, file, line, "%s: %s", call,
                   cublasGetStatusString(s));
}

/* Every op starts here: nothing runs after a failure, and the calling
 * thread's current device is ours (it is per thread in CUDA). */
static int enter(cuda_ctx *c)
{
    if (c->failed) return -1;
    return CU_RT(c, cudaSetDevice(c->device));
}

/* ---- memory ---------------------------------------------------------------------- */

static int budget_allows(cuda_ctx *c, size_t bytes)
{
    return !c->opt.memory_budget_bytes || c->used_bytes + bytes <= c->opt.memory_budget_bytes;
}

static void *cuda_alloc(tb_backend *be, size_t bytes)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return NULL;
    if (!bytes) bytes = 1;
    if (!budget_allows(c, bytes)) return NULL; /* the caller reports out of memory */
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 32;
        allocation *grown = (allocation *)realloc(c->allocs, sizeof *grown * (size_t)cap);
        if (!grown) return NULL;
        c->allocs = grown;
        c->cap_allocs = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        return NULL; /* not the run's failure yet: tb_net_build says what did not fit */
    }
    if (CU_RT(c, e)) return NULL;
    /* zeroed before anything else (an upload on the copy stream) can touch it */
    if (CU_RT(c, cudaMemsetAsync(p, 0, bytes, c->stream)) || CU_RT(c, cudaStreamSynchronize(c->stream))) {
        cudaFree(p);
        return NULL;
    }
    c->allocs[c->n_allocs].ptr = p;
    c->allocs[c->n_allocs].bytes = bytes;
    c->n_allocs++;
    c->used_bytes += bytes;
    if (c->used_bytes > c->peak_bytes) c->peak_bytes = c->used_bytes;
    return p;
}

static void cuda_free(tb_backend *be, void *p)
{
    cuda_ctx *c = CTX(be);
    if (!p) return;
    cudaSetDevice(c->device);
    for (int i = 0; i < c->n_allocs; i++) {
        if (c->allocs[i].ptr != p) continue;
        c->used_bytes -= c->allocs[i].bytes;
        c->allocs[i] = c->allocs[--c->n_allocs];
        break;
    }
    /* cudaFree waits for the device; a failure here is reported by a later op */
    cudaError_t e = cudaFree(p);
    if (e != cudaSuccess) cu_check_rt(c, e, "cudaFree", __FILE__, __LINE__);
}

static void cuda_to_device(tb_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = CTX(be);
    if (!bytes || enter(c)) return;
    /* from pageable memory this returns once src has been staged: src may be reused */
    CU_RT(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
}

static void cuda_to_host(tb_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = CTX(be);
    if (!bytes) return;
    if (enter(c)) {
        memset(dst, 0, bytes); /* defined contents; the failure is reported through failed() */
        return;
    }
    if (CU_RT(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream)) ||
        CU_RT(c, cudaStreamSynchronize(c->stream)))
        memset(dst, 0, bytes);
}

static void cuda_zero(tb_backend *be, void *dst, size_t bytes)
{
    cuda_ctx *c = CTX(be);
    if (!bytes || enter(c)) return;
    CU_RT(c, cudaMemsetAsync(dst, 0, bytes, c->stream));
}

/* Staging buffer k holds at least bytes (pinned, so the copy is asynchronous). */
static int staging_reserve(cuda_ctx *c, int k, size_t bytes)
{
    if (c->staging_bytes[k] >= bytes) return 0;
    if (c->staging[k] && CU_RT(c, cudaFreeHost(c->staging[k]))) return -1;
    c->staging[k] = NULL;
    c->staging_bytes[k] = 0;
    if (CU_RT(c, cudaMallocHost(&c->staging[k], bytes))) return -1;
    c->staging_bytes[k] = bytes;
    return 0;
}

/* Input batches: copied into one of two pinned buffers (free again once its
 * previous copy is done), then sent on the copy stream; the compute stream
 * waits for that copy before anything queued after this call. */
static void cuda_upload(tb_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = CTX(be);
    if (!bytes || enter(c)) return;
    const int k = c->staging_next;
    c->staging_next ^= 1;
    /* dst alternates between two buffers: the one written now was last read
     * by the compute queued before the previous upload, which that upload marked */
    if (c->uploads > 0 && CU_RT(c, cudaStreamWaitEvent(c->copy, c->compute_mark[k ^ 1], 0))) return;
    if (CU_RT(c, cudaEventRecord(c->compute_mark[k], c->stream))) return;
    c->uploads++;
    if (CU_RT(c, cudaEventSynchronize(c->staging_done[k])) || staging_reserve(c, k, bytes)) return;
    memcpy(c->staging[k], src, bytes);
    if (CU_RT(c, cudaMemcpyAsync(dst, c->staging[k], bytes, cudaMemcpyHostToDevice, c->copy)) ||
        CU_RT(c, cudaEventRecord(c->staging_done[k], c->copy)))
        return;
    CU_RT(c, cudaStreamWaitEvent(c->stream, c->staging_done[k], 0));
}

static void cuda_copy_or_add(tb_backend *be, float *dst, const float *src, size_t count, int accumulate)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return;
    k_copy_or_add(c, dst, src, count, accumulate);
}

static int cuda_all_finite(tb_backend *be, const float *x, size_t count)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return 0;
    if (CU_RT(c, cudaMemsetAsync(c->flag_dev, 0, sizeof(int), c->stream)) || k_nonfinite(c, c->flag_dev, x, count) ||
        CU_RT(c, cudaMemcpyAsync(c->flag_host, c->flag_dev, sizeof(int), cudaMemcpyDeviceToHost, c->stream)) ||
        CU_RT(c, cudaStreamSynchronize(c->stream)))
        return 0;
    return *c->flag_host == 0;
}

/* ---- convolution: cuDNN --------------------------------------------------------------- */

static int ensure_workspace(cuda_ctx *c, size_t bytes)
{
    if (bytes <= c->workspace_bytes) return 0;
    if (!budget_allows(c, bytes - c->workspace_bytes))
        return cu_fail(c, TB_ENOMEM, __FILE__, __LINE__,
                       "the cuDNN workspace of %.1f MiB does not fit the run's GPU memory budget (%.1f MiB, %.1f MiB "
                       "in use)", bytes / MIB, c->opt.memory_budget_bytes / MIB, c->used_bytes / MIB);
    if (c->workspace) {
        if (CU_RT(c, cudaStreamSynchronize(c->stream)) || CU_RT(c, cudaFree(c->workspace))) return -1;
        c->used_bytes -= c->workspace_bytes;
        c->workspace = NULL;
        c->workspace_bytes = 0;
    }
    if (CU_RT(c, cudaMalloc(&c->workspace, bytes))) return -1;
    c->workspace_bytes = bytes;
    c->used_bytes += bytes;
    if (c->used_bytes > c->peak_bytes) c->peak_bytes = c->used_bytes;
    return 0;
}

/* FP32 runs take only algorithms without tensor-op math and run them with
 * CUDNN_FMA_MATH (CUDNN_DEFAULT_MATH would allow TF32 on sm_80+); TF32 runs
 * may use tensor ops but never the FP16 conversion. */
static int math_allowed(const cuda_ctx *c, cudnnMathType_t m)
{
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return 0;
    return c->opt.tf32 || m != CUDNN_TENSOR_OP_MATH;
}

static cudnnMathType_t math_to_use(const cuda_ctx *c, cudnnMathType_t m) { return c->opt.tf32 ? m : CUDNN_FMA_MATH; }

/* The workspace an algorithm may need: the configured ceiling, and within a
 * memory budget no more than what is left of it (the current workspace is
 * replaced, so it counts as free). */
static size_t workspace_limit(const cuda_ctx *c)
{
    size_t limit = c->opt.workspace_limit_bytes ? c->opt.workspace_limit_bytes : (size_t)1 << 30;
    if (c->opt.memory_budget_bytes) {
        const size_t in_use = c->used_bytes - c->workspace_bytes;
        const size_t left = c->opt.memory_budget_bytes > in_use ? c->opt.memory_budget_bytes - in_use : 0;
        if (left < limit) limit = left;
    }
    return limit;
}

/* The first of cuDNN's heuristic ranking that is deterministic, FP32 (unless
 * TF32 is allowed) and within the workspace limit. */
#define PICK(perf, got, out_algo, out_math, out_ws, found)                                                      \
    do {                                                                                                   \
        for (int i_ = 0; i_ < (got) && !(found); i_++) {                                                     \
            if ((perf)[i_].status != CUDNN_STATUS_SUCCESS || (perf)[i_].determinism != CUDNN_DETERMINISTIC ||    \
                (perf)[i_].memory > workspace_limit(c) || !math_allowed(c, (perf)[i_].mathType))            \
                continue;                                                                                  \
            (out_algo) = (perf)[i_].algo;                                                                    \
            (out_math) = math_to_use(c, (perf)[i_].mathType);                                                \
            (out_ws) = (perf)[i_].memory;                                                                    \
            (found) = 1;                                                                                   \
        }                                                                                                  \
    } while (0)

static void shape_text(const tb_conv2d_shape *s, int n, char *buf, size_t len)
{
    snprintf(buf, len, "conv %dx%dx%dx%d -> %dx%dx%d k%dx%d s%dx%d p%dx%d g%d", n, s->in_c, s->in_h, s->in_w, s->out_c,
             s->out_h, s->out_w, s->kh, s->kw, s->stride_h, s->stride_w, s->pad_h, s->pad_w, s->groups);
}

static void plan_destroy(conv_plan *p)
{
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
    memset(p, 0, sizeof *p);
}

/* The plan for (shape, n): made once, on first use of that batch size. */
static conv_plan *get_plan(cuda_ctx *c, const tb_conv2d_shape *s, int n)
{
    for (int i = 0; i < c->n_plans; i++)
        if (c->plans[i].n == n && memcmp(&c->plans[i].s, s, sizeof *s) == 0) return &c->plans[i];
    if (c->n_plans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 32;
        conv_plan *grown = (conv_plan *)realloc(c->plans, sizeof *grown * (size_t)cap);
        if (!grown) {
            cu_fail(c, TB_ENOMEM, __FILE__, __LINE__, "out of host memory for convolution plans");
            return NULL;
        }
        c->plans = grown;
        c->cap_plans = cap;
    }
    conv_plan *p = &c->plans[c->n_plans];
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->n = n;
    const cudnnMathType_t math = c->opt.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    if (CU_DNN(c, cudnnCreateTensorDescriptor(&p->x)) || CU_DNN(c, cudnnCreateTensorDescriptor(&p->y)) ||
        CU_DNN(c, cudnnCreateFilterDescriptor(&p->w)) || CU_DNN(c, cudnnCreateConvolutionDescriptor(&p->conv)) ||
        CU_DNN(c, cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, s->in_c, s->in_h, s->in_w)) ||
        CU_DNN(c, cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, s->out_c, s->out_h,
                                             s->out_w)) ||
        CU_DNN(c, cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s->out_c, s->in_c / s->groups,
                                             s->kh, s->kw)) ||
        CU_DNN(c, cudnnSetConvolution2dDescriptor(p->conv, s->pad_h, s->pad_w, s->stride_h, s->stride_w, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)) ||
        CU_DNN(c, cudnnSetConvolutionGroupCount(p->conv, s->groups)) ||
        CU_DNN(c, cudnnSetConvolutionMathType(p->conv, math))) {
        plan_destroy(p);
        return NULL;
    }
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t bwd_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t bwd_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got_fwd = 0, got_data = 0, got_filter = 0, found_fwd = 0, found_data = 0, found_filter = 0;
    if (CU_DNN(c, cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, p->x, p->w, p->conv, p->y,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got_fwd, fwd)) ||
        CU_DNN(c, cudnnGetConvolutionBackwardDataAlgorithm_v7(c->cudnn, p->w, p->y, p->conv, p->x,
                                                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got_data,
                                                              bwd_data)) ||
        CU_DNN(c, cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->cudnn, p->x, p->y, p->conv, p->w,
                                                                CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got_filter,
                                                                bwd_filter))) {
        plan_destroy(p);
        return NULL;
    }
    PICK(fwd, got_fwd, p->fwd, p->math_fwd, p->ws_fwd, found_fwd);
    PICK(bwd_data, got_data, p->bwd_data, p->math_bwd_data, p->ws_bwd_data, found_data);
    PICK(bwd_filter, got_filter, p->bwd_filter, p->math_bwd_filter, p->ws_bwd_filter, found_filter);
    if (!found_fwd || !found_data || !found_filter) {
        char shape[160];
        shape_text(s, n, shape, sizeof shape);
        cu_fail(c, TB_EDEVICE, __FILE__, __LINE__,
                "cuDNN offers no deterministic %s algorithm for %s within the %.0f MiB workspace limit",
                !found_fwd ? "forward" : !found_data ? "backward-data" : "backward-filter", shape,
                workspace_limit(c) / MIB);
        plan_destroy(p);
        return NULL;
    }
    /* the sizes for the chosen algorithm under the math type it will run with */
    if (CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_fwd)) ||
        CU_DNN(c, cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, p->x, p->w, p->conv, p->y, p->fwd, &p->ws_fwd)) ||
        CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_bwd_data)) ||
        CU_DNN(c, cudnnGetConvolutionBackwardDataWorkspaceSize(c->cudnn, p->w, p->y, p->conv, p->x, p->bwd_data,
                                                               &p->ws_bwd_data)) ||
        CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_bwd_filter)) ||
        CU_DNN(c, cudnnGetConvolutionBackwardFilterWorkspaceSize(c->cudnn, p->x, p->y, p->conv, p->w, p->bwd_filter,
                                                                 &p->ws_bwd_filter))) {
        plan_destroy(p);
        return NULL;
    }
    c->n_plans++;
    return p;
}

static size_t cuda_conv2d_ws(tb_backend *be, const tb_conv2d_shape *s, int n)
{
    /* the backend keeps its own workspace (per batch size the algorithms and
     * their needs differ); planning the full batch here finds a missing
     * deterministic algorithm before training starts */
    cuda_ctx *c = CTX(be);
    if (!enter(c)) get_plan(c, s, n);
    return 0;
}

static const float one = 1.0f, zero = 0.0f;

static void cuda_conv2d_fwd(tb_backend *be, float *out, const float *in, const float *w, const float *b,
                            const tb_conv2d_shape *s, int n, float *ws)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return;
    conv_plan *p = get_plan(c, s, n);
    if (!p || ensure_workspace(c, p->ws_fwd) || CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_fwd)) ||
        CU_DNN(c, cudnnConvolutionForward(c->cudnn, &one, p->x, in, p->w, w, p->conv, p->fwd, c->workspace,
                                          p->ws_fwd, &zero, p->y, out)))
        return;
    if (b) k_bias_add(c, out, b, s->out_c, s->out_h * s->out_w, n);
}

static void cuda_conv2d_bwd(tb_backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const tb_conv2d_shape *s, int n, int acc, float *ws)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return;
    conv_plan *p = get_plan(c, s, n);
    if (!p) return;
    if (db && k_bias_grad(c, db, dout, s->out_c, s->out_h * s->out_w, n)) return;
    /* parameter gradients accumulate: beta = 1 */
    if (ensure_workspace(c, p->ws_bwd_filter) ||
        CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_bwd_filter)) ||
        CU_DNN(c, cudnnConvolutionBackwardFilter(c->cudnn, &one, p->x, in, p->y, dout, p->conv, p->bwd_filter,
                                                 c->workspace, p->ws_bwd_filter, &one, p->w, dw)))
        return;
    if (!din) return;
    if (ensure_workspace(c, p->ws_bwd_data) || CU_DNN(c, cudnnSetConvolutionMathType(p->conv, p->math_bwd_data)))
        return;
    CU_DNN(c, cudnnConvolutionBackwardData(c->cudnn, &one, p->w, w, p->y, dout, p->conv, p->bwd_data, c->workspace,
                                           p->ws_bwd_data, acc ? &one : &zero, p->x, din));
}

/* ---- linear: cuBLAS (column-major, so row-major [n, f] is f x n) ----------------------------- */

static void cuda_linear_fwd(tb_backend *be, float *out, const float *in, const float *w, const float *b,
                            const tb_linear_shape *s, int n)
{
    cuda_ctx *c = CTX(be);
    if (enter(c) || n < 1) return;
    /* out^T [out_f, n] = W [out_f, in_f] . in^T [in_f, n] */
    if (CU_BLAS(c, cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, s->out_features, n, s->in_features, &one, w,
                               s->in_features, in, s->in_features, &zero, out, s->out_features)))
        return;
    if (b) k_bias_add(c, out, b, s->out_features, 1, n);
}

static void cuda_linear_bwd(tb_backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const tb_linear_shape *s, int n, int acc)
{
    cuda_ctx *c = CTX(be);
    if (enter(c) || n < 1) return;
    if (db && k_bias_grad(c, db, dout, s->out_features, 1, n)) return;
    /* dW [out_f, in_f] += dout^T . in */
    if (CU_BLAS(c, cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_T, s->in_features, s->out_features, n, &one, in,
                               s->in_features, dout, s->out_features, &one, dw, s->in_features)))
        return;
    /* din [n, in_f] (=|+=) dout . W */
    if (din)
        CU_BLAS(c, cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, s->in_features, n, s->out_features, &one, w,
                               s->in_features, dout, s->out_features, acc ? &one : &zero, din, s->in_features));
}

/* ---- the other layers: kernels.cu ---------------------------------------------------------- */

static void cuda_relu_fwd(tb_backend *be, float *out, const float *in, size_t count)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_relu_forward(c, out, in, count);
}
static void cuda_relu_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_relu_backward(c, din, dout, out, count, acc);
}
static void cuda_tanh_fwd(tb_backend *be, float *out, const float *in, size_t count)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_tanh_forward(c, out, in, count);
}
static void cuda_tanh_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_tanh_backward(c, din, dout, out, count, acc);
}
static void cuda_sigmoid_fwd(tb_backend *be, float *out, const float *in, size_t count)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_sigmoid_forward(c, out, in, count);
}
static void cuda_sigmoid_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_sigmoid_backward(c, din, dout, out, count, acc);
}
static void cuda_leaky_fwd(tb_backend *be, float *out, const float *in, size_t count, float slope)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_leaky_relu_forward(c, out, in, count, slope);
}
static void cuda_leaky_bwd(tb_backend *be, float *din, const float *dout, const float *in, size_t count, float slope,
                           int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_leaky_relu_backward(c, din, dout, in, count, slope, acc);
}
static void cuda_gelu_fwd(tb_backend *be, float *out, const float *in, size_t count, int tanh_approx)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_gelu_forward(c, out, in, count, tanh_approx);
}
static void cuda_gelu_bwd(tb_backend *be, float *din, const float *dout, const float *in, size_t count,
                          int tanh_approx, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_gelu_backward(c, din, dout, in, count, tanh_approx, acc);
}
static void cuda_maxpool_fwd(tb_backend *be, float *out, int32_t *argmax, const float *in, const tb_pool_shape *s,
                             int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_maxpool_forward(c, out, argmax, in, s, n);
}
static void cuda_maxpool_bwd(tb_backend *be, float *din, const float *dout, const int32_t *argmax,
                             const tb_pool_shape *s, int n, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_maxpool_backward(c, din, dout, argmax, s, n, acc);
}
static void cuda_avgpool_fwd(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_avgpool_forward(c, out, in, s, n);
}
static void cuda_avgpool_bwd(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s, int n, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_avgpool_backward(c, din, dout, s, n, acc);
}
static void cuda_adaptive_fwd(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_adaptive_forward(c, out, in, s, n);
}
static void cuda_adaptive_bwd(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s, int n, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_adaptive_backward(c, din, dout, s, n, acc);
}
static void cuda_concat_fwd(tb_backend *be, float *out, const float *const *ins, const int *channels, int n_inputs,
                            int hw, int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_concat_forward(c, out, ins, channels, n_inputs, hw, n);
}
static void cuda_concat_bwd(tb_backend *be, float *const *dins, const float *dout, const int *channels, int n_inputs,
                            int hw, int n, const int *acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_concat_backward(c, dins, dout, channels, n_inputs, hw, n, acc);
}
static void cuda_dropout_fwd(tb_backend *be, float *out, uint8_t *mask, const float *in, size_t count, float p,
                             uint64_t seed, uint32_t layer, uint64_t step)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_dropout_forward(c, out, mask, in, count, p, seed, layer, step);
}
static void cuda_dropout_bwd(tb_backend *be, float *din, const float *dout, const uint8_t *mask, size_t count,
                             float p, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_dropout_backward(c, din, dout, mask, count, p, acc);
}
static void cuda_bn_train(tb_backend *be, float *out, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *in, const float *gamma, const float *beta,
                          const tb_bn_shape *s, int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_batchnorm_train(c, out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta, s, n);
}
static void cuda_bn_eval(tb_backend *be, float *out, const float *in, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, const tb_bn_shape *s, int n)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_batchnorm_eval(c, out, in, gamma, beta, running_mean, running_var, s, n);
}
static void cuda_bn_bwd(tb_backend *be, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *gamma, const float *save_mean, const float *save_invstd, const tb_bn_shape *s,
                        int n, int acc)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) k_batchnorm_backward(c, din, dgamma, dbeta, dout, in, gamma, save_mean, save_invstd, s, n, acc);
}

/* ---- loss and optimizer ------------------------------------------------------------------- */

static int loss_scratch(cuda_ctx *c, int n)
{
    if (n <= c->scratch_n) return 0;
    if (c->targets_host) cudaFreeHost(c->targets_host);
    if (c->loss_host) cudaFreeHost(c->loss_host);
    if (c->targets_dev) cudaFree(c->targets_dev);
    if (c->loss_dev) cudaFree(c->loss_dev);
    c->targets_host = c->targets_dev = NULL;
    c->loss_host = c->loss_dev = NULL;
    c->scratch_n = 0;
    if (CU_RT(c, cudaMallocHost((void **)&c->targets_host, sizeof(int32_t) * (size_t)n)) ||
        CU_RT(c, cudaMallocHost((void **)&c->loss_host, sizeof(double) * (size_t)n)) ||
        CU_RT(c, cudaMalloc((void **)&c->targets_dev, sizeof(int32_t) * (size_t)n)) ||
        CU_RT(c, cudaMalloc((void **)&c->loss_dev, sizeof(double) * (size_t)n)))
        return -1;
    c->scratch_n = n;
    return 0;
}

/* targets are host memory; the per-sample losses come back and are summed
 * here in sample order, as the CPU does */
static float cuda_loss(tb_backend *be, float *dlogits, const float *logits, const int32_t *targets, int n,
                       int classes, tb_loss_kind kind)
{
    cuda_ctx *c = CTX(be);
    if (enter(c) || n <= 0 || classes <= 0) return NAN;
    for (int i = 0; i < n; i++) {
        if (targets[i] < 0 || targets[i] >= classes) {
            if (dlogits) CU_RT(c, cudaMemsetAsync(dlogits, 0, sizeof(float) * (size_t)n * classes, c->stream));
            return NAN;
        }
    }
    if ((int)kind < 0 || (int)kind > TB_LOSS_MSE || loss_scratch(c, n)) return NAN;
    /* the previous call's copies are done (it synchronised), so the pinned buffer is free */
    memcpy(c->targets_host, targets, sizeof(int32_t) * (size_t)n);
    if (CU_RT(c, cudaMemcpyAsync(c->targets_dev, c->targets_host, sizeof(int32_t) * (size_t)n,
                                 cudaMemcpyHostToDevice, c->stream)) ||
        k_loss(c, dlogits, c->loss_dev, logits, c->targets_dev, n, classes, kind) ||
        CU_RT(c, cudaMemcpyAsync(c->loss_host, c->loss_dev, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost,
                                 c->stream)) ||
        CU_RT(c, cudaStreamSynchronize(c->stream)))
        return NAN;
    double total = 0;
    for (int i = 0; i < n; i++) total += c->loss_host[i];
    const double denominator = kind == TB_LOSS_L1 || kind == TB_LOSS_MSE ? (double)n * classes : (double)n;
    return (float)(total / denominator);
}

static void cuda_optim_step(tb_backend *be, const tb_optim_config *cfg, tb_optim_scalars *sc, float *params,
                            const float *grads, float *state, size_t n, size_t stride)
{
    cuda_ctx *c = CTX(be);
    /* the scalars advance even after a failure, so the host's view stays consistent */
    tb_optim_coeffs k;
    tb_optim_coeffs_next(cfg, sc, &k);
    if (enter(c) || !n) return;
    k_optim_step(c, &k, params, grads, state, n, stride);
}

static void cuda_synchronize(tb_backend *be)
{
    cuda_ctx *c = CTX(be);
    if (!enter(c)) CU_RT(c, cudaStreamSynchronize(c->stream));
}

static int cuda_failed(tb_backend *be, tb_status *status, char *msg, size_t len)
{
    cuda_ctx *c = CTX(be);
    if (status) *status = c->failed ? c->status : TB_OK;
    if (msg && len) snprintf(msg, len, "%s", c->failed ? c->msg : "");
    return c->failed;
}

static void module_versions(char *buf, size_t len);

static void cuda_describe(tb_backend *be, char *buf, size_t len)
{
    cuda_ctx *c = CTX(be);
    if (!len) return;
    char versions[256];
    module_versions(versions, sizeof versions);
    size_t used = 0;
    int w = snprintf(buf, len,
                     "device cuda:%d %s, compute capability %d.%d, %.1f GiB\n%s\nmath %s; peak memory %.1f MiB; "
                     "cuDNN workspace %.1f MiB\n",
                     c->device, c->prop.name, c->prop.major, c->prop.minor, c->prop.totalGlobalMem / (MIB * 1024.0),
                     versions, c->opt.tf32 ? "tf32 allowed" : "fp32 (no TF32)", c->peak_bytes / MIB,
                     c->workspace_bytes / MIB);
    if (w > 0) used = (size_t)w < len ? (size_t)w : len - 1;
    for (int i = 0; i < c->n_plans && used + 1 < len; i++) {
        const conv_plan *p = &c->plans[i];
        char shape[160];
        shape_text(&p->s, p->n, shape, sizeof shape);
        w = snprintf(buf + used, len - used,
                     "%s: fwd=%d bwd_data=%d bwd_filter=%d math=%d/%d/%d workspace=%zu/%zu/%zu\n", shape, (int)p->fwd,
                     (int)p->bwd_data, (int)p->bwd_filter, (int)p->math_fwd, (int)p->math_bwd_data,
                     (int)p->math_bwd_filter, p->ws_fwd, p->ws_bwd_data, p->ws_bwd_filter);
        if (w > 0) used += (size_t)w < len - used ? (size_t)w : len - used - 1;
    }
}

static void ctx_release(cuda_ctx *c)
{
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->copy) cudaStreamSynchronize(c->copy);
    for (int i = 0; i < c->n_plans; i++) plan_destroy(&c->plans[i]);
    free(c->plans);
    for (int i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].ptr);
    free(c->allocs);
    if (c->workspace) cudaFree(c->workspace);
    for (int k = 0; k < 2; k++) {
        if (c->staging[k]) cudaFreeHost(c->staging[k]);
        if (c->staging_done[k]) cudaEventDestroy(c->staging_done[k]);
        if (c->compute_mark[k]) cudaEventDestroy(c->compute_mark[k]);
    }
    if (c->targets_host) cudaFreeHost(c->targets_host);
    if (c->loss_host) cudaFreeHost(c->loss_host);
    if (c->flag_host) cudaFreeHost(c->flag_host);
    if (c->targets_dev) cudaFree(c->targets_dev);
    if (c->loss_dev) cudaFree(c->loss_dev);
    if (c->flag_dev) cudaFree(c->flag_dev);
    if (c->cudnn) cudnnDestroy(c->cudnn);
    if (c->cublas) cublasDestroy(c->cublas);
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->copy) cudaStreamDestroy(c->copy);
    free(c);
}

static void cuda_destroy(tb_backend *be)
{
    if (!be) return;
    ctx_release(CTX(be));
    free(be);
}

/* The sgemm ceiling for `tunebench bench`: FP32 cuBLAS on square products,
 * best of three after a warm-up, timed with events on the compute stream.
 * With --tf32 cuBLAS may use tensor cores, as the convolutions then do. */
static double cuda_sgemm_gflops(tb_backend *be, int size)
{
    cuda_ctx *c = CTX(be);
    if (enter(c)) return 0;
    const size_t n = (size_t)size;
    float *a = NULL;
    cudaEvent_t start = NULL, stop = NULL;
    double best = 0;
    if (CU_RT(c, cudaMalloc((void **)&a, sizeof(float) * n * n * 3))) return 0;
    if (CU_RT(c, cudaMemset(a, 0, sizeof(float) * n * n * 3)) || CU_RT(c, cudaEventCreate(&start)) ||
        CU_RT(c, cudaEventCreate(&stop)))
        goto done;
    for (int rep = 0; rep < 4; rep++) {
        float ms = 0;
        if (CU_RT(c, cudaEventRecord(start, c->stream)) ||
            CU_BLAS(c, cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &one, a, size, a + n * n,
                                   size, &zero, a + 2 * n * n, size)) ||
            CU_RT(c, cudaEventRecord(stop, c->stream)) || CU_RT(c, cudaEventSynchronize(stop)) ||
            CU_RT(c, cudaEventElapsedTime(&ms, start, stop)))
            break;
        double rate = ms > 0 ? 2.0 * n * n * n / (ms * 1e-3) / 1e9 : 0;
        if (rep > 0 && rate > best) best = rate;
    }
done:
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cudaFree(a);
    return best;
}

static const tb_backend_ops cuda_ops = {
    sizeof(tb_backend_ops),
    "cuda",
    cuda_alloc,
    cuda_free,
    cuda_to_device,
    cuda_to_host,
    cuda_zero,
    cuda_copy_or_add,
    cuda_all_finite,
    cuda_conv2d_ws,
    cuda_conv2d_fwd,
    cuda_conv2d_bwd,
    cuda_linear_fwd,
    cuda_linear_bwd,
    cuda_relu_fwd,
    cuda_relu_bwd,
    cuda_maxpool_fwd,
    cuda_maxpool_bwd,
    cuda_avgpool_fwd,
    cuda_avgpool_bwd,
    cuda_adaptive_fwd,
    cuda_adaptive_bwd,
    cuda_concat_fwd,
    cuda_concat_bwd,
    cuda_dropout_fwd,
    cuda_dropout_bwd,
    cuda_bn_train,
    cuda_bn_eval,
    cuda_bn_bwd,
    cuda_loss,
    cuda_optim_step,
    cuda_synchronize,
    cuda_upload,
    cuda_failed,
    cuda_describe,
    cuda_destroy,
    cuda_tanh_fwd,
    cuda_tanh_bwd,
    cuda_sigmoid_fwd,
    cuda_sigmoid_bwd,
    cuda_leaky_fwd,
    cuda_leaky_bwd,
    cuda_gelu_fwd,
    cuda_gelu_bwd,
    cuda_sgemm_gflops,
    NULL, /* conv2d_cn_*, swap_outer_axes: cuDNN keeps NCHW */
    NULL,
    NULL,
    NULL,
    NULL, /* conv2d_relu_backward: every layer keeps its own output */
};

/* ---- the module ------------------------------------------------------------------------ */

static void module_versions(char *buf, size_t len)
{
    int runtime = 0, driver = 0, blas_major = 0, blas_minor = 0, blas_patch = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    cublasGetProperty(MAJOR_VERSION, &blas_major);
    cublasGetProperty(MINOR_VERSION, &blas_minor);
    cublasGetProperty(PATCH_LEVEL, &blas_patch);
    const size_t dnn = cudnnGetVersion();
    snprintf(buf, len, "CUDA runtime %d.%d, driver %d.%d, cuDNN %zu.%zu.%zu, cuBLAS %d.%d.%d", runtime / 1000,
             runtime % 1000 / 10, driver / 1000, driver % 1000 / 10, dnn / 10000, dnn % 10000 / 100, dnn % 100,
             blas_major, blas_minor, blas_patch);
}

static int module_device_count(char *msg, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        /* without a driver the runtime says "driver version is insufficient": say what is missing */
        void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!driver)
            snprintf(msg, len, "no NVIDIA driver on this machine (libcuda.so.1 cannot be loaded; cudaGetDeviceCount: %s)",
                     cudaGetErrorName(e));
        else
            snprintf(msg, len, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        if (driver) dlclose(driver);
        return 0;
    }
    if (n == 0) snprintf(msg, len, "the CUDA driver reports no device");
    return n;
}

static int module_device_info(int index, tb_cuda_device_info *info, char *msg, size_t len)
{
    memset(info, 0, sizeof *info);
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, index);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(msg, len, "cudaGetDeviceProperties(%d): %s", index, cudaGetErrorString(e));
        return -1;
    }
    info->index = index;
    snprintf(info->name, sizeof info->name, "%.127s", prop.name);
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->multiprocessors = prop.multiProcessorCount;
    info->total_bytes = prop.totalGlobalMem;
    snprintf(info->pci_bus, sizeof info->pci_bus, "%04x:%02x:%02x.0", prop.pciDomainID, prop.pciBusID,
             prop.pciDeviceID);
    int current = 0;
    size_t free_bytes = 0, total = 0;
    if (cudaGetDevice(&current) == cudaSuccess && cudaSetDevice(index) == cudaSuccess &&
        cudaMemGetInfo(&free_bytes, &total) == cudaSuccess)
        info->free_bytes = free_bytes;
    (void)cudaGetLastError();
    cudaSetDevice(current);
    return 0;
}

static tb_backend *module_backend_create(int index, const tb_cuda_options *opt, char *msg, size_t len)
{
    tb_backend *be = (tb_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        snprintf(msg, len, "out of host memory");
        return NULL;
    }
    c->device = index;
    if (opt) c->opt = *opt;
    /* waiting threads sleep instead of spinning, leaving the cores to data
     * loading; only possible before the device's context exists */
    if (cudaSetDevice(index) == cudaSuccess && cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync) != cudaSuccess)
        (void)cudaGetLastError(); /* cudaErrorSetOnActiveProcess: another run made the context first */
    if (CU_RT(c, cudaSetDevice(index)) || CU_RT(c, cudaGetDeviceProperties(&c->prop, index)) ||
        CU_RT(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) ||
        CU_RT(c, cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking)) ||
        CU_RT(c, cudaEventCreateWithFlags(&c->staging_done[0], cudaEventDisableTiming)) ||
        CU_RT(c, cudaEventCreateWithFlags(&c->staging_done[1], cudaEventDisableTiming)) ||
        CU_RT(c, cudaEventCreateWithFlags(&c->compute_mark[0], cudaEventDisableTiming)) ||
        CU_RT(c, cudaEventCreateWithFlags(&c->compute_mark[1], cudaEventDisableTiming)) ||
        CU_RT(c, cudaMallocHost((void **)&c->flag_host, sizeof(int))) ||
        CU_RT(c, cudaMalloc((void **)&c->flag_dev, sizeof(int))) || CU_BLAS(c, cublasCreate(&c->cublas)) ||
        CU_BLAS(c, cublasSetStream(c->cublas, c->stream)) ||
        CU_BLAS(c, cublasSetMathMode(c->cublas, c->opt.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH)) ||
        CU_DNN(c, cudnnCreate(&c->cudnn)) || CU_DNN(c, cudnnSetStream(c->cudnn, c->stream))) {
        snprintf(msg, len, "%s", c->msg);
        ctx_release(c);
        free(be);
        return NULL;
    }
    be->ops = &cuda_ops;
    be->ctx = c;
    snprintf(be->name, sizeof be->name, "cuda:%d (%s%s)", index, c->prop.name, c->opt.tf32 ? ", tf32" : "");
    snprintf(be->device, sizeof be->device, "cuda:%d", index);
    return be;
}

static const tb_cuda_module the_module = {
    sizeof(tb_cuda_module), TB_CUDA_MODULE_VERSION, module_versions, module_device_count, module_device_info,
    module_backend_create, cuda_destroy,
};

extern "C" __attribute__((visibility("default"))) const tb_cuda_module *tb_cuda_module_get(void)
{
    return &the_module;
}
