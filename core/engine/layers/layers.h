/* layers.h: shapes and CPU kernels of every layer.
 *
 * Each layer is a pair of plain functions over float buffers, NCHW, row-major:
 * outputs first, then inputs, then the shape. `n` is the number of samples in
 * this call (a last batch may be short).
 *
 * Gradient rule: parameter gradients ACCUMULATE (+=) so that one memset per
 * step clears them; an input gradient `din` is ASSIGNED when accumulate_din is
 * 0 and ADDED when it is 1 (a node feeding several consumers, as in
 * SqueezeNet's fire modules, receives the first consumer's gradient assigned
 * and the others' added). din may be NULL when no gradient is wanted (the
 * network's input).
 *
 * These are the CPU backend's kernels; the GPU backend implements the same
 * shapes in core/engine/cuda/. Semantics follow PyTorch's torch.nn exactly. */
#ifndef TB_LAYERS_H
#define TB_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d ------------------------------------------------------------ */
typedef struct tb_conv2d_shape {
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, groups;
    int algorithm; /* TB_CONV_AUTO (0), or one forced: for tests and benchmarks */
    int relu;      /* forward: ReLU applied to the output as it is written (the CPU's
                    * kernels; net.c sets it for a ReLU in place over this layer) */
} tb_conv2d_shape;

enum { TB_CONV_AUTO = 0, TB_CONV_IM2COL = 1, TB_CONV_WINOGRAD = 2 };

/* Fills out_h/out_w from the rest; returns 0 or -1 when the output would be empty. */
int conv2d_infer(tb_conv2d_shape *s);
/* Floats of scratch memory conv2d_forward/backward need for n samples with
 * the calling thread's OpenMP thread count (omp_get_max_threads()), which
 * must be the same when they run; may be 0. */
size_t conv2d_workspace_floats(const tb_conv2d_shape *s, int n);
/* out [n, out_c, out_h, out_w]; in [n, in_c, in_h, in_w];
 * weight [out_c, in_c/groups, kh, kw]; bias [out_c] or NULL */
void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const tb_conv2d_shape *s, int n, float *ws);
/* dweight, dbias (+=); din (= or +=, may be NULL); dbias may be NULL */
void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws);

/* The same convolution over batch-minor activations, the CPU backend's layout:
 * out [out_c, n, out_h, out_w], in [in_c, n, in_h, in_w] (each channel's images
 * side by side, so a run of images is one gemm per group). Workspace as
 * conv2d_cn_workspace_floats(s, n), with the same thread-count rule. */
size_t conv2d_cn_workspace_floats(const tb_conv2d_shape *s, int n);
void conv2d_cn_forward(float *out, const float *in, const float *weight, const float *bias,
                       const tb_conv2d_shape *s, int n, float *ws);
void conv2d_cn_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                        const float *weight, const tb_conv2d_shape *s, int n, int accumulate_din, float *ws);
/* ReLU's backward over a convolution's output that the ReLU overwrote in place:
 * dout [same layout as out] = 0 where out <= 0, in place; dbias (+=, may be
 * NULL) the convolution's bias gradient of the result, as conv2d_backward
 * would add it (which is then called with dbias NULL). batch_minor: out is
 * [out_c, n, h, w], else [n, out_c, h, w]. */
void conv2d_relu_backward(float *dout, const float *out, float *dbias, const tb_conv2d_shape *s, int n,
                          int batch_minor);
/* out [b, a, inner] (= or +=) in [a, b, inner]: between [n, c, h, w] and
 * [c, n, h, w] (a = n, b = c, inner = h*w, and back with a and b swapped) */
void swap_outer_axes(float *out, const float *in, int a, int b, size_t inner, int accumulate);

/* ---- linear: y = x W^T + b ----------------------------------------------- */
typedef struct tb_linear_shape {
    int in_features, out_features;
} tb_linear_shape;
/* out [n, out_f]; in [n, in_f]; weight [out_f, in_f]; bias [out_f] or NULL */
void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    const tb_linear_shape *s, int n);
void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const tb_linear_shape *s, int n, int accumulate_din);

/* ---- relu ---------------------------------------------------------------- */
/* out, in [count]; NaN propagates as in torch.relu */
void relu_forward(float *out, const float *in, size_t count);
/* grad blocked where out <= 0, passed elsewhere (NaN included), as torch's threshold_backward */
void relu_backward(float *din, const float *dout, const float *out, size_t count, int accumulate_din);

/* ---- tanh, sigmoid, leaky ReLU, GELU (torch.nn.Tanh, Sigmoid, LeakyReLU, GELU) ----
 * Element-wise; out, in, din, dout [count]. The arithmetic of one element is
 * written once in activation_rules.h (shared with the GPU). tanh and sigmoid
 * read their output in backward, as torch's tanh_backward/sigmoid_backward;
 * leaky ReLU and GELU read their input. Identity has no kernel of its own
 * (tb_copy_or_add both ways). */
