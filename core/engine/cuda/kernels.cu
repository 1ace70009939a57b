/* kernels.cu: the CUDA backend's own kernels: everything but convolution
 * (cuDNN) and matrix products (cuBLAS).
 *
 * Pooling, ReLU, concatenation, dropout, batch-norm inference and the
 * optimizers compute each value with the same float operations in the same
 * order as the CPU kernels in core/engine/layers/ and core/engine/optim.c, so the two
 * backends agree bit for bit there (built with -fmad=false: no contraction,
 * IEEE division and square root). Backward passes that the CPU writes as a
 * scatter (din[argmax[o]] += g[o]) are gathers here, one thread per input
 * element, adding the same terms in the same order: no atomics, so results do
 * not depend on scheduling. Reductions (batch norm statistics, bias gradients)
 * use one block per channel, double accumulators and a fixed tree: run-to-run
 * identical, and within rounding of the CPU's sequential double sums. */
#include <math.h>
#include <string.h>

#include "engine/loss_rules.h"
#include "engine/layers/activation_rules.h"
#include "engine/optim_rules.h"
#include "base/philox.h"
#include "base/rng.h"
#include "cuda_internal.h"

#define THREADS 256
#define REDUCE_THREADS 512

static unsigned blocks_for(size_t count)
{
    size_t b = (count + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    if (b > 1048576) b = 1048576; /* grid-stride loops cover the rest */
    return (unsigned)b;
}

/* Launches kernel over `total` elements (grid-stride) on the compute stream;
 * nothing to do for 0. Returns 0 or -1 (the failure recorded). */
template <typename... Params, typename... Args>
static int launch(cuda_ctx *c, const char *name, void (*kernel)(Params...), size_t total, Args... args)
{
    if (!total) return 0;
    kernel<<<blocks_for(total), THREADS, 0, c->stream>>>(args...);
    return CU_LAUNCHED(c, name);
}
#define LAUNCH(c, kernel, total, ...) launch((c), #kernel, kernel, (total), __VA_ARGS__)

#define GRID_STRIDE(i, count) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count); i += (size_t)gridDim.x * blockDim.x)

/* ---- element-wise ------------------------------------------------------------- */

__global__ void add_kernel(float *dst, const float *src, size_t count)
{
    GRID_STRIDE(i, count) dst[i] += src[i];
}

int k_copy_or_add(cuda_ctx *c, float *dst, const float *src, size_t count, int accumulate)
{
    if (!count) return 0;
    if (!accumulate)
        return dst == src ? 0
                          : CU_RT(c, cudaMemcpyAsync(dst, src, sizeof(float) * count, cudaMemcpyDeviceToDevice,
                                                     c->stream));
    return LAUNCH(c, add_kernel, count, dst, src, count);
}

/* the CPU's arithmetic (layers/activation_rules.h) */
__global__ void relu_fwd_kernel(float *out, const float *in, size_t count)
{
    GRID_STRIDE(i, count) out[i] = tb_relu_value(in[i]);
}

__global__ void relu_bwd_kernel(float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float v = tb_relu_grad(dout[i], out[i]);
        din[i] = accumulate ? din[i] + v : v;
    }
}

int k_relu_forward(cuda_ctx *c, float *out, const float *in, size_t count)
{
    return LAUNCH(c, relu_fwd_kernel, count, out, in, count);
}

int k_relu_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    return LAUNCH(c, relu_bwd_kernel, count, din, dout, out, count, accumulate);
}

/* ---- tanh, sigmoid, leaky ReLU, GELU: one thread per element, the CPU's
 * arithmetic (layers/activation_rules.h). tanhf, expf and erff are CUDA's
 * own (a few ulp from glibc's), so these agree with the CPU within rounding,
 * not bit for bit. */

__global__ void tanh_fwd_kernel(float *out, const float *in, size_t count)
{
    GRID_STRIDE(i, count) out[i] = tb_tanh_value(in[i]);
}

__global__ void tanh_bwd_kernel(float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float g = tb_tanh_grad(dout[i], out[i]);
        din[i] = accumulate ? din[i] + g : g;
    }
}

