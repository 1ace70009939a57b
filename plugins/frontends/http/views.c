/* views.c: the API's JSON answers (views.h). */
#include "views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_MAX 256 /* live runs listed in the overview */

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static int utf8_length(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 2 && s[0] < 0xc2) return 0; /* overlong */
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

json_t *view_text(const char *text)
{
    if (!text) return json_string("");
    json_t *j = json_string(text);
    if (j) return j;
    char *copy = strdup(text);
    if (!copy) return NULL;
    for (unsigned char *p = (unsigned char *)copy; *p;) {
        int n = utf8_length(p);
        if (n == 0) *p++ = '?';
        else p += n;
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/* Sets key to value, which may be NULL (out of memory): then the object is marked broken. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value);
}

/* '|'-separated text as a JSON array of strings. */
static json_t *split_list(const char *text)
{
    json_t *a = json_array();
    if (!a || !text) return a;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "|");
        if (len > 0) json_array_append_new(a, json_stringn(p, len));
        p += len;
        if (*p == '|') p++;
    }
    return a;
}

static const char *hp_type_name(int type)
{
    return type == TB_FE_HP_INT ? "int" : type == TB_FE_HP_FLOAT ? "float" : "choice";
}

static json_t *view_hp(const http_server *srv, int i)
{
    const tb_fe_hp *h = &srv->hp[i];
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = put(o, "index", json_integer(i)) | put(o, "name", json_string(h->name)) |
              put(o, "type", json_string(hp_type_name(h->type))) | put(o, "mandatory", json_boolean(h->mandatory)) |
              put(o, "preset", view_text(h->preset)) |
              put(o, "allowed", view_text(h->allowed)) |
              put(o, "readers", split_list(srv->api->hp_readers(srv->s, i)));
    if (h->type == TB_FE_HP_CHOICE) bad |= put(o, "choices", split_list(h->choices));
    else {
        bad |= put(o, "lo", num(h->lo)) | put(o, "hi", num(h->hi)) |
               put(o, "log", json_boolean(h->allowed && strstr(h->allowed, "log")));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *done(json_t *o, int bad)
{
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *view_study(const http_server *srv)
{
    const tb_study_api *api = srv->api;
    tb_fe_counts c;
    memset(&c, 0, sizeof c);
    api->counts(srv->s, &c, sizeof c);
    json_t *o = json_object(), *hps = json_array();
    if (!o || !hps) {
        json_decref(o);
        json_decref(hps);
        return NULL;
    }
    int bad = put(o, "title", view_text(api->title(srv->s))) |
              put(o, "briefing", view_text(api->briefing(srv->s))) |
              put(o, "budget_s", num(api->budget_s(srv->s))) |
              put(o, "education_levels", split_list(api->education_levels(srv->s))) |
              put(o, "comments", split_list(api->comments(srv->s))) |
              put(o, "show_result", json_boolean(api->show_result(srv->s))) |
              put(o, "admitting", json_boolean(c.admitting)) | put(o, "hparams", hps);
    for (int i = 0; i < HTTP_HP_N && !bad; i++) bad |= json_array_append_new(hps, view_hp(srv, i));
    return done(o, bad);
}

static const char *state_name(int code)
{
    static const char *const names[] = {"registered", "consented", "lobby", "active", "done"};
    return code >= 0 && code < 5 ? names[code] : "unknown";
}

json_t *view_me(const http_server *srv, const tb_fe_state *st, int admin)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int show = admin || srv->api->show_result(srv->s);
    int bad = put(o, "id", json_string(st->id)) | put(o, "state", json_string(state_name(st->state_code))) |
              put(o, "state_code", json_integer(st->state_code)) |
              put(o, "lobby_position", json_integer(st->lobby_position)) | put(o, "budget_s", num(st->budget_s)) |
              put(o, "used_s", num(st->used_s)) | put(o, "left_s", num(st->left_s)) |
              put(o, "submissions", json_integer(st->submissions)) |
              put(o, "live_run", st->live_run[0] ? json_string(st->live_run) : json_null()) |
              put(o, "final_run", st->final_run[0] ? json_string(st->final_run) : json_null()) |
              put(o, "final_reason", st->final_reason[0] ? json_string(st->final_reason) : json_null()) |
              put(o, "finals_done", json_integer(st->finals_done)) |
              put(o, "finals_total", json_integer(st->finals_total)) | put(o, "education", json_string(st->education)) |
              put(o, "dl_months", num(st->dl_months)) | put(o, "finished_runs", json_integer(st->finished_runs)) |
              put(o, "best_run", st->best_run[0] ? json_string(st->best_run) : json_null()) |
              put(o, "best_val_accuracy", num(st->best_val_accuracy)) | put(o, "server_time", num(wall_s()));
    if (show) bad |= put(o, "final_mean", num(st->final_mean)) | put(o, "final_sd", num(st->final_sd));
    if (admin)
        bad |= put(o, "registered_s", num(st->registered_s)) |
               put(o, "programming_months", num(st->programming_months)) | put(o, "ml_months", num(st->ml_months)) |
               put(o, "self_level", st->self_level ? json_integer(st->self_level) : json_null());
    return done(o, bad);
}

static json_t *hp_map(const http_server *srv, const tb_fe_run *r, int what)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    for (int i = 0; i < HTTP_HP_N; i++) {
        json_t *v = what == 0 ? view_text(r->values[i]) : what == 1 ? json_boolean(r->given[i])
                                                                       : view_text(r->comments[i]);
        bad |= put(o, srv->hp[i].name, v);
    }
    return done(o, bad);
}

json_t *view_run(const http_server *srv, const tb_fe_run *r)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = put(o, "run_id", r->run_id[0] ? json_string(r->run_id) : json_null()) |
              put(o, "participant", json_string(r->participant)) | put(o, "number", json_integer(r->number)) |
              put(o, "status", json_string(r->status)) | put(o, "status_code", json_integer(r->status_code)) |
              put(o, "epoch", json_integer(r->epoch)) | put(o, "epochs", json_integer(r->epochs)) |
              put(o, "batch", json_integer(r->batch)) |
              put(o, "batches_per_epoch", json_integer(r->batches_per_epoch)) |
              put(o, "batch_loss", num(r->batch_loss)) | put(o, "epoch_loss", num(r->epoch_loss)) |
              put(o, "val_loss", num(r->val_loss)) | put(o, "val_accuracy", num(r->val_accuracy)) |
              put(o, "submitted_s", num(r->submitted_s)) | put(o, "started_s", num(r->started_s)) |
              put(o, "ended_s", num(r->ended_s)) | put(o, "seconds", num(r->seconds)) |
              put(o, "queue_position", json_integer(r->queue_position)) | put(o, "message", view_text(r->message)) |
              put(o, "values", hp_map(srv, r, 0)) | put(o, "given", hp_map(srv, r, 1)) |
              put(o, "comments", hp_map(srv, r, 2));
    return done(o, bad);
}

