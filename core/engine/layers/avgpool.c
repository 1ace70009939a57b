/* avgpool.c: torch.nn.AvgPool2d (padding, ceil_mode, count_include_pad) and
 * torch.nn.AdaptiveAvgPool2d. */
#include <string.h>

#include "layers.h"

/* Window of output (oy, ox) clipped to the input, and torch's divisor. */
typedef struct window {
    int y0, y1, x0, x1;
    float divisor;
} window;

static window avg_window(const tb_pool_shape *s, int oy, int ox)
{
    window w;
    int y0 = oy * s->stride_h - s->pad_h, x0 = ox * s->stride_w - s->pad_w;
    int y1 = y0 + s->kh, x1 = x0 + s->kw;
    if (y1 > s->in_h + s->pad_h) y1 = s->in_h + s->pad_h;
    if (x1 > s->in_w + s->pad_w) x1 = s->in_w + s->pad_w;
    int padded = (y1 - y0) * (x1 - x0); /* counts padding, not the ceil-mode overhang */
    w.y0 = y0 < 0 ? 0 : y0;
    w.x0 = x0 < 0 ? 0 : x0;
    w.y1 = y1 > s->in_h ? s->in_h : y1;
    w.x1 = x1 > s->in_w ? s->in_w : x1;
    w.divisor = (float)(s->count_include_pad ? padded : (w.y1 - w.y0) * (w.x1 - w.x0));
    return w;
}

void avgpool_forward(float *out, const float *in, const tb_pool_shape *s, int n)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *src = in + (size_t)pl * H * W;
        float *dst = out + (size_t)pl * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                window w = avg_window(s, oy, ox);
                float sum = 0.0f;
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) sum += src[y * W + x];
                dst[oy * OW + ox] = sum / w.divisor;
            }
        }
    }
}

void avgpool_backward(float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate_din)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *dst = din + (size_t)pl * H * W;
        const float *g = dout + (size_t)pl * OH * OW;
        if (!accumulate_din) memset(dst, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                window w = avg_window(s, oy, ox);
                float v = g[oy * OW + ox] / w.divisor;
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) dst[y * W + x] += v;
            }
        }
    }
}

/* torch's adaptive windows: [floor(o*I/O), ceil((o+1)*I/O)) */
static int start_index(int o, int out, int in) { return (int)((long)o * in / out); }
static int end_index(int o, int out, int in) { return (int)(((long)(o + 1) * in + out - 1) / out); }

void adaptive_avgpool_forward(float *out, const float *in, const tb_pool_shape *s, int n)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *src = in + (size_t)pl * H * W;
        float *dst = out + (size_t)pl * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = start_index(oy, OH, H), y1 = end_index(oy, OH, H);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = start_index(ox, OW, W), x1 = end_index(ox, OW, W);
                float sum = 0.0f;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) sum += src[y * W + x];
                dst[oy * OW + ox] = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void adaptive_avgpool_backward(float *din, const float *dout, const tb_pool_shape *s, int n, int accumulate_din)
{
    const int H = s->in_h, W = s->in_w, OH = s->out_h, OW = s->out_w;
    const int planes = n * s->c;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *dst = din + (size_t)pl * H * W;
        const float *g = dout + (size_t)pl * OH * OW;
        if (!accumulate_din) memset(dst, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++) {
            int y0 = start_index(oy, OH, H), y1 = end_index(oy, OH, H);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = start_index(ox, OW, W), x1 = end_index(ox, OW, W);
                float v = g[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) dst[y * W + x] += v;
            }
        }
    }
}
