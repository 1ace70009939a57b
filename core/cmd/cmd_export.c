/* cmd_export.c: `tunebench export ARCHIVE --single-file OUT.h5`: a study
 * archive packed into one file (store/archive.h, docs/archive.md); and
 * `--csv DIR`: its tidy tables as CSV (analysis/csv_export.h, docs/csv.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/csv_export.h"
#include "analysis/study_data.h"
#include "cmd.h"
#include "store/archive.h"

/* The study Ctrl-C goes to; NULL once it is closing. */
static void export_usage(FILE *f)
{
    fprintf(f, "usage: tunebench export ARCHIVE --single-file OUT.h5\n"
               "       tunebench export ARCHIVE --csv DIR\n\n"
               "Packs a study archive (a directory) into one self-contained HDF5 file: /index (every run),\n"
               "/runs/<id> (each run's curves), and the study's tables (/study, /participants, /submissions,\n"
               "/finals, /events) and sweep results (/sweeps/<id>) when present. Takes no lock: a live archive\n"
               "exports as its files show it at that moment. See docs/archive.md.\n\n"
               "--csv DIR writes tidy tables for R and pandas instead (created when missing):\n"
               "participants.csv, submissions.csv, finals.csv, runs.csv, epochs.csv, batches.csv and\n"
               "sweep_runs.csv. Each column is described in docs/csv.md. What the archive lacks is said on\n"
               "stderr and left out.\n");
}

static int export_csv(const char *dir, const char *out_dir)
{
    tb_err err = {{0}};
    tb_study_data *d = NULL;
    if (tb_study_data_load(dir, &d, &err) != TB_OK) {
        fprintf(stderr, "tunebench: %s\n", err.msg);
        return TB_EXIT_FAILED;
    }
    tb_csv_result res;
    tb_status st = tb_csv_export(d, out_dir, &res, &err);
    if (d->notes[0]) fprintf(stderr, "tunebench: left out of %s:\n%s", dir, d->notes);
    if (st == TB_OK && res.notes[0]) fprintf(stderr, "%s", res.notes);
    tb_study_data_free(d);
    if (st != TB_OK) {
        fprintf(stderr, "tunebench: %s\n", err.msg);
        return TB_EXIT_FAILED;
    }
    printf("exported %s to %s: %lld participants, %lld submissions, %lld finals, %lld runs, %lld epochs, "
           "%lld batches, %lld sweep runs\n",
           dir, out_dir, (long long)res.participants, (long long)res.submissions, (long long)res.finals,
           (long long)res.runs, (long long)res.epochs, (long long)res.batches, (long long)res.sweep_runs);
    return TB_EXIT_OK;
}

int tb_cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *csv = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            export_usage(stdout);
            return TB_EXIT_OK;
        }
        if (!strcmp(argv[i], "--single-file")) {
            if (!(out = tb_cmd_need_value(NULL, argc, argv, &i))) return TB_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--csv")) {
            if (!(csv = tb_cmd_need_value(NULL, argc, argv, &i))) return TB_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tunebench: unknown option '%s' (see tunebench export --help)\n", argv[i]);
            return TB_EXIT_USAGE;
        } else if (dir) {
            fprintf(stderr, "tunebench: one archive only ('%s' and '%s')\n", dir, argv[i]);
            return TB_EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || (!out && !csv)) {
        export_usage(stderr);
        return TB_EXIT_USAGE;
    }
    if (out && csv) {
        fprintf(stderr, "tunebench: --single-file and --csv are two exports: give one (see tunebench export --help)\n");
        return TB_EXIT_USAGE;
    }
    tb_err err = {{0}};
    if (csv) return export_csv(dir, csv);
    if (tb_archive_export(dir, out, &err) != TB_OK) {
        fprintf(stderr, "tunebench: %s\n", err.msg);
        return TB_EXIT_FAILED;
    }
    printf("exported %s to %s\n", dir, out);
    return TB_EXIT_OK;
}
