/* test_http.c: the http front end (plugins/frontends/http.c) against a real
 * `tunebench study --frontend http` on loopback, on the toy task: each test
 * starts its own server on a fresh archive (port 0, the port read from the
 * printed URL) and talks to it with the small client of http_client.c.
 *
 * Covered: two participants' whole flow at once (register, consent, enter,
 * submit, the live curve over SSE, cancel, resubmit, finish, final
 * evaluations); isolation (another's run is 404, participant credentials on
 * organiser routes 401); every refusal (404, 405 + Allow, 403 without the
 * CSRF header, 413, 429 + Retry-After for submissions and streams, 503 for
 * the server's stream cap, 400 for duplicate keys, NaN, wrong types, long
 * strings, deep nesting and unknown fields, with nothing recorded; the field
 * named for each refused registration value; 422 for a rejected value,
 * recorded; submissions sent at once: one run, the rest 409); a restart after SIGTERM in the middle of a run
 * (cookies still work); the organiser's routes (session, overview,
 * admission, export, events, close). */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "tb_test.h"

#define ADMIN_TOKEN "test-admin-token-0123456789"
#define START_TIMEOUT_MS 60000

static char tmpdir[512], task_path[1024], cfg_path[1024], log_path[1024];

typedef struct server {
    pid_t pid;
    int port;
} server;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_log(void)
{
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(log_path, "r");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The study config: the toy task, two slots, one final seed, small limits. */
static void write_config(const char *extra_http)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\ntitle = toy http study\nbriefing = Tune a small CNN.\narchive = %s/archive\n"
             "final_seeds = 11\nslots = 2\nbudget_minutes = 30\nshow_result = true\n"
             "[space]\nepochs = int 1 200\nbatch_size = int 1 480 log\nlr = float 1e-6 10 log\n"
             "[http]\nport = 0\nadmin_token = " ADMIN_TOKEN "\nmax_body_bytes = 4096\n"
             "submissions_per_minute = 4\nregistrations_per_minute = 12\nstreams_per_participant = 2\n"
             "max_streams = 3\n%s\n",
             tmpdir, extra_http ? extra_http : "");
    FILE *f = fopen(cfg_path, "w");
    ck_assert(f);
    fputs(tbt_toy_config(task_path, extra), f);
    fclose(f);
}

static void setup(void)
{
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "http");
    snprintf(task_path, sizeof task_path, "%s/toy.h5", tmpdir);
    snprintf(cfg_path, sizeof cfg_path, "%s/study.ini", tmpdir);
    snprintf(log_path, sizeof log_path, "%s/server.log", tmpdir);
    tbt_make_toy_task(task_path, 480, 120, 120, 4, 12, 7);
    write_config(NULL);
}

static void teardown(void)
{
    tbt_rm_rf(tmpdir);
}

/* Starts the study server; waits for its printed participants' URL. */
static void start_server(server *srv)
{
    static char err[70000];
    int pid = 0;
    if (hc_spawn_study(tbt_exe(), cfg_path, log_path, START_TIMEOUT_MS, &pid, &srv->port, err, sizeof err) != 0)
        ck_abort_msg("%s", err);
    srv->pid = pid;
}

/* Sends sig and waits for the exit; returns the exit code (or 128 + signal). */
static int stop_server(server *srv, int sig)
{
    int code = hc_stop_study(srv->pid, sig, 30000);
    ck_assert_msg(code >= 0, "the server did not stop within 30 s:\n%s", read_log());
    return code;
}

/* ---- small steps ---------------------------------------------------------------------------- */

/* Calls and checks the status; the answer stays in r (free with hc_free). */
#define CALL(c_, m_, p_, b_, r_, e_)                                                                         \
    do {                                                                                                    \
        ck_assert_msg(hc_call((c_), (m_), (p_), (b_), (r_)) == 0, "%s %s: no answer", (m_), (p_));           \
        ck_assert_msg((r_)->status == (e_), "%s %s: status %d, expected %d: %s", (m_), (p_), (r_)->status,    \
                      (e_), (r_)->body ? (r_)->body : "");                                                  \
    } while (0)

static const char *jstr(const hc_response *r, const char *key)
{
    const char *s = json_string_value(json_object_get(r->json, key));
    return s ? s : "";
}