/* Appends points [from, from + cap) of one curve to xs / ys; the curve's length into *total. */
static int curve_points(const http_server *srv, const char *run_id, int kind, int from, int cap, json_t *xs,
                        json_t *ys, int *total)
{
    double *x = malloc(sizeof(double) * (size_t)cap), *y = malloc(sizeof(double) * (size_t)cap);
    int n = x && y ? srv->api->curve(srv->s, run_id, kind, from, x, y, cap) : -2;
    int bad = n < 0;
    for (int i = 0; !bad && i < n - from && i < cap; i++) {
        if (xs) bad |= json_array_append_new(xs, json_integer((json_int_t)x[i]));
        bad |= json_array_append_new(ys, num(y[i]));
    }
    free(x);
    free(y);
    if (total) *total = n;
    return bad;
}

json_t *view_curve(const http_server *srv, const char *run_id, int batch_from, int epoch_from)
{
    json_t *o = json_object(), *b = json_object(), *e = json_object();
    json_t *step = json_array(), *bloss = json_array(), *ep = json_array(), *eloss = json_array(),
           *vloss = json_array(), *vacc = json_array();
    int bad = !o || !b || !e;
    bad |= put(b, "step", step) | put(b, "loss", bloss) | put(e, "epoch", ep) | put(e, "loss", eloss) |
           put(e, "val_loss", vloss) | put(e, "val_accuracy", vacc);
    int batch_total = 0, epoch_total = 0;
    if (!bad) {
        bad |= curve_points(srv, run_id, TB_FE_CURVE_BATCH_LOSS, batch_from, VIEW_CURVE_BATCH_CAP, step, bloss,
                            &batch_total);
        bad |= curve_points(srv, run_id, TB_FE_CURVE_EPOCH_LOSS, epoch_from, VIEW_CURVE_EPOCH_CAP, ep, eloss,
                            &epoch_total);
        bad |= curve_points(srv, run_id, TB_FE_CURVE_VAL_LOSS, epoch_from, VIEW_CURVE_EPOCH_CAP, NULL, vloss, NULL);
        bad |= curve_points(srv, run_id, TB_FE_CURVE_VAL_ACCURACY, epoch_from, VIEW_CURVE_EPOCH_CAP, NULL, vacc,
                            NULL);
    }
    tb_fe_run r;
    char err[256];
    int bpe = view_run_info(srv, run_id, &r, err, sizeof err) == TB_OK ? r.batches_per_epoch : 0;
    /* a run of an earlier session lacks it in its snapshot: whole epochs tell it */
    if (bpe == 0 && epoch_total > 0 && batch_total % epoch_total == 0) bpe = batch_total / epoch_total;
    bad |= put(o, "run_id", json_string(run_id)) | put(o, "batch_from", json_integer(batch_from)) |
           put(o, "epoch_from", json_integer(epoch_from)) | put(o, "batch_total", json_integer(batch_total)) |
           put(o, "epoch_total", json_integer(epoch_total)) | put(o, "batches_per_epoch", json_integer(bpe));
    bad |= put(o, "batch", b) | put(o, "epoch", e);
    return done(o, bad);
}