__global__ void sigmoid_fwd_kernel(float *out, const float *in, size_t count)
{
    GRID_STRIDE(i, count) out[i] = tb_sigmoid_value(in[i]);
}

__global__ void sigmoid_bwd_kernel(float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float g = tb_sigmoid_grad(dout[i], out[i]);
        din[i] = accumulate ? din[i] + g : g;
    }
}

__global__ void leaky_relu_fwd_kernel(float *out, const float *in, size_t count, float slope)
{
    GRID_STRIDE(i, count) out[i] = tb_leaky_relu_value(in[i], slope);
}

__global__ void leaky_relu_bwd_kernel(float *din, const float *dout, const float *in, size_t count, float slope,
                                      int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float g = tb_leaky_relu_grad(dout[i], in[i], slope);
        din[i] = accumulate ? din[i] + g : g;
    }
}

__global__ void gelu_fwd_kernel(float *out, const float *in, size_t count, int tanh_approx)
{
    GRID_STRIDE(i, count) out[i] = tb_gelu_value(in[i], tanh_approx);
}

__global__ void gelu_bwd_kernel(float *din, const float *dout, const float *in, size_t count, int tanh_approx,
                                int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float g = tb_gelu_grad(dout[i], in[i], tanh_approx);
        din[i] = accumulate ? din[i] + g : g;
    }
}

int k_tanh_forward(cuda_ctx *c, float *out, const float *in, size_t count)
{
    return LAUNCH(c, tanh_fwd_kernel, count, out, in, count);
}

int k_tanh_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    return LAUNCH(c, tanh_bwd_kernel, count, din, dout, out, count, accumulate);
}

int k_sigmoid_forward(cuda_ctx *c, float *out, const float *in, size_t count)
{
    return LAUNCH(c, sigmoid_fwd_kernel, count, out, in, count);
}

int k_sigmoid_backward(cuda_ctx *c, float *din, const float *dout, const float *out, size_t count, int accumulate)
{
    return LAUNCH(c, sigmoid_bwd_kernel, count, din, dout, out, count, accumulate);
}

int k_leaky_relu_forward(cuda_ctx *c, float *out, const float *in, size_t count, float slope)
{
    return LAUNCH(c, leaky_relu_fwd_kernel, count, out, in, count, slope);
}

int k_leaky_relu_backward(cuda_ctx *c, float *din, const float *dout, const float *in, size_t count, float slope,
                          int accumulate)
{
    return LAUNCH(c, leaky_relu_bwd_kernel, count, din, dout, in, count, slope, accumulate);
}

int k_gelu_forward(cuda_ctx *c, float *out, const float *in, size_t count, int tanh_approx)
{
    return LAUNCH(c, gelu_fwd_kernel, count, out, in, count, tanh_approx);
}

int k_gelu_backward(cuda_ctx *c, float *din, const float *dout, const float *in, size_t count, int tanh_approx,
                    int accumulate)
{
    return LAUNCH(c, gelu_bwd_kernel, count, din, dout, in, count, tanh_approx, accumulate);
}

/* ---- pooling ------------------------------------------------------------------ */

/* Outputs along one axis whose windows (start o*stride - pad, length k) can
 * contain input position y: [*lo, *hi]. */
__device__ static void covering(int y, int k, int stride, int pad, int out, int *lo, int *hi)
{
    const int num = y + pad - k + 1;
    *lo = num <= 0 ? 0 : (num + stride - 1) / stride;
    int h = (y + pad) / stride;
    *hi = h < out - 1 ? h : out - 1;
}

/* torch's rule, as pool_row_exact in layers/maxpool.c: take v when
 * (v > best) || isnan(v): the first maximum wins, the last NaN is reported. */
