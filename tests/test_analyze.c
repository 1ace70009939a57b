/* test_analyze.c: `tunebench analyze` (core/analysis/analysis.c, docs/analysis.md)
 * on a simulated study with a random search (`tunebench simulate`): the report
 * inlines every figure and asks for nothing over the network, every SVG is a
 * real one, every table is there, and the statistics in the tables equal direct
 * calls of stats.h on the archive as study_data.h reads it. Other groupings and
 * thresholds; machines as their own group; archives with pieces missing (one
 * group; no finals and no sweeps) still give a report that says what it left
 * out; and bad options are named. The report's screenshot
 * (headless Chromium, when installed) is kept in the build tree:
 * test-artifacts/analyze/report.png. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/analysis.h"
#include "analysis/stats.h"
#include "analysis/study_data.h"
#include "tb_test.h"

static char tmpdir[512], archive[600], out[600];

/* One simulated study for the whole suite (simulating takes seconds): built
 * before the tests fork, removed after. */
static void suite_setup(void)
{
    static char text[65536];
    tbt_mkdtemp(tmpdir, sizeof tmpdir, "analyze");
    snprintf(archive, sizeof archive, "%s/study", tmpdir);
    snprintf(out, sizeof out, "%s/report", tmpdir);
    char args[2048];
    snprintf(args, sizeof args, "simulate %s --participants 9 --random-search 8 --seed 3 --quiet", archive);
    int rc = tbt_tunebench(args, "2>&1", text, sizeof text);
    if (rc != 0) fprintf(stderr, "simulate failed (%d):\n%s\n", rc, text);
    snprintf(args, sizeof args, "analyze %s --out %s --bootstrap 500 --seed 7", archive, out);
    rc = tbt_tunebench(args, "2>&1", text, sizeof text);
    if (rc != 0) fprintf(stderr, "analyze failed (%d):\n%s\n", rc, text);
}

static void suite_teardown(void) { tbt_rm_rf(tmpdir); }

static int count(const char *text, const char *part)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, part)); p += strlen(part)) n++;
    return n;
}

/* The report is too long for Check's messages: name the part only. */
#define HTML_HAS(html, part) ck_assert_msg(strstr((html), (part)) != NULL, "report.html lacks \"%s\"", (part))
#define HTML_LACKS(html, part) ck_assert_msg(strstr((html), (part)) == NULL, "report.html has \"%s\"", (part))

/* ---- CSV: the value of column col in the row whose key columns match -------------------------- */

/* Splits one CSV line (RFC 4180 quotes) into fields, in place; their count. */
static int csv_split(char *line, char **fields, int cap)
{
    int n = 0;
    char *p = line;
    while (n < cap) {
        if (*p == '"') {
            char *w = ++p;
            fields[n++] = w;
            for (; *p; p++) {
                if (*p == '"' && p[1] == '"') *w++ = '"', p++;
                else if (*p == '"') { p++; break; }
                else *w++ = *p;
            }
            *w = 0;
        } else {
            fields[n++] = p;
            p += strcspn(p, ",\n");
        }
        if (*p != ',') {
            *p = 0;
            break;
        }
        *p++ = 0;
    }
    return n;
}

static int column(char **header, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(header[i], name)) return i;
    ck_abort_msg("no column %s", name);
    return -1;
}

/* tables/<table>.csv: column col of the row where key1 = v1 (and key2 = v2 when key2 is not NULL). */
static double csv_value(const char *table, const char *key1, const char *v1, const char *key2, const char *v2,
                        const char *col)
{
    char path[900];
    snprintf(path, sizeof path, "%s/tables/%s.csv", out, table);
    char *text = tbt_slurp(path, NULL), *save = NULL, *lines[512];
    int nl = 0;
    for (char *l = strtok_r(text, "\n", &save); l && nl < 512; l = strtok_r(NULL, "\n", &save)) lines[nl++] = l;
    ck_assert_msg(nl >= 1, "%s is empty", path);
    char *head[32], *f[32];
    int nh = csv_split(lines[0], head, 32);
    int k1 = column(head, nh, key1), k2 = key2 ? column(head, nh, key2) : -1, c = column(head, nh, col);
    for (int i = 1; i < nl; i++) {
        int n = csv_split(lines[i], f, 32);
        ck_assert_int_eq(n, nh);
        if (strcmp(f[k1], v1) || (key2 && strcmp(f[k2], v2))) continue;
        double v = f[c][0] ? strtod(f[c], NULL) : NAN;
        free(text);
        return v;
    }
    ck_abort_msg("%s has no row %s=%s %s=%s", path, key1, v1, key2 ? key2 : "", v2 ? v2 : "");
    return NAN;
}

