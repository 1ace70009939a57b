/* tiny_mlp.c: a minimal tunebench model plugin, a multilayer perceptron:
 *
 *     flatten -> [linear(hidden) -> ReLU -> dropout] x layers -> linear(classes)
 *
 * It includes only tunebench_plugin.h and links nothing from tunebench: the
 * host hands it a table of services (the layer builder among them). The
 * network is described once; the host derives the backward pass, places it
 * on a backend and initialises it. Use it in a config:
 *
 *     [model]
 *     name = tiny_mlp
 *
 *     [tiny_mlp]
 *     hidden = 128
 *     layers = 2
 *
 * See docs/plugins.md. */
#include <stdio.h>
#include <string.h>

#include <tunebench_plugin.h>

/* Options: read from the [tiny_mlp] section, checked by the host against
 * these types and ranges before build_model runs. */
static const tb_plugin_option options[] = {
    {"hidden", TB_OPTION_INT, "64", 1, 65536, NULL, "units of each hidden layer"},
    {"layers", TB_OPTION_INT, "1", 0, 16, NULL, "hidden layers (0: a linear classifier)"},
    {"dropout", TB_OPTION_FLOAT, "0", 0, 0.99, NULL, "dropout after each hidden layer"},
    {"init", TB_OPTION_CHOICE, "default", 0, 0, "default|kaiming_uniform|xavier_uniform",
     "weight initialisation (default: PyTorch's)"},
};

static tb_status build_model(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in,
                             tb_net **out, char *err, size_t errlen)
{
    int hidden = (int)host->arg_int(args, "hidden");
    int layers = (int)host->arg_int(args, "layers");
    float dropout = (float)host->arg_float(args, "dropout");
    const char *init_name = host->arg_string(args, "init");

    tb_init_spec init = TB_INIT_TORCH_DEFAULT; /* PyTorch's reset_parameters() */
    if (strcmp(init_name, "kaiming_uniform") == 0) init = (tb_init_spec){TB_INIT_KAIMING_UNIFORM, 0, TB_INIT_CONSTANT, 0};
    if (strcmp(init_name, "xavier_uniform") == 0) init = (tb_init_spec){TB_INIT_XAVIER_UNIFORM, 0, TB_INIT_CONSTANT, 0};

    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    /* state_dict names as a torch.nn.Sequential would give them: layers.0, layers.3, ... */
    int x = host->net_flatten(net, TB_NET_INPUT);
    int index = 1;
    char name[32];
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "layers.%d", index);
        x = host->net_linear(net, x, name, hidden, 1, init);
        x = host->net_relu(net, x);
        index += 2;
        if (dropout > 0) {
            x = host->net_dropout(net, x, dropout);
            index++;
        }
    }
    snprintf(name, sizeof name, "layers.%d", index);
    /* A failed builder call returns -1 and the network records the first error
     * with its layer; the host reports that message when it places the net. */
    host->net_linear(net, x, name, in->classes, 1, init);
    host->log(TB_LOG_DEBUG, "tiny_mlp", "%d hidden layers of %d units", layers, hidden);
    *out = net;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_MODEL,
    .name = "tiny_mlp",
    .version = "1.0.0",
    .license = "MIT",
    .description = "a multilayer perceptron: flatten, hidden linear+ReLU layers, linear classifier",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .build_model = build_model,
    .base_prefixes = NULL, /* nothing to freeze as a "base" */
    .head_prefixes = NULL,
};

/* The one exported symbol (declared first: the host looks it up by name). */
TB_PLUGIN_DEFINE_ENTRY(descriptor)
