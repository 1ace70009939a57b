/* lenet5.c: the classic LeNet-5 (LeCun et al., 1998) as a tunebench model
 * plugin, written with the PyTorch-style builder (host API version 5). It is
 * this torch.nn.Sequential, with the same state_dict keys (0.weight,
 * 0.bias, 3.weight, ..., 11.bias) and the same numerics:
 *
 *     nn.Sequential(
 *         nn.Conv2d(C, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),    # 0 1 2
 *         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),              # 3 4 5
 *         nn.Flatten(),                                                 # 6
 *         nn.Linear(16 * 5 * 5, 120), nn.Tanh(),                        # 7 8
 *         nn.Linear(120, 84), nn.Tanh(),                                # 9 10
 *         nn.Linear(84, classes))                                       # 11
 *
 * padding=2 makes a 28x28 input (MNIST, Fashion-MNIST) the paper's 32x32;
 * set `padding = 0` for 32x32 inputs. Every layer call takes the next
 * Sequential index, parameter-free ones included, so no layer is named by
 * hand. Use it in a config:
 *
 *     [model]
 *     name = lenet5
 *
 * Build it against an installed tunebench (see CMakeLists.txt). */
#include <stdio.h>

#include <tunebench_plugin.h>

static const tb_plugin_option options[] = {
    {"padding", TB_OPTION_INT, "2", 0, 4, NULL, "padding of the first convolution (2: a 28x28 input becomes 32x32)"},
};

static tb_status build_model(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in,
                             tb_net **out, char *err, size_t errlen)
{
    /* The loader refuses this plugin (built with ABI minor 6 or later) on a host
     * older than host API version 5, so every call below exists. */
    const int padding = (int)host->arg_int(args, "padding");
    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    /* A new net is a top-level Sequential at index 0: keys "0.weight", ... */
    int x = host->conv2d(net, TB_NET_INPUT, &(tb_conv2d_opts){.out_channels = 6, .kernel = 5, .padding = padding});
    x = host->tanh(net, x);
    x = host->avgpool2d(net, x, &(tb_avgpool2d_opts){.kernel = 2});
    x = host->conv2d(net, x, &(tb_conv2d_opts){.out_channels = 16, .kernel = 5});
    x = host->tanh(net, x);
    x = host->avgpool2d(net, x, &(tb_avgpool2d_opts){.kernel = 2});
    x = host->flatten(net, x);
    x = host->linear(net, x, &(tb_linear_opts){.out_features = 120});
    x = host->tanh(net, x);
    x = host->linear(net, x, &(tb_linear_opts){.out_features = 84});
    x = host->tanh(net, x);
    host->linear(net, x, &(tb_linear_opts){.out_features = in->classes});
    /* A failed call returns -1 and the net keeps the first error, naming the
     * layer ("layer 3 (conv2d): kernel 5 with padding 0 does not fit the
     * input"); the host reports it when it places the net. */
    *out = net;
    return TB_OK;
}

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_MODEL,
    .name = "lenet5",
    .version = "1.0.0",
    .license = "MIT",
    .description = "LeNet-5: conv6-tanh-avgpool, conv16-tanh-avgpool, linear 120-84-classes with tanh",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .build_model = build_model,
    .base_prefixes = "0.,3.", /* the convolutions, for freeze = base */
    .head_prefixes = "11.",   /* re-initialised when the class count differs */
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