/* The CSV keeps 10 significant digits. */
#define ASSERT_SAME(got, want, what)                                                                            \
    ck_assert_msg(fabs((got) - (want)) <= 1e-8 * (1 + fabs(want)) || (isnan(got) && isnan(want)),             \
                  "%s: the table has %.12g, stats.h gives %.12g", (what), (got), (want))

/* ---- the report's files ---------------------------------------------------------------------- */

START_TEST(report_inlines_every_figure_and_fetches_nothing)
{
    char path[900], dir[900];
    snprintf(path, sizeof path, "%s/report.html", out);
    char *html = tbt_slurp(path, NULL);
    snprintf(dir, sizeof dir, "%s/figures", out);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no %s", dir);
    int figures = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".svg")) continue;
        figures++;
        char ref[600], svg_path[1600];
        snprintf(ref, sizeof ref, "figures/%s", e->d_name);
        HTML_HAS(html, ref);
        snprintf(svg_path, sizeof svg_path, "%s/%s", dir, e->d_name);
        size_t n;
        char *svg = tbt_slurp(svg_path, &n);
        ck_assert_msg(!strncmp(svg, "<?xml", 5) || !strncmp(svg, "<svg", 4), "%s does not start as SVG", svg_path);
        ck_assert_msg(n > 3000 && strstr(svg, "</svg>") && count(svg, "<path") + count(svg, "<polyline") > 10,
                      "%s is trivial (%zu bytes)", svg_path, n);
        free(svg);
    }
    closedir(d);
    /* random search, experience, scatter, boxes, tries, best so far, presets, comments */
    ck_assert_int_ge(figures, 8);
    ck_assert_int_eq(count(html, "<svg"), figures);
    ck_assert_int_eq(count(html, "<figcaption>"), figures);
    /* nothing fetched: no URL at all, no script, no external stylesheet or image */
    HTML_LACKS(html, "http://");
    HTML_LACKS(html, "https://");
    HTML_LACKS(html, "<script");
    HTML_LACKS(html, "<link");
    HTML_LACKS(html, "<img");
    /* titles and axis labels with units, as PLplot writes text (a character reference each) */
    static const char *const texts[] = {"final test accuracy (%)", "deep-learning experience (months)",
                                        "tries (submissions)", "best validation accuracy (%)",
                                        "Final accuracy per group", "test accuracy (%)"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char enc[512] = "";
        for (const char *c = texts[i]; *c; c++)
            snprintf(enc + strlen(enc), sizeof enc - strlen(enc), "&#x%x;", (unsigned char)*c);
        ck_assert_msg(strstr(html, enc) != NULL, "no figure has the text \"%s\"", texts[i]);
    }
    free(html);
}
END_TEST

START_TEST(every_table_is_written)
{
    static const char *const tables[] = {"participants", "groups",        "spearman",          "levene",
                                         "kruskal",      "tries_to_threshold", "best_so_far", "presets_start",
                                         "comments_by_group", "comments_by_hparam", "sweeps", "sweep_correlations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char path[900];
        snprintf(path, sizeof path, "%s/tables/%s.csv", out, tables[i]);
        struct stat st;
        ck_assert_msg(stat(path, &st) == 0 && st.st_size > 20, "%s missing or empty", path);
    }
}
END_TEST

/* ---- the statistics, recomputed from the archive ----------------------------------------------- */

static tb_study_data *load(void)
{
    tb_study_data *d = NULL;
    tb_err err = {{0}};
    ck_assert_msg(tb_study_data_load(archive, &d, &err) == TB_OK, "%s", err.msg);
    return d;
}

