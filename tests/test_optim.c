/* test_optim.c: core/engine/optim.c against torch.optim's single-tensor rules
 * (tests/fixtures/optim_loss.h5, written by tests/reference/gen_optim_loss.py),
 * plus validation messages, state slots and determinism. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optim.h"
#include "base/rng.h"
#include "tb_test.h"

#define FIXTURE "optim_loss.h5"

/* rtol 1e-5 is the engine's contract with torch. optim.c follows torch's float32
 * operation order (fused multiply-adds included), so in practice the trajectories
 * agree bit for bit; the atol 1e-7 only matters for a value that crosses zero
 * (parameter 0 starts at exactly 0), where any relative tolerance is meaningless;
 * parameters and state are O(0.01..1), so 1e-7 is below 1e-5 of them. */
#define RTOL 1e-5
#define ATOL 1e-7

static const tb_optim_kind all_kinds[] = {TB_OPT_SGD,      TB_OPT_ADAM,    TB_OPT_ADAGRAD,
                                          TB_OPT_ADADELTA, TB_OPT_RMSPROP, TB_OPT_ASGD};
#define N_KINDS ((int)(sizeof all_kinds / sizeof all_kinds[0]))

static double attr(const char *path, const char *name) { return tbt_read_attr(tbt_fixture(FIXTURE), path, name); }

static tb_optim_config read_config(tb_optim_kind kind, const char *path)
{
    tb_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = attr(path, "lr");
    c.weight_decay = attr(path, "weight_decay");
    c.momentum = attr(path, "momentum");
    c.dampening = attr(path, "dampening");
    c.nesterov = attr(path, "nesterov") != 0;
    c.beta1 = attr(path, "beta1");
    c.beta2 = attr(path, "beta2");
    c.amsgrad = attr(path, "amsgrad") != 0;
    c.eps = attr(path, "eps");
    c.lr_decay = attr(path, "lr_decay");
    c.initial_accumulator_value = attr(path, "initial_accumulator_value");
    c.rho = attr(path, "rho");
    c.alpha = attr(path, "alpha");
    c.centered = attr(path, "centered") != 0;
    c.lambd = attr(path, "lambd");
    c.t0 = attr(path, "t0");
    return c;
}

/* Number of datasets in a group of the fixture (the torch state keys). */
static int count_links(const char *path)
{
    hid_t f = H5Fopen(tbt_fixture(FIXTURE), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "fixture has no group %s", path);
    H5G_info_t info;
    ck_assert(H5Gget_info(g, &info) >= 0);
    H5Gclose(g);
    H5Fclose(f);
    return (int)info.nlinks;
}

/* One fixture configuration: six steps, parameters after each, final state. */
static void check_case(tb_optim_kind kind, int k)
{
    char path[96], ds[160], what[200];
    snprintf(path, sizeof path, "/optim/%s/c%d", tb_optim_name(kind), k);
    const char *file = tbt_fixture(FIXTURE);
    tb_optim_config cfg = read_config(kind, path);
    char msg[256];
    ck_assert_msg(tb_optim_validate(&cfg, msg, sizeof msg) == 0, "%s: %s", path, msg);
    size_t n = (size_t)attr(path, "n");
    int steps = (int)attr(path, "steps");

    snprintf(ds, sizeof ds, "%s/params0", path);
    float *params = tbt_read_f32(file, ds, NULL, NULL, NULL);
    snprintf(ds, sizeof ds, "%s/grads", path);
    float *grads = tbt_read_f32(file, ds, NULL, NULL, NULL);
    snprintf(ds, sizeof ds, "%s/params", path);
    float *expect = tbt_read_f32(file, ds, NULL, NULL, NULL);

    int slots = tb_optim_slots(&cfg);
    snprintf(ds, sizeof ds, "%s/state", path);
    ck_assert_msg(count_links(ds) == slots, "%s: torch keeps %d state tensors, tb_optim_slots says %d", path,
                  count_links(ds), slots);
    float *state = malloc(((size_t)slots * n + 1) * sizeof *state);
    ck_assert(state != NULL);
    tb_optim_scalars sc;
    tb_optim_init_state(&cfg, &sc, state, n);

    for (int s = 0; s < steps; s++) {
        tb_optim_step(&cfg, &sc, params, grads + (size_t)s * n, state, n);
        snprintf(what, sizeof what, "%s params after step %d", path, s + 1);
        TBT_ASSERT_CLOSE(params, expect + (size_t)s * n, n, RTOL, ATOL, what);
    }
    ck_assert_int_eq(sc.step, (int64_t)attr(path, "final_step"));
    for (int slot = 0; slot < slots; slot++) {
        const char *name = tb_optim_slot_name(&cfg, slot);
        ck_assert_ptr_nonnull(name);
        snprintf(ds, sizeof ds, "%s/state/%s", path, name); /* fails when torch has no such key */
        float *ref = tbt_read_f32(file, ds, NULL, NULL, NULL);
        snprintf(what, sizeof what, "%s state %s", path, name);
        TBT_ASSERT_CLOSE(state + (size_t)slot * n, ref, n, RTOL, ATOL, what);
        free(ref);
    }
    if (kind == TB_OPT_ASGD) {
        /* torch keeps eta and mu as float32 tensors: compare exactly. */
        ck_assert_double_eq(sc.eta, attr(path, "final_eta"));
        ck_assert_double_eq(sc.mu, attr(path, "final_mu"));
        ck_assert_ptr_eq(tb_optim_averaged(&cfg, state, n), state);
    } else {
        ck_assert_ptr_null(tb_optim_averaged(&cfg, state, n));
    }
    free(state);
    free(params);
    free(grads);
    free(expect);
}

