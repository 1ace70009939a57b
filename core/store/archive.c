/* archive.c: the study archive (layout and guarantees in archive.h and docs/archive.md). */
#define _DEFAULT_SOURCE /* flock() */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"
#include "journal.h"

/* journal record types (payloads little-endian; str = u32 length + bytes) */
enum {
    REC_BEGIN = 1,   /* f64 created_s, str id, str kind, str participant, str ini */
    REC_STATUS = 2,  /* u32 status, f64 time_s, f64 test_accuracy, str message */
    REC_EPOCH = 3,   /* f64 time_s, i64 epoch, f64 train_loss, f64 val_loss, f64 val_accuracy, f64 seconds */
    REC_BATCHES = 4, /* f64 time_s, u32 n, n x (i64 step, f64 loss) */
};

#define EPOCH_COLS 5
#define BATCH_COLS 2
static const char *const epoch_cols[EPOCH_COLS] = {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"};
static const char *const batch_cols[BATCH_COLS] = {"step", "loss"};

/* ---- statuses ------------------------------------------------------------------------ */

static const char *const status_names[] = {"queued",      "training",    "finished", "cancelled",
                                           "diverged",    "interrupted", "rejected"};

const char *tb_run_status_name(tb_run_status s)
{
    return (unsigned)s < TB_ARRAY_LEN(status_names) ? status_names[s] : "unknown";
}

int tb_run_status_parse(const char *name, tb_run_status *out)
{
    for (size_t i = 0; i < TB_ARRAY_LEN(status_names); i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (tb_run_status)i;
            return 0;
        }
    return -1;
}

int tb_run_status_is_final(tb_run_status s) { return s >= TB_RUN_FINISHED && s <= TB_RUN_REJECTED; }

/* ---- payload encoding ------------------------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
    int oom;
} buf;

static void b_bytes(buf *b, const void *v, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, v, n);
    b->n += n;
}

static void b_u32(buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    b_bytes(b, x, 4);
}

static void b_u64(buf *b, uint64_t v)
{
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}

static void b_f64(buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    b_u64(b, u);
}

static void b_str(buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    b_u32(b, (uint32_t)n);
    b_bytes(b, s, n);
}

typedef struct rd {
    const unsigned char *p;
    size_t n, off;
    int bad;
} rd;

static uint32_t r_u32(rd *r)
{
    if (r->bad || r->n - r->off < 4) {
        r->bad = 1;
        return 0;
    }
    const unsigned char *p = r->p + r->off;
    r->off += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t r_u64(rd *r)
{
    uint64_t lo = r_u32(r);
    return lo | (uint64_t)r_u32(r) << 32;
}

static double r_f64(rd *r)
{
    uint64_t u = r_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* malloc'd NUL-terminated copy, NULL when bad */
static char *r_str(rd *r)
{
    uint32_t n = r_u32(r);
    if (r->bad || r->n - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

/* ---- rows and curves ---------------------------------------------------------------------- */

typedef struct row {
    char id[TB_ARCHIVE_ID_MAX + 1], kind[TB_ARCHIVE_KIND_MAX + 1];
    char *participant, *ini, *message;
    tb_run_status status;
    double created_s, started_s, ended_s, last_seen_s;
    int64_t last_epoch, n_epoch, n_batch;
    double val_accuracy, test_accuracy;
    tb_archive_run *live;
} row;

typedef struct curves {
    size_t ne, ce, nb, cb;
    int64_t *epoch, *step;
    double *e[EPOCH_COLS - 1]; /* train_loss, val_loss, val_accuracy, seconds */
    double *loss;
} curves;

static void row_free(row *r)
{
    free(r->participant), free(r->ini), free(r->message);
    r->participant = r->ini = r->message = NULL;
}

static void curves_free(curves *c)
{
    free(c->epoch), free(c->step), free(c->loss);
    for (int i = 0; i < EPOCH_COLS - 1; i++) free(c->e[i]);
    memset(c, 0, sizeof *c);
}

static int grow(void **p, size_t elem, size_t cap)
{
    void *q = realloc(*p, elem * cap);
    if (!q) return -1;
    *p = q;
    return 0;
}

struct tb_archive {
    pthread_mutex_t mu;
    char *dir;
    int lock_fd;
    row *rows;
    size_t n, cap;
    long next_num;
    int index_dirty;        /* epochs since the index was last written */
    double index_written_s; /* tb_now() of that write */
};

struct tb_archive_run {
    tb_archive *a;
    size_t row;
    tb_journal *j;
    hid_t file;
    hid_t ds[EPOCH_COLS + BATCH_COLS];
    int broken; /* the run file failed: the journal still has everything; finish rebuilds it */
};

/* ---- paths -------------------------------------------------------------------------------- */

#define PATH_CAP 4096

int tb_archive_run_path(char *out, size_t cap, const char *dir, const char *id, const char *suffix)
{
    int k = snprintf(out, cap, "%s/runs/%s%s", dir, id, suffix);
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

static int run_path(char out[PATH_CAP], const char *dir, const char *id, const char *suffix)
{
    return tb_archive_run_path(out, PATH_CAP, dir, id, suffix);
}

static int fsync_runs_dir(const char *dir)
{
    char p[PATH_CAP];
    if (snprintf(p, sizeof p, "%s/runs", dir) >= (int)sizeof p) return -1;
    return tb_fsync_path(p, 1);
}

int tb_archive_valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* ---- replaying a journal -------------------------------------------------------------------- */

typedef struct replay {
    row *r;
    curves *c; /* may be NULL: counts only */
    int begun;
} replay;

static void seen(row *r, double t)
{
    if (isfinite(t) && (!isfinite(r->last_seen_s) || t > r->last_seen_s)) r->last_seen_s = t;
}

static void apply_status(row *r, tb_run_status st, double t, double test_acc, char *message)
{
    r->status = st;
    if (st == TB_RUN_TRAINING && !isfinite(r->started_s)) r->started_s = t;
    if (tb_run_status_is_final(st)) {
        r->ended_s = t;
        r->test_accuracy = test_acc;
    }
    free(r->message);
    r->message = message;
    seen(r, t);
}

static int replay_fn(void *ctx, uint32_t type, const void *data, size_t len)
{
    replay *rp = ctx;
    row *r = rp->r;
    rd in = {data, len, 0, 0};
    if (!rp->begun && type != REC_BEGIN) return -1;
    switch (type) {
    case REC_BEGIN: {
        if (rp->begun) return -1;
        double created = r_f64(&in);
        char *id = r_str(&in), *kind = r_str(&in), *part = r_str(&in), *ini = r_str(&in);
        int ok = !in.bad && strlen(id) <= TB_ARCHIVE_ID_MAX && strlen(kind) <= TB_ARCHIVE_KIND_MAX;
        if (ok) {
            snprintf(r->id, sizeof r->id, "%s", id);
            snprintf(r->kind, sizeof r->kind, "%s", kind);
            r->participant = part, r->ini = ini;
            part = ini = NULL;
            r->created_s = created;
            r->status = TB_RUN_QUEUED;
            seen(r, created);
            rp->begun = 1;
        }
        free(id), free(kind), free(part), free(ini);
        return ok ? 0 : -1;
    }
    case REC_STATUS: {
        uint32_t st = r_u32(&in);
        double t = r_f64(&in), test = r_f64(&in);
        char *msg = r_str(&in);
        if (in.bad || st > TB_RUN_REJECTED) {
            free(msg);
            return -1;
        }
        apply_status(r, (tb_run_status)st, t, test, msg);
        return 0;
    }
    case REC_EPOCH: {
        double t = r_f64(&in);
        int64_t epoch = (int64_t)r_u64(&in);
        double v[EPOCH_COLS - 1];
        for (int i = 0; i < EPOCH_COLS - 1; i++) v[i] = r_f64(&in);
        if (in.bad) return -1;
        curves *c = rp->c;
        if (c) {
            if (c->ne == c->ce) {
                size_t cap = c->ce ? 2 * c->ce : 64;
                if (grow((void **)&c->epoch, 8, cap) != 0) return -1;
                for (int i = 0; i < EPOCH_COLS - 1; i++)
                    if (grow((void **)&c->e[i], 8, cap) != 0) return -1;
                c->ce = cap;
            }
            c->epoch[c->ne] = epoch;
            for (int i = 0; i < EPOCH_COLS - 1; i++) c->e[i][c->ne] = v[i];
            c->ne++;
        }
        r->n_epoch++;
        r->last_epoch = epoch;
        r->val_accuracy = v[2];
        seen(r, t);
        return 0;
    }
    case REC_BATCHES: {
        double t = r_f64(&in);
        uint32_t n = r_u32(&in);
        if (in.bad || (in.n - in.off) / 16 < n) return -1;
        curves *c = rp->c;
        if (c) {
            if (c->nb + n > c->cb) {
                size_t cap = c->cb ? c->cb : 1024;
                while (cap < c->nb + n) cap *= 2;
                if (grow((void **)&c->step, 8, cap) != 0 || grow((void **)&c->loss, 8, cap) != 0) return -1;
                c->cb = cap;
            }
            for (uint32_t i = 0; i < n; i++) {
                c->step[c->nb] = (int64_t)r_u64(&in);
                c->loss[c->nb] = r_f64(&in);
                c->nb++;
            }
        }
        r->n_batch += n;
        seen(r, t);
        return 0;
    }
    default:
        return -1; /* a newer writer's record: refuse rather than drop it silently */
    }
}

static void row_init(row *r)
{
    memset(r, 0, sizeof *r);
    r->created_s = r->started_s = r->ended_s = r->last_seen_s = NAN;
    r->val_accuracy = r->test_accuracy = NAN;
}

/* Replays path into r (and c). valid_bytes, file_bytes (may be NULL): as tb_journal_read. */
static tb_status replay_journal(const char *path, row *r, curves *c, int *begun, uint64_t *valid_bytes,
                                uint64_t *file_bytes, tb_err *err)
{
    row_init(r);
    replay rp = {r, c, 0};
    tb_status st = tb_journal_read(path, replay_fn, &rp, valid_bytes, file_bytes, err);
    *begun = rp.begun;
    return st;
}

/* ---- run files -------------------------------------------------------------------------------- */

static hid_t make_column(hid_t g, const char *name, hid_t ftype, hsize_t chunk)
{
    hsize_t dims = 0, maxd = H5S_UNLIMITED;
    hid_t sp = H5Screate_simple(1, &dims, &maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0)
        d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return d;
}

static int append_column(hid_t d, hsize_t old_n, size_t n, hid_t mtype, const void *v)
{
    if (n == 0) return 0;
    hsize_t cnt = n, new_n = old_n + n;
    if (H5Dset_extent(d, &new_n) < 0) return -1;
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    int rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &old_n, NULL, &cnt, NULL) >= 0 &&
        H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, v) >= 0)
        rc = 0;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static void close_datasets(hid_t ds[EPOCH_COLS + BATCH_COLS])
{
    for (int i = 0; i < EPOCH_COLS + BATCH_COLS; i++) {
        if (ds[i] >= 0) H5Dclose(ds[i]);
        ds[i] = -1;
    }
}

/* Root attributes describing the run's end; in a live file status is "live". */
static void write_state_attrs(tb_h5_writer *w, hid_t f, const row *r, int live)
{
    char t[32];
    tb_h5w_attr_str(w, f, "status", live ? "live" : tb_run_status_name(r->status));
    tb_h5w_attr_str(w, f, "message", live ? "the run is being written; index.h5 has its current status"
                                          : (r->message ? r->message : ""));
    tb_iso_utc(live ? NAN : r->started_s, t);
    tb_h5w_attr_str(w, f, "started", t);
    tb_h5w_attr_f64(w, f, "started_s", live ? NAN : r->started_s);
    tb_iso_utc(live ? NAN : r->ended_s, t);
    tb_h5w_attr_str(w, f, "ended", t);
    tb_h5w_attr_f64(w, f, "ended_s", live ? NAN : r->ended_s);
    tb_h5w_attr_f64(w, f, "test_accuracy", live ? NAN : r->test_accuracy);
    tb_h5w_attr_i64(w, f, "epochs_done", live ? 0 : r->n_epoch);
}

/* Appends n values to column d (a failure recorded with its path). */
static void append_checked(tb_h5_writer *w, hid_t d, size_t n, hid_t mtype, const void *v)
{
    if (tb_h5w_ok(w)) tb_h5w_check(w, append_column(d, 0, n, mtype, v), d, "write dataset", NULL);
}

/* Creates a run file with every object in place. live: SWMR writer (libver
 * latest), handles returned in *file and ds, fsync'ed; else c's data and the
 * final attributes are written and the file is closed (rebuild_run_file
 * fsyncs it as it renames it into place). */
static tb_status create_run_file(const char *path, const row *r, const curves *c, int live, hid_t *file,
                                 hid_t ds[EPOCH_COLS + BATCH_COLS], tb_err *err)
{
    for (int i = 0; i < EPOCH_COLS + BATCH_COLS; i++) ds[i] = -1;
    *file = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return tb_fail(err, TB_EIO, "run file %s: cannot create a property list", path);
    if (live) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    /* Root attributes stay in the object header ("compact"): HDF5 1.10.8's H5Ocopy
     * crashes copying a group whose attributes moved to dense storage (more than 8,
     * the default, with libver latest), which tb_archive_export relies on. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_attr_phase_change(fcpl, 64, 48);
    errno = 0;
    hid_t f = fcpl >= 0 ? tb_h5_create(path, fcpl, fapl) : -1;
    char why[128];
    tb_h5_errno_suffix(errno, why);
    if (fcpl >= 0) H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) return tb_fail(err, TB_EIO, "run file %s: cannot create it%s", path, why);
    tb_h5_writer w;
    tb_h5w_init(&w, path);
    char created[32];
    tb_iso_utc(r->created_s, created);
    tb_h5w_attr_str(&w, f, "format", TB_ARCHIVE_RUN_FORMAT);
    tb_h5w_attr_i64(&w, f, "format_version", TB_ARCHIVE_VERSION);
    tb_h5w_attr_str(&w, f, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(&w, f, "git_commit", TB_GIT_COMMIT);
    tb_h5w_attr_str(&w, f, "id", r->id);
    tb_h5w_attr_str(&w, f, "kind", r->kind);
    tb_h5w_attr_str(&w, f, "participant", r->participant ? r->participant : "");
    tb_h5w_attr_str(&w, f, "created", created);
    tb_h5w_attr_f64(&w, f, "created_s", r->created_s);
    write_state_attrs(&w, f, r, live);
    hid_t g = tb_h5w_group(&w, f, "config");
    tb_h5w_attr_str(&w, g, "ini", r->ini ? r->ini : "");
    tb_h5w_close_group(&w, g);
    hid_t ge = tb_h5w_group(&w, f, "curves/epoch");
    hid_t gb = tb_h5w_group(&w, f, "curves/batch");
    for (int i = 0; tb_h5w_ok(&w) && i < EPOCH_COLS; i++) {
        ds[i] = make_column(ge, epoch_cols[i], i == 0 ? H5T_STD_I64LE : H5T_IEEE_F64LE, 64);
        tb_h5w_check(&w, ds[i] < 0 ? -1 : 0, ge, "create dataset", epoch_cols[i]);
    }
    for (int i = 0; tb_h5w_ok(&w) && i < BATCH_COLS; i++) {
        ds[EPOCH_COLS + i] = make_column(gb, batch_cols[i], i == 0 ? H5T_STD_I64LE : H5T_IEEE_F64LE, 1024);
        tb_h5w_check(&w, ds[EPOCH_COLS + i] < 0 ? -1 : 0, gb, "create dataset", batch_cols[i]);
    }
    tb_h5w_close_group(&w, ge);
    tb_h5w_close_group(&w, gb);
    if (c) {
        append_checked(&w, ds[0], c->ne, H5T_NATIVE_INT64, c->epoch);
        for (int i = 1; i < EPOCH_COLS; i++) append_checked(&w, ds[i], c->ne, H5T_NATIVE_DOUBLE, c->e[i - 1]);
        append_checked(&w, ds[EPOCH_COLS], c->nb, H5T_NATIVE_INT64, c->step);
        append_checked(&w, ds[EPOCH_COLS + 1], c->nb, H5T_NATIVE_DOUBLE, c->loss);
    }
    if (live && tb_h5w_ok(&w)) {
        tb_h5w_check(&w, H5Fstart_swmr_write(f) < 0 ? -1 : 0, -1, "start SWMR writing", NULL);
        if (tb_h5w_ok(&w)) tb_h5w_check(&w, H5Fflush(f, H5F_SCOPE_LOCAL) < 0 ? -1 : 0, -1, "flush the writes", NULL);
    }
    if (!tb_h5w_ok(&w) || !live) {
        close_datasets(ds);
        tb_h5w_close_file(&w, f);
        return tb_h5w_finish(&w, err); /* "cannot write attribute status of / in DIR/runs/r000001.h5.tmp (reason)" */
    }
    void *handle = NULL;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, &handle) < 0 || !handle || fsync(*(int *)handle) != 0) {
        close_datasets(ds);
        tb_h5_close_file(f, 0);
        return tb_fail(err, TB_EIO, "run file %s: cannot fsync it", path);
    }
    *file = f;
    return TB_OK;
}