START_TEST(spearman_equals_stats_on_the_data)
{
    tb_study_data *d = load();
    double x[256], acc[256], guess[256];
    int n = 0, ng = 0;
    for (int p = 0; p < d->np && n < 256; p++) {
        const tb_ad_participant *pp = &d->participants[p];
        if (pp->machine || isnan(pp->dl_months)) continue;
        double share = tb_analysis_guess_share(d, p);
        if (!isnan(share)) guess[ng++] = share;
        if (!isnan(pp->final_mean)) x[n] = pp->dl_months, acc[n++] = 100 * pp->final_mean;
    }
    ck_assert_int_ge(n, 3);
    tb_test_result r;
    tb_err err;
    ck_assert(tb_spearman(x, acc, n, &r, &err) == TB_OK);
    ASSERT_SAME(csv_value("spearman", "x", "dl_months", "y", "final_mean_pct", "rho"), r.statistic, "rho (accuracy)");
    ASSERT_SAME(csv_value("spearman", "x", "dl_months", "y", "final_mean_pct", "p"), r.p_value, "p (accuracy)");
    ck_assert_int_eq((int)csv_value("spearman", "x", "dl_months", "y", "final_mean_pct", "n"), n);
    /* the guess share against experience: every participant with a comment */
    double xg[256];
    int k = 0;
    for (int p = 0; p < d->np; p++)
        if (!d->participants[p].machine && !isnan(d->participants[p].dl_months) &&
            !isnan(tb_analysis_guess_share(d, p)))
            xg[k++] = d->participants[p].dl_months;
    ck_assert_int_eq(k, ng);
    ck_assert(tb_spearman(xg, guess, ng, &r, &err) == TB_OK);
    ASSERT_SAME(csv_value("spearman", "x", "dl_months", "y", "guess_share", "rho"), r.statistic, "rho (guesses)");
    ASSERT_SAME(csv_value("spearman", "x", "dl_months", "y", "guess_share", "p"), r.p_value, "p (guesses)");
    tb_study_data_free(d);
}
END_TEST

/* Final accuracies (percent) of each group, grouped as the report groups. */
static int group_values(const tb_study_data *d, const tb_grouping *g, double vals[][256], int *sizes)
{
    for (int gi = 0; gi < g->n_groups; gi++) sizes[gi] = 0;
    for (int p = 0; p < d->np; p++)
        if (g->of[p] >= 0 && !isnan(d->participants[p].final_mean))
            vals[g->of[p]][sizes[g->of[p]]++] = 100 * d->participants[p].final_mean;
    return g->n_groups;
}

START_TEST(group_tests_equal_stats_on_the_data)
{
    tb_study_data *d = load();
    tb_analysis_opts o;
    tb_analysis_opts_default(&o);
    tb_grouping g;
    tb_err err;
    ck_assert(tb_analysis_group(d, &o, &g, &err) == TB_OK);
    ck_assert_int_eq(g.n_groups, 3); /* the simulator's novices, mediums and experts */
    static double vals[TB_AN_MAX_GROUPS][256];
    int sizes[TB_AN_MAX_GROUPS];
    group_values(d, &g, vals, sizes);
    for (int gi = 0; gi < g.n_groups; gi++) {
        tb_summary s = tb_summarize(vals[gi], sizes[gi]);
        ASSERT_SAME(csv_value("groups", "group", g.names[gi], NULL, NULL, "mean_pct"), s.mean, g.names[gi]);
        ASSERT_SAME(csv_value("groups", "group", g.names[gi], NULL, NULL, "sd_pct"), s.sd, g.names[gi]);
    }
    /* Levene, both centres, between the first and last group */
    const double *pair[2] = {vals[0], vals[2]};
    int n2[2] = {sizes[0], sizes[2]};
    for (int median = 0; median <= 1; median++) {
        tb_test_result r;
        ck_assert(tb_levene(pair, n2, 2, median, &r, &err) == TB_OK);
        char center[8];
        snprintf(center, sizeof center, "%s", median ? "median" : "mean");
        char path[900];
        snprintf(path, sizeof path, "%s/tables/levene.csv", out);
        char *text = tbt_slurp(path, NULL);
        /* the row of this pair and centre */
        char want[256];
        snprintf(want, sizeof want, "%s,%s,%s,", g.names[0], g.names[2], center);
        char *row = strstr(text, want);
        ck_assert_msg(row != NULL, "levene.csv lacks %s:\n%s", want, text);
        char *f[16];
        char *end = strchr(row, '\n');
        if (end) *end = 0;
        ck_assert_int_eq(csv_split(row, f, 16), 8);
        ASSERT_SAME(strtod(f[4], NULL), r.statistic, center);
        ASSERT_SAME(strtod(f[7], NULL), r.p_value, center);
        free(text);
    }
    /* Kruskal-Wallis across the three */
    const double *all[3] = {vals[0], vals[1], vals[2]};
    tb_test_result r;
    ck_assert(tb_kruskal(all, sizes, 3, &r, &err) == TB_OK);
    char path[900];
    snprintf(path, sizeof path, "%s/tables/kruskal.csv", out);
    char *text = tbt_slurp(path, NULL), *f[8];
    char *row = strchr(text, '\n') + 1;
    ck_assert_int_eq(csv_split(row, f, 8), 5);
    ASSERT_SAME(strtod(f[2], NULL), r.statistic, "H");
    ASSERT_SAME(strtod(f[4], NULL), r.p_value, "p");
    free(text);
    tb_grouping_free(&g);
    tb_study_data_free(d);
}
END_TEST