__global__ void maxpool_fwd_kernel(float *out, int32_t *argmax, const float *in, tb_pool_shape s, size_t total)
{
    GRID_STRIDE(t, total)
    {
        const int ox = (int)(t % s.out_w), oy = (int)((t / s.out_w) % s.out_h);
        const size_t pl = t / ((size_t)s.out_w * s.out_h);
        const float *src = in + pl * s.in_h * s.in_w;
        int y0 = oy * s.stride_h - s.pad_h, y1 = y0 + s.kh, x0 = ox * s.stride_w - s.pad_w, x1 = x0 + s.kw;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > s.in_h ? s.in_h : y1;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > s.in_w ? s.in_w : x1;
        float best = -INFINITY;
        int32_t at = y0 * s.in_w + x0;
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                const float v = src[y * s.in_w + x];
                if (v > best || isnan(v)) {
                    best = v;
                    at = y * s.in_w + x;
                }
            }
        }
        out[t] = best;
        argmax[t] = at;
    }
}

/* The CPU adds g[o] into din[argmax[o]] for o in order; here each input
 * element adds the g[o] that point at it, in the same order of o. */
__global__ void maxpool_bwd_kernel(float *din, const float *dout, const int32_t *argmax, tb_pool_shape s,
                                   size_t total, int accumulate)
{
    GRID_STRIDE(t, total)
    {
        const int x = (int)(t % s.in_w), y = (int)((t / s.in_w) % s.in_h);
        const size_t pl = t / ((size_t)s.in_w * s.in_h);
        const int32_t here = y * s.in_w + x;
        const size_t obase = pl * s.out_h * s.out_w;
        int oy0, oy1, ox0, ox1;
        covering(y, s.kh, s.stride_h, s.pad_h, s.out_h, &oy0, &oy1);
        covering(x, s.kw, s.stride_w, s.pad_w, s.out_w, &ox0, &ox1);
        float acc = accumulate ? din[t] : 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++) {
                const size_t o = obase + (size_t)oy * s.out_w + ox;
                if (argmax[o] == here) acc += dout[o];
            }
        din[t] = acc;
    }
}

int k_maxpool_forward(cuda_ctx *c, float *out, int32_t *argmax, const float *in, const tb_pool_shape *s, int n)
{
    const size_t total = (size_t)n * s->c * s->out_h * s->out_w;
    return LAUNCH(c, maxpool_fwd_kernel, total, out, argmax, in, *s, total);
}

int k_maxpool_backward(cuda_ctx *c, float *din, const float *dout, const int32_t *argmax, const tb_pool_shape *s,
                       int n, int accumulate)
{
    const size_t total = (size_t)n * s->c * s->in_h * s->in_w;
    return LAUNCH(c, maxpool_bwd_kernel, total, din, dout, argmax, *s, total, accumulate);
}

/* avg_window of layers/avgpool.c: the window clipped to the input and torch's divisor. */
struct avg_win {
    int y0, y1, x0, x1;
    float divisor;
};

__device__ static avg_win avg_window(const tb_pool_shape &s, int oy, int ox)
{
    avg_win w;
    int y0 = oy * s.stride_h - s.pad_h, x0 = ox * s.stride_w - s.pad_w;
    int y1 = y0 + s.kh, x1 = x0 + s.kw;
    if (y1 > s.in_h + s.pad_h) y1 = s.in_h + s.pad_h;
    if (x1 > s.in_w + s.pad_w) x1 = s.in_w + s.pad_w;
    const int padded = (y1 - y0) * (x1 - x0); /* counts padding, not the ceil-mode overhang */
    w.y0 = y0 < 0 ? 0 : y0;
    w.x0 = x0 < 0 ? 0 : x0;
    w.y1 = y1 > s.in_h ? s.in_h : y1;
    w.x1 = x1 > s.in_w ? s.in_w : x1;
    w.divisor = (float)(s.count_include_pad ? padded : (w.y1 - w.y0) * (w.x1 - w.x0));
    return w;
}

/* Sum of a plane's window [y0, y1) x [x0, x1), row by row as the CPU adds it. */
__device__ static float window_sum(const float *src, int w, int y0, int y1, int x0, int x1)
{
    float sum = 0.0f;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) sum += src[y * w + x];
    return sum;
}

