/* tbtest_model.c: a valid model plugin for test_plugin_loader, with one
 * option of every type so argument resolution can be checked end to end:
 * conv3x3(width) - ReLU - adaptive avg pool 1x1 - flatten - linear(classes).
 * `fail = true` makes build_model fail with a message. */
#include <stdio.h>
#include <string.h>

#include "tunebench_plugin.h"

static const tb_plugin_option options[] = {
    {"width", TB_OPTION_INT, "4", 1, 64, NULL, "output channels of the convolution"},
    {"scale", TB_OPTION_FLOAT, "0.5", 0, 1, NULL, "a float in [0, 1]"},
    {"bias", TB_OPTION_BOOL, "true", 0, 0, NULL, "conv bias"},
    {"label", TB_OPTION_STRING, "hello", 0, 0, NULL, "any text"},
    {"act", TB_OPTION_CHOICE, "relu", 0, 0, "relu|none", "activation after the convolution"},
    {"widths", TB_OPTION_INT_LIST, "4,8", 1, 64, NULL, "a list of integers"},
    {"data", TB_OPTION_PATH, "~/tbtest", 0, 0, NULL, "a path"},
    {"offset", TB_OPTION_INT, "0", 0, 0, NULL, "an integer without a range"},
    {"gain", TB_OPTION_FLOAT, "1", 0, 0, NULL, "a float without a range"},
    {"fail", TB_OPTION_BOOL, "false", 0, 0, NULL, "make build_model fail"},
};

static tb_status build(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in, tb_net **out,
                       char *err, size_t errlen)
{
    if (host->arg_bool(args, "fail")) {
        snprintf(err, errlen, "asked to fail (width %d)", (int)host->arg_int(args, "width"));
        return TB_EINVAL;
    }
    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    tb_init_spec init = {TB_INIT_DEFAULT, 0, TB_INIT_DEFAULT, 0};
    int width = (int)host->arg_int(args, "width");
    int x = host->net_conv2d(net, TB_NET_INPUT, "features.0", width, 3, 1, 1, 1, host->arg_bool(args, "bias"), init);
    if (strcmp(host->arg_string(args, "act"), "relu") == 0) x = host->net_relu(net, x);
    int c = 0, h = 0, w = 0;
    if (host->net_shape(net, x, &c, &h, &w) != 0 || c != width || h != in->height || w != in->width) {
        snprintf(err, errlen, "net_shape gave %dx%dx%d, expected %dx%dx%d", c, h, w, width, in->height, in->width);
        host->net_free(net);
        return TB_EINVAL;
    }
    x = host->net_adaptive_avgpool(net, x, 1, 1);
    x = host->net_flatten(net, x);
    host->net_linear(net, x, "classifier", in->classes, 1, init);
    host->log(TB_LOG_DEBUG, "tbtest_model", "built with width %d", width);
    *out = net;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_MODEL,
    .name = "tbtest_model",
    .version = "1.2.3",
    .license = "MIT",
    .description = "a tiny convolutional model for the loader tests",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .build_model = build,
    .base_prefixes = "features.",
    .head_prefixes = "classifier",
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
