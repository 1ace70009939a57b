/* test_space.c: the 15 hyperparameters and a study's space over them
 * (core/study/hparam_space.c): the paper's defaults, [space] overrides and every error
 * path with its message, presets from [train], checking single values and
 * whole submissions, random search (determinism, validity, the
 * distributions), which optimizer reads what, applying values to a config,
 * and the INI round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/loss.h"
#include "engine/optim.h"
#include "study/hparam_space.h"
#include "tb_test.h"

#define ASSERT_HAS(msg, part) ck_assert_msg(strstr((msg), (part)) != NULL, "\"%s\" lacks \"%s\"", (msg), (part))

/* A config from "section.key", "value" pairs (NULL-terminated). */
static tb_config *config_of(const char *const *pairs)
{
    tb_config *cfg = tb_config_new();
    ck_assert_ptr_nonnull(cfg);
    tb_err err;
    for (int i = 0; pairs && pairs[i]; i += 2) {
        tb_status st = tb_config_set(cfg, pairs[i], pairs[i + 1], &err);
        ck_assert_msg(st == TB_OK, "%s: %s", pairs[i], err.msg);
    }
    return cfg;
}

/* Loads a space from pairs, expecting success. */
static void space_of(tb_space *s, const char *const *pairs)
{
    tb_config *cfg = config_of(pairs);
    tb_err err;
    tb_status st = tb_space_load(s, cfg, &err);
    ck_assert_msg(st == TB_OK, "%s", err.msg);
    tb_config_free(cfg);
}

/* Loads a space from pairs, expecting failure; returns the message (static). */
static const char *space_fails(const char *const *pairs)
{
    static tb_err err;
    tb_config *cfg = config_of(pairs);
    tb_space s;
    tb_status st = tb_space_load(&s, cfg, &err);
    tb_config_free(cfg);
    ck_assert_msg(st == TB_EINVAL, "accepted: %s = %s", pairs[0], pairs[1]);
    return err.msg;
}

/* A config from INI text through a temporary file (how archives are read). */
static tb_config *config_from_text(const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tbtest-space-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert(write(fd, text, n) == (ssize_t)n);
    close(fd);
    tb_config *cfg = NULL;
    tb_err err;
    tb_status st = tb_config_load(&cfg, path, &err);
    unlink(path);
    ck_assert_msg(st == TB_OK, "%s\n%s", err.msg, text);
    return cfg;
}

static void assert_same_space(const tb_space *a, const tb_space *b)
{
    for (int i = 0; i < TB_HP_COUNT; i++) {
        const tb_hp_spec *x = &a->hp[i], *y = &b->hp[i];
        const char *name = tb_hp_names[i];
        ck_assert_msg(x->type == y->type, "%s: type %d vs %d", name, x->type, y->type);
        ck_assert_msg(x->mandatory == y->mandatory, "%s: mandatory %d vs %d", name, x->mandatory, y->mandatory);
        ck_assert_msg(x->lo == y->lo && x->hi == y->hi, "%s: [%.17g, %.17g] vs [%.17g, %.17g]", name, x->lo, x->hi,
                      y->lo, y->hi);
        ck_assert_msg(x->log == y->log, "%s: log %d vs %d", name, x->log, y->log);
        ck_assert_msg(strcmp(x->choices, y->choices) == 0, "%s: choices %s vs %s", name, x->choices, y->choices);
        ck_assert_msg(strcmp(x->def, y->def) == 0, "%s: preset \"%s\" vs \"%s\"", name, x->def, y->def);
    }
}

/* ---- names and the paper's space ------------------------------------------------------- */

START_TEST(test_names)
{
    static const char *const table1[TB_HP_COUNT] = {
        "epochs", "batch_size", "loss",     "optimizer", "lr",       "weight_decay", "momentum", "rho",
        "lambd",  "alpha",      "eps",      "lr_decay",  "initial_accumulator_value", "beta1", "beta2"};
    for (int i = 0; i < TB_HP_COUNT; i++) {
        ck_assert_str_eq(tb_hp_names[i], table1[i]);
        ck_assert_int_eq(tb_hp_index(table1[i]), i);
    }
    ck_assert_int_eq(tb_hp_index("LR"), TB_HP_LR);
    ck_assert_int_eq(tb_hp_index("Batch_Size"), TB_HP_BATCH_SIZE);
    ck_assert_int_eq(tb_hp_index("learning_rate"), -1);
    ck_assert_int_eq(tb_hp_index(""), -1);
    ck_assert_int_eq(tb_hp_index(NULL), -1);
}
END_TEST

START_TEST(test_defaults)
{
    tb_space s;
    tb_space_default(&s);
    for (int i = 0; i < TB_HP_COUNT; i++) ck_assert_int_eq(s.hp[i].mandatory, i <= TB_HP_OPTIMIZER);
    const struct {
        tb_hp hp;
        tb_hp_type type;
        double lo, hi;
        int log;
        const char *def;
    } expect[] = {
        {TB_HP_EPOCHS, TB_HP_INT, 1, 100, 0, ""},
        {TB_HP_BATCH_SIZE, TB_HP_INT, 1, 1024, 1, ""},
        {TB_HP_LR, TB_HP_FLOAT, 1e-6, 10, 1, "0.001"},
        {TB_HP_WEIGHT_DECAY, TB_HP_FLOAT, 0, 1, 0, "0"},
        {TB_HP_MOMENTUM, TB_HP_FLOAT, 0, 1, 0, "0"},
        {TB_HP_RHO, TB_HP_FLOAT, 0, 1, 0, "0.9"},
        {TB_HP_LAMBD, TB_HP_FLOAT, 0, 1e3, 0, "0.0001"},
        {TB_HP_ALPHA, TB_HP_FLOAT, 0, 1e3, 0, "0.99"},
        {TB_HP_EPS, TB_HP_FLOAT, 0, 1, 0, "1e-08"},
        {TB_HP_LR_DECAY, TB_HP_FLOAT, 0, 1e3, 0, "0"},
        {TB_HP_INITIAL_ACCUMULATOR_VALUE, TB_HP_FLOAT, 0, 1e3, 0, "0"},
        {TB_HP_BETA1, TB_HP_FLOAT, 0, 0.999999, 0, "0.9"},
        {TB_HP_BETA2, TB_HP_FLOAT, 0, 0.999999, 0, "0.999"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(expect); i++) {
        const tb_hp_spec *h = &s.hp[expect[i].hp];
        const char *name = tb_hp_names[expect[i].hp];
        ck_assert_msg(h->type == expect[i].type, "%s: type %d", name, h->type);
        ck_assert_msg(h->lo == expect[i].lo && h->hi == expect[i].hi, "%s: [%g, %g]", name, h->lo, h->hi);
        ck_assert_msg(h->log == expect[i].log, "%s: log %d", name, h->log);
        ck_assert_str_eq(h->def, expect[i].def);
    }
    ck_assert_int_eq(s.hp[TB_HP_LOSS].type, TB_HP_CHOICE);
    ck_assert_str_eq(s.hp[TB_HP_LOSS].choices, "cross_entropy|nll|l1|mse");
    ck_assert_str_eq(s.hp[TB_HP_OPTIMIZER].choices, "adam|adadelta|adagrad|asgd|rmsprop|sgd");

    /* the choices are names the core parses */
    char *list = strdup(s.hp[TB_HP_OPTIMIZER].choices);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, "|", &save); t; t = strtok_r(NULL, "|", &save), n++) {
        tb_optim_kind k;
        ck_assert_msg(tb_optim_parse(t, &k) == 0, "optimizer %s", t);
    }
    free(list);
    ck_assert_int_eq(n, 6);
    list = strdup(s.hp[TB_HP_LOSS].choices);
    n = 0;
    for (char *save = NULL, *t = strtok_r(list, "|", &save); t; t = strtok_r(NULL, "|", &save), n++) {
        tb_loss_kind k;
        ck_assert_msg(tb_loss_parse(t, &k) == 0, "loss %s", t);
    }
    free(list);
    ck_assert_int_eq(n, 4);

    /* every preset passes its own check, canonically unchanged */
    tb_err err;
    char canon[TB_HP_TEXT];
    for (int i = TB_HP_LR; i < TB_HP_COUNT; i++) {
        ck_assert_msg(tb_space_check_value(&s, (tb_hp)i, s.hp[i].def, canon, &err) == TB_OK, "%s", err.msg);
        ck_assert_str_eq(canon, s.hp[i].def);
    }

    /* tb_space_load with no config is the default */
    tb_space loaded;
    ck_assert(tb_space_load(&loaded, NULL, &err) == TB_OK);
    assert_same_space(&loaded, &s);
    tb_config *empty = tb_config_new();
    ck_assert(tb_space_load(&loaded, empty, &err) == TB_OK);
    assert_same_space(&loaded, &s);
    tb_config_free(empty);
}
END_TEST

