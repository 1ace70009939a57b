/* csv_export.c: the tidy CSV tables of an archive (csv_export.h, docs/csv.md).
 * Each table goes to a temporary file whose every write, flush, fsync and
 * close is checked; the renames come only after all tables are complete. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv_export.h"

/* One table being written. The first failure is kept (errno and what was
 * being done); every later write is skipped. */
typedef struct csv_file {
    char path[1200], tmp[1300];
    FILE *f;
    int col;            /* cells written in the current row */
    int64_t rows;       /* data rows, the header not counted */
    int failed, err_no;
    const char *doing;  /* "create", "write", "flush", "fsync", "close" */
} csv_file;

enum { T_PARTICIPANTS, T_SUBMISSIONS, T_FINALS, T_RUNS, T_EPOCHS, T_BATCHES, T_SWEEP_RUNS, T_COUNT };
static const char *const table_names[T_COUNT] = {"participants.csv", "submissions.csv", "finals.csv",
                                                 "runs.csv",         "epochs.csv",      "batches.csv",
                                                 "sweep_runs.csv"};

static void csv_fail(csv_file *c, const char *doing)
{
    if (c->failed) return;
    c->failed = 1;
    c->err_no = errno;
    c->doing = doing;
}

static void put(csv_file *c, const char *s, size_t n)
{
    if (c->failed || n == 0) return;
    errno = 0;
    if (fwrite(s, 1, n, c->f) != n) csv_fail(c, "write");
}

static void cell_start(csv_file *c)
{
    if (c->col++) put(c, ",", 1);
}

/* RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled. */
static void cell_str(csv_file *c, const char *s)
{
    cell_start(c);
    if (!s || !*s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        put(c, s, strlen(s));
        return;
    }
    put(c, "\"", 1);
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '"');
        size_t n = q ? (size_t)(q - p) + 1 : strlen(p);
        put(c, p, n);
        if (q) put(c, "\"", 1); /* the quote written above, doubled */
        p += n;
    }
    put(c, "\"", 1);
}

/* A number that reads back to the same double; NaN (and +-Inf, which R and pandas read inconsistently) empty. */
static void cell_f64(csv_file *c, double v)
{
    cell_start(c);
    if (!isfinite(v)) return;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    put(c, buf, strlen(buf));
}

static void cell_i64(csv_file *c, int64_t v)
{
    cell_start(c);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    put(c, buf, (size_t)n);
}

/* an integer, or empty when it is the "none" value */
static void cell_i64_or_empty(csv_file *c, int64_t v, int64_t none)
{
    if (v == none) cell_str(c, "");
    else cell_i64(c, v);
}

static void row_end(csv_file *c, int header)
{
    put(c, "\n", 1);
    c->col = 0;
    if (!header) c->rows++;
}

/* a header row from a list of names ending in NULL */
static void header(csv_file *c, ...)
{
    va_list ap;
    va_start(ap, c);
    for (const char *name; (name = va_arg(ap, const char *));) cell_str(c, name);
    va_end(ap);
    row_end(c, 1);
}

static void csv_open(csv_file *c, const char *dir, const char *name)
{
    memset(c, 0, sizeof *c);
    int n = snprintf(c->path, sizeof c->path, "%s/%s", dir, name);
    snprintf(c->tmp, sizeof c->tmp, "%s/%s.tmp", dir, name);
    if (n < 0 || (size_t)n >= sizeof c->path) {
        errno = ENAMETOOLONG;
        csv_fail(c, "create");
        c->tmp[0] = '\0'; /* nothing to remove */
        return;
    }
    errno = 0;
    if (!(c->f = fopen(c->tmp, "w"))) {
        csv_fail(c, "create");
        return;
    }
    setvbuf(c->f, NULL, _IOFBF, 1 << 20);
}

