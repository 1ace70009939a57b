/* routes.c: the route table (the one list of what the API serves) and its
 * handlers. Participant handlers act for rq->participant only: a run that is
 * not theirs is 404, like one that does not exist. A study refusal that
 * records nothing (not admitted, a run still live, no budget, closing) is
 * 409; a submission the study rejected (recorded in the history) is 422,
 * naming the hyperparameter. */
#include "routes.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "assets.h"
#include "auth.h"
#include "views.h"

#define ERR_MAX 512
#define SECRET_CAP (HTTP_ID_MAX + 1 + HTTP_TOKEN_HEX + 1)

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *str_member(const json_t *body, const char *name)
{
    const json_t *v = json_object_get(body, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static double num_member(const json_t *body, const char *name)
{
    const json_t *v = json_object_get(body, name);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The caller's state as `me` (status 200 unless given). */
static void reply_me(http_request *rq, http_reply *rep, unsigned status)
{
    tb_fe_state st;
    char err[ERR_MAX];
    if (view_participant(rq->srv, rq->participant, &st, err, sizeof err) != TB_OK) {
        /* a study beginning to close refuses every participant: that is no reason for the page to log out */
        tb_fe_counts c;
        memset(&c, 0, sizeof c);
        rq->srv->api->counts(rq->srv->s, &c, sizeof c);
        reply_error(rep, c.closing ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_UNAUTHORIZED, NULL, "%s", err);
        return;
    }
    reply_json(rep, status, view_me(rq->srv, &st, 0));
}

/* The run rq->path_id when the caller may see it (the organiser: any); else 404 into rep. */
static int own_run(http_request *rq, http_reply *rep, tb_fe_run *r)
{
    char err[ERR_MAX];
    int found = view_run_info(rq->srv, rq->path_id, r, err, sizeof err) == TB_OK;
    int mine = found && (rq->route->auth == NEED_ADMIN || strcmp(r->participant, rq->participant) == 0);
    if (!mine) reply_error(rep, MHD_HTTP_NOT_FOUND, NULL, "no such run: %s", rq->path_id);
    return mine;
}

/* A study call's failure: 409 (refused by the study's state, nothing recorded). */
static void reply_refused(http_reply *rep, tb_status s, const char *err)
{
    reply_error(rep, s == TB_EINVAL ? MHD_HTTP_CONFLICT : MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
}

/* A non-negative integer query argument (absent: 0); -1 when malformed (400 into rep). */
static int query_index(http_request *rq, const char *name, http_reply *rep)
{
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || errno == ERANGE || n < 0 || n > 1000000000) {
        reply_error(rep, MHD_HTTP_BAD_REQUEST, name, "%s must be a non-negative integer", name);
        return -1;
    }
    return (int)n;
}

/* ---- pages ---------------------------------------------------------------------------------- */

static const http_asset *asset_for(const char *path)
{
    for (int i = 0; i < http_asset_count; i++)
        if (strcmp(http_assets[i].url, path) == 0) return &http_assets[i];
    return NULL;
}

static void get_asset(http_request *rq, json_t *body, http_reply *rep)
{
    const http_asset *a = asset_for(rq->path);
    rep->raw = MHD_create_response_from_buffer(a->size, (void *)a->bytes, MHD_RESPMEM_PERSISTENT);
    if (!rep->raw) {
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    rep->status = MHD_HTTP_OK;
}

/* ---- participant routes ------------------------------------------------------------------------ */

static void get_study(http_request *rq, json_t *body, http_reply *rep)
{
    reply_json(rep, MHD_HTTP_OK, view_study(rq->srv));
}

static const json_in_field register_fields[] = {
    {"id", JIN_STRING, 0, HTTP_ID_MAX - 1},       {"education", JIN_STRING, 1, 31},
    {"dl_months", JIN_NUMBER, 1, 0},              {"programming_months", JIN_NUMBER, 0, 0},
    {"ml_months", JIN_NUMBER, 0, 0},              {"self_level", JIN_NUMBER, 0, 0},
};

/* The field the study's message is about (the field a 400 names): its
 * messages begin "<field> = ...". Only the start counts: the rest holds words
 * ("outside", "if unknown") and the caller's own text, which would otherwise
 * name any field that happens to be a substring ("id" in "outside"). */
static const char *field_in_message(const char *msg, const json_in_field *fields, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = strlen(fields[i].name);
        if (strncmp(msg, fields[i].name, len) == 0 && strncmp(msg + len, " =", 2) == 0) return fields[i].name;
    }
    return NULL;
}

static void set_session(const http_server *srv, const char *id, http_reply *rep, char *secret, size_t cap)
{
    auth_participant_secret(srv, id, secret, cap);
    auth_session_cookie(rep->set_cookie[0], sizeof rep->set_cookie[0], AUTH_COOKIE_PARTICIPANT, secret);
}

/* The client's address as text ("?" when libmicrohttpd does not say). */
static void client_address(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(out, cap, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static void post_register(http_request *rq, json_t *body, http_reply *rep)
{
    http_server *srv = rq->srv;
    char address[INET6_ADDRSTRLEN];
    client_address(rq->conn, address, sizeof address);
    int wait_s = people_take_registration(srv, address);
    if (wait_s > 0) {
        reply_error(rep, MHD_HTTP_TOO_MANY_REQUESTS, NULL,
                    "at most %d registrations a minute from one address: try again in %d s",
                    srv->lim.registrations_per_minute, wait_s);
        rep->retry_after_s = wait_s;
        return;
    }
    double level = num_member(body, "self_level");
    /* the range first: (int) of a double outside int's range is undefined */
    if (!isnan(level) && (level < 1 || level > 5 || level != (int)level)) {
        reply_error(rep, MHD_HTTP_BAD_REQUEST, "self_level", "self_level must be an integer from 1 to 5");
        return;
    }
    tb_fe_participant p = {
        .id = str_member(body, "id"),
        .education = str_member(body, "education"),
        .dl_months = num_member(body, "dl_months"),
        .programming_months = num_member(body, "programming_months"),
        .ml_months = num_member(body, "ml_months"),
        .self_level = isnan(level) ? 0 : (int)level,
    };
    char id[HTTP_ID_MAX], err[ERR_MAX];
    tb_status s = srv->api->register_participant(srv->s, &p, id, err, sizeof err);
    if (s != TB_OK) {
        tb_fe_counts c;
        memset(&c, 0, sizeof c);
        srv->api->counts(srv->s, &c, sizeof c);
        if (!c.admitting || c.closing) reply_error(rep, MHD_HTTP_CONFLICT, NULL, "%s", err);
        else reply_error(rep, s == TB_EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR,
                         field_in_message(err, register_fields, (int)(sizeof register_fields / sizeof *register_fields)),
                         "%s", err);
        return;
    }
    char secret[SECRET_CAP];
    set_session(srv, id, rep, secret, sizeof secret);
    reply_json(rep, MHD_HTTP_CREATED, json_pack("{s:s, s:s}", "id", id, "secret", secret));
}

static const json_in_field login_fields[] = {
    {"id", JIN_STRING, 1, HTTP_ID_MAX - 1},
    {"secret", JIN_STRING, 1, SECRET_CAP - 1},
};

static void post_login(http_request *rq, json_t *body, http_reply *rep)
{
    char id[HTTP_ID_MAX], err[ERR_MAX];
    tb_fe_state st;
    const char *secret = str_member(body, "secret");
    if (!auth_check_participant(rq->srv, secret, id) || strcmp(id, str_member(body, "id")) != 0 ||
        view_participant(rq->srv, id, &st, err, sizeof err) != TB_OK) {
        reply_error(rep, MHD_HTTP_UNAUTHORIZED, "secret", "wrong id or secret");
        return;
    }
    auth_session_cookie(rep->set_cookie[0], sizeof rep->set_cookie[0], AUTH_COOKIE_PARTICIPANT, secret);
    reply_json(rep, MHD_HTTP_OK, view_me(rq->srv, &st, 0));
}

static void post_logout(http_request *rq, json_t *body, http_reply *rep)
{
    auth_clear_cookie(rep->set_cookie[0], sizeof rep->set_cookie[0], AUTH_COOKIE_PARTICIPANT);
    reply_json(rep, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static void get_me(http_request *rq, json_t *body, http_reply *rep)
{
    reply_me(rq, rep, MHD_HTTP_OK);
}

static void post_consent(http_request *rq, json_t *body, http_reply *rep)
{
    char err[ERR_MAX];
    tb_status s = rq->srv->api->consent(rq->srv->s, rq->participant, err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else reply_me(rq, rep, MHD_HTTP_OK);
}

static void post_enter(http_request *rq, json_t *body, http_reply *rep)
{
    char err[ERR_MAX];
    int admitted = 0;
    tb_status s = rq->srv->api->enter(rq->srv->s, rq->participant, &admitted, err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else reply_me(rq, rep, MHD_HTTP_OK);
}

static void post_pause(http_request *rq, json_t *body, http_reply *rep)
{
    char err[ERR_MAX];
    tb_status s = rq->srv->api->pause(rq->srv->s, rq->participant, err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else reply_me(rq, rep, MHD_HTTP_OK);
}

/* The participant's i-th try as JSON (NULL on error). */
static json_t *history_run(http_request *rq, int i)
{
    tb_fe_run r;
    char err[ERR_MAX];
    memset(&r, 0, sizeof r);
    if (rq->srv->api->history_info(rq->srv->s, rq->participant, i, &r, sizeof r, err, sizeof err) != TB_OK)
        return NULL;
    return view_run(rq->srv, &r);
}

static void get_runs(http_request *rq, json_t *body, http_reply *rep)
{
    json_t *runs = json_array();
    int n = rq->srv->api->history_count(rq->srv->s, rq->participant), bad = !runs;
    for (int i = 0; i < n && !bad; i++) bad = json_array_append_new(runs, history_run(rq, i));
    if (bad) {
        json_decref(runs);
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "cannot read the history");
        return;
    }
    reply_json(rep, MHD_HTTP_OK, json_pack("{s:o}", "runs", runs));
}

static const json_in_field submit_fields[] = {
    {"values", JIN_HP_VALUES, 1, 63},
    {"comments", JIN_HP_TEXTS, 0, 255},
};

static void post_runs(http_request *rq, json_t *body, http_reply *rep)
{
    http_server *srv = rq->srv;
    int wait_s = people_take_submission(srv, rq->participant);
    if (wait_s > 0) {
        reply_error(rep, MHD_HTTP_TOO_MANY_REQUESTS, NULL, "at most %d submissions a minute: try again in %d s",
                    srv->lim.submissions_per_minute, wait_s);
        rep->retry_after_s = wait_s;
        return;
    }
    char values[HTTP_HP_N][64], comments[HTTP_HP_N][256];
    const char *vp[HTTP_HP_N], *cp[HTTP_HP_N];
    const json_t *vo = json_object_get(body, "values"), *co = json_object_get(body, "comments");
    for (int i = 0; i < HTTP_HP_N; i++) {
        json_in_text(json_object_get(vo, srv->hp[i].name), values[i], sizeof values[i]);
        json_in_text(co ? json_object_get(co, srv->hp[i].name) : NULL, comments[i], sizeof comments[i]);
        vp[i] = values[i];
        cp[i] = comments[i];
    }
    /* Whether a refusal was recorded is told by the history's length before
     * and after: the participant's submissions are serialised, or a second
     * submission sent at once would see the first one's run as its own
     * rejected try (422 with the other run) instead of 409. */
    pthread_mutex_t *mu = people_submit_lock(srv, rq->participant);
    pthread_mutex_lock(mu);
    int before = srv->api->history_count(srv->s, rq->participant), bad_hp = -1;
    char run_id[HTTP_RUN_ID_MAX] = "", err[ERR_MAX];
    tb_status s = srv->api->submit(srv->s, rq->participant, vp, cp, run_id, &bad_hp, err, sizeof err);
    if (s != TB_OK) {
        int recorded = srv->api->history_count(srv->s, rq->participant) > before;
        if (!recorded) reply_refused(rep, s, err);
        else {
            reply_error(rep, MHD_HTTP_UNPROCESSABLE_CONTENT,
                        bad_hp >= 0 && bad_hp < HTTP_HP_N ? srv->hp[bad_hp].name : NULL, "%s", err);
            if (rep->json) json_object_set_new(rep->json, "run", history_run(rq, before));
        }
        pthread_mutex_unlock(mu);
        return;
    }
    pthread_mutex_unlock(mu);
    tb_fe_run r;
    if (view_run_info(srv, run_id, &r, err, sizeof err) != TB_OK) {
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
        return;
    }
    char note[512] = "";
    srv->api->submission_note(srv->s, run_id, note, sizeof note);
    reply_json(rep, MHD_HTTP_CREATED,
               json_pack("{s:o, s:o}", "run", view_run(srv, &r), "note", note[0] ? json_string(note) : json_null()));
}

static void get_run(http_request *rq, json_t *body, http_reply *rep)
{
    tb_fe_run r;
    if (own_run(rq, rep, &r)) reply_json(rep, MHD_HTTP_OK, view_run(rq->srv, &r));
}

static void get_curve(http_request *rq, json_t *body, http_reply *rep)
{
    tb_fe_run r;
    if (!own_run(rq, rep, &r)) return;
    int batch_from = query_index(rq, "batch_from", rep), epoch_from;
    if (batch_from < 0 || (epoch_from = query_index(rq, "epoch_from", rep)) < 0) return;
    reply_json(rep, MHD_HTTP_OK, view_curve(rq->srv, rq->path_id, batch_from, epoch_from));
}

static void post_cancel(http_request *rq, json_t *body, http_reply *rep)
{
    tb_fe_run r;
    char err[ERR_MAX];
    if (!own_run(rq, rep, &r)) return;
    tb_status s = rq->srv->api->cancel(rq->srv->s, r.participant, rq->path_id, err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else if (view_run_info(rq->srv, rq->path_id, &r, err, sizeof err) != TB_OK)
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
    else reply_json(rep, MHD_HTTP_OK, view_run(rq->srv, &r));
}

static const json_in_field finish_fields[] = {
    {"run_id", JIN_STRING, 0, HTTP_RUN_ID_MAX - 1},
};

static void post_finish(http_request *rq, json_t *body, http_reply *rep)
{
    const char *run_id = str_member(body, "run_id");
    char err[ERR_MAX];
    if (run_id && !*run_id) {
        /* the study reads "" as "none given" (the best run): a final choice is
         * not made for a client that sent an empty id by mistake */
        reply_error(rep, MHD_HTTP_BAD_REQUEST, "run_id",
                    "run_id is empty: name one of your runs, or leave run_id out for your best finished run");
        return;
    }
    if (run_id) {
        tb_fe_run r;
        if (view_run_info(rq->srv, run_id, &r, err, sizeof err) != TB_OK ||
            strcmp(r.participant, rq->participant) != 0) {
            reply_error(rep, MHD_HTTP_NOT_FOUND, "run_id", "no such run: %s", run_id);
            return;
        }
    }
    tb_status s = rq->srv->api->finish(rq->srv->s, rq->participant, run_id, err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else reply_me(rq, rep, MHD_HTTP_OK);
}

static void get_events(http_request *rq, json_t *body, http_reply *rep)
{
    sse_open(rq->srv, rq->participant, rep);
}

/* ---- organiser routes ---------------------------------------------------------------------------- */

static const json_in_field admin_session_fields[] = {
    {"token", JIN_STRING, 1, 127},
};

static void post_admin_session(http_request *rq, json_t *body, http_reply *rep)
{
    if (!auth_check_admin_token(rq->srv, str_member(body, "token"))) {
        reply_error(rep, MHD_HTTP_UNAUTHORIZED, "token", "wrong admin token");
        return;
    }
    char value[HTTP_TOKEN_HEX + 1];
    auth_admin_cookie_value(rq->srv, value, sizeof value);
    auth_session_cookie(rep->set_cookie[0], sizeof rep->set_cookie[0], AUTH_COOKIE_ADMIN, value);
    reply_json(rep, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static void get_overview(http_request *rq, json_t *body, http_reply *rep)
{
    reply_json(rep, MHD_HTTP_OK, view_overview(rq->srv));
}

static const json_in_field admitting_fields[] = {
    {"admitting", JIN_BOOL, 1, 0},
};

static void post_admitting(http_request *rq, json_t *body, http_reply *rep)
{
    http_server *srv = rq->srv;
    char err[ERR_MAX];
    tb_status s = srv->api->set_admitting(srv->s, json_is_true(json_object_get(body, "admitting")), err, sizeof err);
    if (s != TB_OK) {
        reply_refused(rep, s, err);
        return;
    }
    tb_fe_counts c;
    memset(&c, 0, sizeof c);
    srv->api->counts(srv->s, &c, sizeof c);
    reply_json(rep, MHD_HTTP_OK, view_counts(&c));
}

static void post_close(http_request *rq, json_t *body, http_reply *rep)
{
    char err[ERR_MAX];
    tb_status s = rq->srv->api->close_study(rq->srv->s, "closed by the organiser", err, sizeof err);
    if (s != TB_OK) reply_refused(rep, s, err);
    else reply_json(rep, MHD_HTTP_ACCEPTED, json_pack("{s:b}", "closing", 1));
}

/* Exports into a hidden file of the archive, opens it, unlinks it: the fd is the answer. */
static void get_export(http_request *rq, json_t *body, http_reply *rep)
{
    http_server *srv = rq->srv;
    char hex[33], path[4096], err[ERR_MAX];
    if (auth_random_hex(hex, 16, err, sizeof err) != TB_OK) {
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s", err);
        return;
    }
    snprintf(path, sizeof path, "%s/" HTTP_EXPORT_PREFIX "%s.h5", srv->api->archive_path(srv->s), hex);
    pthread_mutex_lock(&srv->export_lock);
    tb_status s = srv->api->export_archive(srv->s, path, err, sizeof err);
    pthread_mutex_unlock(&srv->export_lock);
    if (s != TB_OK) {
        unlink(path);
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "export failed: %s", err);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "export: cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    rep->raw = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!rep->raw) {
        close(fd);
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-hdf5");
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CONTENT_DISPOSITION, "attachment; filename=\"study.h5\"");
    MHD_add_response_header(rep->raw, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rep->status = MHD_HTTP_OK;
}

static void get_admin_events(http_request *rq, json_t *body, http_reply *rep)
{
    sse_open(rq->srv, NULL, rep);
}

/* ---- the table --------------------------------------------------------------------------------- */

#define FIELDS(list) list, (int)(sizeof list / sizeof list[0])

static const http_route routes[] = {
    {"GET", "/api/study", NEED_NONE, NULL, 0, get_study},
    {"POST", "/api/register", NEED_NONE, FIELDS(register_fields), post_register},
    {"POST", "/api/login", NEED_NONE, FIELDS(login_fields), post_login},
    {"POST", "/api/logout", NEED_NONE, NULL, 0, post_logout},
    {"GET", "/api/me", NEED_PARTICIPANT, NULL, 0, get_me},
    {"POST", "/api/consent", NEED_PARTICIPANT, NULL, 0, post_consent},
    {"POST", "/api/enter", NEED_PARTICIPANT, NULL, 0, post_enter},
    {"POST", "/api/pause", NEED_PARTICIPANT, NULL, 0, post_pause},
    {"GET", "/api/runs", NEED_PARTICIPANT, NULL, 0, get_runs},
    {"POST", "/api/runs", NEED_PARTICIPANT, FIELDS(submit_fields), post_runs},
    {"GET", "/api/runs/{id}", NEED_PARTICIPANT, NULL, 0, get_run},
    {"GET", "/api/runs/{id}/curve", NEED_PARTICIPANT, NULL, 0, get_curve},
    {"POST", "/api/runs/{id}/cancel", NEED_PARTICIPANT, NULL, 0, post_cancel},
    {"POST", "/api/finish", NEED_PARTICIPANT, FIELDS(finish_fields), post_finish},
    {"GET", "/api/events", NEED_PARTICIPANT, NULL, 0, get_events},
    {"POST", "/api/admin/session", NEED_NONE, FIELDS(admin_session_fields), post_admin_session},
    {"GET", "/api/admin/overview", NEED_ADMIN, NULL, 0, get_overview},
    {"GET", "/api/admin/runs/{id}", NEED_ADMIN, NULL, 0, get_run},
    {"GET", "/api/admin/runs/{id}/curve", NEED_ADMIN, NULL, 0, get_curve},
    {"POST", "/api/admin/admitting", NEED_ADMIN, FIELDS(admitting_fields), post_admitting},
    {"POST", "/api/admin/close", NEED_ADMIN, NULL, 0, post_close},
    {"GET", "/api/admin/export", NEED_ADMIN, NULL, 0, get_export},
    {"GET", "/api/admin/events", NEED_ADMIN, NULL, 0, get_admin_events},
};

static const http_route asset_route = {"GET", NULL, NEED_NONE, NULL, 0, get_asset};

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* 1 when path fits pattern; the {id} segment into id. */
static int path_matches(const char *pattern, const char *path, char id[HTTP_RUN_ID_MAX])
{
    const char *slot = strstr(pattern, "{id}");
    if (!slot) return strcmp(pattern, path) == 0;
    size_t head = (size_t)(slot - pattern);
    if (strncmp(pattern, path, head) != 0) return 0;
    const char *seg = path + head;
    size_t n = 0;
    while (id_char(seg[n])) n++;
    if (n == 0 || n >= HTTP_RUN_ID_MAX || strcmp(seg + n, slot + 4) != 0) return 0;
    memcpy(id, seg, n);
    id[n] = '\0';
    return 1;
}

static void allow_add(char *allow, size_t cap, const char *method)
{
    if (strstr(allow, method)) return;
    size_t used = strlen(allow);
    snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", method);
}

const http_route *routes_match(http_request *rq, unsigned *status, char *allow, size_t allow_cap)
{
    allow[0] = '\0';
    /* HEAD is GET without the body (libmicrohttpd leaves the body out) */
    const char *method = strcmp(rq->method, "HEAD") == 0 ? "GET" : rq->method;
    if (asset_for(rq->path)) {
        if (strcmp(method, "GET") == 0) return &asset_route;
        allow_add(allow, allow_cap, "GET");
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char id[HTTP_RUN_ID_MAX];
        if (!path_matches(routes[i].pattern, rq->path, id)) continue;
        if (strcmp(routes[i].method, method) == 0) {
            snprintf(rq->path_id, sizeof rq->path_id, "%s", routes[i].pattern[strcspn(routes[i].pattern, "{")] ? id : "");
            return &routes[i];
        }
        allow_add(allow, allow_cap, routes[i].method);
    }
    *status = allow[0] ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
    return NULL;
}
