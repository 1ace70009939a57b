/* routes.h: the route table, written once in routes.c: method, path pattern,
 * who may call it, the body's fields and the handler. The server matches a
 * request against it (404 / 405 with Allow), checks the caller (401) and
 * parses the body (400) before a handler runs; handlers see typed input. */
#ifndef TB_HTTP_ROUTES_H
#define TB_HTTP_ROUTES_H

#include "json_in.h"
#include "server.h"

typedef void (*route_handler)(http_request *rq, json_t *body, http_reply *rep);

typedef struct http_route {
    const char *method;          /* "GET" or "POST" */
    const char *pattern;         /* "/api/runs/{id}/curve": {id} is one segment [A-Za-z0-9._-]{1,31} */
    http_auth_need auth;
    const json_in_field *fields; /* the body's fields (POST); NULL: an empty body or {} */
    int n_fields;
    route_handler handle;
} http_route;

/* The route for method and path (the {id} segment into rq->path_id), or NULL
 * with *status 404 (no such path) or 405 (allow: the methods the path takes). */
const http_route *routes_match(http_request *rq, unsigned *status, char *allow, size_t allow_cap);

/* ---- sse.c ---- */
/* An event stream for the participant (id) or the organiser (id NULL) into rep. */
void sse_open(http_server *srv, const char *id, http_reply *rep);

#endif
