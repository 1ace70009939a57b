/* test_executor.c: jobs run in the calling thread and in the local executor
 * (events in order, priorities, cancel while queued and while running, two
 * slots at once without oversubscribing, shutdown interrupts), the statuses
 * a job ends with (rejected, diverged, cancelled by the time limit), the
 * archive recorder (epochs durable before anyone sees them) and the event
 * lines run-job prints, parsed back. All on a tiny toy task. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "exec/executor.h"
#include "tb_test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char tmpdir[512];
static char task_path[600];

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "executor");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 192, 64, 64, 4, 12, 3);
}

static void teardown(void)
{
    ck_assert(tbt_rm_rf(tmpdir) == 0);
}

static char *toy_ini(const char *name, const char *const *sets) { return tbt_toy_job_ini(task_path, tmpdir, name, sets); }

/* What the callbacks saw of one job. */
typedef struct seen {
    char id[32];
    int started, finished, batches, epochs, order_ok;
    int last_epoch;
    int64_t last_step;
    double last_val;
    double started_at, finished_at;
    tb_run_status status;
    double val, test;
    char message[512];
    int max_tasks;     /* threads of the process seen during an epoch */
    int threads;       /* job->threads when it started */
    int cancel_at_batch; /* > 0: return non-zero from the event callback at this global step */
    const char *block_at_epoch; /* a file made here at the first epoch (the run file's directory then cannot be) */
} seen;

/* Shared by the callbacks of every job of a test. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char start_order[64];
static int n_started;

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void on_started(void *user, tb_job *job)
{
    seen *s = user;
    pthread_mutex_lock(&mu);
    if (s->started || s->finished) s->order_ok = 0;
    s->started++;
    s->started_at = tb_now();
    s->threads = job->threads;
    if (n_started < (int)sizeof start_order - 1) start_order[n_started++] = s->id[0];
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int on_event(void *user, tb_job *job, const tb_train_event *ev)
{
    seen *s = user;
    pthread_mutex_lock(&mu);
    if (!s->started || s->finished) s->order_ok = 0;
    if (ev->kind == TB_EVENT_BATCH) {
        if (ev->step <= s->last_step || ev->epoch != s->last_epoch + 1) s->order_ok = 0;
        s->last_step = ev->step;
        s->batches++;
    } else if (ev->kind == TB_EVENT_EPOCH) {
        if (ev->epoch != s->last_epoch + 1) s->order_ok = 0;
        s->last_epoch = ev->epoch;
        s->last_val = ev->val_accuracy;
        s->epochs++;
        int t = count_tasks();
        if (t > s->max_tasks) s->max_tasks = t;
    } else {
        s->order_ok = 0; /* only batch and epoch events are forwarded */
    }
    if (s->block_at_epoch && ev->kind == TB_EVENT_EPOCH) {
        FILE *b = fopen(s->block_at_epoch, "w");
        if (b) fclose(b);
    }
    int stop = s->cancel_at_batch > 0 && ev->step >= s->cancel_at_batch;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return stop;
}

static void on_finished(void *user, tb_job *job, tb_run_status status, double val, double test, const char *message)
{
    seen *s = user;
    pthread_mutex_lock(&mu);
    s->finished++;
    s->finished_at = tb_now();
    s->status = status;
    s->val = val;
    s->test = test;
    snprintf(s->message, sizeof s->message, "%s", message);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void seen_init(seen *s, const char *id)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->order_ok = 1;
    s->status = TB_RUN_QUEUED;
}

static tb_job *new_job(seen *s, const char *id, const char *ini, int priority)
{
    seen_init(s, id);
    tb_job_callbacks cb = {.user = s, .started = on_started, .event = on_event, .finished = on_finished};
    tb_job *job = tb_job_new(id, ini, priority, &cb);
    ck_assert(job);
    return job;
}

