/* test_archive.c: the run journal (CRC32C framing, torn and damaged tails) and
 * the study archive: runs with epochs and batches, statuses in the index, the
 * writer lock across processes, recovery after a writer dies, damaged run files,
 * and the single-file export, read back with the HDF5 C API alone. */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/archive.h"
#include "store/journal.h"
#include "tb_test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char tmpdir[512];

static void make_tmpdir(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "archive");
}

static void remove_tmpdir(void)
{
    ck_assert(tbt_rm_rf(tmpdir) == 0);
}

static const char *tmp_file(const char *name)
{
    static char path[16][1024];
    static int which;
    which = (which + 1) % 16;
    snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
    return path[which];
}

static long file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
    return (long)st.st_size;
}

static void flip_byte(const char *path, long offset)
{
    int fd = open(path, O_RDWR);
    ck_assert(fd >= 0);
    unsigned char c;
    ck_assert(pread(fd, &c, 1, offset) == 1);
    c ^= 0x10;
    ck_assert(pwrite(fd, &c, 1, offset) == 1);
    close(fd);
}

static void append_bytes(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    ck_assert(fd >= 0);
    ck_assert(write(fd, data, n) == (ssize_t)n);
    close(fd);
}

/* whole 1-D dataset as doubles (any numeric type); malloc'd */
static double *read_col(hid_t f, const char *name, size_t *n)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset %s is missing", name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims = 0;
    ck_assert(H5Sget_simple_extent_ndims(sp) == 1);
    H5Sget_simple_extent_dims(sp, &dims, NULL);
    double *v = malloc(sizeof(double) * (dims ? dims : 1));
    ck_assert(v);
    if (dims) ck_assert(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    *n = dims;
    return v;
}

/* the i-th string of a 1-D string dataset into out */
static void read_str_at(hid_t f, const char *name, size_t i, char *out, size_t cap)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset %s is missing", name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims = 0;
    H5Sget_simple_extent_dims(sp, &dims, NULL);
    ck_assert(i < dims);
    char **v = calloc(dims, sizeof *v);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    snprintf(out, cap, "%s", v[i] ? v[i] : "");
    H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
}

static void read_attr_s(hid_t obj, const char *name, char *out, size_t cap)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s is missing", name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *v = NULL;
    ck_assert(H5Aread(a, t, &v) >= 0);
    snprintf(out, cap, "%s", v ? v : "");
    H5free_memory(v);
    H5Tclose(t);
    H5Aclose(a);
}

