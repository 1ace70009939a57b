/* test_simulate.c: `tunebench simulate` (core/analysis/simulate.c, docs/simulate.md):
 * a simulated study's archive (participants and their spread of experience,
 * submissions with comments, rejections, finals, a random search), its
 * reproducibility (the same --seed gives the same values and comments, another
 * seed other ones), the refusal to overwrite, the errors naming the option, and
 * a small synthetic archive (--synthetic-runs). Read back with the HDF5 C API. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "study/hparam_space.h"
#include "tb_test.h"

static char tmpdir[512];

static void setup(void) { tbt_mkdtemp(tmpdir, sizeof tmpdir, "simulate"); }
static void teardown(void) { tbt_rm_rf(tmpdir); }

/* ---- reading study.h5 ---------------------------------------------------------------------- */

/* A string column: malloc'd array of malloc'd strings (free with free_strings); *n rows. */
static char **h5_strings(const char *file, const char *path, int *n)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    ck_assert(cnt >= 0);
    char **v = calloc((size_t)cnt + 1, sizeof *v), **out = calloc((size_t)cnt + 1, sizeof *out);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    if (cnt > 0) ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    for (hssize_t i = 0; i < cnt; i++) out[i] = strdup(v[i] ? v[i] : "");
    if (cnt > 0) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    *n = (int)cnt;
    return out;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static double *h5_f64(const char *file, const char *path, int *n)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    double *v = calloc((size_t)cnt + 1, sizeof *v);
    if (cnt > 0) ck_assert(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    *n = (int)cnt;
    return v;
}

static int count_of(char **v, int n, const char *s)
{
    int k = 0;
    for (int i = 0; i < n; i++) k += !strcmp(v[i], s);
    return k;
}

static int simulate(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "simulate %s", args);
    return tbt_tunebench(cmd, "2>&1", out, cap);
}

static int strcmp_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every submission as one line "participant#number|v1|c1|...", sorted: what must repeat for a seed. */
static char *submissions_text(const char *archive)
{
    char file[1024];
    snprintf(file, sizeof file, "%s/study.h5", archive);
    int n = 0, m = 0;
    char **who = h5_strings(file, "submissions/participant", &n);
    double *num = h5_f64(file, "submissions/number", &m);
    ck_assert_int_eq(m, n);
    char **lines = calloc((size_t)n + 1, sizeof *lines);
    for (int i = 0; i < n; i++) {
        lines[i] = calloc(1, 16384);
        snprintf(lines[i], 16384, "%s#%03d", who[i], (int)num[i]);
    }
    for (int h = 0; h < TB_HP_COUNT; h++) {
        char path[128];
        int k = 0;
        char **given = NULL;
        /* numbers as float64, loss and optimizer as strings; the comment always a string */
        snprintf(path, sizeof path, "submissions/%s", tb_hp_names[h]);
        if (h == TB_HP_LOSS || h == TB_HP_OPTIMIZER) {
            given = h5_strings(file, path, &k);
            for (int i = 0; i < n; i++) strcat(strcat(lines[i], "|"), given[i]);
            free_strings(given, k);
        } else {
            double *v = h5_f64(file, path, &k);
            for (int i = 0; i < n; i++) {
                char t[64];
                snprintf(t, sizeof t, "|%.17g", v[i]);
                strcat(lines[i], t);
            }
            free(v);
        }
        ck_assert_int_eq(k, n);
        snprintf(path, sizeof path, "submissions/comment_%s", tb_hp_names[h]);
        char **c = h5_strings(file, path, &k);
        for (int i = 0; i < n; i++) strcat(strcat(lines[i], "|"), c[i]);
        free_strings(c, k);
    }
    qsort(lines, (size_t)n, sizeof *lines, strcmp_ptr);
    size_t total = 1;
    for (int i = 0; i < n; i++) total += strlen(lines[i]) + 1;
    char *text = calloc(1, total);
    for (int i = 0; i < n; i++) strcat(strcat(text, lines[i]), "\n");
    free_strings(lines, n);
    free_strings(who, n);
    free(num);
    return text;
}

