/* study_data.c: an archive read for analysis (study_data.h). Every file is
 * opened read-only and closed before the next: study.h5, index.h5 and the
 * sweep tables are whole files renamed into place, run curves may be live
 * (SWMR). What cannot be read is said in notes and left out. */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/h5util.h"
#include "study/hparam_space.h"
#include "study_data.h"

_Static_assert(TB_AD_HP == TB_HP_COUNT, "TB_AD_HP is Table 1's count");

#define NOTES_FULL "(more notes left out)\n"

/* One line into d->notes; once they are nearly full, a last line says so. */
static void note(tb_study_data *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(tb_study_data *d, const char *fmt, ...)
{
    size_t used = strlen(d->notes);
    if (used >= strlen(NOTES_FULL) && !strcmp(d->notes + used - strlen(NOTES_FULL), NOTES_FULL)) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (used + strlen(line) + 2 + strlen(NOTES_FULL) >= sizeof d->notes) {
        tb_appendf(d->notes, sizeof d->notes, &used, "%s", NOTES_FULL);
        return;
    }
    tb_appendf(d->notes, sizeof d->notes, &used, "%s\n", line);
}

/* A %g text that reads back to v; "" for NaN. */
static void number_text(double v, char *out, size_t cap)
{
    if (!out || cap == 0) return; /* and GCC's sanitizer build then knows out is not NULL */
    if (isnan(v)) {
        tb_copy_str(out, cap, "");
        return;
    }
    /* %g drops trailing zeros, so 15 digits is the shortest for any value that has 15 or fewer */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- columns ----------------------------------------------------------------------------- */

/* Opens a 1-D dataset and selects its first *n elements (its length now: a
 * live SWMR dataset may grow while it is read). -1 when absent or not 1-D. */
static hid_t open_column(hid_t loc, const char *name, hsize_t *n, hid_t *fspace)
{
    hid_t ds = -1;
    *fspace = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0 || (ds = H5Dopen2(loc, name, H5P_DEFAULT)) < 0) return -1;
    *fspace = H5Dget_space(ds);
    if (*fspace < 0 || H5Sget_simple_extent_ndims(*fspace) != 1 || H5Sget_simple_extent_dims(*fspace, n, NULL) != 1) {
        if (*fspace >= 0) H5Sclose(*fspace);
        H5Dclose(ds);
        *fspace = -1;
        return -1;
    }
    return ds;
}

/* A numeric column converted to mtype (int64 or double) into a malloc'd array
 * of *n elements; NULL when absent, not numeric or unreadable (*n = 0). */
static void *read_numbers(hid_t loc, const char *name, hid_t mtype, size_t size, hsize_t *n)
{
    hid_t fs, ds = open_column(loc, name, n, &fs);
    if (ds < 0) {
        *n = 0;
        return NULL;
    }
    void *v = NULL;
    hid_t ft = H5Dget_type(ds);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && (v = malloc((*n ? *n : 1) * size))) {
        hid_t ms = H5Screate_simple(1, n, NULL);
        hsize_t start = 0;
        if (*n && (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, n, NULL) < 0 ||
                   H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, v) < 0)) {
            free(v);
            v = NULL;
        }
        if (ms >= 0) H5Sclose(ms);
    }
    if (ft >= 0) H5Tclose(ft);
    H5Sclose(fs);
    H5Dclose(ds);
    if (!v) *n = 0;
    return v;
}

static void free_strings(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* A string column (variable or fixed length) as n malloc'd strings; NULL when
 * absent, not strings or unreadable (*n = 0). */
static char **read_strings(hid_t loc, const char *name, hsize_t *n)
{
    hid_t fs, ds = open_column(loc, name, n, &fs);
    if (ds < 0) {
        *n = 0;
        return NULL;
    }
    char **out = NULL;
    hid_t ft = H5Dget_type(ds), mt = -1, ms = -1;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) goto done;
    htri_t vl = H5Tis_variable_str(ft);
    size_t fixed = H5Tget_size(ft);
    mt = H5Tcopy(H5T_C_S1);
    ms = H5Screate_simple(1, n, NULL);
    hsize_t start = 0;
    if (vl < 0 || mt < 0 || ms < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) goto done;
    if (*n && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, n, NULL) < 0) goto done;
    if (!(out = calloc(*n + 1, sizeof *out))) goto done;
    int ok = 1;
    if (vl) {
        char **raw = calloc(*n + 1, sizeof *raw);
        ok = raw && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
             (*n == 0 || H5Dread(ds, mt, ms, fs, H5P_DEFAULT, raw) >= 0);
        for (hsize_t i = 0; ok && i < *n; i++) ok = (out[i] = strdup(raw[i] ? raw[i] : "")) != NULL;
        if (raw && ok && *n) H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, raw);
        free(raw);
    } else {
        char *buf = malloc((size_t)*n * (fixed + 1) + 1);
        ok = buf && H5Tset_size(mt, fixed + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
             (*n == 0 || H5Dread(ds, mt, ms, fs, H5P_DEFAULT, buf) >= 0);
        for (hsize_t i = 0; ok && i < *n; i++) {
            char *s = buf + i * (fixed + 1);
            s[fixed] = '\0';
            for (size_t k = strlen(s); k > 0 && s[k - 1] == ' '; k--) s[k - 1] = '\0'; /* space padding */
            ok = (out[i] = strdup(s)) != NULL;
        }
        free(buf);
    }
    if (!ok) {
        free_strings(out, *n);
        out = NULL;
    }
done:
    if (ms >= 0) H5Sclose(ms);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    H5Sclose(fs);
    H5Dclose(ds);
    if (!out) *n = 0;
    return out;
}