static long long jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void check_error_field(const hc_response *r, const char *field)
{
    ck_assert_msg(r->json, "not JSON: %s", r->body);
    const json_t *f = json_object_get(r->json, "field");
    if (!field) ck_assert_msg(json_is_null(f), "field should be null: %s", r->body);
    else ck_assert_msg(json_is_string(f) && strcmp(json_string_value(f), field) == 0,
                       "field should be %s: %s", field, r->body);
    ck_assert_msg(json_is_string(json_object_get(r->json, "error")), "no error message: %s", r->body);
}

/* Registers, consents and enters a new participant as c (returns its id in id). */
static void join(hc_client *c, int port, char id[64], const char *want_id)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    hc_response r;
    char body[256];
    snprintf(body, sizeof body, "{\"id\": \"%s\", \"education\": \"master\", \"dl_months\": 12}", want_id);
    CALL(c, "POST", "/api/register", body, &r, 201);
    snprintf(id, 64, "%s", jstr(&r, "id"));
    ck_assert_str_eq(id, want_id);
    char secret[256];
    snprintf(secret, sizeof secret, "%s", jstr(&r, "secret"));
    ck_assert_msg(strcmp(secret, c->session) == 0, "the secret is the cookie: %s vs %s", secret, c->session);
    char sc[512];
    ck_assert(hc_header(&r, "Set-Cookie", sc, sizeof sc));
    TBT_ASSERT_HAS(sc, "HttpOnly");
    TBT_ASSERT_HAS(sc, "SameSite=Strict");
    hc_free(&r);
    CALL(c, "POST", "/api/consent", NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "state"), "consented");
    hc_free(&r);
    CALL(c, "POST", "/api/enter", NULL, &r, 200);
    /* two places (slots = 2): a third participant waits in the lobby */
    ck_assert_msg(strcmp(jstr(&r, "state"), "active") == 0 || strcmp(jstr(&r, "state"), "lobby") == 0, "%s", r.body);
    hc_free(&r);
}

/* Submits; returns the new run's id into run_id. */
static void submit(hc_client *c, int epochs, char run_id[32])
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"values\": {\"epochs\": %d, \"batch_size\": \"16\", \"loss\": \"cross_entropy\", "
             "\"optimizer\": \"adam\", \"lr\": 0.01}, \"comments\": {\"lr\": \"It is just a guess.\"}}",
             epochs);
    hc_response r;
    CALL(c, "POST", "/api/runs", body, &r, 201);
    const json_t *run = json_object_get(r.json, "run");
    snprintf(run_id, 32, "%s", json_string_value(json_object_get(run, "run_id")));
    ck_assert_msg(run_id[0], "no run id: %s", r.body);
    hc_free(&r);
}

/* Polls the run until it has ended; returns its status. */
static void wait_run_end(hc_client *c, const char *run_id, char status[16])
{
    char path[128];
    snprintf(path, sizeof path, "/api/runs/%s", run_id);
    double until = hc_now_ms() + 60000;
    while (hc_now_ms() < until) {
        hc_response r;
        CALL(c, "GET", path, NULL, &r, 200);
        long long code = jint(r.json, "status_code");
        snprintf(status, 16, "%s", jstr(&r, "status"));
        hc_free(&r);
        if (code >= 2) return;
        sleep_ms(100);
    }
    ck_abort_msg("run %s did not end within 60 s", run_id);
}

static int history_count(hc_client *c)
{
    hc_response r;
    CALL(c, "GET", "/api/runs", NULL, &r, 200);
    int n = (int)json_array_size(json_object_get(r.json, "runs"));
    hc_free(&r);
    return n;
}

/* Several submissions of one participant sent at once (each on its own connection). */
#define RACERS 4
typedef struct racer {
    hc_client c;
    const char *body;
    pthread_barrier_t *go;
    int status;
    char text[512];
} racer;

static void *race_submit(void *arg)
{
    racer *r = arg;
    hc_response resp;
    pthread_barrier_wait(r->go);
    if (hc_call(&r->c, "POST", "/api/runs", r->body, &resp) == 0) {
        r->status = resp.status;
        snprintf(r->text, sizeof r->text, "%s", resp.body ? resp.body : "");
        hc_free(&resp);
    }
    return NULL;
}