/* Waits until pred(s) holds (mutex held while testing), at most 60 s. */
static void wait_for(seen *s, int (*pred)(const seen *))
{
    double t0 = tb_now();
    pthread_mutex_lock(&mu);
    while (!pred(s)) {
        ck_assert_msg(tb_now() - t0 < 60, "timed out waiting for job %s", s->id);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
}

static int has_batches(const seen *s) { return s->batches > 0; }
static int is_finished(const seen *s) { return s->finished > 0; }

static void submit(tb_executor *ex, tb_job *job)
{
    tb_err err;
    ck_assert_msg(tb_executor_submit(ex, job, &err) == TB_OK, "%s", err.msg);
}

/* ---- tb_job_execute in the calling thread --------------------------------------------- */

START_TEST(test_execute_events_in_order)
{
    char *ini = toy_ini("a", NULL);
    seen s;
    tb_job *job = new_job(&s, "a", ini, 0);
    tb_run_status st = tb_job_execute(job, 1);
    ck_assert_msg(st == TB_RUN_FINISHED, "status %s: %s", tb_run_status_name(st), s.message);
    ck_assert_int_eq(s.started, 1);
    ck_assert_int_eq(s.finished, 1);
    ck_assert_msg(s.order_ok, "events out of order");
    ck_assert_int_eq(s.epochs, 2);
    ck_assert_int_eq(s.batches, 2 * 12); /* 192 samples, batches of 16 */
    ck_assert_int_eq(s.status, TB_RUN_FINISHED);
    ck_assert_str_eq(s.message, "");
    ck_assert(s.val == s.last_val); /* the last epoch's */
    ck_assert(s.val > 0.5);         /* the toy task is learnable */
    ck_assert(s.test >= 0 && s.test <= 1);
    ck_assert_int_eq(job->threads, 1);
    ck_assert(job->started_s > 0 && job->ended_s >= job->started_s);
    struct stat sb;
    char run[800];
    snprintf(run, sizeof run, "%s/a.h5", tmpdir);
    ck_assert_msg(stat(run, &sb) == 0, "the run file %s was not written", run);
    tb_job_free(job);
    free(ini);
}
END_TEST

START_TEST(test_bad_config_is_rejected)
{
    const char *bad_opt[] = {"train.optimizer=adamw", NULL};
    char *ini = toy_ini("bad", bad_opt);
    seen s;
    tb_job *job = new_job(&s, "bad", ini, 0);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_REJECTED);
    ck_assert_int_eq(s.finished, 1);
    ck_assert_int_eq(s.started, 0); /* a configuration error never starts */
    ck_assert_msg(strstr(s.message, "optimizer") && strstr(s.message, "adamw"), "message: %s", s.message);
    ck_assert(isnan(s.val) && isnan(s.test));
    tb_job_free(job);
    free(ini);

    /* data that cannot be loaded: also rejected, with the reason */
    char missing[800];
    snprintf(missing, sizeof missing, "hdf5.path=%s/missing.h5", tmpdir);
    const char *bad_data[] = {missing, NULL};
    ini = toy_ini("bad2", bad_data);
    job = new_job(&s, "bad2", ini, 0);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_REJECTED);
    ck_assert_msg(strstr(s.message, "missing.h5"), "message: %s", s.message);
    ck_assert_int_eq(s.finished, 1);
    tb_job_free(job);
    free(ini);

    /* text that is not INI at all */
    job = new_job(&s, "bad3", "this is [not ini\n", 0);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_REJECTED);
    ck_assert_int_eq(s.finished, 1);
    ck_assert(s.message[0]);
    tb_job_free(job);
}
END_TEST

START_TEST(test_diverging_lr_ends_diverged)
{
    const char *sets[] = {"train.optimizer=sgd", "train.lr=1e3", NULL};
    char *ini = toy_ini("div", sets);
    seen s;
    tb_job *job = new_job(&s, "div", ini, 0);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_DIVERGED);
    ck_assert_int_eq(s.status, TB_RUN_DIVERGED);
    ck_assert_msg(strstr(s.message, "NaN") || strstr(s.message, "Inf"), "message: %s", s.message);
    ck_assert(isnan(s.test));
    tb_job_free(job);
    free(ini);
}
END_TEST

START_TEST(test_time_limit_ends_cancelled)
{
    const char *sets[] = {"train.epochs=100000", "train.time_limit=0.3", NULL};
    char *ini = toy_ini("tl", sets);
    seen s;
    tb_job *job = new_job(&s, "tl", ini, 0);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_CANCELLED);
    ck_assert_str_eq(s.message, "time limit reached");
    tb_job_free(job);
    free(ini);
}
END_TEST

START_TEST(test_event_callback_cancels)
{
    const char *sets[] = {"train.epochs=1000", NULL};
    char *ini = toy_ini("cb", sets);
    seen s;
    tb_job *job = new_job(&s, "cb", ini, 0);
    s.cancel_at_batch = 30; /* in epoch 3 */
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_CANCELLED);
    ck_assert_int_eq(s.last_step, 30);
    ck_assert_msg(strstr(s.message, "cancelled"), "message: %s", s.message);
    tb_job_free(job);
    free(ini);
}
END_TEST

START_TEST(test_io_error_after_training_interrupts)
{
    /* the run file's directory cannot be made (a file got in its way during
     * training, after the paths were checked): the run trained, then failed
     * on I/O of its own; not the configuration's fault */
    char blocker[800], sets_run[900];
    snprintf(blocker, sizeof blocker, "%s/blocker", tmpdir);
    snprintf(sets_run, sizeof sets_run, "output.run=%s/sub/io.h5", blocker);
    const char *sets[] = {"train.epochs=1", sets_run, NULL};
    char *ini = toy_ini("io", sets);
    seen s;
    tb_job *job = new_job(&s, "io", ini, 0);
    s.block_at_epoch = blocker;
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_INTERRUPTED);
    ck_assert_int_eq(s.started, 1);
    ck_assert_int_eq(s.epochs, 1);
    ck_assert_int_eq(s.status, TB_RUN_INTERRUPTED);
    ck_assert_msg(strstr(s.message, "run file"), "message: %s", s.message);
    tb_job_free(job);

    /* run_path overrides output.run: the same job now writes its file */
    char where[800];
    snprintf(where, sizeof where, "%s/elsewhere/io.h5", tmpdir);
    job = new_job(&s, "io2", ini, 0);
    tb_copy_str(job->run_path, sizeof job->run_path, where);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_FINISHED);
    struct stat sb;
    ck_assert_msg(stat(where, &sb) == 0, "no run file at the job's run_path %s", where);
    tb_job_free(job);
    free(ini);
}
END_TEST

