/* test_study.c: full studies driven through the front-end API (tb_study_api)
 * on a small learnable task: registration and its validation, consent, the
 * lobby, submissions (rejections naming field, value and range), live
 * progress, cancel, divergence, history, the final choice and its final
 * evaluations, budget exhaustion, closing and reopening (participants carry
 * on), and the tables of study.h5 read back with the HDF5 C API alone. */
#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "study/study.h"
#include "tb_test.h"

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static char tmpdir[512];
static char task_path[1024];

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "study");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    tbt_make_toy_task(task_path, 480, 120, 120, 4, 12, 7);
}

static void teardown(void)
{
    tbt_rm_rf(tmpdir);
}

/* A study over the toy task; extra_study: more [study] lines. */
static tb_config *study_config(const char *archive, const char *extra_study)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\ntitle = toy study\narchive = %s/%s\nfinal_seeds = 11,12\nslots = 2\n%s\n"
             "[space]\nepochs = int 1 1000\nbatch_size = int 1 100000 log\nlr = float 1e-6 1000 log\n",
             tmpdir, archive, extra_study ? extra_study : "");
    /* the toy config's [train] has epochs etc.: in a study they are presets */
    const char *text = tbt_toy_config(task_path, extra);
    tb_config *cfg = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_config_load_text(&cfg, text, "study.ini", &err) == TB_OK, "%s", err.msg);
    return cfg;
}

static tb_study *open_study(tb_config *cfg, tb_study_recovery *rec)
{
    tb_study *s = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_study_open(cfg, NULL, &s, rec, &err) == TB_OK, "%s", err.msg);
    return s;
}

static void close_study(tb_study *s, int wait)
{
    tb_err err = {{0}};
    ck_assert_msg(tb_study_close(s, wait, &err) == TB_OK, "%s", err.msg);
}

