/* server.h: what the http front end's files share: the server (options,
 * keys, limits, counters), one request as the route handlers see it, and the
 * reply a handler fills. docs/http.md is the organiser's guide,
 * docs/openapi.yaml the API; plugins/frontends/http.c is the map.
 *
 * Threads: libmicrohttpd runs one thread per connection, so handlers run
 * concurrently and an event stream may block in the study's wait_change. The
 * study API is thread-safe; the server's own mutable state (per-participant
 * counters, stream counts) is behind http_server.lock. */
#ifndef TB_HTTP_SERVER_H
#define TB_HTTP_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Exports are written into the archive under this prefix and unlinked once open; start removes leftovers. */
#define HTTP_EXPORT_PREFIX ".http-export-"

#include "tunebench_plugin.h"

#define HTTP_PLUGIN "http"
#define HTTP_HP_N TB_STUDY_HP_COUNT
#define HTTP_KEY_BYTES 32           /* the HMAC key in ARCHIVE/http.key */
#define HTTP_TOKEN_HEX 64           /* hex of an HMAC-SHA256 */
#define HTTP_ID_MAX 64              /* a participant id, with its NUL */
#define HTTP_RUN_ID_MAX 32          /* a run id, with its NUL */

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;

/* The [http] limits (docs/http.md). */
typedef struct http_limits {
    unsigned max_connections, max_connections_per_ip, connection_timeout_s;
    size_t max_body_bytes;
    int submissions_per_minute;
    int registrations_per_minute; /* per client address */
    int streams_per_participant, max_streams;
} http_limits;

/* What the server remembers about one participant (found by id, created on first use). */
#define HTTP_RATE_MAX 64 /* submissions_per_minute and registrations_per_minute are at most this */
typedef struct http_person {
    char id[HTTP_ID_MAX];
    double submit_times[HTTP_RATE_MAX]; /* ring of the last submissions (monotonic seconds) */
    int submit_next;
    int streams;                        /* open event streams */
} http_person;

#define HTTP_SUBMIT_LOCKS 32 /* stripes of the per-participant submission lock */

typedef struct http_server {
    const tb_host_api *host;
    const tb_study_api *api;
    tb_study *s;
    http_limits lim;
    tb_fe_hp hp[HTTP_HP_N];            /* the study's hyperparameters, read once */
    uint8_t key[HTTP_KEY_BYTES];       /* session HMAC key */
    char admin_token[128];
    struct MHD_Daemon *daemon;
    atomic_int stopping;               /* 1: streams end, new requests get 503 */
    atomic_int in_flight;              /* requests begun and not yet completed */
    pthread_mutex_t lock;              /* guards people, n_people, streams */
    http_person *people;
    int n_people, cap_people;
    int streams;                       /* open event streams in all */
    pthread_mutex_t export_lock;       /* one export at a time */
    pthread_mutex_t submit_locks[HTTP_SUBMIT_LOCKS]; /* a participant's submissions, one at a time (by id's hash) */
} http_server;

typedef enum http_auth_need {
    NEED_NONE = 0,        /* anyone (the study's description, registration, login, pages) */
    NEED_PARTICIPANT,     /* a participant's cookie or bearer token */
    NEED_ADMIN,           /* the organiser's cookie or bearer token */
} http_auth_need;

/* One request while it is read and answered. */
typedef struct http_request {
    http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *path;
    const struct http_route *route;
    char path_id[HTTP_RUN_ID_MAX];     /* the {id} segment of the path, "" when none */
    char *body;                        /* the body read so far (NUL-terminated) */
    size_t body_len;
    int too_large;                     /* the body passed max_body_bytes: answer 413 */
    size_t dropped;                    /* bytes dropped since */
    /* who sent it (auth.c); a browser may hold both cookies */
    int admin;                         /* valid organiser credentials */
    char participant[HTTP_ID_MAX];     /* a valid participant's id, "" when none */
    int by_bearer;                     /* credentials came from Authorization: Bearer */
    int counted;                       /* counted in srv->in_flight */
} http_request;

/* What a handler answers: JSON (status + json) or a ready response (raw). */
typedef struct http_reply {
    unsigned status;
    json_t *json;                      /* owned; NULL with raw */
    struct MHD_Response *raw;          /* an asset, a file, an event stream */
    char set_cookie[2][320];           /* up to two Set-Cookie headers ("" none) */
    int retry_after_s;                 /* Retry-After when > 0 */
    const char *allow;                 /* Allow (405) */
} http_reply;

/* The body of an error answer: {"error": message, "field": field or null}. */
void reply_error(http_reply *rep, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A JSON answer; takes json (NULL: 500 out of memory). */
void reply_json(http_reply *rep, unsigned status, json_t *json);

/* ---- server.c ---- */
/* Starts the daemon on bind:port (port 0: a free one), *bound_port the port it got. */
tb_status server_start(http_server *srv, const char *bind, unsigned port, unsigned *bound_port, char *err,
                       size_t errlen);
/* Stops accepting, lets requests in flight finish (streams end), stops the daemon. */
void server_stop(http_server *srv);
/* Seconds on the monotonic clock / since 1970. */
double mono_s(void);
double wall_s(void);

/* ---- people.c: per-participant counters (lock held inside) ---- */
/* 0 when the participant may submit now (the submission is counted); else the
 * seconds until they may (for Retry-After). */
int people_take_submission(http_server *srv, const char *id);
/* The same for a registration from client address `address` (registrations_per_minute). */
int people_take_registration(http_server *srv, const char *address);
/* Opens an event stream for id (NULL: the organiser): 0, or 429 (the
 * participant's cap) or 503 (the server's cap). */
unsigned people_open_stream(http_server *srv, const char *id);
void people_close_stream(http_server *srv, const char *id);
/* The lock that serialises id's submissions (one of srv->submit_locks). */
pthread_mutex_t *people_submit_lock(http_server *srv, const char *id);
void people_free(http_server *srv);

#endif
