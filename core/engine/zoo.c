#include "zoo.h"

#include <string.h>

tb_net *tb_zoo_small_cnn(int channels, int height, int width, int classes)
{
    tb_net *net = tb_net_new(channels, height, width);
    if (!net) return NULL;
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 32, 3, 1, 1, 1, 1, init);
    x = tb_net_relu(net, x);
    x = tb_net_maxpool(net, x, 2, 2, 0, 0);
    x = tb_net_conv2d(net, x, "features.3", 64, 3, 1, 1, 1, 1, init);
    x = tb_net_relu(net, x);
    x = tb_net_maxpool(net, x, 2, 2, 0, 0);
    x = tb_net_flatten(net, x);
    x = tb_net_linear(net, x, "classifier.0", 128, 1, init);
    x = tb_net_relu(net, x);
    tb_net_linear(net, x, "classifier.2", classes, 1, init);
    return net;
}

const char *tb_zoo_names(void) { return "small_cnn"; }

tb_net *tb_zoo_build(const char *name, int channels, int height, int width, int classes)
{
    if (strcmp(name, "small_cnn") == 0) return tb_zoo_small_cnn(channels, height, width, classes);
    return NULL;
}