/* ---- tests ------------------------------------------------------------------------------------- */

START_TEST(simulated_study_archive)
{
    char archive[1024], args[1200], out[16384], file[1100];
    snprintf(archive, sizeof archive, "%s/sim", tmpdir);
    snprintf(args, sizeof args, "%s --participants 6 --seed 3 --random-search 3", archive);
    int rc = simulate(args, out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "simulated 6 participants (2 novice, 2 medium, 2 expert)");
    TBT_ASSERT_HAS(out, "random search s0001-random (3 runs)");

    snprintf(file, sizeof file, "%s/study.h5", archive);
    int n = 0, k = 0;
    char **ids = h5_strings(file, "participants/id", &n);
    ck_assert_int_eq(n, 6);
    /* experience spread over the paper's three groups; education from the study's list */
    double *months = h5_f64(file, "participants/dl_months", &k);
    char **edu = h5_strings(file, "participants/education", &k);
    int groups[3] = {0};
    for (int i = 0; i < n; i++) {
        groups[months[i] <= 0 ? 0 : months[i] < 9 ? 1 : 2]++;
        ck_assert_msg(strstr("high_school|bachelor|master_enrolled|master|doctorate", edu[i]) && edu[i][0], "%s",
                      edu[i]);
    }
    ck_assert_int_eq(groups[0], 2);
    ck_assert_int_eq(groups[1], 2);
    ck_assert_int_eq(groups[2], 2);
    /* everyone chose a final run, whose final evaluations (3 seeds) all finished */
    double *ff = h5_f64(file, "participants/finals_finished", &k);
    double *fm = h5_f64(file, "participants/final_test_accuracy_mean", &k);
    char **reason = h5_strings(file, "participants/final_reason", &k);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(ff[i] == 3, "%s: %g finals finished", ids[i], ff[i]);
        ck_assert_msg(fm[i] >= 0 && fm[i] <= 1, "%s: final mean %g", ids[i], fm[i]);
        ck_assert_str_eq(reason[i], "chosen");
    }
    /* experience goes with accuracy (the paper's section 3): here by a wide margin */
    double sum[3] = {0};
    for (int i = 0; i < n; i++) sum[months[i] <= 0 ? 0 : months[i] < 9 ? 1 : 2] += fm[i];
    ck_assert_msg(sum[2] / 2 > sum[0] / 2 + 0.2, "experts %.3f, novices %.3f", sum[2] / 2, sum[0] / 2);
    char **fstatus = h5_strings(file, "finals/status", &k);
    ck_assert_int_eq(k, 18);
    ck_assert_int_eq(count_of(fstatus, k, "finished"), 18);

    /* submissions: several per participant, comments by experience, some rejected */
    int ns = 0;
    char **who = h5_strings(file, "submissions/participant", &ns);
    char **status = h5_strings(file, "submissions/status", &k);
    char **c_lr = h5_strings(file, "submissions/comment_lr", &k);
    char **c_opt = h5_strings(file, "submissions/comment_optimizer", &k);
    double *kept = h5_f64(file, "submissions/presets_kept", &k);
    ck_assert_int_ge(ns, 6 * 3);
    for (int i = 0; i < n; i++) ck_assert_int_ge(count_of(who, ns, ids[i]), 3);
    ck_assert_int_ge(count_of(status, ns, "rejected"), 1);
    ck_assert_int_ge(count_of(status, ns, "finished"), 6);
    int guesses_novice = 0, past_expert = 0, guesses_expert = 0, all_presets = 0;
    for (int s = 0; s < ns; s++) {
        int p = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(ids[i], who[s])) p = i;
        ck_assert(p >= 0);
        ck_assert_msg(c_opt[s][0], "submission %d of %s has no comment on the optimizer", s, who[s]);
        if (months[p] == 0) guesses_novice += !strcmp(c_opt[s], "It is just a guess.");
        if (months[p] >= 9) {
            past_expert += !strcmp(c_opt[s], "It is the value that has worked well for me in the past.");
            guesses_expert += !strcmp(c_lr[s], "It is just a guess.");
        }
        all_presets += kept[s] == 11;
    }
    ck_assert_int_ge(guesses_novice, 3);
    ck_assert_int_ge(past_expert, 3);
    ck_assert_int_eq(guesses_expert, 0);
    ck_assert_int_ge(all_presets, 1);

    /* the random search's table */
    snprintf(file, sizeof file, "%s/sweeps/s0001-random.h5", archive);
    char **sweep_status = h5_strings(file, "runs/status", &k);
    ck_assert_int_eq(k, 3);
    free_strings(sweep_status, k);
    /* and the task and configuration it was made from */
    struct stat sb;
    snprintf(file, sizeof file, "%s/task.h5", archive);
    ck_assert(stat(file, &sb) == 0);
    snprintf(file, sizeof file, "%s/simulate.ini", archive);
    ck_assert(stat(file, &sb) == 0);

    free_strings(ids, n), free_strings(edu, n), free_strings(reason, n), free_strings(fstatus, 18);
    free_strings(who, ns), free_strings(status, ns), free_strings(c_lr, ns), free_strings(c_opt, ns);
    free(months), free(ff), free(fm), free(kept);
}
END_TEST