/* Sends RACERS identical submissions as c at once: exactly one run is made and
 * the others are 409 (refused, nothing recorded), never 422 (which would say
 * the other submission's run was this one's rejected try). */
static void submit_at_once(const hc_client *c, int epochs)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"values\": {\"epochs\": %d, \"batch_size\": \"16\", \"loss\": \"cross_entropy\", "
             "\"optimizer\": \"adam\", \"lr\": 0.01}}",
             epochs);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i] = (racer){.c = *c, .body = body, .go = &go};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race_submit, &rs[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(rs[i].status == 201 || rs[i].status == 409, "a submission sent at once: status %d: %s",
                      rs[i].status, rs[i].text);
        created += rs[i].status == 201;
    }
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(created, 1);
}

/* ---- the tests ------------------------------------------------------------------------------ */

START_TEST(two_participants_tune_at_once)
{
    server srv;
    start_server(&srv);
    hc_client a, b;
    char ida[64], idb[64], run_a[32], run_b[32], run_a2[32], status[16];
    hc_response r;

    join(&a, srv.port, ida, "alice");
    join(&b, srv.port, idb, "bob");

    CALL(&a, "GET", "/api/study", NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "title"), "toy http study");
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "hparams")), 15);
    hc_free(&r);

    /* alice follows her long run live, then cancels it; bob's trains beside it */
    int stream = hc_stream_open(&a, "/api/events");
    ck_assert(stream >= 0);
    submit(&a, 150, run_a);
    submit(&b, 2, run_b);
    static char buf[1 << 16];
    size_t len = 0;
    int got = hc_stream_wait(stream, buf, sizeof buf, &len, 0, "event: curve", 30000);
    ck_assert_msg(got == 1, "no curve event on the stream:\n%s", buf);
    TBT_ASSERT_HAS(buf, "text/event-stream");
    TBT_ASSERT_HAS(buf, "event: me");
    close(stream);

    char path[128];
    snprintf(path, sizeof path, "/api/runs/%s/curve?batch_from=0&epoch_from=0", run_a);
    CALL(&a, "GET", path, NULL, &r, 200);
    ck_assert_int_gt(json_array_size(json_object_get(json_object_get(r.json, "batch"), "loss")), 0);
    hc_free(&r);

    snprintf(path, sizeof path, "/api/runs/%s/cancel", run_a);
    CALL(&a, "POST", path, NULL, &r, 200);
    hc_free(&r);
    wait_run_end(&a, run_a, status);
    ck_assert_str_eq(status, "cancelled");

    submit(&a, 2, run_a2);
    wait_run_end(&a, run_a2, status);
    ck_assert_str_eq(status, "finished");
    wait_run_end(&b, run_b, status);
    ck_assert_str_eq(status, "finished");
    ck_assert_int_eq(history_count(&a), 2);
    ck_assert_int_eq(history_count(&b), 1);

    /* the finished run's curve is whole: 2 epochs */
    snprintf(path, sizeof path, "/api/runs/%s/curve", run_a2);
    CALL(&a, "GET", path, NULL, &r, 200);
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(r.json, "epoch"), "val_accuracy")), 2);
    hc_free(&r);

    snprintf(path, sizeof path, "{\"run_id\": \"%s\"}", run_a2);
    CALL(&a, "POST", "/api/finish", path, &r, 200);
    ck_assert_str_eq(jstr(&r, "state"), "done");
    hc_free(&r);
    CALL(&b, "POST", "/api/finish", "{}", &r, 200);
    ck_assert_str_eq(jstr(&r, "final_run"), run_b);
    hc_free(&r);

    /* the final evaluations run while the server serves */
    hc_client *people[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        double until = hc_now_ms() + 60000;
        for (;;) {
            CALL(people[i], "GET", "/api/me", NULL, &r, 200);
            long long done = jint(r.json, "finals_done"), total = jint(r.json, "finals_total");
            int finite = json_is_real(json_object_get(r.json, "final_mean"));
            hc_free(&r);
            if (total == 1 && done == 1 && finite) break;
            ck_assert_msg(hc_now_ms() < until, "final evaluations did not end");
            sleep_ms(200);
        }
    }
    ck_assert_int_eq(stop_server(&srv, SIGTERM), 4);
}
END_TEST

