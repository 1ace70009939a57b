/* http_load.c: a bounded load test of the http front end on loopback (not
 * part of ctest; docs/http.md says how to run it).
 *
 *   cmake --build build --target http_load
 *   HTTP_LOAD_PARTICIPANTS=50 HTTP_LOAD_SECONDS=60 build/tests/http_load
 *
 * (a Check suite of one test, so it can use the tests' helpers; the two
 * variables are optional, 50 and 60 by default) *
 * Starts `tunebench study --frontend http` on a toy task in a fresh
 * directory; each simulated participant (a thread) registers, consents,
 * enters, follows its event stream, and for `seconds` submits a tiny run
 * (1 epoch) whenever it has none live, asking GET /api/me every 200 ms. Then
 * it waits for the runs to end, restarts the server on the same archive and,
 * as the organiser, checks that every accepted submission is there, finished,
 * with its epoch and every batch in its curve (read back from the archive).
 * Prints requests/s, p50/p99 of GET /api/me, the errors (must be 0) and what
 * the check found; exits 0 only when both are clean. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "tb_test.h"

#define ME_EVERY_MS 200
#define MAX_RUNS 4096
#define ADMIN_TOKEN "load-test-admin-token-0123"
#define TB_STR_(x) #x
#define TB_STR(x) TB_STR_(x)
#define TRAIN_SAMPLES 256
#define BATCH 64
#define BATCHES_PER_RUN (TRAIN_SAMPLES / BATCH) /* one epoch */

typedef struct participant {
    int index, port;
    double deadline_ms;
    hc_client c;
    char runs[256][32];      /* accepted submissions */
    int n_runs;
    double *latency_ms;      /* of GET /api/me */
    int n_latency, cap_latency;
    long requests, errors, events;
    char first_error[256];
} participant;

static void note_error(participant *p, const char *what, const hc_response *r)
{
    p->errors++;
    if (!p->first_error[0])
        snprintf(p->first_error, sizeof p->first_error, "%s: status %d %.160s", what, r->status,
                 r->body ? r->body : "");
}

/* One call, counted; 1 when the status is the expected one. */
static int call(participant *p, const char *method, const char *path, const char *body, hc_response *r, int expect)
{
    p->requests++;
    if (hc_call(&p->c, method, path, body, r) != 0 || r->status != expect) {
        note_error(p, path, r);
        return 0;
    }
    return 1;
}

static void record_latency(participant *p, double ms)
{
    if (p->n_latency == p->cap_latency) {
        int cap = p->cap_latency ? 2 * p->cap_latency : 1024;
        double *l = realloc(p->latency_ms, sizeof *l * (size_t)cap);
        if (!l) return;
        p->latency_ms = l;
        p->cap_latency = cap;
    }
    p->latency_ms[p->n_latency++] = ms;
}

/* GET /api/me, timed; 1 when a run is live. */
static int poll_me(participant *p)
{
    hc_response r;
    double t0 = hc_now_ms();
    int ok = call(p, "GET", "/api/me", NULL, &r, 200);
    record_latency(p, hc_now_ms() - t0);
    int live = ok && json_is_string(json_object_get(r.json, "live_run"));
    hc_free(&r);
    return live;
}

static void submit(participant *p)
{
    hc_response r;
    const char *body = "{\"values\": {\"epochs\": 1, \"batch_size\": " TB_STR(BATCH) ", \"loss\": \"cross_entropy\", "
                       "\"optimizer\": \"adam\", \"lr\": 0.01}}";
    if (call(p, "POST", "/api/runs", body, &r, 201) && p->n_runs < 256) {
        const char *id = json_string_value(json_object_get(json_object_get(r.json, "run"), "run_id"));
        snprintf(p->runs[p->n_runs++], 32, "%s", id ? id : "");
    }
    hc_free(&r);
}

/* Reads what the event stream has (up to wait_ms); counts the events. */
static void drain_stream(participant *p, int fd, int wait_ms)
{
    static _Thread_local char buf[1 << 16];
    size_t len = 0;
    hc_stream_wait(fd, buf, sizeof buf, &len, 0, "\x01", wait_ms);
    for (const char *e = buf; (e = strstr(e, "event: ")) != NULL; e++) p->events++;
}