static const char *reg(const tb_study_api *api, const char *id, const char *edu, double months)
{
    static char out[8][64];
    static int k;
    k = (k + 1) % 8;
    tb_fe_participant p = {.id = id, .education = edu, .dl_months = months, .programming_months = NAN,
                           .ml_months = NAN};
    char err[512] = "";
    ck_assert_msg(api->register_participant(api->study, &p, out[k], err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(api->consent(api->study, out[k], err, sizeof err) == TB_OK, "%s", err);
    return out[k];
}

static void enter(const tb_study_api *api, const char *id, int expect_admitted)
{
    char err[512] = "";
    int admitted = -1;
    ck_assert_msg(api->enter(api->study, id, &admitted, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(admitted, expect_admitted);
}

/* values[] from "key=value" pairs */
typedef struct subm {
    const char *v[TB_STUDY_HP_COUNT];
    const char *c[TB_STUDY_HP_COUNT];
} subm;

static void set(subm *m, const char *name, const char *value)
{
    int i = tb_hp_index(name);
    ck_assert_msg(i >= 0, "%s", name);
    m->v[i] = value;
}

static tb_status submit(const tb_study_api *api, const char *id, subm *m, char run[32], int *bad, char *err,
                        size_t errlen)
{
    return api->submit(api->study, id, m->v, m->c, run, bad, err, errlen);
}

static tb_fe_state state_of(const tb_study_api *api, const char *id)
{
    tb_fe_state st;
    char err[512];
    ck_assert_msg(api->state(api->study, id, &st, err, sizeof err) == TB_OK, "%s", err);
    return st;
}

/* ---- reading study.h5 ---------------------------------------------------------------------- */

static int h5_strings(const char *file, const char *path, char out[][64], int max)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    ck_assert(n >= 0 && n <= max);
    char **v = calloc((size_t)n + 1, sizeof *v);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    if (n > 0) ck_assert(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    for (hssize_t i = 0; i < n; i++) snprintf(out[i], 64, "%s", v[i] ? v[i] : "");
    if (n > 0) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (int)n;
}

static int h5_f64(const char *file, const char *path, double *out, int max)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s has no %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    ck_assert(n >= 0 && n <= max);
    if (n > 0) ck_assert(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (int)n;
}

/* ---- tests ------------------------------------------------------------------------------------ */

/* Machine participants (a tuner front end's): their own ids and education, consented at once; people
 * cannot claim the education. */
START_TEST(machines_register_as_machines)
{
    tb_config *cfg = study_config("machines", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    ck_assert_uint_ge(api->size, offsetof(tb_study_api, register_machine) + sizeof api->register_machine);
    ck_assert_int_ge(api->version, 4);
    char id[64], id2[64], err[512];
    ck_assert_msg(api->register_machine(api->study, "random", id, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_str_eq(id, "tuner-random-1");
    ck_assert_msg(api->register_machine(api->study, "random", id2, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_str_eq(id2, "tuner-random-2");
    tb_fe_state st;
    ck_assert(api->participant_info(api->study, id, &st, sizeof st, err, sizeof err) == TB_OK);
    ck_assert_str_eq(st.education, "machine");
    ck_assert_str_eq(st.state, "consented");
    ck_assert(isnan(st.dl_months));
    int admitted = -1;
    ck_assert_msg(api->enter(api->study, id, &admitted, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(admitted, 1);
    ck_assert_int_eq(api->register_machine(api->study, "no spaces", id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "strategy") && strstr(err, "no spaces"), "%s", err);
    tb_fe_participant person = {.education = "machine", .dl_months = 3, .programming_months = NAN, .ml_months = NAN};
    ck_assert_int_eq(api->register_participant(api->study, &person, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "machine") && strstr(err, "doctorate"), "%s", err);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

START_TEST(registration_is_validated)
{
    tb_config *cfg = study_config("reg", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    ck_assert_int_eq(api->version, TB_STUDY_API_VERSION);
    ck_assert_uint_eq(api->size, sizeof(tb_study_api));
    char err[512], id[64];
    tb_fe_participant p = {.id = "ok", .education = "astronaut", .dl_months = 3, .programming_months = NAN,
                           .ml_months = NAN};
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "education = \"astronaut\"") && strstr(err, "master_enrolled"), "%s", err);
    p.education = "master";
    p.dl_months = -1;
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "dl_months = -1") && strstr(err, "[0, 1200]"), "%s", err);
    p.dl_months = NAN;
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    p.dl_months = 5;
    p.self_level = 9;
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "self_level = 9"), "%s", err);
    p.self_level = 3;
    p.id = "bad id";
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "id = \"bad id\""), "%s", err);
    p.id = "alice";
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_OK);
    ck_assert_str_eq(id, "alice");
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "taken"), "%s", err);
    p.id = NULL; /* the study assigns a pseudonym */
    ck_assert_int_eq(api->register_participant(api->study, &p, id, err, sizeof err), TB_OK);
    ck_assert_str_eq(id, "p002");
    /* nothing before consent */
    int admitted;
    ck_assert_int_eq(api->enter(api->study, "alice", &admitted, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "consent"), "%s", err);
    ck_assert_int_eq(api->enter(api->study, "nobody", &admitted, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "nobody"), "%s", err);
    /* hyperparameters as front ends show them */
    tb_fe_hp hp;
    ck_assert_int_eq(api->hp_info(api->study, 0, &hp), 0);
    ck_assert_str_eq(hp.name, "epochs");
    ck_assert(hp.mandatory);
    ck_assert(hp.lo == 1 && hp.hi == 1000);
    ck_assert_int_eq(api->hp_info(api->study, 15, &hp), -1);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

START_TEST(a_participant_tunes_and_finishes)
{
    /* in this process: the check below watches epoch 1 while epoch 2 trains, which on the toy task lasts
     * milliseconds; a child process may have trained both before the study reads either (its lines then
     * arrive together: still epoch by epoch, but too fast to watch on a loaded machine) */
    tb_config *cfg = study_config("flow", "executor = threads");
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    const char *p1 = reg(api, "p1", "master", 14);
    char err[512], run[32], run2[32], run3[32];
    int bad;
    subm m = {0};
    /* not admitted yet */
    set(&m, "epochs", "2");
    set(&m, "batch_size", "32");
    set(&m, "loss", "cross_entropy");
    set(&m, "optimizer", "adam");
    ck_assert_int_eq(submit(api, p1, &m, run, &bad, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "enter"), "%s", err);
    enter(api, p1, 1);

    /* rejections name the field, the value and what is allowed; each is recorded */
    struct {
        const char *name, *value, *expect;
    } bads[] = {
        {"lr", "nan", "lr = nan"},           {"lr", "2000", "lr = 2000"},
        {"epochs", "2.5", "epochs = 2.5"},   {"epochs", "2000", "epochs = 2000"},
        {"batch_size", "100000", "training set"}, {"optimizer", "adamw", "optimizer = adamw"},
        {"momentum", "inf", "momentum = inf"},
    };
    for (size_t k = 0; k < TB_ARRAY_LEN(bads); k++) {
        subm b = m;
        set(&b, bads[k].name, bads[k].value);
        ck_assert_int_eq(submit(api, p1, &b, run, &bad, err, sizeof err), TB_EINVAL);
        ck_assert_msg(strstr(err, bads[k].expect), "%s = %s: %s", bads[k].name, bads[k].value, err);
        ck_assert_int_eq(bad, tb_hp_index(bads[k].name));
        ck_assert_str_eq(run, "");
    }
    subm missing = m;
    missing.v[tb_hp_index("optimizer")] = NULL;
    ck_assert_int_eq(submit(api, p1, &missing, run, &bad, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "optimizer") && strstr(err, "mandatory"), "%s", err);

    /* a good one, with comments */
    m.c[tb_hp_index("optimizer")] = "It is the suggested default value.";
    m.c[tb_hp_index("lr")] = "my own reason";
    set(&m, "lr", "0.01");
    ck_assert_msg(submit(api, p1, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert(run[0]);
    /* one live run at a time */
    ck_assert_int_eq(submit(api, p1, &m, run2, &bad, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, run), "%s", err);
    /* progress arrives epoch by epoch, then the outcome */
    int saw_epoch1 = 0;
    tb_fe_run r;
    double t0 = tb_now();
    for (;;) {
        ck_assert(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK);
        /* epoch 1 shown while epoch 2 trains: progress arrives epoch by epoch, not at the end */
        if (r.epoch == 1 && strcmp(r.status, "training") == 0) saw_epoch1 = 1;
        if (!strcmp(r.status, "finished") || tb_now() - t0 > 120) break;
        api->wait(api->study, run, r.seq, 100);
    }
    ck_assert_str_eq(r.status, "finished");
    ck_assert_int_eq(r.epoch, 2);
    ck_assert_int_eq(r.epochs, 2);
    ck_assert_msg(saw_epoch1, "epoch 1 was never shown while the run was training");
    ck_assert_msg(r.val_accuracy > 0.5, "val accuracy %.3f on the toy task", r.val_accuracy);
    ck_assert_str_eq(r.values[tb_hp_index("lr")], "0.01");
    ck_assert_str_eq(r.values[tb_hp_index("beta1")], "0.9"); /* preset */

    /* a diverging one */
    subm d = m;
    set(&d, "optimizer", "sgd");
    set(&d, "lr", "1000");
    set(&d, "momentum", "0.9");
    ck_assert_msg(submit(api, p1, &d, run2, &bad, err, sizeof err) == TB_OK, "%s", err);
    r = tbt_wait_run_end(api, run2, 120);
    ck_assert_str_eq(r.status, "diverged");

    /* a cancelled one: long enough to cancel mid-way */
    subm c = m;
    set(&c, "epochs", "4");
    set(&c, "batch_size", "1");
    ck_assert_msg(submit(api, p1, &c, run3, &bad, err, sizeof err) == TB_OK, "%s", err);
    do {
        ck_assert(api->run_state(api->study, run3, &r, err, sizeof err) == TB_OK);
        if (strcmp(r.status, "training") == 0 && r.batch >= 5) break;
        api->wait(api->study, run3, r.seq, 100);
    } while (strcmp(r.status, "finished"));
    ck_assert_int_eq(api->cancel(api->study, p1, run3, err, sizeof err), TB_OK);
    r = tbt_wait_run_end(api, run3, 60);
    ck_assert_str_eq(r.status, "cancelled");
    ck_assert_msg(strstr(r.message, "cancelled by the participant"), "%s", r.message);

    /* the history has every submission with its status, rejections included */
    int n = api->history_count(api->study, p1);
    ck_assert_int_eq(n, (int)TB_ARRAY_LEN(bads) + 1 + 3);
    tb_fe_run h;
    ck_assert(api->history_at(api->study, p1, 0, &h, err, sizeof err) == TB_OK);
    ck_assert_str_eq(h.status, "rejected");
    ck_assert_msg(strstr(h.message, "lr = nan"), "%s", h.message);
    ck_assert_str_eq(h.values[tb_hp_index("lr")], "nan"); /* as given */
    ck_assert(api->history_at(api->study, p1, n - 1, &h, err, sizeof err) == TB_OK);
    ck_assert_str_eq(h.run_id, run3);
    ck_assert_int_eq(api->history_at(api->study, p1, n, &h, err, sizeof err), TB_EINVAL);

    tb_fe_state st = state_of(api, p1);
    ck_assert_str_eq(st.state, "active");
    ck_assert(st.used_s > 0 && st.left_s < st.budget_s && st.left_s > 0);
    ck_assert_int_eq(st.submissions, n);

    /* finishing with the best (the only finished run) queues the two final seeds */
    ck_assert_msg(api->finish(api->study, p1, NULL, err, sizeof err) == TB_OK, "%s", err);
    st = state_of(api, p1);
    ck_assert_str_eq(st.state, "done");
    ck_assert_str_eq(st.final_run, run);
    ck_assert_str_eq(st.final_reason, "chosen");
    ck_assert_int_eq(st.finals_total, 2);
    ck_assert_int_eq(api->submit(api->study, p1, m.v, m.c, run2, &bad, err, sizeof err), TB_EINVAL);
    tbt_wait_finals(api, p1, 120);
    st = state_of(api, p1);
    ck_assert_msg(st.final_mean > 0.5 && st.final_mean <= 1, "final mean %.3f", st.final_mean);
    ck_assert(st.final_sd >= 0);
    double used_at_end = st.used_s;
    sleep_us(300000);
    ck_assert(fabs(state_of(api, p1).used_s - used_at_end) < 1e-9); /* the clock stopped */
    close_study(s, 1);

    /* the tables, with nothing but HDF5 */
    char path[1200], col[64][64];
    double v[64];
    snprintf(path, sizeof path, "%s/flow/study.h5", tmpdir);
    ck_assert_int_eq(h5_strings(path, "/participants/id", col, 64), 1);
    ck_assert_str_eq(col[0], "p1");
    ck_assert_int_eq(h5_strings(path, "/participants/education", col, 64), 1);
    ck_assert_str_eq(col[0], "master");
    ck_assert_int_eq(h5_f64(path, "/participants/dl_months", v, 64), 1);
    ck_assert(v[0] == 14);
    ck_assert_int_eq(h5_f64(path, "/participants/final_test_accuracy_mean", v, 64), 1);
    ck_assert(fabs(v[0] - st.final_mean) < 1e-12);
    int ns = h5_strings(path, "/submissions/status", col, 64);
    ck_assert_int_eq(ns, n);
    ck_assert_str_eq(col[0], "rejected");
    ck_assert_str_eq(col[n - 3], "finished");
    ck_assert_str_eq(col[n - 2], "diverged");
    ck_assert_str_eq(col[n - 1], "cancelled");
    ck_assert_int_eq(h5_f64(path, "/submissions/lr", v, 64), n);
    ck_assert(isnan(v[0])); /* the rejected "nan" reads back as NaN */
    ck_assert(v[n - 3] == 0.01);
    ck_assert_int_eq(h5_strings(path, "/submissions/comment_optimizer", col, 64), n);
    ck_assert_str_eq(col[n - 3], "It is the suggested default value.");
    ck_assert_int_eq(h5_strings(path, "/finals/status", col, 64), 2);
    ck_assert_str_eq(col[0], "finished");
    ck_assert_str_eq(col[1], "finished");
    ck_assert_int_eq(h5_f64(path, "/finals/seed", v, 64), 2);
    ck_assert(v[0] == 11 && v[1] == 12);
    ck_assert(h5_strings(path, "/events/type", col, 64) > 10);
    tb_config_free(cfg);
}
END_TEST

START_TEST(the_lobby_admits_as_many_as_there_are_slots)
{
    tb_config *cfg = study_config("lobby", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    const char *a = reg(api, "a", "bachelor", 0), *b = reg(api, "b", "doctorate", 40), *c = reg(api, "c", "master", 2);
    enter(api, a, 1);
    enter(api, b, 1);
    enter(api, c, 0); /* two slots, two admitted */
    tb_fe_state st = state_of(api, c);
    ck_assert_str_eq(st.state, "lobby");
    ck_assert_int_eq(st.lobby_position, 1);
    sleep_us(200000);
    ck_assert(state_of(api, c).used_s == 0); /* lobby time is not counted */
    char err[512];
    ck_assert_int_eq(api->pause(api->study, a, err, sizeof err), TB_OK);
    ck_assert_str_eq(state_of(api, a).state, "paused");
    enter(api, c, 1);
    enter(api, a, 0); /* now a waits */
    /* the live tables say the same (rewritten within 2 s of a change) */
    char path[1200], col[8][64];
    snprintf(path, sizeof path, "%s/lobby/study.h5", tmpdir);
    sleep_us(2600000);
    ck_assert_int_eq(h5_strings(path, "/participants/state", col, 8), 3);
    ck_assert_str_eq(col[0], "lobby");
    ck_assert_str_eq(col[1], "active");
    ck_assert_str_eq(col[2], "active");
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

START_TEST(the_budget_runs_out)
{
    /* 3 s of budget; the first run finishes, the second is still training when time is up */
    tb_config *cfg = study_config("budget", "budget_minutes = 0.05");
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    const char *p = reg(api, "late", "high_school", 0);
    enter(api, p, 1);
    subm m = {0};
    set(&m, "epochs", "1");
    set(&m, "batch_size", "64");
    set(&m, "loss", "cross_entropy");
    set(&m, "optimizer", "adam");
    set(&m, "lr", "0.01");
    char run[32], run2[32], err[512];
    int bad;
    ck_assert_msg(submit(api, p, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run r = tbt_wait_run_end(api, run, 60);
    ck_assert_str_eq(r.status, "finished");
    set(&m, "epochs", "1000");
    set(&m, "batch_size", "1");
    ck_assert_msg(submit(api, p, &m, run2, &bad, err, sizeof err) == TB_OK, "%s", err);
    r = tbt_wait_run_end(api, run2, 60);
    ck_assert_str_eq(r.status, "cancelled");
    ck_assert_msg(strstr(r.message, "budget"), "%s", r.message);
    tb_fe_state st = state_of(api, p);
    ck_assert_str_eq(st.state, "done");
    ck_assert_str_eq(st.final_reason, "budget");
    ck_assert_str_eq(st.final_run, run);
    ck_assert(st.left_s == 0);
    ck_assert_int_eq(api->submit(api->study, p, m.v, m.c, run2, &bad, err, sizeof err), TB_EINVAL);
    tbt_wait_finals(api, p, 120);
    close_study(s, 1);
    tb_config_free(cfg);
}
END_TEST

START_TEST(reopening_continues_the_study)
{
    tb_config *cfg = study_config("reopen", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    const char *p = reg(api, "carol", "master_enrolled", 6);
    enter(api, p, 1);
    subm m = {0};
    set(&m, "epochs", "1");
    set(&m, "batch_size", "32");
    set(&m, "loss", "nll");
    set(&m, "optimizer", "rmsprop");
    set(&m, "lr", "0.001");
    char run[32], run2[32], err[512];
    int bad;
    ck_assert_msg(submit(api, p, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run first = tbt_wait_run_end(api, run, 60);
    ck_assert_str_eq(first.status, "finished");
    /* a second run left live when the study closes ends interrupted, its time given back */
    set(&m, "epochs", "4");
    set(&m, "batch_size", "1");
    ck_assert_msg(submit(api, p, &m, run2, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run r;
    do {
        ck_assert(api->run_state(api->study, run2, &r, err, sizeof err) == TB_OK);
        api->wait(api->study, run2, r.seq, 100);
    } while (!(strcmp(r.status, "training") == 0 && r.batch >= 3));
    double used_before = state_of(api, p).used_s;
    close_study(s, 0);

    /* a second process cannot open it while it is open: checked in test_study_crash; here reopen */
    tb_study_recovery rec;
    s = open_study(cfg, &rec);
    api = tb_study_api_get(s);
    ck_assert_int_eq(rec.participants, 1);
    tb_fe_state st = state_of(api, p);
    ck_assert_str_eq(st.state, "paused");
    ck_assert_int_eq(st.submissions, 2);
    ck_assert_msg(st.used_s < used_before, "used %.3f s before, %.3f s after (interrupted time given back)",
                  used_before, st.used_s);
    ck_assert(api->run_state(api->study, run, &r, err, sizeof err) == TB_OK);
    ck_assert_str_eq(r.status, "finished");
    ck_assert(fabs(r.val_accuracy - first.val_accuracy) < 1e-12);
    ck_assert(api->run_state(api->study, run2, &r, err, sizeof err) == TB_OK);
    ck_assert_str_eq(r.status, "interrupted");
    /* she carries on */
    enter(api, p, 1);
    set(&m, "epochs", "1");
    set(&m, "batch_size", "64");
    ck_assert_msg(submit(api, p, &m, run2, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_str_eq(tbt_wait_run_end(api, run2, 60).status, "finished");
    ck_assert_int_eq(api->history_count(api->study, p), 3);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

/* A crashed study's clock stops at its last sign of life (a heartbeat every
 * 2 s), not when it is reopened: the participant is not charged for the time
 * the study was down. */
START_TEST(a_crash_stops_the_clock_at_the_last_heartbeat)
{
    tb_config *cfg = study_config("crash_clock", NULL);
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) { /* the study process: admitted, alive for 2.6 s, then it dies without closing */
        close(fds[0]);
        tb_study *s = NULL;
        tb_err e = {{0}};
        if (tb_study_open(cfg, NULL, &s, NULL, &e) != TB_OK) _exit(2);
        const tb_study_api *api = tb_study_api_get(s);
        tb_fe_participant who = {.id = "dora", .education = "master", .dl_months = 3, .programming_months = NAN,
                                 .ml_months = NAN};
        char id[64], msg[512];
        int admitted = 0;
        if (api->register_participant(api->study, &who, id, msg, sizeof msg) != TB_OK ||
            api->consent(api->study, id, msg, sizeof msg) != TB_OK ||
            api->enter(api->study, id, &admitted, msg, sizeof msg) != TB_OK || !admitted)
            _exit(3);
        if (write(fds[1], id, sizeof id) != (ssize_t)sizeof id) _exit(4);
        sleep_us(2600000);
        _exit(0);
    }
    close(fds[1]);
    char id[64] = "";
    ck_assert(read(fds[0], id, sizeof id) == (ssize_t)sizeof id);
    close(fds[0]);
    int status = 0;
    ck_assert(waitpid(child, &status, 0) == child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the study process failed (%d)", status);
    sleep_us(3000000); /* the study is down for 3 s */

    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    tb_fe_state st = state_of(api, id);
    ck_assert_str_eq(st.state, "paused");
    /* admitted for about 2.6 s, last heartbeat at about 2 s; down for 3 s more */
    ck_assert_msg(st.used_s >= 1.5 && st.used_s <= 2.7, "charged %.2f s; the last heartbeat was at about 2 s",
                  st.used_s);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

/* A value the participant set that the chosen optimizer does not read is
 * accepted, ignored, and said (submission_note); presets are not. */
START_TEST(ignored_values_are_noted_not_refused)
{
    tb_config *cfg = study_config("note", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    ck_assert_int_ge((int)api->version, 2);
    const char *p = reg(api, "erin", "master", 12);
    enter(api, p, 1);
    subm m = {0};
    set(&m, "epochs", "1");
    set(&m, "batch_size", "64");
    set(&m, "loss", "nll");
    set(&m, "optimizer", "adam");
    set(&m, "momentum", "0.9"); /* adam does not read it */
    set(&m, "rho", "0.9");      /* nor this, but 0.9 is its preset */
    char run[32], err[512], note[512];
    int bad;
    ck_assert_msg(submit(api, p, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(api->submission_note(api->study, run, note, sizeof note), 1);
    ck_assert_str_eq(note, "optimizer adam does not read momentum = 0.9: it is ignored");
    ck_assert_str_eq(tbt_wait_run_end(api, run, 60).status, "finished");
    set(&m, "momentum", "0");
    ck_assert_msg(submit(api, p, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(api->submission_note(api->study, run, note, sizeof note), 0);
    ck_assert_str_eq(note, "");
    ck_assert_int_eq(api->submission_note(api->study, "no-such-run", note, sizeof note), 0);
    tbt_wait_run_end(api, run, 60);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

START_TEST(identical_configurations_give_identical_runs)
{
    /* the same seed for everyone: two participants submitting the same values get the same curve */
    tb_config *cfg = study_config("same", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    const char *a = reg(api, "x", "bachelor", 1), *b = reg(api, "y", "doctorate", 50);
    enter(api, a, 1);
    enter(api, b, 1);
    subm m = {0};
    set(&m, "epochs", "1");
    set(&m, "batch_size", "16");
    set(&m, "loss", "cross_entropy");
    set(&m, "optimizer", "sgd");
    set(&m, "lr", "0.05");
    set(&m, "momentum", "0.9");
    char ra[32], rb[32], err[512];
    int bad;
    ck_assert_msg(submit(api, a, &m, ra, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_msg(submit(api, b, &m, rb, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run x = tbt_wait_run_end(api, ra, 60), y = tbt_wait_run_end(api, rb, 60);
    ck_assert_str_eq(x.status, "finished");
    ck_assert_str_eq(y.status, "finished");
    ck_assert_msg(x.epoch_loss == y.epoch_loss && x.val_accuracy == y.val_accuracy,
                  "loss %.9g vs %.9g, accuracy %.6f vs %.6f", x.epoch_loss, y.epoch_loss, x.val_accuracy,
                  y.val_accuracy);
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

START_TEST(bad_study_configurations_are_refused)
{
    tb_err err = {{0}};
    tb_study *s = NULL;
    tb_config *cfg = study_config("bad", "budget_minutes = -3");
    ck_assert_int_eq(tb_study_open(cfg, NULL, &s, NULL, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "study.budget_minutes") && strstr(err.msg, "-3"), "%s", err.msg);
    tb_config_free(cfg);
    cfg = study_config("bad", "final_seed = 1");
    ck_assert_int_eq(tb_study_open(cfg, NULL, &s, NULL, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "final_seeds"), "did you mean: %s", err.msg);
    tb_config_free(cfg);
    cfg = study_config("bad", NULL);
    ck_assert(tb_config_set(cfg, "hdf5.path", "/nonexistent/toy.h5", &err) == TB_OK);
    ck_assert_int_ne(tb_study_open(cfg, NULL, &s, NULL, &err), TB_OK);
    ck_assert_msg(strstr(err.msg, "/nonexistent/toy.h5"), "%s", err.msg);
    tb_config_free(cfg);
    /* nothing was created for a study that did not open */
    char path[1200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/bad", tmpdir);
    ck_assert_int_ne(stat(path, &sb), 0);
}
END_TEST


/* The archive directory is made with its parents (mkdir -p), before any data
 * loads: a path that cannot be made is the error even when the data is
 * missing too; what was made is taken back when the study does not open. */
START_TEST(the_archive_directory_is_made_with_its_parents_first)
{
    char path[1200];
    struct stat sb;
    tb_config *cfg = study_config("deep/er/archive", NULL);
    tb_study *s = open_study(cfg, NULL);
    close_study(s, 0);
    tb_config_free(cfg);
    snprintf(path, sizeof path, "%s/deep/er/archive/runs", tmpdir);
    ck_assert_msg(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "%s", path);

    /* a parent that is a file: the archive's error, not the (also missing) data's */
    snprintf(path, sizeof path, "%s/plainfile", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    tb_err err = {{0}};
    s = NULL;
    cfg = study_config("plainfile/archive", NULL);
    ck_assert(tb_config_set(cfg, "hdf5.path", "/nonexistent/toy.h5", &err) == TB_OK);
    ck_assert_int_eq(tb_study_open(cfg, NULL, &s, NULL, &err), TB_EIO);
    ck_assert_ptr_null(s);
    char want[1400];
    snprintf(want, sizeof want, "archive %s/plainfile/archive: cannot create the directory: Not a directory", tmpdir);
    ck_assert_str_eq(err.msg, want);
    tb_config_free(cfg);

    /* made, then the data fails to load: the directories made are removed again */
    cfg = study_config("made/then/removed", NULL);
    ck_assert(tb_config_set(cfg, "hdf5.path", "/nonexistent/toy.h5", &err) == TB_OK);
    ck_assert_int_ne(tb_study_open(cfg, NULL, &s, NULL, &err), TB_OK);
    TBT_ASSERT_HAS(err.msg, "/nonexistent/toy.h5");
    tb_config_free(cfg);
    snprintf(path, sizeof path, "%s/made", tmpdir);
    ck_assert_int_ne(stat(path, &sb), 0);
}
END_TEST

/* The whole thing through the executable: `tunebench study` with the cli
 * front end and a script with two interleaved participants, then
 * `tunebench export`, both read back with HDF5 alone. */
START_TEST(scripted_study_through_the_executable)
{
    char cfg_path[1100], script[1100], out[1100], log[1100], cmd[5000];
    snprintf(cfg_path, sizeof cfg_path, "%s/study.ini", tmpdir);
    snprintf(script, sizeof script, "%s/session.txt", tmpdir);
    snprintf(out, sizeof out, "%s/export.h5", tmpdir);
    snprintf(log, sizeof log, "%s/session.log", tmpdir);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\narchive = %s/cli\nfinal_seeds = 5,6,7\nslots = 2\n"
             "[space]\nepochs = int 1 3\nlr = float 1e-6 1000 log\n[cli]\noutput = %s\n",
             tmpdir, log);
    FILE *f = fopen(cfg_path, "w");
    ck_assert(f);
    fputs(tbt_toy_config(task_path, extra), f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert(f);
    fputs("register id=ann education=bachelor dl_months=0\n"
          "consent\n"
          "register id=bob education=doctorate dl_months=48 programming_months=120 self_level=5\n"
          "consent\n"
          "as ann\nenter\n"
          "submit epochs=9 batch_size=16 loss=cross_entropy optimizer=adam\n"
          "expect submission rejected\n"
          "submit epochs=2 batch_size=16 loss=cross_entropy optimizer=adam lr=0.01 comment.lr=1\n"
          "as bob\nenter\n"
          "submit epochs=1 batch_size=8 loss=cross_entropy optimizer=sgd lr=900 momentum=0.9\n"
          "wait\nexpect status diverged\n"
          "submit epochs=3 batch_size=1 loss=cross_entropy optimizer=sgd lr=0.01\n"
          "wait epoch=1\ncancel\nwait\nexpect status cancelled\n"
          "submit epochs=2 batch_size=32 loss=nll optimizer=rmsprop lr=0.001 comment.optimizer=\"I like it\"\n"
          "wait\nexpect status finished\n"
          "as ann\nwait\nexpect status finished\nexpect val_accuracy >=50\n"
          "history\nfinish best\nwait-finals\nexpect finals_done 3\n"
          "as bob\nfinish\nexpect state done\n"
          "participants\nadmission stopped\n"
          "expect-rejected register id=cy education=master dl_months=1\n"
          "admission open\nregister id=cy education=master dl_months=1\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' study '%s' --script '%s' > '%s/stdout.txt' 2>&1", TB_TUNEBENCH_EXE, cfg_path,
             script, tmpdir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/stdout.txt' '%s'", tmpdir, log);
        if (system(cmd) != 0) fprintf(stderr, "cannot show the output\n");
    }
    ck_assert_msg(rc == 0, "tunebench study exited with %d (output above)", rc);
    /* the organiser's commands: the table, and admission stopped then open again */
    static char said[1 << 16];
    f = fopen(log, "r");
    ck_assert(f);
    said[fread(said, 1, sizeof said - 1, f)] = '\0';
    fclose(f);
    TBT_ASSERT_HAS(said, "2 participants (0 active, 0 in the lobby, 2 done)");
    TBT_ASSERT_HAS(said, "admission stopped: no new participants");
    TBT_ASSERT_HAS(said, "not admitting new participants");

    char path[1200], col[64][64];
    double v[64];
    snprintf(path, sizeof path, "%s/cli/study.h5", tmpdir);
    ck_assert_int_eq(h5_strings(path, "/participants/id", col, 64), 3);
    ck_assert_str_eq(col[0], "ann");
    ck_assert_str_eq(col[1], "bob");
    ck_assert_str_eq(col[2], "cy");
    ck_assert_int_eq(h5_f64(path, "/participants/programming_months", v, 64), 3);
    ck_assert(isnan(v[0]) && v[1] == 120);
    ck_assert_int_eq(h5_strings(path, "/participants/final_reason", col, 64), 3);
    ck_assert_str_eq(col[0], "chosen");
    ck_assert_int_eq(h5_strings(path, "/submissions/status", col, 64), 5);
    ck_assert_str_eq(col[0], "rejected");
    ck_assert_str_eq(col[1], "finished");
    ck_assert_str_eq(col[2], "diverged");
    ck_assert_str_eq(col[3], "cancelled");
    ck_assert_str_eq(col[4], "finished");
    ck_assert_int_eq(h5_strings(path, "/submissions/comment_lr", col, 64), 5);
    ck_assert_str_eq(col[1], "It is just a guess.");
    ck_assert_int_eq(h5_strings(path, "/submissions/comment_optimizer", col, 64), 5);
    ck_assert_str_eq(col[4], "I like it");
    ck_assert_int_eq(h5_strings(path, "/finals/status", col, 64), 6);
    for (int i = 0; i < 6; i++) ck_assert_str_eq(col[i], "finished");

    snprintf(cmd, sizeof cmd, "'%s' export '%s/cli' --single-file '%s' > /dev/null", TB_TUNEBENCH_EXE, tmpdir, out);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(h5_strings(out, "/participants/id", col, 64), 3);
    ck_assert_int_eq(h5_strings(out, "/submissions/run_id", col, 64), 5);
    /* each run's curves are inside, under the run id the submissions table names */
    char curve[128];
    snprintf(curve, sizeof curve, "/runs/%s/curves/epoch/val_accuracy", col[1]);
    ck_assert_int_eq(h5_f64(out, curve, v, 64), 2);
    ck_assert(v[1] > 0.5);
    /* and its run file: test metrics, confusion matrix, weights, attributes */
    char run[64];
    snprintf(run, sizeof run, "%s", col[1]);
    hid_t xf = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(xf >= 0);
    char obj[256];
    snprintf(obj, sizeof obj, "/runs/%s/run/test", run);
    hid_t g = H5Gopen2(xf, obj, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "%s is missing", obj);
    double acc = -1;
    hid_t a = H5Aopen(g, "accuracy", H5P_DEFAULT);
    ck_assert(a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &acc) >= 0);
    ck_assert(acc >= 0 && acc <= 1);
    H5Aclose(a);
    H5Gclose(g);
    snprintf(obj, sizeof obj, "/runs/%s/run/model", run);
    g = H5Gopen2(xf, obj, H5P_DEFAULT);
    ck_assert_msg(g >= 0 && H5Aexists(g, "plugin") > 0, "%s@plugin is missing", obj);
    H5Gclose(g);
    snprintf(obj, sizeof obj, "/runs/%s/run/checkpoint/params", run);
    g = H5Gopen2(xf, obj, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "%s is missing", obj);
    H5G_info_t info;
    ck_assert(H5Gget_info(g, &info) >= 0 && info.nlinks > 0);
    H5Gclose(g);
    /* one schema per name: the archive's batch curve (step, loss), the run
     * file's under curves/batch_detail, and no run/curves */
    snprintf(obj, sizeof obj, "/runs/%s/curves/batch", run);
    g = H5Gopen2(xf, obj, H5P_DEFAULT);
    ck_assert(g >= 0 && H5Gget_info(g, &info) >= 0);
    ck_assert_int_eq((int)info.nlinks, 2);
    H5Gclose(g);
    snprintf(obj, sizeof obj, "runs/%s/run/curves", run);
    ck_assert(H5Lexists(xf, obj, H5P_DEFAULT) == 0);
    snprintf(obj, sizeof obj, "runs/%s/curves/batch_detail/elapsed_s", run);
    ck_assert(H5Lexists(xf, "runs", H5P_DEFAULT) > 0);
    hid_t d = H5Dopen2(xf, obj, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s is missing", obj);
    H5Dclose(d);
    snprintf(obj, sizeof obj, "runs/%s/run/test/confusion", run);
    d = H5Dopen2(xf, obj, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s is missing", obj);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    ck_assert(H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2);
    ck_assert(dims[0] >= 2 && dims[0] == dims[1]);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(xf);
    ck_assert_int_eq(h5_strings(out, "/index/kind", col, 64), 4 + 6);
}
END_TEST

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* A rewrite of study.h5 that cannot be written fails saying what it could not
 * write and in which file, and leaves the study.h5 written before in place.
 * The failure is a file size limit in a child (SIGXFSZ ignored, so writes past
 * it fail with EFBIG): above the journal, which close appends to first, and
 * below the size study.h5 had when the study opened. */
START_TEST(a_table_write_that_fails_says_what_failed)
{
    tb_config *cfg = study_config("full", NULL);
    char dir[1100], journal[1200], tables[1200], tmp[1200];
    snprintf(dir, sizeof dir, "%s/full", tmpdir);
    snprintf(journal, sizeof journal, "%s/study.journal", dir);
    snprintf(tables, sizeof tables, "%s/study.h5", dir);
    snprintf(tmp, sizeof tmp, "%s/study.h5.tmp", dir);
    int fds[2];
    ck_assert(pipe(fds) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char out[1024] = "";
        int code = 0;
        tb_study *s = NULL;
        tb_err err = {{0}};
        if (tb_study_open(cfg, NULL, &s, NULL, &err) != TB_OK) {
            snprintf(out, sizeof out, "open: %s", err.msg);
            code = 2;
        } else {
            off_t j = file_size(journal), t = file_size(tables);
            off_t limit = j + 8192; /* room for the close record and a heartbeat or two */
            struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
            if (j < 0 || t < limit + 4096) {
                snprintf(out, sizeof out, "journal %lld bytes, study.h5 %lld: no room for a limit between them",
                         (long long)j, (long long)t);
                code = 3;
            } else if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &rl) != 0) {
                snprintf(out, sizeof out, "cannot set the file size limit");
                code = 4;
            } else {
                H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the failures are expected: no HDF5 traces */
                tb_status st = tb_study_close(s, 0, &err);
                snprintf(out, sizeof out, "%s", err.msg);
                code = st == TB_EIO ? 0 : 5;
            }
        }
        ssize_t w = write(fds[1], out, strlen(out) + 1);
        (void)w;
        _exit(code); /* nothing else closed or freed: the parent checks what is on disk */
    }
    close(fds[1]);
    char msg[1024] = {0};
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert(got > 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child (status %d): %s", status, msg);
    /* "cannot close (flush) the file in DIR/study.h5.tmp (File too large)": HDF5 keeps tables
     * this small in memory until the close; "cannot write dataset /submissions/... in" where
     * it writes one out earlier */
    char where[1300];
    snprintf(where, sizeof where, " in %s (", tmp);
    ck_assert_msg(!strncmp(msg, "cannot ", 7) && strstr(msg, where), "%s", msg);
    ck_assert_msg(strstr(msg, "dataset /") || strstr(msg, "attribute ") || strstr(msg, "group /") ||
                      strstr(msg, "close (flush) the file"),
                  "%s", msg);
    ck_assert_msg(strstr(msg, "(File too large)"), "%s", msg);
    /* the temporary file is gone; the study.h5 of the open is still whole */
    ck_assert_int_eq((int)file_size(tmp), -1);
    char col[4][64];
    ck_assert_int_eq(h5_strings(tables, "/participants/id", col, 4), 0);
    tb_config_free(cfg);
}
END_TEST

/* Version 3 of the front ends' table: sized snapshots that older callers
 * can still use, curves that survive a reopen, the organiser's view and
 * controls. */
static int curve_of(const tb_study_api *api, const char *run, int kind, double *x, double *y, int cap)
{
    return api->curve(api->study, run, kind, 0, x, y, cap);
}

START_TEST(the_organiser_sees_the_study_and_curves_survive_a_reopen)
{
    tb_config *cfg = study_config("organiser", NULL);
    tb_study *s = open_study(cfg, NULL);
    const tb_study_api *api = tb_study_api_get(s);
    ck_assert_int_ge(api->version, 3);
    ck_assert_uint_eq(api->size, sizeof(tb_study_api));
    /* which optimizers read what: momentum is optimizer-specific, epochs is everyone's */
    ck_assert_str_eq(api->hp_readers(api->study, tb_hp_index("epochs")), "");
    const char *mom = api->hp_readers(api->study, tb_hp_index("momentum"));
    ck_assert_msg(strstr(mom, "sgd") && !strstr(mom, "adam"), "momentum read by \"%s\"", mom);
    ck_assert_ptr_null(api->hp_readers(api->study, TB_STUDY_HP_COUNT));
    ck_assert_int_eq(api->show_result(api->study), 0);
    tb_fe_hp hp;
    ck_assert_int_eq(api->hp_info(api->study, tb_hp_index("optimizer"), &hp), 0);
    ck_assert_int_eq(hp.type, TB_FE_HP_CHOICE);

    uint64_t seq0 = api->change_seq(api->study);
    ck_assert_int_eq(api->wait_change(api->study, seq0, 30), 0); /* nothing happened */
    const char *a = reg(api, "ana", "master", 12);
    const char *b = reg(api, "ben", "bachelor", 0);
    ck_assert_int_eq(api->wait_change(api->study, seq0, 30), 1);
    enter(api, a, 1);

    /* sized snapshots: an older caller's struct is written only as far as it reaches */
    char err[512];
    struct { tb_fe_state st; unsigned char canary[64]; } big;
    memset(&big, 0xAB, sizeof big);
    ck_assert_msg(api->state(api->study, a, &big.st, err, sizeof err) == TB_OK, "%s", err);
    const unsigned char *tail = (const unsigned char *)&big.st + TB_FE_STATE_V2_SIZE;
    for (size_t i = 0; i < sizeof big.st - TB_FE_STATE_V2_SIZE; i++) ck_assert_uint_eq(tail[i], 0xAB);
    ck_assert_msg(api->participant_info(api->study, a, &big.st, sizeof big.st, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(big.st.state_code, TB_FE_ACTIVE);
    ck_assert_str_eq(big.st.education, "master");
    ck_assert(big.st.dl_months == 12 && isnan(big.st.programming_months));
    ck_assert(isnan(big.st.best_val_accuracy) && big.st.best_run[0] == '\0');
    for (size_t i = 0; i < sizeof big.canary; i++) ck_assert_uint_eq(big.canary[i], 0xAB);

    subm m = {0};
    set(&m, "epochs", "2");
    set(&m, "batch_size", "32");
    set(&m, "loss", "nll");
    set(&m, "optimizer", "sgd");
    set(&m, "lr", "0.01");
    m.c[tb_hp_index("lr")] = "It is just a guess.";
    char run[32];
    int bad;
    ck_assert_msg(submit(api, a, &m, run, &bad, err, sizeof err) == TB_OK, "%s", err);
    tb_fe_run end = tbt_wait_run_end(api, run, 60);
    ck_assert_str_eq(end.status, "finished");
    tb_fe_run ri;
    ck_assert_msg(api->run_info(api->study, run, &ri, sizeof ri, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(ri.status_code, TB_FE_RUN_FINISHED);
    ck_assert_str_eq(ri.participant, "ana");
    ck_assert_int_eq(ri.queue_position, 0);
    ck_assert(isfinite(ri.started_s) && isfinite(ri.ended_s) && ri.ended_s >= ri.started_s);
    ck_assert_int_eq(ri.given[tb_hp_index("lr")], 1);
    ck_assert_int_eq(ri.given[tb_hp_index("momentum")], 0);
    ck_assert_str_eq(ri.comments[tb_hp_index("lr")], "It is just a guess.");
    tb_fe_run hi;
    ck_assert(api->history_info(api->study, a, 0, &hi, sizeof hi, err, sizeof err) == TB_OK);
    ck_assert_str_eq(hi.run_id, run);
    ck_assert_str_eq(hi.participant, "ana");

    /* curves: every batch (480 images, batch 32: 15 a epoch) and both epochs */
    double x[64], y[64], x2[64], y2[64];
    ck_assert_int_eq(curve_of(api, run, TB_FE_CURVE_BATCH_LOSS, x, y, 64), 30);
    ck_assert_msg(x[0] == 1 && x[29] == 30 && isfinite(y[0]), "x %g..%g y0 %g", x[0], x[29], y[0]);
    ck_assert_int_eq(curve_of(api, run, TB_FE_CURVE_EPOCH_LOSS, x2, y2, 64), 2);
    ck_assert(x2[0] == 1 && x2[1] == 2);
    ck_assert_int_eq(curve_of(api, run, TB_FE_CURVE_VAL_ACCURACY, x2, y2, 64), 2);
    ck_assert(fabs(y2[1] - end.val_accuracy) < 1e-12);
    double px[4], py[4];
    ck_assert_int_eq(api->curve(api->study, run, TB_FE_CURVE_BATCH_LOSS, 28, px, py, 4), 30); /* 2 copied */
    ck_assert(px[0] == 29 && py[1] == y[29]);
    ck_assert_int_eq(api->curve(api->study, "r999999", TB_FE_CURVE_BATCH_LOSS, 0, px, py, 4), -1);
    ck_assert_int_eq(api->curve(api->study, run, 7, 0, px, py, 4), -1);

    /* the organiser's view */
    ck_assert_int_eq(api->participant_count(api->study), 2);
    tb_fe_state ps;
    ck_assert(api->participant_at(api->study, 1, &ps, sizeof ps, err, sizeof err) == TB_OK);
    ck_assert_str_eq(ps.id, "ben");
    ck_assert_int_eq(ps.state_code, TB_FE_CONSENTED);
    ck_assert_int_eq(api->participant_at(api->study, 2, &ps, sizeof ps, err, sizeof err), TB_EINVAL);
    ck_assert(api->participant_info(api->study, a, &ps, sizeof ps, err, sizeof err) == TB_OK);
    ck_assert_str_eq(ps.best_run, run);
    ck_assert_int_eq(ps.finished_runs, 1);
    tb_fe_counts c;
    api->counts(api->study, &c, sizeof c);
    ck_assert_int_eq(c.participants, 2);
    ck_assert_int_eq(c.by_state[TB_FE_ACTIVE], 1);
    ck_assert_int_eq(c.by_state[TB_FE_CONSENTED], 1);
    ck_assert_int_eq(c.runs_by_status[TB_FE_RUN_FINISHED], 1);
    ck_assert(c.admitting == 1 && c.closing == 0 && c.slots == 2);
    ck_assert_int_eq(api->live_runs(api->study, NULL, 0), 0);
    /* a long run is live: listed, then cancelled */
    set(&m, "epochs", "50");
    set(&m, "batch_size", "1");
    char run2[32], ids[4][32];
    ck_assert_msg(submit(api, a, &m, run2, &bad, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(api->live_runs(api->study, ids, 4), 1);
    ck_assert_str_eq(ids[0], run2);
    ck_assert_int_eq(api->cancel(api->study, a, run2, err, sizeof err), TB_OK);
    ck_assert_str_eq(tbt_wait_run_end(api, run2, 60).status, "cancelled");

    /* admission stops (journalled), then the study is closed */
    ck_assert_int_eq(api->set_admitting(api->study, 0, err, sizeof err), TB_OK);
    tb_fe_participant carl = {.id = "carl", .education = "master", .dl_months = 1, .programming_months = NAN,
                              .ml_months = NAN};
    char id[64];
    ck_assert_int_eq(api->register_participant(api->study, &carl, id, err, sizeof err), TB_EINVAL);
    ck_assert_msg(strstr(err, "not admitting"), "%s", err);
    char out[1200];
    snprintf(out, sizeof out, "%s/export.h5", tmpdir);
    ck_assert_msg(api->export_archive(api->study, out, err, sizeof err) == TB_OK, "%s", err);
    ck_assert_int_eq(access(out, R_OK), 0);
    ck_assert_int_eq(api->wait_close(api->study, 20), 0);
    ck_assert_int_eq(api->close_study(api->study, "closed by the test", err, sizeof err), TB_OK);
    ck_assert_int_eq(api->wait_close(api->study, 1000), 1);
    ck_assert_int_eq(api->wait_change(api->study, api->change_seq(api->study), 1000), 1); /* closing wakes it */
    api->counts(api->study, &c, sizeof c);
    ck_assert_int_eq(c.closing, 1);
    ck_assert_int_eq(api->enter(api->study, a, NULL, err, sizeof err), TB_EINVAL);
    close_study(s, 0);

    /* after a reopen: still not admitting, and the curves come back from the archive */
    s = open_study(cfg, NULL);
    api = tb_study_api_get(s);
    api->counts(api->study, &c, sizeof c);
    ck_assert_int_eq(c.admitting, 0);
    ck_assert_int_eq(api->register_participant(api->study, &carl, id, err, sizeof err), TB_EINVAL);
    double rx[64], ry[64];
    ck_assert(api->run_info(api->study, run, &ri, sizeof ri, err, sizeof err) == TB_OK);
    ck_assert_int_eq(ri.batches_per_epoch, 15); /* journalled with the run's end */
    ck_assert_int_eq(curve_of(api, run, TB_FE_CURVE_BATCH_LOSS, rx, ry, 64), 30);
    for (int i = 0; i < 30; i++) ck_assert(rx[i] == x[i] && ry[i] == y[i]);
    ck_assert_int_eq(curve_of(api, run, TB_FE_CURVE_VAL_ACCURACY, rx, ry, 64), 2);
    ck_assert(fabs(ry[1] - end.val_accuracy) < 1e-12);
    ck_assert_int_eq(api->set_admitting(api->study, 1, err, sizeof err), TB_OK);
    ck_assert_msg(api->register_participant(api->study, &carl, id, err, sizeof err) == TB_OK, "%s", err);
    (void)b;
    close_study(s, 0);
    tb_config_free(cfg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("study");
    TCase *tc = tcase_create("study");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, registration_is_validated);
    tcase_add_test(tc, machines_register_as_machines);
    tcase_add_test(tc, a_participant_tunes_and_finishes);
    tcase_add_test(tc, the_lobby_admits_as_many_as_there_are_slots);
    tcase_add_test(tc, the_budget_runs_out);
    tcase_add_test(tc, reopening_continues_the_study);
    tcase_add_test(tc, ignored_values_are_noted_not_refused);
    tcase_add_test(tc, a_crash_stops_the_clock_at_the_last_heartbeat);
    tcase_add_test(tc, identical_configurations_give_identical_runs);
    tcase_add_test(tc, bad_study_configurations_are_refused);
    tcase_add_test(tc, the_archive_directory_is_made_with_its_parents_first);
    tcase_add_test(tc, a_table_write_that_fails_says_what_failed);
    tcase_add_test(tc, scripted_study_through_the_executable);
    tcase_add_test(tc, the_organiser_sees_the_study_and_curves_survive_a_reopen);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
