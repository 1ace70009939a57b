/* activation_rules.h: the per-element arithmetic of the element-wise
 * activations (ReLU, tanh, sigmoid, leaky ReLU, GELU), shared by the CPU
 * kernels (layers/relu.c, tanh.c, sigmoid.c, leaky_relu.c, gelu.c, and the
 * layers that apply a ReLU in place: conv2d.c, conv2d_winograd.c,
 * batchnorm.c) and the GPU
 * (cuda/kernels.cu, one thread per element), so both backends compute the
 * same float operations in the same order.
 *
 * Each *_grad returns the input gradient of one element from the output
 * gradient dy and what torch's backward reads: the output y for tanh and
 * sigmoid (tanh_backward, sigmoid_backward) and ReLU (relu_backward, the
 * mask of an in-place ReLU), the input x for leaky ReLU and
 * GELU (leaky_relu_backward, gelu_backward). Formulas and constants are
 * those of torch's CPU kernels (aten/src/ATen/native/cpu/Activation.cpp,
 * BinaryOpsKernel.cpp), in float. */
#ifndef TB_ACTIVATION_RULES_H
#define TB_ACTIVATION_RULES_H

#include <math.h>

#ifdef __CUDACC__
#define TB_ACT_HD static __host__ __device__ __forceinline__
#else
#define TB_ACT_HD static inline
#endif

/* as torch: products of the double constants, rounded once to float */
#define TB_GELU_ALPHA ((float)0.70710678118654752440)                                    /* M_SQRT1_2 */
#define TB_GELU_BETA_ERF ((float)(1.12837916709551257390 * 0.70710678118654752440 * 0.5))  /* M_2_SQRTPI*M_SQRT1_2/2 */
#define TB_GELU_BETA_TANH ((float)(1.41421356237309504880 * 1.12837916709551257390 * 0.5)) /* M_SQRT2*M_2_SQRTPI/2 */
#define TB_GELU_KAPPA 0.044715f

/* x < 0 is false for NaN, so NaN propagates as in torch.relu */
TB_ACT_HD float tb_relu_value(float x) { return x < 0.0f ? 0.0f : x; }
/* torch's threshold_backward on the output: y <= 0 ? 0 : grad (a NaN output passes grad) */
TB_ACT_HD float tb_relu_grad(float dy, float y) { return y <= 0.0f ? 0.0f : dy; }

TB_ACT_HD float tb_tanh_value(float x) { return tanhf(x); }
/* grad * (1 - y * y) */
TB_ACT_HD float tb_tanh_grad(float dy, float y) { return dy * (1.0f - y * y); }

/* 1 / (1 + exp(-x)); exp overflowing to inf gives 0 */
TB_ACT_HD float tb_sigmoid_value(float x) { return 1.0f / (1.0f + expf(-x)); }
/* grad * (1 - y) * y */
TB_ACT_HD float tb_sigmoid_grad(float dy, float y) { return dy * (1.0f - y) * y; }

/* x > 0 is false for NaN: NaN * slope stays NaN, as in torch */
TB_ACT_HD float tb_leaky_relu_value(float x, float slope) { return x > 0.0f ? x : x * slope; }
/* x > 0 ? grad : grad * slope */
TB_ACT_HD float tb_leaky_relu_grad(float dy, float x, float slope) { return x > 0.0f ? dy : dy * slope; }

/* exact: x * 0.5 * (1 + erf(x / sqrt(2)));
 * tanh: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) */
TB_ACT_HD float tb_gelu_value(float x, int tanh_approx)
{
    if (tanh_approx) {
        const float inner = TB_GELU_BETA_TANH * (x + TB_GELU_KAPPA * (x * x * x));
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    return x * 0.5f * (1.0f + erff(x * TB_GELU_ALPHA));
}

TB_ACT_HD float tb_gelu_grad(float dy, float x, int tanh_approx)
{
    if (tanh_approx) {
        const float x_sq = x * x, x_cube = x_sq * x;
        const float inner = TB_GELU_BETA_TANH * (x + TB_GELU_KAPPA * x_cube);
        const float t = tanhf(inner);
        const float left = 0.5f * x, right = 1.0f + t;
        const float left_derivative = 0.5f * right;
        const float tanh_derivative = 1.0f - t * t;
        const float inner_derivative = TB_GELU_BETA_TANH * (1.0f + 3.0f * TB_GELU_KAPPA * x_sq);
        const float right_derivative = left * tanh_derivative * inner_derivative;
        return dy * (left_derivative + right_derivative);
    }
    const float cdf = 0.5f * (1.0f + erff(x * TB_GELU_ALPHA));
    const float pdf = TB_GELU_BETA_ERF * expf(x * x * -0.5f);
    return dy * (cdf + x * pdf);
}

#endif
