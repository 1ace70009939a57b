/* tuner_sampler.c: the tuner's strategies as pure functions (see tuner_sampler.h). */
#include "tuner_sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- generator ------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void tn_rng_seed(tn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t tn_rng_next(tn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double tn_rng_uniform(tn_rng *r) { return (double)(tn_rng_next(r) >> 11) * 0x1.0p-53; }

double tn_rng_normal(tn_rng *r)
{
    double u1 = 1.0 - tn_rng_uniform(r), u2 = tn_rng_uniform(r); /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t tn_participant_seed(uint64_t seed, const char *strategy, int index)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the strategy's name */
    for (const char *p = strategy; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    uint64_t x = seed ^ h;
    x = splitmix64(&x) ^ (uint64_t)index;
    return splitmix64(&x);
}

/* ---- the space ------------------------------------------------------------------------------- */

int tn_reads(const tn_space *sp, int i, const char *optimizer)
{
    const char *list = sp->hp[i].readers;
    if (!list[0]) return 1;
    if (!optimizer) return 0;
    size_t n = strlen(optimizer);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, "|");
        if (len == n && strncasecmp(p, optimizer, n) == 0) return 1;
        p += len;
        if (*p) p++;
    }
    return 0;
}

int tn_free(const tn_space *sp, int i)
{
    const tn_hp *h = &sp->hp[i];
    return h->type == TN_CHOICE ? h->n_choices > 1 : h->hi > h->lo;
}

void tn_format(const tn_space *sp, int i, double x, char out[TN_TEXT])
{
    const tn_hp *h = &sp->hp[i];
    if (h->type == TN_CHOICE) {
        int k = (int)x;
        snprintf(out, TN_TEXT, "%s", k >= 0 && k < h->n_choices ? h->choice[k] : "");
        return;
    }
    if (h->type == TN_INT) {
        snprintf(out, TN_TEXT, "%lld", (long long)llround(x));
        return;
    }
    /* few digits for a readable archive, as long as the text stays in range */
    char text[32] = "";
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        double back = strtod(text, NULL);
        if (back >= h->lo && back <= h->hi) break;
    }
    memcpy(out, text, sizeof text);
}

int tn_parse(const tn_space *sp, int i, const char *text, double *x)
{
    const tn_hp *h = &sp->hp[i];
    if (!text || !*text) return -1;
    if (h->type == TN_CHOICE) {
        for (int k = 0; k < h->n_choices; k++)
            if (strcasecmp(text, h->choice[k]) == 0) {
                *x = k;
                return 0;
            }
        return -1;
    }
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v)) return -1;
    *x = v;
    return 0;
}

const char *tn_config_optimizer(const tn_space *sp, const tn_config *c)
{
    int o = sp->optimizer;
    if (o < 0 || !c->given[o]) return NULL;
    int k = (int)c->x[o];
    return k >= 0 && k < sp->hp[o].n_choices ? sp->hp[o].choice[k] : NULL;
}

/* ---- the shared rule: which hyperparameters a strategy chooses --------------------------------- */

typedef enum pick { PICK_PRESET, PICK_FIXED, PICK_CHOOSE } pick;

/* Whether hyperparameter i is chosen (PICK_CHOOSE), sent at its only value
 * (PICK_FIXED: mandatory, one value) or left at its preset, with the reason
 * written as the comment. Draws one uniform for an optional candidate. */
static pick what_to_do(const tn_space *sp, int i, const char *optimizer, double optional_p, tn_rng *r,
                       tn_config *out)
{
    const tn_hp *h = &sp->hp[i];
    if (h->mandatory) return tn_free(sp, i) ? PICK_CHOOSE : PICK_FIXED;
    if (!tn_reads(sp, i, optimizer)) {
        snprintf(out->source[i], TN_SOURCE, "preset (not read by %s)", optimizer ? optimizer : "the optimizer");
        return PICK_PRESET;
    }
    if (tn_free(sp, i) && optional_p > 0 && tn_rng_uniform(r) < optional_p) return PICK_CHOOSE;
    snprintf(out->source[i], TN_SOURCE, "preset");
    return PICK_PRESET;
}

static void set_fixed(const tn_space *sp, int i, tn_config *out)
{
    out->given[i] = 1;
    out->x[i] = sp->hp[i].type == TN_CHOICE ? 0 : sp->hp[i].lo;
    snprintf(out->source[i], TN_SOURCE, "fixed");
}

