/* main.c: the tunebench command line.
 *
 *   tunebench train   train the built-in default (small CNN on Fashion-MNIST, CPU)
 *   tunebench bench   time training steps of a network (img/s, GFLOP/s, memory)
 *
 * Exit codes: 0 success, 1 the run failed (I/O, diverged, ...), 2 bad usage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dataset.h"
#include "train.h"
#include "zoo.h"

#define EXIT_RUN_FAILED 1
#define EXIT_USAGE 2

/* ---- argument helpers: full strtol/strtod checks, errors name the flag ---- */

static int parse_int(const char *flag, const char *text, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "tunebench: %s = '%s' is not an integer in [%ld, %ld]\n", flag, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_u64(const char *flag, const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') {
        fprintf(stderr, "tunebench: %s = '%s' is not an integer in [0, 2^64-1]\n", flag, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "tunebench: %s = '%s' is not a number in [%g, %g]\n", flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns the value following argv[*i] or NULL with a message. */
static const char *need_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "tunebench: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* ---- train ------------------------------------------------------------------- */

typedef struct progress {
    int is_tty;
    int every;
} progress;

static void print_progress(void *user, const tb_train_event *ev)
{
    const progress *p = user;
    if (ev->kind == TB_EVENT_BATCH) {
        if (p->is_tty) {
            double eta = (ev->batches_per_epoch - ev->batch) * ev->epoch_s / ev->batch;
            fprintf(stderr, "\repoch %d  batch %5d/%d  loss %.4f  %6.0f img/s  ETA %4.0f s ", ev->epoch, ev->batch,
                    ev->batches_per_epoch, ev->batch_loss, ev->images_per_s, eta);
        } else if (ev->batch % p->every == 0) {
            printf("epoch %d batch %d/%d loss %.4f img/s %.0f\n", ev->epoch, ev->batch, ev->batches_per_epoch,
                   ev->batch_loss, ev->images_per_s);
        }
    } else if (ev->kind == TB_EVENT_EPOCH) {
        if (p->is_tty) fprintf(stderr, "\r%78s\r", "");
        printf("epoch %d: train loss %.4f, val loss %.4f, val accuracy %.2f%%, %.1f s, %.0f img/s\n", ev->epoch,
               ev->epoch_loss, ev->val_loss, 100.0 * ev->val_accuracy, ev->epoch_s, ev->images_per_s);
        fflush(stdout);
    }
}

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench train [options]\n"
            "Trains the built-in default: a small CNN (conv32-pool-conv64-pool-fc128-fc10) on\n"
            "Fashion-MNIST on the CPU with SGD (lr 0.05, momentum 0.9), batch 64; 55,000 training\n"
            "and 5,000 validation images split from the training set by the seed, then scored on\n"
            "the 10,000 test images.\n\n"
            "  --data DIR        Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --epochs N        epochs (default 2)\n"
            "  --batch-size N    batch size (default 64)\n"
            "  --lr X            learning rate (default 0.05)\n"
            "  --seed N          run seed: initial weights, split, order, dropout (default 1)\n"
            "  --threads N       CPU threads (default: all cores)\n"
            "  --checkpoint F    write the final checkpoint (HDF5) to F\n"
            "  --help            this text\n");
}

static int cmd_train(int argc, char **argv)
{
    const char *data = "/usr/share/datasets/fashion-mnist", *ckpt_path = NULL;
    int epochs = 2, batch = 64, threads = 0;
    double lr = 0.05;
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!(v = need_value(argc, argv, &i))) return EXIT_USAGE;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--checkpoint")) ckpt_path = v;
        else if (!strcmp(a, "--epochs")) { if (parse_int(a, v, 1, 1000, &epochs)) return EXIT_USAGE; }
        else if (!strcmp(a, "--batch-size")) { if (parse_int(a, v, 1, 55000, &batch)) return EXIT_USAGE; }
        else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 0, 1024, &threads)) return EXIT_USAGE; }
        else if (!strcmp(a, "--lr")) { if (parse_double(a, v, 0, 1e6, &lr)) return EXIT_USAGE; }
        else if (!strcmp(a, "--seed")) { if (parse_u64(a, v, &seed)) return EXIT_USAGE; }
        else {
            fprintf(stderr, "tunebench train: unknown option '%s' (see tunebench train --help)\n", a);
            return EXIT_USAGE;
        }
    }

    tb_err err = {{0}};
    tb_dataset full = {0}, test = {0}, train = {0}, val = {0};
    tb_net *net = NULL;
    tb_backend *be = NULL;
    int32_t *perm = NULL;
    int rc = EXIT_RUN_FAILED;
    if (tb_fmnist_load(&full, data, "train", &err) || tb_fmnist_load(&test, data, "test", &err)) goto done;
    /* 5,000 validation images chosen by the seed's split stream */
    const int n_val = 5000;
    perm = malloc(sizeof(int32_t) * full.count);
    if (!perm) goto done;
    tb_rng_permutation(perm, full.count, seed, TB_STREAM_SPLIT, 0);
    if (tb_dataset_subset(&val, &full, perm, n_val, &err) ||
        tb_dataset_subset(&train, &full, perm + n_val, full.count - n_val, &err))
        goto done;

    be = tb_backend_cpu_create(threads);
    net = tb_zoo_small_cnn(1, 28, 28, 10);
    if (!be || !net) {
        tb_fail(&err, TB_ENOMEM, "out of memory");
        goto done;
    }
    if (tb_net_build(net, be, batch, &err)) goto done;
    tb_net_init_params(net, seed);

    tb_train_config cfg = {.epochs = epochs, .batch_size = batch, .loss = TB_LOSS_CROSS_ENTROPY, .seed = seed,
                           .eval_batch_size = 500};
    tb_optim_defaults(&cfg.optim, TB_OPT_SGD);
    cfg.optim.lr = lr;
    cfg.optim.momentum = 0.9;
    printf("tunebench %s (%s): small CNN on Fashion-MNIST, %zu trainable parameters, %s\n", TB_VERSION,
           TB_GIT_COMMIT, tb_net_trainable_count(net), be->name);
    printf("%d training, %d validation, %d test images; %d epochs, batch %d, sgd lr %g momentum 0.9, seed %llu\n",
           train.count, val.count, test.count, epochs, batch, lr, (unsigned long long)seed);
    fflush(stdout);

    progress prog = {.is_tty = isatty(STDERR_FILENO), .every = 200};
    tb_train_hooks hooks = {0};
    tb_train_hooks_add(&hooks, print_progress, &prog);
    tb_train_result res;
    tb_optimizer opt;
    if (tb_optimizer_create(&opt, net, &cfg.optim, &err)) goto done;
    tb_status st = tb_train(net, &opt, &cfg, &train, &val, &hooks, &res, &err);
    if (st != TB_OK) {
        tb_optimizer_destroy(&opt);
        goto done;
    }
    tb_metrics m;
    if (tb_metrics_init(&m, 10) != 0 || tb_evaluate(net, &test, cfg.loss, 500, &m, &err)) {
        tb_optimizer_destroy(&opt);
        goto done;
    }
    printf("test: loss %.4f, accuracy %.2f%%, macro F1 %.4f (%.1f s of training)\n", m.loss, 100.0 * m.accuracy,
           m.macro_f1, res.seconds);
    tb_metrics_free(&m);
    if (ckpt_path) {
        if (tb_checkpoint_save(ckpt_path, net, &opt, &err)) {
            tb_optimizer_destroy(&opt);
            goto done;
        }
        printf("checkpoint written to %s\n", ckpt_path);
    }
    tb_optimizer_destroy(&opt);
    rc = 0;
