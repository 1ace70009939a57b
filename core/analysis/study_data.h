/* study_data.h: an archive read for analysis, into plain tables.
 *
 * Reads DIR/study.h5 (participants, submissions, finals: docs/study.md),
 * DIR/sweeps/<id>.h5 (docs/sweeps.md), DIR/index.h5 and, per run, the run
 * file DIR/runs/<id>.run.h5 (test macro F1, trainable parameters) and the
 * curves in DIR/runs/<id>.h5 on request. Read-only and without the archive's
 * lock: a live archive is read as its files show it now (study.h5 and the
 * index are replaced by rename, so they are always whole). Pieces that are
 * missing (no study.h5: a sweep-only archive; a participant without finals;
 * an unreadable run file) are left out and said in `notes`, never an error. */
#ifndef TB_ANALYSIS_STUDY_DATA_H
#define TB_ANALYSIS_STUDY_DATA_H

#include <stdint.h>

#include "base/common.h"

#define TB_AD_HP 15 /* Table 1's hyperparameters, in its order (core/study/hparam_space.h) */
#define TB_AD_OTHER_KEYS 8 /* varied keys of a sweep besides the 15 train.* ones */

typedef struct tb_ad_participant {
    char id[64];
    char education[32];
    double dl_months, programming_months, ml_months; /* NaN when not given */
    int self_level;                                  /* 0: not given */
    int machine;             /* 1: an automated tuner (a "tuner-" pseudonym or education "machine") */
    char state[16];
    double registered_s, budget_s, used_s, credited_s;
    int n_submissions;
    int first_submission;    /* index of its first row in tb_study_data.subs (rows are by participant, then number) */
    char final_run[32];
    char final_reason[16];   /* chosen, budget, none, "" (not finished) */
    int finals_finished;
    double final_mean, final_sd; /* test accuracy (fraction) over the finished finals; NaN when none */
    double consented_s, final_at_s; /* NaN when not reached */
} tb_ad_participant;

typedef struct tb_ad_submission {
    int participant;         /* index into participants */
    int number;              /* 1-based within the participant */
    char run_id[32];         /* "" when rejected */
    char status[16];
    double submitted_s, started_s, ended_s, queued_s, training_s;
    int epochs_done;
    double val_accuracy, val_loss, test_accuracy; /* fractions; NaN when none */
    char values[TB_AD_HP][64];     /* as archived: numbers as text, loss and optimizer by name */
    int given[TB_AD_HP];           /* 1 given, 0 the preset */
    char comments[TB_AD_HP][256];
    int presets_kept;              /* optional hyperparameters left at their preset */
    char message[256];             /* why it was rejected or ended when not finished ("" otherwise) */
} tb_ad_submission;

typedef struct tb_ad_final {
    int participant;
    int64_t seed;
    char run_id[32];
    char status[16];
    double test_accuracy, started_s, ended_s;
} tb_ad_final;

/* A run of a sweep or repeat (random search, grid, seeds, folds). */
typedef struct tb_ad_sweep_run {
    int sweep;                /* index into sweeps */
    char run_id[32];
    int64_t config, seed, fold;
    char status[16];
    double val_accuracy, val_loss, test_accuracy, seconds;
    double macro_f1;          /* from the run file's /test; NaN when absent */
    int64_t trainable_parameters; /* from the run file's /model; -1 when absent */
    char values[TB_AD_HP][64];    /* the 15 train.* values when the sweep varied them ("" otherwise) */
    char message[256];            /* why it ended, when not finished */
    char other_values[TB_AD_OTHER_KEYS][64]; /* the values of its sweep's other_keys, in their order */
} tb_ad_sweep_run;

typedef struct tb_ad_sweep {
    char id[64];              /* e.g. "s0001-random" */
    char kind[16];            /* random, grid, repeat, folds */
    int first_run, n_runs;    /* rows in sweep_runs */
    /* varied keys other than the 15 train.* hyperparameters (model.freeze, task.fold, ...);
     * more than TB_AD_OTHER_KEYS are left out and noted */
    char other_keys[TB_AD_OTHER_KEYS][64];
    int n_other_keys;
} tb_ad_sweep;

/* A run of the archive's index (DIR/index.h5): every run, whoever made it. */
typedef struct tb_ad_run {
    char id[32];
    char kind[16];            /* submission, final, sweep, ... */
    char participant[64];     /* "" when none */
    char status[16];
    double created_s, started_s, ended_s; /* NaN when not reached */
    int64_t epochs, batches;  /* rows in its curves when the index was written */
    double val_accuracy, test_accuracy;
} tb_ad_run;

typedef struct tb_study_data {
    char dir[1024];
    int has_study;            /* study.h5 was there */
    char title[256];
    double budget_s;
    int n_final_seeds;
    const char *hp_names[TB_AD_HP]; /* Table 1's names, in order */
    tb_ad_participant *participants;
    int np;
    tb_ad_submission *subs;
    int ns;
    tb_ad_final *finals;
    int nf;
    tb_ad_sweep *sweeps;
    int nsweeps;
    tb_ad_sweep_run *sweep_runs;
    int nsweep_runs;
    char notes[8192];         /* what was left out and why, one line each */
    tb_ad_run *runs;          /* the index's rows (or, without index.h5, the run files found) */
    int nruns;
    int mandatory[TB_AD_HP];  /* 1: the study's space made it mandatory (/study's `space`; Table 1's four
                               * when the file does not say, with a note) */
    int n_mandatory;
} tb_study_data;

/* One run's curves from DIR/runs/<id>.h5 (a live run: as far as it is written). */
typedef struct tb_ad_curves {
    int n_epochs;
    int64_t *epoch;           /* 1-based */
    double *train_loss, *val_loss, *val_accuracy, *seconds;
    int64_t n_batches;
    int64_t *step;
    double *loss;
} tb_ad_curves;

/* Reads the archive in dir. TB_EIO / TB_EFORMAT only when dir is not an
 * archive at all (no index.h5, no study.h5, no sweeps). */
tb_status tb_study_data_load(const char *dir, tb_study_data **out, tb_err *err);
void tb_study_data_free(tb_study_data *d);

/* Run run_id's epoch curve from DIR/runs/<id>.h5: *n epochs, arrays malloc'd
 * (the caller frees them; any of the out pointers may be NULL). */
tb_status tb_study_data_epochs(const tb_study_data *d, const char *run_id, int *n, double **train_loss,
                               double **val_loss, double **val_accuracy, tb_err *err);

/* Both tables of run_id's curves into *out (free with tb_ad_curves_free).
 * TB_EIO when the run file is missing or unreadable. */
tb_status tb_study_data_curves(const tb_study_data *d, const char *run_id, tb_ad_curves *out, tb_err *err);
void tb_ad_curves_free(tb_ad_curves *c);

#endif