__global__ void avgpool_fwd_kernel(float *out, const float *in, tb_pool_shape s, size_t total)
{
    GRID_STRIDE(t, total)
    {
        const int ox = (int)(t % s.out_w), oy = (int)((t / s.out_w) % s.out_h);
        const float *src = in + t / ((size_t)s.out_w * s.out_h) * s.in_h * s.in_w;
        const avg_win w = avg_window(s, oy, ox);
        out[t] = window_sum(src, s.in_w, w.y0, w.y1, w.x0, w.x1) / w.divisor;
    }
}

/* The CPU adds g / divisor over each window for outputs in row-major order;
 * each input element here adds the same terms in that order. */
__global__ void avgpool_bwd_kernel(float *din, const float *dout, tb_pool_shape s, size_t total, int accumulate)
{
    GRID_STRIDE(t, total)
    {
        const int x = (int)(t % s.in_w), y = (int)((t / s.in_w) % s.in_h);
        const float *g = dout + t / ((size_t)s.in_w * s.in_h) * s.out_h * s.out_w;
        int oy0, oy1, ox0, ox1;
        covering(y, s.kh, s.stride_h, s.pad_h, s.out_h, &oy0, &oy1);
        covering(x, s.kw, s.stride_w, s.pad_w, s.out_w, &ox0, &ox1);
        float acc = accumulate ? din[t] : 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++) {
                const avg_win w = avg_window(s, oy, ox);
                if (y >= w.y0 && y < w.y1 && x >= w.x0 && x < w.x1) acc += g[oy * s.out_w + ox] / w.divisor;
            }
        din[t] = acc;
    }
}

int k_avgpool_forward(cuda_ctx *c, float *out, const float *in, const tb_pool_shape *s, int n)
{
    const size_t total = (size_t)n * s->c * s->out_h * s->out_w;
    return LAUNCH(c, avgpool_fwd_kernel, total, out, in, *s, total);
}

int k_avgpool_backward(cuda_ctx *c, float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate)
{
    const size_t total = (size_t)n * s->c * s->in_h * s->in_w;
    return LAUNCH(c, avgpool_bwd_kernel, total, din, dout, *s, total, accumulate);
}

/* torch's adaptive windows: [floor(o*I/O), ceil((o+1)*I/O)) */
__device__ static int start_index(int o, int out, int in) { return (int)((long long)o * in / out); }
__device__ static int end_index(int o, int out, int in) { return (int)(((long long)(o + 1) * in + out - 1) / out); }

__global__ void adaptive_fwd_kernel(float *out, const float *in, tb_pool_shape s, size_t total)
{
    GRID_STRIDE(t, total)
    {
        const int ox = (int)(t % s.out_w), oy = (int)((t / s.out_w) % s.out_h);
        const float *src = in + t / ((size_t)s.out_w * s.out_h) * s.in_h * s.in_w;
        const int y0 = start_index(oy, s.out_h, s.in_h), y1 = end_index(oy, s.out_h, s.in_h);
        const int x0 = start_index(ox, s.out_w, s.in_w), x1 = end_index(ox, s.out_w, s.in_w);
        out[t] = window_sum(src, s.in_w, y0, y1, x0, x1) / (float)((y1 - y0) * (x1 - x0));
    }
}

