/* test_slurm.c: the Slurm executor on a real one-node cluster
 * (scripts/slurm_cluster.sh; .ci/run starts it as root and exports TB_SLURM=1).
 * Skips (77) with the reason when there is none.
 *
 * jobs:  each way a Slurm job can end, as the run's status and message: a
 *        normal run (the same bits as in this process), a configuration run-job
 *        rejects (the job FAILED), a cancel (scancel), the cluster's time limit
 *        (TIMEOUT, ~70 s: slurmctld checks every 30 s), a request the partition
 *        can never meet (pending on PartitionConfig: given up), a GPU request on
 *        a node without GPUs (refused by sbatch), and the node taken DOWN under a
 *        running job (NODE_FAIL).
 * study: two participants through Slurm: a finished run, a cancel, a run the
 *        node's failure interrupts (its time credited), finals on the cluster;
 *        then kill -9 of the study process while a Slurm job runs, and a restart
 *        that follows the job again (one job, every epoch recorded once). */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "exec/executor.h"
#include "study/study.h"
#include "tb_test.h"

static char tmpdir[512];
static char task_path[700];
static const char *partition;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "slurm");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 192, 64, 64, 4, 12, 3);
}

static void teardown(void) { tbt_rm_rf(tmpdir); }

/* cmd's exit status and output, usable outside a test too (no ck_assert) */
static int shell(const char *cmd, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The node back up, whatever a test did to it (ReturnToService=2 does it at once). */
static void node_up(void)
{
    char out[512];
    for (int i = 0; i < 50; i++) {
        shell("sinfo -h -o %T 2>&1", out, sizeof out);
        if (strstr(out, "idle") || strstr(out, "mix") || strstr(out, "alloc")) return;
        sleep_ms(100);
    }
    shell("scontrol update nodename=localhost state=resume 2>&1", out, sizeof out);
}

static void node_down(void)
{
    char out[512];
    ck_assert_msg(tbt_capture("scontrol update nodename=localhost state=down reason=tunebench-test 2>&1", out,
                              sizeof out) == 0, "scontrol: %s", out);
}

/* How many jobs of this test Slurm knows by this name (finished ones too:
 * MinJobAge keeps them an hour; their output is in this test's directory). */
static int jobs_named(const char *name)
{
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "scontrol -o show job 2>/dev/null | grep 'JobName=%s' | grep -c 'StdOut=%s/'", name,
             tmpdir);
    tbt_capture(cmd, out, sizeof out);
    return atoi(out);
}

/* ---- jobs ------------------------------------------------------------------------------------ */

typedef struct seen {
    pthread_mutex_t mu;
    int started, finished, epochs, batches;
    tb_run_status status;
    double val, test;
    char message[512];
    char placement[64];
} seen;

static void on_started(void *u, tb_job *job)
{
    seen *s = u;
    pthread_mutex_lock(&s->mu);
    s->started++;
    pthread_mutex_unlock(&s->mu);
}

