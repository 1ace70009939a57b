/* study_recovery.c: reopening a study. Replay feeds every journal record to
 * study_apply, the function live changes go through, so the state rebuilt is
 * the state the previous process had acknowledged. Settling then ends what a
 * crash left open, as ordinary records (pause, run_start, run_end, credit,
 * final_end, final_queued) committed through study_commit: the recovery
 * step's decisions are journalled like any other change, and a second crash
 * replays them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "study_internal.h"

typedef struct replay_ctx {
    tb_study *s;
    tb_err err; /* why study_apply refused a record */
    tb_status st;
} replay_ctx;

static int replay_record(void *vctx, uint32_t type, const void *data, size_t len)
{
    replay_ctx *ctx = vctx;
    ctx->st = study_apply(ctx->s, type, data, len, &ctx->err);
    return ctx->st == TB_OK ? 0 : -1;
}

/* The damage found by tb_journal_scan: refused, or kept aside and cut. */
static tb_status cut_damage(const char *path, const tb_journal_damage *d, int accept_loss, tb_study_recovery *rec,
                            tb_err *err)
{
    rec->journal_damaged = 1;
    rec->journal_damage_at = d->valid_bytes;
    rec->journal_bytes_cut = d->file_bytes - d->valid_bytes;
    rec->journal_records_lost = d->records_after;
    if (d->records_after > 0 && !accept_loss) {
        rec->journal_refused = 1;
        return tb_fail(err, TB_EFORMAT,
                       "study journal %s is damaged at byte %llu of %llu, and %llu intact records (%llu bytes, the "
                       "first at byte %llu) follow the damage: opening would drop them. The journal was not "
                       "changed; keep a copy of the archive, then open the study accepting the loss to continue "
                       "from the %llu records before byte %llu (the rest is kept in %s.damaged-N)",
                       path, (unsigned long long)d->valid_bytes, (unsigned long long)d->file_bytes,
                       (unsigned long long)d->records_after, (unsigned long long)d->bytes_after,
                       (unsigned long long)d->resync_at, (unsigned long long)d->records_valid,
                       (unsigned long long)d->valid_bytes, path);
    }
    /* the cut bytes are never lost: kept before the journal is cut */
    tb_status st = tb_journal_save_tail(path, d->valid_bytes, rec->journal_kept, sizeof rec->journal_kept, err);
    if (st == TB_OK) st = tb_journal_truncate(path, d->valid_bytes, err);
    return st;
}

tb_status study_replay(tb_study *s, const char *journal_path, int accept_loss, tb_study_recovery *rec, tb_err *err)
{
    tb_journal_damage d;
    tb_status st = tb_journal_scan(journal_path, &d, err);
    if (st != TB_OK) return st;
    if (d.valid_bytes < d.file_bytes && (st = cut_damage(journal_path, &d, accept_loss, rec, err)) != TB_OK)
        return st;
    replay_ctx ctx = {.s = s, .st = TB_OK};
    st = tb_journal_read(journal_path, replay_record, &ctx, NULL, NULL, err);
    if (st != TB_OK && ctx.st != TB_OK)
        return tb_fail(err, ctx.st == TB_ENOMEM ? TB_ENOMEM : TB_EFORMAT, "study journal %s: %s", journal_path,
                       ctx.err.msg);
    return st;
}

/* A participant's run the journal saw begin but not end: the archive knows
 * how far it got; otherwise it was interrupted, and the work lost is given
 * back. */