/* A table of equal columns in one group; a column that is missing or of
 * another length is noted and read as its default (NaN, fill, ""). */
typedef struct table {
    tb_study_data *d;
    hid_t g;
    const char *where; /* "study.h5 /submissions" */
    size_t n;
    int oom;
} table;

static int column_fits(table *t, const char *name, const void *v, hsize_t n)
{
    /* the table itself missing, or without rows: noted once by table_open, nothing to leave empty */
    if (t->g < 0 || (t->n == 0 && !v)) return 0;
    if (!v && H5Lexists(t->g, name, H5P_DEFAULT) <= 0) note(t->d, "%s has no column %s: left empty", t->where, name);
    else if (!v) note(t->d, "%s: column %s cannot be read: left empty", t->where, name);
    else if (n != t->n) note(t->d, "%s: column %s has %llu rows, not %zu: left empty", t->where, name,
                              (unsigned long long)n, t->n);
    return v && n == t->n;
}

static double *table_f64(table *t, const char *name)
{
    hsize_t n;
    double *v = read_numbers(t->g, name, H5T_NATIVE_DOUBLE, sizeof(double), &n);
    if (column_fits(t, name, v, n)) return v;
    free(v);
    if (!(v = malloc((t->n + 1) * sizeof *v))) t->oom = 1;
    for (size_t i = 0; v && i < t->n; i++) v[i] = NAN;
    return v;
}

static int64_t *table_i64(table *t, const char *name, int64_t fill)
{
    hsize_t n;
    int64_t *v = read_numbers(t->g, name, H5T_NATIVE_INT64, sizeof(int64_t), &n);
    if (column_fits(t, name, v, n)) return v;
    free(v);
    if (!(v = malloc((t->n + 1) * sizeof *v))) t->oom = 1;
    for (size_t i = 0; v && i < t->n; i++) v[i] = fill;
    return v;
}

static char **table_str(table *t, const char *name)
{
    hsize_t n;
    char **v = read_strings(t->g, name, &n);
    if (column_fits(t, name, v, n)) return v;
    free_strings(v, n);
    if (!(v = calloc(t->n + 1, sizeof *v))) t->oom = 1;
    for (size_t i = 0; v && i < t->n; i++)
        if (!(v[i] = strdup(""))) t->oom = 1;
    return v;
}

/* The row count: the length of the key column (0 when it is absent). */
static void table_open(table *t, tb_study_data *d, hid_t file, const char *group, const char *where,
                       const char *key)
{
    memset(t, 0, sizeof *t);
    t->d = d, t->where = where, t->g = -1;
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0 || (t->g = H5Gopen2(file, group, H5P_DEFAULT)) < 0) {
        note(d, "%s is missing: no rows", where);
        return;
    }
    hsize_t n = 0;
    hid_t fs, ds = open_column(t->g, key, &n, &fs);
    if (ds < 0) {
        note(d, "%s has no column %s: no rows", where, key);
        return;
    }
    H5Sclose(fs);
    H5Dclose(ds);
    t->n = (size_t)n;
}

static void table_close(table *t)
{
    if (t->g >= 0) H5Gclose(t->g);
}

static int read_attr_f64(hid_t obj, const char *name, double *out)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

static int read_attr_i64(hid_t obj, const char *name, int64_t *out)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

/* The study's mandatory hyperparameters, from the `mandatory = a, b, ...`
 * line of /study's `space` attribute (tb_space_to_ini); Table 1's four when
 * the attribute is absent or says nothing. */
static void read_mandatory(tb_study_data *d, hid_t study_group)
{
    static const char *const table1[] = {"epochs", "batch_size", "loss", "optimizer"};
    char ini[16384];
    const char *line = NULL;
    if (tb_h5_read_attr_str(study_group, "space", ini, sizeof ini, NULL) == 1) line = strstr(ini, "mandatory =");
    memset(d->mandatory, 0, sizeof d->mandatory);
    d->n_mandatory = 0;
    for (int h = 0; h < TB_AD_HP; h++) {
        const char *name = tb_hp_names[h];
        int is = 0;
        if (line) {
            const char *end = strchr(line, '\n');
            size_t n = strlen(name);
            for (const char *p = strstr(line, name); p && (!end || p < end); p = strstr(p + 1, name))
                if ((p[-1] == ' ' || p[-1] == ',') && (p[n] == ',' || p[n] == '\n' || p[n] == ' ' || !p[n])) is = 1;
        } else {
            for (size_t k = 0; k < sizeof table1 / sizeof *table1; k++) is |= !strcmp(name, table1[k]);
        }
        d->mandatory[h] = is;
        d->n_mandatory += is;
    }
    if (!line) note(d, "study.h5's /study has no space: taking Table 1's mandatory hyperparameters (epochs, batch_size, "
                       "loss, optimizer)");
}

