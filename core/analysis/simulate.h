/* simulate.h: archives without people (`tunebench simulate`, docs/simulate.md).
 *
 * tb_simulate_study: a simulated study. It writes a tiny synthetic image task
 * (DIR/task.h5, for the hdf5 task plugin) and a study configuration
 * (DIR/simulate.ini), opens the study with the real core (tb_study_open) and
 * drives scripted participants through the real tb_study_api: register with a
 * background (novice: 0 months of deep learning, medium: 1-8, expert: 9 or
 * more), consent, enter, several submissions with a comment per value,
 * cancels, the final choice and the final evaluations on the final seeds.
 * Experience shapes the choices: experts pick sensible optimizers, learning
 * rates and batch sizes ("It is the value that has worked well for me in the
 * past."), novices guess widely ("It is just a guess."), sometimes out of the
 * allowed range (rejected) and cancel runs; some start from all presets.
 * Every choice is drawn from the seed (Philox stream TB_STREAM_SIMULATE, one
 * sub-stream per participant), so the same seed gives the same submissions'
 * values and comments; accuracies follow from training (deterministic).
 * Optionally a random-search sweep of K configurations into the same archive
 * (study/sweep.h).
 *
 * tb_simulate_synthetic: a large archive for benchmarks, written without
 * training: `runs` runs of kind "sweep" with `epochs` epochs of `batches`
 * batch losses each, through the real archive writer (store/archive.h), and
 * their results table DIR/sweeps/s0001-random.h5 (tb_sweep_write), values
 * drawn from the paper's space (tb_space_sample). No study.h5: a study's
 * tables come only from its journal, which only the study core writes, and
 * only for runs it trained itself. */
#ifndef TB_ANALYSIS_SIMULATE_H
#define TB_ANALYSIS_SIMULATE_H

#include <stdint.h>

#include "base/common.h"

#define TB_SIMULATE_MAX_PARTICIPANTS 999

typedef struct tb_simulate_options {
    int participants;       /* >= 1 (default 12) */
    uint64_t seed;          /* every choice follows it */
    double minutes;         /* each participant's budget (default 30) */
    int random_search;      /* K configurations of random search after the study (0: none) */
    int slots;              /* runs at once (default 2) */
    int final_seeds;        /* final evaluations per participant (default 3: seeds 0, 1, 2) */
    const char *plugin_path;/* [plugins] path of the configuration; NULL: the default search */
    /* progress lines (a participant done, runs written), from the driving threads one at a
     * time; NULL: none */
    void (*progress)(void *user, const char *line);
    void *user;
    /* tb_simulate_synthetic */
    int synthetic_runs, synthetic_epochs, synthetic_batches;
} tb_simulate_options;

/* The defaults above. */
void tb_simulate_defaults(tb_simulate_options *o);

/* What was made, for the summary. */
typedef struct tb_simulate_result {
    int participants, by_group[3];   /* novice, medium, expert */
    int submissions, rejected, cancelled, finished, diverged;
    int finals, finals_finished;
    int sweep_runs;
    char sweep_id[40];
    double seconds;
    uint64_t bytes;                  /* the archive's size on disk (tb_simulate_synthetic) */
} tb_simulate_result;

/* Makes dir ready for a new archive: created when missing; an empty folder is
 * used as it is; a folder with an archive in it (index.h5, study.journal,
 * study.h5, simulate.ini or sweeps/) is removed first when force, else
 * refused; any other non-empty folder, or something that is not a folder,
 * is refused even with force (nothing of it is removed). Errors name dir and
 * say what to do (`option` names the flag, e.g. "--force"). */
tb_status tb_simulate_prepare_dir(const char *dir, int force, const char *option, tb_err *err);

/* The simulated study into dir (prepared with tb_simulate_prepare_dir). */
tb_status tb_simulate_study(const char *dir, const tb_simulate_options *o, tb_simulate_result *res, tb_err *err);

/* The large synthetic archive into dir (prepared). */
tb_status tb_simulate_synthetic(const char *dir, const tb_simulate_options *o, tb_simulate_result *res, tb_err *err);

/* The group of a participant with dl_months months of deep-learning
 * experience: 0 novice (0), 1 medium (< 9), 2 expert (>= 9), as the paper. */
int tb_simulate_group(double dl_months);
extern const char *const tb_simulate_group_names[3];

#endif
