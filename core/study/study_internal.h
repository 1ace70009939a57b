/* study_internal.h: what the study service's files share; not for other wings.
 *
 * The files, by job:
 *   study.c          settings, open (replay, recovery, the first tables) and close
 *   study_record.c   journal records: their payload encoding and names
 *   study_state.c    the in-memory model; study_apply, the one meaning of every record, and
 *                    study_commit, the one way a live change enters the journal and the state
 *   study_recovery.c replaying the journal and settling what a crash left behind
 *   study_runs.c     the jobs: submitting them, the executor's callbacks, finals, the monitor
 *   study_api.c      the tb_study_api table the front ends call
 *   study_tables.c   DIR/study.h5, rewritten from memory
 *
 * One state machine (STYLE.md, "One state machine, replayed"): every
 * change to what the journal records is validated by its caller (without
 * changing anything), appended to the journal by study_commit and then
 * applied by study_apply, the same function that replays the journal on
 * open. What happens only live (giving a job to the executor, cancelling it,
 * waking waiters, run progress that is not journalled) is done by the caller
 * after study_commit returns.
 *
 * Locking: state lives under s->mu (recursive: a run that could not be queued
 * is ended through its own finished callback with the mutex held). Jobs are
 * cancelled with the mutex held, so a job's finished callback (which clears
 * our pointer to it) cannot complete, and the executor cannot free it, while
 * we use it. The space, the base configuration and the training-set size
 * never change after open, so validation runs without the mutex. */
#ifndef TB_STUDY_INTERNAL_H
#define TB_STUDY_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "run/run.h"
#include "store/journal.h"
#include "study.h"

#define STUDY_PATH_CAP 1200

/* journal record types (append only: archives depend on them) */
enum {
    REC_OPEN = 1,      /* the study process (re)started; first one carries the configuration */
    REC_REGISTER = 2,
    REC_CONSENT = 3,
    REC_LOBBY = 4,
    REC_ADMIT = 5,
    REC_PAUSE = 6,     /* the clock stops: paused, crash, closed */
    REC_SUBMIT = 7,
    REC_RUN_START = 8,
    REC_RUN_END = 9,
    REC_CREDIT = 10,
    REC_FINAL_CHOICE = 11,
    REC_FINAL_QUEUED = 12,
    REC_FINAL_END = 13,
    REC_HEARTBEAT = 14,
    REC_CLOSE = 15,    /* a clean close */
    REC_JOURNAL_LOSS = 16, /* open cut a damaged or torn journal tail: where, how much, where it was kept */
    REC_UNRECORDED = 17,   /* an archive run of the study the journal has no record of (never a submission) */
    REC_ADMISSION = 18,    /* the organiser stopped (admitting=0) or resumed (1) registering participants */
    REC_RUN_PLACED = 19,   /* the executor put a run outside this process (a Slurm job): where, to find it again */
    REC_TYPE_COUNT
};
/* Each type's name in the events table ("" for 0). */
extern const char *const study_record_names[REC_TYPE_COUNT];

typedef enum pstate { P_REGISTERED = 0, P_CONSENTED, P_LOBBY, P_ACTIVE, P_DONE } pstate;

/* A run's curves for front ends (tb_study_api.curve), indexed by
 * tb_fe_curve_kind: x the global step (batch loss) or the epoch. */
typedef struct curve_points {
    double *x, *y;
    int n, cap;
} curve_points;

enum { CURVES_NONE = 0, CURVES_LIVE, CURVES_LOADED }; /* submission.curves_from */

typedef struct submission {
    struct tb_study *study;          /* for the run's callbacks, whose user pointer is the submission */
    int participant;                 /* index */
    int number;                      /* 1-based within the participant; 0 until its record is applied */
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    double submitted, started, ended; /* UTC; NaN until reached */
    tb_hp_values values;
    char comments[TB_HP_COUNT][256];
    int given[TB_HP_COUNT];          /* 1: the participant gave it; 0: the preset */
    tb_run_status status;
    char message[256];
    int epochs;                      /* asked for */
    int epoch, batch, batches_per_epoch;
    double batch_loss, epoch_loss, val_loss, val_accuracy, test_accuracy;
    double train_seconds;
    uint64_t seq;
    tb_job *job;                     /* while queued or training */
    char placement[64];              /* where the executor put its job ("slurm:1234"), "" in this process */
    curve_points curve[4];           /* tb_fe_curve_kind */
    int curves_from;                 /* CURVES_LIVE: this process saw every event; CURVES_LOADED: read
                                      * from the archive; CURVES_NONE: not yet (a run of an earlier session) */
} submission;

typedef struct final_eval {
    int participant;
    int64_t seed;
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    tb_run_status status;
    double test_accuracy, started, ended;
    tb_job *job;
    char placement[64];              /* as a submission's */
} final_eval;