/* ---- study.h5 ---------------------------------------------------------------------------- */

static int participant_index(const tb_study_data *d, const char *id)
{
    for (int i = 0; i < d->np; i++)
        if (!strcmp(d->participants[i].id, id)) return i;
    return -1;
}

static tb_status read_participants(tb_study_data *d, hid_t f)
{
    table t;
    table_open(&t, d, f, "participants", "study.h5 /participants", "id");
    if (t.g < 0 || t.n == 0) {
        table_close(&t);
        return TB_OK;
    }
    char **id = table_str(&t, "id"), **edu = table_str(&t, "education"), **state = table_str(&t, "state"),
         **frun = table_str(&t, "final_run"), **freason = table_str(&t, "final_reason");
    double *dl = table_f64(&t, "dl_months"), *prog = table_f64(&t, "programming_months"),
           *ml = table_f64(&t, "ml_months"), *reg = table_f64(&t, "registered_s"),
           *cons = table_f64(&t, "consented_s"), *budget = table_f64(&t, "budget_s"),
           *used = table_f64(&t, "used_s"), *cred = table_f64(&t, "credited_s"),
           *fat = table_f64(&t, "final_at_s"), *fmean = table_f64(&t, "final_test_accuracy_mean"),
           *fsd = table_f64(&t, "final_test_accuracy_sd");
    int64_t *level = table_i64(&t, "self_level", 0), *nsub = table_i64(&t, "submissions", 0),
            *ffin = table_i64(&t, "finals_finished", 0);
    if (!t.oom && !(d->participants = calloc(t.n, sizeof *d->participants))) t.oom = 1;
    for (size_t i = 0; !t.oom && i < t.n; i++) {
        tb_ad_participant *p = &d->participants[d->np++];
        tb_copy_str(p->id, sizeof p->id, id[i]);
        tb_copy_str(p->education, sizeof p->education, edu[i]);
        p->dl_months = dl[i], p->programming_months = prog[i], p->ml_months = ml[i];
        p->self_level = (int)level[i];
        p->machine = !strncmp(p->id, "tuner-", 6) || !strcmp(p->education, "machine");
        tb_copy_str(p->state, sizeof p->state, state[i]);
        p->registered_s = reg[i], p->budget_s = budget[i], p->used_s = used[i], p->credited_s = cred[i];
        p->n_submissions = (int)nsub[i];
        tb_copy_str(p->final_run, sizeof p->final_run, frun[i]);
        tb_copy_str(p->final_reason, sizeof p->final_reason, freason[i]);
        p->finals_finished = (int)ffin[i];
        p->final_mean = fmean[i], p->final_sd = fsd[i];
        p->consented_s = cons[i], p->final_at_s = fat[i];
    }
    free_strings(id, t.n), free_strings(edu, t.n), free_strings(state, t.n), free_strings(frun, t.n);
    free_strings(freason, t.n);
    free(dl), free(prog), free(ml), free(reg), free(cons), free(budget), free(used), free(cred), free(fat);
    free(fmean), free(fsd), free(level), free(nsub), free(ffin);
    table_close(&t);
    return t.oom ? TB_ENOMEM : TB_OK;
}

typedef struct sub_order {
    int participant, number;
    size_t row;
} sub_order;

