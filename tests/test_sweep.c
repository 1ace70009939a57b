/* test_sweep.c: sweeps on a tiny toy task, read back from the results file
 * with the HDF5 C API alone: a 2x2 grid, random search (deterministic from
 * its seed), k folds (mean and standard error checked against the runs),
 * repeated seeds, bad grid values refused before anything runs; and the
 * executable: run-job's event lines and exit codes, sweep, train --folds
 * and Ctrl-C during a sweep. */
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
#include "base/config.h"
#include "exec/executor.h"
#include "study/sweep.h"
#include "tb_test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char tmpdir[512];
static char task_path[600];
static char archive_dir[600];

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "sweep");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    snprintf(archive_dir, sizeof archive_dir, "%s/archive", tmpdir);
    tbt_make_toy_task(task_path, 192, 64, 64, 4, 12, 3);
}

static void teardown(void)
{
    ck_assert(tbt_rm_rf(tmpdir) == 0);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *tmp_path(const char *name)
{
    static char path[8][1024];
    static int which;
    which = (which + 1) % 8;
    snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
    return path[which];
}

/* The toy configuration (1 epoch unless extra says otherwise) as a tb_config. */
static tb_config *toy_config(const char *extra)
{
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert_msg(tb_config_load_text(&cfg, tbt_toy_config(task_path, extra), "toy", &err) == TB_OK, "%s", err.msg);
    ck_assert(tb_config_set(cfg, "train.epochs", "1", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.run", tmp_path("unused.h5"), &err) == TB_OK);
    return cfg;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Runs a planned sweep through a local executor into the test archive. */
static void execute(tb_sweep *sw, int slots)
{
    tb_archive *a;
    tb_executor *ex;
    tb_err err;
    ck_assert_msg(tb_archive_open(archive_dir, 1, &a, NULL, &err) == TB_OK, "%s", err.msg);
    ck_assert(tb_executor_local_create(slots, 1, &ex, &err) == TB_OK);
    ck_assert_msg(tb_sweep_execute(sw, a, ex, NULL, NULL, NULL, &err) == TB_OK, "%s", err.msg);
    tb_executor_destroy(ex);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
}

static const char *results_path(const tb_sweep *sw)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/sweeps/%s.h5", archive_dir, sw->id);
    return path;
}

static hid_t open_results(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    return f;
}

/* A 1-D numeric column as doubles (malloc'd); *n its length. */
static double *read_f64(hid_t f, const char *name, size_t *n)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "column %s is missing", name);
    hid_t sp = H5Dget_space(d);
    ck_assert_int_eq(H5Sget_simple_extent_ndims(sp), 1);
    hsize_t len;
    H5Sget_simple_extent_dims(sp, &len, NULL);
    double *v = malloc(sizeof *v * (len + 1));
    ck_assert(v);
    ck_assert(len == 0 || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    *n = (size_t)len;
    return v;
}

/* A 1-D variable-length string column, copied into one malloc'd block of
 * n pointers followed by the texts. */
static char **read_str(hid_t f, const char *name, size_t *n)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "column %s is missing", name);
    hid_t sp = H5Dget_space(d);
    hsize_t len;
    H5Sget_simple_extent_dims(sp, &len, NULL);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char **raw = calloc(len + 1, sizeof *raw);
    ck_assert(raw);
    ck_assert(len == 0 || H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0);
    size_t bytes = (len + 1) * sizeof(char *);
    for (hsize_t i = 0; i < len; i++) bytes += strlen(raw[i]) + 1;
    char **out = malloc(bytes);
    ck_assert(out);
    char *p = (char *)(out + len + 1);
    for (hsize_t i = 0; i < len; i++) {
        out[i] = p;
        strcpy(p, raw[i]);
        p += strlen(raw[i]) + 1;
    }
    out[len] = NULL;
    H5Dvlen_reclaim(t, sp, H5P_DEFAULT, raw);
    free(raw);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    *n = (size_t)len;
    return out;
}

static char *read_attr_str(hid_t f, const char *name)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s is missing", name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *v = NULL;
    ck_assert(H5Aread(a, t, &v) >= 0);
    char *copy = strdup(v);
    H5free_memory(v);
    H5Tclose(t);
    H5Aclose(a);
    return copy;
}

