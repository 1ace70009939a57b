/* conv_algorithms.c: im2col against Winograd F(2x2, 3x3) on the 3x3
 * convolutions of SqueezeNet (stride 1, padding 1), each direction timed on
 * its own, with the algorithm conv2d picks by itself (winograd_applies).
 * The figures behind the rule in core/engine/layers/conv2d_winograd.c.
 *
 *   build/bench_conv_algorithms [--threads N] [--reps N] [C K plane batch layout]...
 *
 * layout: cn (batch-minor, SqueezeNet at 64 px) or nchw (224 px). Without
 * shapes it runs SqueezeNet 1.0's and 1.1's at 64 px (batch 64) and 224 px
 * (batch 16). Prints the median of --reps timings (default 5) of each. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/layers/conv2d_winograd.h"
#include "engine/layers/layers.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct shape {
    int c, k, plane, n, cn;
} shape;

static const shape squeezenet[] = {
    /* 64 px, batch-minor: 1.0's fires at 14x14, 7x7, 3x3; 1.1's at 15x15, 7x7, 3x3 */
    {16, 64, 14, 64, 1}, {32, 128, 14, 64, 1}, {48, 192, 7, 64, 1}, {64, 256, 7, 64, 1}, {64, 256, 3, 64, 1},
    {16, 64, 15, 64, 1}, {32, 128, 7, 64, 1}, {48, 192, 3, 64, 1},
    /* 224 px, NCHW: 1.0's at 54x54, 27x27, 13x13; 1.1's at 55x55, 27x27, 13x13 */
    {16, 64, 54, 16, 0}, {32, 128, 54, 16, 0}, {32, 128, 27, 16, 0}, {64, 256, 27, 16, 0}, {64, 256, 13, 16, 0},
    {16, 64, 55, 16, 0}, {48, 192, 13, 16, 0},
};

/* Median milliseconds of reps calls: 0 forward, 1 backward. */
static double time_ms(const shape *sh, tb_conv2d_shape *s, int backward, int reps, float *buf[6], float *ws)
{
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) { /* one untimed call first */
        const double t0 = now();
        if (!backward) {
            if (sh->cn)
                conv2d_cn_forward(buf[1], buf[0], buf[4], buf[5], s, sh->n, ws);
            else
                conv2d_forward(buf[1], buf[0], buf[4], buf[5], s, sh->n, ws);
        } else {
            if (sh->cn)
                conv2d_cn_backward(buf[2], buf[3], NULL, buf[1], buf[0], buf[4], s, sh->n, 0, ws);
            else
                conv2d_backward(buf[2], buf[3], NULL, buf[1], buf[0], buf[4], s, sh->n, 0, ws);
        }
        if (r >= 0) t[r] = (now() - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, by_value);
    return t[reps / 2];
}

static void run(const shape *sh, int reps)
{
    tb_conv2d_shape s = {.in_c = sh->c, .in_h = sh->plane, .in_w = sh->plane, .out_c = sh->k, .kh = 3, .kw = 3,
                         .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .groups = 1};
    if (conv2d_infer(&s)) return;
    const size_t hw = (size_t)sh->plane * sh->plane, nin = (size_t)sh->n * sh->c * hw, nout = (size_t)sh->n * sh->k * hw;
    const size_t sizes[6] = {nin, nout, nin, (size_t)sh->k * sh->c * 9, (size_t)sh->k * sh->c * 9, (size_t)sh->k};
    float *buf[6];
    for (int b = 0; b < 6; b++) {
        buf[b] = malloc(sizeof(float) * sizes[b]);
        if (!buf[b]) {
            fprintf(stderr, "bench_conv_algorithms: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < sizes[b]; i++) buf[b][i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    }
    double ms[2][2];
    size_t ws_bytes[2];
    for (int a = 0; a < 2; a++) {
        s.algorithm = a ? TB_CONV_WINOGRAD : TB_CONV_IM2COL;
        const size_t nws = sh->cn ? conv2d_cn_workspace_floats(&s, sh->n) : conv2d_workspace_floats(&s, sh->n);
        float *ws = malloc(sizeof(float) * (nws ? nws : 1));
        if (!ws) exit(1);
        ws_bytes[a] = nws * sizeof(float);
        for (int d = 0; d < 2; d++) ms[a][d] = time_ms(sh, &s, d, reps, buf, ws);
        free(ws);
    }
    s.algorithm = TB_CONV_AUTO;
    const char *picks = winograd_applies(&s) ? "winograd" : "im2col";
    const double gflop = 2.0 * sh->k * sh->c * 9 * (double)hw * sh->n / 1e9;
    printf("C %3d K %3d %3dx%-3d batch %3d %-4s | fwd im2col %7.2f ms (%5.1f GFLOP/s) winograd %7.2f ms: %.2fx, "
           "picks %-8s | bwd im2col %7.2f ms winograd %7.2f ms: %.2fx, picks %-8s | workspace %.1f / %.1f MiB\n",
           sh->c, sh->k, sh->plane, sh->plane, sh->n, sh->cn ? "cn" : "nchw", ms[0][0], gflop / ms[0][0] * 1e3,
           ms[1][0], ms[0][0] / ms[1][0], picks, ms[0][1], ms[1][1],
           ms[0][1] / ms[1][1], picks, ws_bytes[0] / 1048576.0,
           ws_bytes[1] / 1048576.0);
    fflush(stdout);
    for (int b = 0; b < 6; b++) free(buf[b]);
}

int main(int argc, char **argv)
{
    int reps = 5, i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_conv_algorithms: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--threads"))
            omp_set_num_threads(atoi(argv[i + 1]));
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_conv_algorithms: unknown option %s (see the comment at the top of the source)\n",
                    argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    printf("bench_conv_algorithms: %d thread(s), median of %d\n", omp_get_max_threads(), reps);
    if (i == argc) {
        for (size_t k = 0; k < sizeof squeezenet / sizeof *squeezenet; k++) run(&squeezenet[k], reps);
        return 0;
    }
    if ((argc - i) % 5) {
        fprintf(stderr, "bench_conv_algorithms: shapes are five values each: C K plane batch cn|nchw\n");
        return 2;
    }
    for (; i < argc; i += 5) {
        shape sh = {atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), atoi(argv[i + 3]), !strcmp(argv[i + 4], "cn")};
        if (sh.c < 1 || sh.k < 1 || sh.plane < 1 || sh.n < 1) {
            fprintf(stderr, "bench_conv_algorithms: C, K, plane and batch must be positive (got %s %s %s %s)\n",
                    argv[i], argv[i + 1], argv[i + 2], argv[i + 3]);
            return 2;
        }
        run(&sh, reps);
    }
    return 0;
}
