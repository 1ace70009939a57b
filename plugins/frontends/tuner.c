/* tuner.c: front-end plugin "tuner", machine participants that tune a study
 * the way a person's front end does: each registers (as a machine), waits in
 * the lobby until admitted, submits configurations through the same
 * tb_study_api calls (the same space, validation, budget clock and archive),
 * watches its runs, and ends with a final choice. docs/tuners.md is the
 * user's guide; this comment is the map.
 *
 *   run(): reads [tuner], the study's space (hp_info, hp_readers), starts one
 *     thread per participant of `participants` ("random:2,asha:1,tpe:1") and
 *     joins them; the first error wins.
 *   machine_main(): register_machine -> loop { enter until admitted; stop when
 *     the budget cannot hold the next run; choose (tuner/tuner_sampler.c);
 *     submit with a comment per field; follow the run to its end (ASHA cancels
 *     at a rung) } -> finish with the best finished run (NULL), unless the
 *     study already ended the participant at its budget.
 *
 * Determinism: each participant draws from its own xoshiro256** seeded by
 * (seed, strategy, index), and its choices depend only on its own results, so
 * the same seed and the same results submit the same values in the same order.
 * A Ctrl-C (take_interrupt, seen by whichever thread polls first) cancels
 * every machine's live run and pauses them, unless ctrl_c is false (another
 * front end owns the terminal and its Ctrl-C); a closing study stops them. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunebench_plugin.h"
#include "tuner_sampler.h"

#define PLUGIN_NAME "tuner"
#define HAS_MEMBER(api, type, member) ((api)->size >= offsetof(type, member) + sizeof((api)->member))
#define MAX_MACHINES 64
#define LOBBY_POLL_MS 1000
#define FOLLOW_POLL_MS 250
#define MAX_REJECTIONS 3

static const tb_plugin_option options[] = {
    {"participants", TB_OPTION_STRING, "random:1", 0, 0, NULL,
     "machine participants, STRATEGY:COUNT comma-separated; strategies random, asha, tpe"},
    {"seed", TB_OPTION_INT, "0", 0, 9007199254740991.0, NULL, "seeds every choice (each participant its own stream)"},
    {"optional_probability", TB_OPTION_FLOAT, "0", 0, 1, NULL,
     "random and tpe: probability to choose an optional hyperparameter rather than keep its preset"},
    {"reduction_factor", TB_OPTION_INT, "3", 2, 100, NULL, "asha: eta; rungs at min_epochs * eta^k"},
    {"min_epochs", TB_OPTION_INT, "1", 1, 100000, NULL, "asha: the first rung's epochs"},
    {"startup_trials", TB_OPTION_INT, "10", 0, 100000, NULL, "tpe: random trials before the model"},
    {"gamma", TB_OPTION_FLOAT, "0.25", 0.01, 0.99, NULL, "tpe: the fraction of trials that are good"},
    {"candidates", TB_OPTION_INT, "24", 1, 100000, NULL, "tpe: draws from the good density per hyperparameter"},
    {"decisions", TB_OPTION_PATH, "", 0, 0, NULL,
     "\"\": none; else a file ASHA's rung decisions are appended to, one line each"},
    {"ctrl_c", TB_OPTION_BOOL, "true", 0, 0, NULL,
     "a Ctrl-C stops the machines; false beside a front end that owns the terminal (it keeps the Ctrl-C)"},
};

typedef enum strategy { S_RANDOM, S_ASHA, S_TPE, S_COUNT } strategy;
static const char *const strategy_names[S_COUNT] = {"random", "asha", "tpe"};

typedef struct tuner_opts {
    uint64_t seed;
    double optional_p;
    int eta, min_epochs;
    tn_tpe_opts tpe;
    const char *decisions; /* "" none */
    int ctrl_c;            /* take the study's interrupts */
} tuner_opts;

/* What the machines share: the study, the space, the options, a stop flag. */
typedef struct shared {
    const tb_host_api *host;
    const tb_study_api *api;
    tb_study *s;
    tn_space space;
    tuner_opts o;
    int epochs_hp;         /* index of "epochs", -1 when the space lacks it */
    pthread_mutex_t mu;    /* stop and the decisions file */
    int stop;              /* a Ctrl-C: cancel, pause, return */
    FILE *decisions;
} shared;