START_TEST(test_cancel_flag_interrupted)
{
    /* tb_job_cancel(..., 1) before the job runs: it ends interrupted, never started */
    const char *one[] = {"train.epochs=1", NULL};
    char *ini = toy_ini("ci", one);
    seen s;
    tb_job *job = new_job(&s, "ci", ini, 0);
    tb_job_cancel(job, "interrupted by SIGTERM", 1);
    tb_job_cancel(job, "a later message", 0); /* the first message wins, the flag stays */
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_INTERRUPTED);
    ck_assert_int_eq(s.started, 0);
    ck_assert_str_eq(s.message, "interrupted by SIGTERM");
    tb_job_free(job);

    /* through the executor: interrupted while queued and while running */
    tb_executor *ex;
    tb_err err;
    ck_assert(tb_executor_local_create(1, 1, &ex, &err) == TB_OK);
    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini2 = toy_ini("ci2", longrun);
    static seen run_s, queued_s;
    tb_job *running = new_job(&run_s, "r", ini2, 0), *queued = new_job(&queued_s, "q", ini2, 0);
    submit(ex, running);
    wait_for(&run_s, has_batches);
    submit(ex, queued);
    tb_executor_interrupt(ex, queued, "the study was closed");
    wait_for(&queued_s, is_finished);
    ck_assert_int_eq(queued_s.status, TB_RUN_INTERRUPTED);
    ck_assert_int_eq(queued_s.started, 0);
    ck_assert_str_eq(queued_s.message, "the study was closed");
    tb_executor_interrupt(ex, running, "the study was closed while the run was live");
    wait_for(&run_s, is_finished);
    ck_assert_int_eq(run_s.status, TB_RUN_INTERRUPTED);
    ck_assert_str_eq(run_s.message, "the study was closed while the run was live");
    tb_executor_destroy(ex);
    free(ini);
    free(ini2);
}
END_TEST

/* ---- the local executor ------------------------------------------------------------ */

START_TEST(test_priorities_then_fifo)
{
    tb_executor *ex;
    tb_err err;
    ck_assert(tb_executor_local_create(1, 1, &ex, &err) == TB_OK);
    n_started = 0;
    memset(start_order, 0, sizeof start_order);
    const char *one[] = {"train.epochs=1", NULL};
    char *ini = toy_ini("p", one);
    /* the blocker (priority -1) goes first whenever the worker wakes up */
    static seen s[6];
    const char *ids[] = {"B", "t", "a", "m", "b", "u"};
    const int prio[] = {-1, 20, 0, 10, 0, 20};
    tb_job *jobs[6];
    for (int i = 0; i < 6; i++) jobs[i] = new_job(&s[i], ids[i], ini, prio[i]);
    for (int i = 0; i < 6; i++) submit(ex, jobs[i]);
    ck_assert_int_ge(tb_executor_pending(ex), 1);
    tb_executor_drain(ex);
    ck_assert_int_eq(tb_executor_pending(ex), 0);
    ck_assert_str_eq(start_order, "Babmtu");
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(s[i].finished, 1);
        ck_assert_int_eq(s[i].status, TB_RUN_FINISHED);
        ck_assert(s[i].order_ok);
    }
    tb_executor_destroy(ex);
    free(ini);
}
END_TEST

START_TEST(test_cancel_queued_and_running)
{
    tb_executor *ex;
    tb_err err;
    ck_assert(tb_executor_local_create(1, 1, &ex, &err) == TB_OK);
    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini = toy_ini("c", longrun);
    static seen run_s, queued_s, after_s;
    tb_job *running = new_job(&run_s, "r", ini, 0);
    tb_job *queued = new_job(&queued_s, "q", ini, 0);
    const char *one[] = {"train.epochs=1", NULL};
    char *ini1 = toy_ini("c1", one);
    tb_job *after = new_job(&after_s, "f", ini1, 5);
    submit(ex, running);
    wait_for(&run_s, has_batches);
    submit(ex, queued);
    submit(ex, after);
    ck_assert_int_eq(tb_executor_pending(ex), 3);
    /* queued: ends at once, without starting, with the message */
    tb_executor_cancel(ex, queued, "withdrawn by the participant");
    wait_for(&queued_s, is_finished);
    ck_assert_int_eq(queued_s.started, 0);
    ck_assert_int_eq(queued_s.status, TB_RUN_CANCELLED);
    ck_assert_str_eq(queued_s.message, "withdrawn by the participant");
    ck_assert_int_eq(run_s.finished, 0);
    /* running: stops before its next batch */
    tb_executor_cancel(ex, running, "stopped by the participant");
    wait_for(&run_s, is_finished);
    ck_assert_int_eq(run_s.status, TB_RUN_CANCELLED);
    ck_assert_str_eq(run_s.message, "stopped by the participant");
    ck_assert(run_s.order_ok);
    /* the next job runs normally */
    tb_executor_drain(ex);
    ck_assert_int_eq(after_s.status, TB_RUN_FINISHED);
    ck_assert_int_eq(after_s.finished, 1);
    ck_assert_int_eq(queued_s.finished, 1);
    ck_assert_int_eq(run_s.finished, 1);
    tb_executor_destroy(ex);
    free(ini);
    free(ini1);
}
END_TEST

