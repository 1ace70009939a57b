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

tb_status study_replay(tb_study *s, const char *journal_path, tb_err *err)
{
    uint64_t dropped = 0;
    tb_status st = tb_journal_truncate_to_valid(journal_path, &dropped, err);
    if (st != TB_OK) return st;
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
static tb_status settle_final(tb_study *s, const final_eval *f, double crash_t, tb_err *err)
{
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

tb_status study_settle(tb_study *s, double crash_t, tb_study_recovery *rec, tb_err *err)
{
    tb_status st;
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
        if (!tb_run_status_is_final(s->finals[i].status) && (st = settle_final(s, &s->finals[i], crash_t, err)) != TB_OK)
            return st;
    for (int i = 0; i < s->np; i++) {
        if (s->p[i].state != P_DONE || !s->p[i].final_run[0]) continue;
        int before = s->nf;
        if ((st = study_queue_finals(s, i, err)) != TB_OK) return st;
        if (rec) rec->finals_requeued += s->nf - before;
    }
    return TB_OK;
}
