/* exec_child.c: what the process and Slurm executors share: finding the
 * tunebench executable, a job's run-job command line and job file, and
 * turning run-job's event lines back into the job's callbacks (see
 * exec_internal.h). */
#define _GNU_SOURCE /* pipe2, sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec_internal.h"

tb_status tb_exec_find_program(const char *given, char *out, size_t cap, tb_err *err)
{
    const char *env = getenv("TUNEBENCH_EXE");
    const char *from = given && *given ? "the executor's program" : env && *env ? "TUNEBENCH_EXE" : NULL;
    const char *path = given && *given ? given : env && *env ? env : NULL;
    char self[4096];
    if (!path) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            const char *base = strrchr(self, '/');
            base = base ? base + 1 : self;
            if (strncmp(base, "tunebench", 9) == 0) path = self, from = "this executable";
        }
    }
    if (!path)
        return tb_fail(err, TB_EINVAL, "the process executor runs each job as `tunebench run-job`, but this program "
                       "is not tunebench and TUNEBENCH_EXE is not set: set TUNEBENCH_EXE to the tunebench "
                       "executable, or use the threads executor");
    if (access(path, X_OK) != 0)
        return tb_fail(err, TB_EINVAL, "%s %s is not an executable file: %s", from, path, strerror(errno));
    if (strlen(path) >= cap) return tb_fail(err, TB_EINVAL, "%s %s: path too long", from, path);
    tb_copy_str(out, cap, path);
    return TB_OK;
}

/* Appends s to buf at *used and its address to argv; -1 when full. */
static int push_arg(char *buf, size_t cap, size_t *used, char **argv, int *argc, int max_args, const char *s)
{
    size_t n = strlen(s) + 1;
    if (*argc + 1 >= max_args || *used + n > cap) return -1;
    memcpy(buf + *used, s, n);
    argv[(*argc)++] = buf + *used;
    argv[*argc] = NULL;
    *used += n;
    return 0;
}

int tb_exec_job_argv(const char *program, const char *job_file, const tb_job *job, int threads,
                     const char *task_cache, char *buf, size_t cap, char **argv, int max_args)
{
    size_t used = 0;
    int argc = 0;
    char num[32];
    if (max_args < 1) return -1;
    argv[0] = NULL;
    int bad = push_arg(buf, cap, &used, argv, &argc, max_args, program) ||
              push_arg(buf, cap, &used, argv, &argc, max_args, "run-job") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, job_file);
    if (!bad && job->run_path[0])
        bad = push_arg(buf, cap, &used, argv, &argc, max_args, "--run") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, job->run_path);
    if (!bad && threads > 0) {
        snprintf(num, sizeof num, "%d", threads);
        bad = push_arg(buf, cap, &used, argv, &argc, max_args, "--threads") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, num);
    }
    if (!bad && job->device[0])
        bad = push_arg(buf, cap, &used, argv, &argc, max_args, "--device") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, job->device);
    if (!bad && job->gpu_memory_mib > 0) {
        snprintf(num, sizeof num, "%d", job->gpu_memory_mib);
        bad = push_arg(buf, cap, &used, argv, &argc, max_args, "--gpu-memory") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, num);
    }
    /* the job's own cache (a study's or sweep's) before the executor's */
    if (job->cache_dir[0]) task_cache = job->cache_dir;
    if (!bad && task_cache && *task_cache)
        bad = push_arg(buf, cap, &used, argv, &argc, max_args, "--task-cache") ||
              push_arg(buf, cap, &used, argv, &argc, max_args, task_cache);
    return bad ? -1 : 0;
}

tb_status tb_exec_write_job_file(const char *spool, const tb_job *job, int durable, char *path, size_t cap,
                                 tb_err *err)
{
    char tmp[4096];
    if (snprintf(path, cap, "%s/%s.job.ini", spool, job->id) >= (int)cap ||
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return tb_fail(err, TB_EINVAL, "spool %s: the job file's path is too long", spool);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return tb_fail(err, TB_EIO, "cannot write the job file %s: %s", tmp, strerror(errno));
    const char *p = job->config_ini;
    size_t left = strlen(p);
    int e = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = w < 0 ? errno : ENOSPC;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    /* on a shared file system the node reads it: it must be whole before the job is submitted */
    if (!e && durable && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "cannot write the job file %s: %s", path, strerror(e));
    }
    return TB_OK;
}

