/* cmd_sweep.c: `tunebench sweep`, `repeat` and `train --folds` (see cmd.h;
 * the library side is study/sweep.c and exec/executor.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exec/executor.h"
#include "study/hparam_space.h"
#include "study/sweep.h"

/* ---- argument helpers -------------------------------------------------------------------- */

/* "tunebench CMD arg ..." for the record (malloc'd). */
static char *join_command(const char *cmd, int argc, char **argv)
{
    size_t n = strlen("tunebench ") + strlen(cmd) + 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    int k = snprintf(s, n, "tunebench %s", cmd);
    for (int i = 0; i < argc; i++) {
        int quote = strchr(argv[i], ' ') != NULL;
        k += snprintf(s + k, n - (size_t)k, quote ? " '%s'" : " %s", argv[i]);
    }
    return s;
}

/* ---- sweeps: options --------------------------------------------------------------------- */

typedef struct sweep_args {
    const char *cmd;        /* "sweep", "repeat" or "train" */
    const char *config, *archive, *plugin_path, *executor, *task_cache;
    char **sets, **grids;
    int n_sets, n_grids;
    long long random, folds, slots, threads, seeds, first_seed, search_seed;
    long long gpus, runs_per_gpu, gpu_memory_mib;
    int quiet, slots_given;
} sweep_args;

static void sweep_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench sweep CONFIG (--random N | --grid section.key=v1,v2,... ...) [options]\n"
            "Runs many configurations derived from CONFIG through the local executor and records them\n"
            "in an archive (kind \"sweep\"), with a results table ARCHIVE/sweeps/<id>.h5 (docs/sweeps.md).\n\n"
            "  --random N         N configurations drawn from the configuration's space ([space] and the\n"
            "                     [train] presets; distributions in core/study/hparam_space.h, e.g. lr log-uniform)\n"
            "  --search-seed S    the random search's seed (default 0): the same seed draws the same values\n"
            "  --grid k=v1,v2     one axis of a full grid over any configuration key (repeatable), e.g.\n"
            "                     --grid train.optimizer=adam,sgd --grid train.lr=1e-2,1e-3 --grid model.freeze=none,base\n"
            "                     every point is checked before anything runs; bad keys and values are named\n"
            "  --folds K          k-fold cross-validation of every configuration (task.folds = K, task.fold = 0..K-1);\n"
            "                     reports the mean and standard error of each metric per configuration\n"
            "  --archive DIR      the archive (default: [study] archive of the configuration)\n"
            "  --slots S          runs at once (default 1)\n"
            "  --executor E       where runs train: process (default: each in its own process), threads (in\n"
            "                     this process) or slurm (a Slurm job each, from the [slurm] section; docs/cluster.md)\n"
            "  --threads T        CPU threads per run (default: the cores divided by the slots)\n"
            "  --gpus G           run on GPUs 0..G-1 (runs whose train.device names a GPU): G x R slots\n"
            "  --runs-per-gpu R   runs sharing each GPU (default 1; several small models fit one GPU)\n"
            "  --gpu-memory MIB   each GPU run's memory budget (default: none); a run over it ends\n"
            "                     out-of-memory and the others go on\n"
            "  --task-cache DIR   where the runs share the task's prepared data (decoded, resized, split),\n"
            "                     prepared by the first run and read by the others; off: each run prepares\n"
            "                     its own (default: [study] task_cache, else ARCHIVE/cache)\n"
            "  --set k=v          override a configuration value (repeatable)\n"
            "  --plugin-path P    a plugin file or directory searched first\n"
            "  --quiet            no line per run, only the summary\n"
            "Prints a line per run as it ends, then the runs sorted by accuracy, the mean ± sd over the\n"
            "finished runs and a histogram in 10%% bins. Ctrl-C cancels the runs not yet ended (they are\n"
            "recorded as interrupted) and exits; a second Ctrl-C quits at once.\n"
            "Exit codes: 0 done (whatever the runs' statuses); 1 failed (archive, I/O); 2 bad usage or\n"
            "configuration; 4 interrupted.\n");
}

