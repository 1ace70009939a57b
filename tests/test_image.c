/* test_image.c: tb_resize_u8 against Pillow's Image.resize(size, Image.BILINEAR)
 * (what torchvision's Resize does to a PIL image): small cases compared pixel
 * by pixel, larger ones by an FNV-1a hash of the whole output, all exact.
 *
 * The expected values were written by this script (Debian's python3-pil 9.4):
 *
 *   import numpy as np
 *   from PIL import Image
 *   def src(c, h, w):   # the same pattern as source() below
 *       a = np.zeros((c, h, w), dtype=np.uint8)
 *       for k in range(c):
 *           for y in range(h):
 *               for x in range(w):
 *                   a[k, y, x] = (x*37 + y*101 + k*59 + ((x*y) ^ (x + 3*y))*13) & 255
 *       return a
 *   def pil(a, dh, dw):  # per channel, as mode 'L'
 *       return np.stack([np.asarray(Image.fromarray(p, 'L').resize((dw, dh), Image.BILINEAR)) for p in a])
 *   def fnv(b):
 *       h = 2166136261
 *       for x in b: h = ((h ^ x) * 16777619) & 0xffffffff
 *       return h
 *   # arrays: pil(src(c, sh, sw), dh, dw).ravel(); hashes: fnv(pil(...).tobytes())
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "data/image.h"
#include "tb_test.h"

static uint8_t *source(int c, int h, int w)
{
    uint8_t *a = malloc((size_t)c * (size_t)h * (size_t)w);
    ck_assert(a != NULL);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                a[((size_t)k * h + y) * w + x] = (uint8_t)((x * 37 + y * 101 + k * 59 + ((x * y) ^ (x + 3 * y)) * 13) & 255);
    return a;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static const uint8_t expect_0[30] = {
    88, 102, 140, 106, 163, 83, 105, 133, 166, 151, 139, 92, 110, 139, 136, 144, 158, 146, 149, 160,
    124, 95, 173, 160, 146, 129, 122, 88, 122, 116,
};
static const uint8_t expect_1[391] = {
    0, 17, 46, 74, 102, 130, 159, 187, 215, 243, 160, 44, 72, 101, 129, 157, 185, 214, 242, 137,
    42, 71, 88, 66, 85, 118, 91, 59, 77, 95, 113, 153, 212, 139, 26, 44, 71, 129, 175, 207,
    192, 155, 99, 51, 70, 80, 126, 147, 180, 111, 30, 41, 47, 44, 88, 173, 120, 25, 35, 60,
    133, 188, 221, 163, 64, 67, 75, 68, 64, 51, 63, 82, 109, 139, 174, 181, 125, 117, 149, 145,
    130, 164, 183, 151, 142, 162, 139, 100, 129, 146, 70, 23, 82, 92, 109, 114, 123, 192, 225, 178,
    165, 182, 172, 154, 175, 186, 166, 162, 179, 150, 100, 129, 150, 87, 48, 157, 169, 189, 117, 42,
    143, 210, 202, 210, 233, 196, 140, 125, 125, 172, 207, 227, 170, 79, 94, 114, 107, 103, 82, 85,
    91, 67, 43, 74, 94, 91, 115, 162, 189, 212, 147, 102, 118, 130, 135, 104, 56, 59, 67, 83,
    93, 97, 79, 51, 65, 87, 98, 107, 108, 113, 122, 154, 194, 152, 116, 100, 106, 138, 122, 86,
    94, 105, 114, 119, 188, 139, 59, 102, 165, 200, 226, 230, 189, 109, 96, 102, 142, 161, 111, 127,
    219, 211, 158, 187, 213, 190, 176, 113, 112, 112, 155, 198, 143, 120, 169, 170, 132, 105, 83, 161,
    211, 163, 166, 227, 199, 132, 168, 200, 163, 140, 113, 130, 158, 172, 178, 128, 105, 145, 152, 132,
    98, 60, 127, 180, 178, 192, 220, 191, 138, 172, 200, 149, 118, 204, 201, 195, 144, 96, 162, 198,
    167, 136, 106, 70, 32, 31, 52, 149, 199, 194, 188, 182, 204, 216, 152, 112, 144, 131, 109, 140,
    179, 192, 198, 185, 164, 133, 100, 66, 45, 39, 87, 134, 182, 173, 138, 191, 231, 148, 98, 129,
    111, 83, 147, 220, 184, 160, 160, 163, 167, 141, 106, 63, 33, 41, 86, 175, 163, 107, 171, 220,
    129, 73, 220, 205, 181, 171, 161, 110, 72, 58, 105, 205, 191, 143, 69, 16, 30, 81, 174, 167,
    116, 146, 163, 82, 32, 175, 153, 119, 150, 188, 140, 92, 43, 70, 163, 136, 75, 110, 124, 62,
    68, 151, 142, 92, 92, 100, 115, 126, 120, 92, 47, 128, 221, 178, 124, 45, 47, 119, 80, 8,
    146, 222, 93, 57, 130, 118, 68, 49, 52, 153, 216,
};
static const uint8_t expect_2[195] = {
    59, 170, 122, 168, 105, 92, 110, 100, 151, 102, 115, 85, 103, 138, 92, 95, 161, 169, 142, 71,
    130, 182, 170, 154, 97, 120, 154, 159, 135, 110, 46, 74, 143, 73, 100, 105, 149, 133, 148, 153,
    133, 162, 142, 183, 159, 138, 131, 155, 186, 134, 166, 139, 97, 184, 162, 150, 161, 81, 164, 171,
    121, 184, 86, 140, 171, 118, 98, 128, 158, 138, 98, 80, 106, 134, 149, 91, 87, 104, 130, 151,
    123, 153, 153, 179, 130, 102, 89, 135, 126, 156, 93, 67, 122, 103, 169, 105, 116, 127, 132, 159,
    146, 98, 155, 125, 169, 152, 114, 155, 118, 156, 125, 151, 132, 115, 126, 62, 135, 103, 147, 106,
    76, 127, 108, 122, 99, 117, 125, 125, 81, 99, 151, 88, 134, 86, 128, 108, 107, 117, 106, 139,
    83, 123, 100, 123, 142, 119, 118, 91, 125, 126, 95, 109, 145, 140, 148, 104, 111, 168, 162, 159,
    164, 126, 143, 191, 149, 114, 117, 149, 122, 72, 92, 99, 132, 103, 95, 93, 79, 102, 117, 183,
    98, 99, 124, 79, 145, 124, 88, 137, 100, 144, 151, 66, 142, 140, 158,
};
static const uint8_t expect_3[36] = {
    0, 50, 100, 150, 200, 250, 140, 203, 10, 21, 32, 199, 24, 48, 176, 252, 120, 144, 164, 201,
    34, 223, 208, 245, 48, 46, 44, 42, 40, 142, 188, 47, 162, 225, 232, 91,
};
static const uint8_t expect_4[162] = {
    103, 132, 137, 122, 122, 128, 118, 109, 118, 110, 144, 148, 130, 120, 128, 131, 153, 116, 150, 139,
    116, 162, 130, 108, 113, 152, 152, 118, 108, 107, 107, 119, 107, 129, 157, 166, 103, 99, 125, 123,
    155, 136, 108, 133, 156, 125, 125, 145, 147, 145, 139, 121, 122, 151, 106, 98, 115, 147, 139, 121,
    121, 128, 135, 105, 131, 134, 129, 153, 128, 156, 141, 125, 127, 144, 142, 122, 144, 124, 134, 153,
    133, 103, 96, 131, 139, 137, 112, 140, 148, 142, 116, 113, 135, 132, 162, 152, 126, 129, 141, 110,
    130, 111, 123, 106, 105, 103, 101, 117, 129, 125, 121, 133, 141, 140, 121, 131, 124, 138, 127, 133,
    140, 128, 112, 109, 134, 107, 145, 104, 125, 109, 135, 116, 140, 131, 97, 127, 122, 162, 149, 140,
    132, 150, 142, 154, 149, 138, 140, 128, 95, 122, 136, 139, 155, 175, 115, 112, 130, 147, 167, 150,
    116, 131,
};

typedef struct small_case {
    int c, sh, sw, dh, dw;
    const uint8_t *expect;
} small_case;

static const small_case small_cases[] = {
    {1, 11, 13, 5, 6, expect_0},   /* shrink both axes (antialiased) */
    {1, 11, 13, 17, 23, expect_1}, /* enlarge both axes */
    {3, 9, 14, 13, 5, expect_2},   /* enlarge rows, shrink columns, three channels */
    {1, 6, 6, 6, 6, expect_3},     /* same size: a copy */
    {2, 28, 28, 9, 9, expect_4},   /* shrink by 3.1 */
};

