/* study_state.c: the study's in-memory model (participants, submissions,
 * final evaluations, the events table) and study_apply, the one place that
 * says what each journal record means. Replay (study_recovery.c) and every
 * live change (through study_commit) call it; nothing else changes the
 * journalled state. Also the views derived from the model (budget used,
 * lobby position, final statistics). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study_internal.h"

#define LOBBY_STALE_S 10.0 /* a lobby place is kept this long without enter() (front ends poll every ~1 s) */

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

tb_status study_reserve(tb_study *s, tb_err *err)
{
    if (grow((void **)&s->p, &s->cap_p, s->np + 1, sizeof *s->p) != 0 ||
        grow((void **)&s->subs, &s->cap_s, s->ns + 1, sizeof *s->subs) != 0 ||
        grow((void **)&s->finals, &s->cap_f, s->nf + 1, sizeof *s->finals) != 0 ||
        grow((void **)&s->events, &s->cap_e, s->ne + 1, sizeof *s->events) != 0 ||
        (!s->spare_sub && !(s->spare_sub = calloc(1, sizeof *s->spare_sub))))
        return tb_fail(err, TB_ENOMEM, "out of memory");
    s->spare_sub->study = s; /* its callbacks find the study through it, even before it is applied */
    return TB_OK;
}

void study_curves_free(submission *u)
{
    for (int k = 0; k < 4; k++) {
        free(u->curve[k].x);
        free(u->curve[k].y);
        memset(&u->curve[k], 0, sizeof u->curve[k]);
    }
}

int study_curve_add(submission *u, int kind, double x, double y)
{
    curve_points *c = &u->curve[kind];
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 256;
        double *nx = realloc(c->x, (size_t)cap * sizeof *nx);
        if (!nx) return -1;
        c->x = nx;
        double *ny = realloc(c->y, (size_t)cap * sizeof *ny);
        if (!ny) return -1;
        c->y = ny;
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
    return 0;
}

void study_free_state(tb_study *s)
{
    for (int i = 0; i < s->ns; i++) {
        study_curves_free(s->subs[i]);
        free(s->subs[i]);
    }
    free(s->subs);
    free(s->spare_sub);
    free(s->p);
    free(s->finals);
    free(s->events);
}

static participant *add_participant(tb_study *s)
{
    if (grow((void **)&s->p, &s->cap_p, s->np + 1, sizeof *s->p) != 0) return NULL;
    participant *p = &s->p[s->np++];
    memset(p, 0, sizeof *p);
    p->live = -1;
    p->registered = p->consented = p->active_since = p->lobby_since = p->lobby_polled = p->final_at = NAN;
    p->programming_months = p->ml_months = NAN;
    return p;
}

/* Adopts the spare submission when there is one (its address may already be
 * a run's callback pointer: see study_submit). */
static submission *add_submission(tb_study *s)
{
    if (grow((void **)&s->subs, &s->cap_s, s->ns + 1, sizeof *s->subs) != 0) return NULL;
    submission *u = s->spare_sub ? s->spare_sub : calloc(1, sizeof *u);
    if (!u) return NULL;
    s->spare_sub = NULL;
    memset(u, 0, sizeof *u);
    u->study = s;
    u->submitted = u->started = u->ended = NAN;
    u->batch_loss = u->epoch_loss = u->val_loss = u->val_accuracy = u->test_accuracy = NAN;
    s->subs[s->ns++] = u;
    return u;
}

static final_eval *add_final(tb_study *s)
{
    if (grow((void **)&s->finals, &s->cap_f, s->nf + 1, sizeof *s->finals) != 0) return NULL;
    final_eval *f = &s->finals[s->nf++];
    memset(f, 0, sizeof *f);
    f->test_accuracy = f->started = f->ended = NAN;
    f->status = TB_RUN_QUEUED;
    return f;
}

static void close_interval(participant *p, double t)
{
    if (p->state == P_ACTIVE && isfinite(p->active_since) && t > p->active_since) p->used_closed += t - p->active_since;
    p->active_since = NAN;
}

static void add_event(tb_study *s, double t, int type, const char *pid, const char *run_id, const char *detail)
{
    /* the events table is a convenience for analysts: without memory, it misses a row */
    if (grow((void **)&s->events, &s->cap_e, s->ne + 1, sizeof *s->events) != 0) return;
    event_row *e = &s->events[s->ne++];
    e->t = t;
    e->type = type;
    tb_copy_str(e->participant, sizeof e->participant, pid);
    tb_copy_str(e->run_id, sizeof e->run_id, run_id);
    tb_copy_str(e->detail, sizeof e->detail, detail);
}