START_TEST(participants_see_only_their_own_runs)
{
    server srv;
    start_server(&srv);
    hc_client a, b;
    char ida[64], idb[64], run_a[32], path[128];
    hc_response r;
    join(&a, srv.port, ida, "p-a");
    join(&b, srv.port, idb, "p-b");
    submit(&a, 150, run_a);
    /* b sends the same submission from several tabs at once: one run */
    submit_at_once(&b, 150);
    ck_assert_int_eq(history_count(&b), 1);

    const char *suffixes[] = {"", "/curve"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/api/runs/%s%s", run_a, suffixes[i]);
        CALL(&b, "GET", path, NULL, &r, 404);
        hc_free(&r);
    }
    snprintf(path, sizeof path, "/api/runs/%s/cancel", run_a);
    CALL(&b, "POST", path, NULL, &r, 404);
    hc_free(&r);
    snprintf(path, sizeof path, "{\"run_id\": \"%s\"}", run_a);
    CALL(&b, "POST", "/api/finish", path, &r, 404);
    hc_free(&r);
    CALL(&b, "GET", "/api/runs/no-such-run", NULL, &r, 404);
    hc_free(&r);

    /* participant credentials on organiser routes, as a cookie or a bearer token */
    CALL(&a, "GET", "/api/admin/overview", NULL, &r, 401);
    hc_free(&r);
    hc_client bearer = {.port = srv.port};
    snprintf(bearer.bearer, sizeof bearer.bearer, "%s", a.session);
    CALL(&bearer, "GET", "/api/me", NULL, &r, 200); /* a script's way in */
    ck_assert_str_eq(jstr(&r, "id"), "p-a");
    hc_free(&r);
    CALL(&bearer, "GET", "/api/admin/overview", NULL, &r, 401);
    hc_free(&r);
    /* no or forged credentials */
    hc_client anon = {.port = srv.port};
    CALL(&anon, "GET", "/api/me", NULL, &r, 401);
    hc_free(&r);
    hc_client forged = {.port = srv.port};
    snprintf(forged.session, sizeof forged.session, "p-b.%064d", 0);
    CALL(&forged, "GET", "/api/me", NULL, &r, 401);
    hc_free(&r);
    /* the organiser sees any run */
    hc_client admin = {.port = srv.port};
    snprintf(admin.bearer, sizeof admin.bearer, ADMIN_TOKEN);
    snprintf(path, sizeof path, "/api/admin/runs/%s", run_a);
    CALL(&admin, "GET", path, NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "participant"), "p-a");
    hc_free(&r);
    ck_assert_int_eq(stop_server(&srv, SIGTERM), 4);
}
END_TEST

