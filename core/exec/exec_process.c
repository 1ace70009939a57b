/* exec_process.c: the process executor's runner: each job is `tunebench
 * run-job JOB.ini` in a child process, its stdout (event lines) read over a
 * pipe, its stderr kept in SPOOL/<id>.log. A cancel is SIGTERM (run-job stops
 * before its next batch and writes its run file), then SIGKILL if the child
 * has not ended after KILL_AFTER_S. A child that dies without its finished
 * line ends its run interrupted, with how it died and its last log line.
 * If the study dies, its children die at their next event line (SIGPIPE:
 * nobody reads the pipe any more) instead of training for nobody. */
#define _GNU_SOURCE /* pipe2, sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_internal.h"

#define POLL_MS 100
#define KILL_AFTER_S 20.0 /* a child that has not stopped this long after SIGTERM is killed */

extern char **environ;

typedef struct process_ctx {
    char program[4096];
    char spool[4096];
    char task_cache[4096]; /* "" none */
} process_ctx;

/* "killed by SIGKILL (signal 9)" or "exited with status 3" */
static void describe_wait(int wstatus, char *out, size_t cap)
{
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        const char *name = sigabbrev_np(sig);
        snprintf(out, cap, "killed by SIG%s (signal %d)%s", name ? name : "?", sig,
                 sig == SIGKILL ? ", e.g. by the kernel's out-of-memory killer" : "");
    } else {
        snprintf(out, cap, "exited with status %d", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    }
}

/* Starts the child: stdout to out_fd, stderr appended to log_path; its own
 * process group so that a signal for the run reaches what it started too. */
static int spawn_child(char **argv, int out_fd, const char *log_path, pid_t *pid, char *why, size_t cap)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    /* nothing else of the study's: HDF5 opens its files without close-on-exec, and a child that kept the
     * archive's lock or a run file open would outlive a crashed study and keep its restart out */
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    /* the study's own signal handling (SIGINT to stop) must not reach the child by the terminal's group */
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    sigset_t dfl;
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGINT), sigaddset(&dfl, SIGTERM), sigaddset(&dfl, SIGHUP), sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) snprintf(why, cap, "cannot start %s: %s", argv[0], strerror(rc));
    return rc == 0 ? 0 : -1;
}

static tb_run_status process_run(void *vctx, tb_job *job, int threads)
{
    process_ctx *ctx = vctx;
    if (atomic_load(&job->cancel)) return tb_job_end_unstarted(job);
    tb_exec_reader r;
    tb_exec_reader_init(&r, job);
    char job_file[4200], log_path[4200], argbuf[16384], why[1024] = "";
    char *argv[32];
    tb_err err;
    snprintf(log_path, sizeof log_path, "%s/%s.log", ctx->spool, job->id);
    if (tb_exec_write_job_file(ctx->spool, job, 0, job_file, sizeof job_file, &err) != TB_OK)
        return tb_exec_finish(&r, 0, err.msg);
    if (tb_exec_job_argv(ctx->program, job_file, job, threads, ctx->task_cache, argbuf, sizeof argbuf, argv,
                         (int)TB_ARRAY_LEN(argv)) != 0) {
        unlink(job_file);
        return tb_exec_finish(&r, 0, "the run-job command line is too long");
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, sizeof why, "cannot make a pipe for the run's process: %s", strerror(errno));
        unlink(job_file);
        return tb_exec_finish(&r, 0, why);
    }
    pid_t pid;
    if (spawn_child(argv, fds[1], log_path, &pid, why, sizeof why) != 0) {
        close(fds[0]), close(fds[1]);
        unlink(job_file);
        return tb_exec_finish(&r, 0, why);
    }
    close(fds[1]);

    int stopped = 0; /* SIGTERM sent on a cancel */
    double term_at = 0;
    char buf[8192];
    for (;;) {
        if (atomic_load(&job->cancel) && !stopped) {
            kill(-pid, SIGTERM); /* the group: run-job and anything it started */
            stopped = 1;
            term_at = tb_now();
        }
        if (stopped == 1 && tb_now() - term_at > KILL_AFTER_S) {
            kill(-pid, SIGKILL);
            stopped = 2;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int n = poll(&p, 1, POLL_MS);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* EOF: the child (and all that shared its stdout) ended */
        tb_exec_reader_feed(&r, buf, (size_t)got);
    }
    close(fds[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
    unlink(job_file);

    /* how it ended, when that was not its own doing */
    char death[1024] = "";
    int by_signal = WIFSIGNALED(wstatus);
    if (!r.finished || (by_signal && !stopped)) {
        char how[128], tail[512];
        describe_wait(wstatus, how, sizeof how);
        tb_exec_log_tail(log_path, tail, sizeof tail);
        snprintf(death, sizeof death, "the run's process %s%s%s%s", how,
                 r.finished ? "" : " before reporting the run's end", tail[0] ? "; its last words: " : "", tail);
    }
    /* a log with nothing in it tells nothing: do not leave it behind */
    struct stat sb;
    if (stat(log_path, &sb) == 0 && sb.st_size == 0) unlink(log_path);
    return tb_exec_finish(&r, stopped, death);
}

static void process_free(void *ctx) { free(ctx); }

/* Makes dir with its parents; 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

tb_status tb_exec_spool_dir(const char *spool, tb_err *err)
{
    if (!spool || !*spool) return tb_fail(err, TB_EINVAL, "the executor needs a spool directory for its job files");
    if (make_dirs(spool) != 0)
        return tb_fail(err, TB_EIO, "cannot create the spool directory %s: %s", spool, strerror(errno));
    return TB_OK;
}

tb_status tb_executor_process_create(const tb_executor_opts *o, tb_executor **out, tb_err *err)
{
    *out = NULL;
    process_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    tb_status st = tb_exec_find_program(o->program, ctx->program, sizeof ctx->program, err);
    if (st == TB_OK) st = tb_exec_spool_dir(o->spool_dir, err);
    if (st == TB_OK && strlen(o->spool_dir) >= sizeof ctx->spool - 64)
        st = tb_fail(err, TB_EINVAL, "spool directory %s: path too long", o->spool_dir);
    if (st != TB_OK) {
        free(ctx);
        return st;
    }
    tb_copy_str(ctx->spool, sizeof ctx->spool, o->spool_dir);
    if (o->task_cache) tb_copy_str(ctx->task_cache, sizeof ctx->task_cache, o->task_cache);
    tb_job_runner runner = {.name = "process", .run = process_run, .free = process_free, .ctx = ctx};
    return o->gpus > 0 ? tb_executor_create_gpus_with_runner(o->gpus, o->runs_per_gpu, o->gpu_memory_mib,
                                                             o->threads_per_run, &runner, out, err)
                       : tb_executor_create_with_runner(o->slots, o->threads_per_run, &runner, out, err);
}