/* Both ends of every optional range of the paper's space are values the
 * optimizers that read them accept (tb_optim_validate). */
START_TEST(test_default_ranges_accepted_by_optimizers)
{
    tb_space s;
    tb_space_default(&s);
    static const char *const opts[] = {"sgd", "adam", "adagrad", "adadelta", "rmsprop", "asgd"};
    for (size_t o = 0; o < TB_ARRAY_LEN(opts); o++) {
        tb_optim_kind kind;
        ck_assert(tb_optim_parse(opts[o], &kind) == 0);
        for (int hp = TB_HP_LR; hp < TB_HP_COUNT; hp++) {
            if (!tb_hp_used_by((tb_hp)hp, opts[o])) continue;
            for (int end = 0; end < 2; end++) {
                tb_optim_config oc;
                tb_optim_defaults(&oc, kind);
                double v = end ? s.hp[hp].hi : s.hp[hp].lo;
                double *field = NULL;
                switch ((tb_hp)hp) {
                case TB_HP_LR: field = &oc.lr; break;
                case TB_HP_WEIGHT_DECAY: field = &oc.weight_decay; break;
                case TB_HP_MOMENTUM: field = &oc.momentum; break;
                case TB_HP_RHO: field = &oc.rho; break;
                case TB_HP_LAMBD: field = &oc.lambd; break;
                case TB_HP_ALPHA: field = &oc.alpha; break;
                case TB_HP_EPS: field = &oc.eps; break;
                case TB_HP_LR_DECAY: field = &oc.lr_decay; break;
                case TB_HP_INITIAL_ACCUMULATOR_VALUE: field = &oc.initial_accumulator_value; break;
                case TB_HP_BETA1: field = &oc.beta1; break;
                case TB_HP_BETA2: field = &oc.beta2; break;
                default: break;
                }
                ck_assert_ptr_nonnull(field);
                *field = v;
                char msg[256];
                ck_assert_msg(tb_optim_validate(&oc, msg, sizeof msg) == 0, "%s %s = %g: %s", opts[o],
                              tb_hp_names[hp], v, msg);
            }
        }
    }
}
END_TEST

START_TEST(test_describe)
{
    tb_space s;
    space_of(&s, (const char *const[]){"space.epochs", "int 1 20", NULL});
    char d[128];
    tb_space_describe(&s, TB_HP_EPOCHS, d, sizeof d);
    ck_assert_str_eq(d, "int in [1, 20]");
    tb_space_describe(&s, TB_HP_BATCH_SIZE, d, sizeof d);
    ck_assert_str_eq(d, "int in [1, 1024] (log scale)");
    tb_space_describe(&s, TB_HP_LR, d, sizeof d);
    ck_assert_str_eq(d, "float in [1e-06, 10] (log scale)");
    tb_space_describe(&s, TB_HP_BETA2, d, sizeof d);
    ck_assert_str_eq(d, "float in [0, 0.999999]");
    tb_space_describe(&s, TB_HP_LOSS, d, sizeof d);
    ck_assert_str_eq(d, "one of cross_entropy, nll, l1, mse");
    tb_space_describe(&s, TB_HP_LR, d, 8); /* truncated, still terminated */
    ck_assert_str_eq(d, "float i");
}
END_TEST

/* ---- [space] ------------------------------------------------------------------------------ */

START_TEST(test_load_overrides)
{
    tb_space s;
    space_of(&s, (const char *const[]){"space.mandatory", "epochs, Batch_Size , optimizer, loss, lr",
                                       "space.epochs", "Int 2 30",
                                       "space.batch_size", "int 16 512 LOG",
                                       "space.lr", "float 1e-5   0.1 log",
                                       "space.momentum", "float 0.5 0.5", "train.momentum", "0.5",
                                       "space.weight_decay", "float 0 1e-2",
                                       "space.optimizer", "choice SGD | adam|RmsProp",
                                       "space.loss", "choice nll",
                                       NULL});
    for (int i = 0; i < TB_HP_COUNT; i++) ck_assert_int_eq(s.hp[i].mandatory, i <= TB_HP_LR);
    ck_assert(s.hp[TB_HP_EPOCHS].lo == 2 && s.hp[TB_HP_EPOCHS].hi == 30 && !s.hp[TB_HP_EPOCHS].log);
    ck_assert(s.hp[TB_HP_BATCH_SIZE].lo == 16 && s.hp[TB_HP_BATCH_SIZE].hi == 512 && s.hp[TB_HP_BATCH_SIZE].log);
    ck_assert(s.hp[TB_HP_LR].lo == 1e-5 && s.hp[TB_HP_LR].hi == 0.1 && s.hp[TB_HP_LR].log);
    ck_assert_str_eq(s.hp[TB_HP_LR].def, ""); /* mandatory now, no [train] value */
    ck_assert(s.hp[TB_HP_MOMENTUM].lo == 0.5 && s.hp[TB_HP_MOMENTUM].hi == 0.5);
    ck_assert(s.hp[TB_HP_WEIGHT_DECAY].lo == 0 && s.hp[TB_HP_WEIGHT_DECAY].hi == 0.01);
    ck_assert_str_eq(s.hp[TB_HP_OPTIMIZER].choices, "sgd|adam|rmsprop"); /* canonical, in the spec's order */
    ck_assert_str_eq(s.hp[TB_HP_LOSS].choices, "nll");
    /* untouched keys keep the paper's space */
    ck_assert(s.hp[TB_HP_BETA2].lo == 0 && s.hp[TB_HP_BETA2].hi == 0.999999);
    ck_assert_str_eq(s.hp[TB_HP_BETA2].def, "0.999");
    ck_assert_str_eq(s.hp[TB_HP_MOMENTUM].def, "0.5");
}
END_TEST

