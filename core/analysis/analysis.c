/* analysis.c: the paper's analysis of an archive (docs/analysis.md): each
 * part computes its tables from tb_study_data with stats.h, draws its figure
 * and adds both to the report; a part whose data is missing says so in the
 * report's "Left out" list instead. Accuracies are shown in percent. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis.h"
#include "analysis/stats.h"
#include "analysis_internal.h"
#include "study/study.h"

/* Table 1 has 4 mandatory hyperparameters (epochs, batch_size, loss, optimizer);
 * the other 11 are optional and preset. */

/* ---- options and groups --------------------------------------------------------- */

void tb_analysis_opts_default(tb_analysis_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->group_by = TB_GROUP_DL_MONTHS;
    o->cuts[0] = 0;
    o->cuts[1] = 9;
    o->n_cuts = 2;
    o->thresholds[0] = 0.25;
    o->thresholds[1] = 0.5;
    o->n_thresholds = 2;
    o->bootstrap = 2000;
    o->seed = 1;
}

static const char *const group_by_names[] = {"dl_months", "programming_months", "education", "self_level"};

int tb_group_by_parse(const char *name, tb_group_by *out)
{
    for (int i = 0; i < (int)TB_ARRAY_LEN(group_by_names); i++)
        if (!strcmp(name, group_by_names[i])) {
            *out = (tb_group_by)i;
            return 0;
        }
    return -1;
}

const char *tb_group_by_name(tb_group_by g) { return group_by_names[g]; }

static double months_of(const tb_ad_participant *p, tb_group_by g)
{
    return g == TB_GROUP_PROGRAMMING_MONTHS ? p->programming_months : p->dl_months;
}

/* Labels of month groups: novice/medium/expert for the paper's two cuts, else ranges. */
static void month_group_names(const tb_analysis_opts *o, tb_grouping *g)
{
    int k = o->n_cuts;
    for (int i = 0; i <= k; i++) {
        char *n = g->names[i];
        size_t cap = sizeof(g->names[i]);
        if (i == 0)
            snprintf(n, cap, "%s%g mo", o->cuts[0] == 0 ? "" : "<= ", o->cuts[0]);
        else if (i == k)
            snprintf(n, cap, ">= %g mo", o->cuts[k - 1]);
        else if (i == 1 && o->cuts[0] == 0)
            snprintf(n, cap, "< %g mo", o->cuts[1]);
        else
            snprintf(n, cap, "%g to < %g mo", o->cuts[i - 1], o->cuts[i]);
    }
    if (k == 2 && o->group_by == TB_GROUP_DL_MONTHS) {
        char tmp[3][160]; /* room for the label and the range; cut to the name's size below */
        static const char *const paper[3] = {"novice", "medium", "expert"};
        for (int i = 0; i < 3; i++) snprintf(tmp[i], sizeof(tmp[i]), "%s (%s)", paper[i], g->names[i]);
        for (int i = 0; i < 3; i++) tb_copy_str(g->names[i], sizeof(g->names[i]), tmp[i]);
    }
    g->n_groups = k + 1;
}

static int month_group(const tb_analysis_opts *o, double x)
{
    if (isnan(x)) return -1;
    if (x <= o->cuts[0]) return 0;
    for (int i = 1; i < o->n_cuts; i++)
        if (x < o->cuts[i]) return i;
    return o->n_cuts;
}

/* The group named text, added when new; -1 when there is no room. */
static int named_group(tb_grouping *g, const char *text)
{
    for (int i = 0; i < g->n_groups; i++)
        if (!strcmp(g->names[i], text)) return i;
    if (g->n_groups >= TB_AN_MAX_GROUPS - 1) return -1; /* keep a slot for "machine" */
    tb_copy_str(g->names[g->n_groups], sizeof(g->names[0]), text);
    return g->n_groups++;
}

/* Named groups in a reader's order (levels ascending, education from high
 * school up), created before participants are placed; answers outside the
 * list follow in the order they appear. */
static void preset_named_groups(const tb_study_data *d, const tb_analysis_opts *o, tb_grouping *g)
{
    if (o->group_by == TB_GROUP_SELF_LEVEL) {
        for (int level = 1; level <= 10; level++)
            for (int p = 0; p < d->np; p++)
                if (!d->participants[p].machine && d->participants[p].self_level == level) {
                    char name[32];
                    snprintf(name, sizeof(name), "level %d", level);
                    named_group(g, name);
                    break;
                }
        return;
    }
    const char *all = TB_STUDY_EDUCATION;
    while (*all) {
        size_t len = strcspn(all, "|");
        for (int p = 0; p < d->np; p++)
            if (!d->participants[p].machine && strlen(d->participants[p].education) == len &&
                !strncmp(d->participants[p].education, all, len)) {
                named_group(g, d->participants[p].education);
                break;
            }
        all += len + (all[len] == '|');
    }
}

tb_status tb_analysis_group(const tb_study_data *d, const tb_analysis_opts *o, tb_grouping *g, tb_err *err)
{
    memset(g, 0, sizeof(*g));
    g->machine_group = -1;
    g->of = calloc(d->np > 0 ? (size_t)d->np : 1, sizeof(int));
    if (!g->of) return tb_fail(err, TB_ENOMEM, "out of memory grouping %d participants", d->np);
    int months = o->group_by == TB_GROUP_DL_MONTHS || o->group_by == TB_GROUP_PROGRAMMING_MONTHS;
    if (months) month_group_names(o, g);
    else preset_named_groups(d, o, g);
    for (int i = 0; i < d->np; i++) {
        const tb_ad_participant *p = &d->participants[i];
        char level[32];
        if (p->machine) {
            g->of[i] = -2; /* placed after the humans' groups */
        } else if (months) {
            g->of[i] = month_group(o, months_of(p, o->group_by));
        } else if (o->group_by == TB_GROUP_EDUCATION) {
            g->of[i] = p->education[0] ? named_group(g, p->education) : -1;
        } else {
            snprintf(level, sizeof(level), "level %d", p->self_level);
            g->of[i] = p->self_level > 0 ? named_group(g, level) : -1;
        }
    }
    for (int i = 0; i < d->np; i++) {
        if (g->of[i] != -2) continue;
        if (g->machine_group < 0) {
            g->machine_group = g->n_groups++;
            tb_copy_str(g->names[g->machine_group], sizeof(g->names[0]), "machine");
        }
        g->of[i] = g->machine_group;
    }
    return TB_OK;
}

void tb_grouping_free(tb_grouping *g)
{
    free(g->of);
    g->of = NULL;
}

/* ---- comments ----------------------------------------------------------------------- */

enum { AN_C_GUESS, AN_C_DEFAULT, AN_C_PAST, AN_C_LEARNT, AN_C_OTHER, AN_C_COUNT };
static const char *const comment_labels[AN_C_COUNT] = {"guess", "suggested default", "worked in the past",
                                                       "learnt from submissions", "other"};

/* Table 3's comment a text is (study.h's TB_STUDY_COMMENTS), AN_C_OTHER for free
 * text, -1 for none. */
