/* cmd_eval.c: `tunebench eval CONFIG --checkpoint FILE`: a checkpoint's (or a
 * run file's) weights scored on a split of the configured task. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "run/run.h"
#include "store/checkpoint.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench eval CONFIG --checkpoint FILE [--split test|val|train] [--set k=v]... [--plugin-path P]\n"
            "                      [--task-cache DIR]\n"
            "Builds the model and loads the task a configuration describes, loads the weights of a\n"
            "checkpoint file or of a run file (its /checkpoint group) and scores them on a split\n"
            "(default test): loss, accuracy, macro precision/recall/F1 and the confusion matrix.\n"
            "--task-cache DIR reads the task's prepared data from a task cache (docs/study.md).\n");
}

int tb_cmd_eval(int argc, char **argv)
{
    tb_cmd_run_args a;
    int pr = tb_cmd_parse_run_args(argc, argv, &a, 1, eval_usage);
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
    tb_config *cfg = tb_cmd_load_config(NULL, a.config, a.n_sets, a.sets, NULL, a.plugin_path);
    free(a.sets);
    if (!cfg) return TB_EXIT_USAGE;
    tb_err err = {{0}};
    tb_run run;
    /* the weights come from --checkpoint, whatever the configuration says */
    tb_status st = tb_config_set(cfg, "model.init_from", "", &err);
    if (st == TB_OK) st = tb_config_set(cfg, "model.freeze", "none", &err);
    /* only what scoring needs: no optimizer (a study's configuration has none) */
    if (st == TB_OK) st = tb_run_configure_scoring(&run, cfg, &err);
    if (st == TB_OK) st = tb_run_set_task_cache(&run, a.task_cache, &err);
    if (st == TB_OK) st = tb_run_prepare(&run, &err);
    if (st == TB_OK) st = tb_checkpoint_load(a.checkpoint, run.net, NULL, &err);
    const tb_dataset *ds = !strcmp(split, "test") ? &run.task.test : !strcmp(split, "val") ? &run.task.val
                                                                                           : &run.task.train;
    if (st == TB_OK && ds->count == 0) st = tb_fail(&err, TB_EINVAL, "the task has no %s samples", split);
    tb_metrics m = {0};
    if (st == TB_OK && tb_metrics_init(&m, tb_net_classes(run.net)) != 0) st = tb_fail(&err, TB_ENOMEM, "out of memory");
    if (st == TB_OK) st = tb_evaluate(run.net, ds, run.train.loss, run.train.batch_size, &m, &err);
    if (st == TB_OK) tb_cmd_print_metrics(split, &m, &run.task.raw);
    else fprintf(stderr, "tunebench eval: %s\n", err.msg);
    if (m.confusion) tb_metrics_free(&m);
    tb_run_free(&run);
    tb_config_free(cfg);
    return tb_cmd_exit_code(st);
}