__global__ void adaptive_bwd_kernel(float *din, const float *dout, tb_pool_shape s, size_t total, int accumulate)
{
    GRID_STRIDE(t, total)
    {
        const int x = (int)(t % s.in_w), y = (int)((t / s.in_w) % s.in_h);
        const float *g = dout + t / ((size_t)s.in_w * s.in_h) * s.out_h * s.out_w;
        float acc = accumulate ? din[t] : 0.0f;
        for (int oy = 0; oy < s.out_h; oy++) {
            const int y0 = start_index(oy, s.out_h, s.in_h), y1 = end_index(oy, s.out_h, s.in_h);
            if (y0 > y) break; /* windows start in order */
            if (y >= y1) continue;
            for (int ox = 0; ox < s.out_w; ox++) {
                const int x0 = start_index(ox, s.out_w, s.in_w), x1 = end_index(ox, s.out_w, s.in_w);
                if (x0 > x) break;
                if (x >= x1) continue;
                acc += g[oy * s.out_w + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        }
        din[t] = acc;
    }
}

int k_adaptive_forward(cuda_ctx *c, float *out, const float *in, const tb_pool_shape *s, int n)
{
    const size_t total = (size_t)n * s->c * s->out_h * s->out_w;
    return LAUNCH(c, adaptive_fwd_kernel, total, out, in, *s, total);
}

int k_adaptive_backward(cuda_ctx *c, float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate)
{
    const size_t total = (size_t)n * s->c * s->in_h * s->in_w;
    return LAUNCH(c, adaptive_bwd_kernel, total, din, dout, *s, total, accumulate);
}

/* ---- channel concatenation -------------------------------------------------------- */

struct concat_args {
    float *ptr[TB_CUDA_MAX_CONCAT];
    int len[TB_CUDA_MAX_CONCAT]; /* channels * hw of each input */
    int accumulate[TB_CUDA_MAX_CONCAT];
    int n_inputs, total; /* total: sum of len */
};

__global__ void concat_kernel(float *out, concat_args a, size_t count, int backward)
{
    GRID_STRIDE(t, count)
    {
        const size_t i = t / a.total;
        int k = (int)(t % a.total), j = 0;
        while (k >= a.len[j]) k -= a.len[j++];
        float *p = a.ptr[j];
        if (!p) continue;
        const size_t at = i * a.len[j] + k;
        if (!backward) out[t] = p[at];
        else p[at] = a.accumulate[j] ? p[at] + out[t] : out[t];
    }
}

static int concat_launch(cuda_ctx *c, float *out, float *const *ptrs, const int *channels, int n_inputs, int hw,
                         int n, const int *accumulate, int backward)
{
    if (n_inputs < 1 || n_inputs > TB_CUDA_MAX_CONCAT)
        return cu_fail(c, TB_EDEVICE, __FILE__, __LINE__, "concat of %d inputs (at most %d)", n_inputs,
                       TB_CUDA_MAX_CONCAT);
    concat_args a;
    memset(&a, 0, sizeof a);
    a.n_inputs = n_inputs;
    for (int j = 0; j < n_inputs; j++) {
        a.ptr[j] = ptrs[j];
        a.len[j] = channels[j] * hw;
        a.accumulate[j] = accumulate ? accumulate[j] : 0;
        a.total += a.len[j];
    }
    const size_t count = (size_t)n * a.total;
    if (!count) return 0;
    /* the same tensor concatenated twice (torch.cat([x, x])): its gradient is
     * assigned then added, so those parts must run one after the other */
    int repeated = 0;
    for (int j = 0; backward && j < n_inputs; j++)
        for (int k = 0; k < j; k++) repeated |= a.ptr[j] && a.ptr[j] == a.ptr[k];
    if (!repeated) return LAUNCH(c, concat_kernel, count, out, a, count, backward);
    for (int j = 0; j < n_inputs; j++) {
        concat_args one = a;
        for (int k = 0; k < n_inputs; k++)
            if (k != j) one.ptr[k] = NULL;
        if (LAUNCH(c, concat_kernel, count, out, one, count, backward)) return -1;
    }
    return 0;
}

int k_concat_forward(cuda_ctx *c, float *out, const float *const *ins, const int *channels, int n_inputs, int hw,
                     int n)
{
    return concat_launch(c, out, (float *const *)ins, channels, n_inputs, hw, n, NULL, 0);
}

int k_concat_backward(cuda_ctx *c, float *const *dins, const float *dout, const int *channels, int n_inputs, int hw,
                      int n, const int *accumulate)
{
    return concat_launch(c, (float *)dout, dins, channels, n_inputs, hw, n, accumulate, 1);
}

/* ---- dropout: the CPU's masks, from the same Philox counters ------------------------- */

/* Element i is kept when tb_rng_uniform_at(seed, TB_STREAM_DROPOUT, layer,
 * (step << 32) | i) < 1 - p: block (step << 30) + i / 4, word i % 4. One
 * thread per block of four elements. */
__global__ void dropout_fwd_kernel(float *out, uint8_t *mask, const float *in, size_t count, float keep, float scale,
                                   uint32_t k0, uint32_t k1, uint32_t layer, uint64_t block_base)
{
    const size_t blocks = (count + 3) / 4;
    GRID_STRIDE(b, blocks)
    {
        const uint64_t block = block_base + b;
        uint32_t r[4];
        tb_philox_block(k0, k1, (uint32_t)block, (uint32_t)(block >> 32), layer, (uint32_t)TB_STREAM_DROPOUT, r);
        for (int w = 0; w < 4; w++) {
            const size_t i = 4 * b + w;
            if (i >= count) break;
            const uint8_t m = tb_philox_unit(r[w]) < keep;
            mask[i] = m;
            out[i] = m ? in[i] * scale : 0.0f;
        }
    }
}

__global__ void dropout_bwd_kernel(float *din, const float *dout, const uint8_t *mask, size_t count, float scale,
                                   int accumulate)
{
    GRID_STRIDE(i, count)
    {
        const float v = mask[i] ? dout[i] * scale : 0.0f;
        din[i] = accumulate ? din[i] + v : v;
    }
}

int k_dropout_forward(cuda_ctx *c, float *out, uint8_t *mask, const float *in, size_t count, float p, uint64_t seed,
                      uint32_t layer, uint64_t step)
{
    if (!count) return 0;
    if (p >= 1.0f)
        return CU_RT(c, cudaMemsetAsync(out, 0, sizeof(float) * count, c->stream)) ||
               CU_RT(c, cudaMemsetAsync(mask, 0, count, c->stream));
    const float keep = 1.0f - p, scale = 1.0f / keep;
    const uint64_t block_base = (step << 32) >> 2;
    /* one thread per Philox block of four elements */
    return LAUNCH(c, dropout_fwd_kernel, (count + 3) / 4, out, mask, in, count, keep, scale, (uint32_t)seed,
                  (uint32_t)(seed >> 32), layer, block_base);
}

int k_dropout_backward(cuda_ctx *c, float *din, const float *dout, const uint8_t *mask, size_t count, float p,
                       int accumulate)
{
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    return LAUNCH(c, dropout_bwd_kernel, count, din, dout, mask, count, scale, accumulate);
}

/* ---- per-channel reductions ---------------------------------------------------------- */

/* Sum of v over the block in a fixed tree; every thread gets the result. */
__device__ static double block_sum(double v, double *shared)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    const double total = shared[0];
    __syncthreads();
    return total;
}

/* Element j of channel c in [n, C, hw]: sample j / hw, position j % hw. */
__device__ static size_t channel_at(size_t j, int c, int C, int hw)
{
    return ((j / hw) * C + c) * hw + j % hw;
}

/* One block per channel, as batchnorm_forward_train in layers/batchnorm.c:
 * mean and biased variance in double, running statistics with the unbiased one. */
__global__ void bn_train_kernel(float *out, float *save_mean, float *save_invstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma, const float *beta, int C,
                                int hw, size_t m, float eps, float momentum)
{
    __shared__ double shared[REDUCE_THREADS];
    const int c = blockIdx.x;
    double sum = 0.0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) sum += in[channel_at(j, c, C, hw)];
    const double mean = block_sum(sum, shared) / (double)m;
    double ss = 0.0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
        const double d = in[channel_at(j, c, C, hw)] - mean;
        ss += d * d;
    }
    ss = block_sum(ss, shared);
    const double var = ss / (double)m;
    const double invstd = 1.0 / sqrt(var + eps);
    if (threadIdx.x == 0) {
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        const double unbiased = m > 1 ? ss / (double)(m - 1) : var;
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    const float a = (float)(invstd * gamma[c]), b = (float)(beta[c] - mean * invstd * gamma[c]);
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
        const size_t at = channel_at(j, c, C, hw);
        out[at] = in[at] * a + b;
    }
}

