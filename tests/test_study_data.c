/* test_study_data.c: an archive read for analysis (core/analysis/study_data.h)
 * and its CSV export (core/analysis/csv_export.h, `tunebench export --csv`).
 * A real archive is made through the study core (two participants, a
 * rejected and finished submissions with comments holding a comma, a quote
 * and a line break, final evaluations) plus `tunebench sweep --random 3`;
 * the tables read back must be what was submitted, the CSV files must parse
 * back (RFC 4180) to the same; a live archive (a run training, its curves
 * SWMR-written) exports from another process; missing pieces (no study.h5, a
 * run file gone, columns missing) are noted; an unwritable output or a full
 * disk is a clear error and leaves no half file. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analysis/csv_export.h"
#include "store/h5util.h"
#include "analysis/study_data.h"
#include "study/study.h"
#include "tb_test.h"

static char tmpdir[512];
static char task_path[1024];

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "study_data");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 480, 120, 120, 4, 12, 7);
}

static void teardown(void)
{
    tbt_rm_rf(tmpdir);
}

/* ---- a study through the front-end API (as tests/test_study.c) -------------------------- */

static tb_config *study_config(const char *archive)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\ntitle = data study\narchive = %s/%s\nfinal_seeds = 11,12\nslots = 2\n"
             "[space]\nepochs = int 1 1000\nbatch_size = int 1 100000 log\nlr = float 1e-6 1000 log\n",
             tmpdir, archive);
    tb_config *cfg = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(task_path, extra), "study.ini", &err) == TB_OK, "%s",
                  err.msg);
    return cfg;
}

