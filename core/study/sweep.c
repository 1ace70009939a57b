/* sweep.c: random search, grids, seeds and folds through an executor (see sweep.h). */
#include "sweep.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/h5util.h"
#include "run/run.h"
#include "hparam_space.h"

const char *tb_sweep_kind_name(tb_sweep_kind k)
{
    switch (k) {
    case TB_SWEEP_RANDOM: return "random";
    case TB_SWEEP_GRID: return "grid";
    case TB_SWEEP_REPEAT: return "repeat";
    case TB_SWEEP_FOLDS: return "folds";
    }
    return "unknown";
}

/* ---- text lists ------------------------------------------------------------------------ */

/* Appends one line to *text (malloc'd, grows); failures to allocate drop the line. */
static void add_line(char **text, const char *line)
{
    size_t old = *text ? strlen(*text) : 0, n = strlen(line);
    char *p = realloc(*text, old + n + 2);
    if (!p) return;
    memcpy(p + old, line, n);
    p[old + n] = '\n';
    p[old + n + 1] = '\0';
    *text = p;
}

static char *trimmed_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- configurations ---------------------------------------------------------------------- */

/* The sections a run reads (run.h); a study configuration's others stay out. */
static int is_run_section(const tb_config *cfg, const char *sec)
{
    static const char *const fixed[] = {"model", "task", "train", "output", "plugins"};
    for (size_t i = 0; i < TB_ARRAY_LEN(fixed); i++)
        if (!strcasecmp(sec, fixed[i])) return 1;
    const char *model = tb_config_get(cfg, "model", "name"), *task = tb_config_get(cfg, "task", "name");
    return (model && !strcasecmp(sec, model)) || (task && !strcasecmp(sec, task));
}

tb_status tb_run_sections_ini(const tb_config *cfg, char **out, tb_err *err)
{
    *out = NULL;
    const int study = tb_config_has_section(cfg, "study") || tb_config_has_section(cfg, "space");
    tb_config *b = tb_config_new();
    if (!b) return tb_fail(err, TB_ENOMEM, "out of memory");
    const char *secs[256];
    int nsec = tb_config_sections(cfg, secs, 256);
    if (nsec > 256) nsec = 256;
    tb_status st = TB_OK;
    for (int s = 0; s < nsec && st == TB_OK; s++) {
        if (study && !is_run_section(cfg, secs[s])) continue;
        const char *keys[512];
        int nk = tb_config_keys(cfg, secs[s], keys, 512);
        if (nk > 512) nk = 512;
        for (int k = 0; k < nk && st == TB_OK; k++) {
            /* set per run: concurrent runs would overwrite one file (each run file holds the weights anyway) */
            if (!strcasecmp(secs[s], "output") && (!strcasecmp(keys[k], "run") || !strcasecmp(keys[k], "checkpoint")))
                continue;
            char key[300];
            snprintf(key, sizeof key, "%s.%s", secs[s], keys[k]);
            st = tb_config_set(b, key, tb_config_get(cfg, secs[s], keys[k]), err);
        }
    }
    if (st == TB_OK && !(*out = tb_config_to_ini(b))) st = tb_fail(err, TB_ENOMEM, "out of memory");
    tb_config_free(b);
    return st;
}

/* base + keys[i] = values[i] + folds, parsed once into *cfg (the caller's)
 * and, when out is not NULL, written as INI text (malloc'd in *out). */
static tb_status run_config(const char *base, int n, char *const *keys, char *const *values, int folds, int fold,
                            const int64_t *seed, tb_config **cfg, char **out, tb_err *err)
{
    *cfg = NULL;
    if (out) *out = NULL;
    tb_config *c = NULL;
    tb_status st = tb_config_load_text(&c, base, "sweep", err);
    for (int i = 0; i < n && st == TB_OK; i++) st = tb_config_set(c, keys[i], values[i], err);
    char v[32];
    if (st == TB_OK && folds > 0) {
        snprintf(v, sizeof v, "%d", folds);
        st = tb_config_set(c, "task.folds", v, err);
        snprintf(v, sizeof v, "%d", fold);
        if (st == TB_OK) st = tb_config_set(c, "task.fold", v, err);
    }
    if (st == TB_OK && seed) {
        snprintf(v, sizeof v, "%lld", (long long)*seed);
        st = tb_config_set(c, "train.seed", v, err);
    }
    if (st == TB_OK && out && !(*out = tb_config_to_ini(c))) st = tb_fail(err, TB_ENOMEM, "out of memory");
    if (st != TB_OK) {
        tb_config_free(c);
        return st;
    }
    *cfg = c;
    return TB_OK;
}

/* tb_run_configure's checks on a parsed configuration: everything checkable without data. */
static tb_status check_config(const tb_config *cfg, tb_err *err)
{
    tb_run_config rc;
    tb_status st = tb_run_config_parse(&rc, cfg, err);
    return st == TB_OK ? tb_run_config_check(&rc, err) : st;
}

/* Whether word occurs in text on its own, not inside a longer name ("lr" in
 * "lr_decay", "train.lr" in "train.lr_decay"); with tail, followed by it. */
static int has_word(const char *text, const char *word, const char *tail)
{
    const size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        const char before = p > text ? p[-1] : ' ', after = p[n];
        if (isalnum((unsigned char)before) || before == '_' || before == '.') continue;
        if (tail ? strncmp(p + n, tail, strlen(tail)) != 0 : isalnum((unsigned char)after) || after == '_') continue;
        return 1;
    }
    return 0;
}

