/* people.c: per-participant counters behind the limits: submissions in the
 * last minute (a ring of their times), open event streams, and registrations
 * per client address. The organiser's
 * streams count only toward the server's cap. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define RATE_WINDOW_S 60.0

/* The participant's record (created on first use); NULL when out of memory. Lock held. */
static http_person *person(http_server *srv, const char *id)
{
    for (int i = 0; i < srv->n_people; i++)
        if (strcmp(srv->people[i].id, id) == 0) return &srv->people[i];
    if (srv->n_people == srv->cap_people) {
        int cap = srv->cap_people ? 2 * srv->cap_people : 64;
        http_person *p = realloc(srv->people, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        srv->people = p;
        srv->cap_people = cap;
    }
    http_person *p = &srv->people[srv->n_people++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    for (int i = 0; i < HTTP_RATE_MAX; i++) p->submit_times[i] = -INFINITY;
    return p;
}

/* Takes one of `limit` slots per RATE_WINDOW_S in key's ring: 0, or the seconds to wait. */
static int take_rate_slot(http_server *srv, const char *key, int limit)
{
    double now = mono_s();
    int wait_s = 0;
    pthread_mutex_lock(&srv->lock);
    http_person *p = person(srv, key);
    if (!p) wait_s = 1;
    else {
        /* the oldest of the last `limit` events: the ring slot written next */
        int oldest = (p->submit_next + HTTP_RATE_MAX - limit) % HTTP_RATE_MAX;
        double age = now - p->submit_times[oldest];
        if (age < RATE_WINDOW_S) wait_s = (int)ceil(RATE_WINDOW_S - age);
        else {
            p->submit_times[p->submit_next] = now;
            p->submit_next = (p->submit_next + 1) % HTTP_RATE_MAX;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return wait_s > 0 ? wait_s : 0;
}

int people_take_submission(http_server *srv, const char *id)
{
    return take_rate_slot(srv, id, srv->lim.submissions_per_minute);
}

/* Registrations are counted per client address, under a key no pseudonym can
 * take ('@' is not allowed in ids): each writes to the journal, so a stranger
 * must not be able to register without end. */
int people_take_registration(http_server *srv, const char *address)
{
    char key[HTTP_ID_MAX];
    snprintf(key, sizeof key, "@%s", address);
    return take_rate_slot(srv, key, srv->lim.registrations_per_minute);
}

unsigned people_open_stream(http_server *srv, const char *id)
{
    unsigned refused = 0;
    pthread_mutex_lock(&srv->lock);
    http_person *p = id ? person(srv, id) : NULL;
    if (id && !p) refused = 503;
    else if (srv->streams >= srv->lim.max_streams) refused = 503;
    else if (p && p->streams >= srv->lim.streams_per_participant) refused = 429;
    else {
        srv->streams++;
        if (p) p->streams++;
    }
    pthread_mutex_unlock(&srv->lock);
    return refused;
}

void people_close_stream(http_server *srv, const char *id)
{
    pthread_mutex_lock(&srv->lock);
    http_person *p = id ? person(srv, id) : NULL;
    if (p && p->streams > 0) p->streams--;
    if (srv->streams > 0) srv->streams--;
    pthread_mutex_unlock(&srv->lock);
}

pthread_mutex_t *people_submit_lock(http_server *srv, const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
    return &srv->submit_locks[h % HTTP_SUBMIT_LOCKS];
}

void people_free(http_server *srv)
{
    free(srv->people);
    srv->people = NULL;
    srv->n_people = srv->cap_people = 0;
}