typedef struct participant {
    char id[64];
    char education[32];
    double dl_months, programming_months, ml_months;
    int self_level;
    double registered, consented;
    pstate state;
    double active_since;             /* UTC, while active */
    double lobby_since;              /* UTC, while in the lobby */
    double lobby_polled;             /* UTC of the last enter() while in the lobby (not journalled) */
    double used_closed;              /* seconds of closed active intervals */
    double credited;                 /* seconds given back */
    int live;                        /* index of the live submission, or -1 */
    int n_submissions;
    char final_run[TB_ARCHIVE_ID_MAX + 1];
    char final_reason[16];
    double final_at;
} participant;

typedef struct event_row {
    double t;
    int type;
    char participant[64];
    char run_id[TB_ARCHIVE_ID_MAX + 1];
    char detail[160];
} event_row;

struct tb_study {
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* any run or participant changed: wakes wait() */
    pthread_cond_t stop;      /* the monitor's own wake-up: closing (batch events must not wake it) */
    tb_study_settings st;
    tb_space space;
    char *config_ini;     /* the study configuration as given */
    char *job_base_ini;   /* the sections a run reads (no [study], [space], front ends) */
    tb_archive *archive;
    tb_journal *journal;
    tb_executor *exec;
    participant *p;
    int np, cap_p;
    submission **subs;
    int ns, cap_s;
    submission *spare_sub; /* study_reserve's: the next submission study_apply adds */
    final_eval *finals;
    int nf, cap_f;
    event_row *events;
    int ne, cap_e;
    double created, last_record;
    int dirty;            /* study.h5 needs rewriting */
    int closing;          /* set under the mutex by tb_study_close: no more calls */
    char environment[512];
    char *space_ini;      /* the space as INI text, for /study */
    uint64_t change_seq;  /* bumped by study_touch: any change a front end may show */
    int admitting;        /* 0 once the organiser stopped admission (journalled: REC_ADMISSION) */
    char hp_readers[TB_HP_COUNT][64]; /* the optimizers that read each hyperparameter, '|'-separated; "" all */
    pthread_t monitor;
    int monitor_started;
    volatile sig_atomic_t interrupts;
    int interrupts_taken;
    char hp_allowed[TB_HP_COUNT][160];
    tb_study_api api;
    tb_err bg_err;        /* the last background failure (journal, tables) */
};

/* ---- records (study_record.c) ------------------------------------------------------------- */

/* A record's payload being built: "key=value\n" lines, values with \\ and \n escaped. */
typedef struct rec_buf {
    char *p;
    size_t n, cap;
    int oom;
} rec_buf;

void rec_str(rec_buf *b, const char *key, const char *v);
void rec_f64(rec_buf *b, const char *key, double v);
void rec_i64(rec_buf *b, const char *key, int64_t v);
/* Finds key in a payload and unescapes its value into out; 0 found, -1 not ("" then). */
int rec_get(const char *data, size_t len, const char *key, char *out, size_t cap);
double rec_get_f64(const char *data, size_t len, const char *key, double def);

/* Adds t to b, appends the record to the journal (fsync'ed when durable) and
 * applies it with study_apply; b is freed. Mutex held. The caller has
 * validated the change and called study_reserve, so applying cannot fail on
 * memory once the record is durable. */
tb_status study_commit(tb_study *s, int type, rec_buf *b, double t, int durable, tb_err *err);

/* The payloads of the records more than one file writes. */
void rec_submission(rec_buf *b, const char *pid, const submission *u);
void rec_run_end(rec_buf *b, const char *pid, const char *run_id, tb_run_status status, double val_accuracy,
                 double test_accuracy, int epoch, const char *message);
void rec_final_end(rec_buf *b, const char *pid, const char *run_id, tb_run_status status,
                   double test_accuracy, double started, const char *message);

/* ---- the model (study_state.c) ------------------------------------------------------------ */

/* Interprets one journal record: the only code that changes the journalled
 * state, for replay and for every live change. Errors: a record naming a
 * participant nobody registered, one registered twice (TB_EFORMAT), memory. */
tb_status study_apply(tb_study *s, uint32_t type, const char *data, size_t len, tb_err *err);
/* Makes room for one more of everything study_apply may add (and the spare
 * submission it adopts, whose address a run's callbacks get before its
 * record is written). Mutex held. */
tb_status study_reserve(tb_study *s, tb_err *err);
void study_free_state(tb_study *s);
/* A zeroed study with its lock (recursive) and conditions, nothing loaded;
 * NULL when out of memory. study_free releases everything it holds. (study.c) */
tb_study *study_new(void);
/* now + timeout_ms on CLOCK_MONOTONIC, the clock s->changed and s->stop wait on */
struct timespec study_deadline(int timeout_ms);
void study_free(tb_study *s);