/* A number from a record as an int: def when it is not finite or outside int's
 * range (a damaged record must not make the conversion undefined). */
static int int_of(double v, int def) { return v >= INT_MIN && v <= INT_MAX ? (int)v : def; }
static int rec_int(const char *d, size_t len, const char *key, int def)
{
    return int_of(rec_get_f64(d, len, key, def), def);
}

static void apply_submit(tb_study *s, submission *u, int pi, const char *d, size_t len)
{
    participant *p = &s->p[pi];
    char text[64];
    u->participant = pi;
    u->number = ++p->n_submissions;
    rec_get(d, len, "run", u->run_id, sizeof u->run_id);
    rec_get(d, len, "status", text, sizeof text);
    if (tb_run_status_parse(text, &u->status) != 0) u->status = TB_RUN_QUEUED;
    rec_get(d, len, "message", u->message, sizeof u->message);
    for (int h = 0; h < TB_HP_COUNT; h++) {
        char key[64];
        snprintf(key, sizeof key, "v.%s", tb_hp_names[h]);
        rec_get(d, len, key, u->values.text[h], sizeof u->values.text[h]);
        snprintf(key, sizeof key, "c.%s", tb_hp_names[h]);
        rec_get(d, len, key, u->comments[h], sizeof u->comments[h]);
        snprintf(key, sizeof key, "g.%s", tb_hp_names[h]);
        u->given[h] = rec_int(d, len, key, 0);
    }
    u->epochs = int_of(strtod(u->values.text[TB_HP_EPOCHS], NULL), 0);
    if (u->status != TB_RUN_REJECTED) p->live = s->ns - 1;
}

static void apply_run_end(tb_study *s, submission *u, double t, const char *d, size_t len, char *text, size_t cap)
{
    rec_get(d, len, "status", text, cap);
    if (tb_run_status_parse(text, &u->status) != 0) u->status = TB_RUN_INTERRUPTED;
    u->ended = t;
    u->val_accuracy = rec_get_f64(d, len, "val_accuracy", NAN);
    u->test_accuracy = rec_get_f64(d, len, "test_accuracy", NAN);
    u->epoch = rec_int(d, len, "epoch", 0);
    int bpe = rec_int(d, len, "batches_per_epoch", 0); /* absent in older journals and crash records */
    if (bpe > 0) u->batches_per_epoch = bpe;
    rec_get(d, len, "message", u->message, sizeof u->message);
    /* the training time the run's events reported (live), else its span */
    if (!(u->train_seconds > 0) && isfinite(u->started)) u->train_seconds = t - u->started;
    participant *p = &s->p[u->participant];
    if (p->live >= 0 && s->subs[p->live] == u) p->live = -1;
}