START_TEST(random_search_histogram_matches_the_sweep)
{
    tb_study_data *d = load();
    ck_assert_int_ge(d->nsweeps, 1);
    const tb_ad_sweep *sw = &d->sweeps[0];
    double v[512];
    int n = 0;
    for (int i = 0; i < sw->n_runs; i++) {
        const tb_ad_sweep_run *r = &d->sweep_runs[sw->first_run + i];
        if (!strcmp(r->status, "finished") && !isnan(r->test_accuracy)) v[n++] = 100 * r->test_accuracy;
    }
    tb_summary s = tb_summarize(v, n);
    ASSERT_SAME(csv_value("sweeps", "sweep", sw->id, NULL, NULL, "mean_pct"), s.mean, "sweep mean");
    ASSERT_SAME(csv_value("sweeps", "sweep", sw->id, NULL, NULL, "finished"), (double)n, "finished runs");
    tb_study_data_free(d);
}
END_TEST

START_TEST(tries_to_threshold_counts_submissions_in_order)
{
    tb_study_data *d = load();
    /* participant 0's tries to 25%, by hand: submissions that ran, in order */
    const tb_ad_participant *pp = &d->participants[0];
    int tries = 0, reached = -1;
    for (int k = 0; k < pp->n_submissions && reached < 0; k++) {
        const tb_ad_submission *s = &d->subs[pp->first_submission + k];
        if (!s->run_id[0]) continue;
        tries++;
        if (!strcmp(s->status, "finished") && s->val_accuracy >= 0.25) reached = tries;
    }
    double got = csv_value("participants", "participant", pp->id, NULL, NULL, "tries_to_25");
    if (reached < 0)
        ck_assert(isnan(got));
    else
        ck_assert_int_eq((int)got, reached);
    tb_study_data_free(d);
}
END_TEST

/* ---- pieces missing ---------------------------------------------------------------------------- */

START_TEST(one_group_says_what_it_left_out)
{
    char dir[600], arch[700], rep[700], args[2048];
    static char text[65536];
    tbt_mkdtemp(dir, sizeof dir, "analyze_one");
    snprintf(arch, sizeof arch, "%s/study", dir);
    snprintf(rep, sizeof rep, "%s/report", dir);
    snprintf(args, sizeof args, "simulate %s --participants 1 --final-seeds 1 --quiet", arch);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 0);
    snprintf(args, sizeof args, "analyze %s --out %s", arch, rep);
    ck_assert_msg(tbt_tunebench(args, "2>&1", text, sizeof text) == 0, "%s", text);
    TBT_ASSERT_HAS(text, "left out");
    char path[800];
    snprintf(path, sizeof path, "%s/report.html", rep);
    char *html = tbt_slurp(path, NULL);
    HTML_HAS(html, "These parts of the analysis were left out");
    HTML_HAS(html, "there is only one group");
    HTML_HAS(html, "Levene");
    HTML_HAS(html, "sweeps (random-search histogram");
    free(html);
    tbt_rm_rf(dir);
}
END_TEST

