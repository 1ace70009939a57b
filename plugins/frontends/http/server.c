/* server.c: the libmicrohttpd daemon and one request's way through it.
 *
 * First call of the access handler (headers only): refused at once, before
 * any body is read, when the server is stopping (503), the path is unknown
 * (404), the method wrong (405 + Allow), the caller lacks credentials (401),
 * a POST lacks the CSRF header (403) or announces a body over the limit (413).
 * Next calls: the body is gathered, counted against max_body_bytes; past it
 * the rest is read and dropped (libmicrohttpd answers only once the body is
 * in) and the answer is 413, or the connection is cut when the body goes on
 * past DROP_MAX_FACTOR times the limit. Last call: the body is parsed against the route's
 * fields (400 naming the field) and the handler answers. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "routes.h"
#include "views.h"

#define CSRF_HEADER "X-Tunebench"
#define DRAIN_WAIT_S 10.0 /* how long stopping waits for answers in flight */
#define DROP_MAX_FACTOR 16 /* a body streamed past 16 x max_body_bytes is cut off without an answer */
#define CSP "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " \
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- replies ------------------------------------------------------------------------------ */

void reply_json(http_reply *rep, unsigned status, json_t *json)
{
    if (rep->json) json_decref(rep->json);
    rep->json = json;
    rep->status = json ? status : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

void reply_error(http_reply *rep, unsigned status, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* the study's messages may hold a newline: the API's errors are one line */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    reply_json(rep, status,
               json_pack("{s:o, s:o}", "error", view_text(msg), "field", field && *field ? view_text(field) : json_null()));
}

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
}

/* Turns the reply into a response and queues it. */
static enum MHD_Result send_reply(struct MHD_Connection *conn, http_reply *rep)
{
    struct MHD_Response *r = rep->raw;
    if (!r) {
        char *text = rep->json ? json_dumps(rep->json, JSON_COMPACT) : NULL;
        if (!text) {
            static const char oom[] = "{\"error\":\"out of memory\",\"field\":null}";
            r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
            rep->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        } else r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    add_security_headers(r);
    for (int i = 0; i < 2; i++)
        if (rep->set_cookie[i][0]) MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, rep->set_cookie[i]);
    if (rep->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", rep->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result ok = MHD_queue_response(conn, rep->status ? rep->status : 500, r);
    MHD_destroy_response(r);
    json_decref(rep->json);
    rep->json = NULL;
    rep->raw = NULL;
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *allow, const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *allow, const char *fmt,
                                  ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_reply rep;
    memset(&rep, 0, sizeof rep);
    reply_error(&rep, status, NULL, "%s", msg);
    rep.allow = allow;
    return send_reply(conn, &rep);
}

/* ---- the request's first call: everything decided from the headers ----------------------------- */

static int content_length_over(struct MHD_Connection *conn, size_t max)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno == ERANGE || n > max;
}

/* 0 when the request may go on; else the refusal was queued (its MHD result in *result). */
static int refuse_early(http_request *rq, enum MHD_Result *result)
{
    http_server *srv = rq->srv;
    unsigned status = 0;
    char allow[64] = "";
    if (atomic_load(&srv->stopping)) {
        *result = send_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "the study is closing");
        return 1;
    }
    rq->route = routes_match(rq, &status, allow, sizeof allow);
    if (!rq->route) {
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
            *result = send_error(rq->conn, status, allow, "%s is not allowed on %s (allowed: %s)", rq->method,
                                 rq->path, allow);
        else *result = send_error(rq->conn, MHD_HTTP_NOT_FOUND, NULL, "no such page: %s", rq->path);
        return 1;
    }
    auth_identify(rq);
    if (rq->route->auth == NEED_PARTICIPANT && !rq->participant[0]) {
        *result = send_error(rq->conn, MHD_HTTP_UNAUTHORIZED, NULL,
                             "not logged in as a participant: register, or log in with your id and secret");
        return 1;
    }
    if (rq->route->auth == NEED_ADMIN && !rq->admin) {
        *result = send_error(rq->conn, MHD_HTTP_UNAUTHORIZED, NULL, "organiser credentials needed (the admin token)");
        return 1;
    }
    if (strcmp(rq->method, "POST") == 0 && !rq->by_bearer) {
        const char *csrf = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, CSRF_HEADER);
        if (!csrf || strcmp(csrf, "1") != 0) {
            *result = send_error(rq->conn, MHD_HTTP_FORBIDDEN, NULL,
                                 "a POST needs the header " CSRF_HEADER ": 1 (or an Authorization: Bearer token)");
            return 1;
        }
    }
    if (content_length_over(rq->conn, srv->lim.max_body_bytes)) {
        *result = send_error(rq->conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is larger than %zu bytes",
                             srv->lim.max_body_bytes);
        return 1;
    }
    return 0;
}