static void *participant_main(void *arg)
{
    participant *p = arg;
    hc_response r;
    char body[256];
    p->c.port = p->port;
    snprintf(body, sizeof body, "{\"id\": \"load%03d\", \"education\": \"master\", \"dl_months\": %d}", p->index,
             p->index);
    if (!call(p, "POST", "/api/register", body, &r, 201)) return NULL;
    hc_free(&r);
    if (!call(p, "POST", "/api/consent", NULL, &r, 200)) return NULL;
    hc_free(&r);
    if (!call(p, "POST", "/api/enter", NULL, &r, 200)) return NULL;
    hc_free(&r);
    int fd = hc_stream_open(&p->c, "/api/events");
    if (fd < 0) note_error(p, "/api/events", &r);
    while (hc_now_ms() < p->deadline_ms) {
        if (!poll_me(p)) submit(p);
        if (fd >= 0) drain_stream(p, fd, ME_EVERY_MS);
    }
    /* let the last run end */
    for (double until = hc_now_ms() + 60000; hc_now_ms() < until && poll_me(p);)
        if (fd >= 0) drain_stream(p, fd, ME_EVERY_MS);
    if (fd >= 0) close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* As the organiser on the restarted server: each run finished, with 1 epoch and all its batches. */
static int check_archive(int port, participant *people, int n, int *runs_checked)
{
    hc_client admin = {.port = port};
    snprintf(admin.bearer, sizeof admin.bearer, ADMIN_TOKEN);
    int bad = 0, accepted = 0;
    for (int i = 0; i < n; i++) accepted += people[i].n_runs;
    hc_response r;
    if (hc_call(&admin, "GET", "/api/admin/overview", NULL, &r) != 0 || r.status != 200) {
        fprintf(stderr, "http_load: overview: status %d\n", r.status);
        hc_free(&r);
        return 1;
    }
    long long recorded = json_integer_value(json_object_get(json_object_get(r.json, "counts"), "runs"));
    hc_free(&r);
    if (recorded != accepted) {
        fprintf(stderr, "http_load: the archive has %lld submissions, %d were accepted\n", recorded, accepted);
        bad++;
    }
    *runs_checked = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < people[i].n_runs; k++) {
            char path[128];
            snprintf(path, sizeof path, "/api/admin/runs/%s/curve", people[i].runs[k]);
            if (hc_call(&admin, "GET", path, NULL, &r) != 0 || r.status != 200) {
                fprintf(stderr, "http_load: %s: status %d\n", path, r.status);
                bad++;
            } else {
                long long epochs = json_integer_value(json_object_get(r.json, "epoch_total"));
                long long batches = json_integer_value(json_object_get(r.json, "batch_total"));
                long long per = json_integer_value(json_object_get(r.json, "batches_per_epoch"));
                if (epochs != 1 || batches != BATCHES_PER_RUN || per != BATCHES_PER_RUN) {
                    fprintf(stderr, "http_load: run %s: %lld epochs, %lld batches of %lld\n", people[i].runs[k],
                            epochs, batches, per);
                    bad++;
                }
                (*runs_checked)++;
            }
            hc_free(&r);
        }
    return bad;
}

static void write_config(const char *dir, const char *task, const char *cfg, int participants)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[study]\ntitle = load test\narchive = %s/archive\nfinal_seeds = 1\nslots = 2\nmax_active = %d\n"
             "budget_minutes = 600\n[space]\nepochs = int 1 10\n"
             "[http]\nport = 0\nadmin_token = " ADMIN_TOKEN "\nmax_connections = 1024\n"
             "max_connections_per_ip = 1024\nsubmissions_per_minute = 64\nregistrations_per_minute = 64\n"
             "max_streams = %d\n",
             dir, participants, participants + 8);
    FILE *f = fopen(cfg, "w");
    ck_assert_msg(f != NULL, "cannot write %s", cfg);
    fputs(tbt_toy_config(task, extra), f);
    fclose(f);
}

