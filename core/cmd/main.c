/* main.c: the tunebench command line.
 *
 *   tunebench train CONFIG    train what a configuration describes; writes one run file
 *   tunebench eval CONFIG     score a checkpoint (or a run file's weights) on a split
 *   tunebench plugins         list the plugins found and their options
 *   tunebench bench           time training steps of a network
 *   tunebench sweep CONFIG    random search or a grid through the executor (cli_sweep.c)
 *   tunebench repeat CONFIG   one configuration with several seeds (cli_sweep.c)
 *   tunebench run-job JOB     one job in this process, events as lines (cli_sweep.c)
 *   tunebench devices         the CPU and the GPUs a run can use
 *
 * Exit codes: 0 success; 1 the run failed (I/O, missing data, out of memory);
 * 2 bad usage or configuration; 3 training diverged (NaN/Inf); 4 training was
 * interrupted (Ctrl-C or the time limit) -- the run file is written in cases 0, 3, 4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/checkpoint.h"
#include "cmd.h"
#include "engine/device.h"
#include "run/run.h"
#include "engine/zoo.h"

static int exit_code(tb_status st)
{
    switch (st) {
    case TB_OK: return TB_EXIT_OK;
    case TB_EINVAL: return TB_EXIT_USAGE;
    case TB_EDIVERGED: return TB_EXIT_DIVERGED;
    case TB_ECANCELLED:
    case TB_ETIMEOUT: return TB_EXIT_INTERRUPTED;
    default: return TB_EXIT_FAILED;
    }
}

/* An integer option of bench into an int (full strtoll checks, the error names the flag). */
static int parse_int(const char *flag, const char *text, long long lo, long long hi, int *out)
{
    long long v;
    if (tb_cli_parse_int("bench", flag, text, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

/* ---- progress ------------------------------------------------------------ */

static atomic_int interrupted;

typedef struct progress {
    int is_tty, quiet, epochs;
    int every; /* plain output: a line every `every` batches */
} progress;

static void print_progress(void *user, const tb_train_event *ev)
{
    const progress *p = user;
    if (p->quiet) return;
    if (ev->kind == TB_EVENT_BATCH) {
        if (p->is_tty) {
            const int width = 24;
            int done = (int)((double)ev->batch / ev->batches_per_epoch * width);
            char bar[32];
            for (int i = 0; i < width; i++) bar[i] = i < done ? '=' : (i == done ? '>' : ' ');
            bar[width] = '\0';
            double eta = (ev->batches_per_epoch - ev->batch) * ev->epoch_s / ev->batch;
            fprintf(stderr, "\repoch %d/%d [%s] %d/%d loss %.4f %5.0f img/s ETA %3.0f s ", ev->epoch, p->epochs, bar,
                    ev->batch, ev->batches_per_epoch, ev->batch_loss, ev->images_per_s, eta);
        } else if (ev->batch % p->every == 0) {
            printf("epoch %d/%d batch %d/%d loss %.4f img/s %.0f\n", ev->epoch, p->epochs, ev->batch,
                   ev->batches_per_epoch, ev->batch_loss, ev->images_per_s);
        }
    } else if (ev->kind == TB_EVENT_EPOCH) {
        if (p->is_tty) fprintf(stderr, "\r%100s\r", "");
        if (isnan(ev->val_accuracy))
            printf("epoch %d/%d: train loss %.4f, %.1f s, %.0f img/s\n", ev->epoch, p->epochs, ev->epoch_loss,
                   ev->epoch_s, ev->images_per_s);
        else
            printf("epoch %d/%d: train loss %.4f, val loss %.4f, val accuracy %.2f%%, %.1f s, %.0f img/s\n", ev->epoch,
                   p->epochs, ev->epoch_loss, ev->val_loss, 100.0 * ev->val_accuracy, ev->epoch_s, ev->images_per_s);
        fflush(stdout);
    } else if (p->is_tty) {
        fprintf(stderr, "\r%100s\r", "");
    }
}

/* Shared options of train and eval. */
typedef struct common_args {
    const char *config, *out, *plugin_path, *checkpoint, *split;
    char **sets;
    int n_sets, quiet;
} common_args;

/* Returns 0, 1 when --help was printed, or -1 after an error message. */
static int parse_common(int argc, char **argv, common_args *a, int allow_checkpoint, void (*usage)(FILE *))
{
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    if (!a->sets) return -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            a->quiet = 1;
            continue;
        }
        if (arg[0] != '-') {
            if (a->config) {
                fprintf(stderr, "tunebench: one configuration file only ('%s' and '%s')\n", a->config, arg);
                return -1;
            }
            a->config = arg;
            continue;
        }
        const int takes_value = !strcmp(arg, "--set") || !strcmp(arg, "--plugin-path") ||
                                (!allow_checkpoint && !strcmp(arg, "--out")) ||
                                (allow_checkpoint && (!strcmp(arg, "--checkpoint") || !strcmp(arg, "--split")));
        if (!takes_value) {
            fprintf(stderr, "tunebench: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        if (!(v = tb_cli_need_value(NULL, argc, argv, &i))) return -1;
        if (!strcmp(arg, "--set")) a->sets[a->n_sets++] = (char *)v;
        else if (!strcmp(arg, "--out")) a->out = v;
        else if (!strcmp(arg, "--plugin-path")) a->plugin_path = v;
        else if (!strcmp(arg, "--checkpoint")) a->checkpoint = v;
        else a->split = v;
    }
    if (!a->config) {
        fprintf(stderr, "tunebench: no configuration file given (e.g. configs/quickstart.ini; see --help)\n");
        return -1;
    }
    return 0;
}

static void print_metrics(const char *what, const tb_metrics *m, const tb_task_data *raw)
{
    printf("%s: loss %.4f, accuracy %.2f%%, macro precision %.4f, recall %.4f, F1 %.4f (%lld samples)\n", what,
           m->loss, 100.0 * m->accuracy, m->macro_precision, m->macro_recall, m->macro_f1, (long long)m->count);
    if (m->classes > 20) return;
    printf("confusion matrix (rows: true class, columns: predicted):\n");
    for (int r = 0; r < m->classes; r++) {
        printf("  %-18.18s", raw->class_names ? raw->class_names[r] : "");
        for (int c = 0; c < m->classes; c++) printf(" %6lld", (long long)m->confusion[r * m->classes + c]);
        printf("\n");
    }
}

/* ---- train ------------------------------------------------------------------ */

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench train CONFIG [--set section.key=value]... [--out RUN.h5] [--plugin-path P] [--quiet]\n"
            "Trains the model on the task a configuration describes (see configs/), evaluates it on the\n"
            "test split and writes one HDF5 run file (output.run; docs/run-files.md).\n\n"
            "  --set k=v         override a configuration value, e.g. --set train.lr=0.01 (repeatable)\n"
            "  --out RUN.h5      the run file (default: output.run of the configuration)\n"
            "  --plugin-path P   a plugin file or directory searched before the others\n"
            "  --quiet           no progress output\n"
            "  --folds K         k-fold cross-validation through the executor into an archive\n"
            "                    (see tunebench train CONFIG --folds K --help)\n"
            "Ctrl-C stops training after the current batch; the run file is still written.\n"
            "Exit codes: 0 finished; 1 failed; 2 bad usage or configuration; 3 diverged; 4 interrupted.\n");
}

static int cmd_train(int argc, char **argv)
{
    /* k-fold cross-validation runs K runs through the executor (cli_sweep.c) */
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--folds")) return tb_cli_train_folds(argc, argv);
    common_args a;
    int pr = parse_common(argc, argv, &a, 0, train_usage);
    if (pr != 0) {
        free(a.sets);
        return pr > 0 ? TB_EXIT_OK : TB_EXIT_USAGE;
    }
    tb_config *cfg = tb_cli_load_config(NULL, a.config, a.n_sets, a.sets, a.out, a.plugin_path);
    free(a.sets);
    if (!cfg) return TB_EXIT_USAGE;
    tb_run run;
    tb_err err = {{0}};
    tb_status st = tb_run_configure(&run, cfg, &err);
    if (st == TB_OK) {
        if (!a.quiet) {
            printf("tunebench %s (%s): model %s, task %s\n", TB_VERSION, TB_GIT_COMMIT, run.model_plugin->desc.name,
                   run.task_plugin->desc.name);
            fflush(stdout);
        }
        st = tb_run_prepare(&run, &err);
    }
    if (st != TB_OK) {
        fprintf(stderr, "tunebench train: %s\n", err.msg);
        tb_run_free(&run);
        tb_config_free(cfg);
        return exit_code(st);
    }
    if (!a.quiet) {
        const tb_task *t = &run.task;
        char *report = tb_net_param_report(run.net);
        printf("%s", report ? report : "");
        free(report);
        printf("data: %d training, %d validation, %d test samples of %dx%dx%d, %d classes\n", t->train.count,
               t->val.count, t->test.count, t->raw.channels, t->raw.height, t->raw.width, t->raw.classes);
        if (run.kept_head[0]) printf("initialised from %s; re-initialised: %s\n", run.init_from, run.kept_head);
        printf("training: %d epochs, batch %d, %s, %s lr %g, seed %llu, %s\n", run.train.epochs, run.train.batch_size,
               tb_loss_name(run.train.loss), tb_optim_name(run.train.optim.kind), run.train.optim.lr,
               (unsigned long long)run.train.seed, run.be->name);
        fflush(stdout);
    }
    progress prog = {.is_tty = isatty(STDERR_FILENO), .quiet = a.quiet, .epochs = run.train.epochs, .every = 100};
    tb_train_hooks hooks = {0};
    tb_train_hooks_add(&hooks, print_progress, &prog);
    atomic_store(&interrupted, 0);
    hooks.cancel = &interrupted;
    tb_cli_signals sig;
    tb_cli_signals_catch(&sig, &interrupted, NULL, NULL, NULL, 0);
    st = tb_run_execute(&run, &hooks, &err);
    tb_cli_signals_restore(&sig);
    int code = exit_code(st);
    if (st == TB_OK || st == TB_EDIVERGED || st == TB_ECANCELLED || st == TB_ETIMEOUT) {
        if (run.tested && !a.quiet) print_metrics("test", &run.test, &run.task.raw);
        if (st != TB_OK) fprintf(stderr, "tunebench train: %s: %s\n", tb_status_name(st), err.msg);
        if (!a.quiet) printf("run file: %s\n", run.run_path);
    } else {
        fprintf(stderr, "tunebench train: %s\n", err.msg);
    }
    tb_run_free(&run);
    tb_config_free(cfg);
    return code;
}

/* ---- eval ------------------------------------------------------------------- */

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench eval CONFIG --checkpoint FILE [--split test|val|train] [--set k=v]... [--plugin-path P]\n"
            "Builds the model and loads the task a configuration describes, loads the weights of a\n"
            "checkpoint file or of a run file (its /checkpoint group) and scores them on a split\n"
            "(default test): loss, accuracy, macro precision/recall/F1 and the confusion matrix.\n");
}

