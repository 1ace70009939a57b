/* tuner_sampler.h: what the tuner front end's strategies choose, as pure
 * functions over (space, history, seeded generator) -> next configuration,
 * with no study, no threads and no host: the plugin feeds them what the
 * study's API exposes, and tests feed them synthetic objectives.
 *
 *   random: every mandatory hyperparameter drawn from its range (uniform,
 *           log-uniform for log ones, choices equally likely); an optional one
 *           that the drawn optimizer reads with probability optional_p, else
 *           its preset.
 *   tpe:    the tree-structured Parzen estimator (Bergstra et al. 2011, as
 *           hyperopt and Optuna do it, one hyperparameter at a time): below
 *           `startup` scored trials, random; then the trials split at the gamma
 *           quantile of their score into good and bad, a Parzen density per
 *           hyperparameter for each (Gaussian kernels in the log space of log
 *           ones, smoothed frequencies for choices), `candidates` draws from the
 *           good density l and the one maximising l(x) / g(x) taken. The
 *           optimizer is chosen first; a hyperparameter it does not read keeps
 *           its preset and is not modelled, and one it reads is modelled on the
 *           trials that gave it.
 *   asha:   the rungs of asynchronous successive halving and the decision at
 *           a rung (the study loop in tuner.c watches the epochs).
 *
 * Conditional hyperparameters come from the space's `readers` (the study's
 * hp_readers: the optimizers that read each one, "" for all). */
#ifndef TUNER_SAMPLER_H
#define TUNER_SAMPLER_H

#include <stdint.h>

#include "tunebench_plugin.h"

#define TN_HP_N TB_STUDY_HP_COUNT
#define TN_MAX_CHOICES 16
#define TN_TEXT 64
#define TN_SOURCE 64

/* ---- a seeded generator: xoshiro256** seeded through splitmix64 ---------------------------- */

typedef struct tn_rng {
    uint64_t s[4];
} tn_rng;

void tn_rng_seed(tn_rng *r, uint64_t seed);
uint64_t tn_rng_next(tn_rng *r);
double tn_rng_uniform(tn_rng *r); /* [0, 1), 53 bits */
double tn_rng_normal(tn_rng *r);  /* N(0, 1), Box-Muller on two uniforms */
/* The seed of the index-th (1-based) participant of a strategy under a tuner seed. */
uint64_t tn_participant_seed(uint64_t seed, const char *strategy, int index);

/* ---- the space as the study exposes it ---------------------------------------------------- */

typedef enum tn_hp_type { TN_INT = 1, TN_FLOAT = 2, TN_CHOICE = 3 } tn_hp_type;

typedef struct tn_hp {
    char name[32];
    tn_hp_type type;
    int mandatory;
    double lo, hi;                          /* INT, FLOAT */
    int log;                                /* drawn log-uniformly, modelled in log space */
    char choice[TN_MAX_CHOICES][32];        /* CHOICE */
    int n_choices;
    char preset[TN_TEXT];                   /* "" when none */
    char readers[256];                      /* optimizers reading it, '|'-separated; "" all */
} tn_hp;

typedef struct tn_space {
    tn_hp hp[TN_HP_N];
    int optimizer; /* index of the "optimizer" choice, -1 when the space has none */
} tn_space;

/* 1 when the optimizer (a choice text; NULL: unknown) reads hyperparameter i. */
int tn_reads(const tn_space *sp, int i, const char *optimizer);
/* 1 when hyperparameter i can take more than one value. */
int tn_free(const tn_space *sp, int i);

/* ---- configurations and trials ------------------------------------------------------------- */

/* One configuration: given[i] 0 leaves hyperparameter i at its preset (value
 * not sent); else x[i] is the value (the choice's index for a choice).
 * source[i] is the comment sent with it ("sampled", "preset", "model", ...). */
typedef struct tn_config {
    int given[TN_HP_N];
    double x[TN_HP_N];
    char source[TN_HP_N][TN_SOURCE];
} tn_config;

/* A configuration with its score (validation accuracy; lower is worse). */
typedef struct tn_trial {
    tn_config c;
    double score;
} tn_trial;

/* Value text of x for hyperparameter i (integers in decimal, floats with the
 * fewest digits, up to 17, that stay inside the range, a choice's name). */
void tn_format(const tn_space *sp, int i, double x, char out[TN_TEXT]);
/* Reads a value text of hyperparameter i into *x; 0, or -1 when it is none. */
int tn_parse(const tn_space *sp, int i, const char *text, double *x);
/* The optimizer's name in c (NULL when the space has none or it is not given). */
const char *tn_config_optimizer(const tn_space *sp, const tn_config *c);

/* ---- strategies ------------------------------------------------------------------------------ */

void tn_sample_random(const tn_space *sp, double optional_p, tn_rng *r, tn_config *out);

typedef struct tn_tpe_opts {
    int startup;       /* random until this many scored trials */
    double gamma;      /* the good fraction, (0, 1) */
    int candidates;    /* draws from l per hyperparameter */
    double optional_p; /* as random's */
} tn_tpe_opts;

/* The next configuration given n scored trials (any order; the order breaks ties). */
void tn_sample_tpe(const tn_space *sp, const tn_trial *trials, int n, const tn_tpe_opts *o, tn_rng *r,
                   tn_config *out);

#define TN_MAX_RUNGS 16

/* ASHA's rungs and the scores recorded at each. */
typedef struct tn_asha {
    int eta, n_rungs;
    int epoch[TN_MAX_RUNGS];       /* min_epochs * eta^k, below max_epochs */
    double *score[TN_MAX_RUNGS];   /* malloc'd */
    int n[TN_MAX_RUNGS], cap[TN_MAX_RUNGS];
} tn_asha;

/* Rungs at min_epochs * eta^k for every such epoch < max_epochs. */
void tn_asha_init(tn_asha *a, int min_epochs, int eta, int max_epochs);
void tn_asha_free(tn_asha *a);
/* The rung of an epoch, or -1 when it is none. */
int tn_asha_rung_of(const tn_asha *a, int epoch);
/* Records score at rung k and decides: 1 continue (in the top max(1,
 * floor(n / eta)) of the n scores recorded there, itself included; ties
 * count in its favour), 0 stop; -1 out of memory. */
int tn_asha_decide(tn_asha *a, int k, double score);

#endif