START_TEST(test_two_slots_overlap)
{
    tb_executor *ex;
    tb_err err;
    ck_assert(tb_executor_local_create(2, 1, &ex, &err) == TB_OK);
    ck_assert_int_eq(ex->slots, 2);
    const char *sets[] = {"train.epochs=6", NULL};
    char *ini = toy_ini("o1", sets), *ini2 = toy_ini("o2", sets); /* one run file each */
    static seen a, b;
    tb_job *ja = new_job(&a, "a", ini, 0), *jb = new_job(&b, "b", ini2, 0);
    int tasks_before = count_tasks();
    submit(ex, ja);
    submit(ex, jb);
    tb_executor_drain(ex);
    ck_assert_msg(a.status == TB_RUN_FINISHED, "%s: %s", tb_run_status_name(a.status), a.message);
    ck_assert_msg(b.status == TB_RUN_FINISHED, "%s: %s", tb_run_status_name(b.status), b.message);
    /* both started before either ended: they ran at once */
    double first_end = a.finished_at < b.finished_at ? a.finished_at : b.finished_at;
    ck_assert_msg(a.started_at < first_end && b.started_at < first_end, "the two jobs did not overlap");
    /* one thread per run: no OpenMP teams beyond the executor's own threads
     * (the process's threads before plus 2 workers and the finisher) */
    int most = a.max_tasks > b.max_tasks ? a.max_tasks : b.max_tasks;
    ck_assert_msg(most <= tasks_before, "%d threads during training, %d before the runs (with the executor's)", most,
                  tasks_before);
    tb_executor_destroy(ex);
    free(ini);
    free(ini2);
}
END_TEST

START_TEST(test_threads_per_run_default)
{
    tb_executor *ex;
    tb_err err;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores > 2 ? (int)(cores / 2) : 1;
    ck_assert(tb_executor_local_create(2, 0, &ex, &err) == TB_OK);
    const char *one[] = {"train.epochs=1", NULL};
    char *ini = toy_ini("d", one);
    static seen a;
    tb_job *ja = new_job(&a, "a", ini, 0);
    submit(ex, ja);
    tb_executor_drain(ex);
    ck_assert_int_eq(a.threads, want);
    tb_executor_destroy(ex);
    ck_assert(tb_executor_local_create(0, 0, &ex, &err) == TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "slots") && strstr(err.msg, "0"), "%s", err.msg);
    free(ini);
}
END_TEST

START_TEST(test_destroy_interrupts)
{
    tb_executor *ex;
    tb_err err;
    ck_assert(tb_executor_local_create(1, 1, &ex, &err) == TB_OK);
    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini = toy_ini("x", longrun);
    static seen r, q1, q2;
    tb_job *jr = new_job(&r, "r", ini, 0), *j1 = new_job(&q1, "1", ini, 0), *j2 = new_job(&q2, "2", ini, 3);
    submit(ex, jr);
    wait_for(&r, has_batches);
    submit(ex, j1);
    submit(ex, j2);
    tb_executor_destroy(ex);
    seen *all[] = {&r, &q1, &q2};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(all[i]->finished, 1);
        ck_assert_msg(all[i]->status == TB_RUN_INTERRUPTED, "job %s ended %s", all[i]->id,
                      tb_run_status_name(all[i]->status));
        ck_assert_msg(strstr(all[i]->message, "interrupted"), "%s", all[i]->message);
    }
    ck_assert_int_eq(q1.started, 0);
    ck_assert_int_eq(q2.started, 0);
    free(ini);
}
END_TEST

/* ---- the archive recorder ---------------------------------------------------------- */

typedef struct durable_check {
    tb_archive *a;
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    int epochs_seen, not_durable, batches_seen;
    pthread_mutex_t m;
} durable_check;

static int check_durable(void *user, tb_job *job, const tb_train_event *ev)
{
    durable_check *d = user;
    if (ev->kind == TB_EVENT_BATCH) {
        d->batches_seen++;
        return 0;
    }
    tb_archive_run_info info;
    tb_err err;
    if (tb_archive_run_info_by_id(d->a, d->run_id, &info, &err) != TB_OK || info.last_epoch != ev->epoch ||
        info.status != TB_RUN_TRAINING)
        d->not_durable++;
    d->epochs_seen++;
    return 0;
}