/* Whether an error message names key ("train.lr"), as the configuration's
 * checks write it or as the optimizer's do ("[train] adam: lr = -5 ..."). */
static int names_key(const char *msg, const char *key)
{
    if (has_word(msg, key, NULL)) return 1;
    const char *dot = strchr(key, '.');
    char sec[160];
    if (!dot || snprintf(sec, sizeof sec, "[%.*s]", (int)(dot - key), key) >= (int)sizeof sec) return 0;
    return strstr(msg, sec) && has_word(msg, dot + 1, " =");
}

/* ---- plans -------------------------------------------------------------------------------- */

void tb_sweep_free(tb_sweep *sw)
{
    if (!sw) return;
    for (int i = 0; sw->runs && i < sw->n_runs; i++) {
        tb_sweep_run *r = &sw->runs[i];
        if (r->values)
            for (int k = 0; k < sw->n_keys; k++) free(r->values[k]);
        free(r->values);
        free(r->ini);
        tb_config_free(r->cfg);
    }
    free(sw->runs);
    for (int k = 0; k < sw->n_keys; k++) free(sw->keys[k]);
    free(sw->keys);
    free(sw->base_ini);
    free(sw->command_line);
    memset(sw, 0, sizeof *sw);
}

int tb_sweep_runs_per_config(const tb_sweep *sw)
{
    return (sw->seeds > 0 ? sw->seeds : 1) * (sw->folds > 0 ? sw->folds : 1);
}

static tb_status plan_begin(tb_sweep *sw, tb_sweep_kind kind, const tb_config *cfg, int folds, int n_configs,
                            int seeds, int n_keys, tb_err *err)
{
    memset(sw, 0, sizeof *sw);
    sw->kind = kind;
    sw->created_s = tb_utc_now();
    if (folds == 1 || folds < 0 || folds > 100)
        return tb_fail(err, TB_EINVAL, "--folds = %d is outside [2, 100] (0: no folds)", folds);
    const int per = folds > 0 ? folds : 1;
    const int64_t total = (int64_t)n_configs * seeds * per;
    if (n_configs < 1 || seeds < 1 || total > TB_SWEEP_MAX_RUNS)
        return tb_fail(err, TB_EINVAL, "the sweep has %lld runs; allowed: 1 to %d", (long long)total,
                       TB_SWEEP_MAX_RUNS);
    sw->folds = folds;
    sw->seeds = seeds;
    sw->n_configs = n_configs;
    /* each configuration's first seed; repeat's --first-seed replaces it */
    int64_t seed = 0;
    tb_config_int(cfg, "train", "seed", 0, 0, INT64_MAX, &seed, NULL); /* a bad one: the check names it */
    sw->first_seed = seed;
    tb_status st = tb_run_sections_ini(cfg, &sw->base_ini, err);
    if (st != TB_OK) return st;
    /* counts only once their arrays exist: tb_sweep_free walks them */
    sw->runs = calloc((size_t)total, sizeof *sw->runs);
    sw->keys = n_keys ? calloc((size_t)n_keys, sizeof *sw->keys) : NULL;
    if (!sw->runs || (n_keys && !sw->keys)) return tb_fail(err, TB_ENOMEM, "out of memory");
    sw->n_runs = (int)total;
    sw->n_keys = n_keys;
    const int rpc = tb_sweep_runs_per_config(sw);
    for (int i = 0; i < sw->n_runs; i++) {
        tb_sweep_run *r = &sw->runs[i];
        r->config = i / rpc;
        r->fold = folds > 0 ? i % per : -1;
        r->status = TB_RUN_QUEUED;
        r->val_accuracy = r->val_loss = r->test_accuracy = NAN;
        if (n_keys && !(r->values = calloc((size_t)n_keys, sizeof *r->values)))
            return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    return TB_OK;
}

/* Fills run texts from the values of each configuration's first run (copied
 * to its other runs); repeat sets train.seed. A run's seed is known without
 * reading its text back: first_seed (+ i for repeat), or a grid's train.seed. */
static tb_status plan_texts(tb_sweep *sw, tb_err *err)
{
    const int rpc = tb_sweep_runs_per_config(sw), per = sw->folds > 0 ? sw->folds : 1;
    int seed_key = -1;
    for (int k = 0; k < sw->n_keys; k++)
        if (!strcmp(sw->keys[k], "train.seed")) seed_key = k;
    for (int i = 0; i < sw->n_runs; i++) {
        tb_sweep_run *r = &sw->runs[i], *first = &sw->runs[i - i % rpc];
        for (int k = 0; k < sw->n_keys && r != first; k++)
            if (!(r->values[k] = strdup(first->values[k]))) return tb_fail(err, TB_ENOMEM, "out of memory");
        int64_t seed = sw->first_seed + (i % rpc) / per;
        tb_status st = run_config(sw->base_ini, sw->n_keys, sw->keys, r->values, sw->folds, r->fold < 0 ? 0 : r->fold,
                                  sw->kind == TB_SWEEP_REPEAT ? &seed : NULL, &r->cfg, &r->ini, err);
        if (st != TB_OK) return st;
        if (seed_key >= 0) seed = strtoll(r->values[seed_key], NULL, 10); /* a bad value: the check names it */
        r->seed = seed;
    }
    return TB_OK;
}

/* Checks each configuration (its first run); lists every failure. */
static tb_status check_configs(tb_sweep *sw, char **problems, tb_err *err)
{
    const int rpc = tb_sweep_runs_per_config(sw);
    int bad = 0;
    tb_err first = {{0}};
    for (int c = 0; c < sw->n_configs; c++) {
        const tb_sweep_run *r = &sw->runs[c * rpc];
        tb_err e;
        if (check_config(r->cfg, &e) == TB_OK) continue;
        char line[900];
        int k = snprintf(line, sizeof line, "configuration %d", c);
        for (int j = 0; j < sw->n_keys && k < (int)sizeof line; j++)
            k += snprintf(line + k, sizeof line - (size_t)k, "%s%s=%s", j ? ", " : " (", sw->keys[j], r->values[j]);
        if (sw->n_keys && k < (int)sizeof line) k += snprintf(line + k, sizeof line - (size_t)k, ")");
        if (k < (int)sizeof line) snprintf(line + k, sizeof line - (size_t)k, ": %s", e.msg);
        if (problems) add_line(problems, line);
        if (!bad++) tb_copy_str(first.msg, sizeof first.msg, line);
    }
    if (bad)
        return tb_fail(err, TB_EINVAL, "%d of %d configurations are invalid; the first: %s", bad, sw->n_configs,
                       first.msg);
    return TB_OK;
}

tb_status tb_sweep_plan_random(tb_sweep *sw, const tb_config *cfg, int n, uint64_t search_seed, int folds,
                               char **problems, tb_err *err)
{
    if (problems) *problems = NULL;
    if (n < 1 || n > TB_SWEEP_MAX_RUNS) {
        memset(sw, 0, sizeof *sw);
        return tb_fail(err, TB_EINVAL, "--random = %d is outside [1, %d]", n, TB_SWEEP_MAX_RUNS);
    }
    tb_status st = plan_begin(sw, TB_SWEEP_RANDOM, cfg, folds, n, 1, TB_HP_COUNT, err);
    if (st != TB_OK) return st;
    sw->search_seed = search_seed;
    tb_space space;
    if ((st = tb_space_load(&space, cfg, err)) != TB_OK) return st;
    for (int k = 0; k < TB_HP_COUNT; k++) {
        char key[64];
        snprintf(key, sizeof key, "train.%s", tb_hp_names[k]);
        if (!(sw->keys[k] = strdup(key))) return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    const int rpc = tb_sweep_runs_per_config(sw);
    for (int c = 0; c < n; c++) {
        tb_hp_values v;
        tb_space_sample(&space, search_seed, (uint64_t)c, &v);
        for (int k = 0; k < TB_HP_COUNT; k++)
            if (!(sw->runs[c * rpc].values[k] = strdup(v.text[k]))) return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    if ((st = plan_texts(sw, err)) != TB_OK) return st;
    return check_configs(sw, problems, err);
}

typedef struct axis {
    char *key;
    int n;
    char **values;
} axis;

static void axes_free(axis *ax, int n)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < ax[i].n; k++) free(ax[i].values[k]);
        free(ax[i].values);
        free(ax[i].key);
    }
    free(ax);
}