int k_batchnorm_train(cuda_ctx *c, float *out, float *save_mean, float *save_invstd, float *running_mean,
                      float *running_var, const float *in, const float *gamma, const float *beta,
                      const tb_bn_shape *s, int n)
{
    if (s->c < 1 || n < 1) return 0;
    bn_train_kernel<<<s->c, REDUCE_THREADS, 0, c->stream>>>(out, save_mean, save_invstd, running_mean, running_var,
                                                            in, gamma, beta, s->c, s->hw, (size_t)n * s->hw, s->eps,
                                                            s->momentum);
    return CU_LAUNCHED(c, "bn_train_kernel");
}

__global__ void bn_eval_kernel(float *out, const float *in, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int C, int hw, float eps,
                               size_t count)
{
    GRID_STRIDE(t, count)
    {
        const int c = (int)((t / hw) % C);
        const float invstd = 1.0f / sqrtf(running_var[c] + eps);
        const float a = invstd * gamma[c], b = beta[c] - running_mean[c] * a;
        out[t] = in[t] * a + b;
    }
}

int k_batchnorm_eval(cuda_ctx *c, float *out, const float *in, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var, const tb_bn_shape *s, int n)
{
    const size_t count = (size_t)n * s->c * s->hw;
    return LAUNCH(c, bn_eval_kernel, count, out, in, gamma, beta, running_mean, running_var, s->c, s->hw, s->eps,
                  count);
}

