/* http_client.h: a small HTTP/1.1 client on loopback for the http front
 * end's tests (tests/test_http.c) and its load test (tests/load/http_load.c):
 * one connection per request (Connection: close), cookies kept per client,
 * the CSRF header on POSTs, JSON answers parsed with jansson, and event
 * streams read as raw text. */
#ifndef TB_HTTP_CLIENT_H
#define TB_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

typedef struct hc_response {
    int status;          /* 0 when no answer came */
    char headers[8192];  /* the header block, lines ending in \r\n */
    char *body;          /* NUL-terminated; malloc'd */
    size_t len;
    json_t *json;        /* the body parsed when it is JSON, else NULL */
} hc_response;

/* A browser's worth of state: its cookies, or a bearer token instead. */
typedef struct hc_client {
    int port;
    char session[256];  /* tb_session cookie value ("" none) */
    char admin[128];    /* tb_admin cookie value */
    char bearer[256];   /* Authorization: Bearer (replaces the cookies and the CSRF header) */
    int no_csrf;        /* 1: leave out X-Tunebench on POSTs */
} hc_client;

/* Sends raw (a whole request) to 127.0.0.1:port and reads the answer until
 * the server closes. Returns 0, or -1 when no connection / no answer. */
int hc_raw(int port, const char *raw, size_t raw_len, hc_response *r, int timeout_ms);
/* METHOD path with body (NULL: none) as client c; Set-Cookie answers update c. */
int hc_call(hc_client *c, const char *method, const char *path, const char *body, hc_response *r);
void hc_free(hc_response *r);
/* The value of header name (case-insensitive) into out, or NULL. */
const char *hc_header(const hc_response *r, const char *name, char *out, size_t cap);

/* Opens an event stream (GET path) as c; returns the socket, or -1. */
int hc_stream_open(hc_client *c, const char *path);
/* Reads the stream into buf (appending; *len bytes so far) until pattern
 * appears after offset `from` or timeout_ms passes: 1 found, 0 not, -1 closed. */
int hc_stream_wait(int fd, char *buf, size_t cap, size_t *len, size_t from, const char *pattern, int timeout_ms);

/* Starts `exe study cfg --frontend http` with stdout and stderr appended to
 * log, and waits (up to timeout_ms) for the participants' URL it prints.
 * Returns 0 with *pid and *port, or -1 with why in err. */
int hc_spawn_study(const char *exe, const char *cfg, const char *log, int timeout_ms, int *pid, int *port, char *err,
                   size_t errlen);
/* Sends sig (0: none) and waits up to timeout_ms for pid; returns the exit code
 * (128 + signal when killed), or -1 after killing it when it did not stop. */
int hc_stop_study(int pid, int sig, int timeout_ms);

/* Monotonic milliseconds. */
double hc_now_ms(void);

#endif
