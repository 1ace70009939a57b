/* tbtest_task.c: a valid task plugin for test_plugin_loader: `count`
 * (required) images 1x4x4 whose pixels encode their label, split 0/1/2 by
 * index. `defect` hands back deliberately invalid data to check that the
 * host validates and frees it. */
#include <stdio.h>
#include <string.h>

#include "tunebench_plugin.h"

static const tb_plugin_option options[] = {
    {"count", TB_OPTION_INT, NULL, 1, 100000, NULL, "number of samples (required)"},
    {"classes", TB_OPTION_INT, "3", 1, 10, NULL, "number of classes"},
    {"defect", TB_OPTION_CHOICE, "none", 0, 0, "none|label|split|no_pixels|fail|declared", "what to break (declared: describe_task declares 9 classes)"},
};

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    int n = (int)host->arg_int(args, "count"), classes = (int)host->arg_int(args, "classes");
    const char *defect = host->arg_string(args, "defect");
    if (strcmp(defect, "fail") == 0) {
        snprintf(err, errlen, "no data here (defect = fail)");
        return TB_EIO;
    }
    out->count = n;
    out->channels = 1;
    out->height = out->width = 4;
    out->classes = classes;
    out->pixels = host->alloc((size_t)n * 16);
    out->labels = host->alloc(sizeof(int32_t) * (size_t)n);
    out->splits = host->alloc((size_t)n);
    out->class_names = host->alloc(sizeof(char *) * (size_t)classes);
    if (!out->pixels || !out->labels || !out->splits || !out->class_names) {
        /* the class names are not filled yet: zero them so task_data_free skips them */
        if (out->class_names) memset(out->class_names, 0, sizeof(char *) * (size_t)classes);
        host->task_data_free(out); /* host API version 2 (ABI minor 1) */
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    for (int k = 0; k < classes; k++) {
        out->class_names[k] = host->alloc(16);
        if (out->class_names[k]) snprintf(out->class_names[k], 16, "class%d", k);
    }
    for (int i = 0; i < n; i++) {
        out->labels[i] = i % classes;
        out->splits[i] = (uint8_t)(i % 10 == 9 ? TB_SPLIT_TEST : i % 10 == 8 ? TB_SPLIT_VAL : TB_SPLIT_TRAIN);
        memset(out->pixels + (size_t)i * 16, 40 * (i % classes), 16);
    }
    if (strcmp(defect, "label") == 0) out->labels[n - 1] = classes;
    if (strcmp(defect, "split") == 0) out->splits[0] = 7;
    if (strcmp(defect, "no_pixels") == 0) {
        host->free(out->pixels);
        out->pixels = NULL;
    }
    snprintf(out->source, sizeof out->source, "tbtest_task(count=%d)", n);
    return TB_OK;
}

/* 1x4x4 and the option classes (defect = declared: 9 classes, a lie open_task's data contradicts). */
static tb_status describe_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen)
{
    (void)err, (void)errlen;
    out->channels = 1;
    out->height = out->width = 4;
    out->classes = strcmp(host->arg_string(args, "defect"), "declared") == 0 ? 9 : (int)host->arg_int(args, "classes");
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_TASK,
    .name = "tbtest_task",
    .version = "0.1",
    .license = "MIT",
    .description = "synthetic 4x4 images for the loader tests",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .open_task = open_task,
    .describe_task = describe_task,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