static void repeat_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench repeat CONFIG --seeds K [--first-seed S] [options]\n"
            "Trains one configuration K times with train.seed = S, S+1, ..., S+K-1 (default S 0): the\n"
            "variance a seed alone causes. The initialisation follows train.seed unless the configuration\n"
            "sets train.init_seed, which then stays fixed (only shuffling and dropout change).\n"
            "Reports the mean ± sd of the validation and test accuracy.\n\n"
            "  --folds K, --archive DIR, --slots S, --executor E, --threads T, --gpus G, --runs-per-gpu R,\n"
            "  --gpu-memory MIB, --task-cache DIR, --set k=v, --plugin-path P, --quiet:\n"
            "                     as for tunebench sweep (see tunebench sweep --help)\n"
            "Exit codes: as tunebench sweep.\n");
}

static void train_folds_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench train CONFIG --folds K [--archive DIR] [--slots S] [--threads T] [--set k=v]...\n"
            "k-fold cross-validation: trains K runs, run i validating on fold i of train + validation\n"
            "(task.folds = K, task.fold = i) through the local executor, records them in an archive\n"
            "(kind \"sweep\", results in ARCHIVE/sweeps/<id>.h5) and reports the mean and standard error\n"
            "(sd / sqrt(K)) of the validation accuracy, validation loss and test accuracy.\n"
            "Options as tunebench sweep (see tunebench sweep --help); --out does not apply.\n");
}

