/* study.h: a study of how people tune a network, as a core service every
 * front end drives (the protocol of Anand et al., BMVC 2020, section 2).
 *
 * A study is a task + model (the usual [model]/[task] sections), a space over
 * the 15 hyperparameters (core/study/hparam_space.h: [space], presets from [train]), a
 * per-participant time budget, a training seed and the final seeds shared by
 * every participant, an executor and an archive, all from one INI file:
 *
 *   [study]
 *   title = ...                 ; shown to participants
 *   briefing = ...              ; the task description shown before consent
 *   archive = studies/fmnist    ; the archive directory (core/store/archive.h)
 *   budget_minutes = 120        ; per participant, counted while active
 *   final_seeds = 0,1,...,9     ; one retraining on train+val per seed, scored on test
 *   slots = 1                   ; runs at once (Slurm: jobs submitted at once)
 *   executor = process          ; process: each run in a child process; threads: in this
 *                               ; process; slurm: a Slurm job per run ([slurm], docs/cluster.md)
 *   threads_per_run = 0         ; CPU threads per run (0: cores / slots)
 *   task_cache = DIR|off        ; the runs' shared prepared task data (default ARCHIVE/cache)
 *   max_active = 0              ; participants whose clock may run at once (0: slots)
 *   show_result = false         ; participants see their final test accuracy at the end
 *
 * Lifecycle of a participant: register -> consent -> enter (admitted, or the
 * lobby) -> submit / cancel / history ... -> finish (or the budget runs out:
 * the best finished run by validation accuracy becomes the final one,
 * recorded with reason "budget") -> final evaluations (one run per final
 * seed, trained on train + validation, scored on the test split).
 *
 * Fairness policy (docs/study.md): a participant's clock runs only while
 * admitted; at most max_active participants are admitted at once (by default
 * as many as the executor has slots) and each may have one run live, so a
 * participant's run never waits behind another participant's. Time a run
 * still spends queued (behind a final evaluation, say) is credited back, as
 * is the training time of runs a crash interrupted; the clock stops at the
 * last sign of life of a crashed process (a heartbeat every 2 s) and the
 * participant re-enters after the restart. Every timestamp and credit is
 * recorded so analysts can recompute budgets their own way.
 *
 * Crash safety: every state change is appended to DIR/study.journal and
 * fsync'ed before it is acknowledged; runs go through the archive (epochs
 * durable before they are shown). DIR/study.h5 (the tables analysts read) is
 * rewritten from memory into a temporary file and renamed, so it is always
 * complete. Reopening a study replays the journal: runs that were live are
 * interrupted (their time given back), participants carry on, final
 * evaluations that did not complete are queued again. A torn journal tail is
 * cut; damage with intact records after it is refused unless the loss is
 * accepted (tb_study_options); cut bytes are kept in study.journal.damaged-N
 * and recorded (docs/study.md, "A damaged journal"). Archive runs the journal
 * has no record of are noted, not adopted ("Runs the study has no record of"). */
#ifndef TB_STUDY_H
#define TB_STUDY_H

#include "store/archive.h"
#include "base/config.h"
#include "exec/executor.h"
#include "hparam_space.h"
#include "tunebench/tunebench_plugin.h"

#define TB_STUDY_SCHEMA_VERSION 1
#define TB_STUDY_MAX_SEEDS 100

/* The education levels offered (the study's web form). */
#define TB_STUDY_EDUCATION "high_school|bachelor|master_enrolled|master|doctorate"
/* Table 3's predefined comments; anything else is free text ("Other"). */
#define TB_STUDY_COMMENTS                                                                                          \
    "It is just a guess.|It is the suggested default value.|It is the value that has worked well for me in the "  \
    "past.|It is the value I learnt from previous submissions."