static int cmd_eval(int argc, char **argv)
{
    common_args a;
    int pr = parse_common(argc, argv, &a, 1, eval_usage);
    if (pr != 0) {
        free(a.sets);
        return pr > 0 ? TB_EXIT_OK : TB_EXIT_USAGE;
    }
    if (!a.checkpoint) {
        fprintf(stderr, "tunebench eval: --checkpoint FILE is required (a checkpoint or a run file)\n");
        free(a.sets);
        return TB_EXIT_USAGE;
    }
    const char *split = a.split ? a.split : "test";
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "train")) {
        fprintf(stderr, "tunebench eval: --split = '%s' is not one of: test, val, train\n", split);
        free(a.sets);
        return TB_EXIT_USAGE;
    }
    tb_config *cfg = tb_cli_load_config(NULL, a.config, a.n_sets, a.sets, NULL, a.plugin_path);
    free(a.sets);
    if (!cfg) return TB_EXIT_USAGE;
    tb_err err = {{0}};
    tb_run run;
    /* the weights come from --checkpoint, whatever the configuration says */
    tb_status st = tb_config_set(cfg, "model.init_from", "", &err);
    if (st == TB_OK) st = tb_config_set(cfg, "model.freeze", "none", &err);
    if (st == TB_OK) st = tb_run_configure(&run, cfg, &err);
    if (st == TB_OK) st = tb_run_prepare(&run, &err);
    if (st == TB_OK) st = tb_checkpoint_load(a.checkpoint, run.net, NULL, &err);
    const tb_dataset *ds = !strcmp(split, "test") ? &run.task.test : !strcmp(split, "val") ? &run.task.val
                                                                                           : &run.task.train;
    if (st == TB_OK && ds->count == 0) st = tb_fail(&err, TB_EINVAL, "the task has no %s samples", split);
    tb_metrics m = {0};
    if (st == TB_OK && tb_metrics_init(&m, tb_net_classes(run.net)) != 0) st = tb_fail(&err, TB_ENOMEM, "out of memory");
    if (st == TB_OK) st = tb_evaluate(run.net, ds, run.train.loss, run.train.batch_size, &m, &err);
    if (st == TB_OK) print_metrics(split, &m, &run.task.raw);
    else fprintf(stderr, "tunebench eval: %s\n", err.msg);
    if (m.confusion) tb_metrics_free(&m);
    tb_run_free(&run);
    tb_config_free(cfg);
    return exit_code(st);
}