/* Returns 0, 1 when --help was printed, or -1 after a message. */
static int parse_sweep_args(int argc, char **argv, sweep_args *a, void (*usage)(FILE *))
{
    const char *cmd = a->cmd;
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    a->grids = calloc((size_t)argc + 1, sizeof *a->grids);
    if (!a->sets || !a->grids) return -1;
    a->slots = 1;
    a->runs_per_gpu = 1;
    a->first_seed = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        const int common = tb_cmd_common_arg(cmd, arg, &a->quiet, &a->config, usage);
        if (common != 2) {
            if (common) return common;
            continue;
        }
        static const char *const sweep_only[] = {"--random", "--grid", "--search-seed"};
        static const char *const repeat_only[] = {"--seeds", "--first-seed"};
        int allowed = 1;
        for (size_t k = 0; k < TB_ARRAY_LEN(sweep_only); k++)
            if (!strcmp(arg, sweep_only[k]) && strcmp(cmd, "sweep")) allowed = 0;
        for (size_t k = 0; k < TB_ARRAY_LEN(repeat_only); k++)
            if (!strcmp(arg, repeat_only[k]) && strcmp(cmd, "repeat")) allowed = 0;
        static const char *const known[] = {"--random", "--grid",  "--search-seed", "--seeds",       "--first-seed",
                                            "--folds",  "--archive", "--slots",     "--threads",     "--set",
                                            "--plugin-path", "--gpus", "--runs-per-gpu", "--gpu-memory",
                                            "--executor", "--task-cache"};
        int is_known = 0;
        for (size_t k = 0; k < TB_ARRAY_LEN(known); k++) is_known |= !strcmp(arg, known[k]);
        if (!is_known || !allowed) {
            if (!strcmp(cmd, "train") && !strcmp(arg, "--out"))
                fprintf(stderr, "tunebench train: --out does not apply with --folds: each fold's run file goes to "
                                "the archive\n");
            else
                fprintf(stderr, "tunebench %s: unknown option '%s' (see tunebench %s --help)\n", cmd, arg, cmd);
            return -1;
        }
        if (!(v = tb_cmd_need_value(cmd, argc, argv, &i))) return -1;
        int rc = 0;
        if (!strcmp(arg, "--random")) rc = tb_cmd_parse_int(cmd, arg, v, 1, TB_SWEEP_MAX_RUNS, &a->random);
        else if (!strcmp(arg, "--grid")) a->grids[a->n_grids++] = (char *)v;
        else if (!strcmp(arg, "--search-seed")) rc = tb_cmd_parse_int(cmd, arg, v, 0, INT64_MAX, &a->search_seed);
        else if (!strcmp(arg, "--seeds")) rc = tb_cmd_parse_int(cmd, arg, v, 1, TB_SWEEP_MAX_RUNS, &a->seeds);
        else if (!strcmp(arg, "--first-seed")) rc = tb_cmd_parse_int(cmd, arg, v, 0, INT64_MAX / 2, &a->first_seed);
        else if (!strcmp(arg, "--folds")) rc = tb_cmd_parse_int(cmd, arg, v, 2, 100, &a->folds);
        else if (!strcmp(arg, "--archive")) a->archive = v;
        else if (!strcmp(arg, "--slots")) {
            rc = tb_cmd_parse_int(cmd, arg, v, 1, 1024, &a->slots);
            a->slots_given = 1;
        } else if (!strcmp(arg, "--gpus")) rc = tb_cmd_parse_int(cmd, arg, v, 1, 64, &a->gpus);
        else if (!strcmp(arg, "--runs-per-gpu")) rc = tb_cmd_parse_int(cmd, arg, v, 1, 64, &a->runs_per_gpu);
        else if (!strcmp(arg, "--gpu-memory")) rc = tb_cmd_parse_int(cmd, arg, v, 0, 16 << 20, &a->gpu_memory_mib);
        else if (!strcmp(arg, "--threads")) rc = tb_cmd_parse_int(cmd, arg, v, 0, 1024, &a->threads);
        else if (!strcmp(arg, "--set")) a->sets[a->n_sets++] = (char *)v;
        else if (!strcmp(arg, "--executor")) {
            if (tb_executor_kind_parse(v) < 0) {
                fprintf(stderr, "tunebench %s: --executor '%s' is not one of %s\n", cmd, v, tb_executor_kind_choices());
                return -1;
            }
            a->executor = v;
        }
        else if (!strcmp(arg, "--task-cache")) a->task_cache = v;
        else a->plugin_path = v;
        if (rc) return -1;
    }
    if (!a->config) {
        fprintf(stderr, "tunebench %s: no configuration file given (see tunebench %s --help)\n", cmd, cmd);
        return -1;
    }
    if (!strcmp(cmd, "sweep")) {
        if (!a->random == !a->n_grids) {
            fprintf(stderr, "tunebench sweep: give either --random N or --grid section.key=v1,v2,... (see --help)\n");
            return -1;
        }
        if (a->n_grids && a->search_seed) {
            fprintf(stderr, "tunebench sweep: --search-seed applies to --random only\n");
            return -1;
        }
    }
    if (!strcmp(cmd, "repeat") && !a->seeds) {
        fprintf(stderr, "tunebench repeat: --seeds K is required (see --help)\n");
        return -1;
    }
    if (!strcmp(cmd, "train") && !a->folds) {
        fprintf(stderr, "tunebench train: --folds K is required here\n");
        return -1;
    }
    if (a->gpus && a->slots_given) {
        fprintf(stderr, "tunebench %s: --slots %lld and --gpus %lld: with GPUs the slots are --gpus x --runs-per-gpu; "
                        "drop --slots\n", cmd, a->slots, a->gpus);
        return -1;
    }
    if (!a->gpus && (a->runs_per_gpu != 1 || a->gpu_memory_mib)) {
        fprintf(stderr, "tunebench %s: --runs-per-gpu and --gpu-memory apply with --gpus G only\n", cmd);
        return -1;
    }
    return 0;
}

/* ---- sweeps: output ---------------------------------------------------------------------------- */

static void pct(char out[16], double v)
{
    if (isnan(v)) snprintf(out, 16, "      -");
    else snprintf(out, 16, "%6.2f%%", 100.0 * v);
}

/* The settings of a run: "lr=0.001 optimizer=adam" (keys without "train."). */
static void run_values(const tb_sweep *sw, const tb_sweep_run *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = '\0';
    /* random search: only what the drawn optimizer reads (the rest keep their presets) */
    const char *optimizer = sw->kind == TB_SWEEP_RANDOM ? r->values[TB_HP_OPTIMIZER] : NULL;
    for (int j = 0; j < sw->n_keys && k < cap; j++) {
        const char *key = sw->keys[j];
        if (optimizer && !tb_hp_used_by((tb_hp)j, optimizer)) continue;
        if (!strncmp(key, "train.", 6)) key += 6;
        int n = snprintf(out + k, cap - k, "%s%s=%s", k ? " " : "", key, r->values[j]);
        if (n < 0) break;
        k += (size_t)n;
    }
}