static const char *reg(const tb_study_api *api, const char *id, const char *edu, double months)
{
    static char out[4][64];
    static int k;
    k = (k + 1) % 4;
    tb_fe_participant p = {.id = id, .education = edu, .dl_months = months, .programming_months = NAN,
                           .ml_months = NAN};
    char err[512] = "";
    ck_assert_msg(api->register_participant(api->study, &p, out[k], err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->consent(api->study, out[k], err, sizeof err) == TB_OK, "%s", err);
    int admitted = -1;
    ck_assert_msg(api->enter(api->study, out[k], &admitted, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(admitted, 1);
    return out[k];
}

typedef struct subm {
    const char *v[TB_STUDY_HP_COUNT];
    const char *c[TB_STUDY_HP_COUNT];
} subm;

static void set(subm *m, const char *name, const char *value, const char *comment)
{
    int i = tb_hp_index(name);
    ck_assert_msg(i >= 0, "%s", name);
    m->v[i] = value;
    m->c[i] = comment;
}

static const char *const REJECTED_COMMENT = "too big, \"surely\"";
static const char *const LR_COMMENT = "a guess, \"roughly\"\nsecond line";

/* The archive DIR/arch: ann (a rejected then a finished submission), bob (one
 * finished), both finished with two final seeds each; then a random search of 3. */
static void make_archive(char ann_run[32], char bob_run[32])
{
    tb_config *cfg = study_config("arch");
    tb_study *s = NULL;
    tb_err e = {{0}};
    ck_assert_msg(tb_study_open(cfg, NULL, &s, NULL, &e) == TB_OK, "%s", e.msg);
    const tb_study_api *api = tb_study_api_get(s);
    const char *ann = reg(api, "ann", "bachelor", 0);
    const char *bob = reg(api, "bob", "doctorate", 48);
    char err[512], none[32];
    int bad;
    subm m = {{0}, {0}};
    set(&m, "epochs", "2", NULL);
    set(&m, "batch_size", "32", NULL);
    set(&m, "loss", "cross_entropy", NULL);
    set(&m, "optimizer", "adam", "It is the suggested default value.");
    subm rejected = m;
    set(&rejected, "lr", "2000", REJECTED_COMMENT);
    ck_assert_int_eq(api->submit(api->study, ann, rejected.v, rejected.c, none, &bad, err, sizeof err), TB_EINVAL);
    set(&m, "lr", "0.01", LR_COMMENT);
    ck_assert_msg(api->submit(api->study, ann, m.v, m.c, ann_run, &bad, err, sizeof err) == TB_OK, "%s", err);
    subm b = {{0}, {0}};
    set(&b, "epochs", "1", NULL);
    set(&b, "batch_size", "16", NULL);
    set(&b, "loss", "cross_entropy", NULL);
    set(&b, "optimizer", "sgd", NULL);
    set(&b, "lr", "0.05", NULL);
    set(&b, "momentum", "0.9", "It is just a guess.");
    ck_assert_msg(api->submit(api->study, bob, b.v, b.c, bob_run, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_str_eq(tbt_wait_run_end(api, ann_run, 120).status, "finished");
    ck_assert_str_eq(tbt_wait_run_end(api, bob_run, 120).status, "finished");
    ck_assert_msg(api->finish(api->study, ann, NULL, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->finish(api->study, bob, NULL, err, sizeof err) == TB_OK, "%s", err);
    tbt_wait_finals(api, ann, 180);
    tbt_wait_finals(api, bob, 180);
    ck_assert_msg(tb_study_close(s, 1, &e) == TB_OK, "%s", e.msg);
    tb_config_free(cfg);

    /* a random search of 3 into the same archive, through the executable */
    char ini[1100], cmd[4096];
    snprintf(ini, sizeof ini, "%s/sweep.ini", tmpdir);
    FILE *f = fopen(ini, "w");
    ck_assert(f);
    fputs(tbt_toy_config(task_path, "[space]\nepochs = int 1 2\nbatch_size = int 16 64 log\n"
                                    "lr = float 1e-4 1e-1 log\nloss = choice cross_entropy\n"),
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' sweep '%s' --random 3 --archive '%s/arch' --slots 2 --threads 1 --quiet "
             "> '%s/sweep.txt' 2>&1", tbt_exe(), ini, tmpdir, tmpdir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/sweep.txt'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "cannot show the sweep's output\n");
    }
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "tunebench sweep exited %d (output above)", rc);
}

/* ---- CSV, read back as RFC 4180 says ---------------------------------------------------- */

typedef struct csv_table {
    int rows, cols;   /* rows without the header */
    char **cell;      /* (rows + 1) * cols, row 0 the header */
} csv_table;

/* Parses the whole file; every row must have the header's number of fields. */
static csv_table csv_read(const char *path)
{
    char *text = tbt_slurp(path, NULL);
    csv_table t = {0, 0, NULL};
    size_t cap = 0, n = 0;
    int row_fields = 0, cols = -1;
    const char *p = text;
    char *field = malloc(strlen(text) + 1);
    while (*p) {
        size_t len = 0;
        if (*p == '"') {
            for (p++;; p++) {
                ck_assert_msg(*p, "%s: an unterminated quoted field", path);
                if (*p == '"' && p[1] == '"') field[len++] = '"', p++;
                else if (*p == '"') {
                    p++;
                    break;
                } else field[len++] = *p;
            }
        } else {
            while (*p && *p != ',' && *p != '\n') {
                ck_assert_msg(*p != '"' && *p != '\r', "%s: a quote or CR in an unquoted field", path);
                field[len++] = *p++;
            }
        }
        field[len] = '\0';
        if (n == cap) t.cell = realloc(t.cell, (cap = cap ? 2 * cap : 256) * sizeof *t.cell);
        t.cell[n++] = strdup(field);
        row_fields++;
        ck_assert_msg(*p == ',' || *p == '\n', "%s: a field ends in '%c'", path, *p);
        if (*p++ == '\n') {
            if (cols < 0) cols = row_fields;
            ck_assert_msg(row_fields == cols, "%s: row %d has %d fields, the header %d", path, t.rows, row_fields,
                          cols);
            if (n > (size_t)cols) t.rows++;
            row_fields = 0;
        }
    }
    ck_assert_msg(row_fields == 0, "%s does not end with a line break", path);
    t.cols = cols;
    free(field);
    free(text);
    return t;
}

static int csv_col(const csv_table *t, const char *name)
{
    for (int c = 0; c < t->cols; c++)
        if (!strcmp(t->cell[c], name)) return c;
    ck_abort_msg("no column %s", name);
    return -1;
}

/* row r (0: the first data row), column name */
static const char *csv_at(const csv_table *t, int r, const char *name)
{
    return t->cell[(size_t)(r + 1) * (size_t)t->cols + (size_t)csv_col(t, name)];
}

static void csv_free(csv_table *t)
{
    for (size_t i = 0; i < (size_t)(t->rows + 1) * (size_t)t->cols; i++) free(t->cell[i]);
    free(t->cell);
}

/* the entries of dir with the suffix */
static int count_files(const char *dir, const char *suffix)
{
    DIR *dp = opendir(dir);
    ck_assert(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name), ls = strlen(suffix);
        n += len > ls && !strcmp(e->d_name + len - ls, suffix);
    }
    closedir(dp);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(a_study_and_a_sweep_read_back)
{
    char ann_run[32], bob_run[32], dir[1100];
    make_archive(ann_run, bob_run);
    snprintf(dir, sizeof dir, "%s/arch", tmpdir);
    tb_study_data *d = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_study_data_load(dir, &d, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(d->notes[0] == '\0', "notes on a complete archive:\n%s", d->notes);

    /* the study */
    ck_assert(d->has_study);
    ck_assert_str_eq(d->title, "data study");
    ck_assert_int_eq(d->n_final_seeds, 2);
    ck_assert(d->budget_s > 0);
    ck_assert_str_eq(d->hp_names[tb_hp_index("lr")], "lr");
    ck_assert_int_eq(d->np, 2);
    /* the space's mandatory set, read from /study's space */
    ck_assert_int_eq(d->n_mandatory, 4);
    ck_assert(d->mandatory[0] && d->mandatory[1] && d->mandatory[2] && d->mandatory[3] && !d->mandatory[4]);
    const tb_ad_participant *ann = &d->participants[0], *bob = &d->participants[1];
    ck_assert_str_eq(ann->id, "ann");
    ck_assert_str_eq(ann->education, "bachelor");
    ck_assert(ann->dl_months == 0 && isnan(ann->programming_months) && ann->self_level == 0);
    ck_assert_str_eq(bob->id, "bob");
    ck_assert(bob->dl_months == 48);
    ck_assert(!ann->machine && !bob->machine);
    ck_assert_str_eq(ann->state, "done");
    ck_assert_str_eq(ann->final_run, ann_run);
    ck_assert_str_eq(ann->final_reason, "chosen");
    ck_assert_int_eq(ann->finals_finished, 2);
    ck_assert(ann->final_mean > 0.5 && ann->final_mean <= 1 && ann->final_sd >= 0);

    /* submissions: by participant, then number */
    ck_assert_int_eq(d->ns, 3);
    ck_assert_int_eq(ann->n_submissions, 2);
    ck_assert_int_eq(ann->first_submission, 0);
    ck_assert_int_eq(bob->n_submissions, 1);
    ck_assert_int_eq(bob->first_submission, 2);
    const tb_ad_submission *rej = &d->subs[0], *ok = &d->subs[1], *bs = &d->subs[2];
    int lr = tb_hp_index("lr"), opt = tb_hp_index("optimizer"), beta1 = tb_hp_index("beta1"),
        mom = tb_hp_index("momentum");
    ck_assert(rej->participant == 0 && rej->number == 1);
    ck_assert_str_eq(rej->status, "rejected");
    ck_assert_str_eq(rej->run_id, "");
    ck_assert_str_eq(rej->values[lr], "2000");
    ck_assert_str_eq(rej->comments[lr], REJECTED_COMMENT);
    ck_assert_msg(strstr(rej->message, "lr = 2000"), "%s", rej->message);
    ck_assert(isnan(rej->val_accuracy));
    ck_assert(ok->participant == 0 && ok->number == 2);
    ck_assert_str_eq(ok->status, "finished");
    ck_assert_str_eq(ok->run_id, ann_run);
    ck_assert_str_eq(ok->values[lr], "0.01");
    ck_assert_str_eq(ok->values[opt], "adam");
    ck_assert_str_eq(ok->values[tb_hp_index("epochs")], "2");
    ck_assert_str_eq(ok->values[beta1], "0.9"); /* the preset */
    ck_assert(ok->given[lr] == 1 && ok->given[beta1] == 0);
    ck_assert_str_eq(ok->comments[lr], LR_COMMENT);
    ck_assert_str_eq(ok->comments[opt], "It is the suggested default value.");
    ck_assert_int_eq(ok->epochs_done, 2);
    ck_assert(ok->val_accuracy > 0.5 && ok->training_s > 0 && ok->queued_s >= 0);
    ck_assert(bs->participant == 1 && bs->number == 1);
    ck_assert_str_eq(bs->run_id, bob_run);
    ck_assert_str_eq(bs->values[mom], "0.9");
    ck_assert_str_eq(bs->comments[mom], "It is just a guess.");
    ck_assert_int_eq(bs->presets_kept, ok->presets_kept - 1); /* bob gave momentum too */

    /* finals: two seeds each, the mean is ann's */
    ck_assert_int_eq(d->nf, 4);
    double sum = 0;
    int n_ann = 0;
    for (int i = 0; i < d->nf; i++) {
        ck_assert_str_eq(d->finals[i].status, "finished");
        ck_assert(d->finals[i].seed == 11 || d->finals[i].seed == 12);
        if (d->finals[i].participant == 0) sum += d->finals[i].test_accuracy, n_ann++;
    }
    ck_assert_int_eq(n_ann, 2);
    ck_assert(fabs(sum / 2 - ann->final_mean) < 1e-12);

    /* the sweep, with each run's run file read */
    ck_assert_int_eq(d->nsweeps, 1);
    ck_assert_str_eq(d->sweeps[0].id, "s0001-random");
    ck_assert_str_eq(d->sweeps[0].kind, "random");
    ck_assert_int_eq(d->sweeps[0].first_run, 0);
    ck_assert_int_eq(d->sweeps[0].n_runs, 3);
    ck_assert_int_eq(d->nsweep_runs, 3);
    int finished = 0;
    for (int i = 0; i < 3; i++) {
        const tb_ad_sweep_run *r = &d->sweep_runs[i];
        ck_assert_int_eq(r->config, i);
        ck_assert(r->run_id[0]);
        ck_assert_str_eq(r->values[tb_hp_index("loss")], "cross_entropy");
        ck_assert(r->values[lr][0] && r->values[opt][0]);
        ck_assert(r->trainable_parameters > 0);
        if (!strcmp(r->status, "finished")) {
            finished++;
            ck_assert_msg(r->macro_f1 >= 0 && r->macro_f1 <= 1, "macro F1 %g", r->macro_f1);
            ck_assert(r->test_accuracy >= 0 && r->test_accuracy <= 1);
        }
    }
    ck_assert_msg(finished >= 1, "no sweep run finished");

    /* every run of the archive: 2 submissions, 4 finals, 3 sweep runs */
    ck_assert_int_eq(d->nruns, 9);
    int n_epochs_all = 0;
    for (int i = 0; i < d->nruns; i++) n_epochs_all += (int)d->runs[i].epochs;

    /* an epoch curve */
    int n = 0;
    double *tl = NULL, *vl = NULL, *va = NULL;
    ck_assert_msg(tb_study_data_epochs(d, ann_run, &n, &tl, &vl, &va, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(n, 2);
    ck_assert(tl[0] > 0 && vl[1] > 0);
    ck_assert(va[1] == ok->val_accuracy);
    free(tl), free(vl), free(va);
    ck_assert_int_eq(tb_study_data_epochs(d, ann_run, &n, NULL, NULL, &va, &err), TB_OK); /* only one asked */
    free(va);
    ck_assert_int_eq(tb_study_data_epochs(d, "r999999", &n, &tl, NULL, NULL, &err), TB_EIO);
    ck_assert_msg(strstr(err.msg, "r999999"), "%s", err.msg);
    ck_assert(n == 0 && tl == NULL);

    /* the CSV tables */
    char out[1200], path[1300];
    snprintf(out, sizeof out, "%s/csv/new", tmpdir); /* created, parents too */
    tb_csv_result res;
    ck_assert_msg(tb_csv_export(d, out, &res, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(res.notes[0] == '\0', "%s", res.notes);
    ck_assert_int_eq(count_files(out, ".tmp"), 0);
    ck_assert_int_eq(count_files(out, ".csv"), 7);

    snprintf(path, sizeof path, "%s/submissions.csv", out);
    csv_table t = csv_read(path);
    ck_assert_int_eq(t.rows, 3);
    ck_assert_int_eq(res.submissions, 3);
    ck_assert_int_eq(t.cols, 14 + 3 * 15 + 1);
    ck_assert_str_eq(csv_at(&t, 0, "participant"), "ann");
    ck_assert_str_eq(csv_at(&t, 0, "status"), "rejected");
    ck_assert_str_eq(csv_at(&t, 0, "comment_lr"), REJECTED_COMMENT);
    ck_assert_str_eq(csv_at(&t, 0, "val_accuracy"), ""); /* NaN */
    ck_assert_str_eq(csv_at(&t, 0, "run_id"), "");
    ck_assert_str_eq(csv_at(&t, 1, "comment_lr"), LR_COMMENT);
    ck_assert_str_eq(csv_at(&t, 1, "lr"), "0.01");
    ck_assert_str_eq(csv_at(&t, 1, "given_lr"), "1");
    ck_assert_str_eq(csv_at(&t, 1, "given_beta1"), "0");
    ck_assert_str_eq(csv_at(&t, 1, "optimizer"), "adam");
    ck_assert(strtod(csv_at(&t, 1, "val_accuracy"), NULL) == ok->val_accuracy); /* numbers read back exactly */
    ck_assert_str_eq(csv_at(&t, 2, "participant"), "bob");
    csv_free(&t);

    snprintf(path, sizeof path, "%s/participants.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 2);
    ck_assert_str_eq(csv_at(&t, 0, "id"), "ann");
    ck_assert_str_eq(csv_at(&t, 0, "ml_months"), "");   /* NaN: not given */
    ck_assert_str_eq(csv_at(&t, 0, "self_level"), "");  /* 0: not given */
    ck_assert_str_eq(csv_at(&t, 1, "dl_months"), "48");
    ck_assert_str_eq(csv_at(&t, 1, "machine"), "0");
    ck_assert(strtod(csv_at(&t, 0, "final_test_accuracy_mean"), NULL) == ann->final_mean);
    csv_free(&t);

    snprintf(path, sizeof path, "%s/epochs.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, n_epochs_all);
    ck_assert_int_eq(res.epochs, n_epochs_all);
    ck_assert_int_eq(t.cols, 6);
    int ann_rows = 0;
    for (int r = 0; r < t.rows; r++)
        if (!strcmp(csv_at(&t, r, "run_id"), ann_run)) {
            ann_rows++;
            ck_assert_int_eq(atoi(csv_at(&t, r, "epoch")), ann_rows);
            ck_assert(strtod(csv_at(&t, r, "seconds"), NULL) > 0);
        }
    ck_assert_int_eq(ann_rows, 2);
    csv_free(&t);

    snprintf(path, sizeof path, "%s/batches.csv", out);
    t = csv_read(path);
    ck_assert(t.rows > 0 && t.rows == res.batches);
    csv_free(&t);

    snprintf(path, sizeof path, "%s/finals.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 4);
    csv_free(&t);

    snprintf(path, sizeof path, "%s/runs.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 9);
    csv_free(&t);

    snprintf(path, sizeof path, "%s/sweep_runs.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 3);
    for (int r = 0; r < 3; r++) {
        ck_assert_str_eq(csv_at(&t, r, "sweep"), "s0001-random");
        ck_assert_str_eq(csv_at(&t, r, "fold"), ""); /* no folds */
        ck_assert(atoll(csv_at(&t, r, "trainable_parameters")) == d->sweep_runs[r].trainable_parameters);
        ck_assert_str_eq(csv_at(&t, r, "lr"), d->sweep_runs[r].values[lr]);
        if (!strcmp(csv_at(&t, r, "status"), "finished"))
            ck_assert(strtod(csv_at(&t, r, "macro_f1"), NULL) == d->sweep_runs[r].macro_f1);
    }
    csv_free(&t);

    /* the executable writes the same tables */
    char args[3000], said[4096];
    snprintf(args, sizeof args, "export '%s' --csv '%s/csv/cli'", dir, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", said, sizeof said), 0);
    TBT_ASSERT_HAS(said, "2 participants, 3 submissions, 4 finals, 9 runs");
    snprintf(path, sizeof path, "%s/csv/cli/submissions.csv", tmpdir);
    t = csv_read(path);
    ck_assert_str_eq(csv_at(&t, 1, "comment_lr"), LR_COMMENT);
    csv_free(&t);
    snprintf(args, sizeof args, "export '%s' --csv '%s/x' --single-file '%s/x.h5'", dir, tmpdir, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", said, sizeof said), 2);
    tb_study_data_free(d);

    /* without study.h5 (a sweep-only archive): the sweep, and a note why there are no participants */
    char moved[1300];
    snprintf(path, sizeof path, "%s/study.h5", dir);
    snprintf(moved, sizeof moved, "%s/study.h5.moved", dir);
    ck_assert(rename(path, moved) == 0);
    ck_assert_msg(tb_study_data_load(dir, &d, &err) == TB_OK, "%s", err.msg);
    ck_assert(!d->has_study);
    ck_assert_int_eq(d->np + d->ns + d->nf, 0);
    ck_assert_int_eq(d->nsweeps, 1);
    ck_assert_int_eq(d->nruns, 9);
    TBT_ASSERT_HAS(d->notes, "no study.h5");
    tb_study_data_free(d);

    /* a run file gone: its sweep run is still there, the loss noted */
    char run_file[1300];
    ck_assert(rename(moved, path) == 0);
    ck_assert_msg(tb_study_data_load(dir, &d, &err) == TB_OK, "%s", err.msg);
    snprintf(run_file, sizeof run_file, "%s/runs/%s.run.h5", dir, d->sweep_runs[0].run_id);
    char gone[64];
    snprintf(gone, sizeof gone, "%s", d->sweep_runs[0].run_id);
    tb_study_data_free(d);
    ck_assert(unlink(run_file) == 0);
    ck_assert_msg(tb_study_data_load(dir, &d, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(d->nsweep_runs, 3);
    ck_assert(isnan(d->sweep_runs[0].macro_f1) && d->sweep_runs[0].trainable_parameters == -1);
    TBT_ASSERT_HAS(d->notes, "without a readable run file");
    TBT_ASSERT_HAS(d->notes, gone);
    tb_study_data_free(d);
}
END_TEST

/* While a run trains (its curves file SWMR-written by this process), another
 * process exports the archive: the epochs written so far, and no error. */
START_TEST(a_live_archive_is_read_as_it_is_now)
{
    tb_config *cfg = study_config("live");
    tb_study *s = NULL;
    tb_err e = {{0}};
    ck_assert_msg(tb_study_open(cfg, NULL, &s, NULL, &e) == TB_OK, "%s", e.msg);
    const tb_study_api *api = tb_study_api_get(s);
    const char *ann = reg(api, "tuner-random", "master", 0);
    char err[512], run[32];
    int bad;
    subm m = {{0}, {0}};
    set(&m, "epochs", "1000", NULL);
    set(&m, "batch_size", "4", NULL);
    set(&m, "loss", "cross_entropy", NULL);
    set(&m, "optimizer", "adam", NULL);
    ck_assert_msg(api->submit(api->study, ann, m.v, m.c, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run r;
    double t0 = tb_now();
    do {
        ck_assert(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK);
        ck_assert_msg(tb_now() - t0 < 120, "run %s: %s at epoch %d", run, r.status, r.epoch);
        api->wait(api->study, run, r.seq, 100);
    } while (!(r.epoch >= 2 && !strcmp(r.status, "training")));

    /* study.h5 is rewritten by the study's monitor every few seconds: wait until it shows her */
    char live_dir[1300];
    snprintf(live_dir, sizeof live_dir, "%s/live", tmpdir);
    for (double t1 = tb_now();; nanosleep(&(struct timespec){0, 100000000L}, NULL)) {
        tb_study_data *d = NULL;
        tb_err le;
        int np = tb_study_data_load(live_dir, &d, &le) == TB_OK ? d->np : 0;
        tb_study_data_free(d);
        if (np == 1) break;
        ck_assert_msg(tb_now() - t1 < 20, "study.h5 does not list the participant after 20 s");
    }
    char args[3000], said[8192], path[1300];
    snprintf(args, sizeof args, "export '%s/live' --csv '%s/live_csv'", tmpdir, tmpdir);
    int rc = tbt_tunebench(args, "2>&1", said, sizeof said);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, said);
    TBT_ASSERT_LACKS(said, "left out"); /* the live run's curves were read */
    ck_assert_str_eq(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK ? r.status : "", "training");
    ck_assert_int_eq(api->cancel(api->study, ann, run, err, sizeof err), TB_OK);
    tbt_wait_run_end(api, run, 60);
    ck_assert_msg(tb_study_close(s, 1, &e) == TB_OK, "%s", e.msg);
    tb_config_free(cfg);

    snprintf(path, sizeof path, "%s/live_csv/epochs.csv", tmpdir);
    csv_table t = csv_read(path);
    ck_assert_msg(t.rows >= 2, "%d epochs of the live run", t.rows);
    for (int i = 0; i < t.rows; i++) {
        ck_assert_str_eq(csv_at(&t, i, "run_id"), run);
        ck_assert_int_eq(atoi(csv_at(&t, i, "epoch")), i + 1);
    }
    csv_free(&t);
    snprintf(path, sizeof path, "%s/live_csv/participants.csv", tmpdir);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 1);
    ck_assert_str_eq(csv_at(&t, 0, "machine"), "1"); /* a "tuner-" pseudonym */
    csv_free(&t);
}
END_TEST

/* A study.h5 with pieces missing (an older or damaged file): what is there is
 * read, each missing piece is one line in notes. */
START_TEST(missing_pieces_are_noted)
{
    char dir[1100], path[1300];
    snprintf(dir, sizeof dir, "%s/partial", tmpdir);
    ck_assert(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/study.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = tb_h5_group(f, "participants");
    const char *ids[] = {"ann", "tuner-grid"}, *edu[] = {"master", "bachelor"};
    const double months[] = {3, 0};
    ck_assert(tb_h5_column_str(g, "id", ids, 2) == 0);
    ck_assert(tb_h5_column_str(g, "education", edu, 2) == 0);
    ck_assert(tb_h5_column_f64(g, "dl_months", months, 1) == 0); /* one row short */
    H5Gclose(g);
    H5Fclose(f);
    tb_study_data *d = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_study_data_load(dir, &d, &err) == TB_OK, "%s", err.msg);
    ck_assert(d->has_study);
    ck_assert_int_eq(d->np, 2);
    ck_assert(isnan(d->participants[0].dl_months));
    ck_assert(!d->participants[0].machine && d->participants[1].machine);
    ck_assert_int_eq(d->ns + d->nf + d->nsweeps + d->nruns, 0);
    TBT_ASSERT_HAS(d->notes, "study.h5 has no /study");
    TBT_ASSERT_HAS(d->notes, "column dl_months has 1 rows, not 2");
    TBT_ASSERT_HAS(d->notes, "study.h5 /participants has no column state: left empty");
    TBT_ASSERT_HAS(d->notes, "study.h5 /submissions is missing");
    TBT_ASSERT_HAS(d->notes, "study.h5 /finals is missing");
    TBT_ASSERT_LACKS(d->notes, "/finals has no column"); /* a missing table is one note, not one per column */
    TBT_ASSERT_LACKS(d->notes, "/submissions has no column");
    /* the tables still export, with the rows there are */
    char out[1200];
    snprintf(out, sizeof out, "%s/csv", dir);
    ck_assert_msg(tb_csv_export(d, out, NULL, &err) == TB_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/participants.csv", out);
    csv_table t = csv_read(path);
    ck_assert_int_eq(t.rows, 2);
    ck_assert_str_eq(csv_at(&t, 1, "id"), "tuner-grid");
    ck_assert_str_eq(csv_at(&t, 1, "machine"), "1");
    csv_free(&t);
    snprintf(path, sizeof path, "%s/submissions.csv", out);
    t = csv_read(path);
    ck_assert_int_eq(t.rows, 0);
    csv_free(&t);
    tb_study_data_free(d);
}
END_TEST

START_TEST(not_an_archive_is_an_error)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    ck_assert(mkdir(dir, 0755) == 0);
    tb_study_data *d = NULL;
    tb_err err = {{0}};
    ck_assert_int_eq(tb_study_data_load(dir, &d, &err), TB_EFORMAT);
    ck_assert(d == NULL);
    TBT_ASSERT_HAS(err.msg, "is not a tunebench archive");
    snprintf(dir, sizeof dir, "%s/missing", tmpdir);
    ck_assert_int_eq(tb_study_data_load(dir, &d, &err), TB_EIO);
    TBT_ASSERT_HAS(err.msg, "missing");
}
END_TEST

/* An archive in memory: n participants (enough rows to pass a small file size limit). */
static tb_study_data *fake_data(int n)
{
    tb_study_data *d = calloc(1, sizeof *d);
    ck_assert(d);
    snprintf(d->dir, sizeof d->dir, "%s/nowhere", tmpdir);
    for (int h = 0; h < TB_AD_HP; h++) d->hp_names[h] = tb_hp_names[h];
    d->participants = calloc((size_t)n, sizeof *d->participants);
    for (int i = 0; i < n; i++) {
        tb_ad_participant *p = &d->participants[i];
        snprintf(p->id, sizeof p->id, "%s%03d", i % 2 ? "tuner-" : "p", i);
        snprintf(p->education, sizeof p->education, "master");
        p->dl_months = i, p->programming_months = p->ml_months = NAN;
        p->final_mean = p->final_sd = NAN;
    }
    d->np = n;
    return d;
}

START_TEST(an_unwritable_output_is_a_clear_error)
{
    tb_study_data *d = fake_data(3);
    tb_err err = {{0}};
    char out[1300], file[1200];
    /* under a regular file: no directory can be made there */
    snprintf(file, sizeof file, "%s/plain.txt", tmpdir);
    FILE *f = fopen(file, "w");
    ck_assert(f);
    fclose(f);
    snprintf(out, sizeof out, "%s/csv", file);
    ck_assert_int_eq(tb_csv_export(d, out, NULL, &err), TB_EIO);
    TBT_ASSERT_HAS(err.msg, out);
    TBT_ASSERT_HAS(err.msg, "Not a directory");

    /* a directory without write permission (root may write anyway: then it is written) */
    snprintf(out, sizeof out, "%s/ro", tmpdir);
    ck_assert(mkdir(out, 0555) == 0);
    tb_status st = tb_csv_export(d, out, NULL, &err);
    char written[1400];
    snprintf(written, sizeof written, "%s/participants.csv", out);
    if (geteuid() != 0) {
        ck_assert_int_eq(st, TB_EIO);
        TBT_ASSERT_HAS(err.msg, "participants.csv");
        TBT_ASSERT_HAS(err.msg, "Permission denied");
        ck_assert_int_ne(access(written, F_OK), 0);
    } else { /* root writes through the mode: then every table is there */
        ck_assert_msg(st == TB_OK, "%s", err.msg);
        ck_assert_int_eq(access(written, R_OK), 0);
    }
    chmod(out, 0755);

    /* the executable says it on stderr and exits 1 (an archive of nothing but runs/) */
    char args[3000], said[4096], arch[1100];
    snprintf(arch, sizeof arch, "%s/arch", tmpdir);
    ck_assert(mkdir(arch, 0755) == 0);
    snprintf(args, sizeof args, "%s/runs", arch);
    ck_assert(mkdir(args, 0755) == 0);
    snprintf(args, sizeof args, "export '%s' --csv '%s/csv'", arch, file);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", said, sizeof said), 1);
    TBT_ASSERT_HAS(said, "cannot create the output directory");
    TBT_ASSERT_HAS(said, "plain.txt/csv");
    tb_study_data_free(d);
}
END_TEST

/* A full disk (a file size limit in a child: writes past it fail with EFBIG)
 * names the table, leaves no temporary file and the tables written before. */
START_TEST(a_full_disk_leaves_no_half_file)
{
    char out[1200], path[1300];
    snprintf(out, sizeof out, "%s/csv", tmpdir);
    tb_study_data *small = fake_data(2);
    tb_err err = {{0}};
    ck_assert_msg(tb_csv_export(small, out, NULL, &err) == TB_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/participants.csv", out);
    char *before = tbt_slurp(path, NULL);
    tb_study_data_free(small);

    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &lim);
        tb_study_data *big = fake_data(5000); /* about 400 KB of participants */
        tb_err e = {{0}};
        tb_status st = tb_csv_export(big, out, NULL, &e);
        ssize_t w = write(fds[1], e.msg, strlen(e.msg) + 1);
        _exit(st == TB_EIO && w > 0 ? 0 : 1);
    }
    close(fds[1]);
    char msg[600] = "";
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(fds[0]);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the export did not fail: %s", msg);
    TBT_ASSERT_HAS(msg, "participants.csv");
    TBT_ASSERT_HAS(msg, "File too large");
    ck_assert_int_eq(count_files(out, ".tmp"), 0);
    char *after = tbt_slurp(path, NULL);
    ck_assert_str_eq(after, before);
    free(before), free(after);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("study_data");
    TCase *tc = tcase_create("study_data");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, a_study_and_a_sweep_read_back);
    tcase_add_test(tc, a_live_archive_is_read_as_it_is_now);
    tcase_add_test(tc, missing_pieces_are_noted);
    tcase_add_test(tc, not_an_archive_is_an_error);
    tcase_add_test(tc, an_unwritable_output_is_a_clear_error);
    tcase_add_test(tc, a_full_disk_leaves_no_half_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