/* Writes the run's file anew from its journal data into <id>.h5.tmp and renames
 * it over <id>.h5 (an unreadable old file is kept as <id>.h5.damaged-N). */
static tb_status rebuild_run_file(const char *dir, const row *r, const curves *c, int keep_old, tb_err *err)
{
    char path[PATH_CAP], tmp[PATH_CAP], aside[PATH_CAP];
    if (run_path(path, dir, r->id, ".h5") != 0 || run_path(tmp, dir, r->id, ".h5.tmp") != 0)
        return tb_fail(err, TB_EINVAL, "archive %s: path too long for run %s", dir, r->id);
    hid_t f, ds[EPOCH_COLS + BATCH_COLS];
    tb_status st = create_run_file(tmp, r, c, 0, &f, ds, err);
    if (st != TB_OK) {
        unlink(tmp);
        return st;
    }
    if (keep_old && access(path, F_OK) == 0) {
        for (int k = 1;; k++) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, ".h5.damaged-%d", k);
            if (run_path(aside, dir, r->id, suffix) != 0)
                return tb_fail(err, TB_EINVAL, "archive %s: path too long for run %s", dir, r->id);
            if (access(aside, F_OK) != 0) break;
        }
        if (rename(path, aside) != 0)
            return tb_fail(err, TB_EIO, "run file %s: cannot move the damaged file aside to %s: %s", path, aside,
                           strerror(errno));
    }
    /* fsync tmp, rename, fsync runs/ (which also makes the move aside durable) */
    if (tb_rename_durable(tmp, path) != 0)
        return tb_fail(err, TB_EIO, "run file %s: cannot move %s into place durably: %s", path, tmp, strerror(errno));
    return TB_OK;
}