/* ---- random ---------------------------------------------------------------------------------- */

/* One value of hyperparameter i from its prior (the study's random search rule). */
static double draw_prior(const tn_hp *h, tn_rng *r)
{
    double u = tn_rng_uniform(r), v;
    if (h->type == TN_CHOICE) return floor(u * h->n_choices);
    if (h->type == TN_INT) {
        v = h->log ? floor(exp(log(h->lo) + u * (log(h->hi + 1) - log(h->lo)))) : h->lo + floor(u * (h->hi - h->lo + 1));
    } else {
        v = h->log ? exp(log(h->lo) + u * (log(h->hi) - log(h->lo))) : h->lo + u * (h->hi - h->lo);
    }
    return v < h->lo ? h->lo : v > h->hi ? h->hi : v;
}

static void choose_random(const tn_space *sp, int i, tn_rng *r, tn_config *out)
{
    out->given[i] = 1;
    out->x[i] = draw_prior(&sp->hp[i], r);
    snprintf(out->source[i], TN_SOURCE, "sampled");
}

/* The optimizer first (what the others depend on), then the rest in order. */
static void sample_each(const tn_space *sp, double optional_p, tn_rng *r, tn_config *out,
                        void (*choose)(const tn_space *, int, tn_rng *, tn_config *, void *), void *ctx)
{
    memset(out, 0, sizeof *out);
    int o = sp->optimizer;
    if (o >= 0) {
        pick p = what_to_do(sp, o, NULL, optional_p, r, out);
        if (p == PICK_CHOOSE) choose(sp, o, r, out, ctx);
        else if (p == PICK_FIXED) set_fixed(sp, o, out);
    }
    const char *opt = o >= 0 ? (out->given[o] ? tn_config_optimizer(sp, out) : sp->hp[o].preset) : NULL;
    for (int i = 0; i < TN_HP_N; i++) {
        if (i == o) continue;
        pick p = what_to_do(sp, i, opt, optional_p, r, out);
        if (p == PICK_CHOOSE) choose(sp, i, r, out, ctx);
        else if (p == PICK_FIXED) set_fixed(sp, i, out);
    }
}

static void choose_random_cb(const tn_space *sp, int i, tn_rng *r, tn_config *out, void *ctx)
{
    (void)ctx;
    choose_random(sp, i, r, out);
}

void tn_sample_random(const tn_space *sp, double optional_p, tn_rng *r, tn_config *out)
{
    sample_each(sp, optional_p, r, out, choose_random_cb, NULL);
}

/* ---- TPE ------------------------------------------------------------------------------------- */

/* Where a numeric hyperparameter is modelled: [a, b] in log space for log
 * ones; integers widened by half a step each side so each gets its share. */
static void model_bounds(const tn_hp *h, double *a, double *b)
{
    double lo = h->lo, hi = h->hi;
    if (h->type == TN_INT) lo -= 0.5, hi += 0.5;
    if (h->log && lo <= 0) lo = h->lo * 0.5; /* an integer range from 1: [0.5, hi + 0.5] */
    *a = h->log ? log(lo) : lo;
    *b = h->log ? log(hi) : hi;
}

static double to_model(const tn_hp *h, double x) { return h->log ? log(x) : x; }

static double from_model(const tn_hp *h, double t)
{
    double v = h->log ? exp(t) : t;
    if (h->type == TN_INT) v = floor(v + 0.5);
    return v < h->lo ? h->lo : v > h->hi ? h->hi : v;
}

/* A Parzen estimator on [a, b]: the prior (centre, width b - a) and one
 * Gaussian per observation, equal weights; each kernel's width is the larger
 * gap to its neighbours (the bounds at the ends), clipped to
 * [(b - a) / min(100, n + 1), b - a] (hyperopt's rule). */
typedef struct parzen {
    int n; /* kernels, the prior included */
    double *mu, *sigma, *mass; /* mass: the kernel's probability inside [a, b] */
    double a, b;
} parzen;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double phi_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