static int comment_kind(const char *text)
{
    if (!text[0]) return -1;
    const char *all = TB_STUDY_COMMENTS;
    for (int k = 0; k < AN_C_OTHER; k++) {
        size_t len = strcspn(all, "|");
        if (strlen(text) == len && !strncmp(text, all, len)) return k;
        all += len + (all[len] == '|');
    }
    return AN_C_OTHER;
}

double tb_analysis_guess_share(const tb_study_data *d, int p)
{
    const tb_ad_participant *pp = &d->participants[p];
    int total = 0, guesses = 0;
    for (int s = pp->first_submission; s >= 0 && s < pp->first_submission + pp->n_submissions && s < d->ns; s++)
        for (int h = 0; h < TB_AD_HP; h++) {
            int k = comment_kind(d->subs[s].comments[h]);
            if (k < 0) continue;
            total++;
            guesses += k == AN_C_GUESS;
        }
    return total ? (double)guesses / total : NAN;
}

/* ---- per participant ---------------------------------------------------------------- */

typedef struct an_ctx {
    const tb_study_data *d;
    const tb_analysis_opts *o;
    tb_grouping g;
    an_report *r;
    char fig[1300]; /* the path of the figure being drawn */
} an_ctx;

static const char *fig_path(an_ctx *c, const char *name)
{
    snprintf(c->fig, sizeof(c->fig), "%s/figures/%s.svg", c->r->out_dir, name);
    return c->fig;
}

static const tb_ad_submission *sub_of(const tb_study_data *d, int p, int k)
{
    const tb_ad_participant *pp = &d->participants[p];
    int s = pp->first_submission + k;
    return k < pp->n_submissions && s >= 0 && s < d->ns ? &d->subs[s] : NULL;
}

/* A try is a submission that got a run (rejected ones never trained). */
static int is_try(const tb_ad_submission *s) { return s->run_id[0] != 0; }

/* Tries until a finished run's validation accuracy reached thr (1-based), or -1. */
static int tries_to_reach(const tb_study_data *d, int p, double thr)
{
    int tries = 0;
    for (int k = 0; k < d->participants[p].n_submissions; k++) {
        const tb_ad_submission *s = sub_of(d, p, k);
        if (!s || !is_try(s)) continue;
        tries++;
        if (!strcmp(s->status, "finished") && !isnan(s->val_accuracy) && s->val_accuracy >= thr) return tries;
    }
    return -1;
}

/* Best validation accuracy (percent) after each try, into best[0..max-1]; 0
 * until a try finishes; the last value carried on past the participant's last
 * try (they stopped there). Returns the participant's number of tries. */
static int best_so_far(const tb_study_data *d, int p, double *best, int max)
{
    int tries = 0;
    double b = 0;
    for (int k = 0; k < d->participants[p].n_submissions; k++) {
        const tb_ad_submission *s = sub_of(d, p, k);
        if (!s || !is_try(s)) continue;
        if (!strcmp(s->status, "finished") && !isnan(s->val_accuracy) && 100 * s->val_accuracy > b)
            b = 100 * s->val_accuracy;
        if (tries < max) best[tries] = b;
        tries++;
    }
    for (int t = tries; t < max; t++) best[t] = b;
    return tries;
}

static int n_tries(const tb_study_data *d, int p)
{
    int n = 0;
    for (int k = 0; k < d->participants[p].n_submissions; k++) {
        const tb_ad_submission *s = sub_of(d, p, k);
        n += s && is_try(s);
    }
    return n;
}

static int started_from_presets(const tb_study_data *d, int p)
{
    const tb_ad_submission *s = sub_of(d, p, 0);
    return s && s->presets_kept == TB_AD_HP - d->n_mandatory; /* every optional one the study had */
}

/* Seconds trained in finished runs, in cancelled (or otherwise ended) runs, and queued. */
static void time_used(const tb_study_data *d, int p, double *trained, double *cancelled, double *queued)
{
    *trained = *cancelled = *queued = 0;
    for (int k = 0; k < d->participants[p].n_submissions; k++) {
        const tb_ad_submission *s = sub_of(d, p, k);
        if (!s || !is_try(s)) continue;
        double t = isnan(s->training_s) ? 0 : s->training_s;
        if (!strcmp(s->status, "finished"))
            *trained += t;
        else
            *cancelled += t;
        if (!isnan(s->queued_s)) *queued += s->queued_s;
    }
}

static double experience(const an_ctx *c, int p)
{
    const tb_ad_participant *pp = &c->d->participants[p];
    switch (c->o->group_by) {
    case TB_GROUP_PROGRAMMING_MONTHS: return pp->programming_months;
    case TB_GROUP_SELF_LEVEL: return pp->self_level > 0 ? pp->self_level : NAN;
    default: return pp->dl_months;
    }
}

static const char *experience_label(const an_ctx *c)
{
    switch (c->o->group_by) {
    case TB_GROUP_PROGRAMMING_MONTHS: return "programming experience (months)";
    case TB_GROUP_SELF_LEVEL: return "self-rated level (1-5)";
    default: return "deep-learning experience (months)";
    }
}

static void participants_table(an_ctx *c)
{
    const tb_study_data *d = c->d;
    char cols[512] = "participant,group,machine,dl_months,programming_months,education,self_level,tries,"
                     "finals_finished,final_mean_pct,final_sd_pct,guess_share,started_from_presets,"
                     "trained_s,cancelled_s,queued_s,used_s";
    for (int t = 0; t < c->o->n_thresholds; t++) {
        size_t n = strlen(cols);
        snprintf(cols + n, sizeof(cols) - n, ",tries_to_%g", 100 * c->o->thresholds[t]);
    }
    an_table *t = an_table_new("participants", "Participants",
                               "One row per participant: background, tries, final accuracy over the final seeds "
                               "(percent), share of \"It is just a guess.\" comments, time used (seconds); "
                               "tries_to_X is empty when the threshold was never reached.",
                               cols);
    for (int p = 0; p < d->np; p++) {
        const tb_ad_participant *pp = &d->participants[p];
        double trained, cancelled, queued;
        time_used(d, p, &trained, &cancelled, &queued);
        an_table_text(t, pp->id);
        an_table_text(t, c->g.of[p] >= 0 ? c->g.names[c->g.of[p]] : "");
        an_table_num(t, pp->machine);
        an_table_num(t, pp->dl_months);
        an_table_num(t, pp->programming_months);
        an_table_text(t, pp->education);
        an_table_num(t, pp->self_level > 0 ? pp->self_level : NAN);
        an_table_num(t, n_tries(d, p));
        an_table_num(t, pp->finals_finished);
        an_table_num(t, 100 * pp->final_mean);
        an_table_num(t, 100 * pp->final_sd);
        an_table_num(t, tb_analysis_guess_share(d, p));
        an_table_num(t, started_from_presets(d, p));
        an_table_num(t, trained);
        an_table_num(t, cancelled);
        an_table_num(t, queued);
        an_table_num(t, pp->used_s);
        for (int k = 0; k < c->o->n_thresholds; k++) {
            int n = tries_to_reach(d, p, c->o->thresholds[k]);
            an_table_num(t, n > 0 ? n : NAN);
        }
    }
    an_report_table(c->r, t);
}