/* Flush, fsync and close, each checked: a full disk often shows only here. */
static void csv_close(csv_file *c)
{
    if (!c->f) return;
    errno = 0;
    if (!c->failed && fflush(c->f) != 0) csv_fail(c, "flush");
    if (!c->failed && fsync(fileno(c->f)) != 0) csv_fail(c, "fsync");
    if (fclose(c->f) != 0) csv_fail(c, "close");
    c->f = NULL;
}

/* ---- the tables -------------------------------------------------------------------------- */

static void write_participants(csv_file *c, const tb_study_data *d)
{
    header(c, "id", "education", "dl_months", "programming_months", "ml_months", "self_level", "machine", "state",
           "registered_s", "consented_s", "budget_s", "used_s", "credited_s", "submissions", "final_run",
           "final_reason", "final_at_s", "finals_finished", "final_test_accuracy_mean", "final_test_accuracy_sd",
           (const char *)NULL);
    for (int i = 0; i < d->np && !c->failed; i++) {
        const tb_ad_participant *p = &d->participants[i];
        cell_str(c, p->id);
        cell_str(c, p->education);
        cell_f64(c, p->dl_months);
        cell_f64(c, p->programming_months);
        cell_f64(c, p->ml_months);
        cell_i64_or_empty(c, p->self_level, 0);
        cell_i64(c, p->machine);
        cell_str(c, p->state);
        cell_f64(c, p->registered_s);
        cell_f64(c, p->consented_s);
        cell_f64(c, p->budget_s);
        cell_f64(c, p->used_s);
        cell_f64(c, p->credited_s);
        cell_i64(c, p->n_submissions);
        cell_str(c, p->final_run);
        cell_str(c, p->final_reason);
        cell_f64(c, p->final_at_s);
        cell_i64(c, p->finals_finished);
        cell_f64(c, p->final_mean);
        cell_f64(c, p->final_sd);
        row_end(c, 0);
    }
}

static void write_submissions(csv_file *c, const tb_study_data *d)
{
    const char *fixed[] = {"participant", "number",   "run_id",     "status",      "message",
                           "submitted_s", "started_s", "ended_s",   "queued_s",    "training_s",
                           "epochs_done", "val_accuracy", "val_loss", "test_accuracy"};
    for (size_t k = 0; k < TB_ARRAY_LEN(fixed); k++) cell_str(c, fixed[k]);
    for (int h = 0; h < TB_AD_HP; h++) {
        char name[96];
        cell_str(c, d->hp_names[h]);
        snprintf(name, sizeof name, "given_%s", d->hp_names[h]);
        cell_str(c, name);
        snprintf(name, sizeof name, "comment_%s", d->hp_names[h]);
        cell_str(c, name);
    }
    cell_str(c, "presets_kept");
    row_end(c, 1);
    for (int i = 0; i < d->ns && !c->failed; i++) {
        const tb_ad_submission *s = &d->subs[i];
        cell_str(c, d->participants[s->participant].id);
        cell_i64(c, s->number);
        cell_str(c, s->run_id);
        cell_str(c, s->status);
        cell_str(c, s->message);
        cell_f64(c, s->submitted_s);
        cell_f64(c, s->started_s);
        cell_f64(c, s->ended_s);
        cell_f64(c, s->queued_s);
        cell_f64(c, s->training_s);
        cell_i64(c, s->epochs_done);
        cell_f64(c, s->val_accuracy);
        cell_f64(c, s->val_loss);
        cell_f64(c, s->test_accuracy);
        for (int h = 0; h < TB_AD_HP; h++) {
            cell_str(c, s->values[h]);
            cell_i64(c, s->given[h]);
            cell_str(c, s->comments[h]);
        }
        cell_i64(c, s->presets_kept);
        row_end(c, 0);
    }
}

static void write_finals(csv_file *c, const tb_study_data *d)
{
    header(c, "participant", "seed", "run_id", "status", "test_accuracy", "started_s", "ended_s", (const char *)NULL);
    for (int i = 0; i < d->nf && !c->failed; i++) {
        const tb_ad_final *x = &d->finals[i];
        cell_str(c, d->participants[x->participant].id);
        cell_i64(c, x->seed);
        cell_str(c, x->run_id);
        cell_str(c, x->status);
        cell_f64(c, x->test_accuracy);
        cell_f64(c, x->started_s);
        cell_f64(c, x->ended_s);
        row_end(c, 0);
    }
}