/* Each malformed submission is 400 naming the field, and nothing is recorded. */
START_TEST(malformed_bodies_are_refused_and_nothing_recorded)
{
    server srv;
    start_server(&srv);
    hc_client a;
    char id[64];
    hc_response r;
    join(&a, srv.port, id, "p-json");
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"values\": {\"epochs\": 1, \"epochs\": 2}}", "epochs"},                 /* duplicate key */
        {"{\"values\": {\"epochs\": 1}, \"values\": {}}", "values"},                /* duplicate key */
        {"{\"values\": {\"lr\": NaN}}", "lr"},                                       /* NaN literal */
        {"{\"values\": {\"lr\": Infinity}}", "lr"},
        {"{\"values\": {\"lr\": 1e999}}", "lr"},                                     /* overflow */
        {"{\"values\": {\"lr\": true}}", "lr"},                                      /* wrong type */
        {"{\"values\": [1, 2]}", "values"},
        {"{\"values\": {}, \"comments\": {\"lr\": 5}}", "lr"},
        {"{\"values\": {\"epochs\": \"1111111111111111111111111111111111111111111111111111111111111111\"}}",
         "epochs"},                                                                  /* too long */
        {"{\"values\": {\"lr\": {\"a\": {\"b\": {\"c\": {\"d\": 1}}}}}}", "b"},        /* too deep */
        {"{\"values\": {}, \"extra\": 1}", "extra"},                                 /* unknown field */
        {"{\"values\": {\"learning_rate\": 1}}", "learning_rate"},                   /* unknown hyperparameter */
        {"{\"comments\": {}}", "values"},                                            /* missing */
        {"[1]", NULL},
        {"{\"values\": {\"lr\": 0.1}", "values"},                                    /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CALL(&a, "POST", "/api/runs", bad[i].body, &r, 400);
        check_error_field(&r, bad[i].field);
        hc_free(&r);
    }
    /* registration too: wrong type and duplicate */
    hc_client n = {.port = srv.port};
    CALL(&n, "POST", "/api/register", "{\"education\": \"master\", \"dl_months\": \"12\"}", &r, 400);
    check_error_field(&r, "dl_months");
    hc_free(&r);
    CALL(&n, "POST", "/api/register", "{\"education\": \"master\", \"dl_months\": 1, \"dl_months\": 2}", &r, 400);
    check_error_field(&r, "dl_months");
    hc_free(&r);
    CALL(&n, "POST", "/api/register", "{\"education\": \"wizard\", \"dl_months\": 1}", &r, 400);
    check_error_field(&r, "education");
    hc_free(&r);
    /* the field named is the one the study refused, not any field name that is
     * a substring of its message ("id" in "outside", in "valid") */
    static const struct {
        const char *body, *field;
    } bad_reg[] = {
        {"{\"education\": \"valid\", \"dl_months\": 1}", "education"},
        {"{\"education\": \"master\", \"dl_months\": 1e300}", "dl_months"},
        {"{\"education\": \"master\", \"dl_months\": 1, \"programming_months\": -1}", "programming_months"},
        {"{\"education\": \"master\", \"dl_months\": 1, \"ml_months\": 5000}", "ml_months"},
        {"{\"education\": \"master\", \"dl_months\": 1, \"self_level\": 1e300}", "self_level"},
        {"{\"education\": \"master\", \"dl_months\": 1, \"id\": \"no spaces\"}", "id"},
    };
    for (size_t i = 0; i < sizeof bad_reg / sizeof bad_reg[0]; i++) {
        CALL(&n, "POST", "/api/register", bad_reg[i].body, &r, 400);
        check_error_field(&r, bad_reg[i].field);
        hc_free(&r);
    }
    /* an empty run id is not "the best run": a final choice is not made by mistake */
    CALL(&a, "POST", "/api/finish", "{\"run_id\": \"\"}", &r, 400);
    check_error_field(&r, "run_id");
    hc_free(&r);
    CALL(&a, "GET", "/api/me", NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "state"), "active");
    hc_free(&r);

    ck_assert_int_eq(history_count(&a), 0);
    CALL(&a, "GET", "/api/me", NULL, &r, 200);
    ck_assert_int_eq(jint(r.json, "submissions"), 0);
    hc_free(&r);
    hc_client admin = {.port = srv.port};
    snprintf(admin.bearer, sizeof admin.bearer, ADMIN_TOKEN);
    CALL(&admin, "GET", "/api/admin/overview", NULL, &r, 200);
    ck_assert_int_eq(jint(json_object_get(r.json, "counts"), "participants"), 1);
    ck_assert_int_eq(jint(json_object_get(r.json, "counts"), "runs"), 0);
    hc_free(&r);

    /* a value the study rejects is 422, names the field, and is recorded */
    CALL(&a, "POST", "/api/runs",
         "{\"values\": {\"epochs\": 1, \"batch_size\": 16, \"loss\": \"cross_entropy\", \"optimizer\": \"adam\", "
         "\"lr\": 20}}",
         &r, 422);
    check_error_field(&r, "lr");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "run"), "status")), "rejected");
    hc_free(&r);
    ck_assert_int_eq(history_count(&a), 1);
    ck_assert_int_eq(stop_server(&srv, SIGTERM), 4);
}
END_TEST

