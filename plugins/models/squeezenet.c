/* squeezenet.c: model plugin "squeezenet", torchvision's SqueezeNet 1.0 and 1.1
 * (torchvision/models/squeezenet.py, torchvision 0.14) layer for layer:
 *
 *   features    = nn.Sequential(conv, ReLU, MaxPool2d(3, 2, ceil_mode=True), Fire, ...)
 *   classifier  = nn.Sequential(Dropout(p), Conv2d(512, classes, 1), ReLU, AdaptiveAvgPool2d((1, 1)))
 *   forward     = flatten(classifier(features(x)), 1)
 *
 *   Fire(inplanes, s, e1, e3): squeeze = Conv2d(inplanes, s, 1) -> ReLU, then
 *   cat([ReLU(expand1x1 = Conv2d(s, e1, 1)), ReLU(expand3x3 = Conv2d(s, e3, 3, padding=1))], dim=1)
 *
 * State_dict keys are torchvision's ("features.0.weight",
 * "features.3.squeeze.weight", "classifier.1.bias", ...), so torchvision
 * checkpoints load by name (scripts/torchvision_to_checkpoint.py).
 *
 * Initialisation as torchvision: the final 1x1 convolution normal(0, 0.01),
 * every other convolution init.kaiming_uniform_ with its defaults (a=0,
 * fan_in, gain sqrt(2): U(+-sqrt(6/fan_in))), every bias 0.
 *
 * Differences from torchvision, all generalisations: the first convolution
 * takes any number of input channels, the final one any number of classes,
 * and the input may be any size (not necessarily square) at least the
 * architecture's minimum: 21x21 for 1_0 and 17x17 for 1_1 (smaller inputs make
 * a ceil-mode max pooling's output empty; torch fails on them too).
 *
 * Options: version = 1_0 | 1_1 (default 1_1), dropout = p of the classifier's
 * Dropout (default 0.5, as torchvision). */
#include <stdio.h>
#include <string.h>

#include "tunebench_plugin.h"

#define PLUGIN_NAME "squeezenet"

static const tb_plugin_option options[] = {
    {"version", TB_OPTION_CHOICE, "1_1", 0, 0, "1_0|1_1",
     "SqueezeNet version: 1_0 (Iandola et al. 2016) or 1_1 (2.4x less computation, same accuracy)"},
    {"dropout", TB_OPTION_FLOAT, "0.5", 0, 1, NULL, "dropout probability before the final 1x1 convolution"},
};

/* One stage of features: a fire module, or (squeeze == 0) a ceil-mode 3x3/2 max pooling. */
typedef struct stage {
    int squeeze, expand1x1, expand3x3;
} stage;

#define POOL {0, 0, 0}

typedef struct arch {
    const char *version;
    int conv_out, conv_kernel; /* features.0: Conv2d(in, conv_out, conv_kernel, stride=2) */
    stage stages[12];          /* features.2 onwards */
    int n_stages;
} arch;

/* In the order of the "version" option's choices: host->arg_int gives the index. */
static const arch archs[] = {
    {"1_0", 96, 7,
     {POOL, {16, 64, 64}, {16, 64, 64}, {32, 128, 128}, POOL, {32, 128, 128}, {48, 192, 192}, {48, 192, 192},
      {64, 256, 256}, POOL, {64, 256, 256}},
     11},
    {"1_1", 64, 3,
     {POOL, {16, 64, 64}, {16, 64, 64}, POOL, {32, 128, 128}, {32, 128, 128}, POOL, {48, 192, 192},
      {48, 192, 192}, {64, 256, 256}, {64, 256, 256}},
     11},
};

/* torch's output sizes (no dilation, no padding): Conv2d, and MaxPool2d with
 * ceil_mode=True (whose last window must start inside the input). They mirror
 * conv2d_infer (core/engine/layers/conv2d.c) and pool_out_size (core/engine/layers/pool.c)
 * for pad = 0, which a plugin cannot call: min_input needs sizes for inputs no
 * network is built for, so host->net_shape cannot answer it. */
static int conv_out(int in, int kernel, int stride) { return in < kernel ? 0 : (in - kernel) / stride + 1; }