/* 1 when the run file exists, opens without SWMR and holds exactly what the
 * journal says; 0 otherwise. *unreadable: it exists but opens in no way. */
static int run_file_matches(const char *path, const row *r, const curves *c, int *unreadable)
{
    *unreadable = 0;
    if (access(path, F_OK) != 0) return 0;
    hid_t f;
    H5E_BEGIN_TRY
    {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            hid_t g = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
            if (g < 0) *unreadable = 1;
            else H5Fclose(g);
        }
    }
    H5E_END_TRY;
    if (f < 0) return 0;
    int ok = 1;
    char status[64];
    H5E_BEGIN_TRY
    {
        tb_h5_read_attr_str(f, "status", status, sizeof status, NULL); /* "" when absent or bad */
        if (strcmp(status, tb_run_status_name(r->status)) != 0) ok = 0;
        double *tmp = malloc(sizeof(double) * (c->ne ? c->ne : 1));
        for (int i = 0; ok && i < EPOCH_COLS + BATCH_COLS; i++) {
            char name[64];
            snprintf(name, sizeof name, "curves/%s/%s", i < EPOCH_COLS ? "epoch" : "batch",
                     i < EPOCH_COLS ? epoch_cols[i] : batch_cols[i - EPOCH_COLS]);
            hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
            hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
            hsize_t n = 0;
            if (sp < 0 || H5Sget_simple_extent_dims(sp, &n, NULL) != 1) ok = 0;
            else if (n != (i < EPOCH_COLS ? c->ne : c->nb)) ok = 0;
            else if (i >= 1 && i < EPOCH_COLS && n > 0) { /* compare the epoch values */
                if (!tmp || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0 ||
                    memcmp(tmp, c->e[i - 1], n * sizeof(double)) != 0)
                    ok = 0;
            }
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
        }
        free(tmp);
        H5Fclose(f);
    }
    H5E_END_TRY;
    return ok;
}

/* ---- the index ---------------------------------------------------------------------------------- */

/* Writes index.h5 into index.h5.tmp and renames it into place; durable: fsync
 * file and directory. Clears the dirty mark (epochs not yet shown). */
