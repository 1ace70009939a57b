/* exec_slurm.c: the Slurm executor's runner (docs/cluster.md). Each job is a
 * batch job running `tunebench run-job` on a node:
 *   - the study writes SPOOL/<id>.job.ini and SPOOL/<id>.sh (the spool is on
 *     the file system the nodes share) and submits the script with
 *     `sbatch --parsable --no-requeue`, the resources from [slurm];
 *   - the job's stdout, run-job's event lines, goes to SPOOL/<id>.events, which
 *     this thread follows as it grows (a file rather than a socket: it needs
 *     no open port on the study host, survives the study's own crash, and is
 *     read again from the start by a restarted study that adopts the job);
 *   - squeue says how the job stands; once it left the queue, scontrol says
 *     how it ended (JobState, ExitCode), mapped onto the run's end;
 *   - a cancel is scancel (run-job gets SIGTERM, writes its run file and its
 *     finished line).
 * The Slurm commands are run as subprocesses (no shell, with a time limit):
 * their C library changes between releases, their command lines do not. */
#define _GNU_SOURCE /* pipe2, sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec_internal.h"

extern char **environ;

#define FOLLOW_MS 250         /* how often the events file is read */
#define COMMAND_TIMEOUT_S 60  /* a Slurm command that takes longer is given up */

/* ---- settings ---------------------------------------------------------------------------- */

static const char *const slurm_keys[] = {"partition", "account",            "qos",     "gpus_per_run",
                                         "cpus_per_run", "mem_mib",          "time_limit_minutes", "setup",
                                         "program",   "poll_seconds",       "pending_limit_seconds"};

static tb_status copy_setting(const tb_config *cfg, const char *key, char *out, size_t cap, tb_err *err)
{
    const char *v;
    tb_status st = tb_config_string(cfg, "slurm", key, "", &v, err);
    if (st != TB_OK) return st;
    if (strlen(v) >= cap) return tb_fail(err, TB_EINVAL, "slurm.%s is longer than %zu characters", key, cap - 1);
    tb_copy_str(out, cap, v);
    return TB_OK;
}

tb_status tb_slurm_settings_load(tb_slurm_settings *st, const tb_config *cfg, tb_err *err)
{
    memset(st, 0, sizeof *st);
    st->poll_s = 1.0;
    st->pending_limit_s = 30.0;
    if (!cfg || !tb_config_has_section(cfg, "slurm")) return TB_OK;
    tb_status r;
    int64_t x;
    double d;
    if ((r = tb_config_check_section(cfg, "slurm", slurm_keys, (int)TB_ARRAY_LEN(slurm_keys), err))) return r;
    if ((r = copy_setting(cfg, "partition", st->partition, sizeof st->partition, err))) return r;
    if ((r = copy_setting(cfg, "account", st->account, sizeof st->account, err))) return r;
    if ((r = copy_setting(cfg, "qos", st->qos, sizeof st->qos, err))) return r;
    if ((r = copy_setting(cfg, "setup", st->setup, sizeof st->setup, err))) return r;
    if ((r = copy_setting(cfg, "program", st->program, sizeof st->program, err))) return r;
    if ((r = tb_config_int(cfg, "slurm", "gpus_per_run", 0, 0, 64, &x, err))) return r;
    st->gpus_per_run = (int)x;
    if ((r = tb_config_int(cfg, "slurm", "cpus_per_run", 0, 0, 4096, &x, err))) return r;
    st->cpus_per_run = (int)x;
    if ((r = tb_config_int(cfg, "slurm", "mem_mib", 0, 0, (int64_t)1 << 30, &x, err))) return r;
    st->mem_mib = (int)x;
    if ((r = tb_config_int(cfg, "slurm", "time_limit_minutes", 0, 0, 525600, &x, err))) return r;
    st->time_limit_min = (int)x;
    if ((r = tb_config_double(cfg, "slurm", "poll_seconds", 1.0, 0.1, 600, &d, err))) return r;
    st->poll_s = d;
    if ((r = tb_config_double(cfg, "slurm", "pending_limit_seconds", 30.0, 1, 1e7, &d, err))) return r;
    st->pending_limit_s = d;
    for (const char *p = st->partition; *p; p++)
        if (*p == ' ' || *p == '\t')
            return tb_fail(err, TB_EINVAL, "slurm.partition = '%s': one partition name (no blanks)", st->partition);
    return TB_OK;
}