/* Where a run stands among the others: "config 3 fold 1 seed 7". */
static void run_place(const tb_sweep *sw, const tb_sweep_run *r, char *out, size_t cap)
{
    int k = snprintf(out, cap, "config %d", r->config);
    if (r->fold >= 0 && k < (int)cap) k += snprintf(out + k, cap - (size_t)k, " fold %d", r->fold);
    if (k < (int)cap) snprintf(out + k, cap - (size_t)k, " seed %lld", (long long)r->seed);
}

typedef struct cli_progress {
    int quiet;
} cli_progress;

static void on_run_ended(void *user, const tb_sweep *sw, int index, int ended)
{
    const cli_progress *p = user;
    if (p->quiet) return;
    const tb_sweep_run *r = &sw->runs[index];
    char va[16], ta[16], place[96], values[1024];
    pct(va, r->val_accuracy);
    pct(ta, r->test_accuracy);
    run_place(sw, r, place, sizeof place);
    run_values(sw, r, values, sizeof values);
    int width = snprintf(NULL, 0, "%d", sw->n_runs);
    printf("[%*d/%d] %-8s %-11s val %s  test %s  %7.1f s  %s%s%s\n", width, ended, sw->n_runs,
           r->run_id[0] ? r->run_id : "-", tb_run_status_name(r->status), va, ta, r->seconds, place,
           values[0] ? "  " : "", values);
    if (r->status != TB_RUN_FINISHED && r->message[0]) printf("          %s\n", r->message);
    fflush(stdout);
}

/* The accuracy a run is ranked and summarised by: test, else validation. */
static int use_test(const tb_sweep *sw)
{
    for (int i = 0; i < sw->n_runs; i++)
        if (sw->runs[i].status == TB_RUN_FINISHED && !isnan(sw->runs[i].test_accuracy)) return 1;
    return 0;
}

static double accuracy_of(const tb_sweep_run *r, int test) { return test ? r->test_accuracy : r->val_accuracy; }

static const tb_sweep *sort_sweep;
static int sort_test;

static int by_accuracy(const void *x, const void *y)
{
    const tb_sweep_run *a = &sort_sweep->runs[*(const int *)x], *b = &sort_sweep->runs[*(const int *)y];
    double u = accuracy_of(a, sort_test), v = accuracy_of(b, sort_test);
    if (a->status != TB_RUN_FINISHED) u = NAN;
    if (b->status != TB_RUN_FINISHED) v = NAN;
    if (isnan(u) != isnan(v)) return isnan(u) ? 1 : -1;
    if (!isnan(u) && u != v) return u > v ? -1 : 1;
    return *(const int *)x - *(const int *)y;
}