static tb_status write_index(tb_archive *a, int durable, tb_err *err)
{
    char path[PATH_CAP], tmp[PATH_CAP];
    snprintf(path, sizeof path, "%s/index.h5", a->dir);
    snprintf(tmp, sizeof tmp, "%s/index.h5.tmp", a->dir);
    size_t n = a->n;
    const char **s[6];
    double *d[8];
    int64_t *i64[3];
    char(*iso)[3][32] = malloc((n ? n : 1) * sizeof *iso);
    int oom = !iso;
    for (int k = 0; k < 6; k++) oom |= !(s[k] = malloc((n ? n : 1) * sizeof(char *)));
    for (int k = 0; k < 8; k++) oom |= !(d[k] = malloc((n ? n : 1) * sizeof(double)));
    for (int k = 0; k < 3; k++) oom |= !(i64[k] = malloc((n ? n : 1) * sizeof(int64_t)));
    tb_status st = TB_OK;
    if (oom) {
        st = tb_fail(err, TB_ENOMEM, "index %s: out of memory for %zu rows", path, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const row *r = &a->rows[i];
        s[0][i] = r->id, s[1][i] = r->kind, s[2][i] = r->participant ? r->participant : "";
        s[3][i] = tb_run_status_name(r->status), s[4][i] = r->message ? r->message : "";
        tb_iso_utc(r->created_s, iso[i][0]), tb_iso_utc(r->started_s, iso[i][1]), tb_iso_utc(r->ended_s, iso[i][2]);
        d[0][i] = r->created_s, d[1][i] = r->started_s, d[2][i] = r->ended_s;
        d[3][i] = r->val_accuracy, d[4][i] = r->test_accuracy;
        i64[0][i] = r->last_epoch, i64[1][i] = r->n_epoch, i64[2][i] = r->n_batch;
    }
    hid_t f = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char why[128];
        st = tb_fail(err, TB_EIO, "index %s: cannot create it%s", tmp, tb_h5_errno_suffix(errno, why));
        goto done;
    }
    char now[32];
    double now_s = tb_utc_now();
    tb_iso_utc(now_s, now);
    tb_h5_writer w;
    tb_h5w_init(&w, tmp);
    tb_h5w_attr_str(&w, f, "format", TB_ARCHIVE_INDEX_FORMAT);
    tb_h5w_attr_i64(&w, f, "format_version", TB_ARCHIVE_VERSION);
    tb_h5w_attr_str(&w, f, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(&w, f, "updated", now);
    tb_h5w_attr_f64(&w, f, "updated_s", now_s);
    hid_t g = tb_h5w_group(&w, f, "index");
    const char **created = s[5];
    tb_h5w_column_str(&w, g, "id", s[0], n);
    tb_h5w_column_str(&w, g, "kind", s[1], n);
    tb_h5w_column_str(&w, g, "participant", s[2], n);
    tb_h5w_column_str(&w, g, "status", s[3], n);
    for (int k = 0; k < 3; k++) {
        static const char *const names[3] = {"created", "started", "ended"};
        for (size_t i = 0; i < n; i++) created[i] = iso[i][k];
        tb_h5w_column_str(&w, g, names[k], (const char *const *)created, n);
        char nm[16];
        snprintf(nm, sizeof nm, "%s_s", names[k]);
        tb_h5w_column_f64(&w, g, nm, d[k], n);
    }
    tb_h5w_column_i64(&w, g, "last_epoch", i64[0], n);
    tb_h5w_column_i64(&w, g, "epochs", i64[1], n);
    tb_h5w_column_i64(&w, g, "batches", i64[2], n);
    tb_h5w_column_f64(&w, g, "val_accuracy", d[3], n);
    tb_h5w_column_f64(&w, g, "test_accuracy", d[4], n);
    tb_h5w_column_str(&w, g, "message", s[4], n);
    tb_h5w_close_group(&w, g);
    tb_h5w_close_file(&w, f);
    if (!tb_h5w_ok(&w)) {
        unlink(tmp);
        st = tb_h5w_finish(&w, err); /* "cannot write dataset /index/val_accuracy in DIR/index.h5.tmp (reason)" */
        goto done;
    }
    if (durable ? tb_rename_durable(tmp, path) != 0 : rename(tmp, path) != 0) {
        st = tb_fail(err, TB_EIO, "index %s: cannot move %s into place%s: %s", path, tmp, durable ? " durably" : "",
                     strerror(errno));
        goto done;
    }
    a->index_dirty = 0;
    a->index_written_s = tb_now();
done:
    free(iso);
    for (int k = 0; k < 6; k++) free(s[k]);
    for (int k = 0; k < 8; k++) free(d[k]);
    for (int k = 0; k < 3; k++) free(i64[k]);
    return st;
}

/* Epochs mark the index dirty; it is rewritten for them (by the next epoch or
 * batches of any run) once it is this many seconds old, and always on begin,
 * status changes, finish, open and close: many short epochs of many runs do
 * not each rewrite the whole table. */
#define INDEX_REFRESH_S 5.0

/* Rewrites the index (renamed, not fsync'ed: epochs are durable in the journal
 * and run file already) when epochs wait for it and it is INDEX_REFRESH_S old. */
static tb_status refresh_index(tb_archive *a, tb_err *err)
{
    if (!a->index_dirty || tb_now() - a->index_written_s < INDEX_REFRESH_S) return TB_OK;
    return write_index(a, 0, err);
}

/* ---- journal records ------------------------------------------------------------------------------ */

static tb_status journal_status(tb_journal *j, tb_run_status st, double t, double test, const char *msg, tb_err *err)
{
    buf b = {0};
    b_u32(&b, (uint32_t)st);
    b_f64(&b, t);
    b_f64(&b, test);
    b_str(&b, msg);
    tb_status s = b.oom ? tb_fail(err, TB_ENOMEM, "journal %s: out of memory", tb_journal_path(j))
                        : tb_journal_append(j, REC_STATUS, b.p, b.n, 1, err);
    free(b.p);
    return s;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

/* ---- open / recover ---------------------------------------------------------------------------------- */

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static tb_status take_lock(tb_archive *a, tb_err *err)
{
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/study.lock", a->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return tb_fail(err, TB_EIO, "archive %s: cannot open %s: %s", a->dir, path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK)
            return tb_fail(err, TB_EIO, "archive %s: cannot lock %s: %s", a->dir, path, strerror(e));
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return tb_fail(err, TB_EIO, "archive %s is in use by process %s", a->dir, pid[0] ? pid : "(unknown pid)");
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return tb_fail(err, TB_EIO, "archive %s: cannot write the pid into %s: %s", a->dir, path, strerror(e));
    }
    a->lock_fd = fd;
    return TB_OK;
}

static void archive_free(tb_archive *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) row_free(&a->rows[i]);
    free(a->rows);
    if (a->lock_fd >= 0) close(a->lock_fd);
    pthread_mutex_destroy(&a->mu);
    free(a->dir);
    free(a);
}

static int add_row(tb_archive *a, const row *r)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        if (grow((void **)&a->rows, sizeof(row), cap) != 0) return -1;
        a->cap = cap;
    }
    a->rows[a->n++] = *r;
    long num;
    char extra;
    if (strlen(r->id) == 7 && sscanf(r->id, "r%6ld%c", &num, &extra) == 1 && num >= a->next_num)
        a->next_num = num + 1;
    return 0;
}

/* Recovers one journal (name = "<id>.journal") into a new row. */
static tb_status recover_run(tb_archive *a, const char *name, tb_archive_recovery *rec, tb_err *err)
{
    char id[TB_ARCHIVE_ID_MAX + 1], jpath[PATH_CAP], hpath[PATH_CAP];
    size_t idlen = strlen(name) - strlen(".journal");
    if (idlen > TB_ARCHIVE_ID_MAX)
        return tb_fail(err, TB_EFORMAT, "archive %s: runs/%s is not named after a run id (at most %d characters)",
                       a->dir, name, TB_ARCHIVE_ID_MAX);
    memcpy(id, name, idlen);
    id[idlen] = '\0';
    if (run_path(jpath, a->dir, id, ".journal") != 0 || run_path(hpath, a->dir, id, ".h5") != 0)
        return tb_fail(err, TB_EINVAL, "archive %s: path too long for %s", a->dir, name);
    /* one read of the journal: replay its valid records, then cut a torn tail */
    row r;
    row_init(&r);
    curves c = {0};
    int begun = 0;
    uint64_t valid = 0, size = 0;
    tb_status st = replay_journal(jpath, &r, &c, &begun, &valid, &size, err);
    if (st != TB_OK) goto fail;
    if (valid != size) {
        if ((st = tb_journal_truncate(jpath, valid, err)) != TB_OK) goto fail;
        rec->journals_cut++, rec->bytes_dropped += size - valid;
    }
    if (!begun) { /* creation torn before its first record: the run never began */
        rec->empty_journals++;
        unlink(jpath);
        if (access(hpath, F_OK) == 0) {
            char aside[PATH_CAP];
            run_path(aside, a->dir, id, ".h5.orphan");
            rename(hpath, aside);
        }
        row_free(&r);
        curves_free(&c);
        return TB_OK;
    }
    if (strcmp(r.id, id) != 0) {
        st = tb_fail(err, TB_EFORMAT, "journal %s: it belongs to run \"%s\", not \"%s\"", jpath, r.id, id);
        goto fail;
    }
    if (!tb_run_status_is_final(r.status)) {
        char last[32], now[32], msg[160];
        tb_iso_utc(r.last_seen_s, last);
        tb_iso_utc(tb_utc_now(), now);
        snprintf(msg, sizeof msg, "interrupted: the writing process stopped; last record %s, recovered %s", last, now);
        tb_journal *j = NULL;
        st = tb_journal_open_valid(jpath, valid, &j, err);
        if (st == TB_OK) st = journal_status(j, TB_RUN_INTERRUPTED, r.last_seen_s, NAN, msg, err);
        tb_journal_close(j);
        if (st != TB_OK) goto fail;
        char *m = strdup(msg);
        if (!m) {
            st = tb_fail(err, TB_ENOMEM, "journal %s: out of memory", jpath);
            goto fail;
        }
        apply_status(&r, TB_RUN_INTERRUPTED, r.last_seen_s, NAN, m);
        rec->interrupted++;
    }
    int unreadable = 0;
    if (!run_file_matches(hpath, &r, &c, &unreadable)) {
        st = rebuild_run_file(a->dir, &r, &c, unreadable, err);
        if (st != TB_OK) goto fail;
        rec->rebuilt++;
        if (unreadable) rec->damaged++;
    }
    curves_free(&c);
    if (add_row(a, &r) != 0) {
        row_free(&r);
        return tb_fail(err, TB_ENOMEM, "archive %s: out of memory", a->dir);
    }
    rec->runs++;
    return TB_OK;
fail:
    row_free(&r);
    curves_free(&c);
    return st;
}