START_TEST(limits_and_refusals)
{
    server srv;
    start_server(&srv);
    hc_client a, b, c;
    char ida[64], idb[64], idc[64], run[32], v[256];
    hc_response r;
    join(&a, srv.port, ida, "p-lim");

    CALL(&a, "GET", "/api/nothing-here", NULL, &r, 404);
    hc_free(&r);
    CALL(&a, "GET", "/../../etc/passwd", NULL, &r, 404);
    hc_free(&r);
    CALL(&a, "DELETE", "/api/runs", NULL, &r, 405);
    ck_assert(hc_header(&r, "Allow", v, sizeof v));
    ck_assert_str_eq(v, "GET, POST");
    hc_free(&r);
    CALL(&a, "POST", "/api/me", "{}", &r, 405);
    ck_assert_str_eq(hc_header(&r, "Allow", v, sizeof v), "GET");
    hc_free(&r);
    CALL(&a, "POST", "/assets/uplot.js", "{}", &r, 405);
    hc_free(&r);
    CALL(&a, "HEAD", "/api/me", NULL, &r, 200); /* HEAD is GET without the body */
    ck_assert_uint_eq(r.len, 0);
    hc_free(&r);

    /* CSRF: a cookie without the header */
    a.no_csrf = 1;
    CALL(&a, "POST", "/api/pause", NULL, &r, 403);
    hc_free(&r);
    a.no_csrf = 0;

    /* 413: announced, and streamed in chunks past the limit */
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[0] = '{';
    big[8190] = '}';
    big[8191] = '\0';
    CALL(&a, "POST", "/api/runs", big, &r, 413);
    hc_free(&r);
    char *chunked = malloc(16384);
    int n = snprintf(chunked, 16384,
                     "POST /api/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: tb_session=%s\r\n"
                     "X-Tunebench: 1\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n",
                     a.session);
    memset(chunked + n, ' ', 4096);
    n += 4096;
    n += snprintf(chunked + n, 16384 - (size_t)n, "\r\n1000\r\n");
    memset(chunked + n, ' ', 4096);
    n += 4096;
    n += snprintf(chunked + n, 16384 - (size_t)n, "\r\n0\r\n\r\n");
    ck_assert_int_eq(hc_raw(srv.port, chunked, (size_t)n, &r, 10000), 0);
    ck_assert_int_eq(r.status, 413);
    hc_free(&r);
    free(big);
    free(chunked);
    ck_assert_int_eq(history_count(&a), 0);

    /* 409: a second run while one is live; 429 past 4 submissions a minute */
    submit(&a, 150, run);
    for (int i = 0; i < 3; i++) {
        CALL(&a, "POST", "/api/runs", "{\"values\": {\"epochs\": 1}}", &r, 409);
        hc_free(&r);
    }
    CALL(&a, "POST", "/api/runs", "{\"values\": {\"epochs\": 1}}", &r, 429);
    ck_assert(hc_header(&r, "Retry-After", v, sizeof v));
    ck_assert_int_gt(atoi(v), 0);
    hc_free(&r);

    /* event streams: 2 per participant (429), 3 in all (503) */
    int s1 = hc_stream_open(&a, "/api/events"), s2 = hc_stream_open(&a, "/api/events");
    static char buf[8192];
    size_t len = 0;
    ck_assert_int_eq(hc_stream_wait(s1, buf, sizeof buf, &len, 0, "event: me", 10000), 1);
    len = 0;
    ck_assert_int_eq(hc_stream_wait(s2, buf, sizeof buf, &len, 0, "event: me", 10000), 1);
    CALL(&a, "GET", "/api/events", NULL, &r, 429);
    ck_assert(hc_header(&r, "Retry-After", v, sizeof v));
    hc_free(&r);
    join(&b, srv.port, idb, "p-lim-b");
    int s3 = hc_stream_open(&b, "/api/events");
    len = 0;
    ck_assert_int_eq(hc_stream_wait(s3, buf, sizeof buf, &len, 0, "event: me", 10000), 1);
    memset(&c, 0, sizeof c);
    join(&c, srv.port, idc, "p-lim-c");
    CALL(&c, "GET", "/api/events", NULL, &r, 503);
    hc_free(&r);
    close(s1);
    close(s2);
    close(s3);
    /* 429 past 12 registrations a minute from one address */
    {
        hc_client stranger = {.port = srv.port};
        int created = 0, refused = 0;
        for (int i = 0; i < 12 && !refused; i++) {
            ck_assert(hc_call(&stranger, "POST", "/api/register", "{\"education\": \"master\", \"dl_months\": 1}", &r) == 0);
            const int st = r.status;
            ck_assert_msg(st == 201 || st == 429, "registration %d: status %d", i, st);
            if (st == 429) {
                refused = 1;
                ck_assert(hc_header(&r, "Retry-After", v, sizeof v) && atoi(v) > 0);
                TBT_ASSERT_HAS(r.body, "registrations a minute");
            } else {
                created++;
            }
            hc_free(&r);
        }
        ck_assert_msg(refused && created >= 9, "%d registrations, then %s", created, refused ? "429" : "no refusal");
    }

    ck_assert_int_eq(stop_server(&srv, SIGTERM), 4);
}
END_TEST