static double read_attr_d(hid_t obj, const char *name)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s is missing", name);
    double v = 0;
    ck_assert(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* ---- the journal -------------------------------------------------------------------- */

typedef struct seen_rec {
    int n;
    uint32_t type[8];
    size_t len[8];
    unsigned char first[8];
} seen_rec;

static int collect(void *ctx, uint32_t type, const void *data, size_t len)
{
    seen_rec *s = ctx;
    if (s->n < 8) {
        s->type[s->n] = type;
        s->len[s->n] = len;
        s->first[s->n] = len ? ((const unsigned char *)data)[0] : 0;
    }
    s->n++;
    return 0;
}

START_TEST(test_crc32c)
{
    ck_assert_uint_eq(tb_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(tb_crc32c(tb_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    ck_assert_uint_eq(tb_crc32c(0, "", 0), 0u);
}
END_TEST

static void write_three(const char *path)
{
    tb_journal *j;
    tb_err err;
    ck_assert_msg(tb_journal_open(path, &j, &err) == TB_OK, "%s", err.msg);
    unsigned char big[3000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7);
    ck_assert(tb_journal_append(j, 7, "hello", 5, 0, &err) == TB_OK);
    ck_assert(tb_journal_append(j, 8, NULL, 0, 1, &err) == TB_OK);
    ck_assert(tb_journal_append(j, 9, big, sizeof big, 1, &err) == TB_OK);
    ck_assert_int_eq((long)tb_journal_size(j), file_size(path));
    tb_journal_close(j);
}

START_TEST(test_journal_round_trip)
{
    make_tmpdir();
    const char *p = tmp_file("a.journal");
    write_three(p);
    ck_assert_int_eq(file_size(p), (16 + 5) + 16 + (16 + 3000));
    seen_rec s = {0};
    uint64_t valid, size;
    tb_err err;
    ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
    ck_assert_int_eq(s.n, 3);
    ck_assert_uint_eq(s.type[0], 7);
    ck_assert_uint_eq(s.len[0], 5);
    ck_assert_int_eq(s.first[0], 'h');
    ck_assert_uint_eq(s.type[1], 8);
    ck_assert_uint_eq(s.len[1], 0);
    ck_assert_uint_eq(s.type[2], 9);
    ck_assert_uint_eq(s.len[2], 3000);
    ck_assert_uint_eq(valid, size);
    /* reopening appends after the existing records */
    tb_journal *j;
    ck_assert(tb_journal_open(p, &j, &err) == TB_OK);
    ck_assert(tb_journal_append(j, 10, "x", 1, 1, &err) == TB_OK);
    tb_journal_close(j);
    memset(&s, 0, sizeof s);
    ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
    ck_assert_int_eq(s.n, 4);
    ck_assert_uint_eq(s.type[3], 10);
    /* a missing file is an error naming it */
    ck_assert(tb_journal_read(tmp_file("none.journal"), NULL, NULL, NULL, NULL, &err) == TB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "none.journal"));
    remove_tmpdir();
}
END_TEST

START_TEST(test_journal_crc_detects_flips)
{
    make_tmpdir();
    const char *p = tmp_file("b.journal");
    /* a flip in each part of record 2: length, length CRC, type, data, data CRC */
    const long rec2 = 16 + 5;
    const long offsets[] = {rec2 + 0, rec2 + 5, rec2 + 8, rec2 + 16 + 8 + 100, rec2 + 16 + 16 + 3000 - 1};
    for (size_t k = 0; k < TB_ARRAY_LEN(offsets); k++) {
        unlink(p);
        write_three(p);
        /* flip in the third record except for the first two offsets */
        long off = k < 2 ? offsets[k] : offsets[k];
        flip_byte(p, off);
        seen_rec s = {0};
        uint64_t valid, size;
        tb_err err;
        ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
        long expect_valid = off < rec2 + 16 ? rec2 : rec2 + 16;
        ck_assert_msg((long)valid == expect_valid, "flip at %ld: %llu valid bytes, expected %ld", off,
                      (unsigned long long)valid, expect_valid);
        ck_assert_int_eq(s.n, off < rec2 + 16 ? 1 : 2);
        tb_journal *j;
        ck_assert(tb_journal_open(p, &j, &err) == TB_EFORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, "b.journal"));
    }
    remove_tmpdir();
}
END_TEST

START_TEST(test_journal_torn_tail)
{
    make_tmpdir();
    const char *p = tmp_file("c.journal");
    write_three(p);
    long full = file_size(p);
    for (long cut = 1; cut < 3016; cut += 499) {
        ck_assert(truncate(p, full - cut) == 0);
        seen_rec s = {0};
        uint64_t valid, size, dropped;
        tb_err err;
        ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
        ck_assert_int_eq(s.n, 2);
        ck_assert_int_eq((long)valid, 16 + 5 + 16);
        ck_assert(tb_journal_truncate_to_valid(p, &dropped, &err) == TB_OK);
        ck_assert_int_eq((long)dropped, full - cut - (16 + 5 + 16));
        ck_assert_int_eq(file_size(p), 16 + 5 + 16);
        tb_journal *j;
        ck_assert_msg(tb_journal_open(p, &j, &err) == TB_OK, "%s", err.msg);
        ck_assert(tb_journal_append(j, 9, "again", 5, 1, &err) == TB_OK);
        tb_journal_close(j);
        memset(&s, 0, sizeof s);
        ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
        ck_assert_int_eq(s.n, 3);
        ck_assert_uint_eq(valid, size);
        unlink(p);
        write_three(p);
    }
    /* garbage appended after whole records */
    append_bytes(p, "\xff\xff\xff\x7f garbage", 12);
    uint64_t dropped;
    tb_err err;
    ck_assert(tb_journal_truncate_to_valid(p, &dropped, &err) == TB_OK);
    ck_assert_int_eq((long)dropped, 12);
    ck_assert_int_eq(file_size(p), full);
    remove_tmpdir();
}
END_TEST

/* Recovery's path: one tb_journal_read, tb_journal_truncate to its valid
 * prefix, tb_journal_open_valid without reading the records again. */
START_TEST(test_journal_read_once_recovery)
{
    make_tmpdir();
    const char *p = tmp_file("d.journal");
    write_three(p);
    long full = file_size(p);
    ck_assert(truncate(p, full - 7) == 0);
    seen_rec s = {0};
    uint64_t valid, size;
    tb_err err;
    ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq((long)size, full - 7);
    ck_assert_int_eq((long)valid, 16 + 5 + 16);
    tb_journal *j = NULL;
    /* a size that is not the file's is refused: the journal was not cut yet */
    ck_assert(tb_journal_open_valid(p, valid, &j, &err) == TB_EFORMAT);
    ck_assert_ptr_null(j);
    ck_assert_ptr_nonnull(strstr(err.msg, "d.journal"));
    ck_assert_msg(tb_journal_truncate(p, valid, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(file_size(p), (long)valid);
    ck_assert_msg(tb_journal_open_valid(p, valid, &j, &err) == TB_OK, "%s", err.msg);
    ck_assert_uint_eq(tb_journal_size(j), valid);
    ck_assert(tb_journal_append(j, 11, "tail", 4, 1, &err) == TB_OK);
    ck_assert_int_eq((long)tb_journal_size(j), file_size(p));
    tb_journal_close(j);
    memset(&s, 0, sizeof s);
    ck_assert(tb_journal_read(p, collect, &s, &valid, &size, &err) == TB_OK);
    ck_assert_int_eq(s.n, 3);
    ck_assert_uint_eq(s.type[2], 11);
    ck_assert_uint_eq(valid, size);
    /* cutting a missing file is an error naming it */
    ck_assert(tb_journal_truncate(tmp_file("none.journal"), 0, &err) == TB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "none.journal"));
    remove_tmpdir();
}
END_TEST

/* ---- the archive ------------------------------------------------------------------ */

static tb_archive *open_ok(const char *dir, int create, tb_archive_recovery *rec)
{
    tb_archive *a = NULL;
    tb_err err;
    tb_status st = tb_archive_open(dir, create, &a, rec, &err);
    ck_assert_msg(st == TB_OK, "open %s: %s", dir, err.msg);
    return a;
}

static void epochs(tb_archive_run *r, int from, int to)
{
    tb_err err;
    for (int e = from; e <= to; e++) {
        int64_t steps[3] = {e * 3 - 2, e * 3 - 1, e * 3};
        double losses[3] = {1.0 / e, 0.9 / e, 0.8 / e};
        ck_assert_msg(tb_archive_run_batches(r, 3, steps, losses, &err) == TB_OK, "%s", err.msg);
        ck_assert_msg(tb_archive_run_epoch(r, e, 1.0 / e, 1.5 / e, 0.1 * e, 2.5, &err) == TB_OK, "%s", err.msg);
    }
}

START_TEST(test_archive_runs_and_index)
{
    make_tmpdir();
    const char *dir = tmp_file("study");
    tb_err err;
    tb_archive *a = NULL;
    ck_assert(tb_archive_open(dir, 0, &a, NULL, &err) == TB_EFORMAT); /* not there yet */
    ck_assert_ptr_nonnull(strstr(err.msg, "study"));
    tb_archive_recovery rec;
    a = open_ok(dir, 1, &rec);
    ck_assert_int_eq(rec.runs, 0);
    tb_archive_run *r1, *r2, *r3;
    ck_assert(tb_archive_begin_run(a, NULL, "submission", "p01", "[train]\nlr = 0.01\n", &r1, &err) == TB_OK);
    ck_assert_str_eq(tb_archive_run_id(r1), "r000001");
    ck_assert(tb_archive_begin_run(a, "final-p01-s1", "final", "p01", NULL, &r2, &err) == TB_OK);
    ck_assert(tb_archive_begin_run(a, NULL, "sweep", NULL, "", &r3, &err) == TB_OK);
    ck_assert_str_eq(tb_archive_run_id(r3), "r000002");
    /* bad arguments */
    tb_archive_run *bad;
    ck_assert(tb_archive_begin_run(a, "final-p01-s1", "final", "", NULL, &bad, &err) == TB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "taken"));
    ck_assert(tb_archive_begin_run(a, "../x", "final", "", NULL, &bad, &err) == TB_EINVAL);
    ck_assert(tb_archive_begin_run(a, NULL, "bad kind", "", NULL, &bad, &err) == TB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad kind"));

    ck_assert(tb_archive_run_status(r1, TB_RUN_TRAINING, "", &err) == TB_OK);
    ck_assert(tb_archive_run_status(r2, TB_RUN_TRAINING, "", &err) == TB_OK);
    ck_assert(tb_archive_run_status(r1, TB_RUN_FINISHED, "", &err) == TB_EINVAL);
    epochs(r1, 1, 4);
    epochs(r2, 1, 2);
    ck_assert(tb_archive_run_epoch(r2, 2, 0, 0, 0, 0, &err) == TB_EINVAL); /* not after the last */
    ck_assert_ptr_nonnull(strstr(err.msg, "epoch 2"));

    /* a live run file is readable by a SWMR reader while it is written */
    {
        char path[1100];
        snprintf(path, sizeof path, "%s/runs/r000001.h5", dir);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        ck_assert(f >= 0);
        size_t n;
        double *v = read_col(f, "curves/epoch/val_accuracy", &n);
        ck_assert_int_eq((int)n, 4);
        ck_assert_double_eq_tol(v[3], 0.4, 1e-15);
        free(v);
        char s[64];
        read_attr_s(f, "status", s, sizeof s);
        ck_assert_str_eq(s, "live");
        H5Fclose(f);
    }

    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_by_id(a, "r000001", &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_TRAINING);
    ck_assert_int_eq((int)info.last_epoch, 4);
    ck_assert_int_eq((int)info.batches, 12);
    ck_assert(info.live);
    ck_assert(isfinite(info.started_s) && !isfinite(info.ended_s));

    ck_assert(tb_archive_run_finish(r1, TB_RUN_FINISHED, 0.875, "", &err) == TB_OK);
    ck_assert(tb_archive_run_finish(r2, TB_RUN_CANCELLED, NAN, "cancelled by the participant", &err) == TB_OK);
    ck_assert(tb_archive_run_finish(r3, TB_RUN_REJECTED, NAN, "train.lr = -1 is outside [0, 10]", &err) == TB_OK);
    ck_assert(tb_archive_close(a, &err) == TB_OK);

    /* reopen: everything is there, nothing to repair */
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.runs, 3);
    ck_assert_int_eq(rec.interrupted + rec.rebuilt + rec.damaged + rec.journals_cut, 0);
    ck_assert_uint_eq(tb_archive_run_count(a), 3);
    ck_assert(tb_archive_run_info_at(a, 0, &info, &err) == TB_OK);
    ck_assert_str_eq(info.id, "r000001");
    ck_assert_int_eq(info.status, TB_RUN_FINISHED);
    ck_assert_double_eq(info.test_accuracy, 0.875);
    ck_assert_double_eq_tol(info.val_accuracy, 0.4, 1e-15);
    ck_assert_int_eq((int)info.epochs, 4);
    ck_assert(info.ended_s >= info.started_s && info.started_s >= info.created_s);
    ck_assert(tb_archive_run_info_at(a, 1, &info, &err) == TB_OK);
    ck_assert_str_eq(info.id, "final-p01-s1");
    ck_assert_str_eq(info.kind, "final");
    ck_assert_int_eq(info.status, TB_RUN_CANCELLED);
    ck_assert_str_eq(info.message, "cancelled by the participant");
    ck_assert(tb_archive_run_info_at(a, 3, &info, &err) == TB_EINVAL);
    tb_archive_run *r4;
    ck_assert(tb_archive_begin_run(a, NULL, "submission", "p02", NULL, &r4, &err) == TB_OK);
    ck_assert_str_eq(tb_archive_run_id(r4), "r000003");
    ck_assert(tb_archive_run_finish(r4, TB_RUN_DIVERGED, NAN, "loss is NaN at step 3", &err) == TB_OK);
    ck_assert(tb_archive_close(a, &err) == TB_OK);

    /* index.h5 and a run file, with HDF5 alone */
    hid_t f = H5Fopen(tmp_file("study/index.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    char s[256];
    read_attr_s(f, "format", s, sizeof s);
    ck_assert_str_eq(s, TB_ARCHIVE_INDEX_FORMAT);
    const char *expect_status[] = {"finished", "cancelled", "rejected", "diverged"};
    const char *expect_id[] = {"r000001", "final-p01-s1", "r000002", "r000003"};
    for (size_t i = 0; i < 4; i++) {
        read_str_at(f, "index/status", i, s, sizeof s);
        ck_assert_str_eq(s, expect_status[i]);
        read_str_at(f, "index/id", i, s, sizeof s);
        ck_assert_str_eq(s, expect_id[i]);
    }
    read_str_at(f, "index/participant", 2, s, sizeof s);
    ck_assert_str_eq(s, "");
    read_str_at(f, "index/created", 0, s, sizeof s);
    ck_assert_msg(strlen(s) == 24 && s[10] == 'T' && s[23] == 'Z', "created = \"%s\"", s);
    size_t n;
    double *v = read_col(f, "index/test_accuracy", &n);
    ck_assert_int_eq((int)n, 4);
    ck_assert_double_eq(v[0], 0.875);
    ck_assert(isnan(v[1]));
    free(v);
    v = read_col(f, "index/last_epoch", &n);
    ck_assert_double_eq(v[0], 4);
    ck_assert_double_eq(v[1], 2);
    ck_assert_double_eq(v[2], 0);
    free(v);
    H5Fclose(f);

    f = H5Fopen(tmp_file("study/runs/r000001.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    read_attr_s(f, "status", s, sizeof s);
    ck_assert_str_eq(s, "finished");
    ck_assert_double_eq(read_attr_d(f, "test_accuracy"), 0.875);
    hid_t g = H5Gopen2(f, "config", H5P_DEFAULT);
    read_attr_s(g, "ini", s, sizeof s);
    ck_assert_str_eq(s, "[train]\nlr = 0.01\n");
    H5Gclose(g);
    v = read_col(f, "curves/epoch/epoch", &n);
    ck_assert_int_eq((int)n, 4);
    ck_assert_double_eq(v[0], 1);
    ck_assert_double_eq(v[3], 4);
    free(v);
    v = read_col(f, "curves/epoch/train_loss", &n);
    ck_assert_double_eq(v[2], 1.0 / 3);
    free(v);
    v = read_col(f, "curves/batch/loss", &n);
    ck_assert_int_eq((int)n, 12);
    ck_assert_double_eq(v[11], 0.8 / 4);
    free(v);
    v = read_col(f, "curves/batch/step", &n);
    ck_assert_double_eq(v[11], 12);
    free(v);
    H5Fclose(f);
    remove_tmpdir();
}
END_TEST

START_TEST(test_archive_lock)
{
    make_tmpdir();
    const char *dir = tmp_file("locked");
    tb_archive *a = open_ok(dir, 1, NULL);
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        tb_archive *b = NULL;
        tb_err err = {{0}};
        tb_status st = tb_archive_open(dir, 1, &b, NULL, &err);
        ssize_t w = write(fds[1], err.msg, strlen(err.msg) + 1);
        (void)w;
        _exit(st == TB_EIO && !b ? 0 : 1);
    }
    close(fds[1]);
    char msg[512] = {0};
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert(got > 0);
    char expect[1200];
    snprintf(expect, sizeof expect, "archive %s is in use by process %ld", dir, (long)getpid());
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s", msg);
    ck_assert_str_eq(msg, expect);
    /* the same process opening it twice is refused too */
    tb_archive *b = NULL;
    tb_err err;
    ck_assert(tb_archive_open(dir, 0, &b, NULL, &err) == TB_EIO);
    ck_assert_str_eq(err.msg, expect);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    b = open_ok(dir, 0, NULL); /* free again */
    ck_assert(tb_archive_close(b, &err) == TB_OK);
    remove_tmpdir();
}
END_TEST

/* A child that opens the archive, starts a run with 3 epochs and a few extra
 * batches, and dies without closing anything (as kill -9 would leave it). */
static void child_dies_mid_run(const char *dir, const char *id)
{
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        tb_archive *a = NULL;
        tb_archive_run *r = NULL;
        tb_err err;
        if (tb_archive_open(dir, 1, &a, NULL, &err) != TB_OK) _exit(2);
        if (tb_archive_begin_run(a, id, "submission", "p07", "x = 1\n", &r, &err) != TB_OK) _exit(3);
        if (tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) != TB_OK) _exit(4);
        for (int e = 1; e <= 3; e++) {
            int64_t step = e;
            double loss = 0.5 / e;
            if (tb_archive_run_batches(r, 1, &step, &loss, &err) != TB_OK) _exit(5);
            if (tb_archive_run_epoch(r, e, 1.0 / e, 2.0 / e, 0.25 * e, 1.0, &err) != TB_OK) _exit(6);
        }
        int64_t step = 4;
        double loss = 0.1;
        if (tb_archive_run_batches(r, 1, &step, &loss, &err) != TB_OK) _exit(7);
        _exit(0);
    }
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed with %d", WEXITSTATUS(status));
}

START_TEST(test_archive_recovery)
{
    make_tmpdir();
    const char *dir = tmp_file("crashed");
    child_dies_mid_run(dir, "live1");
    /* the live file is flagged: a plain open fails, a SWMR reader sees every epoch */
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(tmp_file("crashed/runs/live1.h5"), H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    ck_assert(f < 0);
    f = H5Fopen(tmp_file("crashed/runs/live1.h5"), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    ck_assert(f >= 0);
    size_t n;
    double *v = read_col(f, "curves/epoch/epoch", &n);
    ck_assert_int_eq((int)n, 3);
    free(v);
    H5Fclose(f);
    /* and a torn half record at the end of its journal */
    append_bytes(tmp_file("crashed/runs/live1.journal"), "\x30\x00\x00\x00\x01\x02", 6);

    tb_archive_recovery rec;
    tb_archive *a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.runs, 1);
    ck_assert_int_eq(rec.interrupted, 1);
    ck_assert_int_eq(rec.rebuilt, 1);
    ck_assert_int_eq(rec.damaged, 0);
    ck_assert_int_eq(rec.journals_cut, 1);
    ck_assert_int_eq((int)rec.bytes_dropped, 6);
    tb_archive_run_info info;
    tb_err err;
    ck_assert(tb_archive_run_info_by_id(a, "live1", &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_INTERRUPTED);
    ck_assert_int_eq((int)info.epochs, 3);
    ck_assert_int_eq((int)info.batches, 4);
    ck_assert(isfinite(info.ended_s) && info.ended_s >= info.started_s);
    ck_assert_ptr_nonnull(strstr(info.message, "interrupted"));
    ck_assert(tb_archive_close(a, &err) == TB_OK);

    /* the rebuilt file opens without SWMR and has the data */
    f = H5Fopen(tmp_file("crashed/runs/live1.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    char s[64];
    read_attr_s(f, "status", s, sizeof s);
    ck_assert_str_eq(s, "interrupted");
    v = read_col(f, "curves/epoch/val_accuracy", &n);
    ck_assert_int_eq((int)n, 3);
    ck_assert_double_eq(v[2], 0.75);
    free(v);
    v = read_col(f, "curves/batch/loss", &n);
    ck_assert_int_eq((int)n, 4);
    ck_assert_double_eq(v[3], 0.1);
    free(v);
    H5Fclose(f);

    /* a second reopen finds nothing to do; a damaged run file is set aside and rebuilt */
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.interrupted + rec.rebuilt + rec.journals_cut, 0);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    int fd = open(tmp_file("crashed/runs/live1.h5"), O_WRONLY | O_TRUNC);
    ck_assert(fd >= 0);
    ck_assert(write(fd, "not hdf5", 8) == 8);
    close(fd);
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.rebuilt, 1);
    ck_assert_int_eq(rec.damaged, 1);
    ck_assert_int_eq(file_size(tmp_file("crashed/runs/live1.h5.damaged-1")), 8);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    f = H5Fopen(tmp_file("crashed/runs/live1.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    v = read_col(f, "curves/epoch/train_loss", &n);
    ck_assert_int_eq((int)n, 3);
    ck_assert_double_eq(v[1], 0.5);
    free(v);
    H5Fclose(f);

    /* a journal torn inside its first record: the run never began */
    append_bytes(tmp_file("crashed/runs/r000009.journal"), "\x10\x00", 2);
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.empty_journals, 1);
    ck_assert_int_eq(rec.runs, 1);
    ck_assert(access(tmp_file("crashed/runs/r000009.journal"), F_OK) != 0);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    remove_tmpdir();
}
END_TEST

START_TEST(test_archive_close_interrupts_live_runs)
{
    make_tmpdir();
    const char *dir = tmp_file("closing");
    tb_archive *a = open_ok(dir, 1, NULL);
    tb_archive_run *r;
    tb_err err;
    ck_assert(tb_archive_begin_run(a, NULL, "submission", "p1", NULL, &r, &err) == TB_OK);
    ck_assert(tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) == TB_OK);
    epochs(r, 1, 2);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    tb_archive_recovery rec;
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.interrupted + rec.rebuilt, 0);
    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_at(a, 0, &info, &err) == TB_OK);
    ck_assert_int_eq(info.status, TB_RUN_INTERRUPTED);
    ck_assert_int_eq((int)info.epochs, 2);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    remove_tmpdir();
}
END_TEST

/* Column value i of index.h5, read live (a new file after every rewrite). */
static double index_value(const char *dir, const char *col, size_t i, double *updated_s)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/index.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    size_t n;
    double *v = read_col(f, col, &n);
    ck_assert_msg(i < n, "%s has %zu rows", col, n);
    double x = v[i];
    free(v);
    if (updated_s) *updated_s = read_attr_d(f, "updated_s");
    H5Fclose(f);
    return x;
}

static void index_str(const char *dir, const char *col, size_t i, char *out, size_t cap)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/index.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    read_str_at(f, col, i, out, cap);
    H5Fclose(f);
}

/* When the index is rewritten: on state changes with the epoch columns of the
 * moment, not after each epoch but within a few seconds of one (the next epoch
 * or batches once it is 5 s old), once on close for all live runs. */
START_TEST(test_archive_index_refresh)
{
    make_tmpdir();
    const char *dir = tmp_file("refresh");
    tb_archive *a = open_ok(dir, 1, NULL);
    tb_archive_run *r, *q, *bad;
    tb_err err;
    char s[256];
    ck_assert(tb_archive_begin_run(a, NULL, "submission", "p1", NULL, &r, &err) == TB_OK);
    index_str(dir, "index/status", 0, s, sizeof s); /* begin writes it */
    ck_assert_str_eq(s, "queued");
    ck_assert(tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) == TB_OK);
    epochs(r, 1, 2);
    double u0, u1;
    ck_assert(tb_archive_run_status(r, TB_RUN_TRAINING, "epoch 2 done", &err) == TB_OK);
    const double t0 = tb_now(); /* the index was written before this */
    ck_assert_double_eq(index_value(dir, "index/last_epoch", 0, &u0), 2);
    ck_assert_double_eq(index_value(dir, "index/epochs", 0, NULL), 2);
    ck_assert_double_eq(index_value(dir, "index/batches", 0, NULL), 6);
    ck_assert_double_eq_tol(index_value(dir, "index/val_accuracy", 0, NULL), 0.2, 1e-15);
    index_str(dir, "index/status", 0, s, sizeof s);
    ck_assert_str_eq(s, "training");
    index_str(dir, "index/message", 0, s, sizeof s);
    ck_assert_str_eq(s, "epoch 2 done");
    epochs(r, 3, 3);
    if (tb_now() - t0 < 4.0) { /* an epoch right after a rewrite only marks the index dirty */
        ck_assert_double_eq(index_value(dir, "index/last_epoch", 0, &u1), 2);
        ck_assert_double_eq(u1, u0);
    }
    /* once the index is 5 s old, batches (or an epoch) bring it up to date */
    while (tb_now() - t0 < 5.2) nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    int64_t step = 10;
    double loss = 0.5;
    ck_assert(tb_archive_run_batches(r, 1, &step, &loss, &err) == TB_OK);
    ck_assert_double_eq(index_value(dir, "index/last_epoch", 0, &u1), 3);
    ck_assert(u1 > u0);
    ck_assert_double_eq(index_value(dir, "index/batches", 0, NULL), 10);
    ck_assert_double_eq_tol(index_value(dir, "index/val_accuracy", 0, NULL), 0.3, 1e-15);
    epochs(r, 4, 4);
    ck_assert(tb_archive_run_finish(r, TB_RUN_FINISHED, 0.75, "", &err) == TB_OK);
    ck_assert_double_eq(index_value(dir, "index/last_epoch", 0, NULL), 4);
    ck_assert_double_eq(index_value(dir, "index/test_accuracy", 0, NULL), 0.75);
    index_str(dir, "index/status", 0, s, sizeof s);
    ck_assert_str_eq(s, "finished");

    /* a non-final status given to finish: TB_EINVAL, and the run still ends */
    ck_assert(tb_archive_begin_run(a, NULL, "sweep", "", NULL, &bad, &err) == TB_OK);
    ck_assert(tb_archive_run_finish(bad, TB_RUN_TRAINING, 0.5, "done?", &err) == TB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a final status"));
    index_str(dir, "index/status", 1, s, sizeof s);
    ck_assert_str_eq(s, "interrupted");
    index_str(dir, "index/message", 1, s, sizeof s);
    ck_assert_str_eq(s, "finished with a non-final status");
    ck_assert(isnan(index_value(dir, "index/test_accuracy", 1, NULL)));

    /* close ends the live runs and writes the index with all of them */
    ck_assert(tb_archive_begin_run(a, NULL, "sweep", "", NULL, &r, &err) == TB_OK);
    ck_assert(tb_archive_begin_run(a, NULL, "sweep", "", NULL, &q, &err) == TB_OK);
    ck_assert(tb_archive_run_status(r, TB_RUN_TRAINING, "", &err) == TB_OK);
    ck_assert(tb_archive_run_status(q, TB_RUN_TRAINING, "", &err) == TB_OK);
    epochs(r, 1, 3);
    epochs(q, 1, 1);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    for (size_t i = 2; i < 4; i++) {
        index_str(dir, "index/status", i, s, sizeof s);
        ck_assert_str_eq(s, "interrupted");
        index_str(dir, "index/message", i, s, sizeof s);
        ck_assert_ptr_nonnull(strstr(s, "archive was closed"));
    }
    ck_assert_double_eq(index_value(dir, "index/last_epoch", 2, NULL), 3);
    ck_assert_double_eq(index_value(dir, "index/last_epoch", 3, NULL), 1);
    tb_archive_recovery rec;
    a = open_ok(dir, 0, &rec);
    ck_assert_int_eq(rec.runs, 4);
    ck_assert_int_eq(rec.interrupted + rec.rebuilt + rec.journals_cut, 0);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    remove_tmpdir();
}
END_TEST

/* A small run file as executors write it (docs/run-files.md), enough for the
 * export: root attributes, /test with its confusion matrix, the weights, and
 * the run file's own curves (more columns than the archive's). */
static void write_fake_run_file(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t one = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format_version", H5T_STD_I64LE, one, H5P_DEFAULT, H5P_DEFAULT);
    long long ver = 1;
    ck_assert(H5Awrite(a, H5T_NATIVE_LLONG, &ver) >= 0);
    H5Aclose(a);
    hid_t g = H5Gcreate2(f, "test", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    a = H5Acreate2(g, "accuracy", H5T_IEEE_F64LE, one, H5P_DEFAULT, H5P_DEFAULT);
    double acc = 0.75;
    ck_assert(H5Awrite(a, H5T_NATIVE_DOUBLE, &acc) >= 0);
    H5Aclose(a);
    hsize_t dims[2] = {2, 2};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    long long confusion[4] = {3, 1, 0, 4};
    hid_t d = H5Dcreate2(g, "confusion", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, confusion) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Gclose(g);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    dims[0] = 2, dims[1] = 3;
    sp = H5Screate_simple(2, dims, NULL);
    float w[6] = {1, 2, 3, 4, 5, 6};
    d = H5Dcreate2(f, "checkpoint/params/fc.weight", H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    static const char *const batch_cols[] = {"epoch", "batch", "step", "loss", "elapsed_s"};
    double col[3] = {1, 2, 3};
    dims[0] = 3;
    sp = H5Screate_simple(1, dims, NULL);
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "curves/batch/%s", batch_cols[i]);
        d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col) >= 0);
        H5Dclose(d);
    }
    d = H5Dcreate2(f, "curves/epoch/images_per_s", H5T_IEEE_F64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Sclose(one);
    ck_assert(H5Fclose(f) >= 0);
}

