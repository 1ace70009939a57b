/* hparams.h: the training hyperparameters of [train], each written once.
 *
 * Two X-macro lists. The optimizer's hyperparameters (torch's names), in the
 * order the configuration checks them:
 *
 *   X(name, type, lo, hi, read_by, torch_check, torch_by, defaults)
 *
 *   name         the tb_optim_config field, the [train] key, the checkpoint's
 *                /optimizer and the run file's /train attribute
 *   type         FLOAT (double) or BOOL (int, 0 or 1)
 *   lo, hi       the closed range a configuration may give (a study's [space]
 *                may narrow it, never widen it)
 *   read_by      the optimizers whose update rule reads it (TB_READ_BY(SGD) | ...)
 *   torch_check  what torch's constructor checks (NONNEG: [0, inf), UNIT: [0, 1],
 *                UNIT_OPEN: [0, 1), FINITE: nothing but finiteness) ...
 *   torch_by     ... for which of its readers; the others check finiteness only
 *   defaults     torch.optim's default per optimizer, in tb_optim_kind's order
 *                (sgd, adam, adagrad, adadelta, rmsprop, asgd); 0 where unread.
 *                SGD has no default lr in torch: 0.01 here.
 *
 * and the four hyperparameters of [train] that are not an optimizer's:
 *
 *   X(name, type, lo, hi, choices)   INT: a range; CHOICE: the names its parser
 *                                    knows, '|'-separated, in its enum's order
 *
 * Generated from them: tb_optim_config's fields (optim.h), torch's defaults
 * and checks (optim.c), the [train] reader, its ranges and the list of valid
 * [train] keys (run/run.c), the checkpoint's and run file's attributes
 * (store/checkpoint.c, store/runfile.c), the limits of a study's [space] and
 * which optimizer reads which hyperparameter (study/hparam_space.c, through
 * tb_hparam_find). Adding a hyperparameter: one line below plus its arithmetic
 * in optim_rules.h. Making it one the study's participants tune is a change
 * to the paper's Table 1 (study/hparam_space.h) and the front-end ABI's count. */
#ifndef TB_HPARAMS_H
#define TB_HPARAMS_H

#include <math.h>

#define TB_READ_BY(kind) (1u << TB_OPT_##kind)
#define TB_READ_BY_ALL 0x3fu /* all six optimizers */

/* clang-format off */
#define TB_OPTIM_HPARAMS(X)                                                                                         \
    X(lr,                        FLOAT, 0, 1e3,      TB_READ_BY_ALL,                                                \
      NONNEG,    TB_READ_BY_ALL,      (0.01, 1e-3, 1e-2, 1.0, 1e-2, 1e-2))                                          \
    X(weight_decay,              FLOAT, 0, 1e3,      TB_READ_BY_ALL,                                                \
      NONNEG,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(momentum,                  FLOAT, 0, 1,        TB_READ_BY(SGD) | TB_READ_BY(RMSPROP),                         \
      NONNEG,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(dampening,                 FLOAT, 0, 1,        TB_READ_BY(SGD),                                               \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(rho,                       FLOAT, 0, 1,        TB_READ_BY(ADADELTA),                                          \
      UNIT,      TB_READ_BY_ALL,      (0, 0, 0, 0.9, 0, 0))                                                         \
    X(lambd,                     FLOAT, 0, 1e3,      TB_READ_BY(ASGD),                                              \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 1e-4))                                                        \
    X(alpha,                     FLOAT, 0, 1e3,      TB_READ_BY(RMSPROP) | TB_READ_BY(ASGD),                        \
      NONNEG,    TB_READ_BY(RMSPROP), (0, 0, 0, 0, 0.99, 0.75))                                                     \
    X(eps,                       FLOAT, 0, 1,        TB_READ_BY(ADAM) | TB_READ_BY(ADAGRAD) |                       \
                                                     TB_READ_BY(ADADELTA) | TB_READ_BY(RMSPROP),                    \
      NONNEG,    TB_READ_BY_ALL,      (0, 1e-8, 1e-10, 1e-6, 1e-8, 0))                                              \
    X(lr_decay,                  FLOAT, 0, 1e3,      TB_READ_BY(ADAGRAD),                                           \
      NONNEG,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(initial_accumulator_value, FLOAT, 0, 1e3,      TB_READ_BY(ADAGRAD),                                           \
      NONNEG,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(beta1,                     FLOAT, 0, 0.999999, TB_READ_BY(ADAM),                                              \
      UNIT_OPEN, TB_READ_BY_ALL,      (0, 0.9, 0, 0, 0, 0))                                                         \
    X(beta2,                     FLOAT, 0, 0.999999, TB_READ_BY(ADAM),                                              \
      UNIT_OPEN, TB_READ_BY_ALL,      (0, 0.999, 0, 0, 0, 0))                                                       \
    X(t0,                        FLOAT, 0, INFINITY, TB_READ_BY(ASGD),                                              \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 1e6))                                                         \
    X(nesterov,                  BOOL,  0, 1,        TB_READ_BY(SGD),                                               \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(amsgrad,                   BOOL,  0, 1,        TB_READ_BY(ADAM),                                              \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))                                                           \
    X(centered,                  BOOL,  0, 1,        TB_READ_BY(RMSPROP),                                           \
      FINITE,    TB_READ_BY_ALL,      (0, 0, 0, 0, 0, 0))

#define TB_TRAIN_HPARAMS(X)                                                                                         \
    X(epochs,     INT,    1, 100000,  NULL)                                                                         \
    X(batch_size, INT,    1, 1 << 20, NULL)                                                                         \
    X(loss,       CHOICE, 0, 0,       "cross_entropy|nll|l1|mse")                                                   \
    X(optimizer,  CHOICE, 0, 0,       "sgd|adam|adagrad|adadelta|rmsprop|asgd")
/* clang-format on */

/* The C type of a field, by the table's type. */
#define TB_HPARAM_CTYPE_FLOAT double
#define TB_HPARAM_CTYPE_BOOL int
/* The defaults column's values, e.g. {TB_HPARAM_LIST defaults}. */
#define TB_HPARAM_LIST(...) __VA_ARGS__

/* Every hyperparameter by index: TB_HPARAM_epochs, ..., TB_HPARAM_lr, ... */
typedef enum tb_hparam_id {
#define TB_HPARAM_ENUM_(name, ...) TB_HPARAM_##name,
    TB_TRAIN_HPARAMS(TB_HPARAM_ENUM_) TB_OPTIM_HPARAMS(TB_HPARAM_ENUM_)
#undef TB_HPARAM_ENUM_
    TB_HPARAM_COUNT
} tb_hparam_id;

typedef enum tb_hparam_type {
    TB_HPARAM_INT = 1,
    TB_HPARAM_FLOAT = 2,
    TB_HPARAM_CHOICE = 3,
    TB_HPARAM_BOOL = 4,
} tb_hparam_type;

/* One row of the tables, for code that walks them at run time. */
typedef struct tb_hparam_info {
    const char *name;
    tb_hparam_type type;
    double lo, hi;           /* the range a configuration may give (INT, FLOAT, BOOL) */
    const char *choices;     /* CHOICE: its parser's names, '|'-separated, in its enum's order */
    unsigned read_by;        /* bit k: optimizer k reads it (TB_READ_BY_ALL for the four of [train]) */
    int is_optim;            /* a tb_optim_config field */
} tb_hparam_info;

extern const tb_hparam_info tb_hparams[TB_HPARAM_COUNT];
/* The row called name (case-insensitive), or NULL. */
const tb_hparam_info *tb_hparam_find(const char *name);

#endif
