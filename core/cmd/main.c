/* main.c: the tunebench command line: a table of commands, one file each (cmd_<name>.c).
 *
 *   tunebench train CONFIG    train what a configuration describes; writes one run file
 *   tunebench eval CONFIG     score a checkpoint (or a run file's weights) on a split
 *   tunebench plugins         list the plugins found and their options
 *   tunebench bench           time training steps of a network
 *   tunebench sweep CONFIG    random search or a grid through the executor
 *   tunebench repeat CONFIG   one configuration with several seeds
 *   tunebench run-job JOB     one job in this process, events as lines
 *   tunebench devices         the CPU and the GPUs a run can use
 *   tunebench simulate DIR    a simulated study (scripted participants) into an archive
 *
 * Exit codes: 0 success; 1 the run failed (I/O, missing data, out of memory);
 * 2 bad usage or configuration; 3 training diverged (NaN/Inf); 4 training was
 * interrupted (Ctrl-C or the time limit) -- the run file is written in cases 0, 3, 4. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "store/h5util.h"

/* Every command, once: its name, what follows it, one line for the usage, and its function. */
static const struct command {
    const char *name, *args, *summary;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"train", "CONFIG", "train what a configuration describes; writes one run file", tb_cmd_train},
    {"eval", "CONFIG", "score a checkpoint or a run file's weights on a split", tb_cmd_eval},
    {"plugins", "", "list the plugins found, with their options", tb_cmd_plugins},
    {"bench", "", "time training steps of a network", tb_cmd_bench},
    {"study", "CONFIG", "run a tuning study with a front end (--frontend cli [--script FILE])", tb_cmd_study},
    {"export", "DIR", "an archive as one HDF5 file (--single-file OUT.h5) or CSV tables (--csv DIR)", tb_cmd_export},
    {"analyze", "ARCHIVE", "the paper's analysis of an archive: report.html, figures, tables (--out DIR)",
     tb_cmd_analyze},
    {"simulate", "DIR", "a simulated study (scripted participants, a tiny task) into an archive", tb_cmd_simulate},
    {"sweep", "CONFIG", "random search (--random N) or a grid (--grid k=v1,v2) into an archive", tb_cmd_sweep},
    {"repeat", "CONFIG", "one configuration with K seeds (--seeds K): the variance of a seed", tb_cmd_repeat},
    {"run-job", "JOB", "run one job file in this process, printing its events (for executors)", tb_cmd_run_job},
    {"devices", "", "list the CPU and the GPUs a run can use", tb_cmd_devices},
    {"version", "", "print the version", tb_cmd_version},
};

int tb_cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("tunebench %s (%s)\n", TB_VERSION, TB_GIT_COMMIT);
    return TB_EXIT_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tunebench COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-14s %s\n", name, commands[i].summary);
    }
    fprintf(f, "\n'tunebench COMMAND --help' describes a command; configurations are in configs/.\n"
               "exit codes: 0 success, 1 the run failed, 2 bad usage or configuration, 3 training diverged,\n"
               "4 training interrupted (Ctrl-C or time limit)\n");
}

int main(int argc, char **argv)
{
    tb_h5_process_init(); /* before any HDF5 call: no atexit close of an abandoned file, no HDF5 traces */
    if (argc < 2) {
        usage(stderr);
        return TB_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    if (!strcmp(cmd, "--version")) return tb_cmd_version(0, NULL);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return TB_EXIT_OK;
    }
    fprintf(stderr, "tunebench: unknown command '%s'\n", cmd);
    usage(stderr);
    return TB_EXIT_USAGE;
}
