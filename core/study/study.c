/* study.c: the study service (see study.h and docs/study.md): its settings,
 * opening a study (the archive, replaying the journal, settling a crash,
 * the executor, the monitor thread) and closing it. How the rest is split:
 * study_internal.h. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/plugin.h"
#include "run/run.h"
#include "study_internal.h"
#include "sweep.h"

/* ---- settings ------------------------------------------------------------------------------ */

static const char *const study_keys[] = {"title",  "briefing", "archive",         "budget_minutes", "final_seeds",
                                         "slots", "threads_per_run", "max_active", "gpus", "runs_per_gpu",
                                         "gpu_memory_mib", "show_result", "executor",
                                         "task_cache", "machine_participants"};

tb_status tb_study_settings_load(tb_study_settings *st, tb_space *space, const tb_config *cfg, tb_err *err)
{
    memset(st, 0, sizeof *st);
    tb_status r;
    if (!tb_config_has_section(cfg, "study"))
        return tb_fail(err, TB_EINVAL, "%s has no [study] section: a study needs at least [study] archive "
                       "(see docs/study.md)", tb_config_path(cfg)[0] ? tb_config_path(cfg) : "the configuration");
    if ((r = tb_config_check_section(cfg, "study", study_keys, (int)TB_ARRAY_LEN(study_keys), err))) return r;
    const char *v;
    if ((r = tb_config_string(cfg, "study", "title", "A hyperparameter tuning study", &v, err))) return r;
    tb_copy_str(st->title, sizeof st->title, v);
    if ((r = tb_config_string(cfg, "study", "briefing",
                              "Find the hyperparameters that maximise the classification accuracy on the test set. "
                              "Each submission is trained from the same initial weights; watch the loss, cancel "
                              "runs that do not look promising, and choose your final configuration before the "
                              "time runs out.",
                              &v, err)))
        return r;
    tb_copy_str(st->briefing, sizeof st->briefing, v);
    if ((r = tb_config_string(cfg, "study", "archive", NULL, &v, err))) return r;
    if (!v || !*v) return tb_fail(err, TB_EINVAL, "study.archive is missing: name the archive directory");
    if (strlen(v) >= sizeof st->archive)
        return tb_fail(err, TB_EINVAL, "study.archive is longer than %zu characters", sizeof st->archive - 1);
    tb_copy_str(st->archive, sizeof st->archive, v);
    /* the task cache: a folder, off, or (absent) the archive's cache/ (tb_study_open fills it in) */
    if ((r = tb_config_string(cfg, "study", "task_cache", NULL, &v, err))) return r;
    if (v && !*v)
        return tb_fail(err, TB_EINVAL, "study.task_cache = \"\" is empty; allowed: a folder path, or off (default: "
                       "ARCHIVE/cache)");
    if (v && strlen(v) >= sizeof st->task_cache)
        return tb_fail(err, TB_EINVAL, "study.task_cache is longer than %zu characters; allowed: a folder path, or off",
                       sizeof st->task_cache - 1);
    st->task_cache_default = !v;
    if (v && strcmp(v, "off") != 0) tb_copy_str(st->task_cache, sizeof st->task_cache, v);
    double minutes;
    if ((r = tb_config_double(cfg, "study", "budget_minutes", 120, 0.01, 100000, &minutes, err))) return r;
    st->budget_s = minutes * 60.0;
    if ((r = tb_config_int_list(cfg, "study", "final_seeds", "0,1,2,3,4,5,6,7,8,9", 0, INT64_MAX, st->final_seeds,
                                TB_STUDY_MAX_SEEDS, &st->n_final_seeds, err)))
        return r;
    if (st->n_final_seeds == 0)
        return tb_fail(err, TB_EINVAL, "study.final_seeds is empty: list at least one seed (e.g. final_seeds = "
                       "0,1,2,3,4,5,6,7,8,9); each participant's final configuration is retrained once per seed");
    for (int i = 0; i < st->n_final_seeds; i++)
        for (int j = 0; j < i; j++)
            if (st->final_seeds[i] == st->final_seeds[j])
                return tb_fail(err, TB_EINVAL, "study.final_seeds: seed %lld appears twice; each must be distinct",
                               (long long)st->final_seeds[i]);
    int64_t x;
    if ((r = tb_config_int(cfg, "study", "slots", 1, 1, 256, &x, err))) return r;
    st->slots = (int)x;
    if ((r = tb_config_int(cfg, "study", "threads_per_run", 0, 0, 1024, &x, err))) return r;
    st->threads_per_run = (int)x;
    if ((r = tb_config_int(cfg, "study", "max_active", 0, 0, 10000, &x, err))) return r;
    st->max_active = (int)x;
    /* GPUs: gpus * runs_per_gpu slots replace `slots` */
    if ((r = tb_config_int(cfg, "study", "gpus", 0, 0, 64, &x, err))) return r;
    st->gpus = (int)x;
    if ((r = tb_config_int(cfg, "study", "runs_per_gpu", 1, 1, 64, &x, err))) return r;
    st->runs_per_gpu = (int)x;
    if ((r = tb_config_int(cfg, "study", "gpu_memory_mib", 0, 0, 16 << 20, &x, err))) return r;
    st->gpu_memory_mib = (int)x;
    if ((r = tb_config_bool(cfg, "study", "show_result", 0, &st->show_result, err))) return r;
    const char *kind;
    if ((r = tb_config_string(cfg, "study", "executor", "process", &kind, err))) return r;
    int k = tb_executor_kind_parse(kind);
    if (k < 0)
        return tb_fail(err, TB_EINVAL, "study.executor = '%s' is not one of %s (docs/study.md, \"Executors\")", kind,
                       tb_executor_kind_choices());
    st->executor = (tb_executor_kind)k;
    if (st->executor == TB_EXECUTOR_THREADS && st->gpus > 0)
        return tb_fail(err, TB_EINVAL, "study.executor = threads with study.gpus = %d: GPU runs always run in their "
                       "own processes (a device fault must die with its process); use executor = process",
                       st->gpus);
    if (tb_config_has_section(cfg, "slurm") && st->executor != TB_EXECUTOR_SLURM)
        return tb_fail(err, TB_EINVAL, "the configuration has a [slurm] section but study.executor = %s: set "
                       "executor = slurm to use it, or remove the section", kind);
    if ((r = tb_slurm_settings_load(&st->slurm, cfg, err))) return r;
    if (st->gpus > 0) {
        if (tb_config_get(cfg, "study", "slots"))
            return tb_fail(err, TB_EINVAL, "study.slots = %d and study.gpus = %d: with GPUs the slots are gpus x "
                           "runs_per_gpu; remove study.slots", st->slots, st->gpus);
        st->slots = st->gpus * st->runs_per_gpu;
    }
    return tb_space_load(space, cfg, err);
}