static int by_participant_then_number(const void *a, const void *b)
{
    const sub_order *x = a, *y = b;
    if (x->participant != y->participant) return x->participant < y->participant ? -1 : 1;
    if (x->number != y->number) return x->number < y->number ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* The 15 hyperparameter columns of one row: text as archived, numbers in their shortest form. */
typedef struct hp_columns {
    char **text[TB_AD_HP];  /* string columns (loss, optimizer) */
    double *num[TB_AD_HP];  /* numeric columns */
    int64_t *given[TB_AD_HP];
    char **comment[TB_AD_HP];
} hp_columns;

static tb_status read_submissions(tb_study_data *d, hid_t f)
{
    table t;
    table_open(&t, d, f, "submissions", "study.h5 /submissions", "participant");
    if (t.g < 0 || t.n == 0) {
        table_close(&t);
        return TB_OK;
    }
    char **pid = table_str(&t, "participant"), **run = table_str(&t, "run_id"), **status = table_str(&t, "status"),
         **msg = table_str(&t, "message");
    int64_t *number = table_i64(&t, "number", 0), *epochs = table_i64(&t, "epochs_done", 0),
            *kept = table_i64(&t, "presets_kept", 0);
    double *sub = table_f64(&t, "submitted_s"), *start = table_f64(&t, "started_s"), *end = table_f64(&t, "ended_s"),
           *queued = table_f64(&t, "queued_s"), *train = table_f64(&t, "training_s"),
           *vacc = table_f64(&t, "val_accuracy"), *vloss = table_f64(&t, "val_loss"),
           *tacc = table_f64(&t, "test_accuracy");
    hp_columns hp;
    memset(&hp, 0, sizeof hp);
    for (int h = 0; h < TB_AD_HP; h++) {
        char name[96];
        hid_t fs, ds = open_column(t.g, tb_hp_names[h], &(hsize_t){0}, &fs);
        int is_text = 0;
        if (ds >= 0) {
            hid_t ft = H5Dget_type(ds);
            is_text = ft >= 0 && H5Tget_class(ft) == H5T_STRING;
            if (ft >= 0) H5Tclose(ft);
            H5Sclose(fs);
            H5Dclose(ds);
        }
        if (is_text) hp.text[h] = table_str(&t, tb_hp_names[h]);
        else hp.num[h] = table_f64(&t, tb_hp_names[h]);
        snprintf(name, sizeof name, "given_%s", tb_hp_names[h]);
        hp.given[h] = table_i64(&t, name, 0);
        snprintf(name, sizeof name, "comment_%s", tb_hp_names[h]);
        hp.comment[h] = table_str(&t, name);
    }
    sub_order *order = t.oom ? NULL : malloc(t.n * sizeof *order);
    if (!order || !(d->subs = calloc(t.n, sizeof *d->subs))) t.oom = 1;
    size_t rows = 0;
    for (size_t i = 0; !t.oom && i < t.n; i++) {
        int p = participant_index(d, pid[i]);
        if (p < 0) {
            note(d, "study.h5 /submissions row %zu: participant '%s' is not in /participants: left out", i + 1, pid[i]);
            continue;
        }
        order[rows++] = (sub_order){p, (int)number[i], i};
    }
    if (!t.oom) qsort(order, rows, sizeof *order, by_participant_then_number);
    for (size_t k = 0; !t.oom && k < rows; k++) {
        size_t i = order[k].row;
        tb_ad_submission *s = &d->subs[d->ns++];
        s->participant = order[k].participant;
        s->number = order[k].number;
        tb_copy_str(s->run_id, sizeof s->run_id, run[i]);
        tb_copy_str(s->status, sizeof s->status, status[i]);
        tb_copy_str(s->message, sizeof s->message, msg[i]);
        s->submitted_s = sub[i], s->started_s = start[i], s->ended_s = end[i];
        s->queued_s = queued[i], s->training_s = train[i];
        s->epochs_done = (int)epochs[i];
        s->val_accuracy = vacc[i], s->val_loss = vloss[i], s->test_accuracy = tacc[i];
        for (int h = 0; h < TB_AD_HP; h++) {
            if (hp.text[h]) tb_copy_str(s->values[h], sizeof s->values[h], hp.text[h][i]);
            else number_text(hp.num[h][i], s->values[h], sizeof s->values[h]);
            s->given[h] = (int)hp.given[h][i];
            tb_copy_str(s->comments[h], sizeof s->comments[h], hp.comment[h][i]);
        }
        s->presets_kept = (int)kept[i];
    }
    /* each participant's rows, now contiguous */
    for (int p = 0, k = 0; !t.oom && p < d->np; p++) {
        d->participants[p].first_submission = k;
        int count = 0;
        while (k < d->ns && d->subs[k].participant == p) k++, count++;
        if (count != d->participants[p].n_submissions)
            note(d, "participant %s: /participants says %d submissions, /submissions has %d rows",
                 d->participants[p].id, d->participants[p].n_submissions, count);
        d->participants[p].n_submissions = count;
    }
    free(order);
    free_strings(pid, t.n), free_strings(run, t.n), free_strings(status, t.n), free_strings(msg, t.n);
    free(number), free(epochs), free(kept), free(sub), free(start), free(end), free(queued), free(train);
    free(vacc), free(vloss), free(tacc);
    for (int h = 0; h < TB_AD_HP; h++) {
        free_strings(hp.text[h], t.n), free(hp.num[h]), free(hp.given[h]), free_strings(hp.comment[h], t.n);
    }
    table_close(&t);
    return t.oom ? TB_ENOMEM : TB_OK;
}

static tb_status read_finals(tb_study_data *d, hid_t f)
{
    table t;
    table_open(&t, d, f, "finals", "study.h5 /finals", "participant");
    if (t.g < 0 || t.n == 0) {
        table_close(&t);
        return TB_OK;
    }
    char **pid = table_str(&t, "participant"), **run = table_str(&t, "run_id"), **status = table_str(&t, "status");
    int64_t *seed = table_i64(&t, "seed", -1);
    double *acc = table_f64(&t, "test_accuracy"), *start = table_f64(&t, "started_s"), *end = table_f64(&t, "ended_s");
    if (!t.oom && !(d->finals = calloc(t.n, sizeof *d->finals))) t.oom = 1;
    for (size_t i = 0; !t.oom && i < t.n; i++) {
        int p = participant_index(d, pid[i]);
        if (p < 0) {
            note(d, "study.h5 /finals row %zu: participant '%s' is not in /participants: left out", i + 1, pid[i]);
            continue;
        }
        tb_ad_final *x = &d->finals[d->nf++];
        x->participant = p;
        x->seed = seed[i];
        tb_copy_str(x->run_id, sizeof x->run_id, run[i]);
        tb_copy_str(x->status, sizeof x->status, status[i]);
        x->test_accuracy = acc[i], x->started_s = start[i], x->ended_s = end[i];
    }
    free_strings(pid, t.n), free_strings(run, t.n), free_strings(status, t.n);
    free(seed), free(acc), free(start), free(end);
    table_close(&t);
    return t.oom ? TB_ENOMEM : TB_OK;
}

static tb_status read_study(tb_study_data *d)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/study.h5", d->dir);
    if (!exists(path)) {
        note(d, "no study.h5: no participants, submissions or finals (an archive of sweeps or runs only)");
        return TB_OK;
    }
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) {
        note(d, "study.h5 cannot be opened as HDF5: no participants, submissions or finals");
        return TB_OK;
    }
    d->has_study = 1;
    tb_status st = TB_OK;
    H5E_BEGIN_TRY
    {
        hid_t g = H5Lexists(f, "study", H5P_DEFAULT) > 0 ? H5Gopen2(f, "study", H5P_DEFAULT) : -1;
        if (g >= 0) {
            tb_h5_read_attr_str(g, "title", d->title, sizeof d->title, NULL);
            read_mandatory(d, g);
            if (!read_attr_f64(g, "budget_s", &d->budget_s)) d->budget_s = NAN;
            hsize_t n = 0;
            hid_t fs, ds = open_column(g, "final_seeds", &n, &fs);
            if (ds >= 0) {
                d->n_final_seeds = (int)n;
                H5Sclose(fs);
                H5Dclose(ds);
            }
            H5Gclose(g);
        } else {
            d->budget_s = NAN;
            note(d, "study.h5 has no /study: title, budget, final seeds and the mandatory hyperparameters unknown");
        }
        st = read_participants(d, f);
        if (st == TB_OK) st = read_submissions(d, f);
        if (st == TB_OK) st = read_finals(d, f);
        H5Fclose(f);
    }
    H5E_END_TRY;
    for (int p = 0; st == TB_OK && p < d->np; p++) {
        const tb_ad_participant *x = &d->participants[p];
        if (x->final_run[0] && x->finals_finished == 0)
            note(d, "participant %s: no finished final evaluation (final mean left out)", x->id);
    }
    return st;
}