static int parzen_fit(parzen *p, const double *obs, int n, double a, double b)
{
    p->n = n + 1;
    p->a = a;
    p->b = b;
    p->mu = malloc(sizeof(double) * 3 * (size_t)p->n);
    if (!p->mu) return -1;
    p->sigma = p->mu + p->n;
    p->mass = p->sigma + p->n;
    memcpy(p->mu, obs, sizeof(double) * (size_t)n);
    qsort(p->mu, (size_t)n, sizeof(double), cmp_double);
    double width = b - a, min_sigma = width / (n + 1 < 100 ? n + 1 : 100);
    for (int i = 0; i < n; i++) {
        double left = p->mu[i] - (i > 0 ? p->mu[i - 1] : a), right = (i + 1 < n ? p->mu[i + 1] : b) - p->mu[i];
        double s = left > right ? left : right;
        p->sigma[i] = s < min_sigma ? min_sigma : s > width ? width : s;
    }
    p->mu[n] = 0.5 * (a + b);
    p->sigma[n] = width;
    for (int i = 0; i < p->n; i++)
        p->mass[i] = phi_cdf((b - p->mu[i]) / p->sigma[i]) - phi_cdf((a - p->mu[i]) / p->sigma[i]);
    return 0;
}

static void parzen_free(parzen *p) { free(p->mu); }

static double parzen_log_pdf(const parzen *p, double t)
{
    double sum = 0;
    for (int i = 0; i < p->n; i++) {
        double z = (t - p->mu[i]) / p->sigma[i];
        sum += exp(-0.5 * z * z) / (p->sigma[i] * 2.5066282746310002 * p->mass[i]);
    }
    return log(sum / p->n + 1e-300);
}

/* A draw from a kernel chosen uniformly, truncated to [a, b] by rejection. */
static double parzen_draw(const parzen *p, tn_rng *r)
{
    int k = (int)(tn_rng_uniform(r) * p->n);
    for (int tries = 0; tries < 64; tries++) {
        double t = p->mu[k] + p->sigma[k] * tn_rng_normal(r);
        if (t >= p->a && t <= p->b) return t;
    }
    return p->a + tn_rng_uniform(r) * (p->b - p->a);
}

/* The trials split at the gamma quantile: good[] marks the best
 * ceil(gamma * n) (at least 1, at most n - 1); ties keep the earlier trial. */
typedef struct tpe_ctx {
    const tn_trial *trials;
    int n;
    const int *good;
    const tn_tpe_opts *o;
    int failed; /* out of memory */
} tpe_ctx;

/* Observations of hyperparameter i in the good (want_good 1) or bad trials
 * that gave it, in model space (a choice: its index). */
static int observations(const tpe_ctx *c, const tn_space *sp, int i, int want_good, double *out)
{
    int m = 0;
    for (int t = 0; t < c->n; t++) {
        const tn_config *tc = &c->trials[t].c;
        if (c->good[t] != want_good || !tc->given[i]) continue;
        out[m++] = sp->hp[i].type == TN_CHOICE ? tc->x[i] : to_model(&sp->hp[i], tc->x[i]);
    }
    return m;
}

static void choose_tpe_choice(const tn_space *sp, int i, const double *good, int ng, const double *bad, int nb,
                              const tn_tpe_opts *o, tn_rng *r, tn_config *out)
{
    int k_n = sp->hp[i].n_choices;
    double l[TN_MAX_CHOICES], g[TN_MAX_CHOICES];
    for (int k = 0; k < k_n; k++) l[k] = g[k] = 1.0; /* one prior observation each */
    for (int j = 0; j < ng; j++) l[(int)good[j]] += 1;
    for (int j = 0; j < nb; j++) g[(int)bad[j]] += 1;
    double best_score = -INFINITY;
    int best = 0;
    for (int c = 0; c < o->candidates; c++) {
        double u = tn_rng_uniform(r) * (ng + k_n), acc = 0;
        int k = 0;
        while (k < k_n - 1 && (acc += l[k]) <= u) k++;
        double score = log(l[k] / (ng + k_n)) - log(g[k] / (nb + k_n));
        if (score > best_score) best_score = score, best = k;
    }
    out->x[i] = best;
}