static int on_event(void *u, tb_job *job, const tb_train_event *ev)
{
    seen *s = u;
    pthread_mutex_lock(&s->mu);
    if (ev->kind == TB_EVENT_EPOCH) s->epochs++;
    else s->batches++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void on_finished(void *u, tb_job *job, tb_run_status st, double val, double test, const char *msg)
{
    seen *s = u;
    pthread_mutex_lock(&s->mu);
    s->finished++;
    s->status = st;
    s->val = val;
    s->test = test;
    snprintf(s->message, sizeof s->message, "%s", msg);
    pthread_mutex_unlock(&s->mu);
}

static void on_placed(void *u, tb_job *job)
{
    seen *s = u;
    pthread_mutex_lock(&s->mu);
    snprintf(s->placement, sizeof s->placement, "%s", job->placement);
    pthread_mutex_unlock(&s->mu);
}

static int get(seen *s, int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void wait_until(seen *s, int *field, int at_least, double timeout_s, const char *what)
{
    double t0 = tb_now();
    while (get(s, field) < at_least) {
        ck_assert_msg(tb_now() - t0 < timeout_s, "timed out after %.0f s waiting for %s", timeout_s, what);
        sleep_ms(50);
    }
}

static char *job_ini(const char *name, const char *const *sets) { return tbt_toy_job_ini(task_path, tmpdir, name, sets); }

static tb_job *new_job(seen *s, const char *id, const char *ini)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->status = TB_RUN_QUEUED;
    tb_job_callbacks cb = {.user = s, .started = on_started, .event = on_event, .finished = on_finished,
                           .placed = on_placed};
    tb_job *job = tb_job_new(id, ini, 0, &cb);
    ck_assert(job);
    return job;
}

static tb_executor *slurm_executor(int slots, const char *spool_name, const tb_slurm_settings *set)
{
    char spool[800];
    snprintf(spool, sizeof spool, "%s/%s", tmpdir, spool_name);
    tb_executor_opts o = {.kind = TB_EXECUTOR_SLURM, .slots = slots, .threads_per_run = 1, .spool_dir = spool,
                          .program = tbt_exe(), .slurm = set};
    tb_executor *ex;
    tb_err err;
    ck_assert_msg(tb_executor_create(&o, &ex, &err) == TB_OK, "%s", err.msg);
    return ex;
}

static tb_slurm_settings settings(void)
{
    tb_slurm_settings st;
    tb_err err;
    ck_assert(tb_slurm_settings_load(&st, NULL, &err) == TB_OK);
    snprintf(st.partition, sizeof st.partition, "%s", partition);
    st.poll_s = 0.3;
    return st;
}

static void submit(tb_executor *ex, tb_job *job)
{
    tb_err err;
    ck_assert_msg(tb_executor_submit(ex, job, &err) == TB_OK, "%s", err.msg);
}

START_TEST(test_slurm_job_endings)
{
    tb_slurm_settings plain = settings(), limited = settings(), huge = settings(), gpu = settings();
    limited.time_limit_min = 1;
    huge.cpus_per_run = 4096; /* more than any partition allows: pends on PartitionConfig for ever */
    huge.pending_limit_s = 2;
    gpu.gpus_per_run = 1;     /* this node has no GPUs: sbatch refuses it */
    tb_executor *ex = slurm_executor(3, "spool", &plain), *ex_tl = slurm_executor(1, "spool-tl", &limited),
                *ex_huge = slurm_executor(1, "spool-huge", &huge), *ex_gpu = slurm_executor(1, "spool-gpu", &gpu);
    ck_assert_str_eq(ex->ops->name, "slurm");
    static seen ok, bad, cancel, tl, big, g;
    const char *longrun[] = {"train.epochs=100000", NULL};
    const char *bad_opt[] = {"hdf5.classes=-3", NULL};
    char *ini_ok = job_ini("ok", NULL), *ini_bad = job_ini("bad", bad_opt), *ini_long = job_ini("long", longrun),
         *ini_tl = job_ini("tl", longrun);
    /* the time limit first: it takes a minute or more */
    tb_job *jtl = new_job(&tl, "tl", ini_tl);
    submit(ex_tl, jtl);
    tb_job *jok = new_job(&ok, "ok", ini_ok);
    submit(ex, jok);
    submit(ex, new_job(&bad, "bad", ini_bad));
    submit(ex_huge, new_job(&big, "big", ini_ok));
    submit(ex_gpu, new_job(&g, "gpu", ini_ok));
    tb_job *jc = new_job(&cancel, "cancel", ini_long);
    submit(ex, jc);
    wait_until(&cancel, &cancel.epochs, 1, 120, "the job to cancel to train an epoch");
    ck_assert_msg(strncmp(cancel.placement, "slurm:", 6) == 0, "placement '%s'", cancel.placement);
    tb_executor_cancel(ex, jc, "stopped by the participant");
    tb_executor_drain(ex);

    ck_assert_msg(ok.status == TB_RUN_FINISHED, "ok: %s: %s", tb_run_status_name(ok.status), ok.message);
    ck_assert_int_eq(ok.started, 1);
    ck_assert_int_eq(ok.epochs, 2);
    ck_assert_int_eq(ok.batches, 24);
    ck_assert(ok.val > 0.5 && ok.test >= 0);
    ck_assert_msg(bad.status == TB_RUN_REJECTED && strstr(bad.message, "classes"), "bad: %s: %s",
                  tb_run_status_name(bad.status), bad.message);
    ck_assert_int_eq(bad.started, 0);
    ck_assert_msg(cancel.status == TB_RUN_CANCELLED, "cancel: %s", tb_run_status_name(cancel.status));
    ck_assert_str_eq(cancel.message, "stopped by the participant");
    char id[64];
    snprintf(id, sizeof id, "%s", cancel.placement + 6);
    char cmd[128], out[4096];
    snprintf(cmd, sizeof cmd, "scontrol -o show job %s", id);
    tbt_capture(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "JobState=CANCELLED"), "scontrol: %s", out);

    tb_executor_drain(ex_huge);
    ck_assert_msg(big.status == TB_RUN_INTERRUPTED && strstr(big.message, "PartitionConfig") &&
                      strstr(big.message, "cpus_per_run"),
                  "big: %s: %s", tb_run_status_name(big.status), big.message);
    ck_assert_int_eq(big.started, 0);
    tb_executor_drain(ex_gpu);
    ck_assert_msg(g.status == TB_RUN_INTERRUPTED && strstr(g.message, "sbatch refused"), "gpu: %s: %s",
                  tb_run_status_name(g.status), g.message);

    tb_executor_drain(ex_tl);
    ck_assert_msg(tl.status == TB_RUN_INTERRUPTED && strstr(tl.message, "time limit") &&
                      strstr(tl.message, "time_limit_minutes = 1"),
                  "tl: %s: %s", tb_run_status_name(tl.status), tl.message);
    ck_assert(tl.epochs > 0);

    /* the node fails under a running job: interrupted, saying so; the node comes back */
    static seen nf;
    tb_job *jn = new_job(&nf, "nodefail", ini_long);
    submit(ex, jn);
    wait_until(&nf, &nf.epochs, 1, 120, "the job on the failing node to train an epoch");
    node_down();
    tb_executor_drain(ex);
    node_up();
    ck_assert_msg(nf.status == TB_RUN_INTERRUPTED && strstr(nf.message, "NODE_FAIL"), "node: %s: %s",
                  tb_run_status_name(nf.status), nf.message);

    tb_executor_destroy(ex);
    tb_executor_destroy(ex_tl);
    tb_executor_destroy(ex_huge);
    tb_executor_destroy(ex_gpu);
    free(ini_ok), free(ini_bad), free(ini_long), free(ini_tl);
}
END_TEST