static tb_status settle_submission(tb_study *s, int i, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    submission *u = s->subs[i];
    tb_archive_run_info info;
    tb_run_status end = TB_RUN_INTERRUPTED;
    double val = NAN, test = NAN;
    int64_t epoch = u->epoch;
    char msg[256] = "the study process stopped while the run was live";
    const char *pid = s->p[u->participant].id;
    tb_status st;
    tb_err why;
    /* a run still on the cluster: followed again, not ended */
    if (u->placement[0] && study_adopt_submission(s, u, &why) == TB_OK) {
        if (rec) rec->adopted_runs++;
        return TB_OK;
    }
    if (tb_archive_run_info_by_id(s->archive, u->run_id, &info, NULL) == TB_OK) {
        if (tb_run_status_is_final(info.status)) end = info.status;
        val = info.val_accuracy;
        test = info.test_accuracy;
        epoch = info.last_epoch;
        if (info.message[0]) tb_copy_str(msg, sizeof msg, info.message);
        if (!isfinite(u->started) && isfinite(info.started_s)) {
            /* it started after the journal's last word: say so, at the archive's time */
            rec_buf b = {0};
            rec_str(&b, "run", u->run_id);
            rec_str(&b, "participant", pid);
            if ((st = study_commit(s, REC_RUN_START, &b, info.started_s, 1, err)) != TB_OK) return st;
        }
    }
    rec_buf b = {0};
    rec_run_end(&b, pid, u->run_id, end, val, test, (int)epoch, end == TB_RUN_FINISHED ? "" : msg);
    if ((st = study_commit(s, REC_RUN_END, &b, crash_t, 1, err)) != TB_OK) return st;
    if (end == TB_RUN_INTERRUPTED) {
        /* the work the crash destroyed was the participant's time: give it back */
        double from = isfinite(u->started) ? u->started : u->submitted;
        double lost = crash_t - from;
        if (lost > 0 && s->p[u->participant].state != P_DONE) {
            if ((st = study_credit(s, u->participant, u->run_id, lost, "interrupted", crash_t, err)) != TB_OK)
                return st;
            if (rec) rec->credited_s += lost;
        }
        if (rec) rec->interrupted_runs++;
    }
    return TB_OK;
}

/* A final evaluation that did not end: the archive may know it finished;
 * else it ends interrupted (and is queued again below). */
static tb_status settle_final(tb_study *s, final_eval *f, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    tb_err why;
    if (f->placement[0] && study_adopt_final(s, f, &why) == TB_OK) {
        if (rec) rec->adopted_runs++;
        return TB_OK;
    }
    tb_archive_run_info info;
    tb_run_status end = TB_RUN_INTERRUPTED;
    double test = NAN;
    if (tb_archive_run_info_by_id(s->archive, f->run_id, &info, NULL) == TB_OK &&
        tb_run_status_is_final(info.status) && info.status != TB_RUN_INTERRUPTED) {
        end = info.status;
        test = info.test_accuracy;
    }
    rec_buf b = {0};
    rec_final_end(&b, s->p[f->participant].id, f->run_id, end, test, f->started, NULL);
    return study_commit(s, REC_FINAL_END, &b, crash_t, 1, err);
}

/* The journal's cut tail, in the journal itself (an events row of study.h5). */
static tb_status record_loss(tb_study *s, const tb_study_recovery *rec, double now, tb_err *err)
{
    const char *kept = strrchr(rec->journal_kept, '/');
    rec_buf b = {0};
    rec_i64(&b, "at", (int64_t)rec->journal_damage_at);
    rec_i64(&b, "bytes", (int64_t)rec->journal_bytes_cut);
    rec_i64(&b, "records", (int64_t)rec->journal_records_lost);
    rec_str(&b, "kept", kept ? kept + 1 : rec->journal_kept);
    return study_commit(s, REC_JOURNAL_LOSS, &b, now, 1, err);
}

static int known_unrecorded(const tb_study *s, const char *run_id)
{
    for (int i = 0; i < s->ne; i++)
        if (s->events[i].type == REC_UNRECORDED && strcmp(s->events[i].run_id, run_id) == 0) return 1;
    return 0;
}

#define UNRECORDED_NOTE "not recorded by the study: study.journal has no record of this run"