/* One machine participant. */
typedef struct machine {
    shared *sh;
    strategy strat;
    int index;               /* 1-based within its strategy */
    char id[64];
    tn_rng rng;
    tn_trial *trials;        /* scored runs (TPE's history) */
    int n_trials, cap_trials;
    tn_asha asha;
    double epoch_seconds;    /* training seconds over epochs completed, all runs */
    int epochs_done;
    int rejections;
    tb_status status;
    char err[512];
    pthread_t thread;
} machine;

/* ---- small helpers ------------------------------------------------------------------------ */

static tb_status fail(machine *m, tb_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static tb_status fail(machine *m, tb_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
    return m->status = code;
}

static int stop_requested(machine *m)
{
    shared *sh = m->sh;
    pthread_mutex_lock(&sh->mu);
    if (!sh->stop && sh->o.ctrl_c && sh->api->take_interrupt(sh->s)) sh->stop = 1;
    int stop = sh->stop;
    pthread_mutex_unlock(&sh->mu);
    return stop;
}

static int study_closing(shared *sh)
{
    tb_fe_counts c;
    memset(&c, 0, sizeof c);
    sh->api->counts(sh->s, &c, sizeof c);
    return c.closing;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tb_status state_of(machine *m, tb_fe_state *st)
{
    char e[512];
    memset(st, 0, sizeof *st);
    tb_status s = m->sh->api->participant_info(m->sh->s, m->id, st, sizeof *st, e, sizeof e);
    if (s != TB_OK) return fail(m, s, "%s: participant_info: %s", m->id, e);
    return TB_OK;
}

/* ---- options ------------------------------------------------------------------------------ */

/* "random:2,asha:1" into counts[S_COUNT]; the error names the option, the
 * part and what is allowed. */
static tb_status parse_participants(const char *text, int counts[S_COUNT], char *err, size_t errlen)
{
    memset(counts, 0, sizeof(int) * S_COUNT);
    int total = 0;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *start = p;
        p += len;
        if (*p) p++;
        while (len && (*start == ' ' || *start == '\t')) start++, len--; /* "random:2, asha:1" */
        while (len && (start[len - 1] == ' ' || start[len - 1] == '\t')) len--;
        if (len == 0) continue; /* an empty part: "random:1," */
        char part[64], name[64];
        snprintf(part, sizeof part, "%.*s", (int)(len < 63 ? len : 63), start);
        char *colon = strchr(part, ':');
        long n = 1;
        if (colon) {
            char *end;
            errno = 0;
            n = strtol(colon + 1, &end, 10);
            if (end == colon + 1 || *end || errno || n < 1 || n > MAX_MACHINES) {
                snprintf(err, errlen, "tuner.participants = \"%s\": \"%s\" has no count in [1, %d]; allowed: "
                         "STRATEGY:COUNT, comma-separated, e.g. random:2,asha:1,tpe:1", text, part, MAX_MACHINES);
                return TB_EINVAL;
            }
            *colon = '\0';
        }
        snprintf(name, sizeof name, "%s", part);
        int k = 0;
        while (k < S_COUNT && strcmp(name, strategy_names[k]) != 0) k++;
        if (k == S_COUNT) {
            snprintf(err, errlen, "tuner.participants = \"%s\": unknown strategy \"%s\"; allowed: random, asha, tpe",
                     text, name);
            return TB_EINVAL;
        }
        counts[k] += (int)n;
        total += (int)n;
    }
    if (total < 1 || total > MAX_MACHINES) {
        snprintf(err, errlen, "tuner.participants = \"%s\" names %d participants; allowed: 1 to %d, e.g. random:1",
                 text, total, MAX_MACHINES);
        return TB_EINVAL;
    }
    return TB_OK;
}

static void read_options(const tb_host_api *host, const tb_plugin_args *args, tuner_opts *o)
{
    o->seed = (uint64_t)host->arg_int(args, "seed");
    o->optional_p = host->arg_float(args, "optional_probability");
    o->eta = (int)host->arg_int(args, "reduction_factor");
    o->min_epochs = (int)host->arg_int(args, "min_epochs");
    o->tpe.startup = (int)host->arg_int(args, "startup_trials");
    o->tpe.gamma = host->arg_float(args, "gamma");
    o->tpe.candidates = (int)host->arg_int(args, "candidates");
    o->tpe.optional_p = o->optional_p;
    o->decisions = host->arg_string(args, "decisions");
    if (!o->decisions) o->decisions = "";
    o->ctrl_c = host->arg_bool(args, "ctrl_c");
}

/* ---- the study's space ----------------------------------------------------------------------- */

static int split_choices(tn_hp *h, const char *choices)
{
    h->n_choices = 0;
    for (const char *p = choices ? choices : ""; *p;) {
        size_t len = strcspn(p, "|");
        if (h->n_choices == TN_MAX_CHOICES || len >= sizeof h->choice[0]) return -1;
        snprintf(h->choice[h->n_choices++], sizeof h->choice[0], "%.*s", (int)len, p);
        p += len;
        if (*p) p++;
    }
    return h->n_choices > 0 ? 0 : -1;
}

/* The space as hp_info and hp_readers expose it. The log flag is not a
 * member of tb_fe_hp: it is read from `allowed` ("... (log scale)"). */
static tb_status read_space(shared *sh, char *err, size_t errlen)
{
    sh->space.optimizer = -1;
    sh->epochs_hp = -1;
    for (int i = 0; i < TN_HP_N; i++) {
        tb_fe_hp f;
        memset(&f, 0, sizeof f);
        tn_hp *h = &sh->space.hp[i];
        if (sh->api->hp_info(sh->s, i, &f) != 0 || !f.name) {
            snprintf(err, errlen, "the study does not describe hyperparameter %d of %d", i + 1, TN_HP_N);
            return TB_EINVAL;
        }
        snprintf(h->name, sizeof h->name, "%s", f.name);
        h->type = (tn_hp_type)f.type;
        h->mandatory = f.mandatory;
        h->lo = f.lo;
        h->hi = f.hi;
        h->log = f.allowed && strstr(f.allowed, "(log scale)") != NULL;
        snprintf(h->preset, sizeof h->preset, "%s", f.preset ? f.preset : "");
        const char *readers = sh->api->hp_readers(sh->s, i);
        snprintf(h->readers, sizeof h->readers, "%s", readers ? readers : "");
        if (h->type == TN_CHOICE && split_choices(h, f.choices) != 0) {
            snprintf(err, errlen, "hyperparameter %s has choices \"%s\"; the tuner handles 1 to %d of at most %zu "
                     "characters", f.name, f.choices ? f.choices : "", TN_MAX_CHOICES, sizeof h->choice[0] - 1);
            return TB_EINVAL;
        }
        if (h->type != TN_INT && h->type != TN_FLOAT && h->type != TN_CHOICE) {
            snprintf(err, errlen, "hyperparameter %s has type %d; the tuner knows int (1), float (2), choice (3)",
                     f.name, f.type);
            return TB_EINVAL;
        }
        if (strcmp(f.name, "optimizer") == 0 && h->type == TN_CHOICE) sh->space.optimizer = i;
        if (strcmp(f.name, "epochs") == 0 && h->type == TN_INT) sh->epochs_hp = i;
    }
    return TB_OK;
}

/* ---- choosing ------------------------------------------------------------------------------- */

/* ASHA's runs ask for the largest epochs the space allows (promotion is
 * letting them go on); the rungs are below it. */
static void asha_epochs(machine *m, tn_config *c)
{
    int e = m->sh->epochs_hp;
    if (e < 0 || !tn_free(&m->sh->space, e)) return;
    c->given[e] = 1; /* an optional epochs too: the rungs need the longest runs */
    c->x[e] = m->sh->space.hp[e].hi;
    char *src = c->source[e];
    size_t used = (size_t)snprintf(src, TN_SOURCE, "asha max epochs; rungs");
    for (int k = 0; k < m->asha.n_rungs && used < TN_SOURCE; k++)
        used += (size_t)snprintf(src + used, TN_SOURCE - used, "%s%d", k ? "," : " ", m->asha.epoch[k]);
    if (!m->asha.n_rungs && used < TN_SOURCE) snprintf(src + used, TN_SOURCE - used, " none");
}

static void choose(machine *m, tn_config *c)
{
    const tuner_opts *o = &m->sh->o;
    if (m->strat == S_TPE) tn_sample_tpe(&m->sh->space, m->trials, m->n_trials, &o->tpe, &m->rng, c);
    else tn_sample_random(&m->sh->space, o->optional_p, &m->rng, c);
    if (m->strat == S_ASHA) asha_epochs(m, c);
}

/* The texts sent; c->x becomes what they read back as, so the history holds
 * exactly what was submitted. */
static void config_texts(const tn_space *sp, tn_config *c, char text[TN_HP_N][TN_TEXT])
{
    for (int i = 0; i < TN_HP_N; i++) {
        text[i][0] = '\0';
        if (!c->given[i]) continue;
        tn_format(sp, i, c->x[i], text[i]);
        double back;
        if (tn_parse(sp, i, text[i], &back) == 0) c->x[i] = back;
    }
}

static tb_status remember(machine *m, const tn_config *c, double score)
{
    if (m->n_trials == m->cap_trials) {
        int cap = m->cap_trials ? 2 * m->cap_trials : 32;
        tn_trial *grown = realloc(m->trials, sizeof *grown * (size_t)cap);
        if (!grown) return fail(m, TB_ENOMEM, "out of memory");
        m->trials = grown;
        m->cap_trials = cap;
    }
    m->trials[m->n_trials].c = *c;
    m->trials[m->n_trials++].score = score;
    return TB_OK;
}

/* ---- the study's protocol ---------------------------------------------------------------------- */

static tb_status register_machine(machine *m)
{
    const tb_study_api *api = m->sh->api;
    if (!HAS_MEMBER(api, tb_study_api, register_machine) || !api->register_machine)
        return fail(m, TB_EINVAL, "this tunebench's study API (version %u, %u bytes) has no register_machine "
                    "(study API version 4, ABI minor 8): the tuner needs a newer tunebench", api->version, api->size);
    char e[512];
    tb_status s = api->register_machine(m->sh->s, strategy_names[m->strat], m->id, e, sizeof e);
    if (s != TB_OK) return fail(m, s, "register_machine(%s): %s", strategy_names[m->strat], e);
    m->sh->host->log(TB_LOG_INFO, PLUGIN_NAME, "%s registered (seed stream %s #%d)", m->id,
                     strategy_names[m->strat], m->index);
    return TB_OK;
}

/* Asks to enter until admitted, polling the lobby as a person's front end
 * must. 1 admitted; 0 the participant is done or the machines stop. */
static int wait_admitted(machine *m)
{
    for (;;) {
        char e[512];
        int admitted = 0;
        tb_fe_state st;
        if (state_of(m, &st) != TB_OK) return -1;
        if (st.state_code == TB_FE_DONE) return 0;
        if (m->sh->api->enter(m->sh->s, m->id, &admitted, e, sizeof e) != TB_OK) {
            if (state_of(m, &st) != TB_OK) return -1;
            if (st.state_code == TB_FE_DONE || study_closing(m->sh)) return 0;
            fail(m, TB_EINVAL, "%s: enter: %s", m->id, e);
            return -1;
        }
        if (admitted) return 1;
        if (stop_requested(m) || study_closing(m->sh)) return 0;
        sleep_ms(LOBBY_POLL_MS);
    }
}

/* The seconds the next run needs before the tuner learns anything from it:
 * its epochs (ASHA: up to its first rung) at the mean seconds per epoch seen
 * so far; 0 before any epoch was seen. */
static double expected_seconds(const machine *m, const tn_config *c)
{
    if (m->epochs_done == 0) return 0;
    int e = m->sh->epochs_hp;
    double epochs = e >= 0 && c->given[e] ? c->x[e] : 1;
    if (m->strat == S_ASHA && m->asha.n_rungs > 0) epochs = m->asha.epoch[0];
    return epochs * m->epoch_seconds / m->epochs_done;
}

/* 1 when the budget can hold the run; a machine with no finished run goes on
 * while any time is left (the study ends it at the budget). */
static int budget_holds(machine *m, const tb_fe_state *st, const tn_config *c)
{
    if (st->left_s <= 0) return 0;
    if (st->finished_runs == 0) return 1;
    double need = expected_seconds(m, c);
    if (need > st->left_s) {
        m->sh->host->log(TB_LOG_INFO, PLUGIN_NAME, "%s stops: %.1f s left, the next run needs about %.1f s", m->id,
                         st->left_s, need);
        return 0;
    }
    return 1;
}

/* The validation accuracy at epoch (1-based) of run, from its curve; NaN when unknown. */
static double val_accuracy_at(machine *m, const char *run, int epoch)
{
    double x = 0, y = NAN;
    int n = m->sh->api->curve(m->sh->s, run, TB_FE_CURVE_VAL_ACCURACY, epoch - 1, &x, &y, 1);
    return n >= epoch && (int)x == epoch ? y : NAN;
}

static void note_decision(machine *m, const char *run, int k, int epoch, double score, const char *what)
{
    shared *sh = m->sh;
    sh->host->log(TB_LOG_INFO, PLUGIN_NAME, "%s run %s: asha rung %d (epoch %d) val_accuracy %.6f: %s", m->id, run,
                  k, epoch, score, what);
    pthread_mutex_lock(&sh->mu);
    if (sh->decisions) {
        fprintf(sh->decisions, "%s %s rung=%d epoch=%d val_accuracy=%.9g %s\n", m->id, run, k, epoch, score, what);
        fflush(sh->decisions);
    }
    pthread_mutex_unlock(&sh->mu);
}

/* ASHA at the rungs in (*seen, epoch]: records each rung's score and cancels
 * the run at the first rung where it is not among the best. 1 cancelled. */
static int asha_watch(machine *m, const char *run, int epoch, int *seen)
{
    for (int e = *seen + 1; e <= epoch; e++) {
        int k = tn_asha_rung_of(&m->asha, e);
        if (k < 0) continue;
        double acc = val_accuracy_at(m, run, e);
        int go_on = tn_asha_decide(&m->asha, k, isnan(acc) ? -1.0 : acc);
        if (go_on < 0) {
            fail(m, TB_ENOMEM, "out of memory");
            return -1;
        }
        *seen = e;
        note_decision(m, run, k, e, acc, go_on ? "continue" : "cancel");
        if (!go_on) {
            char err[512];
            if (m->sh->api->cancel(m->sh->s, m->id, run, err, sizeof err) != TB_OK)
                m->sh->host->log(TB_LOG_WARN, PLUGIN_NAME, "%s: cancel %s: %s", m->id, run, err);
            return 1;
        }
    }
    *seen = epoch;
    return 0;
}

/* Follows run until it ended; its last snapshot into *r. */
static tb_status follow(machine *m, const char *run, tb_fe_run *r)
{
    const tb_study_api *api = m->sh->api;
    uint64_t seq = 0;
    int seen = 0, cancelled = 0;
    for (;;) {
        char e[512];
        memset(r, 0, sizeof *r);
        if (api->run_info(m->sh->s, run, r, sizeof *r, e, sizeof e) != TB_OK)
            return fail(m, TB_EINVAL, "%s: run_info %s: %s", m->id, run, e);
        if (m->strat == S_ASHA && !cancelled && r->epoch > seen) {
            cancelled = asha_watch(m, run, r->epoch, &seen);
            if (cancelled < 0) return m->status;
        }
        if (r->status_code >= TB_FE_RUN_FINISHED) return TB_OK;
        if (stop_requested(m) && !cancelled) {
            api->cancel(m->sh->s, m->id, run, e, sizeof e);
            cancelled = 1;
        }
        seq = r->seq;
        api->wait(m->sh->s, run, seq, FOLLOW_POLL_MS);
    }
}

/* What a run taught: its pace, and (TPE) its score. */
static tb_status learn(machine *m, const tn_config *c, const tb_fe_run *r)
{
    if (r->epoch > 0 && r->seconds > 0) {
        m->epoch_seconds += r->seconds;
        m->epochs_done += r->epoch;
    }
    if (m->strat != S_TPE) return TB_OK;
    if (r->status_code == TB_FE_RUN_FINISHED) return remember(m, c, isnan(r->val_accuracy) ? -1 : r->val_accuracy);
    if (r->status_code == TB_FE_RUN_DIVERGED) return remember(m, c, -1);
    return TB_OK;
}

/* Submits c; 1 a run started (run id out), 0 the participant cannot submit
 * any more (done, no budget), -1 an error. */
static int submit(machine *m, tn_config *c, char run[32])
{
    char text[TN_HP_N][TN_TEXT], e[512];
    const char *values[TN_HP_N], *comments[TN_HP_N];
    config_texts(&m->sh->space, c, text);
    for (int i = 0; i < TN_HP_N; i++) {
        values[i] = c->given[i] ? text[i] : NULL;
        comments[i] = c->source[i];
    }
    int bad = -1;
    tb_status s = m->sh->api->submit(m->sh->s, m->id, values, comments, run, &bad, e, sizeof e);
    if (s == TB_OK) return 1;
    tb_fe_state st;
    if (state_of(m, &st) != TB_OK) return -1;
    if (bad >= 0) {
        /* recorded as rejected: a value outside what the study allows */
        m->sh->host->log(TB_LOG_WARN, PLUGIN_NAME, "%s: submission rejected: %s", m->id, e);
        if (++m->rejections < MAX_REJECTIONS) return 2;
        fail(m, TB_EINVAL, "%s: %d submissions rejected, the last: %s", m->id, m->rejections, e);
        return -1;
    }
    if (st.state_code == TB_FE_DONE || st.left_s <= 0 || study_closing(m->sh)) return 0;
    fail(m, s, "%s: submit: %s", m->id, e);
    return -1;
}

/* The end a person makes: the best finished run by validation accuracy
 * (finish with NULL), unless the study already ended the participant. */
static tb_status conclude(machine *m)
{
    tb_fe_state st;
    if (state_of(m, &st) != TB_OK) return m->status;
    if (st.state_code == TB_FE_DONE) return TB_OK;
    char e[512];
    if (stop_requested(m) || study_closing(m->sh)) {
        if (!study_closing(m->sh)) m->sh->api->pause(m->sh->s, m->id, e, sizeof e);
        return TB_OK;
    }
    if (st.finished_runs == 0) {
        /* nothing to choose yet the budget is not spent: wait for the study to end it */
        while (state_of(m, &st) == TB_OK && st.state_code != TB_FE_DONE && !study_closing(m->sh)) sleep_ms(200);
        return m->status;
    }
    tb_status s = m->sh->api->finish(m->sh->s, m->id, NULL, e, sizeof e);
    if (s != TB_OK && state_of(m, &st) == TB_OK && st.state_code != TB_FE_DONE)
        return fail(m, s, "%s: finish: %s", m->id, e);
    m->sh->host->log(TB_LOG_INFO, PLUGIN_NAME, "%s finished: final run %s", m->id, st.best_run);
    return TB_OK;
}

/* One tuning step: 1 a run was followed, 0 the machine is done, -1 an error. */
static int step(machine *m)
{
    int admitted = wait_admitted(m);
    if (admitted <= 0) return admitted;
    tn_config c;
    choose(m, &c);
    tb_fe_state st;
    if (state_of(m, &st) != TB_OK) return -1;
    if (st.state_code == TB_FE_DONE || !budget_holds(m, &st, &c)) return 0;
    char run[32] = "";
    int sent = submit(m, &c, run);
    if (sent != 1) return sent == 2 ? 1 : sent;
    tb_fe_run r;
    if (follow(m, run, &r) != TB_OK || learn(m, &c, &r) != TB_OK) return -1;
    return !stop_requested(m) && !study_closing(m->sh);
}

static void *machine_main(void *arg)
{
    machine *m = arg;
    if (register_machine(m) != TB_OK) return NULL;
    int r;
    while ((r = step(m)) == 1) {
    }
    if (r == 0) conclude(m);
    return NULL;
}

/* ---- run ----------------------------------------------------------------------------------- */

static int make_machines(shared *sh, const int counts[S_COUNT], machine **out)
{
    int n = 0;
    for (int k = 0; k < S_COUNT; k++) n += counts[k];
    machine *ms = calloc((size_t)n, sizeof *ms);
    if (!ms) return -1;
    int j = 0;
    for (int k = 0; k < S_COUNT; k++)
        for (int i = 1; i <= counts[k]; i++, j++) {
            machine *m = &ms[j];
            m->sh = sh;
            m->strat = (strategy)k;
            m->index = i;
            tn_rng_seed(&m->rng, tn_participant_seed(sh->o.seed, strategy_names[k], i));
            int max_epochs = sh->epochs_hp >= 0 ? (int)sh->space.hp[sh->epochs_hp].hi : 0;
            if (k == S_ASHA) tn_asha_init(&m->asha, sh->o.min_epochs, sh->o.eta, max_epochs);
        }
    *out = ms;
    return n;
}

/* Starts every machine, joins them; the first error (in the order they were named) wins. */
static tb_status run_machines(machine *ms, int n, char *err, size_t errlen)
{
    int started = 0;
    tb_status s = TB_OK;
    for (; started < n; started++)
        if (pthread_create(&ms[started].thread, NULL, machine_main, &ms[started]) != 0) {
            snprintf(err, errlen, "cannot start the thread of participant %d of %d", started + 1, n);
            s = TB_EIO;
            pthread_mutex_lock(&ms[0].sh->mu);
            ms[0].sh->stop = 1;
            pthread_mutex_unlock(&ms[0].sh->mu);
            break;
        }
    for (int i = 0; i < started; i++) pthread_join(ms[i].thread, NULL);
    for (int i = 0; i < started && s == TB_OK; i++)
        if (ms[i].status != TB_OK) {
            snprintf(err, errlen, "%s", ms[i].err);
            s = ms[i].status;
        }
    return s;
}

static tb_status run(const tb_host_api *host, const tb_study_api *study, const tb_plugin_args *args, char *err,
                     size_t errlen)
{
    int counts[S_COUNT];
    const char *spec = host->arg_string(args, "participants");
    tb_status s = parse_participants(spec ? spec : "", counts, err, errlen);
    if (s != TB_OK) return s;
    if (!HAS_MEMBER(study, tb_study_api, export_archive)) {
        snprintf(err, errlen, "this tunebench's study API (version %u) is older than version 3", study->version);
        return TB_EINVAL;
    }
    shared *sh = calloc(1, sizeof *sh);
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    sh->host = host;
    sh->api = study;
    sh->s = study->study;
    read_options(host, args, &sh->o);
    pthread_mutex_init(&sh->mu, NULL);
    machine *ms = NULL;
    int n = 0;
    if ((s = read_space(sh, err, errlen)) != TB_OK) goto done;
    if (*sh->o.decisions && !(sh->decisions = fopen(sh->o.decisions, "a"))) {
        snprintf(err, errlen, "tuner.decisions = %s: %s", sh->o.decisions, strerror(errno));
        s = TB_EIO;
        goto done;
    }
    if ((n = make_machines(sh, counts, &ms)) < 0) {
        snprintf(err, errlen, "out of memory");
        s = TB_ENOMEM;
        goto done;
    }
    s = run_machines(ms, n, err, errlen);
done:
    for (int i = 0; i < n; i++) {
        free(ms[i].trials);
        tn_asha_free(&ms[i].asha);
    }
    free(ms);
    if (sh->decisions && fclose(sh->decisions) != 0 && s == TB_OK) {
        snprintf(err, errlen, "tuner.decisions = %s: cannot write", sh->o.decisions);
        s = TB_EIO;
    }
    pthread_mutex_destroy(&sh->mu);
    free(sh);
    return s;
}

static const tb_frontend_api frontend = {
    .size = sizeof(tb_frontend_api),
    .run = run,
};

static const tb_plugin_descriptor descriptor = {
    TB_PLUGIN_ABI,
    .kind = TB_PLUGIN_FRONTEND,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .license = "MIT",
    .description = "machine participants (random search, ASHA, TPE) tuning within their budgets like people",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .frontend = &frontend,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