/* Final accuracies (percent) of group gi's participants with finals; returns the count. */
static int group_finals(const an_ctx *c, int gi, double *out)
{
    int n = 0;
    for (int p = 0; p < c->d->np; p++)
        if (c->g.of[p] == gi && !isnan(c->d->participants[p].final_mean))
            out[n++] = 100 * c->d->participants[p].final_mean;
    return n;
}

/* ---- final accuracy per group (HP1, HP2) ----------------------------------------------- */

static void groups_table(an_ctx *c, double **vals, int *sizes)
{
    an_table *t = an_table_new(
        "groups", "Final accuracy per group",
        "Final test accuracy (percent; each participant's mean over the final seeds) per group: mean, sample sd, "
        "standard error, median, range (the spread within the group, HP1) and a percentile bootstrap 95% CI of "
        "the mean.",
        "group,participants,with_finals,mean_pct,sd_pct,se_pct,median_pct,min_pct,max_pct,spread_pct,"
        "ci95_lo_pct,ci95_hi_pct");
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int members = 0;
        for (int p = 0; p < c->d->np; p++) members += c->g.of[p] == gi;
        tb_summary s = tb_summarize(vals[gi], sizes[gi]);
        double lo = NAN, hi = NAN;
        tb_err e;
        if (sizes[gi] >= 2 &&
            tb_bootstrap_mean_ci(vals[gi], sizes[gi], c->o->bootstrap, 0.95, c->o->seed + (uint64_t)gi, &lo, &hi,
                                 &e) != TB_OK)
            lo = hi = NAN;
        an_table_text(t, c->g.names[gi]);
        an_table_num(t, members);
        an_table_num(t, sizes[gi]);
        an_table_num(t, s.mean);
        an_table_num(t, s.sd);
        an_table_num(t, s.se);
        an_table_num(t, s.median);
        an_table_num(t, s.min);
        an_table_num(t, s.max);
        an_table_num(t, sizes[gi] ? s.max - s.min : NAN);
        an_table_num(t, lo);
        an_table_num(t, hi);
        if (sizes[gi])
            an_report_say(c->r, "group %s: n = %d, final accuracy %.1f +- %.1f %%", c->g.names[gi], sizes[gi],
                          s.mean, isnan(s.sd) ? 0 : s.sd);
    }
    an_report_table(c->r, t);
}

static void test_row(an_table *t, const char *a, const char *b, const char *center, const tb_test_result *res)
{
    an_table_text(t, a);
    an_table_text(t, b);
    an_table_text(t, center);
    an_table_num(t, res->n);
    an_table_num(t, res->statistic);
    an_table_num(t, res->df1);
    an_table_num(t, res->df2);
    an_table_num(t, res->p_value);
}

/* Levene (mean and median centred) between every pair of groups with >= 2 finals. */
static void levene_table(an_ctx *c, double **vals, int *sizes)
{
    an_table *t = an_table_new("levene", "Levene's test between every pair of groups",
                               "Equal variances of final accuracy? center=mean is Levene's test, center=median "
                               "Brown-Forsythe's (scipy.stats.levene); W with df1, df2; p two-sided.",
                               "group_a,group_b,center,n,W,df1,df2,p");
    for (int a = 0; a < c->g.n_groups; a++)
        for (int b = a + 1; b < c->g.n_groups; b++) {
            if (sizes[a] < 2 || sizes[b] < 2) continue;
            const double *pair[2] = {vals[a], vals[b]};
            int n2[2] = {sizes[a], sizes[b]};
            for (int median = 0; median <= 1; median++) {
                tb_test_result res;
                tb_err e;
                if (tb_levene(pair, n2, 2, median, &res, &e) != TB_OK) continue;
                test_row(t, c->g.names[a], c->g.names[b], median ? "median" : "mean", &res);
            }
        }
    if (an_table_rows(t) == 0) {
        an_report_left_out(c->r, "Levene's tests: fewer than two groups have two or more participants with finals");
        an_table_free(t);
        return;
    }
    an_report_table(c->r, t);
}

static void kruskal_table(an_ctx *c, double **vals, int *sizes)
{
    const double *gv[TB_AN_MAX_GROUPS];
    int gn[TB_AN_MAX_GROUPS], k = 0;
    char names[512] = "";
    size_t used = 0;
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        if (gi == c->g.machine_group || sizes[gi] < 1) continue;
        gv[k] = vals[gi];
        gn[k++] = sizes[gi];
        tb_appendf(names, sizeof(names), &used, "%s%s", used ? " | " : "", c->g.names[gi]);
    }
    tb_test_result res;
    tb_err e;
    if (k < 2) {
        an_report_left_out(c->r, "Kruskal-Wallis test: fewer than two groups of people have participants with finals");
        return;
    }
    if (tb_kruskal(gv, gn, k, &res, &e) != TB_OK) {
        an_report_left_out(c->r, "Kruskal-Wallis test: %s", e.msg);
        return;
    }
    an_table *t = an_table_new("kruskal", "Kruskal-Wallis test across the groups of people",
                               "Do the groups' final accuracies come from one distribution? H (tie-corrected) "
                               "with k - 1 degrees of freedom (scipy.stats.kruskal); machines are not a group here.",
                               "groups,n,H,df,p");
    an_table_text(t, names);
    an_table_num(t, res.n);
    an_table_num(t, res.statistic);
    an_table_num(t, res.df1);
    an_table_num(t, res.p_value);
    an_report_table(c->r, t);
    an_report_say(c->r, "Kruskal-Wallis across %d groups: H = %.3f, p = %.3g", k, res.statistic, res.p_value);
}

/* People (not machines) with a value of x and y: their Spearman row. */
static void spearman_row(an_ctx *c, an_table *t, const char *xname, const char *yname, double (*y_of)(an_ctx *, int))
{
    int n = 0;
    double *x = malloc(sizeof(double) * (size_t)(c->d->np + 1)), *y = malloc(sizeof(double) * (size_t)(c->d->np + 1));
    for (int p = 0; p < c->d->np; p++) {
        if (c->d->participants[p].machine) continue;
        double xv = experience(c, p), yv = y_of(c, p);
        if (isnan(xv) || isnan(yv)) continue;
        x[n] = xv;
        y[n++] = yv;
    }
    tb_test_result res;
    tb_err e;
    if (n < 3 || tb_spearman(x, y, n, &res, &e) != TB_OK) {
        an_report_left_out(c->r, "Spearman of %s and %s: %d participants have both (3 needed)", xname, yname, n);
    } else {
        an_table_text(t, xname);
        an_table_text(t, yname);
        an_table_num(t, res.n);
        an_table_num(t, res.statistic);
        an_table_num(t, res.p_value);
        an_report_say(c->r, "Spearman %s vs %s: rho = %.3f, p = %.3g (n = %d)", xname, yname, res.statistic,
                      res.p_value, n);
    }
    free(x);
    free(y);
}

static double final_pct(an_ctx *c, int p) { return 100 * c->d->participants[p].final_mean; }
static double guess_share(an_ctx *c, int p) { return tb_analysis_guess_share(c->d, p); }

