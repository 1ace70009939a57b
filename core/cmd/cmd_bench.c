/* cmd_bench.c: `tunebench bench`: times training steps of a network on
 * synthetic data (img/s, GFLOP/s, memory, per-layer times). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "cmd.h"
#include "engine/zoo.h"
#include "engine/device.h"
#include "host/plugin.h"
#include "run/run.h"

/* side of the square products that measure the sgemm ceiling: big enough for
 * OpenBLAS to reach its peak, small enough to take well under a second */
#define SGEMM_PEAK_SIZE 1536

/* An integer option of bench into an int (full strtoll checks, the error names the flag). */
static int parse_int(const char *flag, const char *text, long long lo, long long hi, int *out)
{
    long long v;
    if (tb_cmd_parse_int("bench", flag, text, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench bench [options]\n"
            "Times full training steps (forward, loss, backward, SGD step) on synthetic data.\n\n"
            "  --model NAME      a model plugin (e.g. squeezenet, cnn) or a built-in network (%s);\n"
            "                    default small_cnn\n"
            "  --set k=v         a model plugin option, e.g. --set squeezenet.version=1_0 (repeatable)\n"
            "  --input CxHxW     input shape (default 1x28x28)\n"
            "  --classes N       output classes (default 10)\n"
            "  --batch N         batch size (default 64)\n"
            "  --steps N         timed steps (default 100)\n"
            "  --warmup N        untimed steps first (default 5)\n"
            "  --threads N       CPU threads (default: all cores)\n"
            "  --device D        cpu (default), cuda or cuda:N\n"
            "  --tf32            on a GPU, allow TF32 tensor-core math (as PyTorch's cuDNN default)\n"
            "  --profile         also print each layer's forward/backward time per step\n"
            "                    (synchronises after every layer, so the total is a little slower)\n"
            "  --plugin-path P   a plugin file or directory searched first\n"
            "  --help            this text\n"
            "Prints one line: model, batch, img/s, GFLOP/s (3x forward FLOPs per image) and\n"
            "that rate as a share of the sgemm peak measured right after (CPU: square\n"
            "products of 1536 with the same threads),\n"
            "the network's memory and the process's peak resident memory.\n",
            tb_zoo_names());
}

/* A network by name: built in, or from a model plugin with --set options. */
static tb_net *bench_network(const char *model, tb_config *cfg, const char *plugin_path, const tb_model_input *in,
                             tb_err *err)
{
    tb_net *net = tb_zoo_build(model, in->channels, in->height, in->width, in->classes);
    if (net) return net;
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    const tb_plugin *plugin;
    tb_plugin_args *args = NULL;
    if (tb_plugins_discover(&reg, plugin_path, err) == TB_OK &&
        tb_plugin_find(&reg, TB_PLUGIN_MODEL, model, &plugin, err) == TB_OK &&
        tb_plugin_args_resolve(plugin, cfg, model, &args, err) == TB_OK)
        tb_plugin_build_model(plugin, args, in, &net, err);
    tb_plugin_args_free(args);
    /* the plugin's code must stay loaded while the net exists: only the
     * descriptor built it, the net holds no plugin code, so unloading is safe */
    tb_plugins_free(&reg);
    return net;
}

int tb_cmd_bench(int argc, char **argv)
{
    const char *model = "small_cnn", *plugin_path = NULL;
    int batch = 64, steps = 100, warmup = 5, threads = 0, profile = 0, classes = 10, tf32 = 0;
    tb_device device = {0};
    int c = 1, h = 28, w = 28;
    tb_err err = {{0}};
    tb_config *cfg = tb_config_new();
    if (!cfg) return TB_EXIT_FAILED;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            tb_config_free(cfg);
            return 0;
        }
        if (!strcmp(a, "--profile")) {
            profile = 1;
            continue;
        }
        if (!strcmp(a, "--tf32")) {
            tf32 = 1;
            continue;
        }
        if (!(v = tb_cmd_need_value("bench", argc, argv, &i))) goto usage;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--plugin-path")) plugin_path = v;
        else if (!strcmp(a, "--set")) {
            if (tb_config_set_assignment(cfg, v, &err) != TB_OK) {
                fprintf(stderr, "tunebench bench: --set %s: %s\n", v, err.msg);
                goto usage;
            }
        } else if (!strcmp(a, "--input")) {
            char tail;
            if (sscanf(v, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 4096 || h > 8192 ||
                w > 8192) {
                fprintf(stderr, "tunebench: --input = '%s' is not CxHxW with sizes in [1, 8192] (e.g. 3x64x64)\n", v);
                goto usage;
            }
        } else if (!strcmp(a, "--classes")) { if (parse_int(a, v, 1, 100000, &classes)) goto usage; }
        else if (!strcmp(a, "--batch")) { if (parse_int(a, v, 1, 65536, &batch)) goto usage; }
        else if (!strcmp(a, "--steps")) { if (parse_int(a, v, 1, 1000000, &steps)) goto usage; }
        else if (!strcmp(a, "--warmup")) { if (parse_int(a, v, 0, 1000000, &warmup)) goto usage; }
        else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 0, 1024, &threads)) goto usage; }
        else if (!strcmp(a, "--device")) {
            if (tb_device_parse(v, "--device", &device, &err) != TB_OK) {
                fprintf(stderr, "tunebench bench: %s\n", err.msg);
                goto usage;
            }
        } else {
            fprintf(stderr, "tunebench bench: unknown option '%s' (see tunebench bench --help)\n", a);
            goto usage;
        }
    }
    tb_backend *be = NULL;
    tb_backend_options bo = {.threads = threads, .tf32 = tf32};
    tb_model_input in = {c, h, w, classes};
    tb_net *net = NULL;
    int rc = TB_EXIT_FAILED;
    float *x_host = NULL, *x = NULL;
    int32_t *y = NULL;
    tb_optimizer opt = {0};
    tb_status st = tb_backend_create(&device, &bo, &be, &err);
    if (st != TB_OK) {
        fprintf(stderr, "tunebench bench: %s\n", err.msg);
        tb_config_free(cfg);
        return st == TB_EINVAL ? TB_EXIT_USAGE : TB_EXIT_FAILED;
    }
    net = bench_network(model, cfg, plugin_path, &in, &err);
    if (!net) goto done;
    if (tb_net_build(net, be, batch, &err)) goto done;
    tb_net_init_params(net, 1);
    tb_optim_config oc;
    tb_optim_defaults(&oc, TB_OPT_SGD);
    oc.lr = 0.01;
    oc.momentum = 0.9;
    if (tb_optimizer_create(&opt, net, &oc, &err)) goto done;
    const size_t sample = (size_t)c * h * w;
    x_host = malloc(sizeof(float) * sample * batch);
    y = malloc(sizeof(int32_t) * batch);
    x = be->ops->alloc(be, sizeof(float) * sample * batch);
    if (!x_host || !y || !x) {
        tb_fail(&err, TB_ENOMEM, "out of memory");
        goto done;
    }
    tb_rng r;
    tb_rng_init(&r, 7, TB_STREAM_AUGMENT, 0);
    for (size_t i = 0; i < sample * batch; i++) x_host[i] = tb_rng_normal(&r);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)tb_rng_below(&r, (uint32_t)classes);
    be->ops->to_device(be, x, x_host, sizeof(float) * sample * batch);
    float *dlogits = tb_net_output_grad_buffer(net);
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            be->ops->synchronize(be);
            tb_net_set_profiling(net, profile);
            t0 = tb_now();
        }
        tb_net_forward(net, x, batch, 1, (uint64_t)s);
        be->ops->loss(be, dlogits, tb_net_output(net), y, batch, classes, TB_LOSS_CROSS_ENTROPY);
        tb_net_zero_grads(net);
        tb_net_backward(net, dlogits, batch);
        tb_optimizer_step(&opt, net);
    }
    be->ops->synchronize(be);
    double secs = tb_now() - t0;
    tb_status failed_st;
    if (be->ops->failed(be, &failed_st, err.msg, sizeof err.msg)) goto done;
    double ips = (double)steps * batch / secs;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double gflops = ips * 3.0 * tb_net_forward_flops(net) / 1e9;
    /* the machine's ceiling, measured now with the same threads, so the step's
     * rate reads as a fraction of what the arithmetic units deliver */
    char ceiling[96] = "";
    double peak = be->ops->sgemm_gflops ? be->ops->sgemm_gflops(be, SGEMM_PEAK_SIZE) : 0;
    if (peak > 0) snprintf(ceiling, sizeof ceiling, " (%.0f%% of sgemm peak %.1f GFLOP/s)", 100.0 * gflops / peak, peak);
    printf("tunebench bench: model %s input %dx%dx%d batch %d on %s%s: %.1f img/s, %.1f GFLOP/s%s, "
           "net memory %.1f MiB, peak RSS %.1f MiB\n",
           model, c, h, w, batch, be->name, tb_net_batch_minor(net) ? " [c,n,h,w]" : "", ips, gflops, ceiling,
           tb_net_memory_bytes(net) / 1048576.0, ru.ru_maxrss / 1024.0);
    if (profile) {
        char report[32768];
        tb_net_profile_report(net, steps, batch, peak, report, sizeof report);
        printf("%s", report);
    }
    rc = TB_EXIT_OK;
done:
    if (rc) fprintf(stderr, "tunebench bench: %s\n", err.msg);
    if (x) be->ops->free(be, x);
    free(x_host);
    free(y);
    if (opt.state) tb_optimizer_destroy(&opt);
    tb_net_free(net);
    tb_backend_destroy(be);
    tb_config_free(cfg);
    return rc;
usage:
    tb_config_free(cfg);
    return TB_EXIT_USAGE;
}
