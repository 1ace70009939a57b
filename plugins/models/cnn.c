/* cnn.c: model plugin "cnn", the baseline CNN family of the course assignment
 * (../shared/seeds/003: "a few convolutional layers for feature extraction and
 * a few fully connected layers for classification", then vary depth, width,
 * kernel size, pooling, dropout, batch norm and initialisation). Everything
 * comes from options, so each of those is one config key.
 *
 * The network, as the PyTorch module it equals (same state_dict keys, same
 * numerics), for input [C, H, W] and `classes` outputs:
 *
 *   from collections import OrderedDict
 *   import torch.nn as nn
 *
 *   ACT = dict(relu=nn.ReLU, tanh=nn.Tanh, sigmoid=nn.Sigmoid, leaky_relu=nn.LeakyReLU, gelu=nn.GELU)
 *
 *   def cnn(C, H, W, classes, filters=(32, 64), kernel_size=3, padding=-1, stride=1, pooling="max",
 *           pool_size=2, batch_norm=False, conv_dropout=0.0, units=(128,), dropout=0.0, activation="relu"):
 *       pad = kernel_size // 2 if padding == -1 else padding
 *       features, c, h, w = [], C, H, W
 *       for f in filters:                                   # one block per entry
 *           features.append(nn.Conv2d(c, f, kernel_size, stride=stride, padding=pad))  # bias=True
 *           h, w = (h + 2 * pad - kernel_size) // stride + 1, (w + 2 * pad - kernel_size) // stride + 1
 *           if batch_norm:
 *               features.append(nn.BatchNorm2d(f))          # eps 1e-5, momentum 0.1
 *           features.append(ACT[activation]())             # torch's defaults (slope 0.01, erf GELU)
 *           if pooling == "max":
 *               features.append(nn.MaxPool2d(pool_size))    # stride = pool_size, floor mode
 *           elif pooling == "avg":
 *               features.append(nn.AvgPool2d(pool_size))
 *           if pooling != "none":
 *               h, w = h // pool_size, w // pool_size
 *           if conv_dropout > 0:
 *               features.append(nn.Dropout(conv_dropout))   # element-wise, as nn.Dropout
 *           c = f
 *       classifier, n = [], c * h * w
 *       for u in units:                                     # hidden layers
 *           classifier += [nn.Linear(n, u), ACT[activation]()]
 *           if dropout > 0:
 *               classifier.append(nn.Dropout(dropout))
 *           n = u
 *       classifier.append(nn.Linear(n, classes))
 *       return nn.Sequential(OrderedDict(features=nn.Sequential(*features), flatten=nn.Flatten(),
 *                                        classifier=nn.Sequential(*classifier)))
 *
 * So a block is conv -> [BatchNorm] -> activation -> [pool] -> [Dropout], and the
 * classifier is (Linear -> activation -> [Dropout]) per hidden layer, then the
 * output Linear: dropout acts on the output of every hidden layer, i.e. on the
 * input of every linear layer but the first (torchvision's VGG/AlexNet
 * placement); with units = "" (no hidden layer) it has nothing to act on.
 * Modules that do nothing are left out (no Dropout when p = 0, no pooling for
 * "none", no BatchNorm when off), exactly as one would write the Sequential by
 * hand, so the default options give the built-in small CNN's keys:
 * features.0 (conv 32), features.3 (conv 64), classifier.0 (linear 128),
 * classifier.2 (linear classes). The keys therefore depend on which modules
 * exist: a checkpoint moves between two configurations whose keys match.
 *
 * Initialisation (`init`): "default" is torch's reset_parameters() (weights
 * kaiming_uniform(a=sqrt(5)), biases U(+-1/sqrt(fan_in))); the others set the
 * weights of every conv and linear layer with that torch.nn.init function
 * (nonlinearity relu) and the biases to 0. BatchNorm: weight 1, bias 0. */
#include <stdio.h>
#include <string.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "cnn"
#define MAX_BLOCKS 64
#define MAX_UNITS 64