static void spearman_table(an_ctx *c)
{
    an_table *t = an_table_new("spearman", "Spearman rank correlations with experience",
                               "Between the grouping field and each participant's final accuracy (percent), and "
                               "their share of \"It is just a guess.\" comments (scipy.stats.spearmanr; people only).",
                               "x,y,n,rho,p");
    const char *xname = tb_group_by_name(c->o->group_by);
    if (c->o->group_by == TB_GROUP_EDUCATION) xname = "dl_months"; /* education has no order */
    spearman_row(c, t, xname, "final_mean_pct", final_pct);
    spearman_row(c, t, xname, "guess_share", guess_share);
    if (an_table_rows(t))
        an_report_table(c->r, t);
    else
        an_table_free(t);
}

/* ---- figures of the groups -------------------------------------------------------------- */

static void experience_histogram(an_ctx *c)
{
    double *x = malloc(sizeof(double) * (size_t)(c->d->np + 1)), hi = 1;
    int n = 0;
    for (int p = 0; p < c->d->np; p++) {
        if (c->d->participants[p].machine || isnan(experience(c, p))) continue;
        x[n] = experience(c, p);
        if (x[n] > hi) hi = x[n];
        n++;
    }
    if (n == 0) {
        an_report_left_out(c->r, "experience histogram: no participant gave %s", experience_label(c));
        free(x);
        return;
    }
    int bins = 12;
    hi = ceil(hi * 1.0001 + 1e-9);
    double ymax = 0;
    for (int k = 0; k < bins; k++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) cnt += (int)fmin(floor(x[i] / (hi / bins)), bins - 1) == k;
        if (cnt > ymax) ymax = cnt;
    }
    char title[160];
    snprintf(title, sizeof(title), "Experience of the %d participants", n);
    an_plot_begin(fig_path(c, "experience_histogram"), title, experience_label(c), "participants", 0, hi, 0,
                  ymax + 1);
    an_plot_color(1);
    an_plot_hist(n, x, 0, hi, bins);
    an_plot_end();
    an_report_figure(c->r, "experience_histogram",
                     "How much experience the participants (people) bring: counts in 12 equal bins "
                     "(the paper's Fig. 3).");
    free(x);
}

/* Least-squares line of y on x. */
static void least_squares(const double *x, const double *y, int n, double *slope, double *icept)
{
    double mx = 0, my = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) mx += x[i] / n, my += y[i] / n;
    for (int i = 0; i < n; i++) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
    *slope = sxx > 0 ? sxy / sxx : 0;
    *icept = my - *slope * mx;
}

static void accuracy_scatter(an_ctx *c)
{
    int np = c->d->np, n = 0;
    double *x = malloc(sizeof(double) * (size_t)(np + 1)), *y = malloc(sizeof(double) * (size_t)(np + 1)), xmax = 1;
    for (int p = 0; p < np; p++) {
        if (c->d->participants[p].machine || isnan(experience(c, p)) || isnan(c->d->participants[p].final_mean))
            continue;
        x[n] = experience(c, p);
        y[n] = 100 * c->d->participants[p].final_mean;
        if (x[n] > xmax) xmax = x[n];
        n++;
    }
    if (n < 2) {
        an_report_left_out(c->r, "final accuracy against experience: %d participants have both (2 needed)", n);
        free(x), free(y);
        return;
    }
    tb_test_result res = {.statistic = NAN, .p_value = NAN};
    tb_err e;
    if (n >= 3 && tb_spearman(x, y, n, &res, &e) != TB_OK) res.statistic = res.p_value = NAN;
    char title[160];
    snprintf(title, sizeof(title), "Final accuracy against experience (Spearman rho %.2f, p %.2g)", res.statistic,
             res.p_value);
    an_plot_begin(fig_path(c, "accuracy_vs_experience"), title, experience_label(c), "final test accuracy (%)",
                  -0.03 * xmax, xmax * 1.05, 0, 105);
    an_plot_legend_low_right(1); /* accuracy rises with experience: the lower right is emptiest */
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int k = 0;
        double gx[np + 1], gy[np + 1];
        for (int p = 0, i = 0; p < np; p++) {
            if (c->d->participants[p].machine || isnan(experience(c, p)) || isnan(c->d->participants[p].final_mean))
                continue;
            if (c->g.of[p] == gi) gx[k] = x[i], gy[k++] = y[i];
            i++;
        }
        if (!k) continue;
        an_plot_color(gi + 1);
        an_plot_points(k, gx, gy);
        an_plot_legend(gi, gi + 1, c->g.names[gi]);
    }
    double slope, icept, lx[2] = {0, xmax * 1.05}, ly[2];
    least_squares(x, y, n, &slope, &icept);
    ly[0] = icept, ly[1] = icept + slope * lx[1];
    an_plot_color(0);
    an_plot_dashed_line(2, lx, ly);
    an_plot_end();
    an_report_figure(c->r, "accuracy_vs_experience",
                     "Each participant's final test accuracy (mean over the final seeds) against experience, "
                     "coloured by group; dashed: the least-squares line (the paper's Fig. 4).");
    free(x), free(y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quartile by linear interpolation (numpy's default), of sorted v. */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* One box (quartiles, median, whiskers to min/max) with the points jittered over it. */
static void box_at(double xc, double *v, int n, int series)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    double q1 = quantile(v, n, 0.25), q2 = quantile(v, n, 0.5), q3 = quantile(v, n, 0.75);
    double bx[5] = {xc - 0.2, xc + 0.2, xc + 0.2, xc - 0.2, xc - 0.2}, by[5] = {q1, q1, q3, q3, q1};
    an_plot_color(0);
    an_plot_line(5, bx, by);
    double mx[2] = {xc - 0.2, xc + 0.2}, my[2] = {q2, q2}, wx[2] = {xc, xc};
    double wy[2] = {v[0], q1}, wy2[2] = {q3, v[n - 1]};
    an_plot_line(2, mx, my);
    an_plot_line(2, wx, wy);
    an_plot_line(2, wx, wy2);
    double px[n], py[n];
    for (int i = 0; i < n; i++) px[i] = xc - 0.12 + 0.24 * ((i * 7919) % 101) / 100.0, py[i] = v[i];
    an_plot_color(series);
    an_plot_points(n, px, py);
}

static void group_boxes(an_ctx *c, double **vals, int *sizes)
{
    const char *labels[TB_AN_MAX_GROUPS];
    for (int gi = 0; gi < c->g.n_groups; gi++) labels[gi] = c->g.names[gi];
    an_plot_begin_categories(fig_path(c, "groups_box"), "Final accuracy per group", "final test accuracy (%)",
                             c->g.n_groups, labels, 0, 105);
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        if (!sizes[gi]) continue;
        double v[sizes[gi]];
        memcpy(v, vals[gi], sizeof(v));
        box_at(gi, v, sizes[gi], gi + 1);
    }
    an_plot_end();
    an_report_figure(c->r, "groups_box",
                     "Each participant's final accuracy as a point, over a box of the group's quartiles and median "
                     "with whiskers to the extremes (the paper's Fig. 5); machines, if any, as their own group.");
}

/* ---- tries ------------------------------------------------------------------------- */

