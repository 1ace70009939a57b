/* cmd_export.c: `tunebench export ARCHIVE --single-file OUT.h5`: a study
 * archive packed into one file (store/archive.h, docs/archive.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "store/archive.h"

/* The study Ctrl-C goes to; NULL once it is closing. */
static void export_usage(FILE *f)
{
    fprintf(f, "usage: tunebench export ARCHIVE --single-file OUT.h5\n\n"
               "Packs a study archive (a directory) into one self-contained HDF5 file: /index (every run),\n"
               "/runs/<id> (each run's curves), and the study's tables (/study, /participants, /submissions,\n"
               "/finals, /events) and sweep results (/sweeps/<id>) when present. Takes no lock: a live archive\n"
               "exports as its files show it at that moment. See docs/archive.md.\n");
}

int tb_cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            export_usage(stdout);
            return TB_EXIT_OK;
        }
        if (!strcmp(argv[i], "--single-file")) {
            if (!(out = tb_cmd_need_value(NULL, argc, argv, &i))) return TB_EXIT_USAGE;
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
    if (!dir || !out) {
        export_usage(stderr);
        return TB_EXIT_USAGE;
    }
    tb_err err = {{0}};
    if (tb_archive_export(dir, out, &err) != TB_OK) {
        fprintf(stderr, "tunebench: %s\n", err.msg);
        return TB_EXIT_FAILED;
    }
    printf("exported %s to %s\n", dir, out);
    return TB_EXIT_OK;
}