/* "section.key=v1,v2" into ax (key lowercased). */
static tb_status parse_axis(const char *spec, axis *ax, tb_err *err)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return tb_fail(err, TB_EINVAL, "--grid \"%s\": expected section.key=value1,value2,...", spec);
    if (!(ax->key = trimmed_dup(spec, (size_t)(eq - spec)))) return tb_fail(err, TB_ENOMEM, "out of memory");
    for (char *p = ax->key; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    if (!strchr(ax->key, '.') || ax->key[0] == '.' || ax->key[strlen(ax->key) - 1] == '.')
        return tb_fail(err, TB_EINVAL, "--grid \"%s\": the key \"%s\" is not of the form section.key (e.g. train.lr)",
                       spec, ax->key);
    const char *p = eq + 1;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *v = trimmed_dup(p, len);
        if (!v) return tb_fail(err, TB_ENOMEM, "out of memory");
        if (!*v) {
            free(v);
            return tb_fail(err, TB_EINVAL, "--grid %s: an empty value in \"%s\"; give value1,value2,...", ax->key,
                           eq + 1);
        }
        for (int k = 0; k < ax->n; k++)
            if (!strcmp(ax->values[k], v)) {
                tb_fail(err, TB_EINVAL, "--grid %s: the value '%s' is given twice", ax->key, v);
                free(v);
                return TB_EINVAL;
            }
        char **nv = realloc(ax->values, sizeof *nv * (size_t)(ax->n + 1));
        if (!nv) {
            free(v);
            return tb_fail(err, TB_ENOMEM, "out of memory");
        }
        ax->values = nv;
        ax->values[ax->n++] = v;
        if (!comma) break;
        p = comma + 1;
    }
    return TB_OK;
}