/* Creation order: created_s, then id (ids are unique, so the order is total). */
static int cmp_created(const void *x, const void *y)
{
    const row *p = x, *q = y;
    if (p->created_s < q->created_s) return -1;
    if (p->created_s > q->created_s) return 1;
    return strcmp(p->id, q->id);
}

static tb_status recover(tb_archive *a, tb_archive_recovery *rec, tb_err *err)
{
    char runs[PATH_CAP];
    snprintf(runs, sizeof runs, "%s/runs", a->dir);
    DIR *d = opendir(runs);
    if (!d) return tb_fail(err, TB_EIO, "archive %s: cannot list runs/: %s", a->dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    tb_status st = TB_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 8 || strcmp(e->d_name + len - 8, ".journal") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if (grow((void **)&names, sizeof(char *), cap) != 0) {
                st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory listing runs/", a->dir);
                break;
            }
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory listing runs/", a->dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (st == TB_OK && n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; st == TB_OK && i < n; i++) st = recover_run(a, names[i], rec, err);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (st != TB_OK) return st;
    if (a->n) qsort(a->rows, a->n, sizeof *a->rows, cmp_created);
    return TB_OK;
}

/* 1 when name is one of the temporary files tunebench writes in dir/sub
 * (sub "" for dir itself, "runs", "sweeps") and renames into place. */
static int own_temporary(const char *sub, const char *name)
{
    size_t len = strlen(name);
    if (!*sub) return !strcmp(name, "index.h5.tmp") || !strcmp(name, "study.h5.tmp");
    if (len > 7 && !strcmp(name + len - 7, ".h5.tmp")) return 1; /* runs/<id>.h5.tmp, sweeps/<s>.h5.tmp */
    if (strcmp(sub, "runs") != 0) return 0;
    const char *t = strstr(name, ".h5.tmp-"); /* a run file's: runs/<id><suffix>.h5.tmp-PID */
    if (!t || t == name || !t[8]) return 0;
    for (t += 8; *t; t++)
        if (*t < '0' || *t > '9') return 0;
    return 1;
}

/* The writer of a run file's temporary runs/<id><suffix>.h5.tmp-PID: 1 when
 * that process is alive on this machine. A run-job child (process or Slurm
 * executor) writes its run file without the archive's lock, possibly while a
 * restarted study opens the archive and adopts it; its temporary is not stale. */
static int writer_alive(const char *name)
{
    const char *t = strstr(name, ".h5.tmp-");
    if (!t) return 0;
    long pid = strtol(t + 8, NULL, 10);
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Removes the temporary files a process that died (or hit a full disk) left
 * behind: under the archive's lock no other process writes them, except a
 * run-job's run file, kept while its writer lives. Only our own names are
 * touched. */
static void remove_stale_temporaries(tb_archive *a)
{
    static const char *const subs[] = {"", "runs", "sweeps"};
    for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++) {
        char dpath[PATH_CAP];
        snprintf(dpath, sizeof dpath, "%s%s%s", a->dir, *subs[k] ? "/" : "", subs[k]);
        DIR *d = opendir(dpath);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!own_temporary(subs[k], e->d_name) || writer_alive(e->d_name)) continue;
            char p[PATH_CAP + 256];
            snprintf(p, sizeof p, "%s/%s", dpath, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(p);
        }
        closedir(d);
    }
}

tb_status tb_archive_open(const char *dir, int create, tb_archive **out, tb_archive_recovery *recovery, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    *out = NULL;
    tb_archive_recovery rec = {0};
    if (recovery) *recovery = rec;
    if (!dir || !*dir) return tb_fail(err, TB_EINVAL, "archive: empty directory name");
    if (strlen(dir) > PATH_CAP - 64) return tb_fail(err, TB_EINVAL, "archive %s: path too long", dir);
    char runs[PATH_CAP];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    struct stat sb;
    if (create) {
        if (tb_make_dirs(dir) != 0) /* with its parents */
            return tb_fail(err, TB_EIO, "archive %s: cannot create the directory: %s", dir, strerror(errno));
        if (mkdir(runs, 0755) != 0 && errno != EEXIST)
            return tb_fail(err, TB_EIO, "archive %s: cannot create runs/: %s", dir, strerror(errno));
    } else if (stat(runs, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return tb_fail(err, TB_EFORMAT, "archive %s: not an archive (no runs/ directory)", dir);
    }
    tb_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->dir = strdup(dir))) {
        free(a);
        return tb_fail(err, TB_ENOMEM, "archive %s: out of memory", dir);
    }
    a->lock_fd = -1;
    a->next_num = 1;
    pthread_mutex_init(&a->mu, NULL);
    tb_status st = take_lock(a, err);
    if (st == TB_OK) remove_stale_temporaries(a);
    if (st == TB_OK) st = recover(a, &rec, err);
    if (st == TB_OK) st = write_index(a, 1, err);
    if (st == TB_OK && create && tb_fsync_path(dir, 1) != 0)
        st = tb_fail(err, TB_EIO, "archive %s: cannot fsync the directory: %s", dir, strerror(errno));
    if (st != TB_OK) {
        archive_free(a);
        return st;
    }
    if (recovery) *recovery = rec;
    *out = a;
    return TB_OK;
}

const char *tb_archive_dir(const tb_archive *a) { return a->dir; }

/* ---- runs ------------------------------------------------------------------------------------- */

static row *find_row(tb_archive *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->rows[i].id, id) == 0) return &a->rows[i];
    return NULL;
}

