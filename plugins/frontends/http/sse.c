/* sse.c: Server-Sent Events, GET /api/events (a participant: `me`, `run`,
 * `curve`) and GET /api/admin/events (the organiser: `overview`).
 *
 * libmicrohttpd runs a thread per connection, so the stream's reader blocks
 * in the study's wait_change (at most WAIT_MS at a time, to notice the server
 * stopping) and never polls: it wakes when something in the study changed,
 * sends what changed for this reader at most MAX_RATE_HZ times a second, and
 * a comment line every keepalive interval. The stream ends when the server
 * stops or the study closes; the client reconnects (retry: 2000). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"
#include "views.h"

#define WAIT_MS 1000
#define MIN_GAP_S 0.2            /* at most 5 updates a second */
#define ADMIN_MIN_GAP_S 1.0      /* the overview is larger: once a second */
#define KEEPALIVE_S 15.0
#define BLOCK 16384

typedef struct sse_stream {
    http_server *srv;
    int admin;
    char participant[HTTP_ID_MAX];
    uint64_t seq;               /* the study's change_seq last looked at */
    int started;
    double last_update, last_write;
    char *last_me;              /* the `me` last sent (sent again only when it differs) */
    char run_id[HTTP_RUN_ID_MAX]; /* the run followed: the live one, then the one that just ended */
    uint64_t run_seq;
    int run_done;               /* its final state was sent */
    int batch_next, epoch_next; /* curve points sent so far */
    char *out;                  /* bytes waiting to be read by the server */
    size_t out_len, out_pos, out_cap;
} sse_stream;

static int emit_raw(sse_stream *st, const char *text, size_t n)
{
    if (st->out_len + n + 1 > st->out_cap) {
        size_t cap = st->out_cap ? st->out_cap : 4096;
        while (cap < st->out_len + n + 1) cap *= 2;
        char *p = realloc(st->out, cap);
        if (!p) return -1;
        st->out = p;
        st->out_cap = cap;
    }
    memcpy(st->out + st->out_len, text, n);
    st->out_len += n;
    return 0;
}

/* "event: NAME\ndata: JSON\n\n"; takes json. */
static int emit_event(sse_stream *st, const char *name, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!text) return -1;
    char head[64];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
    int bad = emit_raw(st, head, (size_t)n) || emit_raw(st, text, strlen(text)) || emit_raw(st, "\n\n", 2);
    free(text);
    return bad ? -1 : 0;
}

/* `me` when it changed since the last one sent; the participant's live run into live. */
static int update_me(sse_stream *st, char live[HTTP_RUN_ID_MAX])
{
    tb_fe_state s;
    char err[256];
    if (view_participant(st->srv, st->participant, &s, err, sizeof err) != TB_OK) return -1;
    snprintf(live, HTTP_RUN_ID_MAX, "%s", s.live_run);
    json_t *me = view_me(st->srv, &s, 0);
    if (!me) return -1;
    json_object_del(me, "server_time"); /* compare without the clock */
    char *text = json_dumps(me, JSON_COMPACT);
    if (!text) {
        json_decref(me);
        return -1;
    }
    if (st->last_me && strcmp(st->last_me, text) == 0) {
        free(text);
        json_decref(me);
        return 0;
    }
    free(st->last_me);
    st->last_me = text;
    json_object_set_new(me, "server_time", json_real(wall_s()));
    return emit_event(st, "me", me);
}

/* The followed run's new state and curve points. */
static int update_run(sse_stream *st)
{
    tb_fe_run r;
    char err[256];
    if (!st->run_id[0] || st->run_done) return 0;
    if (view_run_info(st->srv, st->run_id, &r, err, sizeof err) != TB_OK) {
        st->run_done = 1;
        return 0;
    }
    int ended = r.status_code >= TB_FE_RUN_FINISHED;
    json_t *curve = view_curve(st->srv, st->run_id, st->batch_next, st->epoch_next);
    if (!curve) return -1;
    size_t batch_new = json_array_size(json_object_get(json_object_get(curve, "batch"), "step"));
    size_t epoch_new = json_array_size(json_object_get(json_object_get(curve, "epoch"), "epoch"));
    if (batch_new + epoch_new > 0) {
        st->batch_next += (int)batch_new;
        st->epoch_next += (int)epoch_new;
        if (emit_event(st, "curve", curve) != 0) return -1;
    } else json_decref(curve);
    if (r.seq != st->run_seq || ended) {
        st->run_seq = r.seq;
        if (emit_event(st, "run", view_run(st->srv, &r)) != 0) return -1;
    }
    st->run_done = ended;
    return 0;
}