tb_status tb_sweep_plan_grid(tb_sweep *sw, const tb_config *cfg, int n_axes, const char *const *axes, int folds,
                             char **problems, tb_err *err)
{
    if (problems) *problems = NULL;
    memset(sw, 0, sizeof *sw);
    if (n_axes < 1) return tb_fail(err, TB_EINVAL, "a grid needs at least one --grid section.key=v1,v2,...");
    axis *ax = calloc((size_t)n_axes, sizeof *ax);
    if (!ax) return tb_fail(err, TB_ENOMEM, "out of memory");
    tb_status st = TB_OK;
    int64_t total = 1;
    for (int i = 0; i < n_axes && st == TB_OK; i++) {
        st = parse_axis(axes[i], &ax[i], err);
        for (int j = 0; j < i && st == TB_OK; j++)
            if (!strcmp(ax[i].key, ax[j].key))
                st = tb_fail(err, TB_EINVAL, "--grid %s is given twice; put all its values in one --grid", ax[i].key);
        if (st == TB_OK && (total *= ax[i].n) > TB_SWEEP_MAX_RUNS)
            st = tb_fail(err, TB_EINVAL, "the grid has more than %d points", TB_SWEEP_MAX_RUNS);
    }
    if (st == TB_OK) st = plan_begin(sw, TB_SWEEP_GRID, cfg, folds, (int)total, 1, n_axes, err);
    for (int i = 0; i < n_axes && st == TB_OK; i++)
        if (!(sw->keys[i] = strdup(ax[i].key))) st = tb_fail(err, TB_ENOMEM, "out of memory");

    /* the points, in order: the last axis varies fastest */
    const int per = st == TB_OK ? tb_sweep_runs_per_config(sw) : 1;
    for (int c = 0; c < sw->n_configs && st == TB_OK; c++) {
        int rest = c;
        for (int i = n_axes - 1; i >= 0 && st == TB_OK; i--) {
            if (!(sw->runs[c * per].values[i] = strdup(ax[i].values[rest % ax[i].n])))
                st = tb_fail(err, TB_ENOMEM, "out of memory");
            rest /= ax[i].n;
        }
    }
    if (st == TB_OK) st = plan_texts(sw, err);

    /* Each value on the configuration alone first: when that fails naming
     * its key, the value is bad whatever it is combined with and is reported
     * once. (When the configuration needs another axis to be complete, the
     * error names something else, and the points report it instead.) */
    int n_values = 0, bad_values = 0, bad_points = 0;
    for (int i = 0; i < n_axes; i++) n_values += ax[i].n;
    char *bad_value = calloc((size_t)n_values + 1, 1);
    if (st == TB_OK && !bad_value) st = tb_fail(err, TB_ENOMEM, "out of memory");
    tb_err first = {{0}};
    for (int i = 0, at = 0; i < n_axes && st == TB_OK; at += ax[i].n, i++)
        for (int k = 0; k < ax[i].n && st == TB_OK; k++) {
            tb_config *c = NULL;
            tb_err e;
            tb_status s = run_config(sw->base_ini, 1, &ax[i].key, &ax[i].values[k], folds, 0, NULL, &c, NULL, &e);
            if (s == TB_ENOMEM) st = tb_fail(err, s, "%s", e.msg);
            else if ((s != TB_OK || check_config(c, &e) != TB_OK) && names_key(e.msg, ax[i].key)) {
                char line[800];
                snprintf(line, sizeof line, "--grid %s: value '%s': %s", ax[i].key, ax[i].values[k], e.msg);
                if (problems) add_line(problems, line);
                if (!bad_values++) tb_copy_str(first.msg, sizeof first.msg, line);
                bad_value[at + k] = 1;
            }
            tb_config_free(c);
        }
    for (int c = 0; c < sw->n_configs && st == TB_OK; c++) {
        const tb_sweep_run *r = &sw->runs[c * per];
        int has_bad_value = 0, rest = c, at = n_values;
        for (int i = n_axes - 1; i >= 0; i--) {
            at -= ax[i].n;
            if (bad_value[at + rest % ax[i].n]) has_bad_value = 1;
            rest /= ax[i].n;
        }
        if (has_bad_value) continue; /* reported with its value */
        tb_err e;
        if (check_config(r->cfg, &e) == TB_OK) continue;
        char line[900];
        int k = snprintf(line, sizeof line, "grid point");
        for (int j = 0; j < n_axes && k < (int)sizeof line; j++)
            k += snprintf(line + k, sizeof line - (size_t)k, "%s%s=%s", j ? ", " : " ", sw->keys[j], r->values[j]);
        if (k < (int)sizeof line) snprintf(line + k, sizeof line - (size_t)k, ": %s", e.msg);
        if (problems) add_line(problems, line);
        if (!bad_values && !bad_points) tb_copy_str(first.msg, sizeof first.msg, line);
        bad_points++;
    }
    if (st == TB_OK && (bad_values || bad_points)) {
        if (bad_values && bad_points)
            st = tb_fail(err, TB_EINVAL, "%d grid value%s and %d grid point%s are invalid; the first: %s", bad_values,
                         bad_values == 1 ? "" : "s", bad_points, bad_points == 1 ? "" : "s", first.msg);
        else if (bad_values)
            st = tb_fail(err, TB_EINVAL, "%d grid value%s %s invalid; the first: %s", bad_values,
                         bad_values == 1 ? "" : "s", bad_values == 1 ? "is" : "are", first.msg);
        else
            st = tb_fail(err, TB_EINVAL, "%d of %d grid points are invalid; the first: %s", bad_points, sw->n_configs,
                         first.msg);
    }
    free(bad_value);
    axes_free(ax, n_axes);
    return st;
}

tb_status tb_sweep_plan_repeat(tb_sweep *sw, const tb_config *cfg, int seeds, int64_t first_seed, int folds,
                               char **problems, tb_err *err)
{
    if (problems) *problems = NULL;
    memset(sw, 0, sizeof *sw);
    if (seeds < 1 || seeds > TB_SWEEP_MAX_RUNS)
        return tb_fail(err, TB_EINVAL, "--seeds = %d is outside [1, %d]", seeds, TB_SWEEP_MAX_RUNS);
    if (first_seed < 0 || first_seed > INT64_MAX - seeds)
        return tb_fail(err, TB_EINVAL, "--first-seed = %lld is outside [0, %lld]", (long long)first_seed,
                       (long long)(INT64_MAX - seeds));
    tb_status st = plan_begin(sw, TB_SWEEP_REPEAT, cfg, folds, 1, seeds, 0, err);
    if (st != TB_OK) return st;
    sw->first_seed = first_seed;
    if ((st = plan_texts(sw, err)) != TB_OK) return st;
    return check_configs(sw, problems, err);
}