/* An archive read with nothing final and no sweeps, built in memory: tb_analyze still writes a report. */
START_TEST(no_finals_no_sweeps_in_memory)
{
    char dir[600];
    tbt_mkdtemp(dir, sizeof dir, "analyze_empty");
    static tb_study_data d;
    static tb_ad_participant people[3];
    static tb_ad_submission subs[3];
    snprintf(d.dir, sizeof d.dir, "%s", dir);
    d.has_study = 1;
    for (int p = 0; p < 3; p++) {
        snprintf(people[p].id, sizeof people[p].id, "p%d", p);
        people[p].dl_months = 3.0 * p;
        people[p].programming_months = NAN;
        people[p].ml_months = NAN;
        people[p].final_mean = people[p].final_sd = NAN;
        people[p].first_submission = p;
        people[p].n_submissions = 1;
        subs[p].participant = p;
        subs[p].number = 1;
        snprintf(subs[p].run_id, sizeof subs[p].run_id, "r%d", p);
        snprintf(subs[p].status, sizeof subs[p].status, "cancelled");
        subs[p].val_accuracy = subs[p].training_s = subs[p].queued_s = NAN;
    }
    d.participants = people;
    d.np = 3;
    d.subs = subs;
    d.ns = 3;
    tb_analysis_opts o;
    tb_analysis_opts_default(&o);
    char outdir[700];
    snprintf(outdir, sizeof outdir, "%s/out", dir);
    tb_err err = {{0}};
    ck_assert_msg(tb_analyze(&d, &o, outdir, NULL, &err) == TB_OK, "%s", err.msg);
    char path[800];
    snprintf(path, sizeof path, "%s/report.html", outdir);
    char *html = tbt_slurp(path, NULL);
    HTML_HAS(html, "no participant has a finished final run");
    HTML_HAS(html, "participant p0 from the final-accuracy statistics");
    HTML_HAS(html, "no submission has a comment");
    HTML_HAS(html, "the archive has none");
    free(html);
    tbt_rm_rf(dir);
}
END_TEST