/* Loads the task once: it must load before participants arrive, and the
 * training-set size bounds batch_size. */
static tb_status probe_task(tb_study *s, tb_err *err)
{
    tb_config *c;
    tb_status st = tb_config_load_text(&c, s->job_base_ini, "study configuration", err);
    if (st != TB_OK) return st;
    /* a placeholder optimizer when [train] has none: only the task matters here */
    if (!tb_config_get(c, "train", "optimizer")) tb_config_set(c, "train.optimizer", "sgd", NULL);
    tb_run run;
    /* through the task cache: the runs with the probe's task settings (the participants') then read it */
    if ((st = tb_run_configure(&run, c, err)) == TB_OK && (st = tb_run_set_task_cache(&run, s->st.task_cache, err)) == TB_OK &&
        (st = tb_run_load_task(&run, err)) == TB_OK)
        s->st.train_count = run.task.train.count;
    tb_run_free(&run);
    tb_config_free(c);
    return st;
}

/* mkdir -p of dir; made receives the topmost directory the call had to make
 * ("" when dir existed), so that a study that then fails to open can take
 * back what it made (undo_dirs). -1 with errno on failure. */
static int make_dirs_noting(const char *dir, char *made, size_t cap)
{
    made[0] = '\0';
    char tmp[STUDY_PATH_CAP];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp || strlen(dir) >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char ch = *p;
        *p = '\0';
        struct stat sb;
        if (!made[0] && stat(tmp, &sb) != 0 && errno == ENOENT) tb_copy_str(made, cap, tmp);
        *p = ch;
        if (!ch) break;
    }
    return tb_make_dirs(dir);
}

/* Removes dir and its parents up to made (what make_dirs_noting made), each only while empty. */
static void undo_dirs(const char *dir, const char *made)
{
    if (!made[0]) return;
    char tmp[STUDY_PATH_CAP];
    tb_copy_str(tmp, sizeof tmp, dir);
    for (;;) {
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
        if (rmdir(tmp) != 0 || strcmp(tmp, made) == 0) return;
        char *slash = strrchr(tmp, '/');
        if (!slash || slash == tmp) return;
        *slash = '\0';
    }
}