tb_status tb_archive_begin_run(tb_archive *a, const char *id, const char *kind, const char *participant,
                               const char *attrs_ini, tb_archive_run **out, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    *out = NULL;
    if (!kind || !tb_archive_valid_name(kind, TB_ARCHIVE_KIND_MAX))
        return tb_fail(err, TB_EINVAL, "archive %s: run kind \"%s\" is not 1-%d characters of [A-Za-z0-9._-]", a->dir,
                       kind ? kind : "(null)", TB_ARCHIVE_KIND_MAX);
    if (id && !tb_archive_valid_name(id, TB_ARCHIVE_ID_MAX))
        return tb_fail(err, TB_EINVAL, "archive %s: run id \"%s\" is not 1-%d characters of [A-Za-z0-9._-]", a->dir,
                       id, TB_ARCHIVE_ID_MAX);
    if (participant && strlen(participant) > 127)
        return tb_fail(err, TB_EINVAL, "archive %s: participant \"%.40s...\" is longer than 127 bytes", a->dir,
                       participant);
    pthread_mutex_lock(&a->mu);
    tb_status st = TB_OK;
    char idbuf[TB_ARCHIVE_ID_MAX + 1], jpath[PATH_CAP], hpath[PATH_CAP];
    if (id) {
        snprintf(idbuf, sizeof idbuf, "%s", id);
        run_path(jpath, a->dir, idbuf, ".journal");
        if (find_row(a, idbuf) || access(jpath, F_OK) == 0) {
            st = tb_fail(err, TB_EINVAL, "archive %s: run id \"%s\" is taken", a->dir, id);
            goto out;
        }
    } else {
        for (;;) {
            snprintf(idbuf, sizeof idbuf, "r%06ld", a->next_num++);
            run_path(jpath, a->dir, idbuf, ".journal");
            if (!find_row(a, idbuf) && access(jpath, F_OK) != 0) break;
        }
    }
    run_path(hpath, a->dir, idbuf, ".h5");
    tb_archive_run *r = calloc(1, sizeof *r);
    row rw;
    row_init(&rw);
    snprintf(rw.id, sizeof rw.id, "%s", idbuf);
    snprintf(rw.kind, sizeof rw.kind, "%s", kind);
    rw.participant = dup_or_empty(participant);
    rw.ini = dup_or_empty(attrs_ini);
    rw.message = dup_or_empty("");
    rw.created_s = rw.last_seen_s = tb_utc_now();
    rw.status = TB_RUN_QUEUED;
    if (!r || !rw.participant || !rw.ini || !rw.message) {
        free(r);
        row_free(&rw);
        st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory beginning a run", a->dir);
        goto out;
    }
    r->a = a;
    r->file = -1;
    for (int i = 0; i < EPOCH_COLS + BATCH_COLS; i++) r->ds[i] = -1;
    buf b = {0};
    b_f64(&b, rw.created_s);
    b_str(&b, rw.id);
    b_str(&b, rw.kind);
    b_str(&b, rw.participant);
    b_str(&b, rw.ini);
    if (b.oom) st = tb_fail(err, TB_ENOMEM, "journal %s: out of memory", jpath);
    if (st == TB_OK) st = tb_journal_open(jpath, &r->j, err);
    if (st == TB_OK) st = tb_journal_append(r->j, REC_BEGIN, b.p, b.n, 1, err);
    free(b.p);
    if (st != TB_OK) { /* nothing acknowledged: a torn journal is dropped on the next open */
        tb_journal_close(r->j);
        unlink(jpath);
        free(r);
        row_free(&rw);
        goto out;
    }
    st = create_run_file(hpath, &rw, NULL, 1, &r->file, r->ds, err);
    if (st == TB_OK && fsync_runs_dir(a->dir) != 0)
        st = tb_fail(err, TB_EIO, "archive %s: cannot fsync runs/: %s", a->dir, strerror(errno));
    if (st != TB_OK) {
        /* the journal has the run: record why it stops, the next open rebuilds the file */
        tb_err e2;
        char *m = strdup(err ? err->msg : "the run file could not be created");
        double t = tb_utc_now();
        journal_status(r->j, TB_RUN_INTERRUPTED, t, NAN, m ? m : "", &e2);
        apply_status(&rw, TB_RUN_INTERRUPTED, t, NAN, m);
        close_datasets(r->ds);
        tb_h5_close_file(r->file, 0); /* abandoned when its flush fails */
        tb_journal_close(r->j);
        free(r);
        if (add_row(a, &rw) != 0) row_free(&rw);
        else write_index(a, 1, &e2);
        goto out;
    }
    if (add_row(a, &rw) != 0) {
        row_free(&rw);
        close_datasets(r->ds);
        tb_h5_close_file(r->file, 0);
        tb_journal_close(r->j);
        free(r);
        st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory", a->dir);
        goto out;
    }
    r->row = a->n - 1;
    a->rows[r->row].live = r;
    st = write_index(a, 1, err);
    *out = r; /* the run exists (its journal says so) even when the index could not be rewritten */
out:
    pthread_mutex_unlock(&a->mu);
    return st;
}

tb_status tb_archive_resume_run(tb_archive *a, const char *id, const char *message, tb_archive_run **out,
                                int64_t *last_epoch, int64_t *last_step, tb_err *err)
{
    tb_h5_quiet();
    *out = NULL;
    *last_epoch = *last_step = 0;
    pthread_mutex_lock(&a->mu);
    tb_status st = TB_OK;
    row *rw = find_row(a, id);
    char jpath[PATH_CAP], hpath[PATH_CAP], tmp[PATH_CAP];
    row jr;
    row_init(&jr);
    curves c = {0};
    tb_archive_run *r = NULL;
    if (!rw || rw->live || rw->status != TB_RUN_INTERRUPTED) {
        st = tb_fail(err, TB_EINVAL, "archive %s: run %s cannot be resumed: %s", a->dir, id,
                     !rw ? "no such run" : rw->live ? "it is open" : "it did not end interrupted");
        goto out;
    }
    if (run_path(jpath, a->dir, id, ".journal") != 0 || run_path(hpath, a->dir, id, ".h5") != 0 ||
        run_path(tmp, a->dir, id, ".h5.tmp") != 0) {
        st = tb_fail(err, TB_EINVAL, "archive %s: path too long for run %s", a->dir, id);
        goto out;
    }
    /* the journal is the truth: its curves go into the new live file */
    int begun = 0;
    uint64_t valid = 0, size = 0;
    if ((st = replay_journal(jpath, &jr, &c, &begun, &valid, &size, err)) != TB_OK) goto out;
    if (!begun || valid != size) {
        st = tb_fail(err, TB_EFORMAT, "journal %s: not whole; the run cannot be resumed", jpath);
        goto out;
    }
    r = calloc(1, sizeof *r);
    char *m = strdup(message ? message : "resumed");
    if (!r || !m) {
        free(m);
        st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory", a->dir);
        goto out;
    }
    r->a = a;
    r->file = -1;
    for (int i = 0; i < EPOCH_COLS + BATCH_COLS; i++) r->ds[i] = -1;
    double now = tb_utc_now();
    if ((st = tb_journal_open_valid(jpath, valid, &r->j, err)) != TB_OK ||
        (st = journal_status(r->j, TB_RUN_TRAINING, now, NAN, m, err)) != TB_OK) {
        free(m);
        goto out;
    }
    apply_status(rw, TB_RUN_TRAINING, now, NAN, m);
    rw->ended_s = NAN;
    /* a new live file from the journal, renamed over the old one (whose content the journal has) */
    if ((st = create_run_file(tmp, rw, &c, 1, &r->file, r->ds, err)) != TB_OK || tb_rename_durable(tmp, hpath) != 0) {
        if (st == TB_OK) st = tb_fail(err, TB_EIO, "run file %s: cannot move %s into place: %s", hpath, tmp,
                                      strerror(errno));
        unlink(tmp);
        /* the journal says training: the next open ends it interrupted again; say why now */
        char *why = strdup(err ? err->msg : "the run file could not be made live again");
        tb_err e2;
        journal_status(r->j, TB_RUN_INTERRUPTED, now, NAN, why ? why : "", &e2);
        apply_status(rw, TB_RUN_INTERRUPTED, now, NAN, why);
        close_datasets(r->ds);
        if (r->file >= 0) tb_h5_close_file(r->file, 0);
        goto out;
    }
    *last_epoch = c.ne ? c.epoch[c.ne - 1] : 0;
    *last_step = c.nb ? c.step[c.nb - 1] : 0;
    r->row = (size_t)(rw - a->rows);
    rw->live = r;
    *out = r;
    r = NULL;
    st = write_index(a, 1, err);
out:
    if (r) {
        tb_journal_close(r->j);
        free(r);
    }
    row_free(&jr);
    curves_free(&c);
    pthread_mutex_unlock(&a->mu);
    return st;
}

const char *tb_archive_run_id(const tb_archive_run *r) { return r->a->rows[r->row].id; }