static const tb_plugin_option options[] = {
    {"filters", TB_OPTION_INT_LIST, "32,64", 1, 4096, NULL,
     "output channels of each conv block; the number of entries is the depth (\"\": no conv block)"},
    {"kernel_size", TB_OPTION_INT, "3", 1, 11, NULL, "convolution kernel size (square)"},
    {"padding", TB_OPTION_INT, "-1", -1, 5, NULL, "convolution padding; -1 = \"same\": kernel_size / 2"},
    {"stride", TB_OPTION_INT, "1", 1, 8, NULL, "convolution stride"},
    {"pooling", TB_OPTION_CHOICE, "max", 0, 0, "max|avg|none", "pooling after each block's activation"},
    {"pool_size", TB_OPTION_INT, "2", 1, 16, NULL, "pooling kernel and stride"},
    {"batch_norm", TB_OPTION_BOOL, "false", 0, 0, NULL, "BatchNorm2d between each conv and its activation"},
    {"conv_dropout", TB_OPTION_FLOAT, "0", 0, 1, NULL, "dropout at the end of each conv block, in [0, 1)"},
    {"units", TB_OPTION_INT_LIST, "128", 1, 65536, NULL,
     "units of each hidden linear layer (\"\": none, the output layer follows the features)"},
    {"dropout", TB_OPTION_FLOAT, "0", 0, 1, NULL, "dropout after each hidden linear layer's activation, in [0, 1)"},
    {"init", TB_OPTION_CHOICE, "default", 0, 0, "default|kaiming_uniform|kaiming_normal|xavier_uniform|xavier_normal",
     "weight initialisation of conv and linear layers (biases 0 unless default)"},
    {"activation", TB_OPTION_CHOICE, "relu", 0, 0, "relu|tanh|sigmoid|leaky_relu|gelu",
     "the nonlinearity of every block and hidden layer (nn.ReLU, Tanh, Sigmoid, LeakyReLU(0.01), GELU())"},
};

/* host->arg_int gives a CHOICE option's index in its choices (checked by the
 * host), so these tables follow the order of "pooling" and "init" above. */
enum { POOL_MAX, POOL_AVG, POOL_NONE };
static const char *const pool_names[] = {"max", "avg", "none"};
enum { ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_LEAKY_RELU, ACT_GELU };

/* The chosen nonlinearity, with torch's defaults (negative_slope 0.01, GELU's erf form). */
static int activation(const tb_host_api *host, tb_net *net, int x, int act)
{
    switch (act) {
    case ACT_TANH: return host->net_tanh(net, x);
    case ACT_SIGMOID: return host->net_sigmoid(net, x);
    case ACT_LEAKY_RELU: return host->net_leaky_relu(net, x, 0.01f);
    case ACT_GELU: return host->net_gelu(net, x, 0);
    default: return host->net_relu(net, x);
    }
}

static const tb_init_kind inits[] = {TB_INIT_DEFAULT, TB_INIT_KAIMING_UNIFORM, TB_INIT_KAIMING_NORMAL,
                                     TB_INIT_XAVIER_UNIFORM, TB_INIT_XAVIER_NORMAL};

/* Appends "HxW -> " style text to a size trace. */
static void trace_add(char *trace, size_t len, const char *sep, int h, int w)
{
    size_t used = strlen(trace);
    if (used < len) snprintf(trace + used, len - used, "%s%dx%d", sep, h, w);
}

static tb_status fail(char *err, size_t errlen, tb_status code, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return code;
}

