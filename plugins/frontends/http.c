/* http.c: front-end plugin "http", the study served over HTTP: the
 * participants' web app, the organiser's dashboard and the JSON API both use
 * (docs/http.md is the organiser's guide, docs/openapi.yaml the API). This
 * file is the map and the plugin's life; the parts live in http/:
 *
 *   server.c   the libmicrohttpd daemon (a thread per connection), a request's
 *              way: refusals decided from the headers, the body, the handler
 *   routes.c   the route table (method, path, who, body fields, handler) and
 *              the handlers, each a few study API calls
 *   json_in.c  request bodies: depth, duplicates, types, lengths, unknown fields
 *   views.c    the JSON answers (study, me, run, curve, counts, overview)
 *   auth.c     the session key file, HMAC tokens, cookies, the admin token
 *   people.c   per-participant counters: submissions a minute, event streams
 *   sse.c      the event streams, driven by the study's wait_change
 *   assets.h   the web pages, compiled in (cmake/embed_assets.cmake)
 *
 * run(): checks the study API (version 3), reads the options, loads the
 * session key from the archive, starts the server, prints the two URLs, then
 * waits for the study to close (SIGTERM, or the organiser's close) or a
 * Ctrl-C (then it closes the study), and stops the server gracefully: no new
 * connections, event streams end, answers in flight finish. */
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "server.h"

/* A table the host hands over has member (appended in a later version) when its size covers it. */
#define HAS_MEMBER(api, type, member) ((api)->size >= offsetof(type, member) + sizeof((api)->member))
#define CLOSE_POLL_MS 1000

static const tb_plugin_option options[] = {
    {"bind", TB_OPTION_STRING, "127.0.0.1", 0, 0, NULL, "IPv4 address to listen on (0.0.0.0: every interface)"},
    {"port", TB_OPTION_INT, "8080", 0, 65535, NULL, "TCP port; 0 picks a free one (printed at start)"},
    {"admin_token", TB_OPTION_STRING, "", 0, 0, NULL,
     "the organiser's token (at least 16 characters); \"\": a random one, printed at start"},
    {"public_url", TB_OPTION_STRING, "", 0, 0, NULL,
     "the URL participants use (e.g. behind a proxy), for the printed links; \"\": http://bind:port"},
    {"max_connections", TB_OPTION_INT, "256", 1, 4096, NULL, "connections open at once, in all"},
    {"max_connections_per_ip", TB_OPTION_INT, "128", 1, 4096, NULL, "connections open at once from one address"},
    {"connection_timeout_s", TB_OPTION_INT, "60", 5, 3600, NULL, "an idle connection is closed after this"},
    {"max_body_bytes", TB_OPTION_INT, "65536", 1024, 16777216, NULL, "larger request bodies are refused (413)"},
    {"submissions_per_minute", TB_OPTION_INT, "6", 1, HTTP_RATE_MAX, NULL,
     "submissions a participant may make in any minute (429 past it)"},
    {"registrations_per_minute", TB_OPTION_INT, "30", 1, HTTP_RATE_MAX, NULL,
     "registrations from one client address in any minute (429 past it; a class behind one NAT shares it)"},
    {"streams_per_participant", TB_OPTION_INT, "3", 1, 64, NULL, "event streams one participant may hold (429)"},
    {"max_streams", TB_OPTION_INT, "200", 1, 4096, NULL, "event streams open at once, in all (503)"},
};

#define MIN_ADMIN_TOKEN 16

/* Every study API member this front end calls is there (version 3). */
static int study_api_complete(const tb_study_api *a)
{
    return a && a->version >= 3 && HAS_MEMBER(a, tb_study_api, export_archive) && a->participant_info &&
           a->run_info && a->history_info && a->hp_readers && a->show_result && a->curve && a->change_seq &&
           a->wait_change && a->wait_close && a->participant_count && a->participant_at && a->live_runs &&
           a->counts && a->set_admitting && a->close_study && a->archive_path && a->export_archive &&
           a->submission_note && a->take_interrupt;
}

static void read_limits(const tb_host_api *host, const tb_plugin_args *args, http_limits *lim)
{
    lim->max_connections = (unsigned)host->arg_int(args, "max_connections");
    lim->max_connections_per_ip = (unsigned)host->arg_int(args, "max_connections_per_ip");
    lim->connection_timeout_s = (unsigned)host->arg_int(args, "connection_timeout_s");
    lim->max_body_bytes = (size_t)host->arg_int(args, "max_body_bytes");
    lim->submissions_per_minute = (int)host->arg_int(args, "submissions_per_minute");
    lim->registrations_per_minute = (int)host->arg_int(args, "registrations_per_minute");
    lim->streams_per_participant = (int)host->arg_int(args, "streams_per_participant");
    lim->max_streams = (int)host->arg_int(args, "max_streams");
}