static void write_runs(csv_file *c, const tb_study_data *d)
{
    header(c, "run_id", "kind", "participant", "status", "created_s", "started_s", "ended_s", "epochs", "batches",
           "val_accuracy", "test_accuracy", (const char *)NULL);
    for (int i = 0; i < d->nruns && !c->failed; i++) {
        const tb_ad_run *r = &d->runs[i];
        cell_str(c, r->id);
        cell_str(c, r->kind);
        cell_str(c, r->participant);
        cell_str(c, r->status);
        cell_f64(c, r->created_s);
        cell_f64(c, r->started_s);
        cell_f64(c, r->ended_s);
        cell_i64(c, r->epochs);
        cell_i64(c, r->batches);
        cell_f64(c, r->val_accuracy);
        cell_f64(c, r->test_accuracy);
        row_end(c, 0);
    }
}

/* epochs.csv and batches.csv together: each run's curves file is read once. */
static void write_curves(csv_file *e, csv_file *b, const tb_study_data *d, tb_csv_result *res)
{
    header(e, "run_id", "epoch", "train_loss", "val_loss", "val_accuracy", "seconds", (const char *)NULL);
    header(b, "run_id", "step", "loss", (const char *)NULL);
    size_t used = strlen(res->notes);
    for (int i = 0; i < d->nruns && !e->failed && !b->failed; i++) {
        const char *id = d->runs[i].id;
        tb_ad_curves cv;
        tb_err err = {{0}};
        if (tb_study_data_curves(d, id, &cv, &err) != TB_OK) {
            tb_appendf(res->notes, sizeof res->notes, &used, "epochs.csv, batches.csv: %s: left out\n", err.msg);
            continue;
        }
        for (int k = 0; k < cv.n_epochs && !e->failed; k++) {
            cell_str(e, id);
            cell_i64(e, cv.epoch[k]);
            cell_f64(e, cv.train_loss[k]);
            cell_f64(e, cv.val_loss[k]);
            cell_f64(e, cv.val_accuracy[k]);
            cell_f64(e, cv.seconds[k]);
            row_end(e, 0);
        }
        for (int64_t k = 0; k < cv.n_batches && !b->failed; k++) {
            cell_str(b, id);
            cell_i64(b, cv.step[k]);
            cell_f64(b, cv.loss[k]);
            row_end(b, 0);
        }
        tb_ad_curves_free(&cv);
    }
}

/* The varied keys besides Table 1's, over all sweeps, in first-seen order. */
typedef struct other_keys {
    char names[64][64];
    int n;
} other_keys;

static void write_sweep_runs(csv_file *c, const tb_study_data *d)
{
    other_keys keys = {.n = 0};
    for (int s = 0; s < d->nsweeps; s++)
        for (int k = 0; k < d->sweeps[s].n_other_keys; k++) {
            int seen = 0;
            for (int j = 0; j < keys.n && !seen; j++) seen = !strcmp(keys.names[j], d->sweeps[s].other_keys[k]);
            if (!seen && keys.n < (int)TB_ARRAY_LEN(keys.names))
                tb_copy_str(keys.names[keys.n++], sizeof keys.names[0], d->sweeps[s].other_keys[k]);
        }
    const char *fixed[] = {"sweep",         "kind",    "run_id",   "config",       "seed",
                           "fold",          "status",  "message",  "val_accuracy", "val_loss",
                           "test_accuracy", "seconds", "macro_f1", "trainable_parameters"};
    for (size_t k = 0; k < TB_ARRAY_LEN(fixed); k++) cell_str(c, fixed[k]);
    for (int h = 0; h < TB_AD_HP; h++) cell_str(c, d->hp_names[h]);
    for (int k = 0; k < keys.n; k++) cell_str(c, keys.names[k]);
    row_end(c, 1);
    for (int i = 0; i < d->nsweep_runs && !c->failed; i++) {
        const tb_ad_sweep_run *r = &d->sweep_runs[i];
        const tb_ad_sweep *sw = &d->sweeps[r->sweep];
        cell_str(c, sw->id);
        cell_str(c, sw->kind);
        cell_str(c, r->run_id);
        cell_i64(c, r->config);
        cell_i64(c, r->seed);
        cell_i64_or_empty(c, r->fold, -1);
        cell_str(c, r->status);
        cell_str(c, r->message);
        cell_f64(c, r->val_accuracy);
        cell_f64(c, r->val_loss);
        cell_f64(c, r->test_accuracy);
        cell_f64(c, r->seconds);
        cell_f64(c, r->macro_f1);
        cell_i64_or_empty(c, r->trainable_parameters, -1);
        for (int h = 0; h < TB_AD_HP; h++) cell_str(c, r->values[h]);
        for (int k = 0; k < keys.n; k++) {
            const char *v = "";
            for (int j = 0; j < sw->n_other_keys; j++)
                if (!strcmp(sw->other_keys[j], keys.names[k])) v = r->other_values[j];
            cell_str(c, v);
        }
        row_end(c, 0);
    }
}

