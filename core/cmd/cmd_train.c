/* cmd_train.c: `tunebench train CONFIG`: one run from a configuration, with
 * progress on the terminal; the run file is written whatever the outcome.
 * `train --folds K` goes to cmd_sweep.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>

#include "cmd.h"
#include "run/run.h"

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
            printf("epoch %d/%d: train loss %.4f, %.1f s, %.0f img/s, input wait %.1f s\n", ev->epoch, p->epochs,
                   ev->epoch_loss, ev->epoch_s, ev->images_per_s, ev->input_wait_s);
        else
            printf("epoch %d/%d: train loss %.4f, val loss %.4f, val accuracy %.2f%%, %.1f s, %.0f img/s, input wait "
                   "%.1f s\n", ev->epoch, p->epochs, ev->epoch_loss, ev->val_loss, 100.0 * ev->val_accuracy, ev->epoch_s,
                   ev->images_per_s, ev->input_wait_s);
        fflush(stdout);
    } else if (p->is_tty) {
        fprintf(stderr, "\r%100s\r", "");
    }
}

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench train CONFIG [--set section.key=value]... [--out RUN.h5] [--plugin-path P]\n"
            "                       [--task-cache DIR] [--quiet]\n"
            "Trains the model on the task a configuration describes (see configs/), evaluates it on the\n"
            "test split and writes one HDF5 run file (output.run; docs/run-files.md).\n\n"
            "  --set k=v         override a configuration value, e.g. --set train.lr=0.01 (repeatable)\n"
            "  --out RUN.h5      the run file (default: output.run of the configuration); it may replace\n"
            "                    only a run file or checkpoint tunebench wrote, never an input of the run\n"
            "  --force           let --out / output.run and output.checkpoint replace any regular file\n"
            "                    (never a directory, FIFO, socket, device or an input of the run)\n"
            "  --plugin-path P   a plugin file or directory searched before the others\n"
            "  --task-cache DIR  read the task's prepared data from DIR when an earlier run left them\n"
            "                    there, else prepare them and write them there (off: no cache, the default)\n"
            "  --quiet           no progress output\n"
            "  --folds K         k-fold cross-validation through the executor into an archive\n"
            "                    (see tunebench train CONFIG --folds K --help)\n"
            "Ctrl-C, SIGTERM or SIGHUP stops training after the current batch; the run file is still\n"
            "written (status cancelled) and the exit code is 4.\n"
            "Exit codes: 0 finished; 1 failed; 2 bad usage or configuration; 3 diverged; 4 interrupted.\n");
}

int tb_cmd_train(int argc, char **argv)
{
    /* k-fold cross-validation runs K runs through the executor (cmd_sweep.c) */
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--folds")) return tb_cmd_train_folds(argc, argv);
    tb_cmd_run_args a;
    int pr = tb_cmd_parse_run_args(argc, argv, &a, 0, train_usage);
    if (pr != 0) {
        free(a.sets);
        return pr > 0 ? TB_EXIT_OK : TB_EXIT_USAGE;
    }
    tb_config *cfg = tb_cmd_load_config(NULL, a.config, a.n_sets, a.sets, a.out, a.plugin_path);
    free(a.sets);
    if (!cfg) return TB_EXIT_USAGE;
    tb_run run;
    tb_err err = {{0}};
    tb_status st = tb_run_configure(&run, cfg, &err);
    if (st == TB_OK) st = tb_run_set_task_cache(&run, a.task_cache, &err);
    /* where the results go, before any data loads: a bad path costs nothing */
    if (st == TB_OK) st = tb_run_check_outputs(&run, a.out ? "--out" : NULL, a.force, &err);
    if (st == TB_OK) {
        if (!a.quiet) {
            printf("tunebench %s (%s): model %s, task %s\n", TB_VERSION, TB_GIT_COMMIT, run.model_plugin->desc.name,
                   run.task_plugin->desc.name);
            fflush(stdout);
        }
        /* said here, not by the run: a study's runs carry all 15 of the form's values, and the
         * run file notes what was ignored (/train ignored) for every run */
        if (run.ignored[0])
            fprintf(stderr, "tunebench train: warning: optimizer %s does not read %s; %s ignored (noted in the run "
                            "file)\n", tb_optim_name(run.train.optim.kind), run.ignored,
                    strchr(run.ignored, ',') ? "they are" : "it is");
        st = tb_run_prepare(&run, &err);
    }
    if (st != TB_OK) {
        fprintf(stderr, "tunebench train: %s\n", err.msg);
        tb_run_free(&run);
        tb_config_free(cfg);
        return tb_cmd_exit_code(st);
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
    /* Ctrl-C, SIGTERM and SIGHUP: stop after the current batch, write the run file, exit 4 */
    tb_cmd_signals sig;
    tb_cmd_signals_catch(&sig, &(tb_cmd_signal_opts){
                                   .flag = &interrupted,
                                   .message = "stopping after the current batch; the run file is still written\n"});
    st = tb_run_execute(&run, &hooks, &err);
    tb_cmd_signals_restore(&sig);
    int by = tb_cmd_signals_last();
    if (by && st == TB_ECANCELLED) {
        tb_err why = err;
        tb_fail(&err, st, "stopped by %s: %s", tb_cmd_signal_name(by), why.msg);
    }
    int code = tb_cmd_exit_code(st);
    if (st == TB_OK || st == TB_EDIVERGED || st == TB_ECANCELLED || st == TB_ETIMEOUT) {
        if (run.tested && !a.quiet) tb_cmd_print_metrics("test", &run.test, &run.task.raw);
        if (st != TB_OK) fprintf(stderr, "tunebench train: %s: %s\n", tb_status_name(st), err.msg);
        if (!a.quiet) printf("run file: %s\n", run.run_path);
    } else {
        fprintf(stderr, "tunebench train: %s\n", err.msg);
    }
    tb_run_free(&run);
    tb_config_free(cfg);
    return code;
}