static void tries_to_threshold(an_ctx *c)
{
    const tb_analysis_opts *o = c->o;
    an_table *t = an_table_new("tries_to_threshold", "Tries needed to reach an accuracy threshold",
                               "Per group and threshold: participants, how many reached it (validation accuracy of a "
                               "finished try, tries counted in submission order), and the tries they needed.",
                               "group,threshold_pct,participants,reached,mean_tries,sd_tries,median_tries");
    int ncat = c->g.n_groups * o->n_thresholds;
    const char *labels[TB_AN_MAX_GROUPS * TB_AN_MAX_THRESHOLDS];
    char text[TB_AN_MAX_GROUPS * TB_AN_MAX_THRESHOLDS][96];
    double ymax = 1;
    for (int gi = 0; gi < c->g.n_groups; gi++)
        for (int k = 0; k < o->n_thresholds; k++) {
            double v[c->d->np + 1];
            int n = 0, members = 0;
            for (int p = 0; p < c->d->np; p++) {
                if (c->g.of[p] != gi) continue;
                members++;
                int tries = tries_to_reach(c->d, p, o->thresholds[k]);
                if (tries > 0) v[n++] = tries;
                if (tries > ymax) ymax = tries;
            }
            tb_summary s = tb_summarize(v, n);
            an_table_text(t, c->g.names[gi]);
            an_table_num(t, 100 * o->thresholds[k]);
            an_table_num(t, members);
            an_table_num(t, n);
            an_table_num(t, s.mean);
            an_table_num(t, s.sd);
            an_table_num(t, s.median);
            int cat = gi * o->n_thresholds + k;
            snprintf(text[cat], sizeof(text[cat]), "%g%%", 100 * o->thresholds[k]);
            labels[cat] = text[cat];
        }
    an_plot_begin_categories(fig_path(c, "tries_to_threshold"), "Tries needed to reach a validation accuracy",
                             "tries (submissions)", ncat, labels, 0, ymax + 1);
    for (int gi = 0; gi < c->g.n_groups; gi++)
        an_plot_axis_note(gi * o->n_thresholds + (o->n_thresholds - 1) / 2.0, ncat, c->g.names[gi]);
    for (int gi = 0; gi < c->g.n_groups; gi++)
        for (int k = 0; k < o->n_thresholds; k++) {
            double v[c->d->np + 1];
            int n = 0;
            for (int p = 0; p < c->d->np; p++) {
                int tries = c->g.of[p] == gi ? tries_to_reach(c->d, p, o->thresholds[k]) : -1;
                if (tries > 0) v[n++] = tries;
            }
            if (n) box_at(gi * o->n_thresholds + k, v, n, gi + 1);
        }
    an_plot_end();
    an_report_figure(c->r, "tries_to_threshold",
                     "For each group and threshold, the number of tries each participant needed before a finished "
                     "try's validation accuracy reached it; those who never did are not drawn (the paper's Fig. 6).");
    an_report_table(c->r, t);
}

static void best_so_far_curves(an_ctx *c)
{
    int max_tries = 0;
    for (int p = 0; p < c->d->np; p++) {
        int n = n_tries(c->d, p);
        if (n > max_tries) max_tries = n;
    }
    if (max_tries == 0) {
        an_report_left_out(c->r, "best-so-far accuracy: no participant has a try");
        return;
    }
    an_table *t = an_table_new("best_so_far", "Best validation accuracy so far, after n tries",
                               "Per group and number of tries n: the mean over participants of the best validation "
                               "accuracy (percent) among their first n tries, with its standard error; a participant "
                               "who stopped earlier keeps their last best.",
                               "group,tries,participants,mean_pct,se_pct");
    an_plot_begin(fig_path(c, "best_so_far"), "Best validation accuracy so far, by group", "tries (submissions)",
                  "best validation accuracy (%)", 1, max_tries > 1 ? max_tries : 2, 0, 105);
    an_plot_legend_low_right(1);
    double *best = malloc(sizeof(double) * (size_t)max_tries);
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        double xs[max_tries], mean[max_tries], lo[max_tries], hi[max_tries];
        int members = 0;
        for (int p = 0; p < c->d->np; p++) members += c->g.of[p] == gi;
        if (!members) continue;
        for (int n = 0; n < max_tries; n++) {
            double v[members];
            int k = 0;
            for (int p = 0; p < c->d->np; p++) {
                if (c->g.of[p] != gi) continue;
                best_so_far(c->d, p, best, max_tries);
                v[k++] = best[n];
            }
            tb_summary s = tb_summarize(v, k);
            double se = isnan(s.se) ? 0 : s.se;
            xs[n] = n + 1, mean[n] = s.mean, lo[n] = s.mean - se, hi[n] = s.mean + se;
            an_table_text(t, c->g.names[gi]);
            an_table_num(t, n + 1);
            an_table_num(t, k);
            an_table_num(t, s.mean);
            an_table_num(t, s.se);
        }
        an_plot_color(gi + 1);
        an_plot_band(max_tries, xs, lo, hi);
        an_plot_line(max_tries, xs, mean);
        an_plot_legend(gi, gi + 1, c->g.names[gi]);
    }
    free(best);
    an_plot_end();
    an_report_figure(c->r, "best_so_far",
                     "Mean best-so-far validation accuracy after n tries per group; the shaded band is one standard "
                     "error either side (the paper's Fig. 7).");
    an_report_table(c->r, t);
}

/* ---- strategies: presets and comments ----------------------------------------------------- */

static void presets_start(an_ctx *c)
{
    an_table *t = an_table_new("presets_start", "Participants who started from all presets",
                               "Per group: participants with a first submission, and how many kept every optional "
                               "hyperparameter at its preset in it.",
                               "group,participants,all_presets,share");
    const char *labels[TB_AN_MAX_GROUPS];
    double all[TB_AN_MAX_GROUPS], tot[TB_AN_MAX_GROUPS], ymax = 1;
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int n = 0, kept = 0;
        for (int p = 0; p < c->d->np; p++) {
            if (c->g.of[p] != gi || !sub_of(c->d, p, 0)) continue;
            n++;
            kept += started_from_presets(c->d, p);
        }
        an_table_text(t, c->g.names[gi]);
        an_table_num(t, n);
        an_table_num(t, kept);
        an_table_num(t, n ? (double)kept / n : NAN);
        labels[gi] = c->g.names[gi];
        all[gi] = kept, tot[gi] = n;
        if (n > ymax) ymax = n;
    }
    an_plot_begin_categories(fig_path(c, "presets_start"), "First submission with all optional presets",
                             "participants", c->g.n_groups, labels, 0, ymax * 1.25);
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        an_plot_color(7); /* grey: everyone */
        an_plot_rect(gi - 0.3, gi + 0.3, 0, tot[gi]);
        an_plot_color(1);
        an_plot_rect(gi - 0.3, gi + 0.3, 0, all[gi]);
    }
    an_plot_legend(0, 1, "started from all presets");
    an_plot_legend(1, 7, "all participants");
    an_plot_end();
    an_report_figure(c->r, "presets_start",
                     "Per group, participants (grey) and those whose first submission kept every optional "
                     "hyperparameter at its preset (blue) (the paper's Fig. 8).");
    an_report_table(c->r, t);
}

