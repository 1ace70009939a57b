/* backend_cpu.c: the CPU backend: host memory, OpenMP for element loops,
 * OpenBLAS for the products. Each op forwards to the kernel in layers/. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "backend.h"
#include "base/common.h"

/* OpenBLAS's own thread control (declared in its cblas.h on Debian, but not everywhere). */
void openblas_set_num_threads(int num_threads);

static void *cpu_alloc(tb_backend *be, size_t bytes)
{
    void *p = tb_aligned_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}
static void cpu_free(tb_backend *be, void *p) { tb_aligned_free(p); }
static void cpu_copy(tb_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(tb_backend *be, void *dst, size_t bytes)
{
    if (bytes) memset(dst, 0, bytes);
}
static void cpu_copy_or_add(tb_backend *be, float *dst, const float *src, size_t count, int accumulate)
{
    tb_copy_or_add(dst, src, count, accumulate);
}
static int cpu_all_finite(tb_backend *be, const float *x, size_t count)
{
    int finite = 1;
#pragma omp parallel for schedule(static) reduction(& : finite) if (count > 65536)
    for (size_t i = 0; i < count; i++) finite &= isfinite(x[i]) ? 1 : 0;
    return finite;
}

/* OpenMP's thread count is per calling thread, and OpenBLAS (its OpenMP
 * build) follows it: the convolution ops set this backend's count first, not
 * whatever another backend set last. Their workspace holds a slot per thread,
 * so it is sized with the same count. */
static size_t cpu_conv2d_ws(tb_backend *be, const tb_conv2d_shape *s, int n)
{
    omp_set_num_threads(be->threads);
    return conv2d_workspace_floats(s, n);
}
static void cpu_conv2d_fwd(tb_backend *be, float *out, const float *in, const float *w, const float *b,
                           const tb_conv2d_shape *s, int n, float *ws)
{
    omp_set_num_threads(be->threads);
    conv2d_forward(out, in, w, b, s, n, ws);
}
static void cpu_conv2d_bwd(tb_backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const tb_conv2d_shape *s, int n, int acc, float *ws)
{
    omp_set_num_threads(be->threads);
    conv2d_backward(din, dw, db, dout, in, w, s, n, acc, ws);
}
static size_t cpu_conv2d_cn_ws(tb_backend *be, const tb_conv2d_shape *s, int n)
{
    omp_set_num_threads(be->threads);
    return conv2d_cn_workspace_floats(s, n);
}
static void cpu_conv2d_cn_fwd(tb_backend *be, float *out, const float *in, const float *w, const float *b,
                              const tb_conv2d_shape *s, int n, float *ws)
{
    omp_set_num_threads(be->threads);
    conv2d_cn_forward(out, in, w, b, s, n, ws);
}
static void cpu_conv2d_cn_bwd(tb_backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                              const float *w, const tb_conv2d_shape *s, int n, int acc, float *ws)
{
    omp_set_num_threads(be->threads);
    conv2d_cn_backward(din, dw, db, dout, in, w, s, n, acc, ws);
}
static void cpu_swap_outer_axes(tb_backend *be, float *out, const float *in, int a, int b, size_t inner, int acc)
{
    omp_set_num_threads(be->threads);
    swap_outer_axes(out, in, a, b, inner, acc);
}
static void cpu_conv2d_relu_bwd(tb_backend *be, float *dout, const float *out, float *db, const tb_conv2d_shape *s,
                                int n, int batch_minor)
{
    omp_set_num_threads(be->threads);
    conv2d_relu_backward(dout, out, db, s, n, batch_minor);
}
static void cpu_linear_fwd(tb_backend *be, float *out, const float *in, const float *w, const float *b,
                           const tb_linear_shape *s, int n)
{
    linear_forward(out, in, w, b, s, n);
}
static void cpu_linear_bwd(tb_backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const tb_linear_shape *s, int n, int acc)
{
    linear_backward(din, dw, db, dout, in, w, s, n, acc);
}
static void cpu_relu_fwd(tb_backend *be, float *out, const float *in, size_t count) { relu_forward(out, in, count); }
static void cpu_relu_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    relu_backward(din, dout, out, count, acc);
}
static void cpu_maxpool_fwd(tb_backend *be, float *out, int32_t *argmax, const float *in, const tb_pool_shape *s,
                            int n)
{
    maxpool_forward(out, argmax, in, s, n);
}
static void cpu_maxpool_bwd(tb_backend *be, float *din, const float *dout, const int32_t *argmax,
                            const tb_pool_shape *s, int n, int acc)
{
    maxpool_backward(din, dout, argmax, s, n, acc);
}
static void cpu_avgpool_fwd(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n)
{
    avgpool_forward(out, in, s, n);
}
static void cpu_avgpool_bwd(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s, int n, int acc)
{
    avgpool_backward(din, dout, s, n, acc);
}
static void cpu_adaptive_fwd(tb_backend *be, float *out, const float *in, const tb_pool_shape *s, int n)
{
    adaptive_avgpool_forward(out, in, s, n);
}
static void cpu_adaptive_bwd(tb_backend *be, float *din, const float *dout, const tb_pool_shape *s, int n, int acc)
{
    adaptive_avgpool_backward(din, dout, s, n, acc);
}
static void cpu_concat_fwd(tb_backend *be, float *out, const float *const *ins, const int *channels, int n_inputs,
                           int hw, int n)
{
    concat_forward(out, ins, channels, n_inputs, hw, n);
}
static void cpu_concat_bwd(tb_backend *be, float *const *dins, const float *dout, const int *channels, int n_inputs,
                           int hw, int n, const int *acc)
{
    concat_backward(dins, dout, channels, n_inputs, hw, n, acc);
}
static void cpu_dropout_fwd(tb_backend *be, float *out, uint8_t *mask, const float *in, size_t count, float p,
                            uint64_t seed, uint32_t layer, uint64_t step)
{
    dropout_forward(out, mask, in, count, p, seed, layer, step);
}
static void cpu_dropout_bwd(tb_backend *be, float *din, const float *dout, const uint8_t *mask, size_t count,
                            float p, int acc)
{
    dropout_backward(din, dout, mask, count, p, acc);
}
static void cpu_bn_train(tb_backend *be, float *out, float *save_mean, float *save_invstd, float *running_mean,
                         float *running_var, const float *in, const float *gamma, const float *beta,
                         const tb_bn_shape *s, int n)
{
    batchnorm_forward_train(out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta, s, n);
}
static void cpu_bn_eval(tb_backend *be, float *out, const float *in, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, const tb_bn_shape *s, int n)
{
    batchnorm_forward_eval(out, in, gamma, beta, running_mean, running_var, s, n);
}
static void cpu_bn_bwd(tb_backend *be, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *save_mean, const float *save_invstd, const tb_bn_shape *s,
                       int n, int acc)
{
    batchnorm_backward(din, dgamma, dbeta, dout, in, gamma, save_mean, save_invstd, s, n, acc);
}
static void cpu_tanh_fwd(tb_backend *be, float *out, const float *in, size_t count) { tanh_forward(out, in, count); }
static void cpu_tanh_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    tanh_backward(din, dout, out, count, acc);
}
static void cpu_sigmoid_fwd(tb_backend *be, float *out, const float *in, size_t count)
{
    sigmoid_forward(out, in, count);
}
static void cpu_sigmoid_bwd(tb_backend *be, float *din, const float *dout, const float *out, size_t count, int acc)
{
    sigmoid_backward(din, dout, out, count, acc);
}
static void cpu_leaky_fwd(tb_backend *be, float *out, const float *in, size_t count, float slope)
{
    leaky_relu_forward(out, in, count, slope);
}
static void cpu_leaky_bwd(tb_backend *be, float *din, const float *dout, const float *in, size_t count, float slope,
                          int acc)
{
    leaky_relu_backward(din, dout, in, count, slope, acc);
}
static void cpu_gelu_fwd(tb_backend *be, float *out, const float *in, size_t count, int tanh_approx)
{
    gelu_forward(out, in, count, tanh_approx);
}
static void cpu_gelu_bwd(tb_backend *be, float *din, const float *dout, const float *in, size_t count,
                         int tanh_approx, int acc)
{
    gelu_backward(din, dout, in, count, tanh_approx, acc);
}
static float cpu_loss(tb_backend *be, float *dlogits, const float *logits, const int32_t *targets, int n,
                      int classes, tb_loss_kind kind)
{
    return tb_loss(dlogits, logits, targets, n, classes, kind);
}
static void cpu_optim_step(tb_backend *be, const tb_optim_config *cfg, tb_optim_scalars *sc, float *params,
                           const float *grads, float *state, size_t n, size_t stride)
{
    tb_optim_step_strided(cfg, sc, params, grads, state, n, stride);
}
static void cpu_synchronize(tb_backend *be) {}
static int cpu_failed(tb_backend *be, tb_status *status, char *msg, size_t len)
{
    if (status) *status = TB_OK;
    if (msg && len) msg[0] = '\0';
    return 0;
}
static void cpu_describe(tb_backend *be, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
}
static void cpu_destroy(tb_backend *be) { free(be); }