int study_find_participant(const tb_study *s, const char *id);
submission *study_find_submission(const tb_study *s, const char *run_id);
final_eval *study_find_final(tb_study *s, const char *run_id);
/* Budget used: closed intervals, the open one, minus credits; a run still queued does not count. */
double study_used_seconds(const tb_study *s, const participant *p, double now);
int study_active_count(const tb_study *s);
int study_max_active(const tb_study *s);
/* 1-based position in the lobby, 0 when not there (see study_state.c). */
int study_lobby_position(const tb_study *s, int pi, double now);
const char *study_state_name(const participant *p);
/* The best finished submission by validation accuracy (ties: the earlier), or NULL. */
submission *study_best_run(tb_study *s, int pi);

typedef struct final_stats {
    int total, done, finished; /* runs counted (replaced interrupted ones are not), ended, finished */
    double mean, sd;           /* test accuracy over the finished ones once none is pending; NaN before
                                * (sd: NaN with fewer than two) */
} final_stats;
final_stats study_finals_of(const tb_study *s, int pi);

/* Wakes waiters, bumps the study's change counter (and sub's when given). */
void study_touch(tb_study *s, submission *sub);
/* Appends a point to one of u's curves (a live event); -1 when out of memory. Mutex held. */
int study_curve_add(submission *u, int kind, double x, double y);
void study_curves_free(submission *u);

/* ---- live changes shared by several files (study_runs.c) ---------------------------------- */

/* A run's configuration: the base with the values (and extra key=value pairs)
 * applied, parsed once: *cfg (the caller's, to free or give to a job) and
 * *ini, its INI text (malloc'd; the archived record). Both NULL on failure. */
tb_status study_job_config(const tb_study *s, const tb_hp_values *v, const char *const *extra, int n_extra,
                           char **ini, tb_config **cfg, tb_err *err);
/* Stops participant pi's clock (journalled). Mutex held. */
tb_status study_pause(tb_study *s, int pi, const char *reason, double t, tb_err *err);
/* Gives seconds back to a participant's budget (journalled). Mutex held. */
tb_status study_credit(tb_study *s, int pi, const char *run_id, double seconds, const char *reason, double t,
                       tb_err *err);
/* Journals participant pi's submission as draft describes it (values,
 * comments, given, submitted) and queues its job with configuration ini,
 * given parsed as cfg (study_job_config's; taken, freed also on failure) and
 * typed as conf (tb_run_config_parse of cfg), so the job does not parse it
 * again; ini NULL (cfg NULL) journals it rejected with draft's message.
 * *u_out: the submission study_apply made, also when the executor then
 * refused the job (it ended interrupted). Mutex held. */
tb_status study_submit(tb_study *s, int pi, const submission *draft, const char *ini, tb_config *cfg,
                       const tb_run_config *conf, submission **u_out, tb_err *err);
/* Queues the final evaluations of participant pi that are missing. Mutex held. */
tb_status study_queue_finals(tb_study *s, int pi, tb_err *err);
/* Ends participant pi's tuning with run u (NULL: none) for reason. Mutex held. */
tb_status study_conclude(tb_study *s, int pi, submission *u, const char *reason, tb_err *err);
void *study_monitor_main(void *arg);

/* ---- the rest ----------------------------------------------------------------------------- */

/* Replays DIR/study.journal into s (study_recovery.c). A damaged tail is
 * kept aside and cut (rec's journal_* fields), or, when intact records
 * follow the damage and accept_loss is 0, refused: TB_EFORMAT, nothing
 * changed. */
tb_status study_replay(tb_study *s, const char *journal_path, int accept_loss, tb_study_recovery *rec, tb_err *err);
/* Test-only (tests/fuzz/fuzz_study_journal.c): a fresh in-memory study from
 * cfg's [study] and [space] (no archive, journal handle, executor or task),
 * journal_path replayed into it with study_replay, the per-participant
 * queries (budget used, lobby position, best run, finals) asked once, then
 * freed. What replay does to the file (a damaged or torn tail cut, kept
 * aside) happens as on open, with the loss accepted; no settling (that needs
 * the archive). */
tb_status study_replay_detached(const tb_config *cfg, const char *journal_path, tb_err *err);
/* After replay: settles what a crash left behind (see study_recovery.c),
 * journals the loss study_replay put in rec, and notes archive runs the
 * journal does not know. Mutex held. */
/* A run a crashed process left on the cluster (its placement journalled):
 * this process follows it again through the executor (tb_executor_adopt),
 * recording the rest of it in its archive run. TB_EIO and nothing changed when
 * it cannot be taken up (the archive ended it otherwise, the executor cannot
 * follow it); the caller then settles it as interrupted. Mutex held. */
tb_status study_adopt_submission(tb_study *s, submission *u, tb_err *err);
tb_status study_adopt_final(tb_study *s, final_eval *f, tb_err *err);

tb_status study_settle(tb_study *s, double crash_t, tb_study_recovery *rec, tb_err *err);
void study_fill_api(tb_study *s);
/* Fills s->hp_readers from the space's optimizer choices (study_api.c). */
void study_hp_readers(tb_study *s);
void study_environment(char *out, size_t cap);
/* Rewrites DIR/study.h5 (study_tables.c). Mutex held. */
tb_status study_write_tables(tb_study *s, int durable, tb_err *err);

#endif