static void comments(an_ctx *c)
{
    int by_group[TB_AN_MAX_GROUPS][AN_C_COUNT] = {{0}}, by_hp[TB_AD_HP][AN_C_COUNT] = {{0}}, total = 0;
    for (int p = 0; p < c->d->np; p++)
        for (int k = 0; k < c->d->participants[p].n_submissions; k++) {
            const tb_ad_submission *s = sub_of(c->d, p, k);
            for (int h = 0; s && h < TB_AD_HP; h++) {
                int kind = comment_kind(s->comments[h]);
                if (kind < 0) continue;
                total++;
                if (c->g.of[p] >= 0) by_group[c->g.of[p]][kind]++;
                by_hp[h][kind]++;
            }
        }
    if (!total) {
        an_report_left_out(c->r, "comments: no submission has a comment");
        return;
    }
    an_table *t = an_table_new("comments_by_group", "Comments per group",
                               "How often each of Table 3's comments (and free text: other) was given, per group.",
                               "group,comment,count,share");
    const char *labels[TB_AN_MAX_GROUPS];
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int n = 0;
        for (int k = 0; k < AN_C_COUNT; k++) n += by_group[gi][k];
        for (int k = 0; k < AN_C_COUNT; k++) {
            an_table_text(t, c->g.names[gi]);
            an_table_text(t, comment_labels[k]);
            an_table_num(t, by_group[gi][k]);
            an_table_num(t, n ? (double)by_group[gi][k] / n : NAN);
        }
        labels[gi] = c->g.names[gi];
    }
    an_plot_begin_categories(fig_path(c, "comments_by_group"), "Comments per group (share of each group's comments)",
                             "share of comments (%)", c->g.n_groups, labels, 0, 150);
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int n = 0;
        for (int k = 0; k < AN_C_COUNT; k++) n += by_group[gi][k];
        double y = 0;
        for (int k = 0; k < AN_C_COUNT && n; k++) {
            double h = 100.0 * by_group[gi][k] / n;
            an_plot_color(k + 1);
            an_plot_rect(gi - 0.3, gi + 0.3, y, y + h);
            y += h;
        }
    }
    for (int k = 0; k < AN_C_COUNT; k++) an_plot_legend(k, k + 1, comment_labels[k]);
    an_plot_end();
    an_report_figure(c->r, "comments_by_group",
                     "The share of each predefined comment among a group's comments, stacked to 100% (the paper's "
                     "Fig. 9); \"guess\" is \"It is just a guess.\"");
    an_report_table(c->r, t);
    t = an_table_new("comments_by_hparam", "Comments per hyperparameter",
                     "How often each comment was given for each hyperparameter, over all participants.",
                     "hyperparameter,guess,suggested_default,worked_in_the_past,learnt_from_submissions,other");
    for (int h = 0; h < TB_AD_HP; h++) {
        an_table_text(t, c->d->hp_names[h] ? c->d->hp_names[h] : "");
        for (int k = 0; k < AN_C_COUNT; k++) an_table_num(t, by_hp[h][k]);
    }
    an_report_table(c->r, t);
}

static int populated_groups(const an_ctx *c)
{
    int n = 0;
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        int members = 0;
        for (int p = 0; p < c->d->np; p++) members += c->g.of[p] == gi;
        n += members > 0;
    }
    return n;
}

/* ---- the study part ---------------------------------------------------------------------- */

static void study_part(an_ctx *c)
{
    const tb_study_data *d = c->d;
    if (!d->has_study) return; /* study_data's notes say so */
    if (d->np == 0) {
        an_report_left_out(c->r, "the study's analysis: the study has no participants");
        return;
    }
    int humans = 0;
    for (int p = 0; p < d->np; p++) humans += !d->participants[p].machine;
    char intro[512];
    snprintf(intro, sizeof(intro),
             "%d participants (%d people, %d machines), grouped by <b>%s</b> into %d groups; accuracies in percent.",
             d->np, humans, d->np - humans, tb_group_by_name(c->o->group_by), c->g.n_groups);
    an_report_section(c->r, "Participants and groups", intro);
    experience_histogram(c);

    double *vals[TB_AN_MAX_GROUPS];
    int sizes[TB_AN_MAX_GROUPS], with_finals = 0;
    for (int gi = 0; gi < c->g.n_groups; gi++) {
        vals[gi] = malloc(sizeof(double) * (size_t)(d->np + 1));
        sizes[gi] = group_finals(c, gi, vals[gi]);
        with_finals += sizes[gi];
    }
    for (int p = 0; p < d->np; p++)
        if (isnan(d->participants[p].final_mean) && !strstr(d->notes, d->participants[p].id)) /* said once */
            an_report_left_out(c->r, "participant %s from the final-accuracy statistics: no finished final run",
                               d->participants[p].id);
        else if (c->g.of[p] < 0)
            an_report_left_out(c->r, "participant %s from the groups: %s not given", d->participants[p].id,
                               tb_group_by_name(c->o->group_by));
    an_report_section(c->r, "Experience and final accuracy (HP1, HP2)",
                      "Does final accuracy vary between people (HP1), and does it depend on their background (HP2)?");
    if (with_finals) {
        accuracy_scatter(c);
        group_boxes(c, vals, sizes);
        groups_table(c, vals, sizes);
        spearman_table(c);
        levene_table(c, vals, sizes);
        kruskal_table(c, vals, sizes);
    } else {
        an_report_left_out(c->r, "final accuracy per group, Spearman, Levene and Kruskal-Wallis: no participant "
                                 "has a finished final run");
    }
    for (int gi = 0; gi < c->g.n_groups; gi++) free(vals[gi]);
    if (populated_groups(c) < 2)
        an_report_left_out(c->r, "comparisons between groups: there is only one group with participants");

    an_report_section(c->r, "Tuning efficiency", "How quickly do groups reach a good configuration?");
    tries_to_threshold(c);
    best_so_far_curves(c);
    an_report_section(c->r, "Strategies", "Where do participants start, and why do they choose their values?");
    presets_start(c);
    comments(c);
    an_report_section(c->r, "Every participant", "");
    participants_table(c);
}

/* ---- sweeps ---------------------------------------------------------------------------- */

static double value_of(const an_ctx *c, const tb_ad_sweep_run *run, const char *name)
{
    for (int h = 0; h < TB_AD_HP; h++)
        if (c->d->hp_names[h] && !strcmp(c->d->hp_names[h], name) && run->values[h][0]) {
            char *end;
            double v = strtod(run->values[h], &end);
            return end != run->values[h] ? v : NAN;
        }
    return NAN;
}

/* Test accuracies (percent) of the sweep's finished runs into v (n_runs long); their count. */
static int finished_accuracies(const an_ctx *c, const tb_ad_sweep *sw, double *v)
{
    const tb_ad_sweep_run *runs = &c->d->sweep_runs[sw->first_run];
    int n = 0;
    for (int i = 0; i < sw->n_runs; i++)
        if (!strcmp(runs[i].status, "finished") && !isnan(runs[i].test_accuracy)) v[n++] = 100 * runs[i].test_accuracy;
    return n;
}