START_TEST(test_record_in_archive)
{
    char dir[800];
    snprintf(dir, sizeof dir, "%s/archive", tmpdir);
    tb_archive *a;
    tb_err err;
    ck_assert_msg(tb_archive_open(dir, 1, &a, NULL, &err) == TB_OK, "%s", err.msg);
    tb_executor *ex;
    ck_assert(tb_executor_local_create(2, 1, &ex, &err) == TB_OK);

    const char *three[] = {"train.epochs=3", NULL};
    char *ini = toy_ini("rec", three);
    static durable_check d;
    d.a = a;
    /* the owner's event callback checks that each epoch is durable when it arrives */
    tb_job_callbacks inner = {.user = &d, .started = NULL, .event = check_durable, .finished = NULL}, out;
    char *job_ini = NULL;
    ck_assert_msg(tb_job_record(a, "sweep", "p01", ini, &inner, &out, d.run_id, &job_ini, &err) == TB_OK, "%s",
                  err.msg);
    ck_assert(d.run_id[0]);
    char want_path[1200];
    snprintf(want_path, sizeof want_path, "%s/runs/%s.run.h5", dir, d.run_id);
    ck_assert_msg(strstr(job_ini, want_path), "job ini lacks output.run = %s:\n%s", want_path, job_ini);
    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_by_id(a, d.run_id, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_QUEUED);
    ck_assert_str_eq(info.kind, "sweep");
    ck_assert_str_eq(info.participant, "p01");

    tb_job *job = tb_job_new(d.run_id, job_ini, 20, &out);
    ck_assert(job);
    submit(ex, job);

    /* a second job that is never submitted: its owner ends it */
    char id2[TB_ARCHIVE_ID_MAX + 1], *ini2 = NULL;
    static seen s2;
    seen_init(&s2, "never");
    tb_job_callbacks inner2 = {.user = &s2, .started = on_started, .event = on_event, .finished = on_finished}, out2;
    ck_assert(tb_job_record(a, "sweep", NULL, ini, &inner2, &out2, id2, &ini2, &err) == TB_OK);
    out2.finished(out2.user, NULL, TB_RUN_REJECTED, NAN, NAN, "lr = 20 is outside the allowed range [1e-06, 10]");
    ck_assert_int_eq(s2.finished, 1);
    ck_assert_int_eq(s2.status, TB_RUN_REJECTED);
    free(ini2);

    /* a bad configuration goes through the recorder too */
    const char *bad[] = {"train.loss=hinge", NULL};
    char *ini3 = toy_ini("rec3", bad), *job_ini3 = NULL, id3[TB_ARCHIVE_ID_MAX + 1];
    static seen s3;
    seen_init(&s3, "bad");
    tb_job_callbacks inner3 = {.user = &s3, .started = on_started, .event = on_event, .finished = on_finished}, out3;
    ck_assert(tb_job_record(a, "sweep", NULL, ini3, &inner3, &out3, id3, &job_ini3, &err) == TB_OK);
    job = tb_job_new(id3, job_ini3, 20, &out3);
    submit(ex, job);

    tb_executor_drain(ex);
    tb_executor_destroy(ex);
    ck_assert_int_eq(d.epochs_seen, 3);
    ck_assert_int_eq(d.not_durable, 0);
    ck_assert_int_eq(s3.status, TB_RUN_REJECTED);
    ck_assert_msg(strstr(s3.message, "hinge"), "%s", s3.message);
    ck_assert(tb_archive_close(a, &err) == TB_OK);

    /* read it back as a new process would */
    tb_archive_recovery rec;
    ck_assert(tb_archive_open(dir, 0, &a, &rec, &err) == TB_OK);
    ck_assert_int_eq(rec.interrupted, 0);
    ck_assert_int_eq((int)tb_archive_run_count(a), 3);
    ck_assert(tb_archive_run_info_by_id(a, d.run_id, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_FINISHED);
    ck_assert_int_eq(info.epochs, 3);
    ck_assert_int_eq(info.last_epoch, 3);
    ck_assert_int_eq(info.batches, d.batches_seen);
    ck_assert_int_eq(info.batches, 3 * 12);
    ck_assert(info.val_accuracy > 0.5 && info.val_accuracy <= 1);
    ck_assert(info.test_accuracy >= 0 && info.test_accuracy <= 1);
    ck_assert(!isnan(info.started_s) && !isnan(info.ended_s));
    ck_assert(tb_archive_run_info_by_id(a, id2, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_REJECTED);
    ck_assert_msg(strstr(info.message, "lr = 20"), "%s", info.message);
    ck_assert(tb_archive_run_info_by_id(a, id3, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_REJECTED);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    struct stat sb;
    ck_assert_msg(stat(want_path, &sb) == 0, "run file %s missing", want_path);
    free(ini);
    free(ini3);
    free(job_ini);
    free(job_ini3);
}
END_TEST

START_TEST(test_record_without_text)
{
    /* job_ini NULL: the plan's text as it is, the run file set on the job */
    char dir[800];
    snprintf(dir, sizeof dir, "%s/archive2", tmpdir);
    tb_archive *a;
    tb_err err;
    ck_assert_msg(tb_archive_open(dir, 1, &a, NULL, &err) == TB_OK, "%s", err.msg);
    const char *one[] = {"train.epochs=1", NULL};
    char *ini = toy_ini("nt", one);
    static seen s;
    seen_init(&s, "nt");
    tb_job_callbacks inner = {.user = &s, .started = on_started, .event = on_event, .finished = on_finished}, out;
    char id[TB_ARCHIVE_ID_MAX + 1];
    ck_assert_msg(tb_job_record(a, "sweep", NULL, ini, &inner, &out, id, NULL, &err) == TB_OK, "%s", err.msg);
    tb_job *job = tb_job_new(id, ini, 20, &out);
    ck_assert(job);
    ck_assert_int_eq(tb_job_run_file(a, id, job->run_path, sizeof job->run_path), 0);
    char want[1200];
    snprintf(want, sizeof want, "%s/runs/%s.run.h5", dir, id);
    ck_assert_str_eq(job->run_path, want);
    char tiny[8];
    ck_assert_int_eq(tb_job_run_file(a, id, tiny, sizeof tiny), -1);
    ck_assert_int_eq(tb_job_execute(job, 1), TB_RUN_FINISHED);
    tb_job_free(job);
    ck_assert_int_eq(s.status, TB_RUN_FINISHED);
    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_by_id(a, id, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_FINISHED);
    ck_assert_int_eq(info.epochs, 1);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    struct stat sb;
    ck_assert_msg(stat(want, &sb) == 0, "run file %s missing", want);
    char not_there[800];
    snprintf(not_there, sizeof not_there, "%s/nt.h5", tmpdir); /* the text's own output.run */
    ck_assert_msg(stat(not_there, &sb) != 0, "the run file went to output.run, not the job's run_path");
    free(ini);
}
END_TEST

/* ---- event lines ------------------------------------------------------------------- */

START_TEST(test_event_lines_round_trip)
{
    char line[1024];
    tb_job_line p;
    tb_train_event b = {.kind = TB_EVENT_BATCH, .epoch = 1, .batch = 3, .batches_per_epoch = 860, .step = 3,
                        .batch_loss = 2.302585092994046, .elapsed_s = 0.1 + 0.2};
    tb_job_event_format(line, sizeof line, &b);
    ck_assert_msg(!strncmp(line, "event batch epoch=1 batch=3/860 step=3 loss=2.30258509299404", 59), "%s", line);
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert_int_eq(p.kind, TB_JOB_LINE_BATCH);
    ck_assert_int_eq(p.ev.kind, TB_EVENT_BATCH);
    ck_assert_int_eq(p.ev.epoch, 1);
    ck_assert_int_eq(p.ev.batch, 3);
    ck_assert_int_eq(p.ev.batches_per_epoch, 860);
    ck_assert_int_eq(p.ev.step, 3);
    ck_assert(p.ev.batch_loss == b.batch_loss); /* exact */
    ck_assert(p.ev.elapsed_s == b.elapsed_s);

    tb_train_event e = {.kind = TB_EVENT_EPOCH, .epoch = 2, .batch = 860, .batches_per_epoch = 860, .step = 1720,
                        .epoch_loss = 0.61, .val_loss = NAN, .val_accuracy = NAN, .epoch_s = 12.3,
                        .elapsed_s = 24.7, .images_per_s = 5000.25};
    tb_job_event_format(line, sizeof line, &e);
    ck_assert_msg(strstr(line, "event epoch epoch=2 loss=0.61 val_loss=nan val_accuracy=nan seconds=12.3"), "%s",
                  line);
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert_int_eq(p.kind, TB_JOB_LINE_EPOCH);
    ck_assert_int_eq(p.ev.epoch, 2);
    ck_assert(p.ev.epoch_loss == 0.61 && isnan(p.ev.val_loss) && isnan(p.ev.val_accuracy));
    ck_assert(p.ev.epoch_s == 12.3 && p.ev.elapsed_s == 24.7 && p.ev.images_per_s == 5000.25);
    ck_assert_int_eq(p.ev.step, 1720);
    e.val_loss = 0.48;
    e.val_accuracy = 0.8312;
    tb_job_event_format(line, sizeof line, &e);
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert(p.ev.val_loss == 0.48 && p.ev.val_accuracy == 0.8312);

    tb_job_started_format(line, sizeof line, 4);
    ck_assert_str_eq(line, "event started threads=4");
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert_int_eq(p.kind, TB_JOB_LINE_STARTED);
    ck_assert_int_eq(p.threads, 4);

    tb_job_finished_format(line, sizeof line, TB_RUN_CANCELLED, 0.8312, NAN, "stopped: by the\nparticipant x=1");
    ck_assert_str_eq(line,
                     "event finished status=cancelled val_accuracy=0.8312 test_accuracy=nan "
                     "message=stopped: by the participant x=1");
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert_int_eq(p.kind, TB_JOB_LINE_FINISHED);
    ck_assert_int_eq(p.status, TB_RUN_CANCELLED);
    ck_assert(p.val_accuracy == 0.8312 && isnan(p.test_accuracy));
    ck_assert_str_eq(p.message, "stopped: by the participant x=1");
    tb_job_finished_format(line, sizeof line, TB_RUN_FINISHED, 1.0 / 3, 0.25, "");
    ck_assert_int_eq(tb_job_line_parse(line, &p), 0);
    ck_assert(p.val_accuracy == 1.0 / 3 && p.test_accuracy == 0.25);
    ck_assert_str_eq(p.message, "");

    /* truncation keeps the buffer terminated and reports what was written */
    char small[16];
    ck_assert_int_eq(tb_job_event_format(small, sizeof small, &b), 15);
    ck_assert_int_eq((int)strlen(small), 15);

    /* anything else is not an event */
    const char *bad[] = {"", "hello", "event", "event nothing", "event batch epoch=1", "event batch epoch=x batch=1/2 step=1 loss=1",
                         "event batch epoch=1 batch=3/2 step=1 loss=1", "event finished status=queued val_accuracy=1 test_accuracy=1 message=",
                         "event finished status=finished val_accuracy=1 test_accuracy=1", "event started threads=-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(tb_job_line_parse(bad[i], &p) == -1, "'%s' parsed", bad[i]);
}
END_TEST


/* ---- the process executor: each job is `tunebench run-job` in a child --------------------- */

static tb_executor *process_executor(int slots)
{
    char spool[700];
    snprintf(spool, sizeof spool, "%s/spool", tmpdir);
    tb_executor_opts o = {.kind = TB_EXECUTOR_PROCESS, .slots = slots, .threads_per_run = 1, .spool_dir = spool,
                          .program = tbt_exe()};
    tb_executor *ex;
    tb_err err;
    ck_assert_msg(tb_executor_create(&o, &ex, &err) == TB_OK, "%s", err.msg);
    ck_assert_str_eq(ex->ops->name, "process");
    return ex;
}

START_TEST(test_process_same_result_as_threads)
{
    /* the event lines carry exact numbers: a run in a child ends with the same bits */
    char *ini_t = toy_ini("t", NULL), *ini_p = toy_ini("p", NULL);
    seen st, sp;
    tb_executor *threads, *proc = process_executor(1);
    tb_err err;
    ck_assert(tb_executor_local_create(1, 1, &threads, &err) == TB_OK);
    submit(threads, new_job(&st, "t", ini_t, 0));
    submit(proc, new_job(&sp, "p", ini_p, 0));
    tb_executor_drain(threads);
    tb_executor_drain(proc);
    ck_assert_msg(sp.status == TB_RUN_FINISHED, "process: %s: %s", tb_run_status_name(sp.status), sp.message);
    ck_assert_int_eq(st.status, TB_RUN_FINISHED);
    ck_assert_int_eq(sp.started, 1);
    ck_assert_int_eq(sp.finished, 1);
    ck_assert(sp.order_ok);
    ck_assert_int_eq(sp.epochs, st.epochs);
    ck_assert_int_eq(sp.batches, st.batches);
    ck_assert_int_eq(sp.threads, 1);
    ck_assert_msg(sp.val == st.val && sp.test == st.test, "process %.17g/%.17g, threads %.17g/%.17g", sp.val, sp.test,
                  st.val, st.test);
    struct stat sb;
    char run[800];
    snprintf(run, sizeof run, "%s/p.h5", tmpdir);
    ck_assert_msg(stat(run, &sb) == 0, "the child did not write its run file %s", run);
    /* the job file is removed; the child's stderr (the task's notes) is kept in the log */
    snprintf(run, sizeof run, "%s/spool/p.job.ini", tmpdir);
    ck_assert(stat(run, &sb) != 0);
    snprintf(run, sizeof run, "%s/spool/p.log", tmpdir);
    char *log = tbt_slurp(run, NULL);
    ck_assert_msg(log && strstr(log, "[hdf5]"), "the child's stderr is not in %s", run);
    free(log);
    tb_executor_destroy(threads);
    tb_executor_destroy(proc);
    free(ini_t);
    free(ini_p);
}
END_TEST

START_TEST(test_process_rejected_and_cancelled)
{
    tb_executor *ex = process_executor(1);
    const char *bad_opt[] = {"train.optimizer=adamw", NULL};
    char *bad = toy_ini("bad", bad_opt);
    static seen sb, sc;
    submit(ex, new_job(&sb, "bad", bad, 0));
    tb_executor_drain(ex);
    ck_assert_int_eq(sb.status, TB_RUN_REJECTED);
    ck_assert_int_eq(sb.started, 0);
    ck_assert_msg(strstr(sb.message, "optimizer") && strstr(sb.message, "adamw"), "message: %s", sb.message);

    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini = toy_ini("long", longrun);
    tb_job *job = new_job(&sc, "long", ini, 0);
    submit(ex, job);
    wait_for(&sc, has_batches);
    tb_executor_cancel(ex, job, "stopped by the participant");
    wait_for(&sc, is_finished);
    ck_assert_int_eq(sc.status, TB_RUN_CANCELLED);
    ck_assert_str_eq(sc.message, "stopped by the participant");
    ck_assert(sc.order_ok);
    tb_executor_destroy(ex);
    free(bad);
    free(ini);
}
END_TEST

START_TEST(test_process_child_killed)
{
    /* kill -9 of a run's process mid-epoch: that run ends interrupted, saying how; the next one runs */
    tb_executor *ex = process_executor(1);
    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini = toy_ini("victim", longrun), *ini2 = toy_ini("next", NULL);
    static seen sv, sn;
    submit(ex, new_job(&sv, "victim", ini, 0));
    submit(ex, new_job(&sn, "next", ini2, 0));
    wait_for(&sv, has_batches);
    char cmd[900], out[256];
    /* [v]: the pattern does not match the shell running pkill */
    snprintf(cmd, sizeof cmd, "pkill -9 -f '%s/spool/[v]ictim.job.ini'", tmpdir);
    ck_assert_int_eq(tbt_capture(cmd, out, sizeof out), 0);
    wait_for(&sv, is_finished);
    ck_assert_int_eq(sv.status, TB_RUN_INTERRUPTED);
    ck_assert_msg(strstr(sv.message, "SIGKILL") && strstr(sv.message, "before reporting"), "message: %s", sv.message);
    tb_executor_drain(ex);
    ck_assert_msg(sn.status == TB_RUN_FINISHED, "next: %s", sn.message);
    tb_executor_destroy(ex);
    free(ini);
    free(ini2);
}
END_TEST

START_TEST(test_process_destroy_interrupts)
{
    tb_executor *ex = process_executor(1);
    const char *longrun[] = {"train.epochs=100000", NULL};
    char *ini = toy_ini("run", longrun);
    static seen sr, sq;
    submit(ex, new_job(&sr, "run", ini, 0));
    submit(ex, new_job(&sq, "queued", ini, 0));
    wait_for(&sr, has_batches);
    tb_executor_destroy(ex);
    ck_assert_int_eq(sr.status, TB_RUN_INTERRUPTED);
    ck_assert_msg(strstr(sr.message, "executor stopped"), "message: %s", sr.message);
    ck_assert_int_eq(sq.status, TB_RUN_INTERRUPTED);
    ck_assert_int_eq(sq.started, 0);
    free(ini);
}
END_TEST

START_TEST(test_process_bad_program)
{
    tb_executor_opts o = {.kind = TB_EXECUTOR_PROCESS, .slots = 1, .spool_dir = tmpdir, .program = "/nonexistent/tb"};
    tb_executor *ex;
    tb_err err;
    ck_assert_int_eq(tb_executor_create(&o, &ex, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "/nonexistent/tb") && strstr(err.msg, "executable"), "%s", err.msg);
    ck_assert_int_eq(tb_executor_kind_parse("process"), TB_EXECUTOR_PROCESS);
    ck_assert_int_eq(tb_executor_kind_parse("proc"), -1);
    ck_assert_str_eq(tb_executor_kind_choices(), "threads|process|slurm");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("jobs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_execute_events_in_order);
    tcase_add_test(tc, test_bad_config_is_rejected);
    tcase_add_test(tc, test_diverging_lr_ends_diverged);
    tcase_add_test(tc, test_time_limit_ends_cancelled);
    tcase_add_test(tc, test_event_callback_cancels);
    tcase_add_test(tc, test_io_error_after_training_interrupts);
    tcase_add_test(tc, test_cancel_flag_interrupted);
    tcase_add_test(tc, test_priorities_then_fifo);
    tcase_add_test(tc, test_cancel_queued_and_running);
    tcase_add_test(tc, test_two_slots_overlap);
    tcase_add_test(tc, test_threads_per_run_default);
    tcase_add_test(tc, test_destroy_interrupts);
    tcase_add_test(tc, test_record_in_archive);
    tcase_add_test(tc, test_record_without_text);
    tcase_add_test(tc, test_event_lines_round_trip);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("process");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, test_process_same_result_as_threads);
    tcase_add_test(tp, test_process_rejected_and_cancelled);
    tcase_add_test(tp, test_process_child_killed);
    tcase_add_test(tp, test_process_destroy_interrupts);
    tcase_add_test(tp, test_process_bad_program);
    suite_add_tcase(s, tp);
    return tbt_run(s);
}