START_TEST(test_against_torch)
{
    tb_optim_kind kind = all_kinds[_i];
    char path[64];
    snprintf(path, sizeof path, "/optim/%s", tb_optim_name(kind));
    int ncases = (int)attr(path, "ncases");
    ck_assert_int_ge(ncases, 2);
    for (int k = 0; k < ncases; k++) check_case(kind, k);
}
END_TEST

/* ---- validation ----------------------------------------------------------- */

/* cfg must be rejected with a message containing every one of want[]. */
static void expect_rejected(const tb_optim_config *cfg, const char *const *want, int nwant)
{
    char msg[256];
    ck_assert_msg(tb_optim_validate(cfg, msg, sizeof msg) == -1, "%s config accepted",
                  tb_optim_name(cfg->kind));
    for (int i = 0; i < nwant; i++)
        ck_assert_msg(strstr(msg, want[i]) != NULL, "message \"%s\" lacks \"%s\"", msg, want[i]);
}

#define REJECT(cfg, ...)                                                                                 \
    do {                                                                                                 \
        const char *const want_[] = {__VA_ARGS__};                                                       \
        expect_rejected(&(cfg), want_, (int)(sizeof want_ / sizeof want_[0]));                           \
    } while (0)

static tb_optim_config defaults(tb_optim_kind kind)
{
    tb_optim_config c;
    tb_optim_defaults(&c, kind);
    return c;
}

START_TEST(test_defaults_valid)
{
    for (int i = 0; i < N_KINDS; i++) {
        tb_optim_config c = defaults(all_kinds[i]);
        char msg[256];
        ck_assert_msg(tb_optim_validate(&c, msg, sizeof msg) == 0, "%s defaults: %s", tb_optim_name(c.kind), msg);
        ck_assert_int_eq(c.kind, all_kinds[i]);
    }
    tb_optim_config c = defaults(TB_OPT_ADAM);
    ck_assert_double_eq(c.lr, 1e-3);
    ck_assert_double_eq(c.beta1, 0.9);
    ck_assert_double_eq(c.beta2, 0.999);
    ck_assert_double_eq(c.eps, 1e-8);
    ck_assert_int_eq(c.amsgrad, 0);
    c = defaults(TB_OPT_SGD);
    ck_assert_double_eq(c.lr, 0.01);
    ck_assert_double_eq(c.momentum, 0);
    c = defaults(TB_OPT_ADAGRAD);
    ck_assert_double_eq(c.lr, 1e-2);
    ck_assert_double_eq(c.eps, 1e-10);
    c = defaults(TB_OPT_ADADELTA);
    ck_assert_double_eq(c.lr, 1.0);
    ck_assert_double_eq(c.rho, 0.9);
    ck_assert_double_eq(c.eps, 1e-6);
    c = defaults(TB_OPT_RMSPROP);
    ck_assert_double_eq(c.alpha, 0.99);
    ck_assert_double_eq(c.eps, 1e-8);
    c = defaults(TB_OPT_ASGD);
    ck_assert_double_eq(c.lambd, 1e-4);
    ck_assert_double_eq(c.alpha, 0.75);
    ck_assert_double_eq(c.t0, 1e6);
}
END_TEST