static int update_participant(sse_stream *st)
{
    char live[HTTP_RUN_ID_MAX];
    if (update_me(st, live) != 0) return -1;
    if (live[0] && strcmp(live, st->run_id) != 0) {
        /* finish the run followed so far, then follow the new one from its first point */
        if (update_run(st) != 0) return -1;
        snprintf(st->run_id, sizeof st->run_id, "%s", live);
        st->run_seq = 0;
        st->run_done = 0;
        st->batch_next = st->epoch_next = 0;
    }
    return update_run(st);
}

static int update(sse_stream *st)
{
    st->last_update = mono_s();
    if (st->admin) return emit_event(st, "overview", view_overview(st->srv));
    return update_participant(st);
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Fills out with the next events; 0, or -1 when the stream should end. */
static int next_events(sse_stream *st)
{
    const tb_study_api *api = st->srv->api;
    double gap = st->admin ? ADMIN_MIN_GAP_S : MIN_GAP_S;
    double keepalive = (double)st->srv->lim.connection_timeout_s / 2;
    if (keepalive > KEEPALIVE_S) keepalive = KEEPALIVE_S;
    if (!st->started) {
        st->started = 1;
        st->seq = api->change_seq(api->study);
        emit_raw(st, "retry: 2000\n\n", 13);
        return update(st);
    }
    while (!atomic_load(&st->srv->stopping)) {
        sleep_s(st->last_update + gap - mono_s());
        uint64_t seq = api->change_seq(api->study);
        if (seq != st->seq) {
            st->seq = seq;
            return update(st);
        }
        double to_keepalive = st->last_write + keepalive - mono_s();
        if (to_keepalive <= 0) return emit_raw(st, ": keepalive\n\n", 13);
        int wait_ms = to_keepalive * 1000 < WAIT_MS ? (int)(to_keepalive * 1000) + 1 : WAIT_MS;
        int changed = api->wait_change(api->study, st->seq, wait_ms);
        if (changed && api->change_seq(api->study) == st->seq) return -1; /* the study is closing */
    }
    return -1;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse_stream *st = cls;
    if (st->out_pos == st->out_len) {
        st->out_pos = st->out_len = 0;
        if (next_events(st) != 0 && st->out_len == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = st->out_len - st->out_pos;
    if (n > max) n = max;
    memcpy(buf, st->out + st->out_pos, n);
    st->out_pos += n;
    st->last_write = mono_s();
    return (ssize_t)n;
}

static void free_stream(void *cls)
{
    sse_stream *st = cls;
    people_close_stream(st->srv, st->admin ? NULL : st->participant);
    free(st->last_me);
    free(st->out);
    free(st);
}

void sse_open(http_server *srv, const char *id, http_reply *rep)
{
    unsigned refused = people_open_stream(srv, id);
    if (refused) {
        reply_error(rep, refused, NULL,
                    refused == 429 ? "too many event streams open for this participant (at most %d)"
                                   : "too many event streams open on the server (at most %d)",
                    refused == 429 ? srv->lim.streams_per_participant : srv->lim.max_streams);
        rep->retry_after_s = 5;
        return;
    }
    sse_stream *st = calloc(1, sizeof *st);
    if (st) {
        st->srv = srv;
        st->admin = id == NULL;
        snprintf(st->participant, sizeof st->participant, "%s", id ? id : "");
        st->last_write = mono_s();
        rep->raw = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK, read_stream, st, free_stream);
    }
    if (!rep->raw) {
        if (st) free(st);
        people_close_stream(srv, id);
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(rep->raw, "X-Accel-Buffering", "no");
    rep->status = MHD_HTTP_OK;
}