/* ---- bench ------------------------------------------------------------------ */

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
            "Prints one line: model, batch, img/s, GFLOP/s (3x forward FLOPs per image),\n"
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

static int cmd_bench(int argc, char **argv)
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
        if (!(v = tb_cli_need_value("bench", argc, argv, &i))) goto usage;
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
    printf("tunebench bench: model %s input %dx%dx%d batch %d on %s: %.1f img/s, %.1f GFLOP/s, "
           "net memory %.1f MiB, peak RSS %.1f MiB\n",
           model, c, h, w, batch, be->name, ips, ips * 3.0 * tb_net_forward_flops(net) / 1e9,
           tb_net_memory_bytes(net) / 1048576.0, ru.ru_maxrss / 1024.0);
    if (profile) {
        char report[16384];
        tb_net_profile_report(net, steps, report, sizeof report);
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

static int cmd_devices(int argc, char **argv)
{
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: tunebench devices\nLists the CPU and each GPU a run can use (train.device = cpu | cuda | "
               "cuda:N),\nor why there is none.\n");
        return 0;
    }
    if (argc > 0) {
        fprintf(stderr, "tunebench devices: unexpected argument '%s'\n", argv[0]);
        return TB_EXIT_USAGE;
    }
    char report[8192];
    tb_devices_report(report, sizeof report);
    fputs(report, stdout);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench COMMAND [options]\n\n"
            "commands:\n"
            "  train CONFIG   train what a configuration describes; writes one run file\n"
            "  eval CONFIG    score a checkpoint or a run file's weights on a split\n"
            "  plugins        list the plugins found, with their options\n"
            "  bench          time training steps of a network\n"
            "  study CONFIG   run a tuning study with a front end (--frontend cli [--script FILE])\n"
            "  export DIR     pack a study archive into one file (--single-file OUT.h5)\n"
            "  sweep CONFIG   random search (--random N) or a grid (--grid k=v1,v2) into an archive\n"
            "  repeat CONFIG  one configuration with K seeds (--seeds K): the variance of a seed\n"
            "  run-job JOB    run one job file in this process, printing its events (for executors)\n"
            "  devices        list the CPU and the GPUs a run can use\n"
            "  version        print the version\n\n"
            "'tunebench COMMAND --help' describes a command; configurations are in configs/.\n"
            "exit codes: 0 success, 1 the run failed, 2 bad usage or configuration, 3 training diverged,\n"
            "4 training interrupted (Ctrl-C or time limit)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TB_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "plugins")) return tb_cli_plugins(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "study")) return tb_cli_study(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return tb_cli_export(argc - 2, argv + 2);
    if (!strcmp(cmd, "sweep")) return tb_cli_sweep(argc - 2, argv + 2);
    if (!strcmp(cmd, "repeat")) return tb_cli_repeat(argc - 2, argv + 2);
    if (!strcmp(cmd, "run-job")) return tb_cli_run_job(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tunebench %s (%s)\n", TB_VERSION, TB_GIT_COMMIT);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tunebench: unknown command '%s'\n", cmd);
    usage(stderr);
    return TB_EXIT_USAGE;
}
