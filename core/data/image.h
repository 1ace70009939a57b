/* image.h: uint8 image operations shared by the task pipeline and plugins. */
#ifndef TB_IMAGE_H
#define TB_IMAGE_H

#include <stdint.h>

/* Bilinear resize of one image [channels, sh, sw] to [channels, dh, dw], as
 * torchvision's Resize on a PIL image (antialiased when shrinking: the filter
 * support widens with the scale), rounding to the nearest uint8. */
void tb_resize_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, int channels);

#endif