json_t *view_counts(const tb_fe_counts *c)
{
    static const char *const run_names[] = {"queued", "training", "finished", "cancelled",
                                            "diverged", "interrupted", "rejected"};
    json_t *o = json_object(), *by_state = json_object(), *by_status = json_object();
    int bad = !o || !by_state || !by_status;
    for (int i = 0; i < 5 && !bad; i++) bad |= put(by_state, state_name(i), json_integer(c->by_state[i]));
    for (int i = 0; i < 7 && !bad; i++) bad |= put(by_status, run_names[i], json_integer(c->runs_by_status[i]));
    bad |= put(o, "participants", json_integer(c->participants)) | put(o, "by_state", by_state) |
           put(o, "runs", json_integer(c->runs)) | put(o, "runs_by_status", by_status) |
           put(o, "finals_total", json_integer(c->finals_total)) |
           put(o, "finals_done", json_integer(c->finals_done)) |
           put(o, "finals_pending", json_integer(c->finals_pending)) | put(o, "slots", json_integer(c->slots)) |
           put(o, "max_active", json_integer(c->max_active)) | put(o, "admitting", json_boolean(c->admitting)) |
           put(o, "closing", json_boolean(c->closing)) | put(o, "created_s", num(c->created_s));
    return done(o, bad);
}

static json_t *overview_participants(const http_server *srv)
{
    json_t *a = json_array();
    int n = srv->api->participant_count(srv->s), bad = !a;
    for (int i = 0; i < n && !bad; i++) {
        tb_fe_state st;
        char err[256];
        memset(&st, 0, sizeof st);
        if (srv->api->participant_at(srv->s, i, &st, sizeof st, err, sizeof err) != TB_OK) continue;
        json_t *me = view_me(srv, &st, 1);
        bad |= !me || put(me, "tries", json_integer(st.submissions)) | json_array_append_new(a, me);
    }
    return done(a, bad);
}

static json_t *overview_live(const http_server *srv)
{
    static _Thread_local char ids[LIVE_MAX][32];
    json_t *a = json_array();
    int n = srv->api->live_runs(srv->s, ids, LIVE_MAX), bad = !a;
    for (int i = 0; i < n && i < LIVE_MAX && !bad; i++) {
        tb_fe_run r;
        char err[256];
        if (view_run_info(srv, ids[i], &r, err, sizeof err) != TB_OK) continue;
        bad |= json_array_append_new(a, view_run(srv, &r));
    }
    return done(a, bad);
}

json_t *view_overview(const http_server *srv)
{
    tb_fe_counts c;
    memset(&c, 0, sizeof c);
    srv->api->counts(srv->s, &c, sizeof c);
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = put(o, "counts", view_counts(&c)) | put(o, "participants", overview_participants(srv)) |
              put(o, "live", overview_live(srv)) | put(o, "archive", json_string(srv->api->archive_path(srv->s))) |
              put(o, "server_time", num(wall_s()));
    return done(o, bad);
}

tb_status view_participant(const http_server *srv, const char *id, tb_fe_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    return srv->api->participant_info(srv->s, id, st, sizeof *st, err, errlen);
}

tb_status view_run_info(const http_server *srv, const char *run_id, tb_fe_run *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    return srv->api->run_info(srv->s, run_id, r, sizeof *r, err, errlen);
}