/* ---- sweeps ------------------------------------------------------------------------------ */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names in dir/sub ending in suffix (and not ".tmp"), sorted; NULL with *n = 0 when none. */
static char **list_files(const char *dir, const char *suffix, const char *not_suffix, int *n, int *oom)
{
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    size_t ls = strlen(suffix), ln = not_suffix ? strlen(not_suffix) : 0;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len <= ls || strcmp(e->d_name + len - ls, suffix)) continue;
        if (ln && len > ln && !strcmp(e->d_name + len - ln, not_suffix)) continue;
        if (*n == cap) {
            char **more = realloc(names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *names);
            if (!more) {
                *oom = 1;
                break;
            }
            names = more;
        }
        if (!(names[*n] = strdup(e->d_name))) {
            *oom = 1;
            break;
        }
        (*n)++;
    }
    closedir(dp);
    if (names) qsort(names, (size_t)*n, sizeof *names, by_name);
    return names;
}

static const char *const sweep_fixed_columns[] = {"run_id",        "config",  "fold",   "seed",    "status",
                                                  "val_accuracy",  "val_loss", "test_accuracy", "seconds",
                                                  "message"};

typedef struct key_list {
    char names[64][96];
    int n;
} key_list;

static herr_t collect_key(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g, (void)info;
    key_list *k = data;
    for (size_t i = 0; i < TB_ARRAY_LEN(sweep_fixed_columns); i++)
        if (!strcmp(name, sweep_fixed_columns[i])) return 0;
    if (k->n < (int)TB_ARRAY_LEN(k->names)) tb_copy_str(k->names[k->n++], sizeof k->names[0], name);
    return 0;
}

/* macro_f1 and trainable_parameters from the run's own run file. 1 when it could be opened. */
static int read_run_file(const tb_study_data *d, tb_ad_sweep_run *r)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/runs/%s.run.h5", d->dir, r->run_id);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) return 0;
    H5E_BEGIN_TRY
    {
        hid_t g = H5Lexists(f, "test", H5P_DEFAULT) > 0 ? H5Oopen(f, "test", H5P_DEFAULT) : -1;
        if (g >= 0) {
            read_attr_f64(g, "macro_f1", &r->macro_f1);
            H5Oclose(g);
        }
        g = H5Lexists(f, "model", H5P_DEFAULT) > 0 ? H5Oopen(f, "model", H5P_DEFAULT) : -1;
        if (g >= 0) {
            read_attr_i64(g, "trainable_parameters", &r->trainable_parameters);
            H5Oclose(g);
        }
        H5Fclose(f);
    }
    H5E_END_TRY;
    return 1;
}

