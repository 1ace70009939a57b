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

static int write_participants(tb_study *s, hid_t g, double now)
{
    int n = s->np, rc = 0;
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
        rc |= tb_h5_column_str(g, "id", id, N);
        rc |= tb_h5_column_str(g, "education", edu, N);
        rc |= tb_h5_column_f64(g, "dl_months", col[0], N);
        rc |= tb_h5_column_f64(g, "programming_months", col[1], N);
        rc |= tb_h5_column_f64(g, "ml_months", col[2], N);
        rc |= tb_h5_column_i64(g, "self_level", i64[0], N);
        rc |= tb_h5_column_f64(g, "registered_s", col[3], N);
        rc |= tb_h5_column_f64(g, "consented_s", col[4], N);
        rc |= tb_h5_column_str(g, "state", state, N);
        rc |= tb_h5_column_f64(g, "budget_s", col[10], N);
        rc |= tb_h5_column_f64(g, "used_s", col[5], N);
        rc |= tb_h5_column_f64(g, "left_s", col[11], N);
        rc |= tb_h5_column_f64(g, "credited_s", col[6], N);
        rc |= tb_h5_column_i64(g, "submissions", i64[1], N);
        rc |= tb_h5_column_str(g, "final_run", fr, N);
        rc |= tb_h5_column_str(g, "final_reason", reason, N);
        rc |= tb_h5_column_f64(g, "final_at_s", col[7], N);
        rc |= tb_h5_column_i64(g, "finals_finished", i64[2], N);
        rc |= tb_h5_column_f64(g, "final_test_accuracy_mean", col[8], N);
        rc |= tb_h5_column_f64(g, "final_test_accuracy_sd", col[9], N);
    }
    free(id), free(edu), free(state), free(fr), free(reason);
    for (int k = 0; k < 12; k++) free(col[k]);
    for (int k = 0; k < 3; k++) free(i64[k]);
    return oom ? -1 : rc;
}

static int write_submissions(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ns;
    int rc = 0;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status), **msg = calloc(N + 1, sizeof *msg),
               **str = calloc(N + 1, sizeof *str);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *i64 = calloc(N + 1, sizeof *i64);
    if (!pid || !run || !status || !msg || !str || !col || !i64) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            submission *u = s->subs[i];
            pid[i] = s->p[u->participant].id, run[i] = u->run_id, status[i] = tb_run_status_name(u->status);
            msg[i] = u->message;
        }
        rc |= tb_h5_column_str(g, "participant", pid, N);
        for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->number;
        rc |= tb_h5_column_i64(g, "number", i64, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "status", status, N);
        rc |= tb_h5_column_str(g, "message", msg, N);
#define F64COL(name, expr)                                                                                         \
    do {                                                                                                           \
        for (size_t i = 0; i < N; i++) {                                                                           \
            submission *u = s->subs[i];                                                                            \
            col[i] = (expr);                                                                                       \
        }                                                                                                          \
        rc |= tb_h5_column_f64(g, name, col, N);                                                                   \
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
        rc |= tb_h5_column_i64(g, "epochs_done", i64, N);
        int64_t given_count;
        for (int h = 0; h < TB_HP_COUNT; h++) {
            const tb_hp_spec *sp = &s->space.hp[h];
            char name[96];
            if (sp->type == TB_HP_CHOICE) {
                for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->values.text[h];
                rc |= tb_h5_column_str(g, tb_hp_names[h], str, N);
            } else {
                /* numbers; NaN where a rejected submission gave something unreadable */
                for (size_t i = 0; i < N; i++) {
                    char *end;
                    const char *t = s->subs[i]->values.text[h];
                    col[i] = strtod(t, &end);
                    if (end == t || *end) col[i] = NAN;
                }
                rc |= tb_h5_column_f64(g, tb_hp_names[h], col, N);
            }
            snprintf(name, sizeof name, "given_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) i64[i] = s->subs[i]->given[h];
            rc |= tb_h5_column_i64(g, name, i64, N);
            snprintf(name, sizeof name, "comment_%s", tb_hp_names[h]);
            for (size_t i = 0; i < N; i++) str[i] = s->subs[i]->comments[h];
            rc |= tb_h5_column_str(g, name, str, N);
        }
        for (size_t i = 0; i < N; i++) {
            given_count = 0;
            for (int h = 0; h < TB_HP_COUNT; h++) given_count += !s->space.hp[h].mandatory && !s->subs[i]->given[h];
            i64[i] = given_count;
        }
        rc |= tb_h5_column_i64(g, "presets_kept", i64, N);
    }
    free(pid), free(run), free(status), free(msg), free(str), free(col), free(i64);
    return rc;
}