tb_status tb_sweep_plan_folds(tb_sweep *sw, const tb_config *cfg, int folds, char **problems, tb_err *err)
{
    if (problems) *problems = NULL;
    memset(sw, 0, sizeof *sw);
    if (folds < 2) return tb_fail(err, TB_EINVAL, "--folds = %d is outside [2, 100]", folds);
    tb_status st = plan_begin(sw, TB_SWEEP_FOLDS, cfg, folds, 1, 1, 0, err);
    if (st != TB_OK) return st;
    if ((st = plan_texts(sw, err)) != TB_OK) return st;
    return check_configs(sw, problems, err);
}

/* ---- statistics ---------------------------------------------------------------------------- */

void tb_sweep_stat_of(const double *v, int n, tb_sweep_stat *out)
{
    double sum = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) sum += v[i], m++;
    out->n = m;
    out->mean = m ? sum / m : NAN;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) ss += (v[i] - out->mean) * (v[i] - out->mean);
    out->sd = m > 1 ? sqrt(ss / (m - 1)) : NAN;
    out->se = m > 1 ? out->sd / sqrt((double)m) : NAN;
}

/* Over n runs; scratch: room for 3 n doubles (NULL: counts only, the statistics NaN). */
static void summarize_runs(const tb_sweep_run *runs, int n, double *scratch, tb_sweep_summary *out)
{
    memset(out, 0, sizeof *out);
    double *va = scratch, *vl = scratch ? scratch + n : NULL, *ta = scratch ? scratch + 2 * n : NULL;
    int m = 0;
    for (int i = 0; i < n; i++) {
        const tb_sweep_run *r = &runs[i];
        out->runs++;
        switch (r->status) {
        case TB_RUN_FINISHED: out->finished++; break;
        case TB_RUN_CANCELLED: out->cancelled++; break;
        case TB_RUN_DIVERGED: out->diverged++; break;
        case TB_RUN_INTERRUPTED: out->interrupted++; break;
        case TB_RUN_REJECTED: out->rejected++; break;
        default: out->queued++; break;
        }
        if (r->status == TB_RUN_FINISHED && scratch) {
            va[m] = r->val_accuracy, vl[m] = r->val_loss, ta[m] = r->test_accuracy;
            m++;
        }
    }
    tb_sweep_stat_of(va, m, &out->val_accuracy);
    tb_sweep_stat_of(vl, m, &out->val_loss);
    tb_sweep_stat_of(ta, m, &out->test_accuracy);
}

void tb_sweep_summarize(const tb_sweep *sw, int config, tb_sweep_summary *out)
{
    /* runs are stored configuration by configuration: a configuration is a slice */
    const int rpc = tb_sweep_runs_per_config(sw);
    const int first = config < 0 ? 0 : config * rpc;
    const int n = config < 0 ? sw->n_runs : config < sw->n_configs ? rpc : 0;
    double *scratch = malloc(sizeof(double) * 3 * (size_t)(n + 1));
    summarize_runs(sw->runs + first, n, scratch, out);
    free(scratch);
}

/* ---- the results file ------------------------------------------------------------------------ */

static void write_stat(tb_h5_writer *w, hid_t loc, const char *prefix, const tb_sweep_stat *s)
{
    char name[96];
    snprintf(name, sizeof name, "%s_mean", prefix);
    tb_h5w_attr_f64(w, loc, name, s->mean);
    snprintf(name, sizeof name, "%s_sd", prefix);
    tb_h5w_attr_f64(w, loc, name, s->sd);
    snprintf(name, sizeof name, "%s_se", prefix);
    tb_h5w_attr_f64(w, loc, name, s->se);
}

