/* xor_blobs.c: a minimal tunebench task plugin. It generates its data: 1x8x8
 * grey images with a bright or dark blob in the top-left and bottom-right
 * quadrants, plus noise; the class is (top-left bright) XOR (bottom-right
 * bright), something a linear model cannot learn and a small MLP or CNN can.
 *
 * A task hands the host raw uint8 images, labels and a split per sample; the
 * host does resizing, normalisation, shuffling, augmentation and folds, the
 * same way for every task. Memory comes from host->alloc; the host owns it
 * once open_task returns TB_OK. Use it in a config:
 *
 *     [task]
 *     name = xor_blobs
 *
 *     [xor_blobs]
 *     count = 2000
 *
 * See docs/plugins.md. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <tunebench_plugin.h>

static const tb_plugin_option options[] = {
    {"count", TB_OPTION_INT, "1000", 10, 1000000, NULL, "number of images"},
    {"noise", TB_OPTION_INT, "40", 0, 127, NULL, "amplitude of the uniform pixel noise"},
    {"seed", TB_OPTION_INT, "0", 0, 2147483647, NULL, "seed of the generated data"},
    {"test_fraction", TB_OPTION_FLOAT, "0.2", 0, 0.9, NULL, "share of the images in the test split"},
};

/* splitmix64: a plugin keeps its own small generator (it links nothing). */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    const int n = (int)host->arg_int(args, "count"), side = 8;
    const int noise = (int)host->arg_int(args, "noise");
    uint64_t state = (uint64_t)host->arg_int(args, "seed");
    const double test_fraction = host->arg_float(args, "test_fraction");

    out->count = n;
    out->channels = 1;
    out->height = out->width = side;
    out->classes = 2;
    out->pixels = host->alloc((size_t)n * side * side);
    out->labels = host->alloc(sizeof(int32_t) * (size_t)n);
    out->splits = host->alloc((size_t)n);
    out->class_names = host->alloc(2 * sizeof(char *));
    if (out->class_names) out->class_names[0] = out->class_names[1] = NULL;
    if (!out->pixels || !out->labels || !out->splits || !out->class_names) {
        host->task_data_free(out); /* on failure the plugin frees what it allocated */
        snprintf(err, errlen, "out of memory for %d images", n);
        return TB_ENOMEM;
    }
    static const char *const names[2] = {"same", "different"};
    for (int k = 0; k < 2; k++) {
        out->class_names[k] = host->alloc(strlen(names[k]) + 1);
        if (!out->class_names[k]) {
            host->task_data_free(out);
            snprintf(err, errlen, "out of memory");
            return TB_ENOMEM;
        }
        strcpy(out->class_names[k], names[k]);
    }

    const int n_test = (int)(test_fraction * n);
    for (int i = 0; i < n; i++) {
        int a = (int)(next(&state) & 1), b = (int)(next(&state) & 1);
        uint8_t *img = out->pixels + (size_t)i * side * side;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                int v = 128;
                if (y < side / 2 && x < side / 2) v = a ? 200 : 56;
                if (y >= side / 2 && x >= side / 2) v = b ? 200 : 56;
                v += noise ? (int)(next(&state) % (uint64_t)(2 * noise + 1)) - noise : 0;
                img[y * side + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        out->labels[i] = a ^ b;
        /* the last n_test images are the test split; the host carves a
         * validation split from the training images when the config asks */
        out->splits[i] = (uint8_t)(i >= n - n_test ? TB_SPLIT_TEST : TB_SPLIT_TRAIN);
    }
    snprintf(out->source, sizeof out->source, "xor_blobs(count=%d, noise=%d, seed=%lld)", n, noise,
             (long long)host->arg_int(args, "seed"));
    host->log(TB_LOG_INFO, "xor_blobs", "generated %d images (%d test)", n, n_test);
    return TB_OK;
}

/* What open_task will return, from the options alone (ABI minor 7): the host
 * builds the model on it before any data is made, so a model that does not fit
 * 1x8x8 images of 2 classes is reported at once. */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)host, (void)args, (void)err, (void)errlen;
    out->channels = 1;
    out->height = out->width = 8;
    out->classes = 2;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_TASK,
    .name = "xor_blobs",
    .version = "1.0.0",
    .license = "MIT",
    .description = "synthetic 1x8x8 images: two blobs, the class is their XOR",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
