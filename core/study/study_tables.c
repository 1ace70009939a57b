/* study_tables.c: DIR/study.h5, the tables analysts read (participants,
 * submissions, finals, events, and the study's settings as attributes),
 * rewritten from memory into a temporary file and renamed, so it is always
 * complete. Reads the model; changes nothing but the dirty flag. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "store/h5util.h"
#include "study_internal.h"

#ifndef TB_VERSION
#define TB_VERSION "unknown"
#endif

void study_environment(char *out, size_t cap)
{
    struct utsname u;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (uname(&u) != 0) memset(&u, 0, sizeof u);
    snprintf(out, cap, "tunebench %s; host %s; %s %s %s; %ld CPUs; HDF5 %d.%d.%d", TB_VERSION, host, u.sysname,
             u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN), H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE);
}

/* Each table writer below records an HDF5 failure in w and returns TB_OK,
 * or returns TB_ENOMEM when it could not allocate its columns. */
static tb_status write_participants(tb_h5_writer *w, tb_study *s, hid_t g, double now)
{
    int n = s->np;
    size_t N = (size_t)n;
    const char **id = calloc(N + 1, sizeof *id), **edu = calloc(N + 1, sizeof *edu),
               **state = calloc(N + 1, sizeof *state), **fr = calloc(N + 1, sizeof *fr),
               **reason = calloc(N + 1, sizeof *reason);
    double *col[12];
    int64_t *i64[3];
    int oom = !id || !edu || !state || !fr || !reason;
    for (int k = 0; k < 12; k++) oom |= !(col[k] = calloc(N + 1, sizeof(double)));
    for (int k = 0; k < 3; k++) oom |= !(i64[k] = calloc(N + 1, sizeof(int64_t)));
    if (!oom) {
        for (int i = 0; i < n; i++) {
            participant *p = &s->p[i];
            id[i] = p->id, edu[i] = p->education, fr[i] = p->final_run, reason[i] = p->final_reason;
            state[i] = study_state_name(p);
            col[0][i] = p->dl_months, col[1][i] = p->programming_months, col[2][i] = p->ml_months;
            col[3][i] = p->registered, col[4][i] = p->consented;
            col[5][i] = study_used_seconds(s, p, now), col[6][i] = p->credited, col[7][i] = p->final_at;
            i64[0][i] = p->self_level, i64[1][i] = p->n_submissions;
            final_stats fs = study_finals_of(s, i);
            i64[2][i] = fs.finished;
            col[8][i] = fs.mean;
            col[9][i] = fs.sd;
            col[10][i] = s->st.budget_s;
            col[11][i] = s->st.budget_s - col[5][i];
        }
        tb_h5w_column_str(w, g, "id", id, N);
        tb_h5w_column_str(w, g, "education", edu, N);
        tb_h5w_column_f64(w, g, "dl_months", col[0], N);
        tb_h5w_column_f64(w, g, "programming_months", col[1], N);
        tb_h5w_column_f64(w, g, "ml_months", col[2], N);
        tb_h5w_column_i64(w, g, "self_level", i64[0], N);
        tb_h5w_column_f64(w, g, "registered_s", col[3], N);
        tb_h5w_column_f64(w, g, "consented_s", col[4], N);
        tb_h5w_column_str(w, g, "state", state, N);
        tb_h5w_column_f64(w, g, "budget_s", col[10], N);
        tb_h5w_column_f64(w, g, "used_s", col[5], N);
        tb_h5w_column_f64(w, g, "left_s", col[11], N);
        tb_h5w_column_f64(w, g, "credited_s", col[6], N);
        tb_h5w_column_i64(w, g, "submissions", i64[1], N);
        tb_h5w_column_str(w, g, "final_run", fr, N);
        tb_h5w_column_str(w, g, "final_reason", reason, N);
        tb_h5w_column_f64(w, g, "final_at_s", col[7], N);
        tb_h5w_column_i64(w, g, "finals_finished", i64[2], N);
        tb_h5w_column_f64(w, g, "final_test_accuracy_mean", col[8], N);
        tb_h5w_column_f64(w, g, "final_test_accuracy_sd", col[9], N);
    }
    free(id), free(edu), free(state), free(fr), free(reason);
    for (int k = 0; k < 12; k++) free(col[k]);
    for (int k = 0; k < 3; k++) free(i64[k]);
    return oom ? TB_ENOMEM : TB_OK;
}