typedef struct hash_case {
    int c, sh, sw, dh, dw;
    uint32_t hash;
} hash_case;

static const hash_case hash_cases[] = {
    {3, 32, 32, 224, 224, 0x91b3c3f5u},
    {1, 224, 224, 28, 28, 0xe52354ecu},
    {3, 160, 213, 64, 64, 0x9aec2ee4u},
    {1, 28, 28, 64, 64, 0x85b0a877u},
    {1, 300, 400, 250, 390, 0x5d87dec7u}, /* working memory beyond the stack buffer */
};

START_TEST(test_resize_matches_pil_small)
{
    const small_case *k = &small_cases[_i];
    uint8_t *src = source(k->c, k->sh, k->sw);
    const size_t n = (size_t)k->c * k->dh * k->dw;
    uint8_t *dst = malloc(n);
    ck_assert(dst != NULL);
    tb_resize_u8(dst, k->dh, k->dw, src, k->sh, k->sw, k->c);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(dst[i] == k->expect[i], "%dx%dx%d -> %dx%d: element %zu is %u, Pillow gives %u", k->c, k->sh,
                      k->sw, k->dh, k->dw, i, (unsigned)dst[i], (unsigned)k->expect[i]);
    free(src);
    free(dst);
}
END_TEST

START_TEST(test_resize_matches_pil_hash)
{
    const hash_case *k = &hash_cases[_i];
    uint8_t *src = source(k->c, k->sh, k->sw);
    const size_t n = (size_t)k->c * k->dh * k->dw;
    uint8_t *dst = malloc(n);
    ck_assert(dst != NULL);
    tb_resize_u8(dst, k->dh, k->dw, src, k->sh, k->sw, k->c);
    uint32_t h = fnv1a(dst, n);
    ck_assert_msg(h == k->hash, "%dx%dx%d -> %dx%d: output hash 0x%08x, Pillow's 0x%08x", k->c, k->sh, k->sw, k->dh,
                  k->dw, (unsigned)h, (unsigned)k->hash);
    free(src);
    free(dst);
}
END_TEST