static tb_status read_sweep(tb_study_data *d, const char *file)
{
    char path[1400], where[600];
    snprintf(path, sizeof path, "%s/sweeps/%s", d->dir, file);
    snprintf(where, sizeof where, "sweeps/%s /runs", file);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) {
        note(d, "sweeps/%s cannot be opened as HDF5: left out", file);
        return TB_OK;
    }
    tb_status st = TB_OK;
    tb_ad_sweep *sw = &d->sweeps[d->nsweeps];
    memset(sw, 0, sizeof *sw);
    H5E_BEGIN_TRY
    {
        if (tb_h5_read_attr_str(f, "id", sw->id, sizeof sw->id, NULL) != 1) {
            tb_copy_str(sw->id, sizeof sw->id, file);
            sw->id[strlen(sw->id) - 3] = '\0'; /* without ".h5" */
        }
        tb_h5_read_attr_str(f, "kind", sw->kind, sizeof sw->kind, NULL);
        table t;
        table_open(&t, d, f, "runs", where, "run_id");
        key_list keys = {.n = 0};
        if (t.g >= 0) H5Literate(t.g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, collect_key, &keys);
        char **run = table_str(&t, "run_id"), **status = table_str(&t, "status"), **msg = table_str(&t, "message");
        int64_t *config = table_i64(&t, "config", -1), *seed = table_i64(&t, "seed", -1),
                *fold = table_i64(&t, "fold", -1);
        double *vacc = table_f64(&t, "val_accuracy"), *vloss = table_f64(&t, "val_loss"),
               *tacc = table_f64(&t, "test_accuracy"), *secs = table_f64(&t, "seconds");
        char **key_values[64] = {0};
        int key_hp[64], key_other[64];
        for (int k = 0; k < keys.n; k++) {
            key_values[k] = table_str(&t, keys.names[k]);
            key_hp[k] = !strncmp(keys.names[k], "train.", 6) ? tb_hp_index(keys.names[k] + 6) : -1;
            key_other[k] = -1;
            if (key_hp[k] >= 0) continue;
            if (sw->n_other_keys < TB_AD_OTHER_KEYS) {
                key_other[k] = sw->n_other_keys;
                tb_copy_str(sw->other_keys[sw->n_other_keys++], sizeof sw->other_keys[0], keys.names[k]);
            } else {
                note(d, "sweeps/%s: varied key %s left out (more than %d besides Table 1's)", file, keys.names[k],
                     TB_AD_OTHER_KEYS);
            }
        }
        tb_ad_sweep_run *more = t.oom || !t.n ? NULL
                                : realloc(d->sweep_runs, (size_t)(d->nsweep_runs + (int)t.n) * sizeof *more);
        if (t.n && !t.oom && !more) t.oom = 1;
        if (more) d->sweep_runs = more;
        sw->first_run = d->nsweep_runs;
        int missing = 0;
        char missing_ids[256] = "";
        size_t used = 0;
        for (size_t i = 0; more && i < t.n; i++) {
            tb_ad_sweep_run *r = &d->sweep_runs[d->nsweep_runs++];
            memset(r, 0, sizeof *r);
            r->sweep = d->nsweeps;
            tb_copy_str(r->run_id, sizeof r->run_id, run[i]);
            r->config = config[i], r->seed = seed[i], r->fold = fold[i];
            tb_copy_str(r->status, sizeof r->status, status[i]);
            tb_copy_str(r->message, sizeof r->message, msg[i]);
            r->val_accuracy = vacc[i], r->val_loss = vloss[i], r->test_accuracy = tacc[i], r->seconds = secs[i];
            r->macro_f1 = NAN, r->trainable_parameters = -1;
            for (int k = 0; k < keys.n; k++) {
                if (key_hp[k] >= 0) tb_copy_str(r->values[key_hp[k]], sizeof r->values[0], key_values[k][i]);
                else if (key_other[k] >= 0)
                    tb_copy_str(r->other_values[key_other[k]], sizeof r->other_values[0], key_values[k][i]);
            }
            /* a run never submitted, or one that never started (rejected, queued), has no run file */
            if (r->run_id[0] && !read_run_file(d, r) && strcmp(r->status, "queued") && strcmp(r->status, "rejected")) {
                if (missing++ < 8) tb_appendf(missing_ids, sizeof missing_ids, &used, "%s%s", missing > 1 ? ", " : "",
                                              r->run_id);
            }
        }
        if (missing)
            note(d, "sweep %s: %d runs without a readable run file (macro_f1, trainable_parameters left out): %s%s",
                 sw->id, missing, missing_ids, missing > 8 ? ", ..." : "");
        sw->n_runs = d->nsweep_runs - sw->first_run;
        free_strings(run, t.n), free_strings(status, t.n), free_strings(msg, t.n);
        free(config), free(seed), free(fold), free(vacc), free(vloss), free(tacc), free(secs);
        for (int k = 0; k < keys.n; k++) free_strings(key_values[k], t.n);
        table_close(&t);
        if (t.oom) st = TB_ENOMEM;
        H5Fclose(f);
    }
    H5E_END_TRY;
    if (st == TB_OK) d->nsweeps++;
    return st;
}