/* ---- running a Slurm command ------------------------------------------------------------- */

/* Runs argv (no shell) with stdout and stderr into out (NUL-terminated,
 * truncated), within COMMAND_TIMEOUT_S. Returns its exit status, or -1 when
 * it could not run or was killed (out says why). */
static int run_command(char *const *argv, char *out, size_t cap)
{
    out[0] = '\0';
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(out, cap, "cannot make a pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1); /* none of the study's files */
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        snprintf(out, cap, "cannot run %s: %s (is Slurm installed on this host? see docs/cluster.md)", argv[0],
                 strerror(rc));
        return -1;
    }
    size_t n = 0;
    double until = tb_now() + COMMAND_TIMEOUT_S;
    int killed = 0;
    for (;;) {
        int left = (int)((until - tb_now()) * 1000);
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int k = poll(&p, 1, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) continue;
        char tmp[4096];
        ssize_t got = read(fds[0], tmp, sizeof tmp);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        for (ssize_t i = 0; i < got && n + 1 < cap; i++) out[n++] = tmp[i];
        out[n] = '\0';
    }
    close(fds[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
    if (killed) {
        snprintf(out, cap, "%s did not answer within %d s", argv[0], COMMAND_TIMEOUT_S);
        return -1;
    }
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* The value of key= in scontrol's one-line output ("" when absent). */
static void field_of(const char *line, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p++) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            p += kl + 1;
            size_t n = strcspn(p, " \n");
            snprintf(out, cap, "%.*s", (int)n, p);
            return;
        }
    }
}

/* ---- the runner --------------------------------------------------------------------------- */

typedef struct slurm_ctx {
    char program[4096];
    char spool[4096];
    char task_cache[4096];
    tb_slurm_settings set;
    int threads_per_run;
} slurm_ctx;

/* Appends s single-quoted for sh to out at *n. */
static void sh_quote(char *out, size_t cap, size_t *n, const char *s)
{
    if (*n + 1 < cap) out[(*n)++] = '\'';
    for (; *s && *n + 5 < cap; s++) {
        if (*s == '\'') {
            memcpy(out + *n, "'\\''", 4);
            *n += 4;
        } else {
            out[(*n)++] = *s;
        }
    }
    if (*n + 1 < cap) out[(*n)++] = '\'';
    out[*n] = '\0';
}

static tb_status write_script(const slurm_ctx *ctx, const char *path, char *const *argv, tb_err *err)
{
    char text[32768];
    size_t n = (size_t)snprintf(text, sizeof text,
                                "#!/bin/sh\n# written by tunebench's Slurm executor (docs/cluster.md); stdout is "
                                "the run's event lines\n%s%s",
                                ctx->set.setup, ctx->set.setup[0] ? "\n" : "");
    if (n < sizeof text - 8) {
        memcpy(text + n, "exec", 4);
        n += 4;
    }
    for (int i = 0; argv[i] && n + 2 < sizeof text; i++) {
        text[n++] = ' ';
        sh_quote(text, sizeof text, &n, argv[i]);
    }
    if (n + 2 >= sizeof text) return tb_fail(err, TB_EINVAL, "the job script %s would be too long", path);
    text[n++] = '\n';
    FILE *f = fopen(path, "w");
    if (!f) return tb_fail(err, TB_EIO, "cannot write the job script %s: %s", path, strerror(errno));
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(path);
        return tb_fail(err, TB_EIO, "cannot write the job script %s: %s", path, strerror(errno ? errno : ENOSPC));
    }
    chmod(path, 0755);
    return TB_OK;
}