static double cpu_sgemm_gflops(tb_backend *be, int size)
{
    omp_set_num_threads(be->threads);
    openblas_set_num_threads(be->threads);
    const size_t n = (size_t)size;
    float *a = tb_aligned_alloc(sizeof(float) * n * n * 3);
    if (!a) return 0;
    float *b = a + n * n, *c = b + n * n;
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 17) * 0.01f;
        b[i] = (float)(i % 13) * 0.01f;
    }
    double best = 0;
    for (int rep = 0; rep < 4; rep++) { /* the first warms caches and threads */
        double t0 = tb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b, size, 0.0f, c,
                    size);
        double secs = tb_now() - t0;
        double rate = 2.0 * n * n * n / secs / 1e9;
        if (rep > 0 && rate > best) best = rate;
    }
    tb_aligned_free(a);
    return best;
}

static const tb_backend_ops cpu_ops = {
    .struct_size = sizeof(tb_backend_ops),
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .zero = cpu_zero,
    .copy_or_add = cpu_copy_or_add,
    .all_finite = cpu_all_finite,
    .conv2d_workspace_floats = cpu_conv2d_ws,
    .conv2d_forward = cpu_conv2d_fwd,
    .conv2d_backward = cpu_conv2d_bwd,
    .linear_forward = cpu_linear_fwd,
    .linear_backward = cpu_linear_bwd,
    .relu_forward = cpu_relu_fwd,
    .relu_backward = cpu_relu_bwd,
    .maxpool_forward = cpu_maxpool_fwd,
    .maxpool_backward = cpu_maxpool_bwd,
    .avgpool_forward = cpu_avgpool_fwd,
    .avgpool_backward = cpu_avgpool_bwd,
    .adaptive_avgpool_forward = cpu_adaptive_fwd,
    .adaptive_avgpool_backward = cpu_adaptive_bwd,
    .concat_forward = cpu_concat_fwd,
    .concat_backward = cpu_concat_bwd,
    .dropout_forward = cpu_dropout_fwd,
    .dropout_backward = cpu_dropout_bwd,
    .batchnorm_forward_train = cpu_bn_train,
    .batchnorm_forward_eval = cpu_bn_eval,
    .batchnorm_backward = cpu_bn_bwd,
    .loss = cpu_loss,
    .optim_step = cpu_optim_step,
    .synchronize = cpu_synchronize,
    .upload = cpu_copy,
    .failed = cpu_failed,
    .describe = cpu_describe,
    .destroy = cpu_destroy,
    .tanh_forward = cpu_tanh_fwd,
    .tanh_backward = cpu_tanh_bwd,
    .sigmoid_forward = cpu_sigmoid_fwd,
    .sigmoid_backward = cpu_sigmoid_bwd,
    .leaky_relu_forward = cpu_leaky_fwd,
    .leaky_relu_backward = cpu_leaky_bwd,
    .gelu_forward = cpu_gelu_fwd,
    .gelu_backward = cpu_gelu_bwd,
    .sgemm_gflops = cpu_sgemm_gflops,
    .conv2d_cn_workspace_floats = cpu_conv2d_cn_ws,
    .conv2d_cn_forward = cpu_conv2d_cn_fwd,
    .conv2d_cn_backward = cpu_conv2d_cn_bwd,
    .swap_outer_axes = cpu_swap_outer_axes,
    .conv2d_relu_backward = cpu_conv2d_relu_bwd,
};

tb_backend *tb_backend_cpu_create(int threads)
{
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    tb_backend *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->ops = &cpu_ops;
    be->threads = threads;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    snprintf(be->name, sizeof be->name, "cpu (openblas, %d thread%s)", threads, threads == 1 ? "" : "s");
    snprintf(be->device, sizeof be->device, "cpu");
    return be;
}