/* HDF5 failures are recorded in w; out of memory is returned (TB_ENOMEM). */
static tb_status write_tables(tb_h5_writer *w, hid_t f, const tb_sweep *sw)
{
    const size_t n = (size_t)sw->n_runs, nc = (size_t)sw->n_configs;
    int oom = 0;
    char created[32];
    tb_iso_utc(sw->created_s, created);
    /* one scratch for the whole sweep's summary and then each configuration's */
    double *scratch = malloc(sizeof(double) * 3 * (n + 1));
    tb_sweep_summary all;
    summarize_runs(sw->runs, sw->n_runs, scratch, &all);
    tb_h5w_attr_str(w, f, "format", TB_SWEEP_FORMAT);
    tb_h5w_attr_i64(w, f, "schema_version", TB_SWEEP_SCHEMA_VERSION);
    tb_h5w_attr_str(w, f, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(w, f, "id", sw->id);
    tb_h5w_attr_str(w, f, "kind", tb_sweep_kind_name(sw->kind));
    tb_h5w_attr_str(w, f, "command_line", sw->command_line ? sw->command_line : "");
    tb_h5w_attr_i64(w, f, "search_seed", (int64_t)sw->search_seed);
    tb_h5w_attr_i64(w, f, "folds", sw->folds);
    tb_h5w_attr_i64(w, f, "seeds", sw->kind == TB_SWEEP_REPEAT ? sw->seeds : 0);
    tb_h5w_attr_i64(w, f, "first_seed", sw->kind == TB_SWEEP_REPEAT ? sw->first_seed : 0);
    tb_h5w_attr_str(w, f, "created", created);
    tb_h5w_attr_f64(w, f, "created_s", sw->created_s);
    tb_h5w_attr_str(w, f, "config_ini", sw->base_ini ? sw->base_ini : "");
    tb_h5w_attr_i64(w, f, "runs", all.runs);
    tb_h5w_attr_i64(w, f, "finished", all.finished);
    tb_h5w_attr_i64(w, f, "diverged", all.diverged);
    tb_h5w_attr_i64(w, f, "cancelled", all.cancelled);
    tb_h5w_attr_i64(w, f, "interrupted", all.interrupted);
    tb_h5w_attr_i64(w, f, "rejected", all.rejected);
    tb_h5w_attr_i64(w, f, "pending", all.queued);
    write_stat(w, f, "val_accuracy", &all.val_accuracy);
    write_stat(w, f, "val_loss", &all.val_loss);
    write_stat(w, f, "test_accuracy", &all.test_accuracy);

    /* /runs: one row per run */
    hid_t g = tb_h5w_group(w, f, "runs");
    if (g < 0 || !scratch) {
        tb_h5w_close_group(w, g);
        free(scratch);
        return scratch ? TB_EIO : TB_ENOMEM;
    }
    const char **s1 = calloc(n + 1, sizeof *s1), **s2 = calloc(n + 1, sizeof *s2), **s3 = calloc(n + 1, sizeof *s3);
    int64_t *i1 = calloc(n + 1, sizeof *i1), *i2 = calloc(n + 1, sizeof *i2), *i3 = calloc(n + 1, sizeof *i3);
    double *d = calloc(4 * (n + 1), sizeof *d);
    if (!s1 || !s2 || !s3 || !i1 || !i2 || !i3 || !d) {
        oom = 1;
        goto runs_done;
    }
    for (size_t i = 0; i < n; i++) {
        const tb_sweep_run *r = &sw->runs[i];
        s1[i] = r->run_id, s2[i] = tb_run_status_name(r->status), s3[i] = r->message;
        i1[i] = r->config, i2[i] = r->fold, i3[i] = r->seed;
        d[i] = r->val_accuracy, d[n + 1 + i] = r->val_loss, d[2 * (n + 1) + i] = r->test_accuracy;
        d[3 * (n + 1) + i] = r->seconds;
    }
    tb_h5w_column_str(w, g, "run_id", s1, n);
    tb_h5w_column_i64(w, g, "config", i1, n);
    tb_h5w_column_i64(w, g, "fold", i2, n);
    tb_h5w_column_i64(w, g, "seed", i3, n);
    tb_h5w_column_str(w, g, "status", s2, n);
    tb_h5w_column_f64(w, g, "val_accuracy", d, n);
    tb_h5w_column_f64(w, g, "val_loss", d + n + 1, n);
    tb_h5w_column_f64(w, g, "test_accuracy", d + 2 * (n + 1), n);
    tb_h5w_column_f64(w, g, "seconds", d + 3 * (n + 1), n);
    tb_h5w_column_str(w, g, "message", s3, n);
    for (int k = 0; k < sw->n_keys; k++) {
        for (size_t i = 0; i < n; i++) s1[i] = sw->runs[i].values[k];
        tb_h5w_column_str(w, g, sw->keys[k], s1, n);
    }
runs_done:
    tb_h5w_close_group(w, g);
    free(s2), free(s3), free(i2), free(i3);
    if (oom || !tb_h5w_ok(w)) {
        free(s1), free(i1), free(d), free(scratch);
        return oom ? TB_ENOMEM : TB_EIO;
    }

    /* /configs: one row per configuration, over its finished runs (folds or seeds) */
    g = tb_h5w_group(w, f, "configs");
    const char **sv = realloc(s1, (nc + 1) * sizeof *sv);
    if (sv) s1 = sv;
    int64_t *cnt = calloc(3 * (nc + 1), sizeof *cnt);
    double *st = calloc(9 * (nc + 1), sizeof *st);
    if (g < 0 || !sv || !cnt || !st) {
        oom = g >= 0;
        goto configs_done;
    }
    const int per = tb_sweep_runs_per_config(sw);
    for (size_t c = 0; c < nc; c++) {
        tb_sweep_summary s;
        summarize_runs(sw->runs + c * (size_t)per, per, scratch, &s);
        cnt[c] = (int64_t)c, cnt[nc + 1 + c] = s.runs, cnt[2 * (nc + 1) + c] = s.finished;
        const tb_sweep_stat *x[3] = {&s.val_accuracy, &s.val_loss, &s.test_accuracy};
        for (int m = 0; m < 3; m++) {
            st[(3 * m) * (nc + 1) + c] = x[m]->mean;
            st[(3 * m + 1) * (nc + 1) + c] = x[m]->sd;
            st[(3 * m + 2) * (nc + 1) + c] = x[m]->se;
        }
    }
    tb_h5w_column_i64(w, g, "config", cnt, nc);
    tb_h5w_column_i64(w, g, "runs", cnt + nc + 1, nc);
    tb_h5w_column_i64(w, g, "finished", cnt + 2 * (nc + 1), nc);
    static const char *const metric[3] = {"val_accuracy", "val_loss", "test_accuracy"};
    static const char *const what[3] = {"mean", "sd", "se"};
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 3; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s", metric[m], what[k]);
            tb_h5w_column_f64(w, g, name, st + (3 * m + k) * (nc + 1), nc);
        }
    for (int k = 0; k < sw->n_keys; k++) {
        for (size_t c = 0; c < nc; c++) s1[c] = sw->runs[c * (size_t)per].values[k];
        tb_h5w_column_str(w, g, sw->keys[k], s1, nc);
    }
configs_done:
    tb_h5w_close_group(w, g);
    free(s1), free(i1), free(d), free(cnt), free(st), free(scratch);
    return oom ? TB_ENOMEM : tb_h5w_ok(w) ? TB_OK : TB_EIO;
}

