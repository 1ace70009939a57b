/* optim.h: the six optimizers of the study, exactly torch.optim's (1.13)
 * single-tensor update rules, over one flat block of parameters.
 *
 * All rules are element-wise, so the whole parameter block is updated as one
 * tensor; per-parameter state lives in one block of `slots * n` floats whose
 * slot names are torch's state keys (exp_avg, momentum_buffer, ...). Scalar
 * state (step count, ASGD's eta and mu) is shared because every parameter
 * steps together. */
#ifndef TB_OPTIM_H
#define TB_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "hparams.h"

typedef enum tb_optim_kind {
    TB_OPT_SGD = 0,
    TB_OPT_ADAM = 1,
    TB_OPT_ADAGRAD = 2,
    TB_OPT_ADADELTA = 3,
    TB_OPT_RMSPROP = 4,
    TB_OPT_ASGD = 5,
} tb_optim_kind;

/* Hyperparameters by torch's names, one field per row of hparams.h; each
 * optimizer reads only its own (the table's read_by). */
typedef struct tb_optim_config {
    tb_optim_kind kind;
#define TB_OPTIM_FIELD_(name, type, ...) TB_HPARAM_CTYPE_##type name;
    TB_OPTIM_HPARAMS(TB_OPTIM_FIELD_)
#undef TB_OPTIM_FIELD_
} tb_optim_config;

typedef struct tb_optim_scalars {
    int64_t step; /* completed steps */
    double eta;   /* asgd */
    double mu;    /* asgd */
} tb_optim_scalars;

/* "sgd" | "adam" | "adagrad" | "adadelta" | "rmsprop" | "asgd" */
int tb_optim_parse(const char *name, tb_optim_kind *out);
const char *tb_optim_name(tb_optim_kind kind);
const char *tb_optim_names(void);

/* torch.optim's defaults for kind (lr included: sgd has none in torch, 0.01 here). */
void tb_optim_defaults(tb_optim_config *cfg, tb_optim_kind kind);
/* Returns 0, or -1 with a message naming the hyperparameter, its value and the allowed range. */
int tb_optim_validate(const tb_optim_config *cfg, char *msg, size_t msglen);

/* Number of parameter-sized state buffers and their names (torch's state keys). */
int tb_optim_slots(const tb_optim_config *cfg);
const char *tb_optim_slot_name(const tb_optim_config *cfg, int slot);

/* Initial state: slots set as torch does on first use (adagrad's sum to
 * initial_accumulator_value, others 0); scalars step=0, eta=lr, mu=1.
 * eta and mu are kept rounded to float32, as torch's float32 state tensors
 * (so eta starts at (float)lr). sgd's first step (step == 0) seeds
 * momentum_buffer with d_p, as torch does when the buffer is absent, so a
 * restored state must restore step too. */
void tb_optim_init_state(const tb_optim_config *cfg, tb_optim_scalars *sc, float *state, size_t n);

/* One step over params [n] with grads [n] and state [slots * n]. The CPU
 * implementation; backends call it or their own fused kernel. */
void tb_optim_step(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                   float *state, size_t n);

/* The same over a sub-range of a larger block: params/grads [n], slot s of
 * element i at state[s * stride + i]. Used to skip frozen tensors. */
void tb_optim_step_strided(const tb_optim_config *cfg, tb_optim_scalars *sc, float *params, const float *grads,
                           float *state, size_t n, size_t stride);

/* ASGD's running average ax (the parameters to evaluate with), or NULL. */
float *tb_optim_averaged(const tb_optim_config *cfg, float *state, size_t n);

#endif
