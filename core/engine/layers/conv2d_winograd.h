/* conv2d_winograd.h: conv2d.c's Winograd F(2x2, 3x3) path (conv2d_winograd.c)
 * for 3x3 convolutions with stride 1, padding 1 and one group. Activations as
 * conv2d.c's: channel c of image i at base + (c * n + i) * h * w (batch-minor;
 * n = 1 for one NCHW image). */
#ifndef TB_CONV2D_WINOGRAD_H
#define TB_CONV2D_WINOGRAD_H

#include <stddef.h>

#include "layers.h"

/* Whether conv2d takes it (forward and backward alike): the shape fits
 * (3x3, stride 1, padding 1, one group), and it pays or is forced. */
int winograd_applies(const tb_conv2d_shape *s);
/* Floats of the transformed filters, shared by a call's threads. */
size_t winograd_shared_floats(const tb_conv2d_shape *s);
/* Floats of one thread's scratch for a batch of n. */
size_t winograd_thread_floats(const tb_conv2d_shape *s, int n);
/* The transformed filters: [16][K][C] for the forward, or (rotated) [16][C][K]
 * of the filters turned by 180 degrees, for the input gradient. */
void winograd_filters(float *u, const float *weight, const tb_conv2d_shape *s, int rotated);
/* out of images [i0, i1) of n, bias written first (may be NULL). */
void winograd_forward_images(float *out, const float *in, const float *u, const float *bias,
                             const tb_conv2d_shape *s, int n, int i0, int i1, float *tws);
/* Images [i0, i1): their weight gradient into the thread's transformed
 * gradient dU in tws (beta_du 0: overwrite, 1: add, so a thread can sum
 * several calls before one winograd_weight_gradient), their input gradient
 * into din (= or +=; may be NULL; needs u_rotated). n and tws as for the
 * weight gradient. */
void winograd_backward_images(float *din, float beta_du, const float *dout, const float *in,
                              const float *u_rotated, const tb_conv2d_shape *s, int n, int i0, int i1,
                              int accumulate_din, float *tws);
/* dw (beta_w 0: =, 1: +=) the weight gradient summed in the thread's dU. */
void winograd_weight_gradient(float *dw, float beta_w, const tb_conv2d_shape *s, int n, float *tws);

#endif