/* Another background field and three thresholds: groups and rows follow them. */
START_TEST(other_groupings_and_thresholds)
{
    static char text[65536];
    char args[2048], other[700];
    snprintf(other, sizeof other, "%s/by_level", tmpdir);
    snprintf(args, sizeof args, "analyze %s --out %s --group-by self_level --thresholds 0.3,0.6,0.9", archive, other);
    ck_assert_msg(tbt_tunebench(args, "2>&1", text, sizeof text) == 0, "%s", text);
    TBT_ASSERT_HAS(text, "group level ");
    char path[900];
    snprintf(path, sizeof path, "%s/tables/tries_to_threshold.csv", other);
    char *csv = tbt_slurp(path, NULL);
    TBT_ASSERT_HAS(csv, ",90,");
    ck_assert_int_eq(count(csv, "\nlevel "), 3 * count(csv, ",30,"));
    free(csv);
    snprintf(path, sizeof path, "%s/tables/participants.csv", other);
    csv = tbt_slurp(path, NULL);
    TBT_ASSERT_HAS(csv, "tries_to_30,tries_to_60,tries_to_90");
    free(csv);
    snprintf(args, sizeof args, "analyze %s --out %s --group-by education", archive, other);
    ck_assert_msg(tbt_tunebench(args, "2>&1", text, sizeof text) == 0, "%s", text);
    snprintf(path, sizeof path, "%s/figures/tries_to_threshold.svg", other);
    struct stat st;
    ck_assert(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/tables/groups.csv", other);
    csv = tbt_slurp(path, NULL);
    TBT_ASSERT_LACKS(csv, "level "); /* the earlier report's tables were replaced */
    free(csv);
}
END_TEST

/* Machines (automated tuners) are a group of their own, compared with every group of people. */
START_TEST(machines_are_their_own_group)
{
    char dir[500];
    tbt_mkdtemp(dir, sizeof dir, "analyze_machines");
    static tb_study_data d;
    static tb_ad_participant people[8];
    static tb_ad_submission subs[8];
    snprintf(d.dir, sizeof d.dir, "%s", dir);
    d.has_study = 1;
    for (int p = 0; p < 8; p++) {
        snprintf(people[p].id, sizeof people[p].id, p >= 6 ? "tuner-%d" : "p%d", p);
        people[p].machine = p >= 6;
        people[p].dl_months = p >= 6 ? NAN : (p < 3 ? 0 : 12);
        people[p].programming_months = people[p].ml_months = NAN;
        people[p].final_mean = 0.3 + 0.08 * p;
        people[p].final_sd = 0.01;
        people[p].finals_finished = 3;
        people[p].first_submission = p;
        people[p].n_submissions = 1;
        subs[p].participant = p;
        subs[p].number = 1;
        snprintf(subs[p].run_id, sizeof subs[p].run_id, "r%d", p);
        snprintf(subs[p].status, sizeof subs[p].status, "finished");
        subs[p].val_accuracy = people[p].final_mean;
        subs[p].training_s = 10;
        subs[p].queued_s = 1;
    }
    d.participants = people;
    d.np = 8;
    d.subs = subs;
    d.ns = 8;
    tb_analysis_opts o;
    tb_analysis_opts_default(&o);
    tb_grouping g;
    tb_err err = {{0}};
    ck_assert(tb_analysis_group(&d, &o, &g, &err) == TB_OK);
    ck_assert_int_eq(g.n_groups, 4);
    ck_assert_int_eq(g.machine_group, 3);
    ck_assert_str_eq(g.names[3], "machine");
    ck_assert_int_eq(g.of[6], 3);
    ck_assert_int_eq(g.of[0], 0);
    ck_assert_int_eq(g.of[5], 2);
    tb_grouping_free(&g);
    char saved[sizeof out];
    memcpy(saved, out, sizeof out); /* csv_value reads from out; restored for CK_FORK=no */
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_msg(tb_analyze(&d, &o, out, NULL, &err) == TB_OK, "%s", err.msg);
    ASSERT_SAME(csv_value("groups", "group", "machine", NULL, NULL, "mean_pct"), 100 * (0.3 + 0.08 * 6.5),
                "the machines' mean");
    ck_assert(!isnan(csv_value("levene", "group_a", "novice (0 mo)", "group_b", "machine", "W")));
    /* machines are not in the correlation with experience: 6 people */
    ck_assert_int_eq((int)csv_value("spearman", "x", "dl_months", "y", "final_mean_pct", "n"), 6);
    memcpy(out, saved, sizeof out);
    tbt_rm_rf(dir);
}
END_TEST

START_TEST(bad_options_are_named)
{
    static char text[8192];
    char args[2048];
    snprintf(args, sizeof args, "analyze %s --out %s/x --group-by shoe_size", archive, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 2);
    TBT_ASSERT_HAS(text, "--group-by = 'shoe_size'");
    TBT_ASSERT_HAS(text, "programming_months");
    snprintf(args, sizeof args, "analyze %s --out %s/x --groups 9,0", archive, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 2);
    TBT_ASSERT_HAS(text, "--groups = '9,0'");
    TBT_ASSERT_HAS(text, "increasing");
    snprintf(args, sizeof args, "analyze %s --out %s/x --thresholds 0.5,50", archive, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 2);
    TBT_ASSERT_HAS(text, "--thresholds = '0.5,50'");
    snprintf(args, sizeof args, "analyze %s --out %s/x --bootstrap 5", archive, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 2);
    TBT_ASSERT_HAS(text, "--bootstrap = '5'");
    snprintf(args, sizeof args, "analyze %s/nothing --out %s/x", tmpdir, tmpdir);
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", text, sizeof text), 1);
    ck_assert_int_eq(tbt_tunebench("analyze --out /tmp/x", "2>&1", text, sizeof text), 2);
    TBT_ASSERT_HAS(text, "ARCHIVE is missing");
}
END_TEST

/* The report as a reader sees it, kept in the build tree; skipped without Chromium. */
START_TEST(screenshot_is_kept)
{
    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_analyze: no chromium: no screenshot\n");
        return;
    }
    char cmd[4096], dir[900];
    snprintf(dir, sizeof dir, "%s/../test-artifacts/analyze", TB_PLUGIN_BUILD_DIR);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking "
             "--screenshot=%s/report.png --window-size=1280,2400 file://%s/report.html >/dev/null 2>&1",
             dir, dir, out);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/report.png", dir);
    struct stat st;
    ck_assert_msg(stat(cmd, &st) == 0 && st.st_size > 10000, "no screenshot at %s", cmd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("analyze");
    TCase *tc = tcase_create("report");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, report_inlines_every_figure_and_fetches_nothing);
    tcase_add_test(tc, every_table_is_written);
    tcase_add_test(tc, spearman_equals_stats_on_the_data);
    tcase_add_test(tc, group_tests_equal_stats_on_the_data);
    tcase_add_test(tc, random_search_histogram_matches_the_sweep);
    tcase_add_test(tc, tries_to_threshold_counts_submissions_in_order);
    tcase_add_test(tc, one_group_says_what_it_left_out);
    tcase_add_test(tc, no_finals_no_sweeps_in_memory);
    tcase_add_test(tc, other_groupings_and_thresholds);
    tcase_add_test(tc, machines_are_their_own_group);
    tcase_add_test(tc, bad_options_are_named);
    tcase_add_test(tc, screenshot_is_kept);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