tb_status tb_sweep_write(const tb_sweep *sw, const char *path, tb_err *err)
{
    char tmp[1200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return tb_fail(err, TB_EINVAL, "sweep results path %s is too long", path);
    hid_t f = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    char why[128];
    if (f < 0) return tb_fail(err, TB_EIO, "sweep results %s: cannot create it%s", tmp, tb_h5_errno_suffix(errno, why));
    tb_h5_writer w;
    tb_h5w_init(&w, tmp);
    tb_status st = write_tables(&w, f, sw);
    tb_h5w_close_file(&w, f);
    if (st != TB_OK || !tb_h5w_ok(&w)) {
        unlink(tmp);
        /* "cannot write dataset /runs/val_accuracy in DIR/sweeps/s0001-grid.h5.tmp (reason)" */
        if (!tb_h5w_ok(&w)) return tb_h5w_finish(&w, err);
        return tb_fail(err, st, "sweep results %s: out of memory for the tables", tmp);
    }
    if (tb_rename_durable(tmp, path) != 0) {
        int e = errno; /* before unlink can change it */
        unlink(tmp);
        return tb_fail(err, TB_EIO, "sweep results %s: cannot put it in place: %s", path, strerror(e));
    }
    return TB_OK;
}

/* DIR/sweeps/sNNNN-kind.h5 with NNNN one more than any there. */
static tb_status new_sweep_id(tb_sweep *sw, const char *archive_dir, char *path, size_t cap, tb_err *err)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/sweeps", archive_dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tb_fail(err, TB_EIO, "cannot create %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return tb_fail(err, TB_EIO, "cannot list %s: %s", dir, strerror(errno));
    int last = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int k = 0, used = 0;
        if (sscanf(e->d_name, "s%d-%n", &k, &used) == 1 && used > 0 && k > last) last = k;
    }
    closedir(d);
    snprintf(sw->id, sizeof sw->id, "s%04d-%s", last + 1, tb_sweep_kind_name(sw->kind));
    if (snprintf(path, cap, "%s/%s.h5", dir, sw->id) >= (int)cap)
        return tb_fail(err, TB_EINVAL, "sweep results path under %s is too long", dir);
    return TB_OK;
}

/* ---- execution ----------------------------------------------------------------------------- */

#define WRITE_EVERY_S 2.0 /* the results file, while runs end; once more at the end */

typedef struct exec_ctx exec_ctx;

/* One run as the executor's threads see it. Only the sweep's thread touches
 * sw->runs during the sweep: the callbacks fill the outcome here (under mu),
 * and the sweep's thread copies it over when it takes the run off `ended`. */
typedef struct exec_run {
    exec_ctx *x;
    int index;
    tb_job *job;         /* valid while submitted && !ended */
    int submitted, ended;
    tb_run_status status;
    double val_accuracy, val_loss, test_accuracy, seconds;
    char message[256];
} exec_run;

struct exec_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    exec_run *er;
    int *ended;          /* indices of the runs that ended, in the order they did */
    int n_ended;
};

/* Under mu: e has ended. */
static void mark_ended(exec_run *e)
{
    e->ended = 1;
    e->job = NULL;
    e->x->ended[e->x->n_ended++] = e->index;
    pthread_cond_broadcast(&e->x->cv);
}

/* The last epoch's validation loss: the finished callback does not carry it. */
static int x_event(void *user, tb_job *job, const tb_train_event *ev)
{
    exec_run *e = user;
    if (ev->kind == TB_EVENT_EPOCH) {
        pthread_mutex_lock(&e->x->mu);
        e->val_loss = ev->val_loss;
        pthread_mutex_unlock(&e->x->mu);
    }
    return 0;
}

static void x_finished(void *user, tb_job *job, tb_run_status status, double val_accuracy, double test_accuracy,
                       const char *message)
{
    exec_run *e = user;
    pthread_mutex_lock(&e->x->mu);
    e->status = status;
    e->val_accuracy = val_accuracy;
    e->test_accuracy = test_accuracy;
    if (isnan(val_accuracy)) e->val_loss = NAN;
    /* job is NULL for a job never created */
    e->seconds = job && job->started_s > 0 ? job->ended_s - job->started_s : 0;
    tb_copy_str(e->message, sizeof e->message, message);
    mark_ended(e);
    pthread_mutex_unlock(&e->x->mu);
}

/* Cancels every run not ended (mutex held): they end "interrupted". */
static void interrupt_all(exec_ctx *x, int n_runs, tb_executor *ex, const char *why)
{
    for (int i = 0; i < n_runs; i++) {
        exec_run *e = &x->er[i];
        if (e->ended) continue;
        if (!e->submitted) {
            e->status = TB_RUN_INTERRUPTED;
            snprintf(e->message, sizeof e->message, "%s before it was submitted", why);
            mark_ended(e);
            continue;
        }
        /* the job is alive: its finished callback (which takes this mutex) has not returned */
        tb_executor_interrupt(ex, e->job, why);
    }
}