static int write_finals(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->nf;
    int rc = 0;
    const char **pid = calloc(N + 1, sizeof *pid), **run = calloc(N + 1, sizeof *run),
               **status = calloc(N + 1, sizeof *status);
    double *col = calloc(N + 1, sizeof *col);
    int64_t *seed = calloc(N + 1, sizeof *seed);
    if (!pid || !run || !status || !col || !seed) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            final_eval *f = &s->finals[i];
            pid[i] = s->p[f->participant].id, run[i] = f->run_id, status[i] = tb_run_status_name(f->status);
            seed[i] = f->seed;
        }
        rc |= tb_h5_column_str(g, "participant", pid, N);
        rc |= tb_h5_column_i64(g, "seed", seed, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "status", status, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].test_accuracy;
        rc |= tb_h5_column_f64(g, "test_accuracy", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].started;
        rc |= tb_h5_column_f64(g, "started_s", col, N);
        for (size_t i = 0; i < N; i++) col[i] = s->finals[i].ended;
        rc |= tb_h5_column_f64(g, "ended_s", col, N);
    }
    free(pid), free(run), free(status), free(col), free(seed);
    return rc;
}

static int write_events(tb_study *s, hid_t g)
{
    size_t N = (size_t)s->ne;
    int rc = 0;
    const char **type = calloc(N + 1, sizeof *type), **pid = calloc(N + 1, sizeof *pid),
               **run = calloc(N + 1, sizeof *run), **detail = calloc(N + 1, sizeof *detail);
    double *t = calloc(N + 1, sizeof *t);
    if (!type || !pid || !run || !detail || !t) rc = -1;
    if (!rc) {
        for (size_t i = 0; i < N; i++) {
            event_row *e = &s->events[i];
            t[i] = e->t;
            type[i] = e->type > 0 && e->type < REC_TYPE_COUNT ? study_record_names[e->type] : "unknown";
            pid[i] = e->participant, run[i] = e->run_id, detail[i] = e->detail;
        }
        rc |= tb_h5_column_f64(g, "t_s", t, N);
        rc |= tb_h5_column_str(g, "type", type, N);
        rc |= tb_h5_column_str(g, "participant", pid, N);
        rc |= tb_h5_column_str(g, "run_id", run, N);
        rc |= tb_h5_column_str(g, "detail", detail, N);
    }
    free(type), free(pid), free(run), free(detail), free(t);
    return rc;
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
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return tb_fail(err, TB_EIO, "study tables %s: cannot create it", tmp);
    int rc = 0;
    char iso[32];
    rc |= tb_h5_attr_str(f, "format", "tunebench-study");
    rc |= tb_h5_attr_i64(f, "schema_version", TB_STUDY_SCHEMA_VERSION);
    tb_iso_utc(now, iso);
    rc |= tb_h5_attr_str(f, "updated", iso);
    rc |= tb_h5_attr_f64(f, "updated_s", now);
    hid_t g = tb_h5_group(f, "study");
    if (g < 0) rc = -1;
    else {
        tb_iso_utc(s->created, iso);
        rc |= tb_h5_attr_str(g, "title", s->st.title);
        rc |= tb_h5_attr_str(g, "briefing", s->st.briefing);
        rc |= tb_h5_attr_str(g, "created", iso);
        rc |= tb_h5_attr_f64(g, "created_s", s->created);
        rc |= tb_h5_attr_str(g, "config", s->config_ini);
        rc |= tb_h5_attr_str(g, "space", s->space_ini ? s->space_ini : "");
        rc |= tb_h5_attr_str(g, "environment", s->environment);
        rc |= tb_h5_attr_f64(g, "budget_s", s->st.budget_s);
        rc |= tb_h5_attr_i64(g, "slots", s->st.slots);
        rc |= tb_h5_attr_i64(g, "max_active", study_max_active(s));
        rc |= tb_h5_attr_i64(g, "train_count", s->st.train_count);
        rc |= tb_h5_attr_str(g, "budget_policy",
                             "clock runs only while admitted; at most max_active participants admitted, one live "
                             "run each; queue waits and crash-interrupted training credited back; lobby time not "
                             "counted");
        rc |= tb_h5_column_i64(g, "final_seeds", s->st.final_seeds, (size_t)s->st.n_final_seeds);
        H5Gclose(g);
    }
    const struct {
        const char *name;
        int (*fn)(tb_study *, hid_t);
    } tables[] = {{"submissions", write_submissions}, {"finals", write_finals}, {"events", write_events}};
    if ((g = tb_h5_group(f, "participants")) < 0) rc = -1;
    else {
        rc |= write_participants(s, g, now);
        H5Gclose(g);
    }
    for (size_t k = 0; k < TB_ARRAY_LEN(tables); k++) {
        if ((g = tb_h5_group(f, tables[k].name)) < 0) {
            rc = -1;
            continue;
        }
        rc |= tables[k].fn(s, g);
        H5Gclose(g);
    }
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "study tables %s: cannot write them", tmp);
    }
    if ((durable ? tb_rename_durable(tmp, path) : rename(tmp, path)) != 0) {
        unlink(tmp);
        return tb_fail(err, TB_EIO, "study tables %s: cannot put it in place: %s", path, strerror(errno));
    }
    s->dirty = 0;
    return TB_OK;
}