/* ---- the export ------------------------------------------------------------------------- */

tb_status tb_csv_export(const tb_study_data *d, const char *out_dir, tb_csv_result *result, tb_err *err)
{
    tb_csv_result local;
    tb_csv_result *res = result ? result : &local;
    memset(res, 0, sizeof *res);
    if (tb_make_dirs(out_dir) != 0)
        return tb_fail(err, TB_EIO, "cannot create the output directory %s: %s", out_dir, strerror(errno));
    csv_file t[T_COUNT];
    memset(t, 0, sizeof t);
    int failed = -1;
    for (int k = 0; k < T_COUNT && failed < 0; k++) {
        csv_open(&t[k], out_dir, table_names[k]);
        if (t[k].failed) failed = k;
    }
    if (failed < 0) {
        write_participants(&t[T_PARTICIPANTS], d);
        write_submissions(&t[T_SUBMISSIONS], d);
        write_finals(&t[T_FINALS], d);
        write_runs(&t[T_RUNS], d);
        write_curves(&t[T_EPOCHS], &t[T_BATCHES], d, res);
        write_sweep_runs(&t[T_SWEEP_RUNS], d);
    }
    for (int k = 0; k < T_COUNT; k++) {
        csv_close(&t[k]);
        if (t[k].failed && failed < 0) failed = k;
    }
    if (failed >= 0) {
        const csv_file *c = &t[failed];
        tb_fail(err, TB_EIO, "cannot %s %s (%s): %s; no table in %s was changed", c->doing, c->path,
                c->tmp, c->err_no ? strerror(c->err_no) : "unknown reason", out_dir);
        for (int k = 0; k < T_COUNT; k++)
            if (t[k].tmp[0]) unlink(t[k].tmp);
        return TB_EIO;
    }
    for (int k = 0; k < T_COUNT; k++) {
        if (tb_rename_into_place(t[k].tmp, t[k].path) != 0) {
            int e = errno;
            for (int j = k; j < T_COUNT; j++) unlink(t[j].tmp);
            return tb_fail(err, TB_EIO, "cannot put %s in place: %s (the tables before it are written)", t[k].path,
                           strerror(e));
        }
    }
    if (tb_fsync_path(out_dir, 1) != 0)
        return tb_fail(err, TB_EIO, "cannot fsync the directory %s: %s", out_dir, strerror(errno));
    res->participants = t[T_PARTICIPANTS].rows;
    res->submissions = t[T_SUBMISSIONS].rows;
    res->finals = t[T_FINALS].rows;
    res->runs = t[T_RUNS].rows;
    res->epochs = t[T_EPOCHS].rows;
    res->batches = t[T_BATCHES].rows;
    res->sweep_runs = t[T_SWEEP_RUNS].rows;
    return TB_OK;
}