/* the names of a group's members, ", "-separated, in name order */
static void member_names(hid_t f, const char *group, char *out, size_t cap)
{
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "group %s is missing", group);
    H5G_info_t info;
    ck_assert(H5Gget_info(g, &info) >= 0);
    out[0] = '\0';
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[64];
        ck_assert(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) > 0);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? ", " : "", name);
    }
    H5Gclose(g);
}

START_TEST(test_archive_export)
{
    make_tmpdir();
    const char *dir = tmp_file("exp");
    tb_archive *a = open_ok(dir, 1, NULL);
    tb_archive_run *r1, *r2;
    tb_err err;
    ck_assert(tb_archive_begin_run(a, NULL, "submission", "p1", "lr = 0.1\n", &r1, &err) == TB_OK);
    ck_assert(tb_archive_begin_run(a, NULL, "sweep", "", NULL, &r2, &err) == TB_OK);
    ck_assert(tb_archive_run_status(r1, TB_RUN_TRAINING, "", &err) == TB_OK);
    epochs(r1, 1, 3);
    ck_assert(tb_archive_run_finish(r1, TB_RUN_FINISHED, 0.5, "", &err) == TB_OK);
    ck_assert(tb_archive_run_status(r2, TB_RUN_TRAINING, "", &err) == TB_OK);
    epochs(r2, 1, 2);
    /* r1 has a run file from an executor, r2 (live) none yet */
    write_fake_run_file(tmp_file("exp/runs/r000001.run.h5"));
    /* r2 is live: the export copies what its SWMR file shows */
    const char *out = tmp_file("export.h5");
    ck_assert_msg(tb_archive_export(dir, out, &err) == TB_OK, "%s", err.msg);
    ck_assert(tb_archive_close(a, &err) == TB_OK);

    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    char s[128];
    read_attr_s(f, "format", s, sizeof s);
    ck_assert_str_eq(s, TB_ARCHIVE_EXPORT_FORMAT);
    read_str_at(f, "index/id", 1, s, sizeof s);
    ck_assert_str_eq(s, "r000002");
    read_str_at(f, "index/status", 0, s, sizeof s);
    ck_assert_str_eq(s, "finished");
    size_t n;
    double *v = read_col(f, "runs/r000001/curves/epoch/val_accuracy", &n);
    ck_assert_int_eq((int)n, 3);
    ck_assert_double_eq_tol(v[2], 0.3, 1e-15);
    free(v);
    v = read_col(f, "runs/r000002/curves/batch/step", &n);
    ck_assert_int_eq((int)n, 6);
    free(v);
    hid_t g = H5Gopen2(f, "runs/r000001", H5P_DEFAULT);
    ck_assert(g >= 0);
    read_attr_s(g, "status", s, sizeof s);
    ck_assert_str_eq(s, "finished");
    read_attr_s(g, "participant", s, sizeof s);
    ck_assert_str_eq(s, "p1");
    H5Gclose(g);
    g = H5Gopen2(f, "runs/r000001/config", H5P_DEFAULT);
    read_attr_s(g, "ini", s, sizeof s);
    ck_assert_str_eq(s, "lr = 0.1\n");
    H5Gclose(g);

    /* r1's run file is under /runs/r000001/run, its curves beside the
     * archive's under their own names: one schema per group name */
    g = H5Gopen2(f, "runs/r000001", H5P_DEFAULT);
    read_attr_s(g, "run_file", s, sizeof s);
    ck_assert_str_eq(s, "runs/r000001.run.h5");
    H5Gclose(g);
    g = H5Gopen2(f, "runs/r000001/run/test", H5P_DEFAULT);
    ck_assert(g >= 0);
    ck_assert_double_eq(read_attr_d(g, "accuracy"), 0.75);
    H5Gclose(g);
    g = H5Gopen2(f, "runs/r000001/run", H5P_DEFAULT);
    ck_assert_double_eq(read_attr_d(g, "format_version"), 1);
    H5Gclose(g);
    hid_t d = H5Dopen2(f, "runs/r000001/run/test/confusion", H5P_DEFAULT);
    ck_assert(d >= 0);
    long long confusion[4];
    ck_assert(H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, confusion) >= 0);
    ck_assert(confusion[0] == 3 && confusion[1] == 1 && confusion[2] == 0 && confusion[3] == 4);
    H5Dclose(d);
    d = H5Dopen2(f, "runs/r000001/run/checkpoint/params/fc.weight", H5P_DEFAULT);
    ck_assert(d >= 0);
    float w[6];
    ck_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    ck_assert(w[0] == 1 && w[5] == 6);
    H5Dclose(d);
    char names[256];
    member_names(f, "runs/r000001/curves", names, sizeof names);
    ck_assert_str_eq(names, "batch, batch_detail, epoch, epoch_detail");
    member_names(f, "runs/r000001/curves/batch", names, sizeof names);
    ck_assert_str_eq(names, "loss, step");
    member_names(f, "runs/r000001/curves/batch_detail", names, sizeof names);
    ck_assert_str_eq(names, "batch, elapsed_s, epoch, loss, step");
    member_names(f, "runs/r000001/run", names, sizeof names);
    ck_assert_str_eq(names, "checkpoint, test");
    v = read_col(f, "runs/r000001/curves/batch_detail/elapsed_s", &n);
    ck_assert_int_eq((int)n, 3);
    free(v);
    /* r2 has none: noted on the run and at the root */
    member_names(f, "runs/r000002", names, sizeof names);
    ck_assert_str_eq(names, "config, curves");
    g = H5Gopen2(f, "runs/r000002", H5P_DEFAULT);
    read_attr_s(g, "run_file", s, sizeof s);
    ck_assert_str_eq(s, "");
    H5Gclose(g);
    read_attr_s(f, "runs_without_run_file", s, sizeof s);
    ck_assert_str_eq(s, "r000002");
    H5Fclose(f);

    /* errors name the file */
    ck_assert(tb_archive_export(tmp_file("nope"), tmp_file("x.h5"), &err) == TB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope/index.h5"));
    remove_tmpdir();
}
END_TEST