START_TEST(test_resize_constant_and_tiny)
{
    /* a constant image stays constant whatever the sizes */
    const int sizes[][4] = {{1, 1, 7, 5}, {7, 5, 1, 1}, {30, 20, 3, 11}, {3, 11, 300, 2}, {64, 64, 224, 224}};
    for (size_t s = 0; s < TB_ARRAY_LEN(sizes); s++) {
        const int sh = sizes[s][0], sw = sizes[s][1], dh = sizes[s][2], dw = sizes[s][3];
        uint8_t *src = malloc((size_t)2 * sh * sw), *dst = malloc((size_t)2 * dh * dw);
        ck_assert(src && dst);
        memset(src, 200, (size_t)sh * sw);
        memset(src + (size_t)sh * sw, 7, (size_t)sh * sw);
        tb_resize_u8(dst, dh, dw, src, sh, sw, 2);
        for (int i = 0; i < dh * dw; i++) {
            ck_assert_msg(dst[i] == 200, "%dx%d -> %dx%d: channel 0 element %d is %u", sh, sw, dh, dw, i,
                          (unsigned)dst[i]);
            ck_assert_msg(dst[dh * dw + i] == 7, "%dx%d -> %dx%d: channel 1 element %d is %u", sh, sw, dh, dw, i,
                          (unsigned)dst[dh * dw + i]);
        }
        free(src);
        free(dst);
    }
}
END_TEST

START_TEST(test_resize_large_workspace)
{
    /* a size whose working memory exceeds the stack buffer: same answer as a
     * two-step reference (rows only, then columns only, each exact in Pillow
     * since a pass is skipped when its size does not change) */
    const int sh = 300, sw = 400, dh = 250, dw = 390;
    uint8_t *src = source(1, sh, sw);
    uint8_t *full = malloc((size_t)dh * dw), *rows = malloc((size_t)sh * dw), *two = malloc((size_t)dh * dw);
    ck_assert(full && rows && two);
    tb_resize_u8(full, dh, dw, src, sh, sw, 1);
    tb_resize_u8(rows, sh, dw, src, sh, sw, 1); /* horizontal pass only */
    tb_resize_u8(two, dh, dw, rows, sh, dw, 1); /* vertical pass only */
    ck_assert_msg(memcmp(full, two, (size_t)dh * dw) == 0, "one call differs from its two passes");
    free(src);
    free(full);
    free(rows);
    free(two);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("resize");
    tcase_add_loop_test(tc, test_resize_matches_pil_small, 0, (int)TB_ARRAY_LEN(small_cases));
    tcase_add_loop_test(tc, test_resize_matches_pil_hash, 0, (int)TB_ARRAY_LEN(hash_cases));
    tcase_add_test(tc, test_resize_constant_and_tiny);
    tcase_add_test(tc, test_resize_large_workspace);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(image_suite()); }