/* Runs of the study (kind submission or final) that the archive has and the
 * journal does not: the process stopped between registering the run in the
 * archive and journalling it (the participant was never told it was
 * submitted), or its record was cut from a damaged journal. They are not
 * adopted as submissions; the index's message says why they are not in the
 * study's tables, and an "unrecorded_run" event in study.h5 lists them, so
 * the two agree. The archive ended them when it opened (no run is live now). */
static tb_status settle_unrecorded(tb_study *s, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    size_t n = tb_archive_run_count(s->archive);
    for (size_t i = 0; i < n; i++) {
        tb_archive_run_info info;
        if (tb_archive_run_info_at(s->archive, i, &info, NULL) != TB_OK) continue;
        int sub = strcmp(info.kind, "submission") == 0, fin = strcmp(info.kind, "final") == 0;
        if (!sub && !fin) continue;
        if ((sub ? (void *)study_find_submission(s, info.id) : (void *)study_find_final(s, info.id)) ||
            known_unrecorded(s, info.id))
            continue;
        tb_status st;
        if (strncmp(info.message, UNRECORDED_NOTE, strlen(UNRECORDED_NOTE)) != 0) { /* not noted by an earlier try */
            char note[1024];
            snprintf(note, sizeof note,
                     UNRECORDED_NOTE " (the study process stopped between registering it and journalling the %s, or "
                     "the record was cut from a damaged journal); it is not one of %s's %s. Archive: %.400s",
                     sub ? "submission" : "final evaluation", info.participant[0] ? info.participant : "(nobody)",
                     sub ? "submissions" : "final evaluations", info.message);
            if ((st = tb_archive_run_note(s->archive, info.id, note, err)) != TB_OK) return st;
        }
        rec_buf b = {0};
        rec_str(&b, "participant", info.participant);
        rec_str(&b, "run", info.id);
        rec_str(&b, "kind", info.kind);
        rec_str(&b, "status", tb_run_status_name(info.status));
        if ((st = study_commit(s, REC_UNRECORDED, &b, crash_t, 1, err)) != TB_OK) return st;
        rec->unrecorded_runs++;
        /* a submission the crash cut short, like a journalled one still queued:
         * the time from the click to the last sign of life is given back */
        int pi = study_find_participant(s, info.participant);
        double lost = crash_t - info.created_s;
        if (sub && pi >= 0 && !rec->journal_damaged && info.status == TB_RUN_INTERRUPTED && s->p[pi].state != P_DONE &&
            lost > 0 && (st = study_credit(s, pi, info.id, lost, "unrecorded", crash_t, err)) != TB_OK)
            return st;
    }
    return TB_OK;
}

tb_status study_settle(tb_study *s, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    tb_status st;
    if (rec->journal_damaged && (st = record_loss(s, rec, tb_utc_now(), err)) != TB_OK) return st;
    /* clocks that were running stop at the last sign of life */
    for (int i = 0; i < s->np; i++)
        if (s->p[i].state == P_ACTIVE || s->p[i].state == P_LOBBY)
            if ((st = study_pause(s, i, "restart", crash_t, err)) != TB_OK) return st;
    for (int i = 0; i < s->ns; i++) {
        submission *u = s->subs[i];
        if (u->status == TB_RUN_REJECTED || tb_run_status_is_final(u->status)) continue;
        if ((st = settle_submission(s, i, crash_t, rec, err)) != TB_OK) return st;
    }
    for (int i = 0; i < s->nf; i++)
        if (!tb_run_status_is_final(s->finals[i].status) && (st = settle_final(s, &s->finals[i], crash_t, rec, err)) != TB_OK)
            return st;
    for (int i = 0; i < s->np; i++) {
        if (s->p[i].state != P_DONE || !s->p[i].final_run[0]) continue;
        int before = s->nf;
        if ((st = study_queue_finals(s, i, err)) != TB_OK) return st;
        if (rec) rec->finals_requeued += s->nf - before;
    }
    return settle_unrecorded(s, crash_t, rec, err);
}