/* din = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), as batchnorm_backward. */
__global__ void bn_bwd_kernel(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                              const float *gamma, const float *save_mean, const float *save_invstd, int C, int hw,
                              size_t m, int accumulate)
{
    __shared__ double shared[REDUCE_THREADS];
    const int c = blockIdx.x;
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0.0, sdyx = 0.0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
        const size_t at = channel_at(j, c, C, hw);
        sdy += dout[at];
        sdyx += dout[at] * ((in[at] - mean) * invstd);
    }
    const double sum_dy = block_sum(sdy, shared), sum_dy_xhat = block_sum(sdyx, shared);
    if (threadIdx.x == 0) {
        dgamma[c] += (float)sum_dy_xhat;
        dbeta[c] += (float)sum_dy;
    }
    if (!din) return;
    const double k = gamma[c] * invstd, mdy = sum_dy / (double)m, mdyx = sum_dy_xhat / (double)m;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
        const size_t at = channel_at(j, c, C, hw);
        const float g = (float)(k * (dout[at] - mdy - (in[at] - mean) * invstd * mdyx));
        din[at] = accumulate ? din[at] + g : g;
    }
}

int k_batchnorm_backward(cuda_ctx *c, float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                         const float *gamma, const float *save_mean, const float *save_invstd, const tb_bn_shape *s,
                         int n, int accumulate)
{
    if (s->c < 1 || n < 1) return 0;
    bn_bwd_kernel<<<s->c, REDUCE_THREADS, 0, c->stream>>>(din, dgamma, dbeta, dout, in, gamma, save_mean, save_invstd,
                                                          s->c, s->hw, (size_t)n * s->hw, accumulate);
    return CU_LAUNCHED(c, "bn_bwd_kernel");
}

__global__ void bias_add_kernel(float *out, const float *bias, int C, int hw, size_t count)
{
    GRID_STRIDE(t, count) out[t] += bias[(t / hw) % C];
}

int k_bias_add(cuda_ctx *c, float *out, const float *bias, int channels, int hw, int n)
{
    const size_t count = (size_t)n * channels * hw;
    return LAUNCH(c, bias_add_kernel, count, out, bias, channels, hw, count);
}

__global__ void bias_grad_kernel(float *dbias, const float *dout, int C, int hw, size_t m)
{
    __shared__ double shared[REDUCE_THREADS];
    const int c = blockIdx.x;
    double sum = 0.0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) sum += dout[channel_at(j, c, C, hw)];
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0) dbias[c] += (float)sum;
}

int k_bias_grad(cuda_ctx *c, float *dbias, const float *dout, int channels, int hw, int n)
{
    if (channels < 1 || n < 1) return 0;
    bias_grad_kernel<<<channels, REDUCE_THREADS, 0, c->stream>>>(dbias, dout, channels, hw, (size_t)n * hw);
    return CU_LAUNCHED(c, "bias_grad_kernel");
}

/* ---- loss: one thread per sample, the CPU's per-sample rules (loss_rules.h) ------------ */

