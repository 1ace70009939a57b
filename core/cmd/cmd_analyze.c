/* cmd_analyze.c: `tunebench analyze ARCHIVE --out DIR [...]`: the paper's
 * analysis of an archive as report.html, figures/NAME.svg and tables/NAME.csv
 * (analysis/analysis.h, docs/analysis.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"
#include "analysis/study_data.h"
#include "cmd.h"

static void analyze_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench analyze ARCHIVE --out DIR [--group-by FIELD] [--groups C1,C2,...]\n"
            "                         [--thresholds T1,T2,...] [--bootstrap N] [--seed S]\n\n"
            "The paper's analysis (Anand et al., BMVC 2020, section 3) of a study archive, its sweeps and\n"
            "repeats: DIR/report.html (self-contained), DIR/figures/NAME.svg, DIR/tables/NAME.csv, and a\n"
            "summary here.\n\n"
            "  --out DIR          where to write (created; report.html, figures/*.svg and tables/*.csv of an\n"
            "                     earlier report there are replaced)\n"
            "  --group-by FIELD   dl_months (default), programming_months, education or self_level\n"
            "  --groups C1,C2     month cuts for dl_months / programming_months, increasing (default 0,9:\n"
            "                     novice 0 months, medium < 9, expert >= 9)\n"
            "  --thresholds T,..  validation accuracies (fractions in (0, 1]) for tries to a threshold\n"
            "                     (default 0.25,0.5)\n"
            "  --bootstrap N      resamples for the group means' confidence intervals, 100..1000000 (default 2000)\n"
            "  --seed S           the bootstrap's seed (default 1)\n\n"
            "docs/analysis.md explains every figure and table. Exit code: 0 written, 1 the archive could not\n"
            "be read or the report written, 2 bad usage.\n");
}

/* A comma-separated list of numbers into out (at most cap); its count, or -1
 * after a message naming the option, the value and what is allowed. */
static int parse_list(const char *flag, const char *text, double lo, double hi, int lo_open, int increasing,
                      double *out, int cap)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        int bad = end == p || (*end && *end != ',') || errno || !isfinite(v) || v > hi || (lo_open ? v <= lo : v < lo);
        if (!bad && increasing && n > 0 && v <= out[n - 1]) bad = 1;
        if (bad || n == cap) {
            fprintf(stderr,
                    "tunebench analyze: %s = '%s': expected up to %d comma-separated numbers in %s%g, %g]%s\n", flag,
                    text, cap, lo_open ? "(" : "[", lo, hi, increasing ? ", increasing" : "");
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(stderr, "tunebench analyze: %s = '%s': expected at least one number\n", flag, text);
    return n ? n : -1;
}

/* Returns 0, 1 after --help, or -1 after a message. */
static int parse_args(int argc, char **argv, const char **dir, const char **out, tb_analysis_opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        long long num;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            analyze_usage(stdout);
            return 1;
        }
        if (a[0] != '-') {
            if (*dir) {
                fprintf(stderr, "tunebench analyze: one archive only ('%s' and '%s')\n", *dir, a);
                return -1;
            }
            *dir = a;
            continue;
        }
        if (!strcmp(a, "--out") || !strcmp(a, "--group-by") || !strcmp(a, "--groups") ||
            !strcmp(a, "--thresholds") || !strcmp(a, "--bootstrap") || !strcmp(a, "--seed")) {
            if (!(v = tb_cmd_need_value("analyze", argc, argv, &i))) return -1;
        } else {
            fprintf(stderr, "tunebench analyze: unknown option '%s' (see tunebench analyze --help)\n", a);
            return -1;
        }
        if (!strcmp(a, "--out")) {
            *out = v;
        } else if (!strcmp(a, "--group-by")) {
            if (tb_group_by_parse(v, &o->group_by) != 0) {
                fprintf(stderr,
                        "tunebench analyze: --group-by = '%s': expected dl_months, programming_months, education or "
                        "self_level\n",
                        v);
                return -1;
            }
        } else if (!strcmp(a, "--groups")) {
            if ((o->n_cuts = parse_list("--groups", v, 0, 1200, 0, 1, o->cuts, TB_AN_MAX_CUTS)) < 0) return -1;
        } else if (!strcmp(a, "--thresholds")) {
            if ((o->n_thresholds = parse_list("--thresholds", v, 0, 1, 1, 0, o->thresholds, TB_AN_MAX_THRESHOLDS)) < 0)
                return -1;
        } else if (!strcmp(a, "--bootstrap")) {
            if (tb_cmd_parse_int("analyze", "--bootstrap", v, 100, 1000000, &num) != 0) return -1;
            o->bootstrap = (int)num;
        } else {
            if (tb_cmd_parse_int("analyze", "--seed", v, 0, (long long)1 << 62, &num) != 0) return -1;
            o->seed = (uint64_t)num;
        }
    }
    if (!*dir || !*out) {
        fprintf(stderr, "tunebench analyze: %s\n", !*dir ? "ARCHIVE is missing" : "--out DIR is missing");
        analyze_usage(stderr);
        return -1;
    }
    return 0;
}

int tb_cmd_analyze(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    tb_analysis_opts o;
    tb_analysis_opts_default(&o);
    int rc = parse_args(argc, argv, &dir, &out, &o);
    if (rc != 0) return rc > 0 ? TB_EXIT_OK : TB_EXIT_USAGE;
    tb_err err = {{0}};
    tb_study_data *d = NULL;
    if (tb_study_data_load(dir, &d, &err) != TB_OK) {
        fprintf(stderr, "tunebench analyze: %s\n", err.msg);
        return TB_EXIT_FAILED;
    }
    tb_status st = tb_analyze(d, &o, out, stdout, &err);
    tb_study_data_free(d);
    if (st != TB_OK) {
        fprintf(stderr, "tunebench analyze: %s\n", err.msg);
        return st == TB_EINVAL ? TB_EXIT_USAGE : TB_EXIT_FAILED;
    }
    return TB_EXIT_OK;
}
