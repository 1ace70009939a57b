/* image.h: uint8 (and float32) image operations shared by the task pipeline and plugins. */
#ifndef TB_IMAGE_H
#define TB_IMAGE_H

#include <stdint.h>

/* Bilinear resize of one image [channels, sh, sw] to [channels, dh, dw], as
 * torchvision's Resize on a PIL image (antialiased when shrinking: the filter
 * support widens with the scale), rounding to the nearest uint8. */
void tb_resize_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, int channels);

/* The same bilinear filter on float32 samples (Pillow's mode "F"): weights
 * normalised in double, each pass summed in double and stored as float, no
 * rounding or clipping. Returns 0, or -1 on bad arguments or out of memory. */
int tb_resize_f32(float *dst, int dh, int dw, const float *src, int sh, int sw, int channels);

#endif
