/* hparam_space.h: the 15 hyperparameters participants tune (Table 1 of the paper)
 * and a study's space over them: which are mandatory, the preset default of
 * each optional one, the closed range or the choices allowed, which optimizer
 * reads which, and the distributions random search draws from.
 *
 * A space is read from a study configuration:
 *
 *   [space]
 *   mandatory = epochs, batch_size, loss, optimizer   ; the rest are optional (empty: none)
 *   epochs    = int 1 20                              ; int LO HI [log]
 *   lr        = float 1e-6 10 log                     ; float LO HI [log]
 *   optimizer = choice adam|adadelta|adagrad|asgd|rmsprop|sgd
 *
 * A key not given keeps the paper's space (tb_space_default). The preset
 * value of an optional hyperparameter is [train]'s value when the study
 * config has one, else Table 1's default; either must lie inside the space
 * (a narrowed range that excludes Table 1's default needs a [train] value).
 * A mandatory hyperparameter has no preset unless [train] gives one, which
 * front ends may offer; it must still be given. "log" means random search
 * draws log-uniformly (LO must then be > 0). Validation never depends on the
 * distribution. */
#ifndef TB_SPACE_H
#define TB_SPACE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/config.h"

#define TB_HP_TEXT 64 /* longest canonical value text, NUL included */

/* Table 1 of the paper: the 15 hyperparameters participants tune, in its
 * order, and the paper's space over them (tb_space_default):
 *
 *   X(ENUM, name, lo, hi, log, preset, choices)
 *
 * name is [train]'s key and a row of engine/hparams.h, which gives its type,
 * the range training accepts (a space may narrow it, never widen it) and
 * which optimizer reads it. lo, hi, log: the paper's range (narrower than
 * training's) and its distribution; preset: Table 1's default ("" for the four
 * mandatory ones; torch.optim's defaults where Table 1 as printed differs:
 * ASGD's lambd 1e-4 rather than 0.75, Adam's eps 1e-8 rather than 1e-5);
 * choices: Table 1's listing, also the order random search draws from. These
 * are the paper's facts, not training's, so they live here. */
/* clang-format off */
#define TB_TABLE1(X)                                                                                                \
    X(EPOCHS,                    epochs,                    1,    100,      0, "",       NULL)                      \
    X(BATCH_SIZE,                batch_size,                1,    1024,     1, "",       NULL)                      \
    X(LOSS,                      loss,                      0,    0,        0, "",       "cross_entropy|nll|l1|mse") \
    X(OPTIMIZER,                 optimizer,                 0,    0,        0, "",                                  \
      "adam|adadelta|adagrad|asgd|rmsprop|sgd")                                                                     \
    X(LR,                        lr,                        1e-6, 10,       1, "0.001",  NULL)                      \
    X(WEIGHT_DECAY,              weight_decay,              0,    1,        0, "0",      NULL)                      \
    X(MOMENTUM,                  momentum,                  0,    1,        0, "0",      NULL)                      \
    X(RHO,                       rho,                       0,    1,        0, "0.9",    NULL)                      \
    X(LAMBD,                     lambd,                     0,    1e3,      0, "0.0001", NULL)                      \
    X(ALPHA,                     alpha,                     0,    1e3,      0, "0.99",   NULL)                      \
    X(EPS,                       eps,                       0,    1,        0, "1e-08",  NULL)                      \
    X(LR_DECAY,                  lr_decay,                  0,    1e3,      0, "0",      NULL)                      \
    X(INITIAL_ACCUMULATOR_VALUE, initial_accumulator_value, 0,    1e3,      0, "0",      NULL)                      \
    X(BETA1,                     beta1,                     0,    0.999999, 0, "0.9",    NULL)                      \
    X(BETA2,                     beta2,                     0,    0.999999, 0, "0.999",  NULL)
/* clang-format on */

/* Table 1's order; TB_HP_COUNT is the front-end ABI's TB_STUDY_HP_COUNT (checked in space.c). */
typedef enum tb_hp {
#define TB_HP_ENUM_(ENUM, ...) TB_HP_##ENUM,
    TB_TABLE1(TB_HP_ENUM_)
#undef TB_HP_ENUM_
    TB_HP_COUNT
} tb_hp;

extern const char *const tb_hp_names[TB_HP_COUNT];
/* The index of a hyperparameter name (case-insensitive), or -1. */
int tb_hp_index(const char *name);

typedef enum tb_hp_type {
    TB_HP_INT = 1,
    TB_HP_FLOAT = 2,
    TB_HP_CHOICE = 3,
} tb_hp_type;

typedef struct tb_hp_spec {
    tb_hp_type type;
    int mandatory;            /* participants must give it; optional ones are preset to def */
    double lo, hi;            /* INT, FLOAT: closed range; lo == hi fixes the value */
    int log;                  /* random search draws log-uniformly (lo > 0) */
    char choices[192];        /* CHOICE: '|'-separated, in canonical spelling */
    char def[TB_HP_TEXT];     /* preset value (canonical text); "" when mandatory and no [train] value */
} tb_hp_spec;

typedef struct tb_space {
    tb_hp_spec hp[TB_HP_COUNT];
} tb_space;

/* One value per hyperparameter, canonical text ("0.001", "adam", "64"):
 * integers in decimal, floats with %.17g trimmed to the shortest text that
 * reads back to the same double, choices spelled as in the spec. */
