/* batchnorm.c: torch.nn.BatchNorm2d (affine, track_running_stats). */
#include <math.h>

#include "layers.h"

void batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma, const float *beta,
                             const tb_bn_shape *s, int n)
{
    const int C = s->c, HW = s->hw;
    const double M = (double)n * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            const float *x = in + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) sum += x[p];
        }
        const double mean = sum / M;
        double ss = 0.0;
        for (int i = 0; i < n; i++) {
            const float *x = in + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) {
                double d = x[p] - mean;
                ss += d * d;
            }
        }
        const double var = ss / M; /* biased, used to normalise */
        const double invstd = 1.0 / sqrt(var + s->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        const double unbiased = M > 1 ? ss / (M - 1) : var;
        running_mean[c] = (float)((1.0 - s->momentum) * running_mean[c] + s->momentum * mean);
        running_var[c] = (float)((1.0 - s->momentum) * running_var[c] + s->momentum * unbiased);
        const float a = (float)(invstd * gamma[c]), b = (float)(beta[c] - mean * invstd * gamma[c]);
        for (int i = 0; i < n; i++) {
            const float *x = in + ((size_t)i * C + c) * HW;
            float *y = out + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) y[p] = x[p] * a + b;
        }
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
            const float *x = in + ((size_t)i * C + c) * HW;
            float *y = out + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) y[p] = x[p] * a + b;
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
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int i = 0; i < n; i++) {
            const float *x = in + ((size_t)i * C + c) * HW;
            const float *dy = dout + ((size_t)i * C + c) * HW;
            for (int p = 0; p < HW; p++) {
                sum_dy += dy[p];
                sum_dy_xhat += dy[p] * ((x[p] - mean) * invstd);
            }
        }
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