done:
    if (rc != 0) fprintf(stderr, "tunebench train: %s\n", err.msg[0] ? err.msg : "failed");
    tb_net_free(net);
    if (be) tb_backend_destroy(be);
    tb_dataset_free(&val);
    tb_dataset_free(&train);
    tb_dataset_free(&test);
    tb_dataset_free(&full);
    free(perm);
    return rc;
}

/* ---- bench ------------------------------------------------------------------- */

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench bench [options]\n"
            "Times full training steps (forward, loss, backward, optimizer) on synthetic data.\n\n"
            "  --model NAME      network (%s; default small_cnn)\n"
            "  --input CxHxW     input shape (default 1x28x28)\n"
            "  --classes N       output classes (default 10)\n"
            "  --batch N         batch size (default 64)\n"
            "  --steps N         timed steps (default 100)\n"
            "  --warmup N        untimed steps first (default 5)\n"
            "  --threads N       CPU threads (default: all cores)\n"
            "  --profile         also print each layer's forward/backward time per step\n"
            "                    (synchronises after every layer, so the total is a little slower)\n"
            "  --help            this text\n"
            "Prints one line: model, batch, img/s, GFLOP/s (3x forward FLOPs per image),\n"
            "the network's memory and the process's peak resident memory.\n",
            tb_zoo_names());
}