/* Runs must not move in a->rows while handles point at them: rows only grow
 * (realloc keeps indices), and handles keep an index, not a pointer. */

static tb_status h5_sync(tb_archive_run *r, const char *what, tb_err *err)
{
    void *handle = NULL;
    row *rw = &r->a->rows[r->row];
    if (H5Fflush(r->file, H5F_SCOPE_LOCAL) < 0 || H5Fget_vfd_handle(r->file, H5P_DEFAULT, &handle) < 0 || !handle ||
        fsync(*(int *)handle) != 0) {
        r->broken = 1;
        return tb_fail(err, TB_EIO, "run file %s/runs/%s.h5: cannot flush and fsync %s", r->a->dir, rw->id, what);
    }
    return TB_OK;
}

tb_status tb_archive_run_epoch(tb_archive_run *r, int64_t epoch, double train_loss, double val_loss,
                               double val_accuracy, double seconds, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    tb_archive *a = r->a;
    pthread_mutex_lock(&a->mu);
    row *rw = &a->rows[r->row];
    tb_status st = TB_OK;
    if (epoch <= rw->last_epoch) {
        st = tb_fail(err, TB_EINVAL, "run %s/runs/%s: epoch %lld is not after the last one (%lld)", a->dir, rw->id,
                     (long long)epoch, (long long)rw->last_epoch);
        goto out;
    }
    double t = tb_utc_now();
    double v[EPOCH_COLS - 1] = {train_loss, val_loss, val_accuracy, seconds};
    buf b = {0};
    b_f64(&b, t);
    b_u64(&b, (uint64_t)epoch);
    for (int i = 0; i < EPOCH_COLS - 1; i++) b_f64(&b, v[i]);
    st = b.oom ? tb_fail(err, TB_ENOMEM, "journal %s: out of memory", tb_journal_path(r->j))
               : tb_journal_append(r->j, REC_EPOCH, b.p, b.n, 1, err);
    free(b.p);
    if (st != TB_OK) goto out;
    rw->n_epoch++;
    rw->last_epoch = epoch;
    rw->val_accuracy = val_accuracy;
    rw->last_seen_s = t;
    a->index_dirty = 1;
    if (r->broken) {
        st = tb_fail(err, TB_EIO, "run file %s/runs/%s.h5: failed earlier; the epoch is only in the journal", a->dir,
                     rw->id);
        goto out;
    }
    hsize_t n0 = (hsize_t)rw->n_epoch - 1;
    int rc = append_column(r->ds[0], n0, 1, H5T_NATIVE_INT64, &epoch);
    for (int i = 1; i < EPOCH_COLS && rc == 0; i++) rc = append_column(r->ds[i], n0, 1, H5T_NATIVE_DOUBLE, &v[i - 1]);
    if (rc != 0) {
        r->broken = 1;
        st = tb_fail(err, TB_EIO, "run file %s/runs/%s.h5: cannot append epoch %lld", a->dir, rw->id, (long long)epoch);
        goto out;
    }
    st = h5_sync(r, "an epoch", err);
    if (st == TB_OK) st = refresh_index(a, err);
out:
    pthread_mutex_unlock(&a->mu);
    return st;
}

tb_status tb_archive_run_batches(tb_archive_run *r, size_t n, const int64_t *step, const double *loss, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    if (n == 0) return TB_OK;
    tb_archive *a = r->a;
    if (n > (TB_JOURNAL_MAX_PAYLOAD - 64) / 16)
        return tb_fail(err, TB_EINVAL, "run %s/runs/%s: %zu batches in one call is too many", a->dir,
                       tb_archive_run_id(r), n);
    pthread_mutex_lock(&a->mu);
    row *rw = &a->rows[r->row];
    double t = tb_utc_now();
    buf b = {0};
    b_f64(&b, t);
    b_u32(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        b_u64(&b, (uint64_t)step[i]);
        b_f64(&b, loss[i]);
    }
    tb_status st = b.oom ? tb_fail(err, TB_ENOMEM, "journal %s: out of memory", tb_journal_path(r->j))
                         : tb_journal_append(r->j, REC_BATCHES, b.p, b.n, 0, err);
    free(b.p);
    if (st == TB_OK) {
        hsize_t n0 = (hsize_t)rw->n_batch;
        rw->n_batch += (int64_t)n;
        rw->last_seen_s = t;
        if (r->broken) {
            st = tb_fail(err, TB_EIO, "run file %s/runs/%s.h5: failed earlier; batches are only in the journal", a->dir,
                         rw->id);
        } else if (append_column(r->ds[EPOCH_COLS], n0, n, H5T_NATIVE_INT64, step) != 0 ||
                   append_column(r->ds[EPOCH_COLS + 1], n0, n, H5T_NATIVE_DOUBLE, loss) != 0 ||
                   H5Fflush(r->file, H5F_SCOPE_LOCAL) < 0) {
            r->broken = 1;
            st = tb_fail(err, TB_EIO, "run file %s/runs/%s.h5: cannot append %zu batches", a->dir, rw->id, n);
        }
    }
    if (st == TB_OK) { /* best effort: a failed refresh stays dirty and the next call retries it */
        tb_err ignore;
        refresh_index(a, &ignore);
    }
    pthread_mutex_unlock(&a->mu);
    return st;
}

tb_status tb_archive_run_status(tb_archive_run *r, tb_run_status status, const char *message, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    tb_archive *a = r->a;
    if (tb_run_status_is_final(status) || (unsigned)status > TB_RUN_REJECTED)
        return tb_fail(err, TB_EINVAL, "run %s/runs/%s: status \"%s\" ends a run: use tb_archive_run_finish", a->dir,
                       tb_archive_run_id(r), tb_run_status_name(status));
    pthread_mutex_lock(&a->mu);
    row *rw = &a->rows[r->row];
    double t = tb_utc_now();
    char *m = dup_or_empty(message);
    tb_status st = m ? journal_status(r->j, status, t, NAN, m, err)
                     : tb_fail(err, TB_ENOMEM, "run %s/runs/%s: out of memory", a->dir, rw->id);
    if (st == TB_OK) {
        apply_status(rw, status, t, NAN, m);
        st = write_index(a, 1, err);
    } else {
        free(m);
    }
    pthread_mutex_unlock(&a->mu);
    return st;
}

/* Closes the live handles and rewrites the run file from the journal; mutex
 * held. The caller writes the index (once, however many runs it finishes).
 *
 * The rewrite is deliberate even when the live file is intact: the live file
 * has the latest file format (superblock v3, needed for SWMR), which HDF5
 * releases before 1.10 and the tools built on them cannot open; the final
 * file is a plain, default-format one written into <id>.h5.tmp and renamed
 * over it, so SWMR readers that hold the live file keep a complete inode
 * instead of seeing it change under them (docs/archive.md). Replaying the
 * journal for it also checks the journal against the run's state. */
static tb_status finish_locked(tb_archive_run *r, tb_run_status status, double test_accuracy, const char *message,
                               tb_err *err)
{
    tb_archive *a = r->a;
    row *rw = &a->rows[r->row];
    double t = tb_utc_now();
    char *m = dup_or_empty(message);
    tb_status st = m ? journal_status(r->j, status, t, test_accuracy, m, err)
                     : tb_fail(err, TB_ENOMEM, "run %s/runs/%s: out of memory", a->dir, rw->id);
    close_datasets(r->ds);
    tb_h5_close_file(r->file, 0); /* abandoned when its flush fails */
    r->file = -1;
    tb_journal_close(r->j);
    r->j = NULL;
    rw->live = NULL;
    if (st != TB_OK) { /* the next open finds the run unfinished and marks it interrupted */
        free(m);
        return st;
    }
    apply_status(rw, status, t, test_accuracy, m);
    char jpath[PATH_CAP];
    run_path(jpath, a->dir, rw->id, ".journal");
    row copy;
    curves c = {0};
    int begun;
    st = replay_journal(jpath, &copy, &c, &begun, NULL, NULL, err);
    if (st == TB_OK && (copy.n_epoch != rw->n_epoch || copy.status != rw->status))
        st = tb_fail(err, TB_EFORMAT, "journal %s: replay disagrees with the run's state", jpath);
    if (st == TB_OK) st = rebuild_run_file(a->dir, &copy, &c, 0, err);
    row_free(&copy);
    curves_free(&c);
    return st;
}

