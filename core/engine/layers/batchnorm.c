/* batchnorm.c: torch.nn.BatchNorm2d (affine, track_running_stats). */
#include <math.h>

#include "activation_rules.h"
#include "layers.h"

/* A channel's sums run in BN_LANES running doubles: its k-th element, in the
 * order [n, c, h, w] visits them, goes into lane k % BN_LANES, and the lanes
 * are added in order at the end. The adds vectorise instead of waiting on one
 * chain (about 4x the forward on the quickstart CNN's 28x28 planes); the
 * order is a fixed function of the shape, so the same bits for any thread
 * count, and the same whether a channel comes as n planes of h*w (NCHW) or
 * one of n*h*w (batch-minor, net.c's bn_call). Each helper takes the lane of
 * the plane's first element and returns the lane after its last. */
#define BN_LANES 16

/* TERM(l, q) for each element q < hw of a plane, l its lane when the plane's
 * first element takes lane `lane`, which is left at the lane after the last:
 * up to the next lane 0 one by one, then whole rows of lanes (these
 * vectorise), then the tail. */
#define BN_EACH_LANE(hw, lane, TERM)                                                        \
    do {                                                                                    \
        int p_ = 0;                                                                         \
        for (; p_ < (hw) && (lane); p_++, (lane) = ((lane) + 1) % BN_LANES) TERM((lane), p_); \
        for (; p_ + BN_LANES <= (hw); p_ += BN_LANES)                                       \
            for (int l_ = 0; l_ < BN_LANES; l_++) TERM(l_, p_ + l_);                         \
        for (; p_ < (hw); p_++, (lane)++) TERM((lane), p_);                                  \
    } while (0)

static inline int add_plane(double *restrict acc, const float *restrict x, int hw, int lane)
{
#define BN_SUM(l, q) acc[l] += x[q]
    BN_EACH_LANE(hw, lane, BN_SUM);
#undef BN_SUM
    return lane;
}

static inline int add_plane_squares(double *restrict acc, const float *restrict x, int hw, double mean, int lane)
{
#define BN_SQUARE(l, q) acc[l] += ((double)x[q] - mean) * ((double)x[q] - mean)
    BN_EACH_LANE(hw, lane, BN_SQUARE);
#undef BN_SQUARE
    return lane;
}

/* sums of dy and of dy * xhat, xhat = (x - mean) * invstd */
static inline int add_plane_grads(double *restrict acc_dy, double *restrict acc_dyx, const float *restrict dy,
                                  const float *restrict x, int hw, double mean, double invstd, int lane)
{
#define BN_GRADS(l, q) (acc_dy[l] += dy[q], acc_dyx[l] += dy[q] * ((x[q] - mean) * invstd))
    BN_EACH_LANE(hw, lane, BN_GRADS);
#undef BN_GRADS
    return lane;
}

/* y = x * a + b, through a ReLU when relu */
static inline void normalise_plane(float *y, const float *x, int hw, float a, float b, int relu)
{
    if (relu)
        for (int p = 0; p < hw; p++) y[p] = tb_relu_value(x[p] * a + b);
    else
        for (int p = 0; p < hw; p++) y[p] = x[p] * a + b;
}

static inline double lanes_total(const double *acc)
{
    double t = 0.0;
    for (int l = 0; l < BN_LANES; l++) t += acc[l];
    return t;
}

void batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma, const float *beta,
                             const tb_bn_shape *s, int n)
{
    const int C = s->c, HW = s->hw;
    const double M = (double)n * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double acc[BN_LANES] = {0};
        for (int i = 0, lane = 0; i < n; i++) lane = add_plane(acc, in + ((size_t)i * C + c) * HW, HW, lane);
        const double mean = lanes_total(acc) / M;
        double acc_ss[BN_LANES] = {0};
        for (int i = 0, lane = 0; i < n; i++)
            lane = add_plane_squares(acc_ss, in + ((size_t)i * C + c) * HW, HW, mean, lane);
        const double ss = lanes_total(acc_ss);
        const double var = ss / M; /* biased, used to normalise */
        const double invstd = 1.0 / sqrt(var + s->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        const double unbiased = M > 1 ? ss / (M - 1) : var;
        running_mean[c] = (float)((1.0 - s->momentum) * running_mean[c] + s->momentum * mean);
        running_var[c] = (float)((1.0 - s->momentum) * running_var[c] + s->momentum * unbiased);
        const float a = (float)(invstd * gamma[c]), b = (float)(beta[c] - mean * invstd * gamma[c]);
        for (int i = 0; i < n; i++)
            normalise_plane(out + ((size_t)i * C + c) * HW, in + ((size_t)i * C + c) * HW, HW, a, b, s->relu);
    }
}

void batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, const tb_bn_shape *s, int n)
{
    const int C = s->c, HW = s->hw;
#pragma omp parallel for schedule(static) collapse(2)
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < C; c++) {
            const float invstd = 1.0f / sqrtf(running_var[c] + s->eps);
            const float a = invstd * gamma[c], b = beta[c] - running_mean[c] * a;
            normalise_plane(out + ((size_t)i * C + c) * HW, in + ((size_t)i * C + c) * HW, HW, a, b, s->relu);
        }
    }
}

void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *gamma, const float *save_mean, const float *save_invstd,
                        const tb_bn_shape *s, int n, int accumulate_din)
{
    const int C = s->c, HW = s->hw;
    const double M = (double)n * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double acc_dy[BN_LANES] = {0}, acc_dyx[BN_LANES] = {0};
        for (int i = 0, lane = 0; i < n; i++)
            lane = add_plane_grads(acc_dy, acc_dyx, dout + ((size_t)i * C + c) * HW, in + ((size_t)i * C + c) * HW,
                                   HW, mean, invstd, lane);
        const double sum_dy = lanes_total(acc_dy), sum_dy_xhat = lanes_total(acc_dyx);
        dgamma[c] += (float)sum_dy_xhat;
        dbeta[c] += (float)sum_dy;
        if (!din) continue;
        /* din = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
        const double k = gamma[c] * invstd, mdy = sum_dy / M, mdyx = sum_dy_xhat / M;
        for (int i = 0; i < n; i++) {
            const float *x = in + ((size_t)i * C + c) * HW;
            const float *dy = dout + ((size_t)i * C + c) * HW;
            float *dx = din + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) {
                float g = (float)(k * (dy[p] - mdy - (x[p] - mean) * invstd * mdyx));
                dx[p] = accumulate_din ? dx[p] + g : g;
            }
        }
    }
}