static tb_status write_submissions(tb_h5_writer *w, tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ns;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status), **msg = calloc(N + 1, sizeof *msg),
               **str = calloc(N + 1, sizeof *str);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *i64 = calloc(N + 1, sizeof *i64);
    int oom = !pid || !run || !status || !msg || !str || !col || !i64;
    if (!oom) {
        for (size_t i = 0; i < N; i++) {
            submission *u = s->subs[i];
            pid[i] = s->p[u->participant].id, run[i] = u->run_id, status[i] = tb_run_status_name(u->status);
            msg[i] = u->message;
        }
        tb_h5w_column_str(w, g, "participant", pid, N);
        for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->number;
        tb_h5w_column_i64(w, g, "number", i64, N);
        tb_h5w_column_str(w, g, "run_id", run, N);
        tb_h5w_column_str(w, g, "status", status, N);
        tb_h5w_column_str(w, g, "message", msg, N);
#define F64COL(name, expr)                                                                                         \
    do {                                                                                                           \
        for (size_t i = 0; i < N; i++) {                                                                           \
            submission *u = s->subs[i];                                                                            \
            col[i] = (expr);                                                                                       \
        }                                                                                                          \
        tb_h5w_column_f64(w, g, name, col, N);                                                                     \
    } while (0)
        F64COL("submitted_s", u->submitted);
        F64COL("started_s", u->started);
        F64COL("ended_s", u->ended);
        F64COL("queued_s", isfinite(u->started) ? u->started - u->submitted : NAN);
        F64COL("training_s", isfinite(u->started) && isfinite(u->ended) ? u->ended - u->started : NAN);
        F64COL("val_accuracy", u->val_accuracy);
        F64COL("val_loss", u->val_loss);
        F64COL("test_accuracy", u->test_accuracy);
#undef F64COL
        for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->epoch;
        tb_h5w_column_i64(w, g, "epochs_done", i64, N);
        int64_t given_count;
        for (int h = 0; h < TB_HP_COUNT; h++) {
            const tb_hp_spec *sp = &s->space.hp[h];
            char name[96];
            if (sp->type == TB_HP_CHOICE) {
                for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->values.text[h];
                tb_h5w_column_str(w, g, tb_hp_names[h], str, N);
            } else {
                /* numbers; NaN where a rejected submission gave something unreadable */
                for (size_t i = 0; i < N; i++) {
                    char *end;
                    const char *t = s->subs[i]->values.text[h];
                    col[i] = strtod(t, &end);
                    if (end == t || *end) col[i] = NAN;
                }
                tb_h5w_column_f64(w, g, tb_hp_names[h], col, N);
            }
            snprintf(name, sizeof name, "given_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->given[h];
            tb_h5w_column_i64(w, g, name, i64, N);
            snprintf(name, sizeof name, "comment_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->comments[h];
            tb_h5w_column_str(w, g, name, str, N);
        }
        for (size_t i = 0; i < N; i++) {
            given_count = 0;
            for (int h = 0; h < TB_HP_COUNT; h++) given_count += !s->space.hp[h].mandatory && !s->subs[i]->given[h];
            i64[i] = given_count;
        }
        tb_h5w_column_i64(w, g, "presets_kept", i64, N);
    }
    free(pid), free(run), free(status), free(msg), free(str), free(col), free(i64);
    return oom ? TB_ENOMEM : TB_OK;
}

static tb_status write_finals(tb_h5_writer *w, tb_study *s, hid_t g)
{
    size_t N = (size_t)s->nf;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *seed = calloc(N + 1, sizeof *seed);
    int oom = !pid || !run || !status || !col || !seed;
    if (!oom) {
        for (size_t i = 0; i < N; i++) {
            final_eval *f = &s->finals[i];
            pid[i] = s->p[f->participant].id, run[i] = f->run_id, status[i] = tb_run_status_name(f->status);
            seed[i] = f->seed;
        }
        tb_h5w_column_str(w, g, "participant", pid, N);
        tb_h5w_column_i64(w, g, "seed", seed, N);
        tb_h5w_column_str(w, g, "run_id", run, N);
        tb_h5w_column_str(w, g, "status", status, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].test_accuracy;
        tb_h5w_column_f64(w, g, "test_accuracy", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].started;
        tb_h5w_column_f64(w, g, "started_s", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].ended;
        tb_h5w_column_f64(w, g, "ended_s", col, N);
    }
    free(pid), free(run), free(status), free(col), free(seed);
    return oom ? TB_ENOMEM : TB_OK;
}

static tb_status write_events(tb_h5_writer *w, tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ne;
    const char **type = calloc(N + 1, sizeof *type), **pid = calloc(N + 1, sizeof *pid),
               **run = calloc(N + 1, sizeof *run), **detail = calloc(N + 1, sizeof *detail);
    double *t = calloc(N + 1, sizeof *t);
    int oom = !type || !pid || !run || !detail || !t;
    if (!oom) {
        for (size_t i = 0; i < N; i++) {
            event_row *e = &s->events[i];
            t[i] = e->t;
            type[i] = e->type > 0 && e->type < REC_TYPE_COUNT ? study_record_names[e->type] : "unknown";
            pid[i] = e->participant, run[i] = e->run_id, detail[i] = e->detail;
        }
        tb_h5w_column_f64(w, g, "t_s", t, N);
        tb_h5w_column_str(w, g, "type", type, N);
        tb_h5w_column_str(w, g, "participant", pid, N);
        tb_h5w_column_str(w, g, "run_id", run, N);
        tb_h5w_column_str(w, g, "detail", detail, N);
    }
    free(type), free(pid), free(run), free(detail), free(t);
    return oom ? TB_ENOMEM : TB_OK;
}

/* The whole file: the study's settings as attributes, then one group per
 * table. HDF5 failures are recorded in w; out of memory is returned (TB_ENOMEM). */
static tb_status write_tables(tb_h5_writer *w, tb_study *s, hid_t f, double now)
{
    char iso[32];
    tb_h5w_attr_str(w, f, "format", "tunebench-study");
    tb_h5w_attr_i64(w, f, "schema_version", TB_STUDY_SCHEMA_VERSION);
    tb_iso_utc(now, iso);
    tb_h5w_attr_str(w, f, "updated", iso);
    tb_h5w_attr_f64(w, f, "updated_s", now);
    hid_t g = tb_h5w_group(w, f, "study");
    tb_iso_utc(s->created, iso);
    tb_h5w_attr_str(w, g, "title", s->st.title);
    tb_h5w_attr_str(w, g, "briefing", s->st.briefing);
    tb_h5w_attr_str(w, g, "created", iso);
    tb_h5w_attr_f64(w, g, "created_s", s->created);
    tb_h5w_attr_str(w, g, "config", s->config_ini);
    tb_h5w_attr_str(w, g, "space", s->space_ini ? s->space_ini : "");
    tb_h5w_attr_str(w, g, "environment", s->environment);
    tb_h5w_attr_f64(w, g, "budget_s", s->st.budget_s);
    tb_h5w_attr_i64(w, g, "slots", s->st.slots);
    tb_h5w_attr_i64(w, g, "max_active", study_max_active(s));
    tb_h5w_attr_i64(w, g, "train_count", s->st.train_count);
    tb_h5w_attr_str(w, g, "budget_policy",
                    "clock runs only while admitted; at most max_active participants admitted, one live "
                    "run each; queue waits and crash-interrupted training credited back; lobby time not "
                    "counted");
    tb_h5w_column_i64(w, g, "final_seeds", s->st.final_seeds, (size_t)s->st.n_final_seeds);
    tb_h5w_close_group(w, g);

    tb_status st = TB_OK;
    if (tb_h5w_ok(w)) {
        g = tb_h5w_group(w, f, "participants");
        if (g >= 0) st = write_participants(w, s, g, now);
        tb_h5w_close_group(w, g);
    }
    const struct {
        const char *name;
        tb_status (*fn)(tb_h5_writer *, tb_study *, hid_t);
    } tables[] = {{"submissions", write_submissions}, {"finals", write_finals}, {"events", write_events}};
    for (size_t k = 0; k < TB_ARRAY_LEN(tables) && st == TB_OK && tb_h5w_ok(w); k++) {
        g = tb_h5w_group(w, f, tables[k].name);
        if (g >= 0) st = tables[k].fn(w, s, g);
        tb_h5w_close_group(w, g);
    }
    return st;
}

/* Through a temporary file and a rename.
 * The periodic rewrites skip the fsyncs (the journal is the truth and open
 * rebuilds the tables from it); open and close make them durable. */
tb_status study_write_tables(tb_study *s, int durable, tb_err *err)
{
    char path[STUDY_PATH_CAP], tmp[STUDY_PATH_CAP];
    snprintf(path, sizeof path, "%s/study.h5", tb_archive_dir(s->archive));
    snprintf(tmp, sizeof tmp, "%s/study.h5.tmp", tb_archive_dir(s->archive));
    double now = tb_utc_now();
    hid_t f = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    char why[128];
    if (f < 0) return tb_fail(err, TB_EIO, "study tables %s: cannot create it%s", tmp, tb_h5_errno_suffix(errno, why));
    tb_h5_writer w;
    tb_h5w_init(&w, tmp);
    tb_status st = write_tables(&w, s, f, now);
    tb_h5w_close_file(&w, f);
    if (st != TB_OK || !tb_h5w_ok(&w)) {
        unlink(tmp);
        /* "cannot write dataset /submissions/val_accuracy in DIR/study.h5.tmp (reason)" */
        if (!tb_h5w_ok(&w)) return tb_h5w_finish(&w, err);
        return tb_fail(err, st, "study tables %s: out of memory for the tables", tmp);
    }
    if ((durable ? tb_rename_durable(tmp, path) : rename(tmp, path)) != 0) {
        int e = errno; /* before unlink can change it */
        unlink(tmp);
        return tb_fail(err, TB_EIO, "study tables %s: cannot put it in place: %s", path, strerror(e));
    }
    s->dirty = 0;
    return TB_OK;
}