static double read_attr_f64(hid_t f, const char *name)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s is missing", name);
    double v = 0;
    ck_assert(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* A string attribute of the object at `where` in file path (malloc'd). */
static char *file_attr_str(const char *path, const char *where, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    hid_t o = H5Oopen(f, where, H5P_DEFAULT);
    ck_assert_msg(o >= 0, "%s: %s is missing", path, where);
    char *v = read_attr_str(o, name);
    H5Oclose(o);
    H5Fclose(f);
    return v;
}

/* A numeric attribute of the object at `where` in file path. */
static double file_attr_f64(const char *path, const char *where, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    hid_t o = H5Oopen(f, where, H5P_DEFAULT);
    ck_assert_msg(o >= 0, "%s: %s is missing", path, where);
    double v = read_attr_f64(o, name);
    H5Oclose(o);
    H5Fclose(f);
    return v;
}

/* ---- grids -------------------------------------------------------------------------- */

START_TEST(test_grid_2x2)
{
    tb_config *cfg = toy_config(NULL);
    const char *axes[] = {"train.optimizer=adam,sgd", "train.lr = 1e-2, 1e-3"};
    tb_sweep sw;
    char *problems = NULL;
    tb_err err;
    ck_assert_msg(tb_sweep_plan_grid(&sw, cfg, 2, axes, 0, &problems, &err) == TB_OK, "%s", err.msg);
    ck_assert_ptr_null(problems);
    ck_assert_int_eq(sw.n_runs, 4);
    ck_assert_int_eq(sw.n_keys, 2);
    ck_assert_str_eq(sw.keys[0], "train.optimizer");
    ck_assert_str_eq(sw.keys[1], "train.lr");
    sw.command_line = strdup("tunebench sweep toy.ini --grid ...");
    execute(&sw, 2);
    ck_assert_str_eq(sw.id, "s0001-grid");

    hid_t f = open_results(results_path(&sw));
    size_t n;
    char **opt = read_str(f, "runs/train.optimizer", &n);
    ck_assert_int_eq((int)n, 4);
    char **lr = read_str(f, "runs/train.lr", &n);
    char **status = read_str(f, "runs/status", &n);
    char **ids = read_str(f, "runs/run_id", &n);
    double *config = read_f64(f, "runs/config", &n);
    double *fold = read_f64(f, "runs/fold", &n);
    double *val = read_f64(f, "runs/val_accuracy", &n);
    const char *want_opt[] = {"adam", "adam", "sgd", "sgd"}, *want_lr[] = {"1e-2", "1e-3", "1e-2", "1e-3"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(opt[i], want_opt[i]);
        ck_assert_str_eq(lr[i], want_lr[i]);
        ck_assert_str_eq(status[i], "finished");
        ck_assert(ids[i][0] == 'r');
        ck_assert(config[i] == i);
        ck_assert(fold[i] == -1);
        ck_assert(val[i] >= 0 && val[i] <= 1);
    }
    char *kind = read_attr_str(f, "kind"), *cmd = read_attr_str(f, "command_line"), *created = read_attr_str(f, "created");
    ck_assert_str_eq(kind, "grid");
    ck_assert_str_eq(cmd, "tunebench sweep toy.ini --grid ...");
    ck_assert_msg(strlen(created) >= 20 && created[4] == '-' && created[10] == 'T' && created[strlen(created) - 1] == 'Z',
                  "created = %s", created);
    ck_assert(read_attr_f64(f, "schema_version") == 1);
    ck_assert(read_attr_f64(f, "finished") == 4);
    /* the summary is the mean of the runs' column */
    double mean = (val[0] + val[1] + val[2] + val[3]) / 4;
    ck_assert(fabs(read_attr_f64(f, "val_accuracy_mean") - mean) < 1e-12);
    /* the run really used its settings: the archive's copy of its configuration */
    H5Fclose(f);
    char run_file[1200];
    snprintf(run_file, sizeof run_file, "%s/runs/%s.h5", archive_dir, ids[2]);
    hid_t rf = H5Fopen(run_file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(rf >= 0, "archive run file %s missing", run_file);
    H5Fclose(rf);
    tb_archive *a;
    ck_assert(tb_archive_open(archive_dir, 0, &a, NULL, &err) == TB_OK);
    ck_assert_int_eq((int)tb_archive_run_count(a), 4);
    tb_archive_run_info info;
    ck_assert(tb_archive_run_info_by_id(a, ids[2], &info, &err) == TB_OK);
    ck_assert_str_eq(info.kind, "sweep");
    ck_assert_int_eq(info.status, TB_RUN_FINISHED);
    ck_assert(fabs(info.val_accuracy - val[2]) < 1e-12);
    ck_assert(tb_archive_close(a, &err) == TB_OK);
    ck_assert_msg(strstr(sw.runs[2].ini, "optimizer = sgd") && strstr(sw.runs[2].ini, "lr = 1e-2"), "%s",
                  sw.runs[2].ini);
    /* ... as the archive recorded it, not only as planned */
    snprintf(run_file, sizeof run_file, "%s/runs/%s.h5", archive_dir, ids[2]);
    char *archived = file_attr_str(run_file, "config", "ini");
    ck_assert_msg(strstr(archived, "optimizer = sgd") && strstr(archived, "lr = 1e-2") &&
                      !strstr(archived, "optimizer = adam") && !strstr(archived, "lr = 1e-3"),
                  "%s", archived);
    free(archived);
    /* and the run file the run wrote itself went to the archive */
    snprintf(run_file, sizeof run_file, "%s/runs/%s.run.h5", archive_dir, ids[2]);
    archived = file_attr_str(run_file, "train", "optimizer");
    ck_assert_str_eq(archived, "sgd");
    free(archived);

    /* a second sweep in the same archive gets the next id */
    tb_sweep sw2;
    const char *one[] = {"train.batch_size=32"};
    ck_assert(tb_sweep_plan_grid(&sw2, cfg, 1, one, 0, NULL, &err) == TB_OK);
    execute(&sw2, 1);
    ck_assert_str_eq(sw2.id, "s0002-grid");
    tb_sweep_free(&sw2);

    free(opt), free(lr), free(status), free(ids), free(config), free(fold), free(val);
    free(kind), free(cmd), free(created);
    tb_sweep_free(&sw);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_bad_grid_refused_before_running)
{
    tb_config *cfg = toy_config(NULL);
    const char *axes[] = {"train.optimizer=adam,adamw", "train.lr=1e-2,abc", "model.freeze=none"};
    tb_sweep sw;
    char *problems = NULL;
    tb_err err;
    ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 3, axes, 0, &problems, &err), TB_EINVAL);
    ck_assert_ptr_nonnull(problems);
    ck_assert_msg(strstr(problems, "--grid train.optimizer: value 'adamw'"), "%s", problems);
    ck_assert_msg(strstr(problems, "--grid train.lr: value 'abc'"), "%s", problems);
    ck_assert_msg(!strstr(problems, "'adam'") && !strstr(problems, "'1e-2'"), "good values reported:\n%s", problems);
    ck_assert_msg(strstr(err.msg, "2 grid values are invalid") && strstr(err.msg, "adamw"), "%s", err.msg);
    free(problems);
    tb_sweep_free(&sw);

    /* an unknown key, named with its nearest */
    const char *typo[] = {"train.learning_rate=0.1"};
    ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 1, typo, 0, &problems, &err), TB_EINVAL);
    ck_assert_msg(strstr(problems, "train.learning_rate") && strstr(problems, "lr"), "%s", problems);
    free(problems);
    tb_sweep_free(&sw);

    /* malformed axes */
    const char *malformed[][1] = {{"train.lr"}, {"lr=1,2"}, {"train.lr=1,,2"}, {"train.lr=1,1"}};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 1, malformed[i], 0, &problems, &err), TB_EINVAL);
        ck_assert_msg(strstr(err.msg, "--grid"), "%s", err.msg);
        free(problems);
        tb_sweep_free(&sw);
    }
    const char *twice[] = {"train.lr=1", "train.lr=2"};
    ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 2, twice, 0, &problems, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "twice"), "%s", err.msg);
    free(problems);
    tb_sweep_free(&sw);

    /* the executable: nothing runs, the archive is not even created */
    char ini[1200], cmd[4096];
    snprintf(ini, sizeof ini, "%s/toy.ini", tmpdir);
    write_file(ini, tbt_toy_config(task_path, NULL));
    snprintf(cmd, sizeof cmd, "'%s' sweep '%s' --grid train.optimizer=adam,sgd --grid train.lr=1e-3,-5 --archive '%s' "
             ">'%s/out.txt' 2>&1", TB_TUNEBENCH_EXE, ini, archive_dir, tmpdir);
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "exit %d", WEXITSTATUS(rc));
    struct stat sb;
    ck_assert_msg(stat(archive_dir, &sb) != 0, "the archive was created for a sweep that did not run");
    FILE *o = fopen(tmp_path("out.txt"), "r");
    char out[4096] = "";
    size_t len = fread(out, 1, sizeof out - 1, o);
    out[len] = '\0';
    fclose(o);
    ck_assert_msg(strstr(out, "train.lr: value '-5'"), "%s", out);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_grid_blames_the_right_key)
{
    /* the base is bad in train.lr_decay: that names neither value of a train.lr
     * axis ("train.lr" is a prefix of "train.lr_decay"), so the points report it */
    tb_config *cfg = toy_config(NULL);
    tb_err err;
    ck_assert(tb_config_set(cfg, "train.lr_decay", "-1", &err) == TB_OK);
    const char *axes[] = {"train.lr=1e-2,1e-3"};
    tb_sweep sw;
    char *problems = NULL;
    ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 1, axes, 0, &problems, &err), TB_EINVAL);
    ck_assert_ptr_nonnull(problems);
    ck_assert_msg(!strstr(problems, "--grid train.lr: value"), "train.lr blamed for train.lr_decay:\n%s", problems);
    ck_assert_msg(strstr(problems, "grid point train.lr=1e-2") && strstr(problems, "lr_decay"), "%s", problems);
    ck_assert_msg(strstr(err.msg, "2 of 2 grid points are invalid"), "%s", err.msg);
    free(problems);
    tb_sweep_free(&sw);

    /* a bad value of the longer key is still its own */
    tb_config_free(cfg);
    cfg = toy_config(NULL);
    const char *axes2[] = {"train.lr=1e-2", "train.lr_decay=0,-1"};
    ck_assert_int_eq(tb_sweep_plan_grid(&sw, cfg, 2, axes2, 0, &problems, &err), TB_EINVAL);
    ck_assert_msg(strstr(problems, "--grid train.lr_decay: value '-1'"), "%s", problems);
    ck_assert_msg(!strstr(problems, "--grid train.lr: value"), "%s", problems);
    free(problems);
    tb_sweep_free(&sw);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_plan_seeds_and_sections)
{
    /* a run's seed without reading its text back: the configuration's, a grid's, repeat's */
    tb_config *cfg = toy_config("[space]\nlr = float 1e-3 1e-2 log\n[study]\narchive = x\n");
    tb_err err;
    ck_assert(tb_config_set(cfg, "train.seed", "7", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.checkpoint", tmp_path("ck.h5"), &err) == TB_OK);
    tb_sweep sw;
    ck_assert_msg(tb_sweep_plan_folds(&sw, cfg, 2, NULL, &err) == TB_OK, "%s", err.msg);
    ck_assert(sw.runs[0].seed == 7 && sw.runs[1].seed == 7);
    /* a study configuration keeps only the sections a run reads, and no output file of its own */
    ck_assert_msg(!strstr(sw.base_ini, "[space]") && !strstr(sw.base_ini, "[study]"), "%s", sw.base_ini);
    ck_assert_msg(strstr(sw.base_ini, "[cnn]") && strstr(sw.base_ini, "[hdf5]") && strstr(sw.base_ini, "[train]"),
                  "%s", sw.base_ini);
    ck_assert_msg(!strstr(sw.base_ini, "unused.h5") && !strstr(sw.base_ini, "ck.h5"), "%s", sw.base_ini);
    tb_sweep_free(&sw);
    const char *axes[] = {"train.seed=5,11"};
    ck_assert_msg(tb_sweep_plan_grid(&sw, cfg, 1, axes, 2, NULL, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(sw.n_runs, 4);
    ck_assert(sw.runs[0].seed == 5 && sw.runs[1].seed == 5 && sw.runs[2].seed == 11 && sw.runs[3].seed == 11);
    tb_sweep_free(&sw);
    ck_assert(tb_sweep_plan_repeat(&sw, cfg, 2, 100, 0, NULL, &err) == TB_OK);
    ck_assert(sw.runs[0].seed == 100 && sw.runs[1].seed == 101);
    ck_assert_msg(strstr(sw.runs[1].ini, "seed = 101"), "%s", sw.runs[1].ini);
    tb_sweep_free(&sw);
    tb_config_free(cfg);

    /* anything else is kept whole, so that a misspelt section is reported */
    cfg = toy_config("[trian]\nlr = 1\n");
    char *text = NULL;
    ck_assert(tb_run_sections_ini(cfg, &text, &err) == TB_OK);
    ck_assert_msg(strstr(text, "[trian]") && !strstr(text, "unused.h5"), "%s", text);
    free(text);
    char *problems = NULL;
    ck_assert_int_eq(tb_sweep_plan_folds(&sw, cfg, 2, &problems, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "trian"), "%s", err.msg);
    free(problems);
    tb_sweep_free(&sw);
    tb_config_free(cfg);
}
END_TEST

/* ---- random search -------------------------------------------------------------------- */

/* adam only: some of the paper's other settings diverge (e.g. rmsprop with alpha = 673), and
 * every run here must finish */
static const char space_text[] = "[space]\nepochs = int 1 1\nbatch_size = int 8 64 log\n"
                                 "loss = choice cross_entropy\nlr = float 1e-4 1e-1 log\noptimizer = choice adam\n";

START_TEST(test_random_is_deterministic)
{
    tb_config *cfg = toy_config(space_text);
    tb_sweep a, b, c;
    tb_err err;
    char *problems = NULL;
    ck_assert_msg(tb_sweep_plan_random(&a, cfg, 4, 42, 0, &problems, &err) == TB_OK, "%s\n%s", err.msg,
                  problems ? problems : "");
    ck_assert(tb_sweep_plan_random(&b, cfg, 4, 42, 0, NULL, &err) == TB_OK);
    ck_assert(tb_sweep_plan_random(&c, cfg, 4, 43, 0, NULL, &err) == TB_OK);
    ck_assert_int_eq(a.n_keys, 15);
    ck_assert_str_eq(a.keys[4], "train.lr");
    int differ = 0;
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 15; k++) {
            ck_assert_str_eq(a.runs[i].values[k], b.runs[i].values[k]);
            differ |= strcmp(a.runs[i].values[k], c.runs[i].values[k]) != 0;
        }
        ck_assert_str_eq(a.runs[i].ini, b.runs[i].ini);
        /* inside the space */
        ck_assert_str_eq(a.runs[i].values[0], "1");
        ck_assert_str_eq(a.runs[i].values[2], "cross_entropy");
        long bs = strtol(a.runs[i].values[1], NULL, 10);
        double lr = strtod(a.runs[i].values[4], NULL);
        ck_assert(bs >= 8 && bs <= 64);
        ck_assert(lr >= 1e-4 && lr <= 1e-1);
    }
    ck_assert_msg(differ, "another search seed drew the same configurations");
    /* the [space] section stays out of the runs */
    ck_assert(!strstr(a.runs[0].ini, "[space]"));

    a.command_line = strdup("random");
    execute(&a, 2);
    ck_assert_str_eq(a.id, "s0001-random");
    hid_t f = open_results(results_path(&a));
    ck_assert(read_attr_f64(f, "search_seed") == 42);
    char *kind = read_attr_str(f, "kind");
    ck_assert_str_eq(kind, "random");
    size_t n;
    for (int k = 0; k < 15; k++) {
        char name[64];
        snprintf(name, sizeof name, "runs/%s", a.keys[k]);
        char **col = read_str(f, name, &n);
        ck_assert_int_eq((int)n, 4);
        for (int i = 0; i < 4; i++) ck_assert_str_eq(col[i], b.runs[i].values[k]);
        free(col);
    }
    char **status = read_str(f, "runs/status", &n);
    for (int i = 0; i < 4; i++) ck_assert_msg(strcmp(status[i], "queued") && strcmp(status[i], "training"), "%s", status[i]);
    for (int i = 0; i < 4; i++) ck_assert_msg(!strcmp(status[i], "finished"), "run %d ended %s", i, status[i]);
    free(status);
    free(kind);
    H5Fclose(f);
    tb_sweep_free(&a);
    tb_sweep_free(&b);
    tb_sweep_free(&c);
    tb_config_free(cfg);
}
END_TEST

/* ---- folds and seeds ------------------------------------------------------------------ */

START_TEST(test_folds_mean_and_se)
{
    tb_config *cfg = toy_config(NULL);
    tb_sweep sw;
    tb_err err;
    ck_assert_msg(tb_sweep_plan_folds(&sw, cfg, 3, NULL, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(sw.n_runs, 3);
    execute(&sw, 2);
    hid_t f = open_results(results_path(&sw));
    size_t n;
    double *fold = read_f64(f, "runs/fold", &n);
    ck_assert_int_eq((int)n, 3);
    ck_assert(fold[0] == 0 && fold[1] == 1 && fold[2] == 2);
    static const char *const metric[] = {"val_accuracy", "val_loss", "test_accuracy"};
    for (int m = 0; m < 3; m++) {
        char name[96];
        snprintf(name, sizeof name, "runs/%s", metric[m]);
        double *v = read_f64(f, name, &n);
        double mean = (v[0] + v[1] + v[2]) / 3;
        double sd = sqrt(((v[0] - mean) * (v[0] - mean) + (v[1] - mean) * (v[1] - mean) +
                          (v[2] - mean) * (v[2] - mean)) / 2);
        double se = sd / sqrt(3);
        snprintf(name, sizeof name, "configs/%s_mean", metric[m]);
        double *got = read_f64(f, name, &n);
        ck_assert_int_eq((int)n, 1);
        ck_assert_msg(fabs(got[0] - mean) < 1e-12, "%s mean %g, want %g", metric[m], got[0], mean);
        free(got);
        snprintf(name, sizeof name, "configs/%s_se", metric[m]);
        got = read_f64(f, name, &n);
        ck_assert_msg(fabs(got[0] - se) < 1e-12, "%s se %g, want %g", metric[m], got[0], se);
        free(got);
        free(v);
    }
    char *kind = read_attr_str(f, "kind");
    ck_assert_str_eq(kind, "folds");
    ck_assert(read_attr_f64(f, "folds") == 3);
    free(kind);
    H5Fclose(f);
    /* the folds validated on different samples: the runs' configurations say so */
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "fold = %d", i);
        ck_assert_msg(strstr(sw.runs[i].ini, want) && strstr(sw.runs[i].ini, "folds = 3"), "%s", sw.runs[i].ini);
    }
    free(fold);
    tb_sweep_free(&sw);

    /* the statistics themselves, NaN skipped */
    double v[] = {1, 2, NAN, 3, 6};
    tb_sweep_stat s;
    tb_sweep_stat_of(v, 5, &s);
    ck_assert_int_eq(s.n, 4);
    ck_assert(fabs(s.mean - 3) < 1e-12);
    ck_assert(fabs(s.sd - sqrt(14.0 / 3)) < 1e-12);
    ck_assert(fabs(s.se - sqrt(14.0 / 3) / 2) < 1e-12);
    tb_sweep_stat_of(v, 1, &s);
    ck_assert(s.n == 1 && s.mean == 1 && isnan(s.sd) && isnan(s.se));
    tb_sweep_stat_of(v + 2, 1, &s);
    ck_assert(s.n == 0 && isnan(s.mean));
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_repeat_distinct_seeds)
{
    tb_config *cfg = toy_config(NULL);
    tb_sweep sw;
    tb_err err;
    ck_assert_msg(tb_sweep_plan_repeat(&sw, cfg, 3, 10, 0, NULL, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(sw.n_configs, 1);
    ck_assert_int_eq(sw.n_runs, 3);
    execute(&sw, 2);
    hid_t f = open_results(results_path(&sw));
    size_t n;
    double *seed = read_f64(f, "runs/seed", &n), *test = read_f64(f, "runs/test_accuracy", &n);
    ck_assert_int_eq((int)n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(seed[i] == 10 + i);
        ck_assert(test[i] >= 0 && test[i] <= 1);
        ck_assert_int_eq(sw.runs[i].status, TB_RUN_FINISHED);
        ck_assert_msg(!strstr(sw.runs[i].ini, "init_seed"), "the init seed must follow the seed");
    }
    double *sd = read_f64(f, "configs/test_accuracy_sd", &n);
    ck_assert_int_eq((int)n, 1);
    tb_sweep_summary s;
    tb_sweep_summarize(&sw, 0, &s);
    ck_assert_int_eq(s.finished, 3);
    ck_assert(fabs(s.test_accuracy.sd - sd[0]) < 1e-12 || (isnan(sd[0]) && isnan(s.test_accuracy.sd)));
    /* the file's sd against the runs' own column, computed here */
    double mean = (test[0] + test[1] + test[2]) / 3;
    double want_sd = sqrt(((test[0] - mean) * (test[0] - mean) + (test[1] - mean) * (test[1] - mean) +
                           (test[2] - mean) * (test[2] - mean)) / 2);
    ck_assert_msg(fabs(sd[0] - want_sd) < 1e-12, "test_accuracy_sd %g, want %g", sd[0], want_sd);
    /* the runs really used different seeds: each run file says which it trained with */
    char **ids = read_str(f, "runs/run_id", &n);
    ck_assert_int_eq((int)n, 3);
    for (int i = 0; i < 3; i++) {
        char run_file[1200];
        snprintf(run_file, sizeof run_file, "%s/runs/%s.run.h5", archive_dir, ids[i]);
        double used = file_attr_f64(run_file, "seeds", "seed");
        ck_assert_msg(used == 10 + i, "run %s trained with seed %g, want %d", ids[i], used, 10 + i);
        ck_assert(file_attr_f64(run_file, "seeds", "init_seed") == 10 + i); /* the init follows the seed */
    }
    free(ids);
    H5Fclose(f);
    free(seed), free(test), free(sd);
    tb_sweep_free(&sw);

    /* with folds: seeds x folds runs of one configuration */
    ck_assert(tb_sweep_plan_repeat(&sw, cfg, 2, 0, 2, NULL, &err) == TB_OK);
    ck_assert_int_eq(sw.n_runs, 4);
    ck_assert(sw.runs[0].seed == 0 && sw.runs[1].seed == 0 && sw.runs[2].seed == 1 && sw.runs[3].seed == 1);
    ck_assert(sw.runs[0].fold == 0 && sw.runs[1].fold == 1 && sw.runs[2].fold == 0 && sw.runs[3].fold == 1);
    tb_sweep_free(&sw);
    tb_config_free(cfg);
}
END_TEST

/* ---- the executable ------------------------------------------------------------------- */

/* Runs cmd (through sh), its stdout into lines; returns the exit status. */
static int run_capture(const char *cmd, char *out, size_t cap)
{
    int rc = tbt_capture(cmd, out, cap);
    ck_assert_msg(rc >= 0, "%s did not exit", cmd);
    return rc;
}

static void write_job(const char *name, const char *extra, const char *run_name)
{
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert(tb_config_load_text(&cfg, tbt_toy_config(task_path, extra), "job", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.run", tmp_path(run_name), &err) == TB_OK);
    char *text = tb_config_to_ini(cfg);
    write_file(tmp_path(name), text);
    free(text);
    tb_config_free(cfg);
}

START_TEST(test_run_job_lines_and_exit_codes)
{
    static char out[1 << 16];
    char cmd[2048];
    tb_job_line line;

    /* finished: started, 2 x 12 batches, 2 epochs, finished, in that order */
    write_job("ok.ini", NULL, "ok.h5");
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' --threads 1 2>/dev/null", TB_TUNEBENCH_EXE, tmp_path("ok.ini"));
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    int started = 0, batches = 0, epochs = 0, finished = 0, order_ok = 1;
    double last_val = NAN;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        ck_assert_msg(tb_job_line_parse(l, &line) == 0, "not an event line: %s", l);
        switch (line.kind) {
        case TB_JOB_LINE_STARTED:
            order_ok &= !started && !batches && !finished;
            started++;
            ck_assert_int_eq(line.threads, 1);
            break;
        case TB_JOB_LINE_BATCH:
            order_ok &= started && !finished && line.ev.step == batches + 1;
            batches++;
            break;
        case TB_JOB_LINE_EPOCH:
            order_ok &= line.ev.epoch == epochs + 1 && batches == 12 * (epochs + 1);
            epochs++;
            last_val = line.ev.val_accuracy;
            break;
        case TB_JOB_LINE_FINISHED:
            order_ok &= !finished;
            finished++;
            ck_assert_int_eq(line.status, TB_RUN_FINISHED);
            ck_assert(line.val_accuracy == last_val); /* exact through the text */
            ck_assert(line.test_accuracy >= 0 && line.test_accuracy <= 1);
            ck_assert_str_eq(line.message, "");
            break;
        }
    }
    ck_assert(order_ok);
    ck_assert(started == 1 && batches == 24 && epochs == 2 && finished == 1);
    struct stat sb;
    ck_assert_msg(stat(tmp_path("ok.h5"), &sb) == 0, "run-job wrote no run file");

    /* diverged: 3 */
    /* the toy config says adam; this one diverges */
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert(tb_config_load_text(&cfg, tbt_toy_config(task_path, NULL), "job", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "train.optimizer", "sgd", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "train.lr", "1000", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.run", tmp_path("div.h5"), &err) == TB_OK);
    char *text = tb_config_to_ini(cfg);
    write_file(tmp_path("div.ini"), text);
    free(text);
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' 2>/dev/null | tail -n 1", TB_TUNEBENCH_EXE, tmp_path("div.ini"));
    run_capture(cmd, out, sizeof out);
    ck_assert_msg(!strncmp(out, "event finished status=diverged", 30), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' >/dev/null 2>&1", TB_TUNEBENCH_EXE, tmp_path("div.ini"));
    int rc = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(rc), 3);

    /* rejected: 2, with the reason on the finished line */
    ck_assert(tb_config_set(cfg, "train.optimizer", "adamw", &err) == TB_OK);
    text = tb_config_to_ini(cfg);
    write_file(tmp_path("bad.ini"), text);
    free(text);
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' 2>/dev/null", TB_TUNEBENCH_EXE, tmp_path("bad.ini"));
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 2);
    ck_assert_int_eq(tb_job_line_parse(strtok(out, "\n"), &line), 0);
    ck_assert_int_eq(line.kind, TB_JOB_LINE_FINISHED);
    ck_assert_int_eq(line.status, TB_RUN_REJECTED);
    ck_assert_msg(strstr(line.message, "adamw"), "%s", line.message);

    /* not INI at all: rejected, 2, with the reason on a finished line */
    write_file(tmp_path("noini.ini"), "this is [not ini\n");
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' 2>/dev/null", TB_TUNEBENCH_EXE, tmp_path("noini.ini"));
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 2);
    ck_assert_int_eq(tb_job_line_parse(strtok(out, "\n"), &line), 0);
    ck_assert_int_eq(line.kind, TB_JOB_LINE_FINISHED);
    ck_assert_int_eq(line.status, TB_RUN_REJECTED);
    ck_assert(line.message[0]);

    /* trained, then the run file could not be written (a dangling symbolic
     * link is in its way: the directory cannot be made through it; a file in
     * the way is refused before training, tests/test_outputs.c): interrupted, 1 */
    ck_assert(symlink("/nonexistent-tb-target/dir", tmp_path("blocker")) == 0);
    char io_run[1200];
    snprintf(io_run, sizeof io_run, "%s/sub/io.h5", tmp_path("blocker"));
    ck_assert(tb_config_set(cfg, "train.optimizer", "adam", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "train.lr", "0.01", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.run", io_run, &err) == TB_OK);
    text = tb_config_to_ini(cfg);
    write_file(tmp_path("io.ini"), text);
    free(text);
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' --threads 1 2>/dev/null | tail -n 1", TB_TUNEBENCH_EXE,
             tmp_path("io.ini"));
    run_capture(cmd, out, sizeof out);
    ck_assert_int_eq(tb_job_line_parse(out, &line), 0);
    ck_assert_int_eq(line.status, TB_RUN_INTERRUPTED);
    ck_assert_msg(strstr(line.message, "run file"), "%s", line.message);
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' --threads 1 >/dev/null 2>&1", TB_TUNEBENCH_EXE, tmp_path("io.ini"));
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);

    /* a missing job file: 1; bad usage: 2 */
    snprintf(cmd, sizeof cmd, "'%s' run-job '%s' >/dev/null 2>&1", TB_TUNEBENCH_EXE, tmp_path("missing.ini"));
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "'%s' run-job --threads x a.ini >/dev/null 2>&1", TB_TUNEBENCH_EXE);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);

    /* SIGTERM: interrupted, 4, the run file still written */
    ck_assert(tb_config_set(cfg, "train.optimizer", "adam", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "train.lr", "0.01", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "train.epochs", "100000", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.run", tmp_path("long.h5"), &err) == TB_OK);
    text = tb_config_to_ini(cfg);
    write_file(tmp_path("long.ini"), text);
    free(text);
    tb_config_free(cfg);
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(TB_TUNEBENCH_EXE, TB_TUNEBENCH_EXE, "run-job", tmp_path("long.ini"), "--threads", "1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *p = fdopen(fds[0], "r");
    char buf[1024];
    int sent = 0, got_finished = 0;
    while (fgets(buf, sizeof buf, p)) {
        if (!sent && strstr(buf, "event epoch epoch=1 ")) {
            kill(pid, SIGTERM);
            sent = 1;
        }
        if (!strncmp(buf, "event finished", 14)) {
            ck_assert_int_eq(tb_job_line_parse(buf, &line), 0);
            ck_assert_int_eq(line.status, TB_RUN_INTERRUPTED);
            ck_assert_str_eq(line.message, "interrupted by SIGTERM");
            got_finished = 1;
        }
    }
    fclose(p);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 4, "exit status %d", status);
    ck_assert(sent && got_finished);
    ck_assert_msg(stat(tmp_path("long.h5"), &sb) == 0, "no run file after SIGTERM");
}
END_TEST

START_TEST(test_cli_sweep_and_train_folds)
{
    static char out[1 << 16];
    char ini[1200], cmd[4096];
    snprintf(ini, sizeof ini, "%s/toy.ini", tmpdir);
    tb_config *cfg = toy_config(NULL);
    char *text = tb_config_to_ini(cfg);
    write_file(ini, text);
    free(text);
    tb_config_free(cfg);

    snprintf(cmd, sizeof cmd, "'%s' sweep '%s' --grid train.lr=1e-2,1e-3 --archive '%s' --slots 2 --threads 1 2>&1",
             TB_TUNEBENCH_EXE, ini, archive_dir);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "[1/2] r0000") && strstr(out, "[2/2] r0000"), "%s", out);
    ck_assert_msg(strstr(out, "test accuracy: ") && strstr(out, " ± ") && strstr(out, "over 2 finished of 2 runs"),
                  "%s", out);
    ck_assert_msg(strstr(out, " 90-100% |") || strstr(out, "  0- 10% |"), "no histogram:\n%s", out);
    ck_assert_msg(strstr(out, "sweeps/s0001-grid.h5"), "%s", out);

    /* train --folds goes through the executor into the same archive */
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --folds 2 --archive '%s' 2>&1", TB_TUNEBENCH_EXE, ini, archive_dir);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "fold 0") && strstr(out, "fold 1") && strstr(out, "se "), "%s", out);
    struct stat sb;
    ck_assert(stat(tmp_path("archive/sweeps/s0002-folds.h5"), &sb) == 0);

    /* an archive is required */
    snprintf(cmd, sizeof cmd, "'%s' repeat '%s' --seeds 2 2>&1", TB_TUNEBENCH_EXE, ini);
    ck_assert_int_eq(run_capture(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--archive DIR"), "%s", out);
}
END_TEST

/* Whether the archive's index (rewritten and renamed into place, so always
 * complete) shows a run "training". */
static int index_shows_training(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/index.h5", archive_dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    int found = 0;
    if (H5Lexists(f, "index", H5P_DEFAULT) > 0 && H5Lexists(f, "index/status", H5P_DEFAULT) > 0) {
        size_t n;
        char **st = read_str(f, "index/status", &n);
        for (size_t i = 0; i < n; i++) found |= !strcmp(st[i], "training");
        free(st);
    }
    H5Fclose(f);
    return found;
}

START_TEST(test_cli_sweep_ctrl_c)
{
    char ini[1200];
    snprintf(ini, sizeof ini, "%s/toy.ini", tmpdir);
    tb_config *cfg = toy_config(NULL);
    tb_err err;
    ck_assert(tb_config_set(cfg, "train.epochs", "100000", &err) == TB_OK);
    char *text = tb_config_to_ini(cfg);
    write_file(ini, text);
    free(text);
    tb_config_free(cfg);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execl(TB_TUNEBENCH_EXE, TB_TUNEBENCH_EXE, "sweep", ini, "--grid", "train.lr=1e-2,1e-3,1e-4", "--archive",
              archive_dir, "--slots", "1", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    /* wait until the first run is training (the results file exists before any run starts) */
    const char *results = tmp_path("archive/sweeps/s0001-grid.h5");
    double t0 = tb_now();
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the index may be mid-rename: quiet retries */
    while (!index_shows_training()) {
        ck_assert_msg(tb_now() - t0 < 60, "no run started training");
        sleep_ms(20);
    }
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    struct stat sb;
    ck_assert(stat(results, &sb) == 0);
    sleep_ms(300);
    kill(pid, SIGINT);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 4, "exit status %d", status);
    hid_t f = open_results(results);
    size_t n;
    char **st = read_str(f, "runs/status", &n);
    ck_assert_int_eq((int)n, 3);
    for (int i = 0; i < 3; i++) ck_assert_str_eq(st[i], "interrupted");
    free(st);
    H5Fclose(f);
    /* the archive agrees and is not left locked */
    tb_archive *a;
    tb_archive_recovery rec;
    ck_assert_msg(tb_archive_open(archive_dir, 0, &a, &rec, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rec.interrupted, 0); /* closed cleanly, nothing left live */
    /* runs the signal caught before they were submitted are only in the results */
    size_t recorded = tb_archive_run_count(a);
    ck_assert(recorded >= 1 && recorded <= 3);
    for (size_t i = 0; i < recorded; i++) {
        tb_archive_run_info info;
        ck_assert(tb_archive_run_info_at(a, i, &info, &err) == TB_OK);
        ck_assert_int_eq(info.status, TB_RUN_INTERRUPTED);
    }
    ck_assert(tb_archive_close(a, &err) == TB_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweeps");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_grid_2x2);
    tcase_add_test(tc, test_bad_grid_refused_before_running);
    tcase_add_test(tc, test_grid_blames_the_right_key);
    tcase_add_test(tc, test_plan_seeds_and_sections);
    tcase_add_test(tc, test_random_is_deterministic);
    tcase_add_test(tc, test_folds_mean_and_se);
    tcase_add_test(tc, test_repeat_distinct_seeds);
    tcase_add_test(tc, test_run_job_lines_and_exit_codes);
    tcase_add_test(tc, test_cli_sweep_and_train_folds);
    tcase_add_test(tc, test_cli_sweep_ctrl_c);
    suite_add_tcase(s, tc);
    return tbt_run(s);
}