static void print_report(const tb_sweep *sw)
{
    const int test = use_test(sw);
    const char *metric = test ? "test accuracy" : "validation accuracy";
    int *order = malloc(sizeof *order * (size_t)sw->n_runs);
    if (order) {
        for (int i = 0; i < sw->n_runs; i++) order[i] = i;
        sort_sweep = sw;
        sort_test = test;
        qsort(order, (size_t)sw->n_runs, sizeof *order, by_accuracy);
        printf("\nruns by %s:\n  %4s  %-8s  %-11s  %7s  %7s  %8s  %s\n", metric, "rank", "run", "status", "val",
               "test", "seconds", "configuration");
        for (int i = 0; i < sw->n_runs; i++) {
            const tb_sweep_run *r = &sw->runs[order[i]];
            char va[16], ta[16], place[96], values[1024];
            pct(va, r->val_accuracy);
            pct(ta, r->test_accuracy);
            run_place(sw, r, place, sizeof place);
            run_values(sw, r, values, sizeof values);
            printf("  %4d  %-8s  %-11s  %7s  %7s  %8.1f  %s%s%s\n", i + 1, r->run_id[0] ? r->run_id : "-",
                   tb_run_status_name(r->status), va, ta, r->seconds, place, values[0] ? "  " : "", values);
        }
        free(order);
    }

    tb_sweep_summary s;
    tb_sweep_summarize(sw, -1, &s);
    const tb_sweep_stat *acc = test ? &s.test_accuracy : &s.val_accuracy;
    printf("\n%s: ", metric);
    if (acc->n > 1) printf("%.1f ± %.1f %%", 100 * acc->mean, 100 * acc->sd);
    else if (acc->n == 1) printf("%.1f %%", 100 * acc->mean);
    else printf("-");
    printf(" (mean ± sd over %d finished of %d runs: finished %d, diverged %d, cancelled %d, interrupted %d, "
           "rejected %d)\n",
           acc->n, s.runs, s.finished, s.diverged, s.cancelled, s.interrupted, s.rejected);
    if (sw->kind == TB_SWEEP_RANDOM)
        printf("(for comparison, the paper's Figure 1: 41.8 ± 24.3 %% over 320 random settings on Imagenette)\n");
    if (test && s.val_accuracy.n > 0)
        printf("validation accuracy: %.1f ± %.1f %% (mean ± sd)\n", 100 * s.val_accuracy.mean,
               s.val_accuracy.n > 1 ? 100 * s.val_accuracy.sd : 0.0);

    /* histogram of the finished runs' accuracy in 10% bins */
    int bins[10] = {0}, most = 0;
    for (int i = 0; i < sw->n_runs; i++) {
        const tb_sweep_run *r = &sw->runs[i];
        double v = accuracy_of(r, test);
        if (r->status != TB_RUN_FINISHED || isnan(v)) continue;
        int b = (int)(v * 10);
        if (b > 9) b = 9;
        if (b < 0) b = 0;
        if (++bins[b] > most) most = bins[b];
    }
    if (most > 0) {
        printf("%s histogram (finished runs):\n", metric);
        for (int b = 0; b < 10; b++) {
            int width = most > 50 ? (bins[b] * 50 + most - 1) / most : bins[b];
            char bar[64];
            memset(bar, '#', (size_t)width);
            bar[width] = '\0';
            printf("  %3d-%3d%% | %-50s %d\n", 10 * b, 10 * b + 10, bar, bins[b]);
        }
    }

    /* per configuration over its folds and seeds */
    if (sw->folds > 0 || sw->kind == TB_SWEEP_REPEAT) {
        const int rpc = tb_sweep_runs_per_config(sw);
        const char *over = sw->folds > 0 && sw->seeds > 1 ? "seeds and folds" : sw->folds > 0 ? "folds" : "seeds";
        printf("\nper configuration, over its %s (se: the standard error, sd / sqrt(n)):\n", over);
        for (int c = 0; c < sw->n_configs; c++) {
            tb_sweep_summary cs;
            tb_sweep_summarize(sw, c, &cs);
            const tb_sweep_stat *x[3] = {&cs.val_accuracy, &cs.val_loss, &cs.test_accuracy};
            static const char *const name[3] = {"val accuracy", "val loss", "test accuracy"};
            char values[1024];
            run_values(sw, &sw->runs[c * rpc], values, sizeof values);
            printf("  config %d (%d of %d finished)%s%s\n", c, cs.finished, cs.runs, values[0] ? ": " : "", values);
            for (int m = 0; m < 3; m++) {
                if (x[m]->n == 0) continue;
                const double scale = m == 1 ? 1 : 100;
                const char *unit = m == 1 ? "" : " %";
                if (x[m]->n > 1)
                    printf("    %-14s mean %.4g%s  sd %.4g  se %.4g  (n = %d)\n", name[m], scale * x[m]->mean, unit,
                           scale * x[m]->sd, scale * x[m]->se, x[m]->n);
                else
                    printf("    %-14s %.4g%s  (n = 1)\n", name[m], scale * x[m]->mean, unit);
            }
        }
    }
}

/* ---- sweeps: the common driver --------------------------------------------------------------- */