static int env_int(const char *name, int fallback, int lo, int hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long x = strtol(v, &end, 10);
    ck_assert_msg(!*end && x >= lo && x <= hi, "%s = %s: an integer in [%d, %d]", name, v, lo, hi);
    return (int)x;
}

START_TEST(load)
{
    int n = env_int("HTTP_LOAD_PARTICIPANTS", 50, 1, 500), seconds = env_int("HTTP_LOAD_SECONDS", 60, 1, 3600);
    char dir[512], task[1024], cfg[1024], log[1024], err[70000];
    tbt_mkdtemp(dir, sizeof dir, "http_load");
    snprintf(task, sizeof task, "%s/toy.h5", dir);
    snprintf(cfg, sizeof cfg, "%s/study.ini", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    tbt_make_toy_task(task, TRAIN_SAMPLES, 64, 64, 4, 12, 7);
    write_config(dir, task, cfg, n);
    int pid, port;
    if (hc_spawn_study(tbt_exe(), cfg, log, 60000, &pid, &port, err, sizeof err) != 0)
        ck_abort_msg("http_load: %s", err);
    participant *people = calloc((size_t)n, sizeof *people);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    double t0 = hc_now_ms();
    for (int i = 0; i < n; i++) {
        people[i].index = i;
        people[i].port = port;
        people[i].deadline_ms = t0 + 1000.0 * seconds;
        pthread_create(&threads[i], NULL, participant_main, &people[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    double elapsed_s = (hc_now_ms() - t0) / 1000;

    long requests = 0, errors = 0, events = 0;
    int runs = 0, n_lat = 0;
    for (int i = 0; i < n; i++) {
        requests += people[i].requests;
        errors += people[i].errors;
        events += people[i].events;
        runs += people[i].n_runs;
        n_lat += people[i].n_latency;
        if (people[i].first_error[0]) fprintf(stderr, "http_load: load%03d: %s\n", i, people[i].first_error);
    }
    double *lat = malloc(sizeof *lat * (size_t)(n_lat ? n_lat : 1));
    for (int i = 0, k = 0; i < n; i++)
        for (int j = 0; j < people[i].n_latency; j++) lat[k++] = people[i].latency_ms[j];
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    double p50 = n_lat ? lat[n_lat / 2] : NAN, p99 = n_lat ? lat[(int)(0.99 * (n_lat - 1))] : NAN;

    /* restart on the same archive and check it through the organiser's routes */
    int code = hc_stop_study(pid, SIGTERM, 60000), bad = 0, checked = 0;
    if (hc_spawn_study(tbt_exe(), cfg, log, 60000, &pid, &port, err, sizeof err) != 0) {
        fprintf(stderr, "http_load: restart: %s\n", err);
        bad = 1;
    } else {
        bad = check_archive(port, people, n, &checked);
        hc_stop_study(pid, SIGTERM, 60000);
    }
    printf("http_load: %d participants, %.1f s: %ld requests (%.0f/s), %ld SSE events, %d runs submitted\n", n,
           elapsed_s, requests, requests / elapsed_s, events, runs);
    printf("http_load: GET /api/me: %d calls, p50 %.2f ms, p99 %.2f ms\n", n_lat, p50, p99);
    printf("http_load: errors: %ld; server exit at SIGTERM: %d; archive: %d runs checked after a restart, "
           "%d problems\n", errors, code, checked, bad);
    if (errors == 0 && bad == 0) tbt_rm_rf(dir);
    else printf("http_load: kept %s (server.log, archive)\n", dir);
    for (int i = 0; i < n; i++) free(people[i].latency_ms);
    free(people);
    free(threads);
    free(lat);
    ck_assert_msg(errors == 0 && bad == 0, "http_load: %ld errors, %d archive problems", errors, bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_load");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 7200);
    tcase_add_test(tc, load);
    suite_add_tcase(s, tc);
    return tbt_run(s);
}