START_TEST(test_mandatory_lists)
{
    tb_space s;
    space_of(&s, (const char *const[]){"space.mandatory", "", "train.epochs", "5", "train.batch_size", "32",
                                       "train.loss", "nll", "train.optimizer", "sgd", NULL});
    for (int i = 0; i < TB_HP_COUNT; i++) ck_assert_int_eq(s.hp[i].mandatory, 0);
    ck_assert_str_eq(s.hp[TB_HP_OPTIMIZER].def, "sgd");
    space_of(&s, (const char *const[]){"space.mandatory", "epochs", "train.batch_size", "32", "train.loss", "nll",
                                       "train.optimizer", "sgd", NULL});
    ck_assert_int_eq(s.hp[TB_HP_EPOCHS].mandatory, 1);
    ck_assert_int_eq(s.hp[TB_HP_BATCH_SIZE].mandatory, 0);
    ck_assert_int_eq(s.hp[TB_HP_LR].mandatory, 0);
}
END_TEST

START_TEST(test_load_errors)
{
    const char *int_syntax = "allowed: int LO HI [log] with 1 <= LO <= HI <= 100000";
    const char *lr_syntax = "allowed: float LO HI [log] with 0 <= LO <= HI <= 1000";
    const char *opt_syntax = "allowed: choice NAME|NAME|... from adam, adadelta, adagrad, asgd, rmsprop, sgd";
    const struct {
        const char *key, *value;
        const char *msg;   /* the whole message */
    } cases[] = {
        {"space.epochs", "int 1", "space.epochs = \"int 1\" is not a valid range; "},
        {"space.epochs", "int 1 2 3", "space.epochs = \"int 1 2 3\" is not a valid range; "},
        {"space.epochs", "int 1 2 linear", "space.epochs = \"int 1 2 linear\" is not a valid range; "},
        {"space.epochs", "float 1 2", "space.epochs = \"float 1 2\": epochs is an integer, not float; "},
        {"space.epochs", "range 1 2", "space.epochs = \"range 1 2\" does not start with int, float or choice; "},
        {"space.epochs", "", "space.epochs = \"\" does not start with int, float or choice; "},
        {"space.epochs", "int 1 2.5", "space.epochs = \"int 1 2.5\": 2.5 is not an integer; "},
        {"space.epochs", "int 1 1e3", "space.epochs = \"int 1 1e3\": 1e3 is not an integer; "},
        {"space.epochs", "int 5 2", "space.epochs = \"int 5 2\": LO 5 is greater than HI 2; "},
        {"space.epochs", "int 0 10", "space.epochs = \"int 0 10\" is outside what training accepts; "},
        {"space.epochs", "int 1 100001", "space.epochs = \"int 1 100001\" is outside what training accepts; "},
        {"space.epochs", "int 1 99999999999999999999999",
         "space.epochs = \"int 1 99999999999999999999999\" is outside what training accepts; "},
        {"space.lr", "float 0 10 log", "space.lr = \"float 0 10 log\": log needs LO > 0; "},
        {"space.lr", "float -1 1", "space.lr = \"float -1 1\" is outside what training accepts; "},
        {"space.lr", "float 0 2000", "space.lr = \"float 0 2000\" is outside what training accepts; "},
        {"space.lr", "float nan 1", "space.lr = \"float nan 1\": nan is not a finite number; "},
        {"space.lr", "float 1e-3 inf", "space.lr = \"float 1e-3 inf\": inf is not a finite number; "},
        {"space.lr", "float 1e-3 1e999", "space.lr = \"float 1e-3 1e999\": 1e999 is not a finite number; "},
        {"space.lr", "float 1e-3 abc", "space.lr = \"float 1e-3 abc\": abc is not a finite number; "},
        {"space.lr", "int 1 2", "space.lr = \"int 1 2\": lr is a float, not int; "},
        {"space.optimizer", "choice adam|adamw", "space.optimizer = \"choice adam|adamw\": adamw is not allowed; "},
        {"space.optimizer", "choice adam|ADAM", "space.optimizer = \"choice adam|ADAM\" lists adam twice; "},
        {"space.optimizer", "choice adam||sgd", "space.optimizer = \"choice adam||sgd\" has an empty choice; "},
        {"space.optimizer", "choice", "space.optimizer = \"choice\" has an empty choice; "},
        {"space.optimizer", "float 0 1", "space.optimizer = \"float 0 1\": optimizer is a choice, not float; "},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        const char *msg = space_fails((const char *const[]){cases[i].key, cases[i].value, NULL});
        const char *syntax = strstr(cases[i].key, "epochs") ? int_syntax
                             : strstr(cases[i].key, "lr") ? lr_syntax
                                                          : opt_syntax;
        char want[512];
        snprintf(want, sizeof want, "%s%s", cases[i].msg, syntax);
        ck_assert_str_eq(msg, want);
    }

    /* the core's own limits are named, whatever the hyperparameter */
    ASSERT_HAS(space_fails((const char *const[]){"space.beta1", "float 0 1", NULL}),
               "allowed: float LO HI [log] with 0 <= LO <= HI <= 0.999999");
    ASSERT_HAS(space_fails((const char *const[]){"space.momentum", "float 0 1.5", NULL}),
               "allowed: float LO HI [log] with 0 <= LO <= HI <= 1");
    ASSERT_HAS(space_fails((const char *const[]){"space.batch_size", "int 1 2000000", NULL}),
               "allowed: int LO HI [log] with 1 <= LO <= HI <= 1048576");
    ck_assert_str_eq(space_fails((const char *const[]){"space.loss", "choice mse|hinge", NULL}),
                     "space.loss = \"choice mse|hinge\": hinge is not allowed; allowed: choice NAME|NAME|... from "
                     "cross_entropy, nll, l1, mse");

    /* unknown keys name the nearest */
    const char *msg = space_fails((const char *const[]){"space.learning_rate", "float 0 1", NULL});
    ASSERT_HAS(msg, "unknown key space.learning_rate (did you mean lr?)");
    ASSERT_HAS(msg, "valid keys in [space]: epochs, batch_size");
    ASSERT_HAS(msg, "mandatory");
    ASSERT_HAS(space_fails((const char *const[]){"space.mandtory", "epochs", NULL}), "(did you mean mandatory?)");
    ASSERT_HAS(space_fails((const char *const[]){"space.betas", "float 0 0.9", NULL}), "(did you mean beta");

    /* the mandatory list */
    ck_assert_str_eq(space_fails((const char *const[]){"space.mandatory", "epochs, learning_rate", NULL}),
                     "space.mandatory = \"epochs, learning_rate\": learning_rate is not a hyperparameter (did you "
                     "mean lr?); allowed: names from epochs, batch_size, loss, optimizer, lr, weight_decay, momentum, "
                     "rho, lambd, alpha, eps, lr_decay, initial_accumulator_value, beta1, beta2");
    ASSERT_HAS(space_fails((const char *const[]){"space.mandatory", "epochs,,loss", NULL}),
               "space.mandatory = \"epochs,,loss\" has an empty name; allowed: names from epochs, ");
    ASSERT_HAS(space_fails((const char *const[]){"space.mandatory", "epochs, xyzzy", NULL}),
               "xyzzy is not a hyperparameter; allowed:");
}
END_TEST