START_TEST(test_validation_messages)
{
    tb_optim_config c = defaults(TB_OPT_ADAM);
    c.beta1 = 1.5;
    REJECT(c, "adam", "beta1", "1.5", "[0, 1)");
    c.beta1 = 1.0; /* torch: 0 <= beta < 1 */
    REJECT(c, "beta1", "1");
    c = defaults(TB_OPT_ADAM);
    c.beta2 = -0.1;
    REJECT(c, "beta2", "-0.1");
    c = defaults(TB_OPT_ADAM);
    c.lr = NAN;
    REJECT(c, "lr", "nan");
    c = defaults(TB_OPT_ADAM);
    c.eps = -1e-8;
    REJECT(c, "eps", "-1e-08");
    c = defaults(TB_OPT_ADAM);
    c.weight_decay = INFINITY;
    REJECT(c, "weight_decay", "inf");

    c = defaults(TB_OPT_SGD);
    c.lr = -0.1;
    REJECT(c, "sgd", "lr", "-0.1");
    c = defaults(TB_OPT_SGD);
    c.momentum = -0.5;
    REJECT(c, "momentum", "-0.5");
    c = defaults(TB_OPT_SGD);
    c.nesterov = 1;
    REJECT(c, "nesterov", "momentum");
    c.momentum = 0.9;
    c.dampening = 0.1;
    REJECT(c, "nesterov", "dampening");
    c.dampening = 0;
    ck_assert_int_eq(tb_optim_validate(&c, NULL, 0), 0);

    c = defaults(TB_OPT_ADAGRAD);
    c.lr_decay = -1;
    REJECT(c, "adagrad", "lr_decay");
    c = defaults(TB_OPT_ADAGRAD);
    c.initial_accumulator_value = -0.5;
    REJECT(c, "initial_accumulator_value", "-0.5");

    c = defaults(TB_OPT_ADADELTA);
    c.rho = 1.5;
    REJECT(c, "adadelta", "rho", "1.5", "[0, 1]");
    c.rho = 1.0; /* torch: 0 <= rho <= 1 */
    ck_assert_int_eq(tb_optim_validate(&c, NULL, 0), 0);

    c = defaults(TB_OPT_RMSPROP);
    c.alpha = -0.01;
    REJECT(c, "rmsprop", "alpha", "-0.01");
    c = defaults(TB_OPT_RMSPROP);
    c.momentum = -1;
    REJECT(c, "momentum");

    c = defaults(TB_OPT_ASGD);
    c.t0 = NAN;
    REJECT(c, "asgd", "t0");
    c = defaults(TB_OPT_ASGD);
    c.weight_decay = -1;
    REJECT(c, "weight_decay");

    c = defaults(TB_OPT_SGD);
    c.kind = (tb_optim_kind)42;
    REJECT(c, "42");
}
END_TEST

/* ---- slots and names ------------------------------------------------------ */

static void expect_slots(const tb_optim_config *c, const char *const *names, int count)
{
    ck_assert_int_eq(tb_optim_slots(c), count);
    for (int i = 0; i < count; i++) ck_assert_str_eq(tb_optim_slot_name(c, i), names[i]);
    ck_assert_ptr_null(tb_optim_slot_name(c, count));
    ck_assert_ptr_null(tb_optim_slot_name(c, -1));
}

#define SLOTS(cfg, ...)                                                                                  \
    do {                                                                                                 \
        const char *const names_[] = {__VA_ARGS__};                                                      \
        expect_slots(&(cfg), names_, (int)(sizeof names_ / sizeof names_[0]));                           \
    } while (0)

START_TEST(test_slots)
{
    tb_optim_config c = defaults(TB_OPT_SGD);
    ck_assert_int_eq(tb_optim_slots(&c), 0);
    ck_assert_ptr_null(tb_optim_slot_name(&c, 0));
    c.momentum = 0.9;
    SLOTS(c, "momentum_buffer");
    c = defaults(TB_OPT_ADAM);
    SLOTS(c, "exp_avg", "exp_avg_sq");
    c.amsgrad = 1;
    SLOTS(c, "exp_avg", "exp_avg_sq", "max_exp_avg_sq");
    c = defaults(TB_OPT_ADAGRAD);
    SLOTS(c, "sum");
    c = defaults(TB_OPT_ADADELTA);
    SLOTS(c, "square_avg", "acc_delta");
    c = defaults(TB_OPT_RMSPROP);
    SLOTS(c, "square_avg");
    c.momentum = 0.5;
    SLOTS(c, "square_avg", "momentum_buffer");
    c.centered = 1;
    SLOTS(c, "square_avg", "momentum_buffer", "grad_avg");
    c.momentum = 0;
    SLOTS(c, "square_avg", "grad_avg");
    c = defaults(TB_OPT_ASGD);
    SLOTS(c, "ax");
}
END_TEST