static void random_histogram(an_ctx *c, const tb_ad_sweep *sw, int index)
{
    double *v = malloc(sizeof(double) * (size_t)(sw->n_runs + 1));
    int n = finished_accuracies(c, sw, v);
    if (!n) {
        an_report_left_out(c->r, "sweep %s: no finished run with a test accuracy", sw->id);
        free(v);
        return;
    }
    tb_summary s = tb_summarize(v, n);
    char name[96], title[200], cap[400];
    snprintf(name, sizeof(name), "random_search_%d", index);
    snprintf(title, sizeof(title), "Random search %s: %.1f +- %.1f %% over %d settings", sw->id, s.mean,
             isnan(s.sd) ? 0 : s.sd, n);
    int bins = 20, counts[20] = {0}, ymax = 1;
    for (int i = 0; i < n; i++) counts[(int)fmin(fmax(floor(v[i] / 5), 0), bins - 1)]++;
    for (int k = 0; k < bins; k++)
        if (counts[k] > ymax) ymax = counts[k];
    an_plot_begin(fig_path(c, name), title, "test accuracy (%)", "settings", 0, 100, 0, ymax * 1.35);
    an_plot_color(1);
    an_plot_hist(n, v, 0, 100, bins);
    double ly[2] = {0, ymax * 1.35}, mx[2] = {s.mean, s.mean};
    an_plot_color(6);
    an_plot_line(2, mx, ly);
    if (!isnan(s.sd)) {
        double lo[2] = {s.mean - s.sd, s.mean - s.sd}, hi[2] = {s.mean + s.sd, s.mean + s.sd};
        an_plot_dashed_line(2, lo, ly);
        an_plot_dashed_line(2, hi, ly);
    }
    an_plot_legend(0, 1, "settings per 5% bin");
    an_plot_legend(1, 6, "mean (solid), +- sd (dashed)");
    an_plot_end();
    snprintf(cap, sizeof(cap),
             "Test accuracy of the %d finished random-search settings of %s in 5%% bins, with the mean and "
             "one standard deviation either side (the paper's Fig. 1: 41.8 +- 24.3%% over 320 settings).",
             n, sw->id);
    an_report_figure(c->r, name, cap);
    an_report_say(c->r, "random search %s: %.1f +- %.1f %% over %d settings", sw->id, s.mean, isnan(s.sd) ? 0 : s.sd,
                  n);
    free(v);
}

static void sweep_summary_row(an_table *t, const an_ctx *c, const tb_ad_sweep *sw)
{
    double *v = malloc(sizeof(double) * (size_t)(sw->n_runs + 1));
    int n = finished_accuracies(c, sw, v);
    tb_summary s = tb_summarize(v, n);
    free(v);
    an_table_text(t, sw->id);
    an_table_text(t, sw->kind);
    an_table_num(t, sw->n_runs);
    an_table_num(t, n);
    an_table_num(t, s.mean);
    an_table_num(t, s.sd);
    an_table_num(t, s.min);
    an_table_num(t, s.max);
}

static const char *const run_attributes[] = {"trainable_parameters", "lr", "batch_size", "epochs"};

static double attribute_of(const an_ctx *c, const tb_ad_sweep_run *run, int a)
{
    if (a == 0) return run->trainable_parameters >= 0 ? (double)run->trainable_parameters : NAN;
    return value_of(c, run, run_attributes[a]);
}

/* Spearman of each numeric attribute with test accuracy and macro F1, per sweep. */
static void sweep_correlations(an_ctx *c, an_table *t, const tb_ad_sweep *sw)
{
    const tb_ad_sweep_run *runs = &c->d->sweep_runs[sw->first_run];
    for (int a = 0; a < (int)TB_ARRAY_LEN(run_attributes); a++)
        for (int m = 0; m < 2; m++) {
            double *x = malloc(sizeof(double) * 2 * (size_t)(sw->n_runs + 1)), *y = x + sw->n_runs + 1;
            int n = 0;
            for (int i = 0; i < sw->n_runs; i++) {
                double xv = attribute_of(c, &runs[i], a), yv = m ? runs[i].macro_f1 : runs[i].test_accuracy;
                if (strcmp(runs[i].status, "finished") || isnan(xv) || isnan(yv)) continue;
                x[n] = xv, y[n++] = 100 * yv;
            }
            tb_test_result res;
            tb_err e;
            int ok = n >= 3 && tb_spearman(x, y, n, &res, &e) == TB_OK && !isnan(res.statistic);
            free(x);
            if (!ok) continue;
            an_table_text(t, sw->id);
            an_table_text(t, run_attributes[a]);
            an_table_text(t, m ? "macro_f1_pct" : "test_accuracy_pct");
            an_table_num(t, res.n);
            an_table_num(t, res.statistic);
            an_table_num(t, res.p_value);
        }
}

/* Test accuracy and macro F1 against each attribute the sweep varied (log scale
 * for the ones that span decades), as the frozen-base study plots trainable
 * parameters against accuracy and F1. */
static void attribute_figures(an_ctx *c, const tb_ad_sweep *sw, int index)
{
    static const char *const units[] = {"log10 trainable parameters", "log10 learning rate", "log10 batch size",
                                        "epochs"};
    const tb_ad_sweep_run *runs = &c->d->sweep_runs[sw->first_run];
    for (int a = 0; a < (int)TB_ARRAY_LEN(run_attributes); a++) {
        size_t len = (size_t)sw->n_runs + 1;
        double *x = malloc(sizeof(double) * 4 * len), *acc = x + len, *f1x = acc + len, *f1 = f1x + len;
        double lo = INFINITY, hi = -INFINITY;
        int n = 0, nf = 0;
        for (int i = 0; i < sw->n_runs; i++) {
            double v = attribute_of(c, &runs[i], a);
            if (strcmp(runs[i].status, "finished") || isnan(v) || isnan(runs[i].test_accuracy)) continue;
            if (a < 3) {
                if (v <= 0) continue;
                v = log10(v);
            }
            x[n] = v, acc[n++] = 100 * runs[i].test_accuracy;
            if (!isnan(runs[i].macro_f1)) f1x[nf] = v, f1[nf++] = 100 * runs[i].macro_f1;
            lo = fmin(lo, v), hi = fmax(hi, v);
        }
        if (n < 3 || !(hi > lo)) {
            free(x);
            continue;
        }
        char name[96], title[200], cap[400];
        snprintf(name, sizeof(name), "sweep_%d_%s", index, run_attributes[a]);
        snprintf(title, sizeof(title), "%s: test accuracy and macro F1 against %s", sw->id, run_attributes[a]);
        double pad = 0.05 * (hi - lo);
        an_plot_begin(fig_path(c, name), title, units[a], "test accuracy, macro F1 (%)", lo - pad, hi + pad, 0, 105);
        an_plot_color(1);
        an_plot_points(n, x, acc);
        an_plot_color(2);
        an_plot_points(nf, f1x, f1);
        an_plot_legend(0, 1, "test accuracy");
        an_plot_legend(1, 2, "macro F1");
        an_plot_end();
        snprintf(cap, sizeof(cap),
                 "Each finished run of %s: its test accuracy (blue) and macro F1 (orange) against %s; Spearman's rho "
                 "is in the table of run attributes.",
                 sw->id, units[a]);
        an_report_figure(c->r, name, cap);
        free(x);
    }
}