/* ---- presets ------------------------------------------------------------------------------ */

START_TEST(test_presets)
{
    tb_space s;
    space_of(&s, (const char *const[]){"train.lr", "1e-2", "train.optimizer", "Adam", "train.epochs", " 7 ",
                                       "train.eps", "0.00001", "train.seed", "3", /* not a hyperparameter: ignored */
                                       NULL});
    ck_assert_str_eq(s.hp[TB_HP_LR].def, "0.01");          /* canonical */
    ck_assert_str_eq(s.hp[TB_HP_EPS].def, "1e-05");
    ck_assert_str_eq(s.hp[TB_HP_OPTIMIZER].def, "adam");   /* mandatory, but offered */
    ck_assert_int_eq(s.hp[TB_HP_OPTIMIZER].mandatory, 1);
    ck_assert_str_eq(s.hp[TB_HP_EPOCHS].def, "7");
    ck_assert_str_eq(s.hp[TB_HP_BATCH_SIZE].def, "");
    ck_assert_str_eq(s.hp[TB_HP_RHO].def, "0.9");          /* Table 1 */

    /* a [train] value must lie in the space */
    ck_assert_str_eq(space_fails((const char *const[]){"train.lr", "20", NULL}),
                     "train.lr = 20 is outside the allowed range [1e-06, 10]");
    ck_assert_str_eq(space_fails((const char *const[]){"space.epochs", "int 1 20", "train.epochs", "30", NULL}),
                     "train.epochs = 30 is outside the allowed range [1, 20]");
    ck_assert_str_eq(space_fails((const char *const[]){"train.epochs", "3.5", NULL}),
                     "train.epochs = 3.5 is not an integer; allowed: an integer in [1, 100]");
    ck_assert_str_eq(space_fails((const char *const[]){"space.optimizer", "choice sgd|adam", "train.optimizer",
                                                       "rmsprop", NULL}),
                     "train.optimizer = rmsprop is not allowed; allowed: sgd, adam");
    /* a narrowed range must hold Table 1's default, or [train] must give one */
    ck_assert_str_eq(space_fails((const char *const[]){"space.lr", "float 0.01 0.1", NULL}),
                     "lr's preset 0.001 (Table 1's default) is outside space.lr; give train.lr or widen the range; "
                     "allowed: float in [0.01, 0.1]");
    space_of(&s, (const char *const[]){"space.lr", "float 0.01 0.1", "train.lr", "0.05", NULL});
    ck_assert_str_eq(s.hp[TB_HP_LR].def, "0.05");
    space_of(&s, (const char *const[]){"space.momentum", "float 0.5 0.5", "train.momentum", "0.5", NULL});
    ck_assert_str_eq(s.hp[TB_HP_MOMENTUM].def, "0.5");
    /* optional without any preset */
    ck_assert_str_eq(space_fails((const char *const[]){"space.mandatory", "epochs, batch_size, loss", NULL}),
                     "space.mandatory leaves optimizer optional, but it has no preset; give train.optimizer or make "
                     "it mandatory");
    /* a mandatory one has no preset from Table 1 even when it has one there */
    space_of(&s, (const char *const[]){"space.mandatory", "epochs, batch_size, loss, optimizer, lr", NULL});
    ck_assert_str_eq(s.hp[TB_HP_LR].def, "");
}
END_TEST

/* ---- one value ---------------------------------------------------------------------------- */

