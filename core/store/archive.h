/* archive.h: a study archive, the crash-safe store every run of a study goes to
 * (layout, guarantees and reading examples: docs/archive.md).
 *
 *   DIR/study.lock           flock()ed by the one process that writes; holds its pid
 *   DIR/index.h5             the table of runs (/index), rewritten into a temporary
 *                            file and renamed into place, so it is always complete
 *   DIR/runs/<id>.journal    the run's checksummed record log (core/store/journal.h): the truth
 *   DIR/runs/<id>.h5         the run's curves, written with SWMR while the run is live
 *
 * Durability: tb_archive_run_epoch returns only when the epoch is fsync'ed in
 * the journal and appended, flushed and fsync'ed in the run file; only then may
 * it be shown to anyone. Every state change is fsync'ed in the journal before
 * the index is rewritten. tb_archive_open recovers what a killed writer left:
 * torn journal tails are cut, every run is replayed from its journal, run files
 * that disagree with their journal (or were live) are rebuilt from it (a file
 * that cannot be opened is kept aside as runs/<id>.h5.damaged-N; h5clear is never
 * used), unfinished runs become "interrupted", and the index is rewritten.
 *
 * Threads: every function may be called from any thread. One mutex per archive
 * serialises them (the HDF5 library has one global lock anyway); a run handle
 * must not be used after tb_archive_run_finish or tb_archive_close. fork() only
 * with no archive open in the forking process, or exec/_exit in the child.
 *
 * Only one process may open an archive (readers open the files directly, without
 * tunebench or with tb_archive_export, and take no lock). Local POSIX file
 * systems only: SWMR and flock do not work on NFS. */
#ifndef TB_ARCHIVE_H
#define TB_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

#define TB_ARCHIVE_INDEX_FORMAT "tunebench-archive-index"
#define TB_ARCHIVE_RUN_FORMAT "tunebench-archive-run"
#define TB_ARCHIVE_EXPORT_FORMAT "tunebench-archive-export"
#define TB_ARCHIVE_VERSION 1

/* Longest run id / kind (bytes, without the NUL); ids are [A-Za-z0-9._-], not starting with '.'. */
#define TB_ARCHIVE_ID_MAX 31
#define TB_ARCHIVE_KIND_MAX 31

/* 1 when s is 1 to max of [A-Za-z0-9._-] not starting with '.': run ids,
 * kinds, participant pseudonyms (safe as file names and HDF5 names). */
int tb_archive_valid_name(const char *s, size_t max);

typedef enum tb_run_status {
    TB_RUN_QUEUED = 0,
    TB_RUN_TRAINING,
    TB_RUN_FINISHED,    /* final states from here on */
    TB_RUN_CANCELLED,
    TB_RUN_DIVERGED,
    TB_RUN_INTERRUPTED, /* the writing process stopped (crash, kill, archive closed) while the run was live */
    TB_RUN_REJECTED,
} tb_run_status;

/* "queued", "training", "finished", "cancelled", "diverged", "interrupted", "rejected" */
const char *tb_run_status_name(tb_run_status s);
/* 0 and *out set, or -1 for an unknown name */
int tb_run_status_parse(const char *name, tb_run_status *out);
/* 1 for finished, cancelled, diverged, interrupted, rejected */
int tb_run_status_is_final(tb_run_status s);

typedef struct tb_archive tb_archive;
typedef struct tb_archive_run tb_archive_run;

/* What tb_archive_open found and repaired. */
typedef struct tb_archive_recovery {
    int runs;                /* runs in the archive */
    int interrupted;         /* runs found live and marked interrupted */
    int rebuilt;             /* run files rewritten from their journal */
    int damaged;             /* run files that could not be opened, kept aside as <id>.h5.damaged-N */
    int journals_cut;        /* journals whose torn or bad tail was dropped */
    uint64_t bytes_dropped;  /* total bytes dropped from those tails */
    int empty_journals;      /* journals without a valid first record (run never began), set aside */
} tb_archive_recovery;

/* Opens the archive in dir for writing (create: make it when missing), takes
 * its lock and recovers (see above). A second process gets TB_EIO and
 * "archive DIR is in use by process PID". recovery may be NULL. */
tb_status tb_archive_open(const char *dir, int create, tb_archive **out, tb_archive_recovery *recovery, tb_err *err);

/* Marks every run still open "interrupted" (message "archive closed while the
 * run was live"), rewrites the index, releases the lock. NULL is fine. */
tb_status tb_archive_close(tb_archive *a, tb_err *err);

const char *tb_archive_dir(const tb_archive *a);

/* Begins a run, status "queued". id NULL allocates the next "r000001"-style id.
 * kind: e.g. "submission", "final", "sweep" ([A-Za-z0-9._-], at most 31 bytes).
 * participant may be NULL or "". attrs_ini: free text stored as the run file's
 * /config attribute "ini" (e.g. the resolved configuration); may be NULL.
 * Durable when it returns; out receives the handle. */