START_TEST(a_restart_keeps_the_sessions)
{
    server srv;
    start_server(&srv);
    hc_client a;
    char id[64], run[32], run2[32], status[16];
    hc_response r;
    join(&a, srv.port, id, "p-restart");
    submit(&a, 150, run);
    int stream = hc_stream_open(&a, "/api/events");
    static char buf[1 << 16];
    size_t len = 0;
    ck_assert_int_eq(hc_stream_wait(stream, buf, sizeof buf, &len, 0, "event: curve", 30000), 1);

    /* SIGTERM: the stream ends, the run is interrupted, the process exits 4 */
    kill(srv.pid, SIGTERM);
    int ended = 0;
    for (int i = 0; i < 100 && !ended; i++) ended = hc_stream_wait(stream, buf, sizeof buf, &len, len, "\x01", 100) < 0;
    ck_assert_msg(ended, "the event stream did not end at SIGTERM");
    close(stream);
    ck_assert_int_eq(stop_server(&srv, 0), 4);
    TBT_ASSERT_HAS(read_log(), "stopping the server");

    start_server(&srv);
    a.port = srv.port;
    CALL(&a, "GET", "/api/me", NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "id"), "p-restart");
    hc_free(&r);
    wait_run_end(&a, run, status);
    ck_assert_str_eq(status, "interrupted");
    CALL(&a, "POST", "/api/enter", NULL, &r, 200);
    ck_assert_str_eq(jstr(&r, "state"), "active");
    hc_free(&r);
    submit(&a, 1, run2);
    wait_run_end(&a, run2, status);
    ck_assert_str_eq(status, "finished");
    /* logging in again on another browser with the secret */
    hc_client other = {.port = srv.port};
    char body[512];
    snprintf(body, sizeof body, "{\"id\": \"p-restart\", \"secret\": \"%s\"}", a.session);
    CALL(&other, "POST", "/api/login", body, &r, 200);
    hc_free(&r);
    ck_assert_str_eq(other.session, a.session);
    snprintf(body, sizeof body, "{\"id\": \"p-restart\", \"secret\": \"p-restart.%064d\"}", 1);
    hc_client wrong = {.port = srv.port};
    CALL(&wrong, "POST", "/api/login", body, &r, 401);
    hc_free(&r);
    ck_assert_int_eq(stop_server(&srv, SIGTERM), 4);
}
END_TEST