static int cmd_bench(int argc, char **argv)
{
    const char *model = "small_cnn";
    int c = 1, h = 28, w = 28, classes = 10, batch = 64, steps = 100, warmup = 5, threads = 0, profile = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--profile")) {
            profile = 1;
            continue;
        }
        if (!(v = need_value(argc, argv, &i))) return EXIT_USAGE;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--input")) {
            char tail;
            if (sscanf(v, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 4096 ||
                h > 8192 || w > 8192) {
                fprintf(stderr, "tunebench: --input = '%s' is not CxHxW with positive sizes (e.g. 3x64x64)\n", v);
                return EXIT_USAGE;
            }
        }
        else if (!strcmp(a, "--classes")) { if (parse_int(a, v, 1, 100000, &classes)) return EXIT_USAGE; }
        else if (!strcmp(a, "--batch")) { if (parse_int(a, v, 1, 65536, &batch)) return EXIT_USAGE; }
        else if (!strcmp(a, "--steps")) { if (parse_int(a, v, 1, 1000000, &steps)) return EXIT_USAGE; }
        else if (!strcmp(a, "--warmup")) { if (parse_int(a, v, 0, 1000000, &warmup)) return EXIT_USAGE; }
        else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 0, 1024, &threads)) return EXIT_USAGE; }
        else {
            fprintf(stderr, "tunebench bench: unknown option '%s' (see tunebench bench --help)\n", a);
            return EXIT_USAGE;
        }
    }
    tb_err err = {{0}};
    tb_backend *be = tb_backend_cpu_create(threads);
    tb_net *net = tb_zoo_build(model, c, h, w, classes);
    if (!net) {
        fprintf(stderr, "tunebench bench: --model = '%s' is not one of: %s\n", model, tb_zoo_names());
        tb_backend_destroy(be);
        return EXIT_USAGE;
    }
    int rc = EXIT_RUN_FAILED;
    float *x_host = NULL, *x = NULL;
    int32_t *y = NULL;
    tb_optimizer opt = {0};
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
    double ips = (double)steps * batch / secs;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("tunebench bench: model %s input %dx%dx%d batch %d threads %d: %.1f img/s, %.1f GFLOP/s, "
           "net memory %.1f MiB, peak RSS %.1f MiB\n",
           model, c, h, w, batch, be->threads, ips, ips * 3.0 * tb_net_forward_flops(net) / 1e9,
           tb_net_memory_bytes(net) / 1048576.0, ru.ru_maxrss / 1024.0);
    if (profile) {
        char report[8192];
        tb_net_profile_report(net, steps, report, sizeof report);
        printf("%s", report);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "tunebench bench: %s\n", err.msg);
    if (x) be->ops->free(be, x);
    free(x_host);
    free(y);
    if (opt.state) tb_optimizer_destroy(&opt);
    tb_net_free(net);
    tb_backend_destroy(be);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench COMMAND [options]\n\n"
            "commands:\n"
            "  train     train the built-in default (small CNN on Fashion-MNIST, CPU)\n"
            "  bench     time training steps of a network\n"
            "  version   print the version\n\n"
            "'tunebench COMMAND --help' describes a command.\n"
            "exit codes: 0 success, 1 the run failed, 2 bad usage\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
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
    return EXIT_USAGE;
}
