/* pool.c: output-size rules shared by max and average pooling, as torch's
 * pooling_output_shape (aten/src/ATen/native/Pool.h). */
#include "layers.h"

int pool_out_size(int in, int k, int stride, int pad, int ceil_mode)
{
    int num = in + 2 * pad - (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    /* floor division (num may be negative for tiny inputs) */
    int out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
    /* ensure the last window starts inside the input or left padding */
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

int pool_infer(tb_pool_shape *s)
{
    if (s->kh < 1 || s->kw < 1 || s->stride_h < 1 || s->stride_w < 1) return -1;
    if (s->pad_h < 0 || s->pad_w < 0 || s->pad_h > s->kh / 2 || s->pad_w > s->kw / 2) return -1;
    s->out_h = pool_out_size(s->in_h, s->kh, s->stride_h, s->pad_h, s->ceil_mode);
    s->out_w = pool_out_size(s->in_w, s->kw, s->stride_w, s->pad_w, s->ceil_mode);
    return s->out_h >= 1 && s->out_w >= 1 ? 0 : -1;
}
