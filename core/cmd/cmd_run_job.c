/* cmd_run_job.c: `tunebench run-job JOB.ini`: one job in this process, its
 * events printed as lines (run/job.h) for a process or cluster executor. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "run/job.h"

static void run_job_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench run-job JOB.ini [--threads N] [--run PATH] [--device DEV] [--gpu-memory MIB]\n"
            "                         [--task-cache DIR]\n"
            "Runs one job in this process: JOB.ini is a complete run configuration (as a study or a\n"
            "sweep makes them; its output.run says where the run file goes). Prints one line per event\n"
            "on stdout, flushed at once, for an executor (e.g. Slurm) to read back:\n"
            "  event started threads=N\n"
            "  event batch epoch=E batch=B/N step=S loss=L elapsed=T\n"
            "  event epoch epoch=E loss=L val_loss=V val_accuracy=A seconds=T step=S batches=N ...\n"
            "  event finished status=STATUS val_accuracy=A test_accuracy=A message=TEXT\n"
            "Numbers read back exactly; NaN is 'nan'. SIGINT, SIGTERM or SIGHUP stops the job before its next\n"
            "batch (status interrupted; the run file is still written).\n\n"
            "  --threads N       CPU threads (default: train.threads of the job, else all cores)\n"
            "  --run PATH        the run file (replaces output.run; the job file stays the archived record)\n"
            "  --device DEV      a GPU slot's device, e.g. cuda:1 (replaces train.device when that names a GPU)\n"
            "  --gpu-memory MIB  a GPU slot's memory budget (caps train.gpu_memory_mib)\n"
            "  --task-cache DIR  the task cache shared by the runs of a study or sweep: prepared task data\n"
            "                    are read from DIR, or prepared and written there (off: none, the default)\n\n"
            "Exit codes: 0 finished; 1 failed (the job file cannot be read, or the run stopped on an\n"
            "error of its own: status interrupted without a signal); 2 rejected (bad configuration or\n"
            "data); 3 diverged; 4 cancelled (time limit) or interrupted by a signal.\n");
}

static void print_line(const char *line)
{
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void rj_started(void *user, tb_job *job)
{
    char line[1024];
    tb_job_started_format(line, sizeof line, job->threads);
    print_line(line);
}

static int rj_event(void *user, tb_job *job, const tb_train_event *ev)
{
    char line[1024];
    tb_job_event_format(line, sizeof line, ev);
    print_line(line);
    return 0;
}

static void rj_finished(void *user, tb_job *job, tb_run_status status, double val, double test, const char *msg)
{
    char line[1024];
    tb_job_finished_format(line, sizeof line, status, val, test, msg);
    print_line(line);
}

/* SIGINT, SIGTERM or SIGHUP (the shared setup, cmd_common.c): the job is
 * cancelled with a message naming the signal, from the setup's own thread. */
static void cancel_job(void *user, int sig)
{
    char msg[64];
    snprintf(msg, sizeof msg, "interrupted by %s", tb_cmd_signal_name(sig));
    tb_job_cancel(user, msg, 1);
}

