/* tbtest_broken.c: one source, many deliberately broken plugins for
 * test_plugin_loader. CMake builds it once per case with -D switches:
 *   TBT_NAME="..."        the plugin's name (default "tbtest_broken")
 *   TBT_KIND=...          TB_PLUGIN_MODEL (default) or TB_PLUGIN_TASK
 *   TBT_NO_ENTRY          export no tunebench_plugin_entry (another symbol instead)
 *   TBT_NULL_DESC         the entry returns NULL
 *   TBT_MAJOR_DELTA=n     ABI major + n
 *   TBT_MINOR_DELTA=n     ABI minor + n
 *   TBT_NO_BUILD          a model without build_model
 *   TBT_SHORT_DESC        an older, shorter descriptor (ends before open_task)
 * Without switches it is a valid model plugin: flatten, then one linear layer. */
#include <stddef.h>
#include <stdio.h>

#include "tunebench_plugin.h"

#ifndef TBT_NAME
#define TBT_NAME "tbtest_broken"
#endif
#ifndef TBT_KIND
#define TBT_KIND TB_PLUGIN_MODEL
#endif
#ifndef TBT_MAJOR_DELTA
#define TBT_MAJOR_DELTA 0
#endif
#ifndef TBT_MINOR_DELTA
#define TBT_MINOR_DELTA 0
#endif
#ifdef TBT_SHORT_DESC
#define TBT_SIZE offsetof(tb_plugin_descriptor, open_task)
#else
#define TBT_SIZE sizeof(tb_plugin_descriptor)
#endif

#ifndef TBT_NO_BUILD
static tb_status build(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in, tb_net **out,
                       char *err, size_t errlen)
{
    (void)args;
    tb_net *net = host->net_new(in->channels, in->height, in->width);
    if (!net) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    tb_init_spec init = {TB_INIT_DEFAULT, 0, TB_INIT_DEFAULT, 0};
    int x = host->net_flatten(net, TB_NET_INPUT);
    host->net_linear(net, x, "fc", in->classes, 1, init);
    *out = net;
    return TB_OK;
}
#endif

static tb_status open_task(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen)
{
    (void)host;
    (void)args;
    (void)out;
    snprintf(err, errlen, "this test plugin has no data");
    return TB_EIO;
}

static const tb_plugin_descriptor descriptor = {
    .abi_major = TB_PLUGIN_ABI_MAJOR + TBT_MAJOR_DELTA,
    .abi_minor = TB_PLUGIN_ABI_MINOR + TBT_MINOR_DELTA,
    .size = TBT_SIZE,
    .kind = TBT_KIND,
    .name = TBT_NAME,
    .version = "0.0.1",
    .license = "MIT",
    .description = "a deliberately broken plugin for the loader tests",
#ifndef TBT_NO_BUILD
    .build_model = build,
#endif
    .open_task = open_task,
};

#ifdef TBT_NO_ENTRY
/* exported, but under the wrong name */
TB_PLUGIN_EXPORT const tb_plugin_descriptor *plugin_entry(void);
TB_PLUGIN_EXPORT const tb_plugin_descriptor *plugin_entry(void) { return &descriptor; }
#else
TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void);
TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void)
{
#ifdef TBT_NULL_DESC
    (void)descriptor;
    return NULL;
#else
    return &descriptor;
#endif
}
#endif