tb_status tb_archive_run_finish(tb_archive_run *r, tb_run_status status, double test_accuracy, const char *message,
                                tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    tb_archive *a = r->a;
    tb_status bad = TB_OK;
    tb_err ignore;
    if (!tb_run_status_is_final(status)) { /* the caller's mistake is the error it gets; the run still ends */
        bad = tb_fail(err, TB_EINVAL, "run %s/runs/%s: \"%s\" is not a final status; the run ends as interrupted",
                      a->dir, tb_archive_run_id(r), tb_run_status_name(status));
        status = TB_RUN_INTERRUPTED;
        test_accuracy = NAN;
        message = "finished with a non-final status";
        err = &ignore;
    }
    pthread_mutex_lock(&a->mu);
    tb_status st = finish_locked(r, status, test_accuracy, message, err);
    tb_status st2 = write_index(a, 1, st == TB_OK ? err : NULL);
    pthread_mutex_unlock(&a->mu);
    free(r);
    return bad != TB_OK ? bad : st != TB_OK ? st : st2;
}

tb_status tb_archive_close(tb_archive *a, tb_err *err)
{
    tb_h5_quiet(); /* HDF5 keeps it per thread: callers run on worker threads */
    if (!a) return TB_OK;
    tb_status st = TB_OK;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n; i++) {
        tb_archive_run *r = a->rows[i].live;
        if (!r) continue;
        tb_err e2;
        tb_status s = finish_locked(r, TB_RUN_INTERRUPTED, NAN, "interrupted: the archive was closed while the run was live",
                                    &e2);
        free(r);
        if (s != TB_OK && st == TB_OK) {
            st = s;
            if (err) *err = e2;
        }
    }
    tb_status s = write_index(a, 1, st == TB_OK ? err : NULL);
    if (st == TB_OK) st = s;
    pthread_mutex_unlock(&a->mu);
    archive_free(a);
    return st;
}

/* ---- queries ------------------------------------------------------------------------------------ */

static void fill_info(const row *r, tb_archive_run_info *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", r->id);
    snprintf(o->kind, sizeof o->kind, "%s", r->kind);
    snprintf(o->participant, sizeof o->participant, "%s", r->participant ? r->participant : "");
    snprintf(o->message, sizeof o->message, "%s", r->message ? r->message : "");
    o->status = r->status;
    o->created_s = r->created_s, o->started_s = r->started_s, o->ended_s = r->ended_s;
    tb_iso_utc(r->created_s, o->created), tb_iso_utc(r->started_s, o->started), tb_iso_utc(r->ended_s, o->ended);
    o->last_epoch = r->last_epoch, o->epochs = r->n_epoch, o->batches = r->n_batch;
    o->val_accuracy = r->val_accuracy, o->test_accuracy = r->test_accuracy;
    o->live = r->live != NULL;
}

size_t tb_archive_run_count(tb_archive *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    return n;
}

tb_status tb_archive_run_info_at(tb_archive *a, size_t i, tb_archive_run_info *out, tb_err *err)
{
    pthread_mutex_lock(&a->mu);
    tb_status st = TB_OK;
    if (i >= a->n) st = tb_fail(err, TB_EINVAL, "archive %s: run %zu of %zu does not exist", a->dir, i, a->n);
    else fill_info(&a->rows[i], out);
    pthread_mutex_unlock(&a->mu);
    return st;
}

tb_status tb_archive_run_info_by_id(tb_archive *a, const char *id, tb_archive_run_info *out, tb_err *err)
{
    pthread_mutex_lock(&a->mu);
    row *r = find_row(a, id);
    tb_status st = r ? TB_OK : tb_fail(err, TB_EINVAL, "archive %s: no run \"%s\"", a->dir, id);
    if (r) fill_info(r, out);
    pthread_mutex_unlock(&a->mu);
    return st;
}

tb_status tb_archive_run_curves(tb_archive *a, const char *id, tb_archive_curves *out, tb_err *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&a->mu);
    tb_status st = TB_OK;
    char path[PATH_CAP];
    if (!find_row(a, id)) st = tb_fail(err, TB_EINVAL, "archive %s: no run \"%s\"", a->dir, id);
    else if (run_path(path, a->dir, id, ".journal") != 0) st = tb_fail(err, TB_EINVAL, "archive %s: path too long", a->dir);
    row r;
    row_init(&r);
    curves c = {0};
    int begun = 0;
    /* the journal is the truth, and complete up to the last record written (also while the run is live) */
    if (st == TB_OK) st = replay_journal(path, &r, &c, &begun, NULL, NULL, err);
    pthread_mutex_unlock(&a->mu);
    row_free(&r);
    if (st != TB_OK) {
        curves_free(&c);
        return st;
    }
    out->n_batch = c.nb;
    out->step = c.step;
    out->loss = c.loss;
    out->n_epoch = c.ne;
    out->epoch = c.epoch;
    out->train_loss = c.e[0];
    out->val_loss = c.e[1];
    out->val_accuracy = c.e[2];
    out->seconds = c.e[3];
    return TB_OK;
}

void tb_archive_curves_free(tb_archive_curves *c)
{
    if (!c) return;
    free(c->step), free(c->loss), free(c->epoch);
    free(c->train_loss), free(c->val_loss), free(c->val_accuracy), free(c->seconds);
    memset(c, 0, sizeof *c);
}

tb_status tb_archive_run_note(tb_archive *a, const char *id, const char *message, tb_err *err)
{
    pthread_mutex_lock(&a->mu);
    row *r = find_row(a, id);
    tb_status st = TB_OK;
    char jpath[PATH_CAP];
    if (!r) st = tb_fail(err, TB_EINVAL, "archive %s: no run \"%s\"", a->dir, id);
    else if (r->live || !tb_run_status_is_final(r->status))
        st = tb_fail(err, TB_EINVAL, "archive %s: run %s has not ended; only an ended run's message can be replaced",
                     a->dir, id);
    else if (run_path(jpath, a->dir, r->id, ".journal") != 0)
        st = tb_fail(err, TB_EINVAL, "archive %s: path too long for run %s", a->dir, id);
    char *m = st == TB_OK ? strdup(message ? message : "") : NULL;
    if (st == TB_OK && !m) st = tb_fail(err, TB_ENOMEM, "archive %s: out of memory", a->dir);
    if (st == TB_OK) {
        /* the journal first (the same end, a new message), then the run file from it, then the index */
        tb_journal *j = NULL;
        st = tb_journal_open(jpath, &j, err);
        if (st == TB_OK) st = journal_status(j, r->status, r->ended_s, r->test_accuracy, m, err);
        tb_journal_close(j);
        row again;
        row_init(&again);
        curves c = {0};
        int begun = 0;
        if (st == TB_OK && (st = replay_journal(jpath, &again, &c, &begun, NULL, NULL, err)) == TB_OK)
            st = rebuild_run_file(a->dir, &again, &c, 0, err);
        row_free(&again);
        curves_free(&c);
        if (st == TB_OK) {
            free(r->message);
            r->message = m;
            m = NULL;
            st = write_index(a, 1, err);
        }
    }
    free(m);
    pthread_mutex_unlock(&a->mu);
    return st;
}