/* A run's configuration and position, to sort runs by configuration. */
typedef struct config_at {
    int64_t config;
    int index;
} config_at;

static int cmp_config(const void *a, const void *b)
{
    const config_at *x = a, *y = b;
    if (x->config != y->config) return (x->config > y->config) - (x->config < y->config);
    return x->index - y->index;
}

/* Runs of one configuration with several seeds: repeats, or configs a sweep
 * ran more than once; sorted by configuration so a large sweep stays fast. */
static void seed_variance(an_ctx *c, an_table *t, const tb_ad_sweep *sw)
{
    const tb_ad_sweep_run *runs = &c->d->sweep_runs[sw->first_run];
    config_at *order = malloc(sizeof(*order) * (size_t)(sw->n_runs + 1));
    double *v = malloc(sizeof(double) * (size_t)(sw->n_runs + 1));
    for (int i = 0; i < sw->n_runs; i++) order[i] = (config_at){runs[i].config, i};
    qsort(order, (size_t)sw->n_runs, sizeof(*order), cmp_config);
    for (int i = 0; i < sw->n_runs;) {
        int n = 0, j = i;
        for (; j < sw->n_runs && order[j].config == order[i].config; j++) {
            const tb_ad_sweep_run *r = &runs[order[j].index];
            if (!strcmp(r->status, "finished") && !isnan(r->test_accuracy)) v[n++] = 100 * r->test_accuracy;
        }
        if (n >= 2) {
            tb_summary s = tb_summarize(v, n);
            an_table_text(t, sw->id);
            an_table_text(t, sw->kind);
            an_table_num(t, (double)order[i].config);
            an_table_num(t, n);
            an_table_num(t, s.mean);
            an_table_num(t, s.sd);
            an_table_num(t, s.min);
            an_table_num(t, s.max);
        }
        i = j;
    }
    free(order);
    free(v);
}

static void sweeps_part(an_ctx *c)
{
    const tb_study_data *d = c->d;
    if (d->nsweeps == 0) {
        an_report_left_out(c->r,
                           "sweeps (random-search histogram, seed variance, run attributes): the archive has none");
        return;
    }
    an_report_section(c->r, "Sweeps and repeats",
                      "Random search as the baseline a person competes with, the variance a seed alone causes, and "
                      "which run attributes go with accuracy.");
    int random = 0;
    for (int s = 0; s < d->nsweeps; s++)
        if (!strcmp(d->sweeps[s].kind, "random")) random_histogram(c, &d->sweeps[s], random++);
    if (!random) an_report_left_out(c->r, "random-search histogram: no random-search sweep");
    an_table *sum = an_table_new("sweeps", "Sweeps", "Test accuracy (percent) of each sweep's finished runs.",
                                 "sweep,kind,runs,finished,mean_pct,sd_pct,min_pct,max_pct");
    an_table *var = an_table_new("seed_variance", "Seed variance",
                                 "Configurations run with more than one seed: test accuracy (percent) over the seeds.",
                                 "sweep,kind,config,seeds,mean_pct,sd_pct,min_pct,max_pct");
    an_table *cor = an_table_new("sweep_correlations", "Run attributes against test accuracy and macro F1",
                                 "Spearman's rho between a numeric attribute of the finished runs and their test "
                                 "accuracy or macro F1 (percent), per sweep; attributes a sweep did not vary are "
                                 "absent.",
                                 "sweep,attribute,metric,n,rho,p");
    for (int s = 0; s < d->nsweeps && s < 4; s++) attribute_figures(c, &d->sweeps[s], s);
    for (int s = 0; s < d->nsweeps; s++) {
        sweep_summary_row(sum, c, &d->sweeps[s]);
        seed_variance(c, var, &d->sweeps[s]);
        sweep_correlations(c, cor, &d->sweeps[s]);
    }
    an_report_table(c->r, sum);
    if (an_table_rows(var))
        an_report_table(c->r, var);
    else {
        an_report_left_out(c->r, "seed variance: no configuration was run with more than one seed");
        an_table_free(var);
    }
    if (an_table_rows(cor))
        an_report_table(c->r, cor);
    else {
        an_report_left_out(c->r, "run attributes against accuracy: no sweep varied a numeric attribute over 3+ runs");
        an_table_free(cor);
    }
}

/* ---- the whole -------------------------------------------------------------------------- */

/* Removes dir's files ending in ext: figures and tables of an earlier report
 * there would otherwise sit beside this one's without being in it. */
static void remove_old(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name), el = strlen(ext);
        if (len <= el || strcmp(e->d_name + len - el, ext)) continue;
        char path[1700];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static tb_status make_dirs(const char *out, tb_err *err)
{
    char path[1400];
    const char *sub[] = {"", "/figures", "/tables"}, *ext[] = {"", ".svg", ".csv"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s%s", out, sub[i]);
        if (tb_make_dirs(path) != 0) return tb_fail(err, TB_EIO, "cannot create %s", path);
        if (i) remove_old(path, ext[i]);
    }
    return TB_OK;
}

tb_status tb_analyze(const tb_study_data *d, const tb_analysis_opts *o, const char *out_dir, FILE *summary,
                     tb_err *err)
{
    if (strlen(out_dir) > 900) return tb_fail(err, TB_EINVAL, "--out %s: the path is too long", out_dir);
    tb_status st = make_dirs(out_dir, err);
    if (st != TB_OK) return st;
    an_report r = {0};
    tb_copy_str(r.out_dir, sizeof(r.out_dir), out_dir);
    an_ctx c = {.d = d, .o = o, .r = &r};
    if ((st = tb_analysis_group(d, o, &c.g, err)) != TB_OK) return st;

    study_part(&c);
    sweeps_part(&c);
    for (const char *p = d->notes; *p;) {
        size_t len = strcspn(p, "\n");
        if (len) an_report_left_out(&r, "%.*s", (int)len, p);
        p += len + (p[len] == '\n');
    }

    an_buf meta = {0};
    an_buf_printf(&meta, "Archive <code>");
    an_buf_html(&meta, d->dir);
    an_buf_printf(&meta, "</code> &middot; grouped by %s &middot; thresholds", tb_group_by_name(o->group_by));
    for (int k = 0; k < o->n_thresholds; k++) an_buf_printf(&meta, " %g%%", 100 * o->thresholds[k]);
    an_buf_printf(&meta, " &middot; bootstrap %d resamples, seed %llu &middot; written by tunebench analyze "
                         "(docs/analysis.md explains every figure and table)",
                  o->bootstrap, (unsigned long long)o->seed);
    st = an_report_write(&r, d->title[0] ? d->title : "Study analysis", meta.s, err);
    if (st == TB_OK && summary) {
        fprintf(summary, "%s%d figures, %d tables: %s/report.html\n", r.summary.s ? r.summary.s : "", r.n_figures,
                r.n_tables, out_dir);
    }
    an_buf_free(&meta);
    an_buf_free(&r.body);
    an_buf_free(&r.left_out);
    an_buf_free(&r.summary);
    an_buf_free(&r.key);
    tb_grouping_free(&c.g);
    return st;
}