static tb_status build_model(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in,
                             tb_net **out, char *err, size_t errlen)
{
    *out = NULL;
    int64_t filters[MAX_BLOCKS], units[MAX_UNITS];
    int depth = host->arg_int_list(args, "filters", filters, MAX_BLOCKS);
    int hidden = host->arg_int_list(args, "units", units, MAX_UNITS);
    int kernel = (int)host->arg_int(args, "kernel_size");
    int pad = (int)host->arg_int(args, "padding");
    int stride = (int)host->arg_int(args, "stride");
    const int pooling = (int)host->arg_int(args, "pooling");
    int pool_size = (int)host->arg_int(args, "pool_size");
    int batch_norm = host->arg_bool(args, "batch_norm");
    double conv_dropout = host->arg_float(args, "conv_dropout");
    double dropout = host->arg_float(args, "dropout");
    const tb_init_kind init_kind = inits[host->arg_int(args, "init")];
    const int act = (int)host->arg_int(args, "activation");
    char msg[512];

    if (depth < 0 || depth > MAX_BLOCKS) {
        snprintf(msg, sizeof msg, "filters has %d entries; at most %d conv blocks are supported", depth,
                 MAX_BLOCKS);
        return fail(err, errlen, TB_EINVAL, msg);
    }
    if (hidden < 0 || hidden > MAX_UNITS) {
        snprintf(msg, sizeof msg, "units has %d entries; at most %d hidden layers are supported", hidden,
                 MAX_UNITS);
        return fail(err, errlen, TB_EINVAL, msg);
    }
    if (pad == -1) pad = kernel / 2;
    const int pooled = pooling != POOL_NONE;
    tb_init_spec init = TB_INIT_TORCH_DEFAULT;
    if (init_kind != TB_INIT_DEFAULT) init = (tb_init_spec){init_kind, 0.0f, TB_INIT_CONSTANT, 0.0f};
    if (!(conv_dropout >= 0 && conv_dropout < 1)) {
        snprintf(msg, sizeof msg, "conv_dropout = %g must be in [0, 1) (1 would drop every activation)",
                 conv_dropout);
        return fail(err, errlen, TB_EINVAL, msg);
    }
    if (!(dropout >= 0 && dropout < 1)) {
        snprintf(msg, sizeof msg, "dropout = %g must be in [0, 1) (1 would drop every activation)", dropout);
        return fail(err, errlen, TB_EINVAL, msg);
    }
    if (in->channels < 1 || in->classes < 1 || in->height < 1 || in->width < 1) {
        snprintf(msg, sizeof msg, "input %dx%dx%d with %d classes: every size must be >= 1", in->channels,
                 in->height, in->width, in->classes);
        return fail(err, errlen, TB_EINVAL, msg);
    }

    /* Follow the feature map through the blocks first, so that a block that
     * would empty it is reported by number with every size on the way. The
     * size rules mirror conv2d_infer (core/engine/layers/conv2d.c) and pool_out_size
     * (core/engine/layers/pool.c, floor mode) as torch states them; the builder
     * applies its own afterwards (host->net_shape), so a drift would show as a
     * builder error, not as a wrong network. */
    char trace[256] = "";
    int h = in->height, w = in->width;
    trace_add(trace, sizeof trace, "", h, w);
    /* the state_dict index of block b's convolution, as the builder below numbers the modules */
    const int per_block = 2 + (batch_norm != 0) + (pooled != 0) + (conv_dropout > 0);
    for (int b = 0; b < depth; b++) {
        if (h + 2 * pad < kernel || w + 2 * pad < kernel) {
            snprintf(msg, sizeof msg,
                     "layer features.%d (block %d of %d): its %dx%d convolution (padding %d) gets a %dx%d feature map "
                     "and would leave nothing; use fewer blocks, more padding, a smaller kernel_size or a larger "
                     "input (sizes: %s)",
                     b * per_block, b + 1, depth, kernel, kernel, pad, h, w, trace);
            return fail(err, errlen, TB_EINVAL, msg);
        }
        h = (h + 2 * pad - kernel) / stride + 1;
        w = (w + 2 * pad - kernel) / stride + 1;
        trace_add(trace, sizeof trace, " -conv-> ", h, w);
        if (pooled) {
            if (h < pool_size || w < pool_size) {
                snprintf(msg, sizeof msg,
                         "layer features.%d (block %d of %d): its %dx%d %s pooling gets a %dx%d feature map and "
                         "would make it empty; use fewer blocks, a smaller pool_size, pooling = none or a larger "
                         "input (sizes: %s)",
                         b * per_block + 2 + (batch_norm != 0), b + 1, depth, pool_size, pool_size,
                         pool_names[pooling], h, w, trace);
                return fail(err, errlen, TB_EINVAL, msg);
            }
            h /= pool_size;
            w /= pool_size;
            trace_add(trace, sizeof trace, " -pool-> ", h, w);
        }
    }
    if (dropout > 0 && hidden == 0)
        host->log(TB_LOG_WARN, PLUGIN_NAME, "dropout = %g has no effect with units = \"\" (no hidden layer)",
                  dropout);

    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) return fail(err, errlen, TB_ENOMEM, "out of memory");
    char name[64];
    int x = TB_NET_INPUT, index = 0;
    for (int b = 0; b < depth; b++) {
        snprintf(name, sizeof name, "features.%d", index++);
        x = host->net_conv2d(net, x, name, (int)filters[b], kernel, stride, pad, 1, 1, init);
        if (batch_norm) {
            snprintf(name, sizeof name, "features.%d", index++);
            x = host->net_batchnorm(net, x, name, 1e-5f, 0.1f);
        }
        x = activation(host, net, x, act);
        index++;
        if (pooling == POOL_MAX) x = host->net_maxpool(net, x, pool_size, pool_size, 0, 0);
        if (pooling == POOL_AVG) x = host->net_avgpool(net, x, pool_size, pool_size, 0, 0, 1);
        if (pooled) index++;
        if (conv_dropout > 0) {
            x = host->net_dropout(net, x, (float)conv_dropout);
            index++;
        }
    }
    x = host->net_flatten(net, x);
    index = 0;
    for (int l = 0; l < hidden; l++) {
        snprintf(name, sizeof name, "classifier.%d", index++);
        x = host->net_linear(net, x, name, (int)units[l], 1, init);
        x = activation(host, net, x, act);
        index++;
        if (dropout > 0) {
            x = host->net_dropout(net, x, (float)dropout);
            index++;
        }
    }
    snprintf(name, sizeof name, "classifier.%d", index);
    host->net_linear(net, x, name, in->classes, 1, init);
    /* A failed builder call returns -1 and makes every later one fail; the
     * network keeps the first error, which the host reports from tb_net_build
     * (the sizes were checked above, so only running out of memory gets here). */
    *out = net;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_MODEL,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .license = "MIT",
    .description = "baseline CNN: conv blocks (conv, [batch norm], activation, [pool], [dropout]) then linear layers",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .build_model = build_model,
    .base_prefixes = "features.",
    .head_prefixes = "classifier.",
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