static tb_status read_sweeps(tb_study_data *d, int *found)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/sweeps", d->dir);
    int n = 0, oom = 0;
    char **names = list_files(dir, ".h5", NULL, &n, &oom);
    *found = exists(dir);
    tb_status st = oom ? TB_ENOMEM : TB_OK;
    if (n && st == TB_OK && !(d->sweeps = calloc((size_t)n, sizeof *d->sweeps))) st = TB_ENOMEM;
    for (int i = 0; i < n && st == TB_OK; i++) st = read_sweep(d, names[i]);
    free_strings(names, (size_t)n);
    return st;
}

/* ---- the runs --------------------------------------------------------------------------- */

static tb_status read_index(tb_study_data *d, int *found)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/index.h5", d->dir);
    *found = exists(path);
    hid_t f = -1;
    if (*found) {
        H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
        H5E_END_TRY;
    }
    if (f >= 0) {
        tb_status st = TB_OK;
        H5E_BEGIN_TRY
        {
            table t;
            table_open(&t, d, f, "index", "index.h5 /index", "id");
            char **id = table_str(&t, "id"), **kind = table_str(&t, "kind"), **pid = table_str(&t, "participant"),
                 **status = table_str(&t, "status");
            double *created = table_f64(&t, "created_s"), *started = table_f64(&t, "started_s"),
                   *ended = table_f64(&t, "ended_s"), *vacc = table_f64(&t, "val_accuracy"),
                   *tacc = table_f64(&t, "test_accuracy");
            int64_t *epochs = table_i64(&t, "epochs", 0), *batches = table_i64(&t, "batches", 0);
            if (!t.oom && t.n && !(d->runs = calloc(t.n, sizeof *d->runs))) t.oom = 1;
            for (size_t i = 0; !t.oom && i < t.n; i++) {
                tb_ad_run *r = &d->runs[d->nruns++];
                tb_copy_str(r->id, sizeof r->id, id[i]);
                tb_copy_str(r->kind, sizeof r->kind, kind[i]);
                tb_copy_str(r->participant, sizeof r->participant, pid[i]);
                tb_copy_str(r->status, sizeof r->status, status[i]);
                r->created_s = created[i], r->started_s = started[i], r->ended_s = ended[i];
                r->epochs = epochs[i], r->batches = batches[i];
                r->val_accuracy = vacc[i], r->test_accuracy = tacc[i];
            }
            free_strings(id, t.n), free_strings(kind, t.n), free_strings(pid, t.n), free_strings(status, t.n);
            free(created), free(started), free(ended), free(vacc), free(tacc), free(epochs), free(batches);
            table_close(&t);
            st = t.oom ? TB_ENOMEM : TB_OK;
            H5Fclose(f);
        }
        H5E_END_TRY;
        return st;
    }
    /* without an index, the curve files themselves say which runs there are */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/runs", d->dir);
    int n = 0, oom = 0;
    char **names = list_files(dir, ".h5", ".run.h5", &n, &oom);
    if (*found) note(d, "index.h5 cannot be opened as HDF5: runs listed from runs/*.h5 (%d)", n);
    else if (n) note(d, "no index.h5: runs listed from runs/*.h5 (%d), without kind or status", n);
    if (!oom && n && !(d->runs = calloc((size_t)n, sizeof *d->runs))) oom = 1;
    for (int i = 0; !oom && i < n; i++) {
        tb_ad_run *r = &d->runs[d->nruns++];
        names[i][strlen(names[i]) - 3] = '\0';
        tb_copy_str(r->id, sizeof r->id, names[i]);
        r->created_s = r->started_s = r->ended_s = r->val_accuracy = r->test_accuracy = NAN;
    }
    free_strings(names, (size_t)n);
    return oom ? TB_ENOMEM : TB_OK;
}

/* ---- entry points ------------------------------------------------------------------------ */