void tanh_forward(float *out, const float *in, size_t count);
void tanh_backward(float *din, const float *dout, const float *out, size_t count, int accumulate_din);
void sigmoid_forward(float *out, const float *in, size_t count);
void sigmoid_backward(float *din, const float *dout, const float *out, size_t count, int accumulate_din);
/* out = x > 0 ? x : x * negative_slope (torch's default slope 0.01) */
void leaky_relu_forward(float *out, const float *in, size_t count, float negative_slope);
void leaky_relu_backward(float *din, const float *dout, const float *in, size_t count, float negative_slope,
                         int accumulate_din);
/* tanh_approx 0: approximate='none' (erf, torch's default); 1: approximate='tanh' */
void gelu_forward(float *out, const float *in, size_t count, int tanh_approx);
void gelu_backward(float *din, const float *dout, const float *in, size_t count, int tanh_approx,
                   int accumulate_din);

/* ---- pooling ------------------------------------------------------------- */
typedef struct tb_pool_shape {
    int c, in_h, in_w, out_h, out_w;
    int kh, kw, stride_h, stride_w, pad_h, pad_w;
    int ceil_mode;
    int count_include_pad; /* avg pooling only; torch's default is 1 */
} tb_pool_shape;

/* torch's pooling output size, ceil mode included (a window may not start in the right padding). */
int pool_out_size(int in, int k, int stride, int pad, int ceil_mode);
/* Fills out_h/out_w; returns -1 for invalid shapes (pad > k/2, empty output). */
int pool_infer(tb_pool_shape *s);

/* out [n, c, out_h, out_w]; argmax [n, c, out_h, out_w]: flat index into the input plane */
void maxpool_forward(float *out, int32_t *argmax, const float *in, const tb_pool_shape *s, int n);
void maxpool_backward(float *din, const float *dout, const int32_t *argmax, const tb_pool_shape *s, int n,
                      int accumulate_din);
void avgpool_forward(float *out, const float *in, const tb_pool_shape *s, int n);
void avgpool_backward(float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate_din);
/* adaptive: only c, in_h, in_w, out_h, out_w are used (torch's start=floor, end=ceil windows) */
void adaptive_avgpool_forward(float *out, const float *in, const tb_pool_shape *s, int n);
void adaptive_avgpool_backward(float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate_din);

/* ---- channel concatenation ------------------------------------------------ */
/* out [n, sum(channels), hw]; ins[i] [n, channels[i], hw] */
void concat_forward(float *out, const float *const *ins, const int *channels, int n_inputs, int hw, int n);
/* dins[i] (= or += per accumulate[i]; NULL skips that input) */
void concat_backward(float *const *dins, const float *dout, const int *channels, int n_inputs, int hw, int n,
                     const int *accumulate);

/* ---- dropout ---------------------------------------------------------------- */
/* Training mode: element i is kept when u_i < 1-p, u_i = tb_rng_uniform_at(seed,
 * TB_STREAM_DROPOUT, layer, (step << 32) | i); kept values scaled by 1/(1-p).
 * mask [count] records what was kept. p = 1 zeroes everything. */
void dropout_forward(float *out, uint8_t *mask, const float *in, size_t count, float p, uint64_t seed,
                     uint32_t layer, uint64_t step);
void dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count, float p,
                      int accumulate_din);

/* ---- batch normalisation (BatchNorm2d; BatchNorm1d over [n, c] is hw = 1) ---- */
typedef struct tb_bn_shape {
    int c, hw;
    float eps, momentum; /* torch defaults 1e-5, 0.1 */
    int relu;            /* forward: ReLU applied to the output as it is written (net.c
                          * sets it for a ReLU in place over this layer, CPU kernels) */
} tb_bn_shape;
/* Training: normalises with the batch mean and biased variance, saves mean and
 * 1/sqrt(var+eps) for backward, and updates running_mean/var with the unbiased
 * variance: running = (1-momentum) * running + momentum * batch. */
void batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma, const float *beta,
                             const tb_bn_shape *s, int n);
void batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, const tb_bn_shape *s, int n);
/* dgamma, dbeta (+=); din (= or +=) */
void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *gamma, const float *save_mean, const float *save_invstd,
                        const tb_bn_shape *s, int n, int accumulate_din);

/* ---- helpers shared by the layers -------------------------------------- */
/* dst = src (accumulate 0) or dst += src (accumulate 1) */
void tb_copy_or_add(float *dst, const float *src, size_t count, int accumulate);

#endif