/* Times as recovery prints them: a damaged journal's huge time is "" as NaN
 * is, not an undefined conversion to time_t (found by tests/fuzz/fuzz_run_journal;
 * UBSan in the --sanitize build catches the old code). */
START_TEST(test_iso_utc_out_of_range)
{
    char t[32];
    tb_iso_utc(0.25, t);
    ck_assert_str_eq(t, "1970-01-01T00:00:00.250Z");
    tb_iso_utc(2.78146e180, t);
    ck_assert_str_eq(t, "");
    tb_iso_utc(-1e300, t);
    ck_assert_str_eq(t, "");
    tb_iso_utc(NAN, t);
    ck_assert_str_eq(t, "");
}
END_TEST

static Suite *archive_suite(void)
{
    Suite *s = suite_create("archive");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_journal_round_trip);
    tcase_add_test(tc, test_journal_crc_detects_flips);
    tcase_add_test(tc, test_journal_torn_tail);
    tcase_add_test(tc, test_journal_read_once_recovery);
    tcase_add_test(tc, test_archive_runs_and_index);
    tcase_add_test(tc, test_archive_lock);
    tcase_add_test(tc, test_archive_recovery);
    tcase_add_test(tc, test_archive_close_interrupts_live_runs);
    tcase_add_test(tc, test_archive_index_refresh);
    tcase_add_test(tc, test_archive_export);
    tcase_add_test(tc, test_iso_utc_out_of_range);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(archive_suite()); }
