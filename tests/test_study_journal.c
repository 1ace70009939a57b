/* test_study_journal.c: a damaged study journal and runs the journal does
 * not know (docs/study.md, "A damaged journal" and "Runs the study has no
 * record of"). A byte flipped in the middle of a real study's journal makes
 * the open refuse, naming the offset and the records after it, with the
 * journal untouched; accepting the loss keeps the cut bytes in
 * study.journal.damaged-N (never overwritten) and records it in study.h5; a
 * torn tail is cut and reported without asking; an empty final_seeds is
 * refused; and after a crash between a run's registration in the archive and
 * the study's submit record, index.h5 and study.h5 agree. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/journal.h"
#include "study/study.h"
#include "tb_test.h"

static char tmpdir[512];
static char task_path[1024];

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "study_journal");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 480, 120, 120, 4, 12, 7);
}

static void teardown(void)
{
    tbt_rm_rf(tmpdir);
}

static tb_config *study_config(const char *archive)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\ntitle = journal study\narchive = %s/%s\nfinal_seeds = 11\nslots = 1\nmax_active = 4\n"
             "[space]\nepochs = int 1 10\nbatch_size = int 1 100000 log\nlr = float 1e-6 1000 log\n",
             tmpdir, archive);
    const char *text = tbt_toy_config(task_path, extra);
    tb_config *cfg = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_config_load_text(&cfg, text, "study.ini", &err) == TB_OK, "%s", err.msg);
    return cfg;
}

static char *path_in(const char *archive, const char *name)
{
    static char out[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(out[k], sizeof out[k], "%s/%s/%s", tmpdir, archive, name);
    return out[k];
}

static void spit(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f);
    ck_assert(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The offset of the record holding byte pos, and how many records start after it. */
static size_t record_start(const unsigned char *b, size_t n, size_t pos, int *after)
{
    size_t off = 0, start = 0;
    *after = 0;
    while (off + 8 <= n) {
        uint32_t len = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                       (uint32_t)b[off + 3] << 24;
        size_t next = off + 8 + len + 4;
        if (off <= pos && pos < next) start = off;
        else if (off > pos) ++*after;
        off = next;
    }
    return start;
}

/* Every string of a 1-D dataset joined by '\n' (malloc'd). */
static char *h5_join(const char *file, const char *path, int *count)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    char **v = calloc((size_t)n + 1, sizeof *v);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    if (n > 0) ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    size_t total = 1;
    for (hssize_t i = 0; i < n; i++) total += strlen(v[i] ? v[i] : "") + 1;
    char *out = calloc(total, 1);
    for (hssize_t i = 0; i < n; i++) {
        strcat(out, v[i] ? v[i] : "");
        strcat(out, "\n");
    }
    if (n > 0) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    if (count) *count = (int)n;
    return out;
}

/* Row i of a joined column. */
static void row_of(const char *joined, int i, char *out, size_t cap)
{
    const char *p = joined;
    for (int k = 0; k < i; k++) p = strchr(p, '\n') + 1;
    size_t len = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)len, p);
}

static int has_line(const char *joined, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = joined; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, line, n) == 0 && p[n] == '\n') return 1;
    return 0;
}

static tb_status open_with(tb_config *cfg, int accept, tb_study **s, tb_study_recovery *rec, tb_err *err)
{
    tb_study_options opt = {.accept_journal_loss = accept};
    *s = NULL;
    return tb_study_open_opts(cfg, NULL, &opt, s, rec, err);
}

static void close_study(tb_study *s)
{
    tb_err err = {{0}};
    ck_assert_msg(tb_study_close(s, 0, &err) == TB_OK, "%s", err.msg);
}