static int ceil_pool_out(int in, int kernel, int stride)
{
    int num = in - kernel + stride - 1;
    int out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
    if ((out - 1) * stride >= in) out--;
    return out;
}

/* Spatial size at the end of features for an input side `in`, or 0 when some layer's output is empty. */
static int features_out(const arch *a, int in)
{
    int s = conv_out(in, a->conv_kernel, 2);
    for (int i = 0; i < a->n_stages && s >= 1; i++)
        if (a->stages[i].squeeze == 0) s = ceil_pool_out(s, 3, 2);
    return s >= 1 ? s : 0;
}

static int min_input(const arch *a)
{
    int m = 1;
    while (features_out(a, m) < 1) m++;
    return m;
}

static tb_status build_model(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in,
                             tb_net **out, char *err, size_t errlen)
{
    *out = NULL;
    const arch *a = &archs[host->arg_int(args, "version")];
    double p = host->arg_float(args, "dropout");
    if (in->channels < 1 || in->classes < 1) {
        snprintf(err, errlen, "version %s: needs at least 1 input channel and 1 class (got %d channels, %d classes)",
                 a->version, in->channels, in->classes);
        return TB_EINVAL;
    }
    if (!(p >= 0.0 && p <= 1.0)) {
        snprintf(err, errlen, "dropout %g is outside [0, 1]", p);
        return TB_EINVAL;
    }
    int min = min_input(a);
    if (in->height < min || in->width < min) {
        char hint[96] = "";
        if (strcmp(a->version, "1_0") == 0 && in->height >= min_input(&archs[1]) && in->width >= min_input(&archs[1]))
            snprintf(hint, sizeof hint, ", or use version = 1_1 (at least %dx%d)", min_input(&archs[1]),
                     min_input(&archs[1]));
        snprintf(err, errlen,
                 "version %s: input %dx%d is smaller than the architecture's minimum %dx%d (a ceil-mode max "
                 "pooling's output would be empty); raise the task's resolution%s",
                 a->version, in->height, in->width, min, min, hint);
        return TB_EINVAL;
    }

    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    /* torchvision: kaiming_uniform_(weight) (a=0: U(+-sqrt(6/fan_in))), constant_(bias, 0) */
    const tb_init_spec conv_init = {TB_INIT_KAIMING_UNIFORM, 0.0f, TB_INIT_CONSTANT, 0.0f};
    const tb_init_spec final_init = {TB_INIT_NORMAL, 0.01f, TB_INIT_CONSTANT, 0.0f};
    char name[64];

    int x = host->net_conv2d(net, TB_NET_INPUT, "features.0", a->conv_out, a->conv_kernel, 2, 0, 1, 1, conv_init);
    x = host->net_relu(net, x);
    for (int i = 0; i < a->n_stages; i++) {
        const stage *s = &a->stages[i];
        int index = 2 + i; /* position in torchvision's features Sequential */
        if (s->squeeze == 0) {
            x = host->net_maxpool(net, x, 3, 2, 0, 1);
            continue;
        }
        snprintf(name, sizeof name, "features.%d.squeeze", index);
        int sq = host->net_relu(net, host->net_conv2d(net, x, name, s->squeeze, 1, 1, 0, 1, 1, conv_init));
        snprintf(name, sizeof name, "features.%d.expand1x1", index);
        int e1 = host->net_relu(net, host->net_conv2d(net, sq, name, s->expand1x1, 1, 1, 0, 1, 1, conv_init));
        snprintf(name, sizeof name, "features.%d.expand3x3", index);
        int e3 = host->net_relu(net, host->net_conv2d(net, sq, name, s->expand3x3, 3, 1, 1, 1, 1, conv_init));
        int cat[2] = {e1, e3};
        x = host->net_concat(net, cat, 2);
    }
    x = host->net_dropout(net, x, (float)p);
    x = host->net_conv2d(net, x, "classifier.1", in->classes, 1, 1, 0, 1, 1, final_init);
    x = host->net_relu(net, x);
    x = host->net_adaptive_avgpool(net, x, 1, 1);
    host->net_flatten(net, x);
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
    .description = "torchvision's SqueezeNet 1.0 / 1.1 (same layers, state_dict keys and initialisation)",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .build_model = build_model,
    .base_prefixes = "features.",
    .head_prefixes = "classifier.",
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