/* ---- the body and the handler ----------------------------------------------------------------- */

/* Appends data to the body; 0, or -1 when it would pass the limit (or memory ran out). */
static int body_append(http_request *rq, const char *data, size_t n)
{
    if (rq->body_len + n > rq->srv->lim.max_body_bytes) return -1;
    char *b = realloc(rq->body, rq->body_len + n + 1);
    if (!b) return -1;
    memcpy(b + rq->body_len, data, n);
    rq->body = b;
    rq->body_len += n;
    b[rq->body_len] = '\0';
    return 0;
}

static enum MHD_Result dispatch(http_request *rq)
{
    http_reply rep;
    memset(&rep, 0, sizeof rep);
    const http_route *route = rq->route;
    if (strcmp(rq->method, "GET") == 0 && rq->body_len > 0)
        return send_error(rq->conn, MHD_HTTP_BAD_REQUEST, NULL, "a GET takes no body");
    json_in_error e;
    json_t *body = json_in_parse(rq->body ? rq->body : "", rq->body_len, route->fields, route->n_fields,
                                 rq->srv->hp, &e);
    if (!body) {
        reply_error(&rep, MHD_HTTP_BAD_REQUEST, e.field, "%s", e.message);
        return send_reply(rq->conn, &rep);
    }
    route->handle(rq, body, &rep);
    json_decref(body);
    return send_reply(rq->conn, &rep);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_server *srv = cls;
    http_request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->srv = srv;
        rq->conn = conn;
        rq->method = method;
        rq->path = url;
        rq->counted = 1;
        atomic_fetch_add(&srv->in_flight, 1);
        *con_cls = rq;
        enum MHD_Result result;
        if (refuse_early(rq, &result)) rq->route = NULL;
        else result = MHD_YES;
        rq->path = NULL; /* url lives only during this call */
        return result;
    }
    if (!rq->route) { /* refused on the first call: the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!rq->too_large && body_append(rq, upload_data, n) != 0) rq->too_large = 1;
        if (rq->too_large) rq->dropped += n;
        /* libmicrohttpd answers only once the body is in: drop what comes, up to a point */
        return rq->dropped > DROP_MAX_FACTOR * srv->lim.max_body_bytes ? MHD_NO : MHD_YES;
    }
    if (rq->too_large) {
        rq->route = NULL;
        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is larger than %zu bytes",
                          srv->lim.max_body_bytes);
    }
    rq->path = url;
    enum MHD_Result result = dispatch(rq);
    rq->route = NULL;
    return result;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    http_request *rq = *con_cls;
    if (!rq) return;
    if (rq->counted) atomic_fetch_sub(&srv->in_flight, 1);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    http_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    srv->host->log(TB_LOG_DEBUG, HTTP_PLUGIN, "libmicrohttpd: %s", msg);
}

/* ---- start and stop --------------------------------------------------------------------------- */

tb_status server_start(http_server *srv, const char *bind, unsigned port, unsigned *bound_port, char *err,
                       size_t errlen)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "http.bind = \"%s\" is not an IPv4 address (e.g. 127.0.0.1, or 0.0.0.0 for all)", bind);
        return TB_EINVAL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, srv->lim.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        srv->lim.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, srv->lim.connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot serve on %s:%u (in use, or not allowed; port 0 picks a free one)", bind, port);
        return TB_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    return TB_OK;
}

void server_stop(http_server *srv)
{
    if (!srv->daemon) return;
    atomic_store(&srv->stopping, 1);
    /* The listening socket is ours after quiescing, but libmicrohttpd's threads
     * may still hold its number until MHD_stop_daemon (microhttpd.h): closing
     * it now would let a file the study opens meanwhile take that number.
     * shutdown() refuses new connections at once; close() comes after the stop. */
    MHD_socket listener = MHD_quiesce_daemon(srv->daemon);
    if (listener != MHD_INVALID_SOCKET) shutdown(listener, SHUT_RDWR);
    /* streams notice `stopping` within a second; other answers finish */
    double until = mono_s() + DRAIN_WAIT_S;
    while (atomic_load(&srv->in_flight) > 0 && mono_s() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&srv->in_flight);
    if (left > 0)
        srv->host->log(TB_LOG_WARN, HTTP_PLUGIN, "%d request(s) still in flight after %.0f s: closing them", left,
                       DRAIN_WAIT_S);
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    if (listener != MHD_INVALID_SOCKET) close(listener);
}