/* Copies run i's outcome from the executor's side into sw (mutex held). */
static void take_outcome(tb_sweep *sw, const exec_run *e)
{
    tb_sweep_run *r = &sw->runs[e->index];
    r->status = e->status;
    r->val_accuracy = e->val_accuracy;
    r->val_loss = e->val_loss;
    r->test_accuracy = e->test_accuracy;
    r->seconds = e->seconds;
    tb_copy_str(r->message, sizeof r->message, e->message);
}

tb_status tb_sweep_execute(tb_sweep *sw, tb_archive *a, tb_executor *ex, const atomic_int *interrupt,
                           tb_sweep_progress_fn progress, void *user, tb_err *err)
{
    char path[1300];
    tb_status st = new_sweep_id(sw, tb_archive_dir(a), path, sizeof path, err);
    if (st != TB_OK) return st;
    if ((st = tb_sweep_write(sw, path, err)) != TB_OK) return st;
    exec_ctx x = {0};
    x.er = calloc((size_t)sw->n_runs, sizeof *x.er);
    x.ended = calloc((size_t)sw->n_runs + 1, sizeof *x.ended);
    if (!x.er || !x.ended) {
        free(x.er);
        free(x.ended);
        return tb_fail(err, TB_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    tb_status result = TB_OK;
    tb_err first_err = {{0}};
    int stopped = 0;

    for (int i = 0; i < sw->n_runs; i++) {
        exec_run *e = &x.er[i];
        e->x = &x;
        e->index = i;
        e->val_accuracy = e->val_loss = e->test_accuracy = NAN;
    }
    for (int i = 0; i < sw->n_runs; i++) {
        exec_run *e = &x.er[i];
        tb_sweep_run *r = &sw->runs[i];
        if (interrupt && atomic_load(interrupt)) break;
        tb_job_callbacks inner = {.user = e, .event = x_event, .finished = x_finished}, out;
        tb_err e1;
        /* the job's text is the plan's; its run file is set on the job, not written into a copy of the text */
        st = tb_job_record(a, "sweep", NULL, r->ini, &inner, &out, r->run_id, NULL, &e1);
        if (st != TB_OK) {
            result = st;
            first_err = e1;
            break;
        }
        /* the plan's parse of the text goes with it (typed here; a configuration
         * that fails this is left to the job, which parses the text and says why) */
        tb_run_config conf;
        tb_config *cfg = r->cfg;
        r->cfg = NULL;
        if (cfg && tb_run_config_parse(&conf, cfg, &e1) != TB_OK) {
            tb_config_free(cfg);
            cfg = NULL;
        }
        tb_job *job = cfg ? tb_job_new_parsed(r->run_id, r->ini, cfg, &conf, TB_SWEEP_PRIORITY, &out)
                          : tb_job_new(r->run_id, r->ini, TB_SWEEP_PRIORITY, &out);
        if (job) {
            tb_job_run_file(a, r->run_id, job->run_path, sizeof job->run_path); /* fits: tb_job_record checked */
            tb_copy_str(job->cache_dir, sizeof job->cache_dir, sw->task_cache);
        }
        pthread_mutex_lock(&x.mu);
        e->submitted = 1;
        e->job = job;
        pthread_mutex_unlock(&x.mu);
        if (!job || (st = tb_executor_submit(ex, job, &e1)) != TB_OK) {
            if (!job) tb_fail(&e1, TB_ENOMEM, "out of memory");
            out.finished(out.user, NULL, TB_RUN_INTERRUPTED, NAN, NAN, e1.msg); /* ends the archive run */
            tb_job_free(job);
            result = job ? st : TB_ENOMEM;
            first_err = e1;
            break;
        }
    }

    /* Runs end on the executor's threads; this thread takes their outcomes,
     * tells `progress` and rewrites the file, with the mutex released for both. */
    int taken = 0, reported = 0, dirty = 0;
    double last_write = tb_now();
    pthread_mutex_lock(&x.mu);
    if (result != TB_OK) {
        interrupt_all(&x, sw->n_runs, ex, "interrupted: the sweep could not submit every run");
        stopped = 1;
    }
    for (;;) {
        if (!stopped && interrupt && atomic_load(interrupt)) {
            interrupt_all(&x, sw->n_runs, ex, "interrupted by the user");
            stopped = 1;
        }
        const int from = taken, to = x.n_ended;
        for (int k = from; k < to; k++) take_outcome(sw, &x.er[x.ended[k]]);
        taken = to;
        pthread_mutex_unlock(&x.mu);

        const int all = to == sw->n_runs;
        dirty |= to > from;
        if (dirty && (all || tb_now() - last_write >= WRITE_EVERY_S)) {
            tb_err e1;
            if (tb_sweep_write(sw, path, &e1) != TB_OK && result == TB_OK) {
                result = TB_EIO;
                first_err = e1;
            }
            last_write = tb_now();
            dirty = 0;
        }
        /* numbered among the runs that ran: one never submitted is not reported */
        for (int k = from; k < to && progress; k++)
            if (x.er[x.ended[k]].submitted) progress(user, sw, x.ended[k], ++reported);
        if (all) break;

        pthread_mutex_lock(&x.mu);
        if (x.n_ended == taken) {
            /* a signal handler cannot signal cv: look at *interrupt ten times a second */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&x.cv, &x.mu, &ts);
        }
    }
    /* the executor may still be freeing the last jobs; their callbacks are done */
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&x.mu);
    free(x.er);
    free(x.ended);
    if (result != TB_OK) return tb_fail(err, result, "%s", first_err.msg);
    if (stopped) return tb_fail(err, TB_ECANCELLED, "sweep %s interrupted; the runs that ended are recorded", sw->id);
    return TB_OK;
}