__global__ void loss_kernel(float *dlogits, double *loss, const float *logits, const int32_t *targets, int n,
                            int classes, int kind, double denominator)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float *x = logits + (size_t)i * classes;
    float *d = dlogits ? dlogits + (size_t)i * classes : NULL;
    const int t = targets[i];
    switch (kind) {
    case TB_LOSS_CROSS_ENTROPY: loss[i] = tb_ce_sample(d, x, classes, t, denominator); break;
    case TB_LOSS_NLL: loss[i] = tb_nll_sample(d, x, classes, t, denominator); break;
    case TB_LOSS_L1: loss[i] = tb_l1_mse_sample(d, x, classes, t, denominator, 0); break;
    default: loss[i] = tb_l1_mse_sample(d, x, classes, t, denominator, 1); break;
    }
}

int k_loss(cuda_ctx *c, float *dlogits, double *loss_dev, const float *logits, const int32_t *targets_dev, int n,
           int classes, tb_loss_kind kind)
{
    const double denominator =
        kind == TB_LOSS_L1 || kind == TB_LOSS_MSE ? (double)n * (double)classes : (double)n;
    loss_kernel<<<(n + 127) / 128, 128, 0, c->stream>>>(dlogits, loss_dev, logits, targets_dev, n, classes, (int)kind,
                                                        denominator);
    return CU_LAUNCHED(c, "loss_kernel");
}

/* ---- optimizers: the element rules of optim_rules.h, fused into one kernel ------------ */

__global__ void optim_kernel(tb_optim_coeffs k, float *p, const float *g, float *state, size_t n, size_t stride)
{
    float *s0 = state, *s1 = state ? state + stride : NULL, *s2 = state ? state + 2 * stride : NULL;
    GRID_STRIDE(i, n)
    {
        switch ((tb_optim_kind)k.kind) {
        case TB_OPT_SGD: {
            float b = k.use_mom ? s0[i] : 0.0f;
            p[i] = tb_sgd_elem(&k, p[i], g[i], &b);
            if (k.use_mom) s0[i] = b;
            break;
        }
        case TB_OPT_ADAM: {
            float m = s0[i], v = s1[i], vmax = k.amsgrad ? s2[i] : 0.0f;
            p[i] = tb_adam_elem(&k, p[i], g[i], &m, &v, &vmax);
            s0[i] = m;
            s1[i] = v;
            if (k.amsgrad) s2[i] = vmax;
            break;
        }
        case TB_OPT_ADAGRAD: p[i] = tb_adagrad_elem(&k, p[i], g[i], &s0[i]); break;
        case TB_OPT_ADADELTA: p[i] = tb_adadelta_elem(&k, p[i], g[i], &s0[i], &s1[i]); break;
        case TB_OPT_RMSPROP: {
            /* slots: square_avg [, momentum_buffer] [, grad_avg] */
            float *buf = k.use_mom ? s1 : NULL, *gavg = k.centered ? (k.use_mom ? s2 : s1) : NULL;
            float b = buf ? buf[i] : 0.0f, ga = gavg ? gavg[i] : 0.0f;
            p[i] = tb_rmsprop_elem(&k, p[i], g[i], &s0[i], &b, &ga);
            if (buf) buf[i] = b;
            if (gavg) gavg[i] = ga;
            break;
        }
        case TB_OPT_ASGD: p[i] = tb_asgd_elem(&k, p[i], g[i], &s0[i]); break;
        }
    }
}

int k_optim_step(cuda_ctx *c, const void *coeffs, float *params, const float *grads, float *state, size_t n,
                 size_t stride)
{
    return LAUNCH(c, optim_kernel, n, *(const tb_optim_coeffs *)coeffs, params, grads, state, n, stride);
}

__global__ void nonfinite_kernel(int *flag, const float *x, size_t count)
{
    GRID_STRIDE(i, count)
    if (!isfinite(x[i])) *flag = 1; /* every writer stores the same value */
}

int k_nonfinite(cuda_ctx *c, int *flag_dev, const float *x, size_t count)
{
    return LAUNCH(c, nonfinite_kernel, count, flag_dev, x, count);
}