int tb_cmd_run_job(int argc, char **argv)
{
    const char *path = NULL, *run_path = NULL, *device = NULL;
    long long threads = 0, gpu_memory = 0;
    const char *task_cache = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_job_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--threads")) {
            if (!(v = tb_cmd_need_value("run-job", argc, argv, &i)) ||
                tb_cmd_parse_int("run-job", a, v, 0, 1024, &threads))
                return TB_EXIT_USAGE;
        } else if (!strcmp(a, "--run") || !strcmp(a, "--device")) {
            if (!(v = tb_cmd_need_value("run-job", argc, argv, &i))) return TB_EXIT_USAGE;
            if (a[2] == 'r') run_path = v;
            else device = v;
        } else if (!strcmp(a, "--gpu-memory")) {
            if (!(v = tb_cmd_need_value("run-job", argc, argv, &i)) ||
                tb_cmd_parse_int("run-job", a, v, 0, 16 << 20, &gpu_memory))
                return TB_EXIT_USAGE;
        } else if (!strcmp(a, "--task-cache")) {
            if (!(v = tb_cmd_need_value("run-job", argc, argv, &i))) return TB_EXIT_USAGE;
            if (strlen(v) >= TB_JOB_PATH_MAX) {
                fprintf(stderr, "tunebench run-job: --task-cache = \"%.60s...\" is longer than %d characters; "
                        "allowed: a folder path, or off\n", v, TB_JOB_PATH_MAX - 1);
                return TB_EXIT_USAGE;
            }
            task_cache = strcmp(v, "off") == 0 ? NULL : v;
        } else if (a[0] == '-') {
            fprintf(stderr, "tunebench run-job: unknown option '%s' (see --help)\n", a);
            return TB_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "tunebench run-job: one job file only ('%s' and '%s')\n", path, a);
            return TB_EXIT_USAGE;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "tunebench run-job: no job file given (see --help)\n");
        return TB_EXIT_USAGE;
    }
    /* the job file is a configuration like any other: a file that cannot be
     * read fails (1), one that is not valid INI is rejected (2) with a finished line */
    tb_err err;
    tb_config *cfg = NULL;
    tb_status lst = tb_config_load(&cfg, path, &err);
    char *ini = lst == TB_OK ? tb_config_to_ini(cfg) : NULL;
    tb_config_free(cfg);
    if (lst == TB_OK && !ini) lst = tb_fail(&err, TB_ENOMEM, "out of memory");
    if (lst != TB_OK) {
        fprintf(stderr, "tunebench run-job: %s\n", err.msg);
        if (lst != TB_EINVAL && lst != TB_EFORMAT) return TB_EXIT_FAILED;
        rj_finished(NULL, NULL, TB_RUN_REJECTED, NAN, NAN, err.msg);
        return TB_EXIT_USAGE;
    }
    /* the job's id: the file's name without directory and extension */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char id[TB_ARCHIVE_ID_MAX + 1];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(base, "."), base);
    tb_job_callbacks cb = {.started = rj_started, .event = rj_event, .finished = rj_finished};
    tb_job *job = tb_job_new(id, ini, 0, &cb);
    free(ini);
    if (!job) {
        fprintf(stderr, "tunebench run-job: out of memory\n");
        return TB_EXIT_FAILED;
    }
    if ((run_path && strlen(run_path) >= sizeof job->run_path) || (device && strlen(device) >= sizeof job->device)) {
        fprintf(stderr, "tunebench run-job: %s '%s' is too long\n", run_path && strlen(run_path) >= sizeof job->run_path
                ? "--run" : "--device", run_path && strlen(run_path) >= sizeof job->run_path ? run_path : device);
        tb_job_free(job);
        return TB_EXIT_USAGE;
    }
    if (run_path) tb_copy_str(job->run_path, sizeof job->run_path, run_path);
    if (device) tb_copy_str(job->device, sizeof job->device, device);
    job->gpu_memory_mib = (int)gpu_memory;
    if (task_cache) tb_copy_str(job->cache_dir, sizeof job->cache_dir, task_cache);
    setvbuf(stdout, NULL, _IOLBF, 0);

    tb_cmd_signals sig;
    tb_cmd_signals_catch(&sig, &(tb_cmd_signal_opts){.act = cancel_job, .user = job});
    tb_run_status st = tb_job_execute(job, (int)threads);
    int by_signal = atomic_load(&job->interrupted);
    tb_cmd_signals_restore(&sig);
    /* one arriving now must not kill the process before it reports the
     * job's end in its exit code */
    signal(SIGINT, SIG_IGN), signal(SIGTERM, SIG_IGN), signal(SIGHUP, SIG_IGN);
    tb_job_free(job);
    switch (st) {
    case TB_RUN_FINISHED: return TB_EXIT_OK;
    case TB_RUN_DIVERGED: return TB_EXIT_DIVERGED;
    case TB_RUN_CANCELLED: return TB_EXIT_INTERRUPTED;
    case TB_RUN_INTERRUPTED: return by_signal ? TB_EXIT_INTERRUPTED : TB_EXIT_FAILED; /* memory, I/O */
    case TB_RUN_REJECTED: return TB_EXIT_USAGE;
    default: return TB_EXIT_FAILED;
    }
}