static int choose_tpe_numeric(const tn_space *sp, int i, const double *good, int ng, const double *bad, int nb,
                              const tn_tpe_opts *o, tn_rng *r, tn_config *out)
{
    const tn_hp *h = &sp->hp[i];
    double a, b;
    model_bounds(h, &a, &b);
    parzen pl, pg;
    if (parzen_fit(&pl, good, ng, a, b) != 0) return -1;
    if (parzen_fit(&pg, bad, nb, a, b) != 0) {
        parzen_free(&pl);
        return -1;
    }
    double best_score = -INFINITY, best = from_model(h, pl.mu[pl.n - 1]);
    for (int c = 0; c < o->candidates; c++) {
        double v = from_model(h, parzen_draw(&pl, r)), t = to_model(h, v);
        double score = parzen_log_pdf(&pl, t) - parzen_log_pdf(&pg, t);
        if (score > best_score) best_score = score, best = v;
    }
    out->x[i] = best;
    parzen_free(&pl);
    parzen_free(&pg);
    return 0;
}

static void choose_tpe(const tn_space *sp, int i, tn_rng *r, tn_config *out, void *ctx)
{
    tpe_ctx *c = ctx;
    double *obs = malloc(sizeof(double) * 2 * (size_t)(c->n + 1));
    if (!obs) {
        c->failed = 1;
        choose_random(sp, i, r, out);
        return;
    }
    double *good = obs, *bad = obs + c->n + 1;
    int ng = observations(c, sp, i, 1, good), nb = observations(c, sp, i, 0, bad);
    out->given[i] = 1;
    snprintf(out->source[i], TN_SOURCE, "model");
    if (sp->hp[i].type == TN_CHOICE) choose_tpe_choice(sp, i, good, ng, bad, nb, c->o, r, out);
    else if (choose_tpe_numeric(sp, i, good, ng, bad, nb, c->o, r, out) != 0) {
        c->failed = 1;
        choose_random(sp, i, r, out);
    }
    free(obs);
}

/* good[t] 1 for the best ceil(gamma n) trials (1 <= that <= n - 1). */
static int split_good(const tn_trial *trials, int n, double gamma, int *good)
{
    int n_good = (int)ceil(gamma * n);
    if (n_good < 1) n_good = 1;
    if (n_good > n - 1) n_good = n - 1;
    for (int t = 0; t < n; t++) {
        int better = 0; /* trials ranked before t: higher score, or equal and earlier */
        for (int u = 0; u < n; u++)
            better += trials[u].score > trials[t].score || (trials[u].score == trials[t].score && u < t);
        good[t] = better < n_good;
    }
    return n_good;
}

void tn_sample_tpe(const tn_space *sp, const tn_trial *trials, int n, const tn_tpe_opts *o, tn_rng *r,
                   tn_config *out)
{
    int *good = n >= 2 && n >= o->startup ? malloc(sizeof(int) * (size_t)n) : NULL;
    if (!good) {
        tn_sample_random(sp, o->optional_p, r, out);
        return;
    }
    split_good(trials, n, o->gamma, good);
    tpe_ctx c = {.trials = trials, .n = n, .good = good, .o = o};
    sample_each(sp, o->optional_p, r, out, choose_tpe, &c);
    free(good);
}

/* ---- ASHA -------------------------------------------------------------------------------------- */

void tn_asha_init(tn_asha *a, int min_epochs, int eta, int max_epochs)
{
    memset(a, 0, sizeof *a);
    a->eta = eta;
    for (long e = min_epochs; e < max_epochs && a->n_rungs < TN_MAX_RUNGS; e *= eta) a->epoch[a->n_rungs++] = (int)e;
}

void tn_asha_free(tn_asha *a)
{
    for (int k = 0; k < TN_MAX_RUNGS; k++) free(a->score[k]);
    memset(a, 0, sizeof *a);
}

int tn_asha_rung_of(const tn_asha *a, int epoch)
{
    for (int k = 0; k < a->n_rungs; k++)
        if (a->epoch[k] == epoch) return k;
    return -1;
}

int tn_asha_decide(tn_asha *a, int k, double score)
{
    if (a->n[k] == a->cap[k]) {
        int cap = a->cap[k] ? 2 * a->cap[k] : 16;
        double *grown = realloc(a->score[k], sizeof(double) * (size_t)cap);
        if (!grown) return -1;
        a->score[k] = grown;
        a->cap[k] = cap;
    }
    a->score[k][a->n[k]++] = score;
    int better = 0;
    for (int j = 0; j < a->n[k]; j++) better += a->score[k][j] > score;
    int keep = a->n[k] / a->eta;
    return better < (keep < 1 ? 1 : keep);
}