START_TEST(same_seed_same_choices)
{
    char a[1024], b[1024], c[1024], args[1200], out[16384];
    snprintf(a, sizeof a, "%s/a", tmpdir);
    snprintf(b, sizeof b, "%s/b", tmpdir);
    snprintf(c, sizeof c, "%s/c", tmpdir);
    const char *dirs[3] = {a, b, c};
    const int seeds[3] = {5, 5, 6};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s --participants 4 --seed %d --final-seeds 1 --quiet", dirs[i], seeds[i]);
        int rc = simulate(args, out, sizeof out);
        ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    }
    char *ta = submissions_text(a), *tb = submissions_text(b), *tc = submissions_text(c);
    ck_assert_msg(strlen(ta) > 100, "%s", ta);
    ck_assert_str_eq(ta, tb);
    ck_assert_msg(strcmp(ta, tc) != 0, "seeds 5 and 6 gave the same submissions:\n%s", ta);
    free(ta), free(tb), free(tc);
}
END_TEST

START_TEST(refuses_to_overwrite_and_names_bad_options)
{
    char archive[1024], other[1024], args[1200], out[16384], path[1100];
    snprintf(archive, sizeof archive, "%s/old", tmpdir);
    snprintf(other, sizeof other, "%s/notes", tmpdir);
    ck_assert(mkdir(archive, 0777) == 0 && mkdir(other, 0777) == 0);
    snprintf(path, sizeof path, "%s/study.journal", archive);
    FILE *f = fopen(path, "w");
    ck_assert(f && fputs("not really a journal", f) >= 0 && fclose(f) == 0);
    snprintf(path, sizeof path, "%s/mine.txt", other);
    f = fopen(path, "w");
    ck_assert(f && fputs("keep me", f) >= 0 && fclose(f) == 0);

    /* an archive there: refused without --force, nothing touched */
    snprintf(args, sizeof args, "%s --participants 1 --final-seeds 1", archive);
    int rc = simulate(args, out, sizeof out);
    ck_assert_int_eq(rc, 2);
    TBT_ASSERT_HAS(out, "already holds an archive");
    TBT_ASSERT_HAS(out, "--force");
    struct stat sb;
    snprintf(path, sizeof path, "%s/study.journal", archive);
    ck_assert(stat(path, &sb) == 0 && sb.st_size == 20);
    /* a folder of something else: refused even with --force */
    snprintf(args, sizeof args, "%s --force", other);
    rc = simulate(args, out, sizeof out);
    ck_assert_int_eq(rc, 2);
    TBT_ASSERT_HAS(out, "holds no tunebench archive");
    snprintf(path, sizeof path, "%s/mine.txt", other);
    ck_assert(stat(path, &sb) == 0);
    /* with --force the old archive is replaced */
    snprintf(args, sizeof args, "%s --participants 1 --final-seeds 1 --force --quiet", archive);
    rc = simulate(args, out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    snprintf(path, sizeof path, "%s/study.h5", archive);
    ck_assert(stat(path, &sb) == 0);

    /* errors name the option and the value */
    snprintf(args, sizeof args, "%s/x --participants 0", tmpdir);
    ck_assert_int_eq(simulate(args, out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "--participants");
    TBT_ASSERT_HAS(out, "'0'");
    snprintf(args, sizeof args, "%s/x --minutes -3", tmpdir);
    ck_assert_int_eq(simulate(args, out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "--minutes = '-3'");
    snprintf(args, sizeof args, "%s/x --seed abc", tmpdir);
    ck_assert_int_eq(simulate(args, out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "--seed");
    snprintf(args, sizeof args, "%s/x --epochs 3", tmpdir);
    ck_assert_int_eq(simulate(args, out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "--epochs applies to --synthetic-runs");
    snprintf(args, sizeof args, "%s/x --bogus", tmpdir);
    ck_assert_int_eq(simulate(args, out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "unknown option '--bogus'");
    ck_assert_int_eq(simulate("", out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "no archive folder given");
    snprintf(path, sizeof path, "%s/x", tmpdir);
    ck_assert(stat(path, &sb) != 0); /* nothing made for a bad command line */
}
END_TEST

START_TEST(synthetic_archive)
{
    char archive[1024], args[1200], out[16384], file[1100];
    snprintf(archive, sizeof archive, "%s/big", tmpdir);
    snprintf(args, sizeof args, "%s --synthetic-runs 3 --epochs 4 --batches 25 --seed 2", archive);
    int rc = simulate(args, out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    TBT_ASSERT_HAS(out, "wrote 3 runs (300 batch losses)");
    snprintf(file, sizeof file, "%s/index.h5", archive);
    int n = 0, k = 0;
    char **ids = h5_strings(file, "index/id", &n);
    char **kind = h5_strings(file, "index/kind", &k);
    double *epochs = h5_f64(file, "index/epochs", &k);
    double *batches = h5_f64(file, "index/batches", &k);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(kind[i], "sweep");
        ck_assert_double_eq(epochs[i], 4);
        ck_assert_double_eq(batches[i], 100);
    }
    snprintf(file, sizeof file, "%s/runs/%s.h5", archive, ids[0]);
    double *loss = h5_f64(file, "curves/batch/loss", &k);
    ck_assert_int_eq(k, 100);
    for (int i = 0; i < k; i++) ck_assert(isfinite(loss[i]) && loss[i] > 0);
    free(loss);
    snprintf(file, sizeof file, "%s/sweeps/s0001-random.h5", archive);
    char **run = h5_strings(file, "runs/run_id", &k);
    ck_assert_int_eq(k, 3);
    ck_assert_str_eq(run[0], ids[0]);
    char **opt = h5_strings(file, "runs/train.optimizer", &k);
    ck_assert(strstr("adam|adadelta|adagrad|asgd|rmsprop|sgd", opt[0]) && opt[0][0]);
    free_strings(ids, n), free_strings(kind, n), free_strings(run, 3), free_strings(opt, 3);
    free(epochs), free(batches);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("simulate");
    TCase *tc = tcase_create("simulate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600); /* sanitizer builds are several times slower */
    tcase_add_test(tc, simulated_study_archive);
    tcase_add_test(tc, same_seed_same_choices);
    tcase_add_test(tc, refuses_to_overwrite_and_names_bad_options);
    tcase_add_test(tc, synthetic_archive);
    suite_add_tcase(s, tc);
    return tbt_run(s);
}