/* Registers and admits a participant; runs n one-epoch submissions to their end. */
static void participant_runs(tb_study *s, const char *who, int n)
{
    const tb_study_api *api = tb_study_api_get(s);
    tb_fe_participant p = {.id = who, .education = "master", .dl_months = 5, .programming_months = NAN,
                           .ml_months = NAN};
    char id[64], err[512] = "", run[32];
    int admitted = 0, bad = -1;
    ck_assert_msg(api->register_participant(api->study, &p, id, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->consent(api->study, id, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->enter(api->study, id, &admitted, err, sizeof err) == TB_OK && admitted, "%s", err);
    for (int k = 0; k < n; k++) {
        const char *v[TB_STUDY_HP_COUNT] = {0}, *c[TB_STUDY_HP_COUNT] = {0};
        v[tb_hp_index("epochs")] = "1";
        v[tb_hp_index("batch_size")] = k % 2 ? "32" : "64";
        v[tb_hp_index("loss")] = "cross_entropy";
        v[tb_hp_index("optimizer")] = "adam";
        v[tb_hp_index("lr")] = "0.01";
        ck_assert_msg(api->submit(api->study, id, v, c, run, &bad, err, sizeof err) == TB_OK, "%s", err);
        tb_fe_run r;
        do {
            ck_assert(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK);
            if (!strcmp(r.status, "queued") || !strcmp(r.status, "training")) api->wait(api->study, run, r.seq, 200);
        } while (!strcmp(r.status, "queued") || !strcmp(r.status, "training"));
        ck_assert_str_eq(r.status, "finished");
    }
}

/* ---- tests ------------------------------------------------------------------------------------ */

START_TEST(a_flipped_byte_in_the_middle_is_refused_then_accepted)
{
    tb_config *cfg = study_config("flip");
    tb_study *s;
    tb_study_recovery rec;
    tb_err err = {{0}};
    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    participant_runs(s, "ann", 2);
    participant_runs(s, "bob", 1);
    close_study(s);

    const char *jpath = path_in("flip", "study.journal"), *tables = path_in("flip", "study.h5");
    size_t n, tn;
    unsigned char *j = (unsigned char *)tbt_slurp(jpath, &n);
    int after = 0;
    size_t start = record_start(j, n, n / 3, &after);
    ck_assert_int_gt(after, 3);
    j[n / 3] ^= 0x20;
    spit(jpath, j, n);
    unsigned char *t0 = (unsigned char *)tbt_slurp(tables, &tn);

    /* refused: the offset and the records after it named, nothing changed */
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(open_with(cfg, 0, &s, &rec, &err), TB_EFORMAT);
    ck_assert(s == NULL);
    char want[128];
    snprintf(want, sizeof want, "damaged at byte %zu of %zu", start, n);
    TBT_ASSERT_HAS(err.msg, want);
    snprintf(want, sizeof want, "%d intact records", after);
    TBT_ASSERT_HAS(err.msg, want);
    TBT_ASSERT_HAS(err.msg, "not changed");
    ck_assert_int_eq(rec.journal_refused, 1);
    ck_assert_uint_eq(rec.journal_damage_at, start);
    size_t n2, tn2;
    unsigned char *j2 = (unsigned char *)tbt_slurp(jpath, &n2), *t1 = (unsigned char *)tbt_slurp(tables, &tn2);
    ck_assert_msg(n2 == n && memcmp(j, j2, n) == 0, "the journal changed (%zu -> %zu bytes)", n, n2);
    ck_assert_msg(tn2 == tn && memcmp(t0, t1, tn) == 0, "study.h5 was rewritten");
    ck_assert(!exists(path_in("flip", "study.journal.damaged-1")));
    free(j2), free(t1), free(t0);

    /* accepted: the tail kept aside, the loss in study.h5 */
    memset(&err, 0, sizeof err);
    ck_assert_msg(open_with(cfg, 1, &s, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.journal_damaged, 1);
    ck_assert_int_eq(rec.journal_refused, 0);
    ck_assert_uint_eq(rec.journal_damage_at, start);
    ck_assert_uint_eq(rec.journal_bytes_cut, n - start);
    ck_assert_uint_eq(rec.journal_records_lost, (uint64_t)after);
    TBT_ASSERT_HAS(rec.journal_kept, "study.journal.damaged-1");
    close_study(s);
    size_t kn;
    unsigned char *kept = (unsigned char *)tbt_slurp(path_in("flip", "study.journal.damaged-1"), &kn);
    ck_assert_msg(kn == n - start && memcmp(kept, j + start, kn) == 0, "damaged-1 is not the cut tail");
    j2 = (unsigned char *)tbt_slurp(jpath, &n2);
    ck_assert(n2 > start && memcmp(j2, j, start) == 0);
    free(j2);
    int rows;
    char *types = h5_join(tables, "/events/type", &rows), *details = h5_join(tables, "/events/detail", NULL);
    ck_assert(has_line(types, "journal_loss"));
    snprintf(want, sizeof want, "cut at byte %zu: %zu bytes, %d intact records", start, n - start, after);
    TBT_ASSERT_HAS(details, want);
    TBT_ASSERT_HAS(details, "study.journal.damaged-1");
    free(types), free(details);

    /* a second damage is kept in damaged-2; damaged-1 stays as it was */
    j2 = (unsigned char *)tbt_slurp(jpath, &n2);
    record_start(j2, n2, start + 1, &after);
    ck_assert_int_gt(after, 0);
    j2[start + 1] ^= 0x01;
    spit(jpath, j2, n2);
    ck_assert_int_eq(open_with(cfg, 0, &s, &rec, &err), TB_EFORMAT);
    ck_assert_msg(open_with(cfg, 1, &s, &rec, &err) == TB_OK, "%s", err.msg);
    TBT_ASSERT_HAS(rec.journal_kept, "study.journal.damaged-2");
    close_study(s);
    unsigned char *kept1 = (unsigned char *)tbt_slurp(path_in("flip", "study.journal.damaged-1"), &tn);
    ck_assert(tn == kn && memcmp(kept1, kept, kn) == 0);
    ck_assert(exists(path_in("flip", "study.journal.damaged-2")));
    free(kept1), free(kept), free(j2), free(j);
    tb_config_free(cfg);
}
END_TEST

/* What a crash in the middle of an append leaves: nothing intact after the
 * damage. Cut and reported, no option needed, as before. */
START_TEST(a_torn_tail_is_cut_and_reported)
{
    tb_config *cfg = study_config("torn");
    tb_study *s;
    tb_study_recovery rec;
    tb_err err = {{0}};
    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    participant_runs(s, "cy", 1);
    close_study(s);
    const char *jpath = path_in("torn", "study.journal");
    size_t n;
    unsigned char *j = (unsigned char *)tbt_slurp(jpath, &n);
    int after;
    size_t last = record_start(j, n, n - 1, &after);
    ck_assert(truncate(jpath, (off_t)(n - 3)) == 0);
    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.participants, 1);
    ck_assert_int_eq(rec.journal_damaged, 1);
    ck_assert_uint_eq(rec.journal_records_lost, 0);
    ck_assert_uint_eq(rec.journal_damage_at, last);
    ck_assert_uint_eq(rec.journal_bytes_cut, n - 3 - last);
    close_study(s);
    char *types = h5_join(path_in("torn", "study.h5"), "/events/type", NULL);
    ck_assert(has_line(types, "journal_loss"));
    free(types);
    free(j);
    tb_config_free(cfg);
}
END_TEST

START_TEST(empty_final_seeds_are_refused)
{
    tb_config *cfg = study_config("seeds");
    tb_err err = {{0}};
    ck_assert(tb_config_set(cfg, "study.final_seeds", "", &err) == TB_OK);
    tb_study *s = NULL;
    ck_assert_int_eq(tb_study_open(cfg, NULL, &s, NULL, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "study.final_seeds");
    TBT_ASSERT_HAS(err.msg, "empty");
    ck_assert(!exists(path_in("seeds", "")));
    tb_config_free(cfg);
}
END_TEST

/* Every submission or final run index.h5 lists is in study.h5's table for
 * it, or in its events as a run the study has no record of. */
static void assert_agree(const char *archive)
{
    int n, ns, nf, ne;
    char *ids = h5_join(path_in(archive, "index.h5"), "/index/id", &n);
    char *kinds = h5_join(path_in(archive, "index.h5"), "/index/kind", NULL);
    char *subs = h5_join(path_in(archive, "study.h5"), "/submissions/run_id", &ns);
    char *fins = h5_join(path_in(archive, "study.h5"), "/finals/run_id", &nf);
    char *types = h5_join(path_in(archive, "study.h5"), "/events/type", &ne);
    char *evruns = h5_join(path_in(archive, "study.h5"), "/events/run_id", NULL);
    ck_assert_msg(n > 0, "index.h5 of %s lists no run: nothing to compare", archive);
    for (int i = 0; i < n; i++) {
        char id[64], kind[64];
        row_of(ids, i, id, sizeof id);
        row_of(kinds, i, kind, sizeof kind);
        int listed = has_line(!strcmp(kind, "final") ? fins : subs, id);
        for (int e = 0; e < ne && !listed; e++) {
            char t[64], r[64];
            row_of(types, e, t, sizeof t);
            row_of(evruns, e, r, sizeof r);
            listed = !strcmp(t, "unrecorded_run") && !strcmp(r, id);
        }
        ck_assert_msg(listed, "index.h5 lists %s run %s; study.h5 does not", kind, id);
    }
    free(ids), free(kinds), free(subs), free(fins), free(types), free(evruns);
}

/* The crash of issue 11, item 8: the study process dies after the run's
 * registration in the archive (tb_job_record -> tb_archive_begin_run, durable)
 * and before the study's submit record. Simulated by a child that opens the
 * archive, begins a submission of "a" and dies. */
START_TEST(index_and_study_agree_after_a_crash_before_the_submit_record)
{
    tb_config *cfg = study_config("orphan");
    tb_study *s;
    tb_study_recovery rec;
    tb_err err = {{0}};
    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    participant_runs(s, "a", 1);
    close_study(s);

    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) {
        close(fds[0]);
        tb_archive *a = NULL;
        tb_archive_run *r = NULL;
        tb_err e;
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/orphan", tmpdir);
        if (tb_archive_open(dir, 0, &a, NULL, &e) != TB_OK) _exit(2);
        if (tb_archive_begin_run(a, NULL, "submission", "a", "[train]\nepochs = 1\n", &r, &e) != TB_OK) _exit(3);
        char id[32] = "";
        snprintf(id, sizeof id, "%s", tb_archive_run_id(r));
        if (write(fds[1], id, sizeof id) != (ssize_t)sizeof id) _exit(4);
        _exit(0); /* dies here: no submit record, nothing closed */
    }
    close(fds[1]);
    char orphan[32] = "";
    ck_assert(read(fds[0], orphan, sizeof orphan) == (ssize_t)sizeof orphan);
    close(fds[0]);
    int status = 0;
    ck_assert(waitpid(child, &status, 0) == child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (%d)", status);

    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.unrecorded_runs, 1);
    ck_assert_int_eq(rec.journal_damaged, 0);
    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_by_id(tb_study_archive(s), orphan, &info, &err) == TB_OK);
    ck_assert_str_eq(tb_run_status_name(info.status), "interrupted");
    TBT_ASSERT_HAS(info.message, "not recorded by the study");
    /* not adopted: the participant never heard "submitted" */
    const tb_study_api *api = tb_study_api_get(s);
    ck_assert_int_eq(api->history_count(api->study, "a"), 1);
    close_study(s);
    assert_agree("orphan");

    /* noted once: a second open finds nothing new */
    ck_assert_msg(open_with(cfg, 0, &s, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.unrecorded_runs, 0);
    close_study(s);
    int ne;
    char *types = h5_join(path_in("orphan", "study.h5"), "/events/type", &ne);
    int k = 0;
    for (const char *p = types; (p = strstr(p, "unrecorded_run\n")); p++) k++;
    ck_assert_int_eq(k, 1);
    free(types);
    char *msgs = h5_join(path_in("orphan", "index.h5"), "/index/message", NULL);
    TBT_ASSERT_HAS(msgs, "not recorded by the study");
    free(msgs);
    assert_agree("orphan");
    tb_config_free(cfg);
}
END_TEST

/* `tunebench study`: the refusal on stderr with the way out, exit 1; then
 * --accept-journal-loss opens it and says what was cut. */
START_TEST(the_executable_refuses_and_accepts)
{
    char cfg_path[1100], script[1100], args[4000], out[8192];
    snprintf(cfg_path, sizeof cfg_path, "%s/study.ini", tmpdir);
    snprintf(script, sizeof script, "%s/session.txt", tmpdir);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\narchive = %s/cli\nfinal_seeds = 5\n[space]\nepochs = int 1 3\nlr = float 1e-6 1000 log\n"
             "[cli]\noutput = %s/session.log\n",
             tmpdir, tmpdir);
    FILE *f = fopen(cfg_path, "w");
    ck_assert(f);
    fputs(tbt_toy_config(task_path, extra), f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert(f);
    fputs("register id=ann education=bachelor dl_months=0\nconsent\n"
          "register id=bob education=master dl_months=3\nconsent\n"
          "register id=cat education=master dl_months=4\nconsent\n",
          f);
    fclose(f);
    snprintf(args, sizeof args, "study '%s' --script '%s'", cfg_path, script);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", out, sizeof out), 0);

    const char *jpath = path_in("cli", "study.journal");
    size_t n;
    unsigned char *j = (unsigned char *)tbt_slurp(jpath, &n);
    int after;
    size_t start = record_start(j, n, n / 3 + 1, &after);
    j[n / 3 + 1] ^= 0x10;
    spit(jpath, j, n);
    f = fopen(script, "w");
    ck_assert(f);
    fclose(f); /* an empty session: open and close */
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", out, sizeof out), 1);
    char want[96];
    snprintf(want, sizeof want, "damaged at byte %zu", start);
    TBT_ASSERT_HAS(out, want);
    TBT_ASSERT_HAS(out, "--accept-journal-loss");
    size_t n2;
    unsigned char *j2 = (unsigned char *)tbt_slurp(jpath, &n2);
    ck_assert(n2 == n && memcmp(j, j2, n) == 0);
    free(j2);

    snprintf(args, sizeof args, "study '%s' --script '%s' --accept-journal-loss", cfg_path, script);
    ck_assert_msg(tbt_tunebench(args, "2>&1", out, sizeof out) == 0, "%s", out);
    TBT_ASSERT_HAS(out, want);
    TBT_ASSERT_HAS(out, "study.journal.damaged-1");
    free(j);
}
END_TEST

/* The scan itself: re-synchronising past damage, and the torn case. */
START_TEST(the_scan_finds_intact_records_after_the_damage)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/x.journal", tmpdir);
    tb_journal *jn;
    tb_err err;
    ck_assert(tb_journal_open(path, &jn, &err) == TB_OK);
    for (int i = 0; i < 10; i++) ck_assert(tb_journal_append(jn, 7, "abcdefgh", 8, 0, &err) == TB_OK);
    tb_journal_close(jn);
    size_t n;
    unsigned char *b = (unsigned char *)tbt_slurp(path, &n);
    ck_assert_uint_eq(n, 10 * 24);
    tb_journal_damage d;
    ck_assert(tb_journal_scan(path, &d, &err) == TB_OK);
    ck_assert(d.valid_bytes == n && d.records_valid == 10 && d.records_after == 0);
    b[24 * 3 + 1] ^= 1;  /* record 3's length */
    b[24 * 6 + 14] ^= 1; /* record 6's payload */
    spit(path, b, n);
    ck_assert(tb_journal_scan(path, &d, &err) == TB_OK);
    ck_assert_uint_eq(d.valid_bytes, 72);
    ck_assert_uint_eq(d.records_valid, 3);
    ck_assert_uint_eq(d.resync_at, 96);
    ck_assert_uint_eq(d.records_after, 5);
    ck_assert_uint_eq(d.bytes_after, 120);
    ck_assert(truncate(path, 24 * 9 + 5) == 0); /* and torn */
    ck_assert(tb_journal_scan(path, &d, &err) == TB_OK);
    ck_assert_uint_eq(d.records_after, 4);
    b[24 * 3 + 1] ^= 1;
    b[24 * 6 + 14] ^= 1;
    spit(path, b, 24 * 9 + 5);
    ck_assert(tb_journal_scan(path, &d, &err) == TB_OK);
    ck_assert(d.valid_bytes == 24 * 9 && d.records_after == 0 && d.resync_at == d.file_bytes);
    free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("study_journal");
    TCase *tc = tcase_create("study_journal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, the_scan_finds_intact_records_after_the_damage);
    tcase_add_test(tc, a_flipped_byte_in_the_middle_is_refused_then_accepted);
    tcase_add_test(tc, a_torn_tail_is_cut_and_reported);
    tcase_add_test(tc, empty_final_seeds_are_refused);
    tcase_add_test(tc, index_and_study_agree_after_a_crash_before_the_submit_record);
    tcase_add_test(tc, the_executable_refuses_and_accepts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