/* sbatch; fills job->placement with "slurm:ID". */
static tb_status submit(const slurm_ctx *ctx, tb_job *job, const char *script, const char *events, const char *log,
                        int threads, long *jobid, tb_err *err)
{
    char a[16][4400];
    char *argv[24];
    int n = 0;
    argv[n++] = "sbatch";
    argv[n++] = "--parsable";
    argv[n++] = "--no-requeue"; /* a node failure ends the run (interrupted, credited) instead of running it twice */
#define ARG(...) (snprintf(a[n], sizeof a[n], __VA_ARGS__), argv[n] = a[n], n++)
    ARG("--job-name=tb-%s", job->id);
    ARG("--output=%s", events);
    ARG("--error=%s", log);
    ARG("--cpus-per-task=%d", ctx->set.cpus_per_run > 0 ? ctx->set.cpus_per_run : threads > 0 ? threads : 1);
    if (ctx->set.partition[0]) ARG("--partition=%s", ctx->set.partition);
    if (ctx->set.account[0]) ARG("--account=%s", ctx->set.account);
    if (ctx->set.qos[0]) ARG("--qos=%s", ctx->set.qos);
    if (ctx->set.gpus_per_run > 0) ARG("--gres=gpu:%d", ctx->set.gpus_per_run);
    if (ctx->set.mem_mib > 0) ARG("--mem=%d", ctx->set.mem_mib);
    if (ctx->set.time_limit_min > 0) ARG("--time=%d", ctx->set.time_limit_min);
#undef ARG
    argv[n++] = (char *)script;
    argv[n] = NULL;
    char out[2048];
    int rc = run_command(argv, out, sizeof out);
    char *end;
    long id = strtol(out, &end, 10);
    if (rc != 0 || id <= 0 || (*end && *end != ';'))
        return tb_fail(err, TB_EIO, "sbatch refused the job: %s", out[0] ? out : "no answer");
    *jobid = id;
    snprintf(job->placement, sizeof job->placement, "slurm:%ld", id);
    return TB_OK;
}

/* Reads what the events file gained since *offset into the reader, at most
 * FOLLOW_CHUNKS reads at a time: a job whose lines come faster than they are
 * recorded must not keep the caller from its cancel and state checks.
 * Returns 1 when it stopped with more to read. */
#define FOLLOW_CHUNKS 4
static int follow(tb_exec_reader *r, const char *events, off_t *offset)
{
    int fd = open(events, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[16384];
    int more = 0;
    for (int k = 0;; k++) {
        if (k == FOLLOW_CHUNKS) {
            more = 1;
            break;
        }
        ssize_t got = pread(fd, buf, sizeof buf, *offset);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        *offset += got;
        tb_exec_reader_feed(r, buf, (size_t)got);
    }
    close(fd);
    return more;
}

/* Pending reasons that never clear by waiting (the request exceeds what the
 * partition, account or QOS allow): such a job is given up. */
static int hopeless_reason(const char *reason)
{
    static const char *const never[] = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit",
                                        "BadConstraints",  "InvalidAccount",     "InvalidQOS",
                                        "AccountNotAllowed", "QOSNotAllowed",    "ReqNodeNotAvail, UnavailableNodes"};
    for (size_t i = 0; i < TB_ARRAY_LEN(never); i++)
        if (strcmp(reason, never[i]) == 0) return 1;
    return 0;
}

/* The run's end for a job that left the queue as state (scontrol's JobState), "" when it ended on its own. */
static void death_of(const slurm_ctx *ctx, long id, const char *state, const char *reason, const char *exit_code,
                     int we_cancelled, const char *log, char *out, size_t cap)
{
    char tail[400];
    out[0] = '\0';
    if (!strcmp(state, "COMPLETED")) return;
    if (!strcmp(state, "FAILED")) {
        /* run-job's own failures (a rejected configuration, a divergence) came with their finished line */
        tb_exec_log_tail(log, tail, sizeof tail);
        snprintf(out, cap, "the Slurm job %ld failed (ExitCode %s)%s%s", id, exit_code, tail[0] ? "; its last words: " : "",
                 tail);
    } else if (!strcmp(state, "CANCELLED")) {
        if (!we_cancelled) snprintf(out, cap, "the Slurm job %ld was cancelled on the cluster (not by this study)", id);
    } else if (!strcmp(state, "TIMEOUT")) {
        snprintf(out, cap, "the Slurm job %ld reached its time limit (slurm.time_limit_minutes = %d)", id,
                 ctx->set.time_limit_min);
    } else if (!strcmp(state, "NODE_FAIL")) {
        snprintf(out, cap, "the node running Slurm job %ld failed (NODE_FAIL)", id);
    } else if (!strcmp(state, "PREEMPTED")) {
        snprintf(out, cap, "the Slurm job %ld was preempted", id);
    } else if (!strcmp(state, "OUT_OF_MEMORY")) {
        snprintf(out, cap, "the Slurm job %ld ran out of memory (slurm.mem_mib = %d)", id, ctx->set.mem_mib);
    } else {
        snprintf(out, cap, "the Slurm job %ld ended as %s (reason %s, ExitCode %s)", id, state[0] ? state : "UNKNOWN",
                 reason[0] ? reason : "none", exit_code[0] ? exit_code : "?");
    }
}