typedef struct tb_study_settings {
    char title[256];
    char briefing[4096];
    char archive[1024];
    double budget_s;
    int n_final_seeds;
    int64_t final_seeds[TB_STUDY_MAX_SEEDS];
    int slots, threads_per_run, max_active;
    int gpus, runs_per_gpu, gpu_memory_mib; /* GPU slots: gpus x runs_per_gpu replace slots */
    int train_count;   /* training-set size after the validation split; 0 when unknown */
    int show_result;   /* [study] show_result: participants see their final test accuracy */
    tb_executor_kind executor;  /* [study] executor: threads, process (the default) or slurm */
    tb_slurm_settings slurm;    /* [slurm], for the slurm executor */
    char task_cache[1024]; /* [study] task_cache: the runs' shared task cache folder ("": off); absent:
                            * ARCHIVE/cache, filled in when the study opens (task_cache_default) */
    int task_cache_default;
} tb_study_settings;

/* Reads [study] and [space] (errors name key, value and what is allowed). */
tb_status tb_study_settings_load(tb_study_settings *st, tb_space *space, const tb_config *cfg, tb_err *err);

typedef struct tb_study_recovery {
    tb_archive_recovery archive;
    int participants;
    int interrupted_runs;      /* participants' runs found live and ended "interrupted" */
    double credited_s;         /* time given back to participants */
    int finals_requeued;       /* final evaluations queued again */
    /* DIR/study.journal's damage (docs/study.md, "A damaged journal"): */
    int journal_damaged;       /* 1: the journal did not end on a whole, intact record */
    int journal_refused;       /* 1: intact records follow the damage and loss was not accepted (open failed) */
    uint64_t journal_damage_at;     /* offset of the first damaged byte */
    uint64_t journal_bytes_cut;     /* bytes cut from there to the end */
    uint64_t journal_records_lost;  /* intact records among them (0: a torn tail) */
    char journal_kept[1100];        /* where the cut bytes were kept (study.journal.damaged-N) */
    int unrecorded_runs;       /* archive runs of this study the journal has no record of (see docs/study.md) */
    int adopted_runs;          /* runs still on the cluster (Slurm jobs) followed again instead of ended */
} tb_study_recovery;

/* How to open a study; zero-initialised means the defaults. */
typedef struct tb_study_options {
    /* 1: open even when intact journal records follow a damaged one; they are
     * cut with the damage (kept in study.journal.damaged-N, recorded in
     * study.h5). 0: such a journal is refused and left untouched. */
    int accept_journal_loss;
} tb_study_options;

/* Opens (or creates) the study's archive and replays its journal; starts the
 * executor. archive_dir overrides [study] archive when non-NULL. cfg is
 * copied (as INI text); the study keeps no pointer to it. A second process
 * gets "archive DIR is in use by process PID". A journal damaged in the
 * middle (intact records after the damage) is refused with TB_EFORMAT,
 * naming the offset and the records after it (rec->journal_refused set),
 * unless opt->accept_journal_loss; a torn tail is cut and reported in rec.
 * opt may be NULL (the defaults). */
tb_status tb_study_open_opts(const tb_config *cfg, const char *archive_dir, const tb_study_options *opt,
                             tb_study **out, tb_study_recovery *rec, tb_err *err);
/* tb_study_open_opts with the default options. */
tb_status tb_study_open(const tb_config *cfg, const char *archive_dir, tb_study **out, tb_study_recovery *rec,
                        tb_err *err);
/* Waits for queued final evaluations (wait_finals) or interrupts them, closes
 * the archive. Live participants' runs end "interrupted". NULL is fine. */
tb_status tb_study_close(tb_study *s, int wait_finals, tb_err *err);

/* Begins closing from another thread (a SIGTERM): front ends are refused
 * from here on and woken from their waits; live runs end "interrupted" with
 * message why (their time credited). tb_study_close does the rest. */
void tb_study_stop(tb_study *s, const char *why);

/* The table handed to front ends (valid until tb_study_close). */
const tb_study_api *tb_study_api_get(tb_study *s);
/* Counts a Ctrl-C (called from the host's SIGINT handler: async-signal-safe). */
void tb_study_note_interrupt(tb_study *s);

const tb_study_settings *tb_study_get_settings(const tb_study *s);
const tb_space *tb_study_get_space(const tb_study *s);
tb_archive *tb_study_archive(tb_study *s);

/* Final evaluations queued or running. */
int tb_study_finals_pending(tb_study *s);

#endif