START_TEST(test_slurm_bad_settings)
{
    tb_slurm_settings st = settings();
    snprintf(st.partition, sizeof st.partition, "nosuch");
    char spool[800];
    snprintf(spool, sizeof spool, "%s/spool", tmpdir);
    tb_executor_opts o = {.kind = TB_EXECUTOR_SLURM, .slots = 1, .spool_dir = spool, .program = tbt_exe(),
                          .slurm = &st};
    tb_executor *ex;
    tb_err err;
    ck_assert_int_eq(tb_executor_create(&o, &ex, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "slurm.partition = 'nosuch'") && strstr(err.msg, partition), "%s", err.msg);
    tb_config *cfg;
    ck_assert(tb_config_load_text(&cfg, "[slurm]\nmem_mib = -1\n", "x", &err) == TB_OK);
    ck_assert_int_eq(tb_slurm_settings_load(&st, cfg, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "mem_mib"), "%s", err.msg);
    tb_config_free(cfg);
}
END_TEST

/* ---- a study through Slurm --------------------------------------------------------------------- */

static tb_config *study_config(void)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\narchive = %s/study\nfinal_seeds = 11,12\nslots = 2\nexecutor = slurm\nbudget_minutes = 30\n"
             "[space]\nepochs = int 1 100000\nbatch_size = int 1 1024 log\nlr = float 1e-6 1 log\n"
             "[slurm]\npartition = %s\npoll_seconds = 0.3\n",
             tmpdir, partition);
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(task_path, extra), "study.ini", &err) == TB_OK, "%s",
                  err.msg);
    return cfg;
}

