/* cli.c: front-end plugin "cli", the participant's flow of a study in a
 * terminal, or scripted from a file or stdin (automation and tests).
 * docs/frontend-cli.md is the user's guide; this comment is the map.
 *
 * Unlike every other kind of plugin, a front end owns the terminal: this one
 * prints (to the `output` option: stdout, or a file it appends to) and reads
 * stdin (interactive mode, or `script = -`). It still never calls exit() or
 * abort(): run() returns a status and one line in err, and the host decides
 * what to show. Everything about the study (validation, budgets, the lobby,
 * the archive, final evaluations) is the host's, reached only through the
 * tb_study_api table, so this file holds presentation and parsing only.
 *
 *   interactive (script = ""): welcome (title, budget) -> briefing ->
 *     registration (or "resume ID") -> consent -> lobby (polled every second)
 *     -> menu: [s]ubmit [h]istory [b]udget [f]inish [p]ause/quit. A submission
 *     prompts the 15 hyperparameters in the study's order, each followed by a
 *     comment prompt; a rejection re-prompts the offending field only. A run's
 *     progress is redrawn in place (one line per epoch when the output is not a
 *     terminal) until it ends; Ctrl-C cancels that run, not the session.
 *     End of input acts as [p]: the participant is paused.
 *   scripted (script = FILE, or "-" for stdin): one command per line, see
 *     the table commands[] and the guide. Any error, and a Ctrl-C outside a
 *     followed run, stops the script with "FILE:LINE: ..."; a rejected
 *     submission is printed and the script goes on (the study records it).
 * Steps both modes take (the lobby, waiting for the final evaluation,
 * finishing, a run by submission number) are one function each. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tunebench_plugin.h"

/* A table the host hands over has member (appended in a later version) when its size covers it. */
#define HAS_MEMBER(api, type, member) ((api)->size >= offsetof(type, member) + sizeof((api)->member))

#define PLUGIN_NAME "cli"
#define HP_N TB_STUDY_HP_COUNT
#define MAX_TOKENS 64
#define MAX_CHOICES 32
#define MAX_PEOPLE 256
#define MAX_LINE 65536
#define LOBBY_POLL_MS 1000

static const tb_plugin_option options[] = {
    {"script", TB_OPTION_PATH, "", 0, 0, NULL,
     "\"\": interactive on the terminal; \"-\": commands from stdin; else a file of commands"},
    {"output", TB_OPTION_PATH, "", 0, 0, NULL, "\"\": stdout; else a file everything printed is appended to"},
    {"refresh", TB_OPTION_FLOAT, "0.5", 0.05, 10, NULL, "seconds between live progress updates"},
};

/* '|'-separated list split into copies (education levels, comments, choices). */
typedef struct list {
    char *item[MAX_CHOICES];
    int n;
} list;

/* A participant this session acted for. */
typedef struct person {
    char id[64];
    int entered;     /* admitted at least once here: paused when a script ends */
    int done_noted;  /* "the budget is used up" already said */
} person;

typedef struct cli {
    const tb_host_api *host;
    const tb_study_api *api;
    tb_study *s;
    FILE *out, *in; /* closed at the end unless stdout / stdin */
    int interactive; /* prompts; else scripted */
    int redraw;      /* progress redrawn in place with \r (interactive on a terminal) */
    const char *where; /* script name for "FILE:LINE: ..." */
    int line;
    int refresh_ms;
    char cur[64];    /* current participant ("" before register/as) */
    person people[MAX_PEOPLE];
    int n_people;
    tb_fe_hp hp[HP_N];
    list choices[HP_N]; /* a choice hyperparameter's choices, split once */
    int idx_batch, idx_loss, idx_opt, idx_lr; /* columns of the history table */
    list comments, education;
    char values[HP_N][256], notes[HP_N][512]; /* an interactive submission being edited */
    char *buf;       /* the line being read */
    size_t cap;
    /* expect-rejected: an API failure is what the script wants */
    int expect_reject, rejected;
    char *err;
    size_t errlen;
} cli;

/* ---- small helpers ------------------------------------------------------------------ */

static void say(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fflush(c->out);
}