tb_status tb_study_data_load(const char *dir, tb_study_data **out, tb_err *err)
{
    *out = NULL;
    tb_h5_quiet();
    struct stat sb;
    if (stat(dir, &sb) != 0) return tb_fail(err, TB_EIO, "archive %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return tb_fail(err, TB_EIO, "archive %s is not a directory", dir);
    tb_study_data *d = calloc(1, sizeof *d);
    if (!d) return tb_fail(err, TB_ENOMEM, "archive %s: out of memory", dir);
    if (strlen(dir) >= sizeof d->dir) {
        free(d);
        return tb_fail(err, TB_EINVAL, "archive %s: the path is too long", dir);
    }
    tb_copy_str(d->dir, sizeof d->dir, dir);
    for (int h = 0; h < TB_AD_HP; h++) d->hp_names[h] = tb_hp_names[h];
    d->budget_s = NAN;
    int has_index = 0, has_sweeps = 0;
    tb_status st = read_index(d, &has_index);
    if (st == TB_OK) st = read_study(d);
    if (st == TB_OK) st = read_sweeps(d, &has_sweeps);
    char study_path[1200], runs_path[1200];
    snprintf(study_path, sizeof study_path, "%s/study.h5", dir);
    snprintf(runs_path, sizeof runs_path, "%s/runs", dir);
    if (st == TB_OK && !has_index && !has_sweeps && !exists(study_path) && !exists(runs_path)) st = TB_EFORMAT;
    if (st != TB_OK) {
        tb_study_data_free(d);
        if (st == TB_EFORMAT)
            return tb_fail(err, st, "%s is not a tunebench archive: it has no index.h5, study.h5, sweeps/ or runs/",
                           dir);
        return tb_fail(err, st, "archive %s: out of memory while reading it", dir);
    }
    *out = d;
    return TB_OK;
}

void tb_study_data_free(tb_study_data *d)
{
    if (!d) return;
    free(d->participants);
    free(d->subs);
    free(d->finals);
    free(d->sweeps);
    free(d->sweep_runs);
    free(d->runs);
    free(d);
}

void tb_ad_curves_free(tb_ad_curves *c)
{
    if (!c) return;
    free(c->epoch), free(c->train_loss), free(c->val_loss), free(c->val_accuracy), free(c->seconds);
    free(c->step), free(c->loss);
    memset(c, 0, sizeof *c);
}

tb_status tb_study_data_curves(const tb_study_data *d, const char *run_id, tb_ad_curves *out, tb_err *err)
{
    memset(out, 0, sizeof *out);
    tb_h5_quiet();
    char path[1200];
    snprintf(path, sizeof path, "%s/runs/%s.h5", d->dir, run_id);
    if (!exists(path)) return tb_fail(err, TB_EIO, "run %s: no curves file %s", run_id, path);
    hid_t f = tb_h5_open_readonly(path);
    if (f < 0) return tb_fail(err, TB_EIO, "run %s: %s cannot be opened as HDF5", run_id, path);
    hsize_t n[7] = {0};
    H5E_BEGIN_TRY
    {
        out->epoch = read_numbers(f, "curves/epoch/epoch", H5T_NATIVE_INT64, sizeof(int64_t), &n[0]);
        out->train_loss = read_numbers(f, "curves/epoch/train_loss", H5T_NATIVE_DOUBLE, sizeof(double), &n[1]);
        out->val_loss = read_numbers(f, "curves/epoch/val_loss", H5T_NATIVE_DOUBLE, sizeof(double), &n[2]);
        out->val_accuracy = read_numbers(f, "curves/epoch/val_accuracy", H5T_NATIVE_DOUBLE, sizeof(double), &n[3]);
        out->seconds = read_numbers(f, "curves/epoch/seconds", H5T_NATIVE_DOUBLE, sizeof(double), &n[4]);
        out->step = read_numbers(f, "curves/batch/step", H5T_NATIVE_INT64, sizeof(int64_t), &n[5]);
        out->loss = read_numbers(f, "curves/batch/loss", H5T_NATIVE_DOUBLE, sizeof(double), &n[6]);
        H5Fclose(f);
    }
    H5E_END_TRY;
    int complete = out->epoch && out->train_loss && out->val_loss && out->val_accuracy && out->seconds &&
                   out->step && out->loss;
    if (!complete) {
        tb_ad_curves_free(out);
        return tb_fail(err, TB_EIO, "run %s: %s lacks a curve column (curves/epoch or curves/batch)", run_id, path);
    }
    /* a live file's columns are appended one after another: the rows all of them have */
    hsize_t ne = n[0], nb = n[5] < n[6] ? n[5] : n[6];
    for (int k = 1; k < 5; k++) ne = n[k] < ne ? n[k] : ne;
    out->n_epochs = (int)ne;
    out->n_batches = (int64_t)nb;
    return TB_OK;
}

tb_status tb_study_data_epochs(const tb_study_data *d, const char *run_id, int *n, double **train_loss,
                               double **val_loss, double **val_accuracy, tb_err *err)
{
    tb_ad_curves c;
    tb_status st = tb_study_data_curves(d, run_id, &c, err);
    if (n) *n = st == TB_OK ? c.n_epochs : 0;
    if (train_loss) *train_loss = NULL;
    if (val_loss) *val_loss = NULL;
    if (val_accuracy) *val_accuracy = NULL;
    if (st != TB_OK) return st;
    /* hand over the arrays asked for; the rest are freed with c */
    if (train_loss) *train_loss = c.train_loss, c.train_loss = NULL;
    if (val_loss) *val_loss = c.val_loss, c.val_loss = NULL;
    if (val_accuracy) *val_accuracy = c.val_accuracy, c.val_accuracy = NULL;
    tb_ad_curves_free(&c);
    return TB_OK;
}