START_TEST(test_check_value)
{
    tb_space s;
    space_of(&s, (const char *const[]){"space.epochs", "int 1 20", NULL});
    const struct {
        tb_hp hp;
        const char *text;
        const char *canonical; /* NULL: refused with msg */
        const char *msg;
    } cases[] = {
        {TB_HP_EPOCHS, "3", "3", NULL},
        {TB_HP_EPOCHS, " 20\t", "20", NULL}, /* blanks ignored; the top end inclusive */
        {TB_HP_EPOCHS, "1", "1", NULL},
        {TB_HP_EPOCHS, "+7", "7", NULL},
        {TB_HP_EPOCHS, "007", "7", NULL},
        {TB_HP_EPOCHS, "0", NULL, "epochs = 0 is outside the allowed range [1, 20]"},
        {TB_HP_EPOCHS, "21", NULL, "epochs = 21 is outside the allowed range [1, 20]"},
        {TB_HP_EPOCHS, "-3", NULL, "epochs = -3 is outside the allowed range [1, 20]"},
        {TB_HP_EPOCHS, "99999999999999999999", NULL,
         "epochs = 99999999999999999999 is outside the allowed range [1, 20]"},
        {TB_HP_EPOCHS, "2.5", NULL, "epochs = 2.5 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "3.5", NULL, "epochs = 3.5 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "3e0", NULL, "epochs = 3e0 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "3.0", NULL, "epochs = 3.0 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "0x3", NULL, "epochs = 0x3 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "three", NULL, "epochs = three is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "1 2", NULL, "epochs = 1 2 is not an integer; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "", NULL, "epochs is empty; allowed: an integer in [1, 20]"},
        {TB_HP_EPOCHS, "   ", NULL, "epochs is empty; allowed: an integer in [1, 20]"},
        {TB_HP_LR, "0.001", "0.001", NULL},
        {TB_HP_LR, "1e-3", "0.001", NULL},
        {TB_HP_LR, "1E-6", "1e-06", NULL}, /* the bottom end inclusive */
        {TB_HP_LR, "10", "10", NULL},
        {TB_HP_LR, "10.000", "10", NULL},
        {TB_HP_LR, "0.1", "0.1", NULL},
        {TB_HP_LR, "0.30000000000000004", "0.30000000000000004", NULL}, /* shortest that reads back */
        {TB_HP_LR, "3.14159265358979", "3.14159265358979", NULL},
        {TB_HP_LR, "20", NULL, "lr = 20 is outside the allowed range [1e-06, 10]"},
        {TB_HP_LR, "9.9e-7", NULL, "lr = 9.9e-7 is outside the allowed range [1e-06, 10]"},
        {TB_HP_LR, "10.000000000000002", NULL, "lr = 10.000000000000002 is outside the allowed range [1e-06, 10]"},
        {TB_HP_LR, "1e999", NULL, "lr = 1e999 is outside the allowed range [1e-06, 10]"},
        {TB_HP_LR, "nan", NULL, "lr = nan is not a finite number; allowed: float in [1e-06, 10]"},
        {TB_HP_LR, "NaN", NULL, "lr = NaN is not a finite number; allowed: float in [1e-06, 10]"},
        {TB_HP_LR, "inf", NULL, "lr = inf is not a finite number; allowed: float in [1e-06, 10]"},
        {TB_HP_LR, "-Infinity", NULL, "lr = -Infinity is not a finite number; allowed: float in [1e-06, 10]"},
        {TB_HP_LR, "0.1x", NULL, "lr = 0.1x is not a number; allowed: float in [1e-06, 10]"},
        {TB_HP_LR, "", NULL, "lr is empty; allowed: float in [1e-06, 10]"},
        {TB_HP_MOMENTUM, "-0", "0", NULL},
        {TB_HP_MOMENTUM, "1", "1", NULL},
        {TB_HP_MOMENTUM, "-1e-300", NULL, "momentum = -1e-300 is outside the allowed range [0, 1]"},
        {TB_HP_BETA2, "0.999999", "0.999999", NULL},
        {TB_HP_BETA2, "0.9999991", NULL, "beta2 = 0.9999991 is outside the allowed range [0, 0.999999]"},
        {TB_HP_OPTIMIZER, "adam", "adam", NULL},
        {TB_HP_OPTIMIZER, " RMSprop ", "rmsprop", NULL},
        {TB_HP_OPTIMIZER, "adamw", NULL,
         "optimizer = adamw is not allowed; allowed: adam, adadelta, adagrad, asgd, rmsprop, sgd"},
        {TB_HP_OPTIMIZER, "ada", NULL,
         "optimizer = ada is not allowed; allowed: adam, adadelta, adagrad, asgd, rmsprop, sgd"},
        {TB_HP_LOSS, "MSE", "mse", NULL},
        {TB_HP_LOSS, "cross entropy", NULL,
         "loss = cross entropy is not allowed; allowed: cross_entropy, nll, l1, mse"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        char canon[TB_HP_TEXT] = "junk";
        tb_err err = {{0}};
        tb_status st = tb_space_check_value(&s, cases[i].hp, cases[i].text, canon, &err);
        if (cases[i].canonical) {
            ck_assert_msg(st == TB_OK, "\"%s\": %s", cases[i].text, err.msg);
            ck_assert_str_eq(canon, cases[i].canonical);
        } else {
            ck_assert_msg(st == TB_EINVAL, "\"%s\" accepted as %s", cases[i].text, canon);
            ck_assert_str_eq(err.msg, cases[i].msg);
            ck_assert_str_eq(canon, "");
        }
    }

    /* a long or multi-line value is shown shortened, on one line */
    char long_text[300];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    long_text[10] = '\n';
    tb_err err;
    ck_assert(tb_space_check_value(&s, TB_HP_LR, long_text, NULL, &err) == TB_EINVAL);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_int_lt(strlen(err.msg), 160);
    ASSERT_HAS(err.msg, "...");
    /* an index outside the 15 */
    ck_assert(tb_space_check_value(&s, (tb_hp)15, "1", NULL, &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "15");
}
END_TEST

/* ---- a submission ------------------------------------------------------------------------- */

START_TEST(test_resolve)
{
    tb_space s;
    space_of(&s, (const char *const[]){"train.batch_size", "64", NULL});
    const char *given[TB_HP_COUNT] = {0};
    given[TB_HP_EPOCHS] = "5";
    given[TB_HP_BATCH_SIZE] = "128";
    given[TB_HP_LOSS] = "nll";
    given[TB_HP_OPTIMIZER] = "SGD";
    given[TB_HP_LR] = "  ";          /* blank: the preset */
    given[TB_HP_MOMENTUM] = "0.9";
    tb_hp_values v;
    tb_err err;
    int bad = 99;
    ck_assert_msg(tb_space_resolve(&s, given, 55000, &v, &bad, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(bad, -1);
    ck_assert_str_eq(v.text[TB_HP_EPOCHS], "5");
    ck_assert_str_eq(v.text[TB_HP_BATCH_SIZE], "128");
    ck_assert_str_eq(v.text[TB_HP_OPTIMIZER], "sgd");
    ck_assert_str_eq(v.text[TB_HP_LR], "0.001");
    ck_assert_str_eq(v.text[TB_HP_MOMENTUM], "0.9");
    ck_assert_str_eq(v.text[TB_HP_BETA2], "0.999");
    ck_assert_str_eq(v.text[TB_HP_EPS], "1e-08");

    /* a mandatory one missing, even with a [train] value to offer */
    given[TB_HP_BATCH_SIZE] = NULL;
    ck_assert(tb_space_resolve(&s, given, 0, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_BATCH_SIZE);
    ck_assert_str_eq(err.msg, "batch_size is mandatory; allowed: an integer in [1, 1024]");
    given[TB_HP_BATCH_SIZE] = "";
    ck_assert(tb_space_resolve(&s, given, 0, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_BATCH_SIZE);

    /* larger than the training set; equal is fine */
    given[TB_HP_BATCH_SIZE] = "1000";
    ck_assert(tb_space_resolve(&s, given, 999, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_BATCH_SIZE);
    ck_assert_str_eq(err.msg, "batch_size = 1000 is larger than the training set (999 samples)");
    ck_assert(tb_space_resolve(&s, given, 1000, &v, &bad, &err) == TB_OK);
    ck_assert(tb_space_resolve(&s, given, 0, &v, &bad, &err) == TB_OK); /* 0: size unknown */

    /* the first error wins, in Table 1's order */
    given[TB_HP_BETA1] = "2";
    given[TB_HP_LOSS] = "hinge";
    ck_assert(tb_space_resolve(&s, given, 0, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_LOSS);
    given[TB_HP_LOSS] = "nll";
    ck_assert(tb_space_resolve(&s, given, 0, &v, NULL, &err) == TB_EINVAL); /* bad_hp may be NULL */
    ck_assert_str_eq(err.msg, "beta1 = 2 is outside the allowed range [0, 0.999999]");
    ck_assert(tb_space_resolve(&s, given, 0, NULL, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_BETA1);
    given[TB_HP_BETA1] = "0.5"; /* checked although sgd does not read it */
    ck_assert(tb_space_resolve(&s, given, 0, NULL, &bad, &err) == TB_OK);
    ck_assert_int_eq(bad, -1);

    /* nothing given at all */
    ck_assert(tb_space_resolve(&s, NULL, 0, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_EPOCHS);
    ck_assert_str_eq(err.msg, "epochs is mandatory; allowed: an integer in [1, 100]");

    /* a preset larger than the training set is caught too */
    space_of(&s, (const char *const[]){"space.mandatory", "epochs, loss, optimizer", "train.batch_size", "512",
                                       NULL});
    const char *g2[TB_HP_COUNT] = {"3", NULL, "mse", "adam"};
    ck_assert(tb_space_resolve(&s, g2, 100, &v, &bad, &err) == TB_EINVAL);
    ck_assert_int_eq(bad, TB_HP_BATCH_SIZE);
    ck_assert(tb_space_resolve(&s, g2, 512, &v, &bad, &err) == TB_OK);
    ck_assert_str_eq(v.text[TB_HP_BATCH_SIZE], "512");
}
END_TEST

/* ---- random search ------------------------------------------------------------------------ */

START_TEST(test_sample_determinism)
{
    tb_space s;
    tb_space_default(&s);
    tb_hp_values a, b;
    tb_space_sample(&s, 7, 3, &a);
    tb_space_sample(&s, 7, 3, &b);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    /* lr is read by every optimizer, so it is always drawn */
    tb_space_sample(&s, 7, 4, &b);
    ck_assert_str_ne(a.text[TB_HP_LR], b.text[TB_HP_LR]);
    tb_space_sample(&s, 8, 3, &b);
    ck_assert_str_ne(a.text[TB_HP_LR], b.text[TB_HP_LR]);
    tb_space_sample(&s, 7, 3 + (UINT64_C(1) << 32), &b); /* the high bits of the index count */
    ck_assert_str_ne(a.text[TB_HP_LR], b.text[TB_HP_LR]);
    /* configuration i does not depend on what was drawn before */
    tb_hp_values first;
    tb_space_sample(&s, 7, 0, &first);
    for (uint64_t i = 1; i < 50; i++) tb_space_sample(&s, 7, i, &b);
    tb_space_sample(&s, 7, 0, &b);
    ck_assert(memcmp(&first, &b, sizeof b) == 0);

    /* 200 configurations: lr values all distinct */
    char seen[200][TB_HP_TEXT];
    for (int i = 0; i < 200; i++) {
        tb_space_sample(&s, 11, (uint64_t)i, &b);
        snprintf(seen[i], TB_HP_TEXT, "%s", b.text[TB_HP_LR]);
        for (int j = 0; j < i; j++) ck_assert_str_ne(seen[i], seen[j]);
    }
}
END_TEST

/* Narrowing one range changes that hyperparameter's draws only. */
START_TEST(test_sample_independent_ranges)
{
    tb_space wide, narrow;
    tb_space_default(&wide);
    space_of(&narrow, (const char *const[]){"space.lr", "float 1e-4 1e-2 log", "space.epochs", "int 1 5", NULL});
    int lr_differs = 0;
    for (uint64_t i = 0; i < 100; i++) {
        tb_hp_values a, b;
        tb_space_sample(&wide, 5, i, &a);
        tb_space_sample(&narrow, 5, i, &b);
        for (int hp = 0; hp < TB_HP_COUNT; hp++) {
            if (hp == TB_HP_LR || hp == TB_HP_EPOCHS) continue;
            ck_assert_msg(strcmp(a.text[hp], b.text[hp]) == 0, "%s: %s vs %s", tb_hp_names[hp], a.text[hp],
                          b.text[hp]);
        }
        lr_differs += strcmp(a.text[TB_HP_LR], b.text[TB_HP_LR]) != 0;
        /* the same uniform mapped onto the narrower log range: the order of magnitude moves consistently */
        double wa = log(atof(a.text[TB_HP_LR]) / 1e-6) / log(1e7), nb = log(atof(b.text[TB_HP_LR]) / 1e-4) / log(1e2);
        ck_assert_msg(fabs(wa - nb) < 1e-9, "lr %s vs %s", a.text[TB_HP_LR], b.text[TB_HP_LR]);
    }
    ck_assert_int_gt(lr_differs, 95);
}
END_TEST

START_TEST(test_sample_valid_and_presets)
{
    tb_space spaces[2];
    tb_space_default(&spaces[0]);
    space_of(&spaces[1], (const char *const[]){"space.mandatory", "epochs, batch_size, loss, optimizer, momentum",
                                               "space.epochs", "int 3 3", "space.loss", "choice mse",
                                               "space.batch_size", "int 8 64",
                                               "space.beta1", "float 0.5 0.95", "train.beta1", "0.8",
                                               "space.eps", "float 1e-10 1e-4 log", NULL});
    for (int k = 0; k < 2; k++) {
        const tb_space *s = &spaces[k];
        int unread_momentum_drawn = 0;
        for (uint64_t i = 0; i < 2000; i++) {
            tb_hp_values v, r;
            tb_space_sample(s, 42, i, &v);
            const char *given[TB_HP_COUNT];
            for (int hp = 0; hp < TB_HP_COUNT; hp++) given[hp] = v.text[hp];
            tb_err err;
            int bad;
            ck_assert_msg(tb_space_resolve(s, given, 0, &r, &bad, &err) == TB_OK, "space %d, #%d: %s", k, (int)i,
                          err.msg);
            ck_assert(memcmp(&r, &v, sizeof r) == 0); /* already canonical */
            const char *opt = v.text[TB_HP_OPTIMIZER];
            for (int hp = TB_HP_LR; hp < TB_HP_COUNT; hp++) {
                if (tb_hp_used_by((tb_hp)hp, opt) || !s->hp[hp].def[0]) continue;
                ck_assert_msg(strcmp(v.text[hp], s->hp[hp].def) == 0, "%s unread by %s: %s, preset %s",
                              tb_hp_names[hp], opt, v.text[hp], s->hp[hp].def);
            }
            if (k == 1) {
                ck_assert_str_eq(v.text[TB_HP_EPOCHS], "3");
                ck_assert_str_eq(v.text[TB_HP_LOSS], "mse");
                /* mandatory without preset: drawn even for an optimizer that does not read it */
                ck_assert_str_ne(v.text[TB_HP_MOMENTUM], "");
                if (!tb_hp_used_by(TB_HP_MOMENTUM, opt) && strcmp(v.text[TB_HP_MOMENTUM], "0") != 0)
                    unread_momentum_drawn++;
                if (strcmp(opt, "adam") != 0) ck_assert_str_eq(v.text[TB_HP_BETA1], "0.8");
            }
        }
        if (k == 1) ck_assert_int_gt(unread_momentum_drawn, 1000);
    }
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

START_TEST(test_sample_distributions)
{
    enum { N = 3000 };
    tb_space s;
    space_of(&s, (const char *const[]){"space.epochs", "int 1 3", "space.momentum", "float 0.2 0.6",
                                       "train.momentum", "0.3", "space.rho", "float 0.25 0.25", "train.rho", "0.25",
                                       NULL});
    static double lr[N], mom[N];
    int n_mom = 0, epochs[4] = {0}, batch_one = 0, batch_top = 0, opt_count[6] = {0};
    static const char *const opts[6] = {"adam", "adadelta", "adagrad", "asgd", "rmsprop", "sgd"};
    for (int i = 0; i < N; i++) {
        tb_hp_values v;
        tb_space_sample(&s, 2024, (uint64_t)i, &v);
        lr[i] = strtod(v.text[TB_HP_LR], NULL);
        ck_assert(lr[i] >= 1e-6 && lr[i] <= 10);
        int e = atoi(v.text[TB_HP_EPOCHS]);
        ck_assert(e >= 1 && e <= 3);
        epochs[e]++;
        int b = atoi(v.text[TB_HP_BATCH_SIZE]);
        ck_assert(b >= 1 && b <= 1024);
        batch_one += b == 1;
        batch_top += b >= 512;
        int o = 0;
        while (o < 6 && strcmp(opts[o], v.text[TB_HP_OPTIMIZER]) != 0) o++;
        ck_assert_int_lt(o, 6);
        opt_count[o]++;
        if (tb_hp_used_by(TB_HP_MOMENTUM, opts[o])) {
            mom[n_mom] = strtod(v.text[TB_HP_MOMENTUM], NULL);
            ck_assert(mom[n_mom] >= 0.2 && mom[n_mom] <= 0.6);
            n_mom++;
        }
        ck_assert_str_eq(v.text[TB_HP_RHO], "0.25"); /* fixed */
    }
    /* lr log-uniform over [1e-6, 10]: median near 10^-2.5, each decade about 1/7 */
    qsort(lr, N, sizeof lr[0], cmp_double);
    double median = 0.5 * (lr[N / 2 - 1] + lr[N / 2]);
    ck_assert_msg(fabs(log10(median) + 2.5) < 0.25, "median lr %g", median);
    for (int d = -6; d < 1; d++) {
        int in = 0;
        for (int i = 0; i < N; i++) in += lr[i] >= pow(10, d) && lr[i] < pow(10, d + 1);
        ck_assert_msg(fabs((double)in / N - 1.0 / 7) < 0.035, "decade 1e%d: %d of %d", d, in, N);
    }
    /* batch_size log over [1, 1024]: k has mass log((k+1)/k) / log(1025), so 1 and [512, 1024] about 0.1 each */
    double p_one = log(2.0) / log(1025.0), p_top = log(1025.0 / 512) / log(1025.0);
    ck_assert_msg(fabs((double)batch_one / N - p_one) < 0.03, "batch 1: %d of %d", batch_one, N);
    ck_assert_msg(fabs((double)batch_top / N - p_top) < 0.03, "batch >= 512: %d of %d", batch_top, N);
    /* ints uniform with both ends inclusive */
    for (int e = 1; e <= 3; e++)
        ck_assert_msg(fabs((double)epochs[e] / N - 1.0 / 3) < 0.04, "epochs %d: %d of %d", e, epochs[e], N);
    /* choices uniform */
    for (int o = 0; o < 6; o++)
        ck_assert_msg(fabs((double)opt_count[o] / N - 1.0 / 6) < 0.035, "%s: %d of %d", opts[o], opt_count[o], N);
    /* floats uniform (not log) over [0.2, 0.6]: mean 0.4, a quarter below 0.3 */
    ck_assert_int_gt(n_mom, N / 5);
    double mean = 0;
    int below = 0;
    for (int i = 0; i < n_mom; i++) {
        mean += mom[i];
        below += mom[i] < 0.3;
    }
    mean /= n_mom;
    ck_assert_msg(fabs(mean - 0.4) < 0.015, "momentum mean %g over %d", mean, n_mom);
    ck_assert_msg(fabs((double)below / n_mom - 0.25) < 0.05, "momentum < 0.3: %d of %d", below, n_mom);
}
END_TEST

/* ---- optimizers, apply, INI ----------------------------------------------------------------- */

START_TEST(test_used_by)
{
    static const struct {
        const char *optimizer;
        const char *reads; /* the optional ones, space-separated */
    } table[] = {
        {"sgd", "lr momentum weight_decay"},
        {"adam", "lr beta1 beta2 eps weight_decay"},
        {"adagrad", "lr lr_decay weight_decay initial_accumulator_value eps"},
        {"adadelta", "lr rho eps weight_decay"},
        {"rmsprop", "lr alpha eps weight_decay momentum"},
        {"asgd", "lr lambd alpha weight_decay"},
    };
    for (size_t o = 0; o < TB_ARRAY_LEN(table); o++) {
        int count = 0;
        for (int hp = 0; hp < TB_HP_COUNT; hp++) {
            char word[64];
            snprintf(word, sizeof word, " %s ", tb_hp_names[hp]);
            char reads[128];
            snprintf(reads, sizeof reads, " %s ", table[o].reads);
            int want = hp <= TB_HP_OPTIMIZER || strstr(reads, word) != NULL;
            int got = tb_hp_used_by((tb_hp)hp, table[o].optimizer);
            ck_assert_msg(got == want, "%s reads %s: %d, expected %d", table[o].optimizer, tb_hp_names[hp], got,
                          want);
            count += got;
        }
        ck_assert_int_gt(count, 4);
    }
    ck_assert_int_eq(tb_hp_used_by(TB_HP_BETA1, "ADAM"), 1);
    ck_assert_int_eq(tb_hp_used_by(TB_HP_BETA1, "sgd"), 0);
    ck_assert_int_eq(tb_hp_used_by(TB_HP_LR, "adamw"), 0);
    ck_assert_int_eq(tb_hp_used_by(TB_HP_EPOCHS, "adamw"), 1);
    ck_assert_int_eq(tb_hp_used_by((tb_hp)TB_HP_COUNT, "sgd"), 0);
}
END_TEST


/* The table against what the optimizers really read: perturbing a
 * hyperparameter an optimizer reads changes the parameters after a few
 * steps; perturbing one it does not read leaves them bit-identical. */
static double *optim_field(tb_optim_config *c, int hp)
{
    switch (hp) {
    case TB_HP_LR: return &c->lr;
    case TB_HP_WEIGHT_DECAY: return &c->weight_decay;
    case TB_HP_MOMENTUM: return &c->momentum;
    case TB_HP_RHO: return &c->rho;
    case TB_HP_LAMBD: return &c->lambd;
    case TB_HP_ALPHA: return &c->alpha;
    case TB_HP_EPS: return &c->eps;
    case TB_HP_LR_DECAY: return &c->lr_decay;
    case TB_HP_INITIAL_ACCUMULATOR_VALUE: return &c->initial_accumulator_value;
    case TB_HP_BETA1: return &c->beta1;
    case TB_HP_BETA2: return &c->beta2;
    default: return NULL;
    }
}

static void optim_run(const tb_optim_config *c, float out[8])
{
    float grads[8], state[8 * 8];
    tb_optim_scalars sc;
    ck_assert_int_le(tb_optim_slots(c), 8);
    for (int i = 0; i < 8; i++) out[i] = 0.5f - 0.1f * (float)i;
    tb_optim_init_state(c, &sc, state, 8);
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < 8; i++) grads[i] = 0.3f * (float)(i - 3) + 0.05f * (float)step + out[i];
        tb_optim_step(c, &sc, out, grads, state, 8);
    }
}

START_TEST(test_used_by_matches_the_optimizers)
{
    for (int k = 0; k <= TB_OPT_ASGD; k++) {
        tb_optim_config base;
        tb_optim_defaults(&base, (tb_optim_kind)k);
        /* every hyperparameter away from the values that switch its effect off */
        base.weight_decay = 0.1;
        base.momentum = 0.5;
        base.lr_decay = 0.1;
        base.initial_accumulator_value = 0.2;
        base.lambd = 0.01;
        base.eps = 1e-3;
        float ref[8];
        optim_run(&base, ref);
        for (int hp = TB_HP_LR; hp < TB_HP_COUNT; hp++) {
            tb_optim_config c = base;
            double *f = optim_field(&c, hp);
            ck_assert(f != NULL);
            *f = hp == TB_HP_BETA1 || hp == TB_HP_BETA2 || hp == TB_HP_RHO || hp == TB_HP_ALPHA ? *f - 0.05 : *f * 3;
            float got[8];
            optim_run(&c, got);
            int changed = memcmp(got, ref, sizeof got) != 0;
            const char *name = tb_optim_name((tb_optim_kind)k);
            ck_assert_msg(changed == tb_hp_used_by((tb_hp)hp, name), "%s: changing %s %s the parameters, but "
                          "tb_hp_used_by says %d", name, tb_hp_names[hp], changed ? "changes" : "does not change",
                          tb_hp_used_by((tb_hp)hp, name));
        }
    }
}
END_TEST

START_TEST(test_apply)
{
    tb_space s;
    tb_space_default(&s);
    tb_hp_values v;
    tb_space_sample(&s, 1, 17, &v);
    tb_config *cfg = config_of((const char *const[]){"train.lr", "0.5", "train.seed", "9", NULL});
    tb_err err;
    ck_assert_msg(tb_space_apply(&v, cfg, &err) == TB_OK, "%s", err.msg);
    for (int hp = 0; hp < TB_HP_COUNT; hp++) {
        const char *got = tb_config_get(cfg, "train", tb_hp_names[hp]);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, v.text[hp]);
    }
    ck_assert_str_ne(tb_config_get(cfg, "train", "lr"), "0.5"); /* replaced */
    ck_assert_str_eq(tb_config_get(cfg, "train", "seed"), "9"); /* untouched */
    /* the written values read back through the accessors training uses */
    int64_t iv;
    double dv;
    int choice;
    ck_assert(tb_config_int(cfg, "train", "epochs", 1, 1, 100000, &iv, &err) == TB_OK);
    ck_assert(tb_config_int(cfg, "train", "batch_size", 64, 1, 1 << 20, &iv, &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "loss", NULL, "cross_entropy|nll|l1|mse", &choice, &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "optimizer", NULL, "sgd|adam|adagrad|adadelta|rmsprop|asgd", &choice,
                               &err) == TB_OK);
    ck_assert(tb_config_double(cfg, "train", "lr", 0, 0, 1e3, &dv, &err) == TB_OK);
    ck_assert_double_eq(dv, strtod(v.text[TB_HP_LR], NULL));

    v.text[TB_HP_EPS][0] = '\0';
    ck_assert(tb_space_apply(&v, cfg, &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "train.eps");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_ini_round_trip)
{
    tb_space spaces[3];
    tb_space_default(&spaces[0]);
    space_of(&spaces[1], (const char *const[]){"space.mandatory", "epochs, lr",
                                               "space.epochs", "int 2 30",
                                               "space.batch_size", "int 8 256 log",
                                               "space.lr", "float 1e-5 0.1 log", "train.lr", "0.01",
                                               "space.optimizer", "choice SGD|adam", "train.optimizer", "sgd",
                                               "space.loss", "choice nll|mse", "train.loss", "mse",
                                               "train.batch_size", "32",
                                               "space.beta2", "float 0.9 0.999999",
                                               "space.momentum", "float 0.1 0.1", "train.momentum", "0.1",
                                               "space.weight_decay", "float 0.30000000000000004 0.7",
                                               "train.weight_decay", "0.5", NULL});
    space_of(&spaces[2], (const char *const[]){"space.mandatory", "", "train.epochs", "1", "train.batch_size", "1",
                                               "train.loss", "l1", "train.optimizer", "asgd", NULL});
    for (int k = 0; k < 3; k++) {
        char *ini = tb_space_to_ini(&spaces[k]);
        ck_assert_ptr_nonnull(ini);
        tb_config *cfg = config_from_text(ini);
        tb_space back;
        tb_err err;
        ck_assert_msg(tb_space_load(&back, cfg, &err) == TB_OK, "%s\n%s", err.msg, ini);
        assert_same_space(&back, &spaces[k]);
        char *again = tb_space_to_ini(&back);
        ck_assert_str_eq(again, ini); /* a fixed point */
        free(again);
        tb_config_free(cfg);
        if (k == 0) {
            ASSERT_HAS(ini, "[space]\nmandatory = epochs, batch_size, loss, optimizer\n");
            ASSERT_HAS(ini, "\nbatch_size = int 1 1024 log\n");
            ASSERT_HAS(ini, "\nlr = float 1e-06 10 log\n");
            ASSERT_HAS(ini, "\noptimizer = choice adam|adadelta|adagrad|asgd|rmsprop|sgd\n");
            ASSERT_HAS(ini, "\n[train]\nlr = 0.001\n");
            ck_assert_ptr_null(strstr(ini, "epochs = 1")); /* no preset for a mandatory one without [train] */
        }
        if (k == 1) {
            ASSERT_HAS(ini, "mandatory = epochs, lr\n");
            ASSERT_HAS(ini, "weight_decay = float 0.30000000000000004 0.7\n");
            ASSERT_HAS(ini, "optimizer = choice sgd|adam\n");
        }
        if (k == 2) ASSERT_HAS(ini, "mandatory =\n");
        free(ini);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("space");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_default_ranges_accepted_by_optimizers);
    tcase_add_test(tc, test_describe);
    tcase_add_test(tc, test_load_overrides);
    tcase_add_test(tc, test_mandatory_lists);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_check_value);
    tcase_add_test(tc, test_resolve);
    tcase_add_test(tc, test_sample_determinism);
    tcase_add_test(tc, test_sample_independent_ranges);
    tcase_add_test(tc, test_sample_valid_and_presets);
    tcase_add_test(tc, test_sample_distributions);
    tcase_add_test(tc, test_used_by);
    tcase_add_test(tc, test_used_by_matches_the_optimizers);
    tcase_add_test(tc, test_apply);
    tcase_add_test(tc, test_ini_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