void tb_exec_reader_init(tb_exec_reader *r, tb_job *job)
{
    memset(r, 0, sizeof *r);
    r->job = job;
    r->val_accuracy = r->test_accuracy = NAN;
}

static void reader_line(tb_exec_reader *r, const char *line)
{
    tb_job_line l;
    if (tb_job_line_parse(line, &l) != 0 || r->finished) return; /* not an event line (a plugin's print) */
    tb_job *job = r->job;
    switch (l.kind) {
    case TB_JOB_LINE_STARTED:
        if (r->started) return;
        r->started = 1;
        job->threads = l.threads;
        job->started_s = tb_now();
        if (job->cb.started && !job->skip_started) job->cb.started(job->cb.user, job);
        return;
    case TB_JOB_LINE_BATCH:
    case TB_JOB_LINE_EPOCH:
        /* an adopted job: the lines its owner recorded before the crash are read again; skip them */
        if (l.kind == TB_JOB_LINE_EPOCH ? l.ev.epoch <= job->skip_epochs : l.ev.step <= job->skip_steps) return;
        if (job->cb.event && job->cb.event(job->cb.user, job, &l.ev) != 0 && !r->cancel_asked) {
            char msg[96];
            snprintf(msg, sizeof msg, "cancelled by the job's owner at epoch %d", l.ev.epoch);
            tb_job_cancel(job, msg, 0);
            r->cancel_asked = 1;
        }
        return;
    case TB_JOB_LINE_FINISHED:
        r->finished = 1;
        r->status = l.status;
        r->val_accuracy = l.val_accuracy;
        r->test_accuracy = l.test_accuracy;
        tb_copy_str(r->message, sizeof r->message, l.message);
        return;
    }
}

void tb_exec_reader_feed(tb_exec_reader *r, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = data[i];
        if (c == '\n') {
            r->partial[r->n_partial] = '\0';
            reader_line(r, r->partial);
            r->n_partial = 0;
        } else if (r->n_partial + 1 < sizeof r->partial) {
            r->partial[r->n_partial++] = c;
        } /* a longer line is not an event line: its excess is dropped, and the parse fails */
    }
}

void tb_exec_log_tail(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char buf[4096];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    char *last = strrchr(buf, '\n');
    tb_copy_str(out, cap, last ? last + 1 : buf);
}

static void copy_cancel(tb_job *job, char *out, size_t cap, const char *fallback)
{
    /* the cancel message is set once, before the flag, and never changed after */
    tb_copy_str(out, cap, job->cancel_message[0] ? job->cancel_message : fallback);
}

tb_run_status tb_exec_finish(tb_exec_reader *r, int we_stopped_it, const char *death)
{
    tb_job *job = r->job;
    tb_run_status status;
    char msg[sizeof r->message + 256];
    double val = r->val_accuracy, test = r->test_accuracy;
    int cancelled = atomic_load(&job->cancel);
    if (cancelled && we_stopped_it && (!r->finished || r->status == TB_RUN_INTERRUPTED ||
                                       r->status == TB_RUN_CANCELLED)) {
        /* stopped on the owner's word: ends as tb_job_execute ends a cancelled job, with the owner's message */
        status = atomic_load(&job->interrupted) ? TB_RUN_INTERRUPTED : TB_RUN_CANCELLED;
        copy_cancel(job, msg, sizeof msg, status == TB_RUN_INTERRUPTED ? "interrupted" : "cancelled");
    } else if (death && *death && (!r->finished || r->status == TB_RUN_INTERRUPTED)) {
        /* died, or stopped by something outside the run (a signal, the cluster): not the run's fault */
        status = TB_RUN_INTERRUPTED;
        tb_copy_str(msg, sizeof msg, death);
    } else if (r->finished) {
        status = r->status;
        tb_copy_str(msg, sizeof msg, r->message);
    } else {
        status = TB_RUN_INTERRUPTED;
        tb_copy_str(msg, sizeof msg, "the run's process ended without reporting the run's end");
    }
    if (!r->started && status == TB_RUN_INTERRUPTED && !isfinite(val)) val = NAN;
    job->ended_s = tb_now();
    if (job->cb.finished) job->cb.finished(job->cb.user, job, status, val, test, msg);
    return status;
}