START_TEST(the_organiser_runs_the_study)
{
    server srv;
    start_server(&srv);
    hc_response r;
    TBT_ASSERT_HAS(read_log(), "tunebench: organiser: http://127.0.0.1:");
    TBT_ASSERT_HAS(read_log(), "/admin#token=" ADMIN_TOKEN);
    hc_client admin = {.port = srv.port};
    CALL(&admin, "POST", "/api/admin/session", "{\"token\": \"wrong-token-wrong-token\"}", &r, 401);
    hc_free(&r);
    CALL(&admin, "POST", "/api/admin/session", "{\"token\": \"" ADMIN_TOKEN "\"}", &r, 200);
    hc_free(&r);
    ck_assert(admin.admin[0]);
    CALL(&admin, "GET", "/api/admin/overview", NULL, &r, 200);
    ck_assert(json_is_true(json_object_get(json_object_get(r.json, "counts"), "admitting")));
    hc_free(&r);

    /* pages and assets, with their types; the organiser's token is in none */
    const char *pages[][2] = {{"/", "text/html"}, {"/admin", "text/html"}, {"/assets/common.js", "text/javascript"},
                              {"/assets/app.js", "text/javascript"},
                              {"/assets/uplot.js", "text/javascript"}, {"/assets/uplot.css", "text/css"}};
    hc_client anon = {.port = srv.port};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char ct[128];
        CALL(&anon, "GET", pages[i][0], NULL, &r, 200);
        ck_assert(hc_header(&r, "Content-Type", ct, sizeof ct));
        TBT_ASSERT_HAS(ct, pages[i][1]);
        ck_assert(hc_header(&r, "Content-Security-Policy", ct, sizeof ct));
        TBT_ASSERT_LACKS(r.body, ADMIN_TOKEN);
        hc_free(&r);
    }

    /* admission stopped: registration is refused (409) and nothing recorded */
    CALL(&admin, "POST", "/api/admin/admitting", "{\"admitting\": false}", &r, 200);
    ck_assert(json_is_false(json_object_get(r.json, "admitting")));
    hc_free(&r);
    CALL(&admin, "POST", "/api/admin/admitting", "{\"admitting\": 0}", &r, 400);
    check_error_field(&r, "admitting");
    hc_free(&r);
    CALL(&anon, "POST", "/api/register", "{\"education\": \"master\", \"dl_months\": 1}", &r, 409);
    hc_free(&r);
    CALL(&admin, "POST", "/api/admin/admitting", "{\"admitting\": true}", &r, 200);
    hc_free(&r);
    hc_client a;
    char id[64], run[32], status[16];
    join(&a, srv.port, id, "p-org");
    submit(&a, 1, run);
    wait_run_end(&a, run, status);

    int stream = hc_stream_open(&admin, "/api/admin/events");
    static char buf[1 << 16];
    size_t len = 0;
    ck_assert_int_eq(hc_stream_wait(stream, buf, sizeof buf, &len, 0, "event: overview", 10000), 1);
    TBT_ASSERT_HAS(buf, "p-org");

    CALL(&admin, "GET", "/api/admin/export", NULL, &r, 200);
    ck_assert_int_gt((int)r.len, 8);
    ck_assert_msg(memcmp(r.body, "\x89HDF\r\n\x1a\n", 8) == 0, "the export is not an HDF5 file");
    char disp[256];
    ck_assert(hc_header(&r, "Content-Disposition", disp, sizeof disp));
    TBT_ASSERT_HAS(disp, "attachment");
    hc_free(&r);

    /* close: 202, the stream ends, the process exits 0 (a normal end) */
    CALL(&admin, "POST", "/api/admin/close", NULL, &r, 202);
    hc_free(&r);
    int ended = 0;
    for (int i = 0; i < 100 && !ended; i++) ended = hc_stream_wait(stream, buf, sizeof buf, &len, len, "\x01", 100) < 0;
    ck_assert_msg(ended, "the organiser's event stream did not end at close");
    close(stream);
    ck_assert_int_eq(stop_server(&srv, 0), 0);

    /* the session key: 0600 in the archive; one others can read is refused */
    char key[1200];
    struct stat st;
    snprintf(key, sizeof key, "%s/archive/http.key", tmpdir);
    ck_assert_int_eq(stat(key, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq((int)st.st_size, 32);
    ck_assert_int_eq(chmod(key, 0644), 0);
    static char err[70000];
    int pid, port;
    ck_assert_int_ne(hc_spawn_study(tbt_exe(), cfg_path, log_path, START_TIMEOUT_MS, &pid, &port, err, sizeof err), 0);
    TBT_ASSERT_HAS(err, "http.key can be read by others (mode 644): chmod 600 it");
}
END_TEST

int main(void)
{
    if (access(TB_PLUGIN_BUILD_DIR "/http.so", F_OK) != 0) {
        fprintf(stderr, "test_http: %s/http.so is missing\n", TB_PLUGIN_BUILD_DIR);
        return 1;
    }
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, two_participants_tune_at_once);
    tcase_add_test(tc, participants_see_only_their_own_runs);
    tcase_add_test(tc, malformed_bodies_are_refused_and_nothing_recorded);
    tcase_add_test(tc, limits_and_refusals);
    tcase_add_test(tc, a_restart_keeps_the_sessions);
    tcase_add_test(tc, the_organiser_runs_the_study);
    suite_add_tcase(s, tc);
    return tbt_run(s);
}