static tb_status set_admin_token(http_server *srv, const tb_plugin_args *args, char *err, size_t errlen)
{
    const char *token = srv->host->arg_string(args, "admin_token");
    if (!token || !*token) return auth_random_hex(srv->admin_token, 16, err, errlen);
    size_t n = strlen(token);
    if (n < MIN_ADMIN_TOKEN || n >= sizeof srv->admin_token) {
        snprintf(err, errlen, "http.admin_token must be %d to %zu characters (or \"\" for a random one)",
                 MIN_ADMIN_TOKEN, sizeof srv->admin_token - 1);
        return TB_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] == ';' || token[i] == ',' || (unsigned char)token[i] >= 0x7f) {
            snprintf(err, errlen, "http.admin_token: use printable ASCII without spaces, ';' or ','");
            return TB_EINVAL;
        }
    snprintf(srv->admin_token, sizeof srv->admin_token, "%s", token);
    return TB_OK;
}

static void print_urls(const http_server *srv, const char *public_url, const char *bind, unsigned port)
{
    char base[512];
    if (public_url && *public_url) {
        size_t n = strlen(public_url);
        snprintf(base, sizeof base, "%.*s", (int)(n > 0 && public_url[n - 1] == '/' ? n - 1 : n), public_url);
    } else snprintf(base, sizeof base, "http://%s:%u", bind, port);
    /* a front end owns the terminal: these two lines are what the organiser acts on */
    fprintf(stderr, "tunebench: participants: %s/\n", base);
    fprintf(stderr, "tunebench: organiser: %s/admin#token=%s\n", base, srv->admin_token);
    fflush(stderr);
}

/* Waits until the study closes; a Ctrl-C closes it. */
static void wait_for_close(http_server *srv)
{
    const tb_study_api *api = srv->api;
    for (;;) {
        if (api->wait_close(srv->s, CLOSE_POLL_MS) == 1) return;
        if (api->take_interrupt(srv->s)) {
            char err[256];
            srv->host->log(TB_LOG_INFO, HTTP_PLUGIN, "Ctrl-C: closing the study");
            if (api->close_study(srv->s, "Ctrl-C at the server", err, sizeof err) != TB_OK)
                srv->host->log(TB_LOG_WARN, HTTP_PLUGIN, "closing the study: %s", err);
            return;
        }
    }
}

/* Exports a crash left in the archive (routes.c writes them there, hidden, and
 * unlinks them once open). */
static void remove_stale_exports(const char *archive)
{
    DIR *d = opendir(archive);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, HTTP_EXPORT_PREFIX, strlen(HTTP_EXPORT_PREFIX)) == 0) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

static tb_status prepare(http_server *srv, const tb_plugin_args *args, char *err, size_t errlen)
{
    for (int i = 0; i < HTTP_HP_N; i++)
        if (srv->api->hp_info(srv->s, i, &srv->hp[i]) != 0 || !srv->hp[i].name) {
            snprintf(err, errlen, "the study does not describe hyperparameter %d of %d", i + 1, HTTP_HP_N);
            return TB_EINVAL;
        }
    read_limits(srv->host, args, &srv->lim);
    tb_status s = set_admin_token(srv, args, err, errlen);
    if (s == TB_OK) s = auth_load_key(srv, srv->api->archive_path(srv->s), err, errlen);
    if (s == TB_OK) remove_stale_exports(srv->api->archive_path(srv->s));
    return s;
}

static tb_status run(const tb_host_api *host, const tb_study_api *study, const tb_plugin_args *args, char *err,
                     size_t errlen)
{
    if (!host || !HAS_MEMBER(host, tb_host_api, nearest)) {
        snprintf(err, errlen, "the http front end needs host API version 3 or later");
        return TB_EINVAL;
    }
    if (!study_api_complete(study)) {
        snprintf(err, errlen, "the http front end needs study API version 3 (this host has version %u)",
                 study ? study->version : 0);
        return TB_EINVAL;
    }
    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    srv->host = host;
    srv->api = study;
    srv->s = study->study;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->export_lock, NULL);
    for (int i = 0; i < HTTP_SUBMIT_LOCKS; i++) pthread_mutex_init(&srv->submit_locks[i], NULL);
    tb_status s = prepare(srv, args, err, errlen);
    unsigned port = 0;
    const char *bind = host->arg_string(args, "bind");
    if (s == TB_OK) s = server_start(srv, bind, (unsigned)host->arg_int(args, "port"), &port, err, errlen);
    if (s == TB_OK) {
        print_urls(srv, host->arg_string(args, "public_url"), bind, port);
        wait_for_close(srv);
        host->log(TB_LOG_INFO, HTTP_PLUGIN, "the study is closing: stopping the server");
        server_stop(srv);
    }
    people_free(srv);
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->export_lock);
    for (int i = 0; i < HTTP_SUBMIT_LOCKS; i++) pthread_mutex_destroy(&srv->submit_locks[i]);
    memset(srv->key, 0, sizeof srv->key);
    free(srv);
    return s;
}

static const tb_frontend_api frontend = {
    .size = sizeof(tb_frontend_api),
    .run = run,
};

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_FRONTEND,
    .name = HTTP_PLUGIN,
    .version = "1.0.0",
    .license = "MIT",
    .description = "the study over HTTP: the participants' web app, the organiser's dashboard, a JSON API "
                   "(libmicrohttpd)",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .frontend = &frontend,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