tb_status tb_archive_begin_run(tb_archive *a, const char *id, const char *kind, const char *participant,
                               const char *attrs_ini, tb_archive_run **out, tb_err *err);

const char *tb_archive_run_id(const tb_archive_run *r);

/* Takes up again a run that this open found live and ended "interrupted" (its
 * writer crashed while the run went on elsewhere: a Slurm job a restarted
 * study follows again). The run is "training" again (message says why, in its
 * journal), its file is made live anew from the journal, and out receives a
 * handle as tb_archive_begin_run gives; *last_epoch and *last_step say what it
 * holds already (0 when nothing). TB_EINVAL for a run that is not
 * interrupted, or is open. */
tb_status tb_archive_resume_run(tb_archive *a, const char *id, const char *message, tb_archive_run **out,
                                int64_t *last_epoch, int64_t *last_step, tb_err *err);

/* Appends one epoch (1-based epoch numbers, increasing; val_* NaN when there is
 * no validation split). DURABLE when it returns TB_OK: journal fsync'ed, run
 * file appended, flushed and fsync'ed. Report an epoch only after this. The
 * index is not rewritten for each epoch: it shows them once it is 5 s old (at
 * the next epoch or batches of any run) and at every status change. */
tb_status tb_archive_run_epoch(tb_archive_run *r, int64_t epoch, double train_loss, double val_loss,
                               double val_accuracy, double seconds, tb_err *err);

/* Appends n batch losses (global step numbers). Journalled without fsync:
 * they survive kill -9 at once and power loss from the next epoch on. */
tb_status tb_archive_run_batches(tb_archive_run *r, size_t n, const int64_t *step, const double *loss, tb_err *err);

/* A non-final status change (queued -> training: sets "started"); durable. */
tb_status tb_archive_run_status(tb_archive_run *r, tb_run_status status, const char *message, tb_err *err);

/* Ends the run with a final status (test_accuracy NaN when not tested), closes
 * its files and frees r, whatever the result. Durable when it returns TB_OK. */
tb_status tb_archive_run_finish(tb_archive_run *r, tb_run_status status, double test_accuracy, const char *message,
                                tb_err *err);

/* One row of the index, copied out (strings truncated to the buffers). Times are
 * UTC seconds since the epoch, NaN when not reached; the ISO 8601 forms are
 * what index.h5 stores beside them. */
typedef struct tb_archive_run_info {
    char id[TB_ARCHIVE_ID_MAX + 1];
    char kind[TB_ARCHIVE_KIND_MAX + 1];
    char participant[128];
    tb_run_status status;
    double created_s, started_s, ended_s;
    char created[32], started[32], ended[32];
    int64_t last_epoch; /* last epoch completed, 0 before the first */
    int64_t epochs, batches;
    double val_accuracy;  /* of the last epoch completed, NaN before */
    double test_accuracy; /* NaN when not tested */
    char message[512];
    int live;             /* 1 while a handle is open in this process */
} tb_archive_run_info;

size_t tb_archive_run_count(tb_archive *a);
/* Rows in creation order; TB_EINVAL when i is out of range. */
tb_status tb_archive_run_info_at(tb_archive *a, size_t i, tb_archive_run_info *out, tb_err *err);
/* TB_EINVAL when there is no such run. */
tb_status tb_archive_run_info_by_id(tb_archive *a, const char *id, tb_archive_run_info *out, tb_err *err);

/* A run's curves as its journal holds them (also while it is live: what has
 * been written so far). Free with tb_archive_curves_free. */
typedef struct tb_archive_curves {
    size_t n_batch;
    int64_t *step;
    double *loss;
    size_t n_epoch;
    int64_t *epoch;
    double *train_loss, *val_loss, *val_accuracy, *seconds;
} tb_archive_curves;
tb_status tb_archive_run_curves(tb_archive *a, const char *id, tb_archive_curves *out, tb_err *err);
void tb_archive_curves_free(tb_archive_curves *c);

/* Replaces the message of an ended run (not live): journalled as a status
 * record with the same status, end time and test accuracy, then the run
 * file is rebuilt from the journal and the index rewritten (durable). The
 * study uses it to say in the index why a run it has no record of ended
 * (docs/study.md, "Runs the study has no record of"). */
tb_status tb_archive_run_note(tb_archive *a, const char *id, const char *message, tb_err *err);

/* Packs the archive in dir into one self-contained HDF5 file (written to a
 * temporary name and renamed): /index (the index's columns) and /runs/<id>
 * (each run file's contents, copied with H5Ocopy). Takes no lock: it reads a
 * closed archive, or what a live one's files show at the moment. */
tb_status tb_archive_export(const char *dir, const char *out_path, tb_err *err);

/* DIR/runs/<id><suffix> (".journal", ".h5", ".run.h5") into out; 0, or -1 when it does not fit. */
int tb_archive_run_path(char *out, size_t cap, const char *dir, const char *id, const char *suffix);

#endif