START_TEST(test_names)
{
    for (int i = 0; i < N_KINDS; i++) {
        tb_optim_kind k;
        ck_assert_int_eq(tb_optim_parse(tb_optim_name(all_kinds[i]), &k), 0);
        ck_assert_int_eq(k, all_kinds[i]);
        ck_assert_ptr_nonnull(strstr(tb_optim_names(), tb_optim_name(all_kinds[i])));
    }
    tb_optim_kind k;
    ck_assert_int_eq(tb_optim_parse("lbfgs", &k), -1);
    ck_assert_str_eq(tb_optim_name(TB_OPT_RMSPROP), "rmsprop");
}
END_TEST

START_TEST(test_init_state)
{
    float st[8];
    tb_optim_scalars sc = {7, 0, 0};
    tb_optim_config c = defaults(TB_OPT_ADAGRAD);
    c.initial_accumulator_value = 0.25;
    tb_optim_init_state(&c, &sc, st, 8);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(st[i], 0.25f);
    ck_assert_int_eq(sc.step, 0);
    c = defaults(TB_OPT_ASGD);
    c.lr = 0.1;
    memset(st, 0xff, sizeof st);
    tb_optim_init_state(&c, &sc, st, 8);
    for (int i = 0; i < 8; i++) ck_assert_float_eq(st[i], 0.0f);
    ck_assert_double_eq(sc.eta, (double)0.1f); /* torch.tensor(lr) is float32 */
    ck_assert_double_eq(sc.mu, 1.0);
}
END_TEST

/* ---- determinism across the parallel threshold ----------------------------- */

/* A block large enough to run on several threads gives exactly the values of
 * the same elements stepped in small (single-threaded) pieces. */
START_TEST(test_parallel_matches_serial)
{
    const size_t n = 300000, piece = 1000;
    tb_optim_config c;
    tb_optim_kind kind = all_kinds[_i];
    tb_optim_defaults(&c, kind);
    c.weight_decay = 0.01;
    c.momentum = kind == TB_OPT_SGD || kind == TB_OPT_RMSPROP ? 0.9 : 0;
    c.nesterov = kind == TB_OPT_SGD;
    c.amsgrad = 1;
    c.centered = 1;
    c.t0 = 1;
    int slots = tb_optim_slots(&c);
    float *p1 = malloc(n * sizeof *p1), *p2 = malloc(n * sizeof *p2), *gs = malloc(4 * n * sizeof *gs);
    float *s1 = malloc((size_t)slots * n * sizeof *s1 + 4), *s2 = malloc((size_t)slots * piece * sizeof *s2 + 4);
    ck_assert(p1 && p2 && gs && s1 && s2);
    tb_rng r;
    tb_rng_init(&r, 99, TB_STREAM_INIT, 0);
    for (size_t i = 0; i < n; i++) p1[i] = p2[i] = tb_rng_normal(&r);
    for (size_t i = 0; i < 4 * n; i++) gs[i] = tb_rng_normal(&r);
    tb_optim_scalars sc1;
    tb_optim_init_state(&c, &sc1, s1, n);
    for (int step = 0; step < 4; step++) tb_optim_step(&c, &sc1, p1, gs + (size_t)step * n, s1, n);
    /* Replay piece by piece with the same gradients. */
    for (size_t off = 0; off < n; off += piece) {
        tb_optim_scalars sc2;
        tb_optim_init_state(&c, &sc2, s2, piece);
        for (int step = 0; step < 4; step++) tb_optim_step(&c, &sc2, p2 + off, gs + (size_t)step * n + off, s2, piece);
        for (int slot = 0; slot < slots; slot++)
            ck_assert_msg(memcmp(s2 + (size_t)slot * piece, s1 + (size_t)slot * n + off, piece * sizeof *s2) == 0,
                          "%s: state slot %d differs at offset %zu", tb_optim_name(kind), slot, off);
    }
    ck_assert_msg(memcmp(p1, p2, n * sizeof *p1) == 0, "%s: parallel and serial parameters differ",
                  tb_optim_name(kind));
    free(p1);
    free(p2);
    free(gs);
    free(s1);
    free(s2);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_loop_test(tc, test_against_torch, 0, N_KINDS);
    tcase_add_test(tc, test_defaults_valid);
    tcase_add_test(tc, test_validation_messages);
    tcase_add_test(tc, test_slots);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_init_state);
    tcase_add_loop_test(tc, test_parallel_matches_serial, 0, N_KINDS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(optim_suite()); }