static const char *join(const tb_study_api *api, const char *id)
{
    static char out[4][64];
    static int k;
    k = (k + 1) % 4;
    tb_fe_participant p = {.id = id, .education = "doctorate", .dl_months = 12, .programming_months = NAN,
                           .ml_months = NAN};
    char err[512] = "";
    int admitted = 0;
    ck_assert_msg(api->register_participant(api->study, &p, out[k], err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->consent(api->study, out[k], err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->enter(api->study, out[k], &admitted, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(admitted, 1);
    return out[k];
}

static void submit_epochs(const tb_study_api *api, const char *pid, const char *epochs, char run[32])
{
    const char *v[TB_STUDY_HP_COUNT] = {0}, *c[TB_STUDY_HP_COUNT] = {0};
    v[tb_hp_index("epochs")] = epochs;
    v[tb_hp_index("batch_size")] = "16";
    v[tb_hp_index("loss")] = "cross_entropy";
    v[tb_hp_index("optimizer")] = "adam";
    int bad = -1;
    char err[512] = "";
    ck_assert_msg(api->submit(api->study, pid, v, c, run, &bad, err, sizeof err) == TB_OK, "%s", err);
}

static tb_fe_run run_of(const tb_study_api *api, const char *run)
{
    tb_fe_run r;
    char err[512];
    ck_assert_msg(api->run_info(api->study, run, &r, sizeof r, err, sizeof err) == TB_OK, "%s", err);
    return r;
}

static tb_fe_run wait_run(const tb_study_api *api, const char *run, int final, int epochs, double timeout_s)
{
    double t0 = tb_now();
    for (;;) {
        tb_fe_run r = run_of(api, run);
        int ended = r.status_code != TB_FE_RUN_QUEUED && r.status_code != TB_FE_RUN_TRAINING;
        if (final ? ended : r.epoch >= epochs) return r;
        ck_assert_msg(tb_now() - t0 < timeout_s, "run %s: timed out (%s); it is %s at epoch %d: %s", run,
                      final ? "its end" : "an epoch", r.status, r.epoch, r.message);
        sleep_ms(100);
    }
}

START_TEST(test_slurm_study)
{
    tb_config *cfg = study_config();
    tb_study *s;
    tb_err err;
    tb_study_recovery rec;
    ck_assert_msg(tb_study_open(cfg, NULL, &s, &rec, &err) == TB_OK, "%s", err.msg);
    const tb_study_api *api = tb_study_api_get(s);
    const char *p1 = join(api, "ana"), *p2 = join(api, "ben");
    char r1[32], r2[32], r3[32];
    char e[512];

    /* ana: a run that finishes; ben: a long one, cancelled */
    submit_epochs(api, p1, "2", r1);
    submit_epochs(api, p2, "100000", r2);
    wait_run(api, r2, 0, 1, 120);
    ck_assert_msg(api->cancel(api->study, p2, r2, e, sizeof e) == TB_OK, "%s", e);
    tb_fe_run a = wait_run(api, r1, 1, 0, 120), b = wait_run(api, r2, 1, 0, 120);
    ck_assert_msg(a.status_code == TB_FE_RUN_FINISHED, "ana's run: %s %s", a.status, a.message);
    ck_assert_int_eq(a.epoch, 2);
    ck_assert_msg(b.status_code == TB_FE_RUN_CANCELLED, "ben's run: %s %s", b.status, b.message);

    /* ana: a long run the node's failure interrupts; its training time comes back */
    submit_epochs(api, p1, "100000", r3);
    wait_run(api, r3, 0, 2, 120);
    node_down();
    tb_fe_run c = wait_run(api, r3, 1, 0, 60);
    node_up();
    ck_assert_msg(c.status_code == TB_FE_RUN_INTERRUPTED && strstr(c.message, "NODE_FAIL"), "ana's run 3: %s %s",
                  c.status, c.message);
    /* the run's training time comes back: a credit in the journal, for this run, because it was interrupted */
    char jpath[800];
    snprintf(jpath, sizeof jpath, "%s/study/study.journal", tmpdir);
    size_t jlen = 0;
    char *jtext = tbt_slurp(jpath, &jlen), want[96];
    ck_assert(jtext);
    snprintf(want, sizeof want, "run=%s\nseconds=", r3);
    const char *credit = memmem(jtext, jlen, want, strlen(want));
    ck_assert_msg(credit, "no credit for %s in the journal", r3);
    double seconds = strtod(credit + strlen(want), NULL);
    const char *reason = memmem(credit, jlen - (size_t)(credit - jtext), "reason=", 7);
    ck_assert_msg(reason && !strncmp(reason, "reason=queued", 13), "the first credit of %s is not its queue wait", r3);
    credit = memmem(reason, jlen - (size_t)(reason - jtext), want, strlen(want));
    ck_assert_msg(credit, "no credit for %s's interrupted training", r3);
    seconds = strtod(credit + strlen(want), NULL);
    reason = memmem(credit, jlen - (size_t)(credit - jtext), "reason=", 7);
    ck_assert_msg(reason && !strncmp(reason, "reason=interrupted", 18) && seconds > 0,
                  "%s: credit %.3f s for %.20s", r3, seconds, reason ? reason : "?");
    free(jtext);

    /* both choose; the finals run on the cluster too */
    ck_assert_msg(api->finish(api->study, p1, r1, e, sizeof e) == TB_OK, "%s", e);
    ck_assert_msg(tb_study_close(s, 1, &err) == TB_OK, "%s", err.msg);

    /* the journal says where each run went (3 submissions, 2 finals) */
    jtext = tbt_slurp(jpath, &jlen);
    ck_assert(jtext);
    int placed = 0;
    for (const char *q = jtext; (q = memmem(q, jlen - (size_t)(q - jtext), "placement=slurm:", 16)); q++) placed++;
    free(jtext);
    ck_assert_msg(placed == 5, "%d runs placed on Slurm in the journal (3 submissions + 2 finals)", placed);
    ck_assert_msg(jobs_named("tb-") >= placed, "Slurm knows fewer tunebench jobs than the journal placed");
    tb_config_free(cfg);
}
END_TEST

/* kill -9 of the study process while a Slurm job trains; the restarted study
 * follows the same job and records each epoch once */
START_TEST(test_slurm_study_restart)
{
    tb_config *cfg = study_config();
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) {
        close(fds[0]);
        tb_study *s;
        tb_err err;
        if (tb_study_open(cfg, NULL, &s, NULL, &err) != TB_OK) _exit(2);
        const tb_study_api *api = tb_study_api_get(s);
        const char *p = join(api, "cleo");
        char run[32];
        submit_epochs(api, p, "150", run);
        wait_run(api, run, 0, 2, 120);
        ssize_t w = write(fds[1], run, sizeof run);
        (void)w;
        for (;;) pause(); /* killed here */
    }
    close(fds[1]);
    char run[32] = "";
    ck_assert_msg(read(fds[0], run, sizeof run) == sizeof run, "the study child died before its run trained");
    close(fds[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    tb_study *s;
    tb_err err;
    tb_study_recovery rec;
    ck_assert_msg(tb_study_open(cfg, NULL, &s, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.adopted_runs, 1);
    ck_assert_int_eq(rec.interrupted_runs, 0);
    const tb_study_api *api = tb_study_api_get(s);
    tb_fe_run r = wait_run(api, run, 1, 0, 180);
    ck_assert_msg(r.status_code == TB_FE_RUN_FINISHED, "after the restart: %s %s", r.status, r.message);
    ck_assert_int_eq(r.epoch, 150);
    /* every epoch once in the archive's curves */
    double x[256], y[256];
    int n = api->curve(api->study, run, TB_FE_CURVE_VAL_ACCURACY, 0, x, y, 256);
    ck_assert_msg(n == 150, "%d epochs in the curve", n);
    for (int i = 0; i < n; i++) ck_assert_msg(x[i] == i + 1, "epoch %g at %d", x[i], i);
    char name[64];
    snprintf(name, sizeof name, "tb-%s", run);
    ck_assert_int_eq(jobs_named(name), 1);
    ck_assert_msg(tb_study_close(s, 0, &err) == TB_OK, "%s", err.msg);
    tb_config_free(cfg);
}
END_TEST

int main(void)
{
    const char *why = NULL;
    char out[512];
    if (!getenv("TB_SLURM") || strcmp(getenv("TB_SLURM"), "1") != 0)
        why = "TB_SLURM=1 is not set (start the test cluster: sudo scripts/slurm_cluster.sh start; "
              "eval \"$(scripts/slurm_cluster.sh env)\")";
    else if (shell("sinfo -h -o %T 2>&1", out, sizeof out) != 0)
        why = "sinfo does not answer (is the cluster running? scripts/slurm_cluster.sh status)";
    if (why) {
        printf("test_slurm: skipped: %s\n", why);
        return 77;
    }
    partition = getenv("TB_SLURM_PARTITION") ? getenv("TB_SLURM_PARTITION") : "debug";
    node_up();
    Suite *s = suite_create("slurm");
    TCase *tj = tcase_create("jobs");
    tcase_add_checked_fixture(tj, setup, teardown);
    tcase_set_timeout(tj, 400);
    tcase_add_test(tj, test_slurm_bad_settings);
    tcase_add_test(tj, test_slurm_job_endings);
    suite_add_tcase(s, tj);
    TCase *ts = tcase_create("study");
    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_set_timeout(ts, 400);
    tcase_add_test(ts, test_slurm_study);
    tcase_add_test(ts, test_slurm_study_restart);
    suite_add_tcase(s, ts);
    int rc = tbt_run(s);
    node_up();
    return rc;
}