static tb_status fail(cli *c, tb_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The message into err; in a script prefixed with "FILE:LINE: ". (The host,
 * tb_plugin_run_frontend, makes it one line: a study's message may hold a newline.) */
static tb_status fail(cli *c, tb_status code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->interactive || c->line == 0) snprintf(c->err, c->errlen, "%s", msg);
    else snprintf(c->err, c->errlen, "%s:%d: %s", c->where, c->line, msg);
    return code;
}

static void list_free(list *l)
{
    for (int i = 0; i < l->n; i++) free(l->item[i]);
    l->n = 0;
}

static int list_split(list *l, const char *text)
{
    l->n = 0;
    if (!text) return 0;
    const char *p = text;
    while (*p && l->n < MAX_CHOICES) {
        size_t len = strcspn(p, "|");
        if (len > 0) {
            char *s = malloc(len + 1);
            if (!s) return -1;
            memcpy(s, p, len);
            s[len] = '\0';
            l->item[l->n++] = s;
        }
        p += len;
        if (*p == '|') p++;
    }
    return 0;
}

static int list_find(const list *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (strcasecmp(l->item[i], s) == 0) return i;
    return -1;
}

/* A whole-string number, finite. */
static int parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') end++;
    if (end == s || *end || errno == ERANGE || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* " (did you mean X?)" for word among candidates, or "" (the host's rule). */
static const char *hint(const cli *c, const char *word, const char *const *candidates, int n, char *buf, size_t len)
{
    const char *near = c->host->nearest(word, candidates, n);
    if (near) snprintf(buf, len, " (did you mean %s?)", near);
    else buf[0] = '\0';
    return buf;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleeps ms in slices, watching for Ctrl-C; 1 when it was pressed. */
static int sleep_watch(cli *c, int ms)
{
    while (ms > 0) {
        int step = ms < 50 ? ms : 50;
        sleep_ms(step);
        ms -= step;
        if (c->api->take_interrupt(c->s)) return 1;
    }
    return c->api->take_interrupt(c->s);
}

/* "117:32" (minutes:seconds), never negative. */
static const char *mmss(double s, char *buf, size_t len)
{
    if (!(s > 0)) s = 0;
    long t = (long)floor(s + 0.5);
    snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static const char *num(double v, const char *fmt, char *buf, size_t len)
{
    if (isnan(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, fmt, v);
    return buf;
}

static person *person_get(cli *c, const char *id)
{
    for (int i = 0; i < c->n_people; i++)
        if (strcmp(c->people[i].id, id) == 0) return &c->people[i];
    if (c->n_people == MAX_PEOPLE) return NULL;
    person *p = &c->people[c->n_people++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    return p;
}

static int hp_find(const cli *c, const char *name)
{
    for (int i = 0; i < HP_N; i++)
        if (c->hp[i].name && strcasecmp(c->hp[i].name, name) == 0) return i;
    return -1;
}

static const char *hp_value(const tb_fe_run *r, int idx)
{
    return idx >= 0 && r->values[idx][0] ? r->values[idx] : "-";
}

/* Reads one line (without the newline) into c->buf: 1, or 0 at end of input.
 * A Ctrl-C that interrupts the read (no SA_RESTART) is taken: in a script it
 * stops the script like a Ctrl-C during sleep, enter or wait-finals (-1);
 * at an interactive prompt there is nothing to cancel, so it is reported and
 * the read retried. */
static int read_line(cli *c)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&c->buf, &c->cap, c->in);
        if (n >= 0) {
            while (n > 0 && (c->buf[n - 1] == '\n' || c->buf[n - 1] == '\r')) c->buf[--n] = '\0';
            if (n > MAX_LINE) c->buf[MAX_LINE] = '\0';
            return 1;
        }
        if (ferror(c->in) && errno == EINTR) {
            clearerr(c->in);
            c->api->take_interrupt(c->s);
            if (!c->interactive) return -1;
            say(c, "\n(Ctrl-C cancels a running training only; to leave, choose [p]ause/quit)\n");
            continue;
        }
        return 0;
    }
}

/* Prints a prompt and reads the answer (trimmed): pointer into c->buf, or NULL at end of input. */
static char *ask(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *ask(cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fflush(c->out);
    if (read_line(c) <= 0) {
        say(c, "\n");
        return NULL;
    }
    return trim(c->buf);
}

/* ---- what both modes show ------------------------------------------------------------- */

static int run_ended(const tb_fe_run *r)
{
    return strcmp(r->status, "queued") != 0 && strcmp(r->status, "training") != 0;
}

static tb_status get_state(cli *c, const char *id, tb_fe_state *st)
{
    char e[512] = "";
    memset(st, 0, sizeof *st);
    tb_status s = c->api->state(c->s, id, st, e, sizeof e);
    if (s != TB_OK) return fail(c, s, "state of participant %s: %s", id, e);
    return TB_OK;
}

static void progress_text(const tb_fe_run *r, double left_s, char *out, size_t len)
{
    char a[32], b[32], d[32], t[32];
    if (strcmp(r->status, "queued") == 0) {
        snprintf(out, len, "run %s: queued, budget left %s", r->run_id, mmss(left_s, t, sizeof t));
        return;
    }
    if (r->epoch == 0 && r->batch == 0) {
        char per[48] = "";
        if (r->batches_per_epoch > 0) snprintf(per, sizeof per, " of %d batches", r->batches_per_epoch);
        snprintf(out, len, "run %s: training started (%d epochs%s), budget left %s", r->run_id, r->epochs, per,
                 mmss(left_s, t, sizeof t));
        return;
    }
    snprintf(out, len, "run %s: epoch %d/%d, batch %d/%d, batch loss %s, epoch loss %s, val accuracy %s%s, "
             "budget left %s", r->run_id, r->epoch, r->epochs, r->batch, r->batches_per_epoch,
             num(r->batch_loss, "%.4f", a, sizeof a), num(r->epoch_loss, "%.4f", b, sizeof b),
             num(isnan(r->val_accuracy) ? NAN : 100.0 * r->val_accuracy, "%.2f", d, sizeof d),
             isnan(r->val_accuracy) ? "" : "%", mmss(left_s, t, sizeof t));
}

static void print_outcome(cli *c, const tb_fe_run *r)
{
    char a[32];
    const char *msg = r->message[0] ? r->message : "";
    const char *sep = r->message[0] ? ": " : "";
    if (strcmp(r->status, "finished") == 0)
        say(c, "run %s finished: val accuracy %s%% after %d/%d epochs\n", r->run_id,
            num(100.0 * r->val_accuracy, "%.2f", a, sizeof a), r->epoch, r->epochs);
    else if (strcmp(r->status, "cancelled") == 0)
        say(c, "run %s cancelled after %d/%d epochs (val accuracy %s%%)%s%s\n", r->run_id, r->epoch, r->epochs,
            num(100.0 * r->val_accuracy, "%.2f", a, sizeof a), sep, msg);
    else if (strcmp(r->status, "diverged") == 0)
        say(c, "run %s diverged: NaN thrown in epoch %d/%d%s%s\n", r->run_id, r->epoch + 1, r->epochs, sep, msg);
    else if (strcmp(r->status, "interrupted") == 0)
        say(c, "run %s interrupted after %d/%d epochs%s%s\n", r->run_id, r->epoch, r->epochs, sep, msg);
    else say(c, "run %s ended: %s%s%s\n", r->run_id, r->status, sep, msg);
}

static void print_final(cli *c, const tb_fe_state *st)
{
    char a[32], b[32];
    if (strcmp(st->final_reason, "none") == 0 || !st->final_run[0])
        say(c, "final configuration: none (no finished run to choose)\n");
    else
        say(c, "final configuration: run %s (%s)\n", st->final_run,
            strcmp(st->final_reason, "budget") == 0   ? "the budget ran out: the best finished run by validation "
                                                        "accuracy"
            : strcmp(st->final_reason, "chosen") == 0 ? "chosen"
                                                      : st->final_reason);
    if (st->finals_total > 0) {
        if (st->finals_done >= st->finals_total && !isnan(st->final_mean))
            say(c, "final evaluation: test accuracy %s ± %s %% over %d seeds\n",
                num(100.0 * st->final_mean, "%.2f", a, sizeof a), num(100.0 * st->final_sd, "%.2f", b, sizeof b),
                st->finals_total);
        else say(c, "final evaluation: %d/%d seeds done\n", st->finals_done, st->finals_total);
    }
}

/* Says once per participant that the tuning is over (budget or finish). */
static void note_done(cli *c, const tb_fe_state *st)
{
    person *p = person_get(c, st->id);
    if (strcmp(st->state, "done") != 0 && st->left_s > 0) return;
    if (p && p->done_noted) return;
    if (p) p->done_noted = 1;
    if (strcmp(st->final_reason, "chosen") == 0) say(c, "participant %s has finished tuning\n", st->id);
    else say(c, "participant %s: the time budget is used up; tuning is over\n", st->id);
    print_final(c, st);
}

static void print_budget(cli *c, const tb_fe_state *st)
{
    char a[32], b[32], d[32];
    say(c, "budget of %s: used %s of %s min, %s min left; %d submissions; state %s%s%s\n", st->id,
        mmss(st->used_s, a, sizeof a), mmss(st->budget_s, b, sizeof b), mmss(st->left_s, d, sizeof d),
        st->submissions, st->state, st->live_run[0] ? "; live run " : "", st->live_run);
}

static tb_status print_history(cli *c, const char *id)
{
    int n = c->api->history_count(c->s, id);
    if (n < 0) return fail(c, TB_EINVAL, "history of %s: unknown participant", id);
    say(c, "history of %s (%d submissions):\n", id, n);
    say(c, "  %3s  %-14s %-11s %-7s %-8s %-9s %-10s %-6s %-14s %s\n", "#", "run", "status", "epochs", "val acc",
        "optimizer", "lr", "batch", "loss", "message");
    for (int i = 0; i < n; i++) {
        tb_fe_run r;
        char e[512] = "", ep[24], acc[32];
        memset(&r, 0, sizeof r);
        tb_status s = c->api->history_at(c->s, id, i, &r, e, sizeof e);
        if (s != TB_OK) return fail(c, s, "history of %s, entry %d: %s", id, i + 1, e);
        snprintf(ep, sizeof ep, "%d/%d", r.epoch, r.epochs);
        num(isnan(r.val_accuracy) ? NAN : 100.0 * r.val_accuracy, "%.2f%%", acc, sizeof acc);
        say(c, "  %3d  %-14s %-11s %-7s %-8s %-9s %-10s %-6s %-14s %s\n", r.number, r.run_id[0] ? r.run_id : "-",
            r.status, ep, acc, hp_value(&r, c->idx_opt), hp_value(&r, c->idx_lr), hp_value(&r, c->idx_batch),
            hp_value(&r, c->idx_loss), r.message);
    }
    return TB_OK;
}

/* The participant's last run: the last submission that got one (a rejected
 * submission has none). 0, or -1 when there is none. */
static int last_run(cli *c, const char *id, tb_fe_run *out)
{
    for (int i = c->api->history_count(c->s, id) - 1; i >= 0; i--) {
        char e[512];
        memset(out, 0, sizeof *out);
        if (c->api->history_at(c->s, id, i, out, e, sizeof e) == TB_OK && out->run_id[0]) return 0;
    }
    return -1;
}

/* The participant's last submission of any kind. 0, or -1 when there is none. */
static int last_submission(cli *c, const char *id, tb_fe_run *out)
{
    int n = c->api->history_count(c->s, id);
    char e[512];
    memset(out, 0, sizeof *out);
    return n > 0 && c->api->history_at(c->s, id, n - 1, out, e, sizeof e) == TB_OK ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Follows a run until it ends (or, with until_epoch > 0, until that epoch is
 * durable), printing progress: redrawn in place at most every refresh seconds
 * (and at each new epoch or status) on a terminal, else one line per epoch or
 * status. Ctrl-C cancels the run; the session goes on. */
static tb_status follow_run(cli *c, const char *id, const char *run_id, int until_epoch)
{
    tb_fe_run r;
    char e[512] = "", text[512];
    memset(&r, 0, sizeof r);
    tb_status s = c->api->run_state(c->s, run_id, &r, e, sizeof e);
    if (s != TB_OK) return fail(c, s, "run %s: %s", run_id, e);
    c->api->take_interrupt(c->s); /* a Ctrl-C from before the wait is not meant for this run */
    char shown_status[16] = "";
    int shown_epoch = -1, cancelled = 0;
    size_t drawn = 0;
    double last_draw = -1e30;
    for (;;) {
        int news = strcmp(shown_status, r.status) != 0 || shown_epoch != r.epoch;
        double t = now_s();
        if (news || (c->redraw && t - last_draw >= c->refresh_ms / 1000.0)) {
            tb_fe_state st;
            double left = NAN;
            if (c->api->state(c->s, id, &st, e, sizeof e) == TB_OK) left = st.left_s;
            progress_text(&r, left, text, sizeof text);
            if (c->redraw) {
                size_t len = strlen(text);
                say(c, "\r%s%*s", text, drawn > len ? (int)(drawn - len) : 0, "");
                drawn = len;
            } else if (!run_ended(&r)) say(c, "%s\n", text);
            last_draw = t;
        }
        snprintf(shown_status, sizeof shown_status, "%s", r.status);
        shown_epoch = r.epoch;
        if (run_ended(&r) || (until_epoch > 0 && r.epoch >= until_epoch)) break;
        int w = c->api->wait(c->s, run_id, r.seq, c->refresh_ms);
        if (w < 0) {
            if (c->redraw) say(c, "\n");
            return fail(c, TB_EINVAL, "run %s: unknown run", run_id);
        }
        if (c->api->take_interrupt(c->s) && !cancelled) {
            cancelled = 1;
            if (c->redraw) say(c, "\n");
            drawn = 0;
            e[0] = '\0';
            s = c->api->cancel(c->s, id, run_id, e, sizeof e);
            if (s == TB_OK) say(c, "Ctrl-C: cancelling run %s (the session goes on)\n", run_id);
            else say(c, "Ctrl-C: could not cancel run %s: %s\n", run_id, e);
        }
        e[0] = '\0';
        s = c->api->run_state(c->s, run_id, &r, e, sizeof e);
        if (s != TB_OK) {
            if (c->redraw) say(c, "\n");
            return fail(c, s, "run %s: %s", run_id, e);
        }
    }
    if (c->redraw) say(c, "\n");
    if (run_ended(&r)) print_outcome(c, &r);
    else say(c, "run %s reached epoch %d/%d\n", r.run_id, r.epoch, r.epochs);
    tb_fe_state st;
    if (c->api->state(c->s, id, &st, e, sizeof e) == TB_OK) note_done(c, &st);
    return TB_OK;
}

/* ---- steps both modes take ---------------------------------------------------------------- */

/* Asks the study to let id start until it is admitted, polling the lobby
 * every LOBBY_POLL_MS and showing each new position. 1 admitted; 0 Ctrl-C in
 * the lobby (the caller leaves it or stops); -1 enter() failed, *s and e say
 * why. A Ctrl-C from before the lobby is not meant for it and is dropped. */
static int lobby_wait(cli *c, const char *id, tb_status *s, char *e, size_t elen)
{
    person *p = person_get(c, id);
    if (p) p->entered = 1;
    c->api->take_interrupt(c->s);
    int shown = -1;
    for (;;) {
        int admitted = 0;
        e[0] = '\0';
        *s = c->api->enter(c->s, id, &admitted, e, elen);
        if (*s != TB_OK) return -1;
        if (admitted) return 1;
        tb_fe_state st;
        char e2[512] = "";
        if (c->api->state(c->s, id, &st, e2, sizeof e2) == TB_OK && st.lobby_position != shown) {
            shown = st.lobby_position;
            if (c->interactive)
                say(c, "All places are taken; you are number %d in the lobby. Waiting (the lobby does not count "
                       "against your budget; Ctrl-C leaves)...\n", shown);
            else say(c, "%s is waiting in the lobby, position %d\n", id, shown);
        }
        if (sleep_watch(c, LOBBY_POLL_MS)) return 0;
    }
}

/* Polls id's state every refresh seconds until the final evaluations are
 * done, showing each new count of seeds done (shown: the count already on
 * screen, -1 none), then the result. *st: the state already read; kept up to
 * date. 1 done; 0 Ctrl-C (the evaluations go on in the host); -1 the state
 * could not be read (*s, err set). A Ctrl-C from before is dropped. */
static int wait_finals(cli *c, const char *id, tb_fe_state *st, int shown, tb_status *s)
{
    c->api->take_interrupt(c->s);
    for (;;) {
        if (st->finals_done >= st->finals_total) {
            print_final(c, st);
            return 1;
        }
        if (st->finals_done != shown) {
            shown = st->finals_done;
            say(c, "final evaluation of %s: %d/%d seeds done\n", id, st->finals_done, st->finals_total);
        }
        if (sleep_watch(c, c->refresh_ms)) return 0;
        if ((*s = get_state(c, id, st)) != TB_OK) return -1;
    }
}

/* Ends id's tuning with run_id's configuration (NULL: the best finished
 * run), then says so and shows the final configuration; *st receives the
 * state. 1 done; 0 the study refused (*s and e say why: a script stops, the
 * menu goes on); -1 the state could not be read (*s, err set). */
static int finish_report(cli *c, const char *id, const char *run_id, tb_fe_state *st, tb_status *s, char *e,
                         size_t elen)
{
    e[0] = '\0';
    if ((*s = c->api->finish(c->s, id, run_id, e, elen)) != TB_OK) return 0;
    if ((*s = get_state(c, id, st)) != TB_OK) return -1;
    person *p = person_get(c, id);
    if (p) p->done_noted = 1;
    if (c->interactive) say(c, "Thank you: your tuning is over.\n");
    else say(c, "%s finished tuning\n", id);
    print_final(c, st);
    return 1;
}

/* The run of id's submission `number` ("N" or "#N", 1-based) into run_id:
 * TB_OK, or a failure with why in e (not a submission number; a rejected
 * submission, which has no run). */
static tb_status submission_run(cli *c, const char *id, const char *number, char run_id[32], char *e, size_t elen)
{
    int count = c->api->history_count(c->s, id);
    long k;
    if (parse_int(number[0] == '#' ? number + 1 : number, 1, count, &k) != 0) {
        snprintf(e, elen, "%s is not a submission of %s (1 to %d)", number, id, count > 0 ? count : 0);
        return TB_EINVAL;
    }
    tb_fe_run r;
    memset(&r, 0, sizeof r);
    e[0] = '\0';
    tb_status s = c->api->history_at(c->s, id, (int)k - 1, &r, e, elen);
    if (s != TB_OK) return s;
    if (!r.run_id[0]) {
        snprintf(e, elen, "submission %s was rejected and has no run", number);
        return TB_EINVAL;
    }
    snprintf(run_id, 32, "%s", r.run_id);
    return TB_OK;
}

/* ---- scripted mode ------------------------------------------------------------------------ */

typedef struct token {
    char *key;
    char *val; /* after the first '=' outside quotes; NULL without one */
} token;

/* Splits a line in place into blank-separated tokens; "..." quotes (with \" and
 * \\ inside), '#' at the start of a token begins a comment, except before a
 * digit: "#3" is a submission number. -1 on bad syntax. */
static int tokenize(char *line, token *t, int max, int *count, char *why, size_t wlen)
{
    char *r = line, *w = line;
    int n = 0;
    for (;;) {
        while (*r == ' ' || *r == '\t') r++;
        if (!*r || (*r == '#' && !isdigit((unsigned char)r[1]))) break;
        if (n == max) {
            snprintf(why, wlen, "more than %d words on one line", max);
            return -1;
        }
        t[n].key = w;
        t[n].val = NULL;
        int q = 0;
        while (*r && (q || (*r != ' ' && *r != '\t'))) {
            if (*r == '"') {
                q = !q;
                r++;
            } else if (q && *r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                r++;
                *w++ = *r++;
            } else if (!q && *r == '=' && !t[n].val) {
                *w++ = '\0';
                t[n].val = w;
                r++;
            } else *w++ = *r++;
        }
        if (q) {
            snprintf(why, wlen, "unterminated quote");
            return -1;
        }
        if (*r) r++;
        *w++ = '\0';
        n++;
    }
    *count = n;
    return 0;
}

/* The whole token, '=' included (key and value are contiguous in the line). */
static const char *whole(token *t)
{
    if (t->val) {
        t->val[-1] = '=';
        t->val = NULL;
    }
    return t->key;
}

/* An API call failed: fatal, unless under expect-rejected. */
static tb_status api_failed(cli *c, tb_status s, const char *what, const char *e)
{
    if (c->expect_reject) {
        c->rejected = 1;
        say(c, "rejected as expected: %s\n", e);
        return TB_OK;
    }
    return fail(c, s, "%s: %s", what, e);
}

/* "a, b, c" (sep ", ") or "a, b or c" (last " or "): names[0..n) into buf. */
static const char *join(char *buf, size_t len, const char *const *names, int n, const char *last)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : i == n - 1 ? last : ", ", names[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

/* key=value arguments of a command against its allowed keys. */
static tb_status check_keys(cli *c, const char *cmd, token *t, int n, const char *const *keys, int nk)
{
    for (int i = 1; i < n; i++) {
        if (!t[i].val) return fail(c, TB_EINVAL, "%s: expected key=value, got \"%s\"", cmd, t[i].key);
        int ok = 0;
        for (int k = 0; k < nk; k++) ok |= strcmp(t[i].key, keys[k]) == 0;
        for (int j = 1; j < i && ok; j++)
            if (strcmp(t[j].key, t[i].key) == 0) return fail(c, TB_EINVAL, "%s: %s given twice", cmd, t[i].key);
        if (!ok) {
            char h[96], valid[256];
            return fail(c, TB_EINVAL, "%s: unknown key %s%s; valid: %s", cmd, t[i].key,
                        hint(c, t[i].key, keys, nk, h, sizeof h), join(valid, sizeof valid, keys, nk, ", "));
        }
    }
    return TB_OK;
}

static const char *arg(token *t, int n, const char *key)
{
    for (int i = 1; i < n; i++)
        if (t[i].val && strcmp(t[i].key, key) == 0) return t[i].val;
    return NULL;
}

/* Each command: (c, its tokens (t[0] the command), their count, quit). */

static tb_status cmd_register(cli *c, token *t, int n, int *quit)
{
    static const char *const keys[] = {"id", "education", "dl_months", "programming_months", "ml_months",
                                       "self_level"};
    tb_status s = check_keys(c, "register", t, n, keys, (int)(sizeof keys / sizeof keys[0]));
    if (s != TB_OK) return s;
    tb_fe_participant p = {arg(t, n, "id"), arg(t, n, "education"), NAN, NAN, NAN, 0};
    if (!p.education) return fail(c, TB_EINVAL, "register: education=... is required");
    const char *v = arg(t, n, "dl_months");
    if (!v) return fail(c, TB_EINVAL, "register: dl_months=... is required");
    if (parse_double(v, &p.dl_months) != 0)
        return fail(c, TB_EINVAL, "register: dl_months = \"%s\" is not a number", v);
    if ((v = arg(t, n, "programming_months")) && parse_double(v, &p.programming_months) != 0)
        return fail(c, TB_EINVAL, "register: programming_months = \"%s\" is not a number", v);
    if ((v = arg(t, n, "ml_months")) && parse_double(v, &p.ml_months) != 0)
        return fail(c, TB_EINVAL, "register: ml_months = \"%s\" is not a number", v);
    long level = 0;
    if ((v = arg(t, n, "self_level")) && parse_int(v, 1, 5, &level) != 0)
        return fail(c, TB_EINVAL, "register: self_level = \"%s\" is not an integer in [1, 5]", v);
    p.self_level = (int)level;
    char id[64] = "", e[512] = "";
    s = c->api->register_participant(c->s, &p, id, e, sizeof e);
    if (s != TB_OK) return api_failed(c, s, "register", e);
    id[sizeof id - 1] = '\0';
    snprintf(c->cur, sizeof c->cur, "%s", id);
    person_get(c, id);
    say(c, "registered %s\n", id);
    return TB_OK;
}

static tb_status cmd_as(cli *c, token *t, int n, int *quit)
{
    if (n != 2 || t[1].val) return fail(c, TB_EINVAL, "as: usage: as ID");
    tb_fe_state st;
    char e[512] = "";
    tb_status s = c->api->state(c->s, t[1].key, &st, e, sizeof e);
    if (s != TB_OK) return fail(c, s, "as %s: %s", t[1].key, e);
    snprintf(c->cur, sizeof c->cur, "%s", st.id[0] ? st.id : t[1].key);
    person_get(c, c->cur);
    say(c, "as %s (%s)\n", c->cur, st.state);
    return TB_OK;
}

static tb_status cmd_consent(cli *c, token *t, int n, int *quit)
{
    char e[512] = "";
    tb_status s = c->api->consent(c->s, c->cur, e, sizeof e);
    if (s != TB_OK) return api_failed(c, s, "consent", e);
    say(c, "%s consented\n", c->cur);
    return TB_OK;
}

/* The study's note about an accepted submission (values the optimizer ignores), if it has one. */
static void say_note(cli *c, const char *run_id)
{
    char note[512];
    if (HAS_MEMBER(c->api, tb_study_api, submission_note) &&
        c->api->submission_note && c->api->submission_note(c->s, run_id, note, sizeof note))
        say(c, "note: %s\n", note);
}

static tb_status cmd_enter(cli *c, token *t, int n, int *quit)
{
    char e[512];
    tb_status s = TB_OK;
    int r = lobby_wait(c, c->cur, &s, e, sizeof e);
    if (r < 0) return api_failed(c, s, "enter", e);
    if (r == 0) return fail(c, TB_ECANCELLED, "enter: interrupted (Ctrl-C) in the lobby");
    say(c, "%s admitted\n", c->cur);
    return TB_OK;
}

static tb_status cmd_submit(cli *c, token *t, int n, int *quit)
{
    const char *values[HP_N] = {0}, *comments[HP_N] = {0}, *names[HP_N];
    for (int j = 0; j < HP_N; j++) names[j] = c->hp[j].name;
    for (int i = 1; i < n; i++) {
        if (!t[i].val) return fail(c, TB_EINVAL, "submit: expected name=value, got \"%s\"", t[i].key);
        const char *name = t[i].key;
        int is_comment = strncmp(name, "comment.", 8) == 0;
        if (is_comment) name += 8;
        int k = hp_find(c, name);
        if (k < 0) {
            char h[96];
            return fail(c, TB_EINVAL, "submit: unknown hyperparameter %s%s", name,
                        hint(c, name, names, HP_N, h, sizeof h));
        }
        const char **slot = is_comment ? &comments[k] : &values[k];
        if (*slot) return fail(c, TB_EINVAL, "submit: %s%s given twice", is_comment ? "comment." : "", c->hp[k].name);
        *slot = t[i].val;
        long m;
        if (is_comment && parse_int(t[i].val, 1, 1000000, &m) == 0) {
            if (m > c->comments.n)
                return fail(c, TB_EINVAL, "submit: comment.%s = %ld: the study has %d predefined comments",
                            c->hp[k].name, m, c->comments.n);
            *slot = c->comments.item[m - 1];
        }
    }
    char run_id[32] = "", e[512] = "";
    int bad = -1;
    /* a rejection is recorded (the history grows); a refusal (not admitted, a
     * run still live) is not, and stops the script like any failed call */
    int before = c->api->history_count(c->s, c->cur);
    tb_status s = c->api->submit(c->s, c->cur, values, comments, run_id, &bad, e, sizeof e);
    if (s == TB_EINVAL && c->api->history_count(c->s, c->cur) > before) {
        say(c, "rejected: %s\n", e);
        if (c->expect_reject) c->rejected = 1;
        return TB_OK;
    }
    if (s != TB_OK) return api_failed(c, s, "submit", e);
    run_id[sizeof run_id - 1] = '\0';
    say(c, "submitted %s\n", run_id);
    say_note(c, run_id);
    return TB_OK;
}

/* A RUN argument: a run id, "#N" (the participant's N-th submission) or NULL (the last run). */
static tb_status resolve_run(cli *c, const char *cmd, const char *given, char run_id[32])
{
    if (!given) {
        tb_fe_run r;
        if (last_run(c, c->cur, &r) != 0) return fail(c, TB_EINVAL, "%s: %s has no run yet", cmd, c->cur);
        snprintf(run_id, 32, "%s", r.run_id);
        return TB_OK;
    }
    if (given[0] == '#') {
        char e[512];
        tb_status s = submission_run(c, c->cur, given, run_id, e, sizeof e);
        return s == TB_OK ? TB_OK : fail(c, s, "%s: %s", cmd, e);
    }
    if (strlen(given) >= 32) return fail(c, TB_EINVAL, "%s: run id \"%s\" is too long", cmd, given);
    snprintf(run_id, 32, "%s", given);
    return TB_OK;
}

static tb_status cmd_wait(cli *c, token *t, int n, int *quit)
{
    const char *run = NULL;
    long epoch = 0;
    for (int i = 1; i < n; i++) {
        if (t[i].val && strcmp(t[i].key, "epoch") == 0) {
            if (parse_int(t[i].val, 1, 1000000, &epoch) != 0)
                return fail(c, TB_EINVAL, "wait: epoch = \"%s\" is not a positive integer", t[i].val);
        } else if (!t[i].val && !run) run = t[i].key;
        else return fail(c, TB_EINVAL, "wait: unexpected \"%s\" (usage: wait [RUN] [epoch=N])", t[i].key);
    }
    char run_id[32];
    tb_status s = resolve_run(c, "wait", run, run_id);
    if (s != TB_OK) return s;
    return follow_run(c, c->cur, run_id, (int)epoch);
}

static tb_status cmd_cancel(cli *c, token *t, int n, int *quit)
{
    if (n > 2 || (n == 2 && t[1].val)) return fail(c, TB_EINVAL, "cancel: usage: cancel [RUN]");
    char run_id[32], e[512] = "";
    tb_status s = resolve_run(c, "cancel", n == 2 ? t[1].key : NULL, run_id);
    if (s != TB_OK) return s;
    s = c->api->cancel(c->s, c->cur, run_id, e, sizeof e);
    if (s != TB_OK) return api_failed(c, s, "cancel", e);
    say(c, "cancel requested for run %s\n", run_id);
    return TB_OK;
}

static tb_status cmd_history(cli *c, token *t, int n, int *quit) { return print_history(c, c->cur); }

static tb_status cmd_budget(cli *c, token *t, int n, int *quit)
{
    tb_fe_state st;
    tb_status s = get_state(c, c->cur, &st);
    if (s == TB_OK) print_budget(c, &st);
    return s;
}

static tb_status cmd_pause(cli *c, token *t, int n, int *quit)
{
    char e[512] = "";
    tb_status s = c->api->pause(c->s, c->cur, e, sizeof e);
    if (s != TB_OK) return api_failed(c, s, "pause", e);
    say(c, "%s paused\n", c->cur);
    return TB_OK;
}

/* finish [RUN|#N|best] */
static tb_status cmd_finish(cli *c, token *t, int n, int *quit)
{
    if (n > 2 || (n == 2 && t[1].val)) return fail(c, TB_EINVAL, "finish: usage: finish [RUN|#N|best]");
    char run_id[32] = "", e[512];
    tb_status s = TB_OK;
    if (n == 2 && strcmp(t[1].key, "best") != 0 && (s = resolve_run(c, "finish", t[1].key, run_id)) != TB_OK) return s;
    tb_fe_state st;
    int r = finish_report(c, c->cur, run_id[0] ? run_id : NULL, &st, &s, e, sizeof e);
    return r == 0 ? api_failed(c, s, "finish", e) : s;
}

static tb_status cmd_wait_finals(cli *c, token *t, int n, int *quit)
{
    tb_fe_state st;
    tb_status s = get_state(c, c->cur, &st);
    if (s != TB_OK) return s;
    if (st.finals_total <= 0) {
        if (strcmp(st.state, "done") == 0 && strcmp(st.final_reason, "none") == 0) {
            print_final(c, &st);
            return TB_OK;
        }
        return fail(c, TB_EINVAL, "wait-finals: %s has no final evaluation queued (finish first)", c->cur);
    }
    int r = wait_finals(c, c->cur, &st, -1, &s);
    return r > 0 ? TB_OK : r < 0 ? s : fail(c, TB_ECANCELLED, "wait-finals: interrupted (Ctrl-C)");
}

/* ---- the organiser's commands (study API version 3) ---- */

static tb_status need_v3(cli *c, const char *cmd)
{
    if (HAS_MEMBER(c->api, tb_study_api, export_archive) && c->api->participant_at) return TB_OK;
    return fail(c, TB_EINVAL, "%s: the host's study API (version %u) has no organiser view; it needs version 3", cmd,
                (unsigned)c->api->version);
}

/* participants: every participant's state, budget, tries and best validation accuracy */
static tb_status cmd_participants(cli *c, token *t, int n, int *quit)
{
    tb_status s = need_v3(c, "participants");
    if (s != TB_OK) return s;
    tb_fe_counts k;
    c->api->counts(c->s, &k, sizeof k);
    say(c, "%d participants (%d active, %d in the lobby, %d done); runs: %d training, %d queued; finals %d/%d; "
           "admission %s%s\n",
        k.participants, k.by_state[TB_FE_ACTIVE], k.by_state[TB_FE_LOBBY], k.by_state[TB_FE_DONE],
        k.runs_by_status[TB_FE_RUN_TRAINING], k.runs_by_status[TB_FE_RUN_QUEUED], k.finals_done, k.finals_total,
        k.admitting ? "open" : "stopped", k.closing ? "; closing" : "");
    if (k.participants) say(c, "  %-16s %-10s %9s %9s %5s %8s  %s\n", "id", "state", "used", "left", "tries", "best", "live");
    for (int i = 0; i < k.participants; i++) {
        tb_fe_state st;
        char e[512] = "";
        if ((s = c->api->participant_at(c->s, i, &st, sizeof st, e, sizeof e)) != TB_OK)
            return api_failed(c, s, "participants", e);
        char best[16] = "-";
        if (st.best_run[0]) snprintf(best, sizeof best, "%.2f%%", 100 * st.best_val_accuracy);
        say(c, "  %-16s %-10s %8.0fs %8.0fs %5d %8s  %s\n", st.id, st.state, st.used_s, st.left_s, st.submissions,
            best, st.live_run[0] ? st.live_run : "-");
    }
    return TB_OK;
}

/* admission open|stopped */
static tb_status cmd_admission(cli *c, token *t, int n, int *quit)
{
    tb_status s = need_v3(c, "admission");
    if (s != TB_OK) return s;
    int open = n == 2 && !t[1].val && !strcmp(t[1].key, "open");
    if (n != 2 || t[1].val || (!open && strcmp(t[1].key, "stopped") != 0))
        return fail(c, TB_EINVAL, "admission: usage: admission open|stopped");
    char e[512] = "";
    if ((s = c->api->set_admitting(c->s, open, e, sizeof e)) != TB_OK) return api_failed(c, s, "admission", e);
    say(c, "admission %s\n", open ? "open: new participants may register" : "stopped: no new participants");
    return TB_OK;
}

static tb_status cmd_sleep(cli *c, token *t, int n, int *quit)
{
    double secs;
    if (n != 2 || t[1].val || parse_double(t[1].key, &secs) != 0 || secs < 0 || secs > 86400)
        return fail(c, TB_EINVAL, "sleep: usage: sleep SECONDS (0 to 86400)");
    if (sleep_watch(c, (int)(secs * 1000 + 0.5))) return fail(c, TB_ECANCELLED, "sleep: interrupted (Ctrl-C)");
    return TB_OK;
}

static tb_status cmd_quit(cli *c, token *t, int n, int *quit)
{
    *quit = 1;
    return TB_OK;
}

/* ---- expect ---- */

/* expect FIELD VALUE: VALUE may start with >=, <=, >, < (numbers) or ~ (contains). */
static int compare(const char *got, const char *want)
{
    if (want[0] == '~') return strstr(got, want + 1) != NULL;
    const char *op = "";
    if (!strncmp(want, ">=", 2) || !strncmp(want, "<=", 2)) op = want[0] == '>' ? ">=" : "<=";
    else if (want[0] == '>' || want[0] == '<') op = want[0] == '>' ? ">" : "<";
    double g, w;
    if (parse_double(want + strlen(op), &w) == 0 && parse_double(got, &g) == 0) {
        if (!strcmp(op, ">=")) return g >= w - 1e-9;
        if (!strcmp(op, "<=")) return g <= w + 1e-9;
        if (!strcmp(op, ">")) return g > w;
        if (!strcmp(op, "<")) return g < w;
        return fabs(g - w) <= 0.005 + 1e-9 * fabs(w);
    }
    if (*op) return 0;
    return strcmp(got, want) == 0;
}

enum { FROM_RUN, FROM_SUBMISSION, FROM_STATE }; /* the last run, the last submission, the participant's state */

/* A field `expect` checks: a member of tb_fe_run (FROM_RUN, FROM_SUBMISSION)
 * or tb_fe_state, as text ('s'), an int ('d') or a double times scale ('g'). */
typedef struct expect_field {
    const char *name;
    int from;
    char type;
    size_t offset;
    double scale;
} expect_field;

#define RUN_FIELD(name, member, type, scale) {name, FROM_RUN, type, offsetof(tb_fe_run, member), scale}
#define STATE_FIELD(name, member, type, scale) {name, FROM_STATE, type, offsetof(tb_fe_state, member), scale}
static const expect_field expect_fields[] = {
    RUN_FIELD("status", status, 's', 1),
    RUN_FIELD("epoch", epoch, 'd', 1),
    RUN_FIELD("epochs", epochs, 'd', 1),
    RUN_FIELD("val_accuracy", val_accuracy, 'g', 100), /* percent */
    RUN_FIELD("message", message, 's', 1),
    RUN_FIELD("run", run_id, 's', 1),
    {"submission", FROM_SUBMISSION, 's', offsetof(tb_fe_run, status), 1},
    STATE_FIELD("state", state, 's', 1),
    STATE_FIELD("final_reason", final_reason, 's', 1),
    STATE_FIELD("final_run", final_run, 's', 1),
    STATE_FIELD("submissions", submissions, 'd', 1),
    STATE_FIELD("finals_done", finals_done, 'd', 1),
    STATE_FIELD("finals_total", finals_total, 'd', 1),
    STATE_FIELD("lobby_position", lobby_position, 'd', 1),
    STATE_FIELD("left_s", left_s, 'g', 1),
    STATE_FIELD("final_mean", final_mean, 'g', 100), /* percent */
};
#define N_EXPECT_FIELDS ((int)(sizeof expect_fields / sizeof expect_fields[0]))

/* "expect: unknown field X (did you mean Y?); fields of the last run: ...; ..." */
static tb_status unknown_field(cli *c, const char *field)
{
    static const char *const groups[] = {"fields of the last run", "of the last submission",
                                         "of the participant's state"};
    const char *names[N_EXPECT_FIELDS];
    for (int i = 0; i < N_EXPECT_FIELDS; i++) names[i] = expect_fields[i].name;
    char h[96], all[512], part[320];
    size_t used = 0;
    all[0] = '\0';
    for (int g = FROM_RUN; g <= FROM_STATE; g++) {
        const char *of[N_EXPECT_FIELDS];
        int k = 0;
        for (int i = 0; i < N_EXPECT_FIELDS; i++)
            if (expect_fields[i].from == g) of[k++] = expect_fields[i].name;
        int w = snprintf(all + used, sizeof all - used, "%s%s: %s", g ? "; " : "", groups[g],
                         join(part, sizeof part, of, k, ", "));
        if (w < 0 || (size_t)w >= sizeof all - used) break;
        used += (size_t)w;
    }
    return fail(c, TB_EINVAL, "expect: unknown field %s%s; %s", field, hint(c, field, names, N_EXPECT_FIELDS, h, sizeof h),
                all);
}

static tb_status cmd_expect(cli *c, token *t, int n, int *quit)
{
    if (n != 3 || t[1].val)
        return fail(c, TB_EINVAL, "expect: usage: expect FIELD VALUE (e.g. expect status finished)");
    const char *field = t[1].key, *want = whole(&t[2]);
    const expect_field *f = NULL;
    for (int i = 0; i < N_EXPECT_FIELDS && !f; i++)
        if (!strcmp(field, expect_fields[i].name)) f = &expect_fields[i];
    if (!f) return unknown_field(c, field);
    tb_fe_run r;
    tb_fe_state st;
    const char *base;
    if (f->from == FROM_STATE) {
        tb_status s = get_state(c, c->cur, &st);
        if (s != TB_OK) return s;
        base = (const char *)&st;
    } else {
        int have = f->from == FROM_RUN ? last_run(c, c->cur, &r) : last_submission(c, c->cur, &r);
        if (have != 0)
            return fail(c, TB_EINVAL, "expected %s %s, got no %s", field, want,
                        f->from == FROM_RUN ? "run" : "submission");
        base = (const char *)&r;
    }
    char got[300];
    const void *member = base + f->offset;
    if (f->type == 's') snprintf(got, sizeof got, "%s", (const char *)member);
    else if (f->type == 'd') snprintf(got, sizeof got, "%d", *(const int *)member);
    else snprintf(got, sizeof got, "%.17g", f->scale * *(const double *)member);
    if (!compare(got, want)) return fail(c, TB_EINVAL, "expected %s %s, got %s", field, want, got[0] ? got : "\"\"");
    say(c, "ok: %s %s\n", field, want);
    return TB_OK;
}

/* ---- the command table ---- */

enum {
    CMD_PARTICIPANT = 1, /* acts for the current participant */
    CMD_NO_ARGS = 2,     /* takes no arguments */
    CMD_REJECTABLE = 4,  /* may follow expect-rejected (a study call that can refuse) */
};

typedef struct command {
    const char *name;
    tb_status (*fn)(cli *c, token *t, int n, int *quit);
    int flags;
} command;

static tb_status cmd_expect_rejected(cli *c, token *t, int n, int *quit);

#define P CMD_PARTICIPANT
#define NA CMD_NO_ARGS
#define R CMD_REJECTABLE
static const command commands[] = {
    {"register", cmd_register, R},
    {"as", cmd_as, 0},
    {"consent", cmd_consent, P | NA | R},
    {"enter", cmd_enter, P | NA | R},
    {"submit", cmd_submit, P | R},
    {"wait", cmd_wait, P},
    {"cancel", cmd_cancel, P | R},
    {"history", cmd_history, P | NA},
    {"budget", cmd_budget, P | NA},
    {"pause", cmd_pause, P | NA | R},
    {"finish", cmd_finish, P | R},
    {"wait-finals", cmd_wait_finals, P | NA},
    {"participants", cmd_participants, NA},
    {"admission", cmd_admission, R},
    {"sleep", cmd_sleep, 0},
    {"expect", cmd_expect, P},
    {"expect-rejected", cmd_expect_rejected, 0},
    {"quit", cmd_quit, NA},
};
#undef P
#undef NA
#undef R
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

/* Names of the commands with all of flags, joined (last: the separator before the last one). */
static const char *command_names(int flags, const char *last, char *buf, size_t len, const char **names)
{
    int k = 0;
    for (int i = 0; i < N_COMMANDS; i++)
        if ((commands[i].flags & flags) == flags) names[k++] = commands[i].name;
    return join(buf, len, names, k, last);
}

static tb_status run_command(cli *c, token *t, int n, int *quit)
{
    if (t[0].val) return fail(c, TB_EINVAL, "expected a command, got \"%s=%s\"", t[0].key, t[0].val);
    const command *cmd = find_command(t[0].key);
    if (!cmd) {
        const char *names[N_COMMANDS];
        char all[320];
        command_names(0, ", ", all, sizeof all, names);
        const char *near = c->host->nearest(t[0].key, names, N_COMMANDS);
        return fail(c, TB_EINVAL, "unknown command \"%s\"%s%s%s (commands: %s)", t[0].key,
                    near ? "; did you mean " : "", near ? near : "", near ? "?" : "", all);
    }
    if ((cmd->flags & CMD_PARTICIPANT) && !c->cur[0])
        return fail(c, TB_EINVAL, "%s: no current participant (register one, or switch with \"as ID\")", cmd->name);
    if ((cmd->flags & CMD_NO_ARGS) && n > 1) return fail(c, TB_EINVAL, "%s takes no arguments", cmd->name);
    return cmd->fn(c, t, n, quit);
}

static tb_status cmd_expect_rejected(cli *c, token *t, int n, int *quit)
{
    if (n < 2 || t[1].val) return fail(c, TB_EINVAL, "expect-rejected: usage: expect-rejected COMMAND ...");
    const command *cmd = find_command(t[1].key);
    if (!cmd || !(cmd->flags & CMD_REJECTABLE)) {
        const char *names[N_COMMANDS];
        char rejectable[256];
        return fail(c, TB_EINVAL, "expect-rejected: %s cannot be rejected (use %s)", t[1].key,
                    command_names(CMD_REJECTABLE, " or ", rejectable, sizeof rejectable, names));
    }
    c->expect_reject = 1;
    c->rejected = 0;
    tb_status s = run_command(c, t + 1, n - 1, quit);
    c->expect_reject = 0;
    if (s != TB_OK) return s;
    if (!c->rejected) return fail(c, TB_EINVAL, "expected %s to be rejected, but it was accepted", t[1].key);
    return TB_OK;
}

/* When the session ends (a script's end or error, an interactive session's
 * error), participants it entered who are still admitted or in the lobby and
 * have no live run are paused, so their clocks stop and the lobby forgets them. */
static void pause_left_active(cli *c)
{
    for (int i = 0; i < c->n_people; i++) {
        person *p = &c->people[i];
        tb_fe_state st;
        char e[512] = "";
        if (!p->entered || c->api->state(c->s, p->id, &st, e, sizeof e) != TB_OK) continue;
        if ((strcmp(st.state, "active") != 0 && strcmp(st.state, "lobby") != 0) || st.live_run[0]) continue;
        if (c->api->pause(c->s, p->id, e, sizeof e) == TB_OK) say(c, "%s paused (end of session)\n", p->id);
        else say(c, "could not pause %s at the end of the session: %s\n", p->id, e);
    }
}

static tb_status run_script(cli *c)
{
    int quit = 0, got = 1;
    tb_status s = TB_OK;
    while (!quit && (got = read_line(c)) > 0) {
        c->line++;
        token t[MAX_TOKENS];
        int n = 0;
        char why[128];
        if (tokenize(c->buf, t, MAX_TOKENS, &n, why, sizeof why) != 0) {
            s = fail(c, TB_EINVAL, "%s", why);
            break;
        }
        if (n == 0) continue;
        s = run_command(c, t, n, &quit);
        if (s != TB_OK) break;
    }
    if (s == TB_OK && got < 0) {
        c->line++; /* the line it was waiting for */
        s = fail(c, TB_ECANCELLED, "interrupted (Ctrl-C) while reading the script");
    }
    if (s == TB_OK && ferror(c->in)) s = fail(c, TB_EIO, "read error: %s", strerror(errno));
    return s;
}

/* ---- interactive mode ----------------------------------------------------------------------- */

/* A number of months (optional: Enter gives NaN). 1, or 0 at end of input. */
static int ask_months(cli *c, const char *what, int mandatory, double *out)
{
    for (;;) {
        char *a = ask(c, "%s (%s): ", what, mandatory ? "required, >= 0" : "optional, Enter skips");
        if (!a) return 0;
        if (!*a && !mandatory) {
            *out = NAN;
            return 1;
        }
        double v;
        if (parse_double(a, &v) == 0 && v >= 0) {
            *out = v;
            return 1;
        }
        say(c, "  please give a number of months, 0 or more\n");
    }
}

/* Registration; *id receives the participant's id. 1 done, 0 end of input. */
static int interactive_register(cli *c, char id[64])
{
    for (;;) {
        say(c, "\nRegistration. Returning participants: type \"resume ID\".\n");
        char *a = ask(c, "Pseudonym (letters, digits, '.', '_', '-'; Enter: the study assigns one): ");
        if (!a) return 0;
        if (!strncmp(a, "resume", 6) && (a[6] == ' ' || a[6] == '\0')) {
            char *rid = trim(a + 6);
            tb_fe_state st;
            char e[512] = "";
            if (!*rid) {
                say(c, "  usage: resume ID\n");
                continue;
            }
            if (c->api->state(c->s, rid, &st, e, sizeof e) != TB_OK) {
                say(c, "  cannot resume: %s\n", e);
                continue;
            }
            snprintf(id, 64, "%s", st.id[0] ? st.id : rid);
            say(c, "Welcome back, %s.\n", id);
            return 1;
        }
        char pseudonym[64];
        snprintf(pseudonym, sizeof pseudonym, "%s", a);
        if (strlen(a) >= sizeof pseudonym) {
            say(c, "  a pseudonym has at most 63 characters\n");
            continue;
        }
        say(c, "Education:\n");
        for (int i = 0; i < c->education.n; i++) say(c, "  %d) %s\n", i + 1, c->education.item[i]);
        int edu = -1;
        while (edu < 0) {
            a = ask(c, "Choose 1-%d: ", c->education.n);
            if (!a) return 0;
            long k;
            if (parse_int(a, 1, c->education.n, &k) == 0) edu = (int)k - 1;
            else if ((edu = list_find(&c->education, a)) < 0) say(c, "  please choose a number from the list\n");
        }
        tb_fe_participant p = {pseudonym, c->education.item[edu], 0, NAN, NAN, 0};
        if (!ask_months(c, "Months of deep-learning experience", 1, &p.dl_months)) return 0;
        if (!ask_months(c, "Months of programming experience", 0, &p.programming_months)) return 0;
        if (!ask_months(c, "Months of machine-learning experience beyond deep learning", 0, &p.ml_months)) return 0;
        for (;;) {
            a = ask(c, "Your level in deep learning, 1 (none) to 5 (expert) (optional, Enter skips): ");
            if (!a) return 0;
            long k;
            if (!*a) break;
            if (parse_int(a, 1, 5, &k) == 0) {
                p.self_level = (int)k;
                break;
            }
            say(c, "  please give a whole number from 1 to 5, or press Enter\n");
        }
        char e[512] = "";
        if (c->api->register_participant(c->s, &p, id, e, sizeof e) != TB_OK) {
            say(c, "  registration failed: %s\n", e);
            continue;
        }
        id[63] = '\0';
        say(c, "You are registered as %s. Note it down: \"resume %s\" brings you back later.\n", id, id);
        return 1;
    }
}

/* Prompts one hyperparameter into value (cap 256): 1, 0 at end of input, -1 "menu".
 * Enter: an optional one's preset (sent as not given); a mandatory one's
 * preset, which it has when [train] gives it a value (core/study/space.h), sent as
 * given; a mandatory one without a preset is asked again. */
static int ask_hp(cli *c, int i, char *value, size_t cap)
{
    const tb_fe_hp *h = &c->hp[i];
    int has_preset = h->preset && h->preset[0];
    for (;;) {
        char keep[96] = "";
        if (has_preset) snprintf(keep, sizeof keep, "; Enter keeps %s", h->preset);
        char *a = ask(c, "[%d/%d] %s (%s, %s%s): ", i + 1, HP_N, h->name, h->mandatory ? "mandatory" : "optional",
                      h->allowed ? h->allowed : "", keep);
        if (!a) return 0;
        if (!strcmp(a, "menu")) return -1;
        if (!*a) {
            if (!h->mandatory) {
                value[0] = '\0'; /* not given: the preset */
                return 1;
            }
            if (has_preset) {
                snprintf(value, cap, "%s", h->preset);
                return 1;
            }
            say(c, "  %s is mandatory: please give a value\n", h->name);
            continue;
        }
        long k;
        const list *ch = &c->choices[i];
        if (h->type == 3 && parse_int(a, 1, MAX_CHOICES, &k) == 0 && k <= ch->n && list_find(ch, a) < 0) {
            snprintf(value, cap, "%s", ch->item[k - 1]); /* a choice by its number */
            return 1;
        }
        if (strlen(a) >= cap) {
            say(c, "  too long\n");
            continue;
        }
        snprintf(value, cap, "%s", a);
        return 1;
    }
}

/* The comment on one value: a predefined one by number, free text, or none. */
static int ask_comment(cli *c, char *comment, size_t cap)
{
    char *a = ask(c, "      comment (1-%d, your own words, Enter: none): ", c->comments.n);
    if (!a) return 0;
    long k;
    if (parse_int(a, 1, c->comments.n, &k) == 0) snprintf(comment, cap, "%s", c->comments.item[k - 1]);
    else snprintf(comment, cap, "%s", a);
    return 1;
}

static void show_hp_header(cli *c)
{
    say(c, "\nNew configuration: %d hyperparameters. Optional ones are preset; Enter keeps the preset.\n", HP_N);
    say(c, "A choice may be given by its number. Type \"menu\" at any value to go back.\n");
    say(c, "After each value, say why you chose it:\n");
    for (int i = 0; i < c->comments.n; i++) say(c, "  %d) %s\n", i + 1, c->comments.item[i]);
    say(c, "  or type your own words; Enter: no comment.\n");
    for (int i = 0; i < HP_N; i++)
        if (c->hp[i].type == 3) {
            say(c, "%s choices:", c->hp[i].name);
            for (int k = 0; k < c->choices[i].n; k++) say(c, " %d) %s", k + 1, c->choices[i].item[k]);
            say(c, "\n");
        }
}

/* One submission: 1 done (submitted, or back to the menu), 0 end of input; err on failure. */
static int interactive_submit(cli *c, const char *id, tb_status *st_out)
{
    char (*values)[256] = c->values, (*comments)[512] = c->notes;
    *st_out = TB_OK;
    show_hp_header(c);
    for (int i = 0; i < HP_N; i++) {
        int r = ask_hp(c, i, values[i], sizeof values[i]);
        if (r <= 0) {
            if (r < 0) say(c, "back to the menu (nothing submitted)\n");
            return r < 0;
        }
        if (!ask_comment(c, comments[i], sizeof comments[i])) return 0;
    }
    char run_id[32] = "";
    for (;;) {
        const char *v[HP_N], *cm[HP_N];
        for (int i = 0; i < HP_N; i++) v[i] = values[i], cm[i] = comments[i];
        char e[512] = "";
        int bad = -1, before = c->api->history_count(c->s, id);
        tb_status s = c->api->submit(c->s, id, v, cm, run_id, &bad, e, sizeof e);
        if (s == TB_OK) break;
        int recorded = c->api->history_count(c->s, id) > before;
        if (s != TB_EINVAL || !recorded || bad < 0 || bad >= HP_N) {
            say(c, "  not submitted: %s\n", e);
            return 1;
        }
        say(c, "  error: %s\n", e);
        int r = ask_hp(c, bad, values[bad], sizeof values[bad]);
        if (r <= 0) {
            if (r < 0) say(c, "back to the menu (nothing submitted)\n");
            return r < 0;
        }
    }
    run_id[sizeof run_id - 1] = '\0';
    say(c, "Submitted as run %s. Ctrl-C cancels this run (not the session).\n", run_id);
    say_note(c, run_id);
    *st_out = follow_run(c, id, run_id, 0);
    return 1;
}

/* [f]inish: 1 finished, 0 back to the menu, -1 end of input. */
static int interactive_finish(cli *c, const char *id, tb_status *st_out)
{
    *st_out = TB_OK;
    tb_status s = print_history(c, id);
    if (s != TB_OK) {
        *st_out = s;
        return 1;
    }
    char run_id[32] = "", what[96];
    for (;;) {
        char *a = ask(c, "Final configuration: a submission number, or \"best\" (the best finished run by "
                         "validation accuracy); Enter: back to the menu: ");
        if (!a) return -1;
        if (!*a) return 0;
        if (!strcasecmp(a, "best")) {
            snprintf(what, sizeof what, "the best finished run");
            break;
        }
        char e[512];
        if (submission_run(c, id, a, run_id, e, sizeof e) != TB_OK) {
            say(c, "  %s; please give a number from the history, or \"best\"\n", e);
            continue;
        }
        snprintf(what, sizeof what, "submission %.8s (run %s)", a, run_id);
        break;
    }
    char *a = ask(c, "Finish with %s? This ends your tuning. [y/n]: ", what);
    if (!a) return -1;
    if (tolower((unsigned char)a[0]) != 'y') return 0;
    char e[512];
    tb_fe_state st;
    int r = finish_report(c, id, run_id[0] ? run_id : NULL, &st, &s, e, sizeof e);
    if (r == 0) {
        say(c, "  could not finish: %s\n", e);
        return 0;
    }
    if (r < 0) {
        *st_out = s;
        return 1;
    }
    if (st.finals_total <= 0 || st.finals_done >= st.finals_total) return 1;
    say(c, "The final configuration is now retrained with %d seeds; this goes on after you leave.\n",
        st.finals_total);
    a = ask(c, "Wait here for the result? [y/N]: ");
    if (!a || tolower((unsigned char)a[0]) != 'y') return 1;
    /* print_final above showed how many seeds are done */
    r = wait_finals(c, id, &st, st.finals_done, st_out);
    if (r == 0) say(c, "stopped waiting (Ctrl-C); the final evaluation goes on\n");
    return 1;
}

static tb_status interactive_pause(cli *c, const char *id, int *ok)
{
    char e[512] = "";
    *ok = c->api->pause(c->s, id, e, sizeof e) == TB_OK;
    if (*ok) say(c, "Paused: your clock is stopped. \"resume %s\" brings you back.\n", id);
    else say(c, "  could not pause: %s\n", e);
    return TB_OK;
}

static tb_status run_interactive(cli *c)
{
    char t[32];
    const char *title = c->api->title(c->s), *briefing = c->api->briefing(c->s);
    say(c, "=== %s ===\n", title && *title ? title : "tunebench study");
    double minutes = c->api->budget_s(c->s) / 60;
    say(c, "Your time budget: %.*f minutes of tuning (the clock runs only while you are admitted).\n",
        minutes == floor(minutes) ? 0 : 1, minutes);
    if (briefing && *briefing) say(c, "\n%s\n", briefing);
    char id[64] = "";
    if (!interactive_register(c, id)) return TB_OK;
    snprintf(c->cur, sizeof c->cur, "%s", id);
    tb_fe_state st;
    tb_status s = get_state(c, id, &st);
    if (s != TB_OK) return s;
    if (!strcmp(st.state, "done")) {
        note_done(c, &st);
        return TB_OK;
    }
    if (!strcmp(st.state, "registered")) {
        for (;;) {
            char *a = ask(c, "\nDo you consent to take part and to the recording of your answers and submissions? "
                             "[y/n]: ");
            if (!a) return TB_OK;
            if (tolower((unsigned char)a[0]) == 'n') {
                say(c, "Without consent you cannot take part. Thank you for your time.\n");
                return TB_OK;
            }
            if (tolower((unsigned char)a[0]) == 'y') break;
        }
        char e[512] = "";
        if ((s = c->api->consent(c->s, id, e, sizeof e)) != TB_OK) return fail(c, s, "consent: %s", e);
    }
    char e[512];
    int admitted = lobby_wait(c, id, &s, e, sizeof e);
    if (admitted < 0) return fail(c, s, "enter: %s", e);
    if (admitted == 0) {
        e[0] = '\0';
        if (c->api->pause(c->s, id, e, sizeof e) != TB_OK) say(c, "  could not leave the lobby: %s\n", e);
        say(c, "You left the lobby. \"resume %s\" brings you back.\n", id);
        return TB_OK;
    }
    say(c, "You are admitted: your clock is running.\n");
    if ((s = get_state(c, id, &st)) != TB_OK) return s;
    if (st.live_run[0]) {
        say(c, "Your run %s is still going:\n", st.live_run);
        if ((s = follow_run(c, id, st.live_run, 0)) != TB_OK) return s;
    }
    for (;;) {
        if ((s = get_state(c, id, &st)) != TB_OK) return s;
        if (!strcmp(st.state, "done") || st.left_s <= 0) {
            note_done(c, &st);
            return TB_OK;
        }
        char *a = ask(c, "\n[budget left %s min] [s]ubmit  [h]istory  [b]udget  [f]inish  [p]ause/quit > ",
                      mmss(st.left_s, t, sizeof t));
        int ok;
        if (!a) return interactive_pause(c, id, &ok);
        switch (tolower((unsigned char)a[0])) {
        case 's':
            if (!interactive_submit(c, id, &s)) return interactive_pause(c, id, &ok);
            if (s != TB_OK) return s;
            break;
        case 'h':
            if ((s = print_history(c, id)) != TB_OK) return s;
            break;
        case 'b': print_budget(c, &st); break;
        case 'f': {
            int r = interactive_finish(c, id, &s);
            if (s != TB_OK) return s;
            if (r > 0) return TB_OK;
            if (r < 0) return interactive_pause(c, id, &ok);
            break;
        }
        case 'p':
        case 'q':
            interactive_pause(c, id, &ok);
            if (ok) return TB_OK;
            break;
        default: say(c, "  please type s, h, b, f or p\n"); break;
        }
    }
}

/* ---- entry ----------------------------------------------------------------------------------- */

/* The host resolved and range-checked the options (refresh in [0.05, 10]); the
 * host API members used here are of version 1, and nearest of version 3. */
static tb_status run(const tb_host_api *host, const tb_study_api *study, const tb_plugin_args *args, char *err,
                     size_t errlen)
{
    if (!err || errlen == 0) return TB_EINVAL;
    err[0] = '\0';
    if (!host || !HAS_MEMBER(host, tb_host_api, nearest) || !host->nearest) {
        snprintf(err, errlen, "the host API (version %u) is too old for the cli front end (needs version 3)",
                 host ? (unsigned)host->version : 0u);
        return TB_EINVAL;
    }
    if (!study || study->version < 1 || !HAS_MEMBER(study, tb_study_api, take_interrupt) || !study->take_interrupt) {
        snprintf(err, errlen, "the study API (version %u, size %u) is too old for the cli front end (needs version "
                 "%d, size %zu)", study ? (unsigned)study->version : 0u, study ? (unsigned)study->size : 0u,
                 TB_STUDY_API_VERSION, sizeof(tb_study_api));
        return TB_EINVAL;
    }
    cli *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return TB_ENOMEM;
    }
    c->host = host;
    c->api = study;
    c->s = study->study;
    c->err = err;
    c->errlen = errlen;
    const char *script = host->arg_string(args, "script");
    const char *output = host->arg_string(args, "output");
    if (!script) script = "";
    if (!output) output = "";
    c->refresh_ms = (int)(host->arg_float(args, "refresh") * 1000 + 0.5);
    tb_status s = TB_OK;

    if (*output) {
        c->out = fopen(output, "a");
        if (!c->out) {
            s = fail(c, TB_EIO, "cli.output %s: %s", output, strerror(errno));
            goto done;
        }
    } else c->out = stdout;
    c->interactive = !*script;
    if (!*script || !strcmp(script, "-")) {
        c->in = stdin;
        c->where = "stdin";
    } else {
        c->in = fopen(script, "r");
        if (!c->in) {
            s = fail(c, TB_EIO, "cli.script %s: %s", script, strerror(errno));
            goto done;
        }
        c->where = script;
    }
    c->redraw = c->interactive && isatty(fileno(c->out));

    for (int i = 0; i < HP_N; i++) {
        if (study->hp_info(c->s, i, &c->hp[i]) != 0 || !c->hp[i].name) {
            s = fail(c, TB_EINVAL, "the study does not describe hyperparameter %d of %d", i + 1, HP_N);
            goto done;
        }
    }
    c->idx_batch = hp_find(c, "batch_size");
    c->idx_loss = hp_find(c, "loss");
    c->idx_opt = hp_find(c, "optimizer");
    c->idx_lr = hp_find(c, "lr");
    int split_failed = list_split(&c->comments, study->comments(c->s)) != 0 ||
                       list_split(&c->education, study->education_levels(c->s)) != 0;
    for (int i = 0; i < HP_N && !split_failed; i++)
        if (c->hp[i].type == 3) split_failed = list_split(&c->choices[i], c->hp[i].choices) != 0;
    if (split_failed) {
        s = fail(c, TB_ENOMEM, "out of memory");
        goto done;
    }
    s = c->interactive ? run_interactive(c) : run_script(c);
    if (s == TB_OK) c->line = 0; /* later errors are not the script's */
    pause_left_active(c);
    if (s == TB_OK && ferror(c->out)) s = fail(c, TB_EIO, "cannot write to %s", *output ? output : "stdout");
done:
    if (c->out) fflush(c->out);
    if (c->out && c->out != stdout && fclose(c->out) != 0 && s == TB_OK)
        s = fail(c, TB_EIO, "cannot write to %s", output);
    if (c->in && c->in != stdin) fclose(c->in);
    list_free(&c->comments);
    list_free(&c->education);
    for (int i = 0; i < HP_N; i++) list_free(&c->choices[i]);
    free(c->buf);
    free(c);
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
    .description = "the participant's flow in a terminal: prompts, live progress, Ctrl-C cancels a run; "
                   "or scripted from a file or stdin",
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .frontend = &frontend,
};

TB_PLUGIN_DEFINE_ENTRY(descriptor)