typedef struct tb_hp_values {
    char text[TB_HP_COUNT][TB_HP_TEXT];
} tb_hp_values;

/* The paper's space: mandatory epochs (int 1..100), batch_size (int 1..1024,
 * log), loss (cross_entropy|nll|l1|mse), optimizer
 * (adam|adadelta|adagrad|asgd|rmsprop|sgd); optional, preset to Table 1's
 * defaults: lr 0.001 (float 1e-6..10, log), weight_decay 0 (0..1),
 * momentum 0 (0..1), rho 0.9 (0..1), lambd 0.0001 (0..1e3),
 * alpha 0.99 (0..1e3), eps 1e-8 (0..1), lr_decay 0 (0..1e3),
 * initial_accumulator_value 0 (0..1e3), beta1 0.9 (0..0.999999),
 * beta2 0.999 (0..0.999999). The ranges are those the core accepts.
 * Table 1 as printed lists lambda 0.75 and epsilon 0.00001; the presets here
 * are torch.optim's defaults instead (ASGD's lambd 1e-4, Adam's eps 1e-8). */
void tb_space_default(tb_space *s);

/* Reads [space] and [train] presets over the defaults (see above). Errors name
 * the key, the value and what is allowed; a range wider than the core accepts
 * is an error; unknown keys name the nearest. */
tb_status tb_space_load(tb_space *s, const tb_config *cfg, tb_err *err);

/* 1 when optimizer ("sgd", "adam", ...; case-insensitive) reads hp, else 0:
 * engine/hparams.h's read_by column. epochs, batch_size, loss and optimizer
 * are read by every optimizer, even an unknown one. */
int tb_hp_used_by(tb_hp hp, const char *optimizer);

/* Checks one value: surrounding blanks ignored; INT must be an integer
 * ("3", not "3.5" or "3e0"), FLOAT any finite number (NaN and Inf refused),
 * both inside [lo, hi]; CHOICE one of the choices (case-insensitive). Writes
 * the canonical text (canonical may be NULL; "" on failure). Empty text is
 * an error here ("lr is empty; allowed: ..."). The error reads e.g.
 *   "lr = 20 is outside the allowed range [1e-06, 10]"
 *   "epochs = 2.5 is not an integer; allowed: an integer in [1, 20]"
 *   "optimizer = adamw is not allowed; allowed: adam, adadelta, ..." */
tb_status tb_space_check_value(const tb_space *s, tb_hp hp, const char *text, char canonical[TB_HP_TEXT],
                               tb_err *err);

/* A whole submission: given[i] NULL or blank means "not given" (mandatory:
 * error "epochs is mandatory; allowed: ..."; optional: the preset). Every
 * given value is checked; train_count > 0 also bounds batch_size by the
 * training-set size ("batch_size = 70000 is larger than the training set
 * (55000 samples)"). The first error wins; *bad_hp (may be NULL) receives
 * the offending index, or -1. out may be NULL (only checking). */
tb_status tb_space_resolve(const tb_space *s, const char *const given[TB_HP_COUNT], int train_count,
                           tb_hp_values *out, int *bad_hp, tb_err *err);

/* Random search: draws configuration `index` of a search seeded with seed
 * (Philox stream TB_STREAM_SEARCH, sub = the low 32 bits of index, the high
 * bits select a disjoint range of blocks), so configuration i does not
 * depend on how many were drawn before. Each hyperparameter draws from its
 * own blocks, so narrowing one range never changes the draws of the others.
 * Every hyperparameter with a range (lo < hi) or more than one choice is
 * drawn from one 53-bit uniform u in [0, 1):
 *   FLOAT: lo + u (hi - lo); log: exp(log lo + u (log hi - log lo))
 *   INT:   lo + floor(u (hi - lo + 1)), each integer equally likely;
 *          log: floor(exp(log lo + u (log(hi + 1) - log lo))), so k gets the
 *          log-uniform mass of [k, k + 1), log((k + 1) / k) / log((hi + 1) / lo)
 *   CHOICE: choice floor(u n) of n, each equally likely
 * clamped to [lo, hi] against rounding. Hyperparameters the drawn optimizer
 * does not read keep their preset (a mandatory one without a preset is drawn
 * anyway, as a submission must give it). Fixed ones (lo == hi) take that
 * value. Every configuration passes tb_space_resolve (train_count 0). */
void tb_space_sample(const tb_space *s, uint64_t seed, uint64_t index, tb_hp_values *out);

/* Writes the values as train.<name> into cfg; an empty value is an error. */
tb_status tb_space_apply(const tb_hp_values *v, tb_config *cfg, tb_err *err);

/* What a prompt shows: "int in [1, 20]", "float in [1e-06, 10] (log scale)",
 * "one of cross_entropy, nll, l1, mse". */
void tb_space_describe(const tb_space *s, tb_hp hp, char *out, size_t cap);

/* The space as INI text for archives; malloc'd (NULL when out of memory).
 * The [space] section (mandatory and all 15 lines) is followed by a [train]
 * section holding every preset, so tb_space_load of the text alone gives
 * back the same space, presets included. Being a [train] section, it is
 * meant to be stored on its own, not appended to a run's configuration. */
char *tb_space_to_ini(const tb_space *s);

#endif