static tb_run_status slurm_run(void *vctx, tb_job *job, int threads)
{
    slurm_ctx *ctx = vctx;
    tb_exec_reader r;
    tb_exec_reader_init(&r, job);
    tb_err err;
    char job_file[4096], script[4200], events[4200], log[4200], argbuf[16384], why[1024];
    char *argv[32];
    snprintf(script, sizeof script, "%s/%s.sh", ctx->spool, job->id);
    snprintf(events, sizeof events, "%s/%s.events", ctx->spool, job->id);
    snprintf(log, sizeof log, "%s/%s.log", ctx->spool, job->id);
    long id = 0;
    if (job->placement[0]) { /* adopted: the job was submitted by an earlier process */
        if (sscanf(job->placement, "slurm:%ld", &id) != 1 || id <= 0) {
            snprintf(why, sizeof why, "cannot follow %s: not a Slurm job", job->placement);
            return tb_exec_finish(&r, 0, why);
        }
    } else {
        if (atomic_load(&job->cancel)) return tb_job_end_unstarted(job);
        if (threads <= 0) threads = ctx->threads_per_run;
        if (tb_exec_write_job_file(ctx->spool, job, 1, job_file, sizeof job_file, &err) != TB_OK)
            return tb_exec_finish(&r, 0, err.msg);
        if (tb_exec_job_argv(ctx->program, job_file, job, threads, ctx->task_cache, argbuf, sizeof argbuf, argv,
                             (int)TB_ARRAY_LEN(argv)) != 0)
            return tb_exec_finish(&r, 0, "the run-job command line is too long");
        unlink(events);
        if (write_script(ctx, script, argv, &err) != TB_OK ||
            submit(ctx, job, script, events, log, threads, &id, &err) != TB_OK)
            return tb_exec_finish(&r, 0, err.msg);
        if (job->cb.placed) job->cb.placed(job->cb.user, job);
    }
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%ld", id);
    off_t offset = 0;
    int cancelled = 0, gone = 0;
    double next_poll = 0, pending_since = NAN;
    char state[64] = "", reason[256] = "", exit_code[32] = "", death[1024] = "";
    char out[4096];
    for (;;) {
        int behind = follow(&r, events, &offset);
        if (atomic_load(&job->cancel) && !cancelled) {
            char *sc[] = {"scancel", idtext, NULL};
            run_command(sc, out, sizeof out); /* its answer shows in the job's state */
            cancelled = 1;
        }
        double now = tb_now();
        if (now >= next_poll) {
            next_poll = now + ctx->set.poll_s;
            char *sq[] = {"squeue", "-h", "-j", idtext, "-o", "%T|%r", NULL};
            int rc = run_command(sq, out, sizeof out);
            if (rc == 0 && out[0]) { /* still in the queue: PENDING, RUNNING, CONFIGURING, COMPLETING, ... */
                char *bar = strchr(out, '|');
                if (bar) *bar = '\0';
                tb_copy_str(state, sizeof state, out);
                tb_copy_str(reason, sizeof reason, bar ? bar + 1 : "");
                if (!strcmp(state, "PENDING") && hopeless_reason(reason)) {
                    if (!isfinite(pending_since)) pending_since = now;
                    if (now - pending_since > ctx->set.pending_limit_s && !cancelled) {
                        snprintf(death, sizeof death, "Slurm cannot run job %ld: pending with reason %s (the request "
                                 "exceeds what the partition allows: check [slurm] cpus_per_run, mem_mib, "
                                 "gpus_per_run, time_limit_minutes)", id, reason);
                        char *sc[] = {"scancel", idtext, NULL};
                        run_command(sc, out, sizeof out);
                        cancelled = 2;
                    }
                } else {
                    pending_since = NAN;
                }
            } else if (rc == 0 || (rc > 0 && strstr(out, "Invalid job id"))) {
                gone = 1; /* left the queue */
            } /* else: squeue failed (the controller is busy or down): ask again later */
        }
        if (gone) break;
        struct timespec ts = {0, FOLLOW_MS * 1000000L};
        if (!behind) nanosleep(&ts, NULL);
    }
    /* how it ended; the file system may show the last lines a moment after the job left the queue */
    char *sc[] = {"scontrol", "-o", "show", "job", idtext, NULL};
    if (run_command(sc, out, sizeof out) == 0) {
        field_of(out, "JobState", state, sizeof state);
        field_of(out, "Reason", reason, sizeof reason);
        field_of(out, "ExitCode", exit_code, sizeof exit_code);
    } else {
        tb_copy_str(state, sizeof state, "");
    }
    /* the rest of the file (the job has ended: it does not grow any more, but may show late on a shared file
     * system: a few tries) */
    for (int i = 0; i < 20 && !r.finished;) {
        if (follow(&r, events, &offset)) continue;
        if (r.finished) break;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        i++;
    }
    if (!death[0]) {
        if (state[0]) death_of(ctx, id, state, reason, exit_code, cancelled == 1, log, death, sizeof death);
        else if (!r.finished)
            snprintf(death, sizeof death, "the Slurm job %ld is no longer known to the cluster and left no end", id);
    }
    if (r.finished && !strcmp(state, "FAILED")) death[0] = '\0'; /* run-job said why itself */
    tb_run_status status = tb_exec_finish(&r, cancelled == 1, death);
    unlink(job_file);
    unlink(script);
    unlink(events);
    struct stat sb;
    if (stat(log, &sb) == 0 && sb.st_size == 0) unlink(log);
    return status;
}