static int run_sweep(const char *cmd, int argc, char **argv, void (*usage)(FILE *))
{
    sweep_args a;
    memset(&a, 0, sizeof a);
    a.cmd = cmd;
    int code = TB_EXIT_USAGE;
    tb_config *cfg = NULL;
    tb_sweep sw;
    memset(&sw, 0, sizeof sw);
    char *problems = NULL;
    tb_archive *arch = NULL;
    tb_executor *ex = NULL;
    tb_err err = {{0}};
    int pr = parse_sweep_args(argc, argv, &a, usage);
    if (pr != 0) {
        code = pr > 0 ? TB_EXIT_OK : TB_EXIT_USAGE;
        goto out;
    }
    if (!(cfg = tb_cmd_load_config(cmd, a.config, a.n_sets, a.sets, NULL, a.plugin_path))) goto out;
    const char *dir = a.archive ? a.archive : tb_config_get(cfg, "study", "archive");
    if (!dir || !*dir) {
        fprintf(stderr, "tunebench %s: no archive to record the runs in: give --archive DIR (or [study] archive in "
                        "%s)\n", cmd, a.config);
        goto out;
    }

    /* plan and check everything before anything runs */
    tb_status st;
    if (!strcmp(cmd, "sweep") && a.random)
        st = tb_sweep_plan_random(&sw, cfg, (int)a.random, (uint64_t)a.search_seed, (int)a.folds, &problems, &err);
    else if (!strcmp(cmd, "sweep"))
        st = tb_sweep_plan_grid(&sw, cfg, a.n_grids, (const char *const *)a.grids, (int)a.folds, &problems, &err);
    else if (!strcmp(cmd, "repeat"))
        st = tb_sweep_plan_repeat(&sw, cfg, (int)a.seeds, a.first_seed, (int)a.folds, &problems, &err);
    else
        st = tb_sweep_plan_folds(&sw, cfg, (int)a.folds, &problems, &err);
    if (st != TB_OK) {
        if (problems) {
            fprintf(stderr, "tunebench %s: nothing was run; invalid:\n", cmd);
            for (char *line = strtok(problems, "\n"); line; line = strtok(NULL, "\n"))
                fprintf(stderr, "  %s\n", line);
        } else {
            fprintf(stderr, "tunebench %s: %s\n", cmd, err.msg);
        }
        code = st == TB_EINVAL ? TB_EXIT_USAGE : TB_EXIT_FAILED;
        goto out;
    }
    sw.command_line = join_command(cmd, argc, argv);
    /* the task cache the runs share (docs/sweeps.md): --task-cache, else [study] task_cache, else ARCHIVE/cache */
    const char *cache = a.task_cache ? a.task_cache : tb_config_get(cfg, "study", "task_cache");
    int cache_len = cache ? snprintf(sw.task_cache, sizeof sw.task_cache, "%s", strcmp(cache, "off") ? cache : "")
                          : snprintf(sw.task_cache, sizeof sw.task_cache, "%s/cache", dir);
    if (cache_len >= (int)sizeof sw.task_cache || (cache && !*cache)) {
        fprintf(stderr, "tunebench %s: %s = \"%.60s\" is %s; allowed: a folder path (at most %zu characters), or off\n",
                cmd, a.task_cache ? "--task-cache" : cache ? "study.task_cache" : "--archive", cache ? cache : dir,
                cache && !*cache ? "empty" : "too long", sizeof sw.task_cache - 1);
        code = TB_EXIT_USAGE;
        goto out;
    }

    tb_archive_recovery rec;
    if (tb_archive_open(dir, 1, &arch, &rec, &err) != TB_OK) {
        fprintf(stderr, "tunebench %s: %s\n", cmd, err.msg);
        code = TB_EXIT_FAILED;
        goto out;
    }
    if (rec.interrupted)
        fprintf(stderr, "tunebench %s: archive %s: %d run(s) found live from an earlier process were marked "
                        "interrupted\n", cmd, dir, rec.interrupted);
    if (a.gpus > 0) a.slots = a.gpus * a.runs_per_gpu;
    tb_executor_kind kind = a.executor ? (tb_executor_kind)tb_executor_kind_parse(a.executor) : TB_EXECUTOR_PROCESS;
    if (kind == TB_EXECUTOR_THREADS && a.gpus > 0) {
        fprintf(stderr, "tunebench %s: --executor threads with --gpus: GPU runs always run in their own processes "
                        "(a device fault must die with its process); drop --executor threads\n", cmd);
        goto out;
    }
    tb_slurm_settings slurm;
    if (tb_slurm_settings_load(&slurm, cfg, &err) != TB_OK) {
        fprintf(stderr, "tunebench %s: %s\n", cmd, err.msg);
        goto out;
    }
    char spool[2048];
    snprintf(spool, sizeof spool, "%s/spool", dir);
    tb_executor_opts xo = {.kind = kind, .slots = (int)a.slots, .threads_per_run = (int)a.threads,
                           .gpus = (int)a.gpus, .runs_per_gpu = (int)a.runs_per_gpu,
                           .gpu_memory_mib = (int)a.gpu_memory_mib, .spool_dir = spool, .slurm = &slurm};
    if (tb_executor_create(&xo, &ex, &err) != TB_OK) {
        fprintf(stderr, "tunebench %s: %s\n", cmd, err.msg);
        code = TB_EXIT_FAILED;
        goto out;
    }
    if (!a.quiet) {
        char shape[96];
        int k = snprintf(shape, sizeof shape, "%d configuration%s", sw.n_configs, sw.n_configs == 1 ? "" : "s");
        if (sw.kind == TB_SWEEP_REPEAT) k += snprintf(shape + k, sizeof shape - (size_t)k, " x %d seeds", sw.seeds);
        if (sw.folds) snprintf(shape + k, sizeof shape - (size_t)k, " x %d folds", sw.folds);
        printf("tunebench %s: %d run%s (%s), %lld at once (%s executor), archive %s\n", cmd, sw.n_runs,
               sw.n_runs == 1 ? "" : "s", shape, a.slots, ex->ops->name, dir);
        if (sw.kind == TB_SWEEP_RANDOM) printf("search seed %llu\n", (unsigned long long)sw.search_seed);
        fflush(stdout);
    }

    /* SIGINT, SIGTERM and SIGHUP set `interrupted` once; the second one is
     * fatal as usual (the archive recovers from that) */
    static atomic_int interrupted;
    atomic_store(&interrupted, 0);
    tb_cmd_signals sig;
    tb_cmd_signals_catch(&sig, &(tb_cmd_signal_opts){
                                   .flag = &interrupted,
                                   .message = "stopping: cancelling the runs (press Ctrl-C again to quit at once)\n",
                                   .once = 1});
    cli_progress prog = {a.quiet};
    st = tb_sweep_execute(&sw, arch, ex, &interrupted, on_run_ended, &prog, &err);
    /* the executor's threads hold archive runs: stop them before closing it */
    tb_executor_destroy(ex);
    ex = NULL;
    tb_cmd_signals_restore(&sig);
    if (sw.id[0]) {
        print_report(&sw);
        printf("results: %s/sweeps/%s.h5\n", dir, sw.id);
    }
    if (st == TB_OK) code = TB_EXIT_OK;
    else if (st == TB_ECANCELLED) code = TB_EXIT_INTERRUPTED;
    else code = TB_EXIT_FAILED;
    if (st != TB_OK) fprintf(stderr, "tunebench %s: %s\n", cmd, err.msg);
    if (st == TB_OK) {
        /* nobody stopped the sweep, so a run that ended "interrupted" failed on an
         * error of its own (the disk, memory, the archive): its results are missing */
        int lost = 0;
        for (int i = 0; i < sw.n_runs; i++) lost += sw.runs[i].status == TB_RUN_INTERRUPTED;
        if (lost) {
            fprintf(stderr, "tunebench %s: %d of %d runs were interrupted by an error (their messages say why); "
                            "the results are incomplete\n", cmd, lost, sw.n_runs);
            code = TB_EXIT_FAILED;
        }
    }

out:
    tb_executor_destroy(ex);
    if (arch) {
        tb_err e2;
        if (tb_archive_close(arch, &e2) != TB_OK) {
            fprintf(stderr, "tunebench %s: %s\n", cmd, e2.msg);
            if (code == TB_EXIT_OK) code = TB_EXIT_FAILED;
        }
    }
    tb_sweep_free(&sw);
    free(problems);
    tb_config_free(cfg);
    free(a.sets);
    free(a.grids);
    return code;
}

int tb_cmd_sweep(int argc, char **argv) { return run_sweep("sweep", argc, argv, sweep_usage); }

int tb_cmd_repeat(int argc, char **argv) { return run_sweep("repeat", argc, argv, repeat_usage); }

int tb_cmd_train_folds(int argc, char **argv) { return run_sweep("train", argc, argv, train_folds_usage); }