struct timespec study_deadline(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = ts.tv_nsec + (long long)(timeout_ms > 0 ? timeout_ms : 0) * 1000000LL;
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

tb_study *study_new(void)
{
    tb_study *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    /* waits time out on the monotonic clock: a jump of the wall clock neither stretches nor cuts them */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_cond_init(&s->stop, &ca);
    pthread_condattr_destroy(&ca);
    s->created = NAN;
    s->admitting = 1;
    s->last_record = NAN; /* no record yet: the first one's time replaces it */
    return s;
}

void study_free(tb_study *s)
{
    if (!s) return;
    study_free_state(s);
    free(s->config_ini);
    free(s->job_base_ini);
    free(s->space_ini);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    pthread_cond_destroy(&s->stop);
    free(s);
}

tb_status tb_study_open(const tb_config *cfg, const char *archive_dir, tb_study **out, tb_study_recovery *rec,
                        tb_err *err)
{
    return tb_study_open_opts(cfg, archive_dir, NULL, out, rec, err);
}

tb_status tb_study_open_opts(const tb_config *cfg, const char *archive_dir, const tb_study_options *opt,
                             tb_study **out, tb_study_recovery *rec_out, tb_err *err)
{
    *out = NULL;
    tb_study_options defaults = {0};
    if (!opt) opt = &defaults;
    tb_study_recovery recovery, *rec = &recovery; /* always filled: settling journals what replay found */
    memset(rec, 0, sizeof *rec);
    if (rec_out) memset(rec_out, 0, sizeof *rec_out);
    tb_study *s = study_new();
    if (!s) return tb_fail(err, TB_ENOMEM, "out of memory");
    tb_status st;
    char made[STUDY_PATH_CAP] = "";
    if ((st = tb_study_settings_load(&s->st, &s->space, cfg, err)) != TB_OK) goto fail;
    if (archive_dir && *archive_dir) tb_copy_str(s->st.archive, sizeof s->st.archive, archive_dir);
    if (s->st.task_cache_default &&
        snprintf(s->st.task_cache, sizeof s->st.task_cache, "%s/cache", s->st.archive) >= (int)sizeof s->st.task_cache) {
        st = tb_fail(err, TB_EINVAL, "study.archive is too long for its task cache folder %s/cache", s->st.archive);
        goto fail;
    }
    for (int h = 0; h < TB_HP_COUNT; h++) tb_space_describe(&s->space, (tb_hp)h, s->hp_allowed[h], sizeof s->hp_allowed[h]);
    study_hp_readers(s);
    study_environment(s->environment, sizeof s->environment);
    s->space_ini = tb_space_to_ini(&s->space);
    if (!(s->config_ini = tb_config_to_ini(cfg))) {
        st = tb_fail(err, TB_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = tb_run_sections_ini(cfg, &s->job_base_ini, err)) != TB_OK) goto fail;
    /* the archive directory with its parents before any data loads (a path that cannot be made fails at once);
     * taken back if the study does not open */
    if (make_dirs_noting(s->st.archive, made, sizeof made) != 0) {
        st = tb_fail(err, TB_EIO, "archive %s: cannot create the directory: %s", s->st.archive, strerror(errno));
        goto fail;
    }
    /* the runs' configuration must be valid and the data load before anyone is invited */
    if ((st = probe_task(s, err)) != TB_OK) goto fail;
    if ((st = tb_archive_open(s->st.archive, 1, &s->archive, rec ? &rec->archive : NULL, err)) != TB_OK) goto fail;

    char jpath[STUDY_PATH_CAP];
    snprintf(jpath, sizeof jpath, "%s/study.journal", s->st.archive);
    struct stat sb;
    if (stat(jpath, &sb) == 0 && (st = study_replay(s, jpath, opt->accept_journal_loss, rec, err)) != TB_OK)
        goto fail;
    if ((st = tb_journal_open(jpath, &s->journal, err)) != TB_OK) goto fail;
    char spool[STUDY_PATH_CAP];
    snprintf(spool, sizeof spool, "%s/spool", s->st.archive);
    tb_executor_opts xo = {.kind = s->st.executor, .slots = s->st.slots, .threads_per_run = s->st.threads_per_run,
                           .gpus = s->st.gpus, .runs_per_gpu = s->st.runs_per_gpu,
                           .gpu_memory_mib = s->st.gpu_memory_mib, .spool_dir = spool, .slurm = &s->st.slurm};
    if ((st = tb_executor_create(&xo, &s->exec, err)) != TB_OK) goto fail;

    pthread_mutex_lock(&s->mu);
    double now = tb_utc_now();
    /* the last sign of life of the previous process (before this open's own record) */
    double crash_t = isfinite(s->last_record) ? s->last_record : now;
    int first = !isfinite(s->created);
    rec_buf b = {0};
    rec_i64(&b, "pid", (int64_t)getpid());
    rec_i64(&b, "schema_version", TB_STUDY_SCHEMA_VERSION);
    if (first) rec_str(&b, "config", s->config_ini);
    st = study_commit(s, REC_OPEN, &b, now, 1, err);
    if (st == TB_OK) st = study_settle(s, crash_t, rec, err);
    if (st == TB_OK) st = study_write_tables(s, 1, err);
    if (rec) rec->participants = s->np;
    pthread_mutex_unlock(&s->mu);
    if (st != TB_OK) goto fail;
    study_fill_api(s);
    if (pthread_create(&s->monitor, NULL, study_monitor_main, s) != 0) {
        st = tb_fail(err, TB_ENOMEM, "cannot start the study's monitor thread");
        goto fail;
    }
    s->monitor_started = 1;
    if (rec_out) *rec_out = *rec;
    *out = s;
    return TB_OK;
fail:
    if (rec_out) *rec_out = *rec;
    tb_executor_destroy(s->exec);
    s->exec = NULL;
    tb_journal_close(s->journal);
    if (s->archive) tb_archive_close(s->archive, NULL);
    /* the default task cache inside a study that did not open: taken back with it when empty */
    if (made[0] && s->st.task_cache_default) (void)rmdir(s->st.task_cache);
    undo_dirs(s->st.archive, made);
    study_free(s);
    return st;
}

tb_status tb_study_close(tb_study *s, int wait_finals, tb_err *err)
{
    if (!s) return TB_OK;
    tb_status st = TB_OK;
    tb_err e;
    pthread_mutex_lock(&s->mu);
    s->closing = 1; /* front ends get refused from here on */
    pthread_cond_broadcast(&s->stop);
    /* nobody's clock runs while the study is closed */
    double now = tb_utc_now();
    for (int i = 0; i < s->np; i++) {
        participant *p = &s->p[i];
        if (p->live >= 0 && s->subs[p->live]->job) {
            tb_executor_interrupt(s->exec, s->subs[p->live]->job, "the study was closed while the run was live");
        }
        if (p->state == P_ACTIVE || p->state == P_LOBBY)
            if (study_pause(s, i, "closed", now, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->monitor_started) pthread_join(s->monitor, NULL);
    if (wait_finals) tb_executor_drain(s->exec);
    /* interrupts what is still queued or running; their callbacks record it */
    tb_executor_destroy(s->exec);
    s->exec = NULL;
    pthread_mutex_lock(&s->mu);
    rec_buf b = {0};
    if (study_commit(s, REC_CLOSE, &b, tb_utc_now(), 1, &e) != TB_OK && st == TB_OK)
        st = tb_fail(err, TB_EIO, "%s", e.msg);
    if (study_write_tables(s, 1, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    /* a failure in a callback or the monitor (journal, tables) had nobody to tell until now */
    if (s->bg_err.msg[0] && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", s->bg_err.msg);
    pthread_mutex_unlock(&s->mu);
    tb_journal_sync(s->journal, NULL);
    tb_journal_close(s->journal);
    if (tb_archive_close(s->archive, &e) != TB_OK && st == TB_OK) st = tb_fail(err, TB_EIO, "%s", e.msg);
    study_free(s);
    return st;
}

void tb_study_stop(tb_study *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    s->closing = 1; /* front ends get refused from here on */
    s->change_seq++;
    s->interrupts++; /* and a front end's wait returns at once */
    pthread_cond_broadcast(&s->stop);
    pthread_cond_broadcast(&s->changed);
    for (int i = 0; i < s->np; i++) {
        participant *p = &s->p[i];
        if (p->live >= 0 && s->subs[p->live]->job) tb_executor_interrupt(s->exec, s->subs[p->live]->job, why);
    }
    pthread_mutex_unlock(&s->mu);
}

const tb_study_api *tb_study_api_get(tb_study *s) { return &s->api; }
const tb_study_settings *tb_study_get_settings(const tb_study *s) { return &s->st; }
const tb_space *tb_study_get_space(const tb_study *s) { return &s->space; }
tb_archive *tb_study_archive(tb_study *s) { return s->archive; }

int tb_study_finals_pending(tb_study *s)
{
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->nf; i++) n += !tb_run_status_is_final(s->finals[i].status);
    pthread_mutex_unlock(&s->mu);
    return n;
}