tb_status study_apply(tb_study *s, uint32_t type, const char *d, size_t len, tb_err *err)
{
    char id[64], run[TB_ARCHIVE_ID_MAX + 1], text[512], detail[160] = "";
    double t = rec_get_f64(d, len, "t", NAN);
    rec_get(d, len, "participant", id, sizeof id);
    rec_get(d, len, "run", run, sizeof run);
    int pi = study_find_participant(s, id);
    participant *p = pi >= 0 ? &s->p[pi] : NULL;
    if (isfinite(t) && !(t <= s->last_record)) s->last_record = t; /* the first record replaces the NaN */
    if (type == REC_HEARTBEAT) return TB_OK; /* a sign of life, nothing else */
    int needs_participant = type >= REC_CONSENT && type <= REC_SUBMIT;
    needs_participant |= type == REC_CREDIT || type == REC_FINAL_CHOICE || type == REC_FINAL_QUEUED;
    if (needs_participant && !p)
        return tb_fail(err, TB_EFORMAT, "record %s names unknown participant %s", study_record_names[type], id);
    switch (type) {
    case REC_OPEN: {
        int pid = rec_int(d, len, "pid", 0);
        snprintf(detail, sizeof detail, "%s (pid %d)", isfinite(s->created) ? "reopened" : "created", pid);
        if (!isfinite(s->created)) s->created = t;
        break;
    }
    case REC_REGISTER:
        if (p) return tb_fail(err, TB_EFORMAT, "participant %s registered twice", id);
        if (!(p = add_participant(s))) return tb_fail(err, TB_ENOMEM, "out of memory");
        tb_copy_str(p->id, sizeof p->id, id);
        rec_get(d, len, "education", p->education, sizeof p->education);
        p->dl_months = rec_get_f64(d, len, "dl_months", NAN);
        p->programming_months = rec_get_f64(d, len, "programming_months", NAN);
        p->ml_months = rec_get_f64(d, len, "ml_months", NAN);
        p->self_level = rec_int(d, len, "self_level", 0);
        p->registered = t;
        p->state = P_REGISTERED;
        tb_copy_str(detail, sizeof detail, p->education);
        break;
    case REC_CONSENT:
        p->consented = t;
        p->state = P_CONSENTED;
        break;
    case REC_LOBBY:
        p->state = P_LOBBY;
        p->lobby_since = t;
        break;
    case REC_ADMIT:
        p->state = P_ACTIVE;
        p->active_since = t;
        break;
    case REC_PAUSE:
        close_interval(p, t);
        if (p->state != P_DONE) p->state = P_CONSENTED;
        rec_get(d, len, "reason", detail, sizeof detail);
        break;
    case REC_SUBMIT: {
        submission *u = add_submission(s);
        if (!u) return tb_fail(err, TB_ENOMEM, "out of memory");
        u->submitted = t;
        apply_submit(s, u, pi, d, len);
        tb_copy_str(detail, sizeof detail, tb_run_status_name(u->status));
        break;
    }
    case REC_RUN_START: {
        submission *u = study_find_submission(s, run);
        if (u) {
            u->started = t;
            u->status = TB_RUN_TRAINING;
        }
        break;
    }
    case REC_RUN_END: {
        submission *u = study_find_submission(s, run);
        if (!u) break;
        apply_run_end(s, u, t, d, len, text, sizeof text);
        tb_copy_str(detail, sizeof detail, text);
        break;
    }
    case REC_CREDIT: {
        double seconds = rec_get_f64(d, len, "seconds", 0);
        p->credited += seconds;
        rec_get(d, len, "reason", text, sizeof text);
        snprintf(detail, sizeof detail, "%.3f s: %.120s", seconds, text);
        break;
    }
    case REC_FINAL_CHOICE:
        close_interval(p, t);
        p->state = P_DONE;
        tb_copy_str(p->final_run, sizeof p->final_run, run);
        rec_get(d, len, "reason", p->final_reason, sizeof p->final_reason);
        p->final_at = t;
        tb_copy_str(detail, sizeof detail, p->final_reason);
        break;
    case REC_FINAL_QUEUED: {
        final_eval *f = add_final(s);
        if (!f) return tb_fail(err, TB_ENOMEM, "out of memory");
        f->participant = pi;
        rec_get(d, len, "seed", text, sizeof text);
        f->seed = strtoll(text, NULL, 10); /* exact: seeds go up to INT64_MAX */
        tb_copy_str(f->run_id, sizeof f->run_id, run);
        snprintf(detail, sizeof detail, "seed %lld", (long long)f->seed);
        break;
    }
    case REC_FINAL_END: {
        final_eval *f = study_find_final(s, run);
        if (!f) break;
        rec_get(d, len, "status", text, sizeof text);
        if (tb_run_status_parse(text, &f->status) != 0) f->status = TB_RUN_INTERRUPTED;
        f->test_accuracy = rec_get_f64(d, len, "test_accuracy", NAN);
        f->started = rec_get_f64(d, len, "started", NAN);
        f->ended = t;
        tb_copy_str(detail, sizeof detail, text);
        break;
    }
    case REC_CLOSE:
        break;
    case REC_RUN_PLACED: {
        submission *u = study_find_submission(s, run);
        final_eval *f = u ? NULL : study_find_final(s, run);
        rec_get(d, len, "placement", text, sizeof text);
        if (u) tb_copy_str(u->placement, sizeof u->placement, text);
        if (f) tb_copy_str(f->placement, sizeof f->placement, text);
        tb_copy_str(detail, sizeof detail, text);
        break;
    }
    case REC_ADMISSION:
        s->admitting = rec_int(d, len, "admitting", 1) != 0;
        snprintf(detail, sizeof detail, "%s", s->admitting ? "admitting participants" : "admission stopped");
        break;
    case REC_JOURNAL_LOSS:
        rec_get(d, len, "kept", text, sizeof text);
        snprintf(detail, sizeof detail, "cut at byte %.0f: %.0f bytes, %.0f intact records among them; kept in %.60s",
                 rec_get_f64(d, len, "at", 0), rec_get_f64(d, len, "bytes", 0), rec_get_f64(d, len, "records", 0),
                 text);
        break;
    case REC_UNRECORDED: {
        char kind[TB_ARCHIVE_KIND_MAX + 1], status[32];
        rec_get(d, len, "kind", kind, sizeof kind);
        rec_get(d, len, "status", status, sizeof status);
        snprintf(detail, sizeof detail, "%s run the journal has no record of (archive: %s); not in the tables", kind,
                 status);
        break;
    }
    default:
        return TB_OK; /* a newer record type: skip it */
    }
    add_event(s, t, (int)type, id, run, detail);
    s->dirty = 1;
    return TB_OK;
}