static int slurm_can_adopt(void *ctx, const char *where)
{
    (void)ctx;
    return strncmp(where, "slurm:", 6) == 0;
}

static void slurm_free(void *ctx) { free(ctx); }

tb_status tb_executor_slurm_create(const tb_executor_opts *o, tb_executor **out, tb_err *err)
{
    *out = NULL;
    if (o->gpus > 0)
        return tb_fail(err, TB_EINVAL, "study.gpus = %d with the slurm executor: ask for GPUs per run with "
                       "[slurm] gpus_per_run instead (the cluster places them)", o->gpus);
    slurm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return tb_fail(err, TB_ENOMEM, "executor: out of memory");
    if (o->slurm) ctx->set = *o->slurm;
    else tb_slurm_settings_load(&ctx->set, NULL, err);
    ctx->threads_per_run = o->threads_per_run > 0 ? o->threads_per_run : 1;
    tb_status st = tb_exec_find_program(ctx->set.program[0] ? ctx->set.program : o->program, ctx->program,
                                        sizeof ctx->program, err);
    if (st == TB_OK) st = tb_exec_spool_dir(o->spool_dir, err);
    /* the cluster answers, and the partition exists: found now, not at the first submission */
    char text[4096];
    if (st == TB_OK) {
        char *si[] = {"sinfo", "-h", "-o", "%P", NULL};
        if (run_command(si, text, sizeof text) != 0)
            st = tb_fail(err, TB_EINVAL, "the slurm executor cannot reach the cluster: sinfo: %s", text);
    }
    if (st == TB_OK && ctx->set.partition[0]) {
        int found = 0;
        char list[1024] = "";
        size_t k = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            size_t n = strlen(line);
            if (n && line[n - 1] == '*') line[n - 1] = '\0'; /* the default partition */
            if (!strcmp(line, ctx->set.partition)) found = 1;
            if (k < sizeof list) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", line);
        }
        if (!found)
            st = tb_fail(err, TB_EINVAL, "slurm.partition = '%s' is not a partition of this cluster (sinfo lists: %s)",
                         ctx->set.partition, list);
    }
    if (st != TB_OK) {
        free(ctx);
        return st;
    }
    tb_copy_str(ctx->spool, sizeof ctx->spool, o->spool_dir);
    if (o->task_cache) tb_copy_str(ctx->task_cache, sizeof ctx->task_cache, o->task_cache);
    tb_job_runner runner = {.name = "slurm", .run = slurm_run, .can_adopt = slurm_can_adopt, .free = slurm_free,
                            .ctx = ctx};
    return tb_executor_create_with_runner(o->slots, 0, &runner, out, err);
}
