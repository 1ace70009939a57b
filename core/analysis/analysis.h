/* analysis.h: the paper's analysis (Anand et al., BMVC 2020, section 3) of
 * an archive read by study_data.h: groups by experience, final accuracy,
 * the tests of stats.h, tries to thresholds, best-so-far curves, presets,
 * comments, time per participant, sweeps, humans against machines; written
 * as tables (CSV), figures (SVG from PLplot) and one self-contained
 * report.html (docs/analysis.md). */
#ifndef TB_ANALYSIS_ANALYSIS_H
#define TB_ANALYSIS_ANALYSIS_H

#include <stdint.h>
#include <stdio.h>

#include "analysis/study_data.h"
#include "base/common.h"

/* The background field participants are grouped by. */
typedef enum tb_group_by {
    TB_GROUP_DL_MONTHS,
    TB_GROUP_PROGRAMMING_MONTHS,
    TB_GROUP_EDUCATION,
    TB_GROUP_SELF_LEVEL,
} tb_group_by;

#define TB_AN_MAX_CUTS 8
#define TB_AN_MAX_THRESHOLDS 8
#define TB_AN_MAX_GROUPS 16

typedef struct tb_analysis_opts {
    tb_group_by group_by;
    /* Month cuts c1 < c2 < ...: group 0 is x <= c1, group i is c_i < x < c_(i+1),
     * the last x >= c_k (default 0, 9: novice 0, medium < 9, expert >= 9). */
    double cuts[TB_AN_MAX_CUTS];
    int n_cuts;
    double thresholds[TB_AN_MAX_THRESHOLDS]; /* validation accuracy, fractions (default 0.25, 0.5) */
    int n_thresholds;
    int bootstrap; /* resamples for the CIs of group means (default 2000) */
    uint64_t seed;
} tb_analysis_opts;

/* The defaults above. */
void tb_analysis_opts_default(tb_analysis_opts *o);
/* "dl_months" etc. into *out: 0, or -1 when name is none of them. */
int tb_group_by_parse(const char *name, tb_group_by *out);
const char *tb_group_by_name(tb_group_by g);

/* The group a participant falls in (machines: the last group, "machine"),
 * or -1 when the grouping field is not given. names[] receives the groups'
 * labels; *n_groups their count. Exposed so tests group as the report does. */
typedef struct tb_grouping {
    int n_groups;
    char names[TB_AN_MAX_GROUPS][64];
    int machine_group; /* index of "machine", or -1 when no participant is one */
    int *of;           /* per participant: group index or -1 (malloc'd, np entries) */
} tb_grouping;
tb_status tb_analysis_group(const tb_study_data *d, const tb_analysis_opts *o, tb_grouping *g, tb_err *err);
void tb_grouping_free(tb_grouping *g);

/* Share of participant p's comments (over its submissions' 15 hyperparameters,
 * non-empty comments only) that are "It is just a guess."; NaN without comments. */
double tb_analysis_guess_share(const tb_study_data *d, int p);

/* Everything: out_dir/report.html, out_dir/figures/NAME.svg, out_dir/tables/NAME.csv;
 * a short summary to summary (may be NULL). Pieces the archive lacks are left
 * out and said in the report and summary, never an error. */
tb_status tb_analyze(const tb_study_data *d, const tb_analysis_opts *o, const char *out_dir, FILE *summary,
                     tb_err *err);

#endif