tb_status study_commit(tb_study *s, int type, rec_buf *b, double t, int durable, tb_err *err)
{
    rec_f64(b, "t", t);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return tb_fail(err, TB_ENOMEM, "study journal: out of memory");
    }
    tb_status st = tb_journal_append(s->journal, (uint32_t)type, b->p, b->n, durable, err);
    /* applied only once durable: what the caller acknowledges is what a reopen replays */
    if (st == TB_OK) st = study_apply(s, (uint32_t)type, b->p, b->n, err);
    free(b->p);
    b->p = NULL;
    return st;
}

/* ---- lookups and derived views ------------------------------------------------------------ */

int study_find_participant(const tb_study *s, const char *id)
{
    if (!id) return -1;
    for (int i = 0; i < s->np; i++)
        if (strcmp(s->p[i].id, id) == 0) return i;
    return -1;
}

submission *study_find_submission(const tb_study *s, const char *run_id)
{
    if (!run_id || !*run_id) return NULL;
    for (int i = 0; i < s->ns; i++)
        if (strcmp(s->subs[i]->run_id, run_id) == 0) return s->subs[i];
    return NULL;
}

final_eval *study_find_final(tb_study *s, const char *run_id)
{
    for (int i = 0; i < s->nf; i++)
        if (strcmp(s->finals[i].run_id, run_id) == 0) return &s->finals[i];
    return NULL;
}

/* A run still queued does not count: its wait is credited when it starts or ends. */
double study_used_seconds(const tb_study *s, const participant *p, double now)
{
    double used = p->used_closed - p->credited;
    if (p->state == P_ACTIVE) used += now - p->active_since;
    if (p->live >= 0 && s->subs[p->live]->status == TB_RUN_QUEUED) used -= now - s->subs[p->live]->submitted;
    return used > 0 ? used : 0;
}

int study_active_count(const tb_study *s)
{
    int n = 0;
    for (int i = 0; i < s->np; i++) n += s->p[i].state == P_ACTIVE;
    return n;
}

int study_max_active(const tb_study *s) { return s->st.max_active > 0 ? s->st.max_active : s->st.slots; }

/* By the time they entered the lobby. Someone who stopped asking (no enter()
 * for LOBBY_STALE_S) does not hold the others up. */
int study_lobby_position(const tb_study *s, int pi, double now)
{
    if (s->p[pi].state != P_LOBBY) return 0;
    int pos = 1;
    for (int i = 0; i < s->np; i++) {
        const participant *q = &s->p[i];
        if (i == pi || q->state != P_LOBBY || now - q->lobby_polled > LOBBY_STALE_S) continue;
        if (q->lobby_since < s->p[pi].lobby_since || (q->lobby_since == s->p[pi].lobby_since && i < pi)) pos++;
    }
    return pos;
}

const char *study_state_name(const participant *p)
{
    static const char *const names[] = {"registered", "consented", "lobby", "active", "done"};
    return p->state == P_CONSENTED && p->used_closed > 0 ? "paused" : names[p->state];
}

submission *study_best_run(tb_study *s, int pi)
{
    submission *best = NULL;
    for (int i = 0; i < s->ns; i++) {
        submission *u = s->subs[i];
        if (u->participant != pi || u->status != TB_RUN_FINISHED || !isfinite(u->val_accuracy)) continue;
        if (!best || u->val_accuracy > best->val_accuracy) best = u;
    }
    return best;
}

final_stats study_finals_of(const tb_study *s, int pi)
{
    final_stats r = {0, 0, 0, NAN, NAN};
    double sum = 0, sq = 0;
    for (int f = 0; f < s->nf; f++) {
        const final_eval *fe = &s->finals[f];
        if (fe->participant != pi || (fe->status == TB_RUN_INTERRUPTED && !fe->job)) continue;
        r.total++;
        if (!tb_run_status_is_final(fe->status)) continue;
        r.done++;
        if (fe->status == TB_RUN_FINISHED && isfinite(fe->test_accuracy)) {
            sum += fe->test_accuracy;
            sq += fe->test_accuracy * fe->test_accuracy;
            r.finished++;
        }
    }
    if (r.finished && r.done == r.total) {
        r.mean = sum / r.finished;
        if (r.finished > 1) r.sd = sqrt(fmax(0, (sq - sum * sum / r.finished) / (r.finished - 1)));
    }
    return r;
}

void study_touch(tb_study *s, submission *sub)
{
    if (sub) sub->seq++;
    s->change_seq++;
    pthread_cond_broadcast(&s->changed);
}
