/* cmd_simulate.c: `tunebench simulate` (the library side is analysis/simulate.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/simulate.h"
#include "cmd.h"

static void simulate_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench simulate ARCHIVE [--participants N] [--seed S] [--minutes M] [--random-search K]\n"
            "                          [--slots S] [--final-seeds F] [--plugin-path P] [--force] [--quiet]\n"
            "       tunebench simulate ARCHIVE --synthetic-runs R [--epochs E] [--batches B] [--seed S] [--force]\n\n"
            "A simulated study (docs/simulate.md), to try `tunebench analyze` without running one: writes a\n"
            "tiny synthetic image task and a study configuration into ARCHIVE (task.h5, simulate.ini), opens\n"
            "the study with the real core and drives N scripted participants through it: register (novices\n"
            "with 0 months of deep learning, medium < 9, experts >= 9), consent, several submissions with a\n"
            "comment on each value, cancels, the final choice and its final evaluations. Experience shapes\n"
            "the choices (experts pick sensible values, novices guess, sometimes outside the allowed range);\n"
            "the same --seed gives the same choices.\n\n"
            "  --participants N   scripted participants (default 12; 1 to %d)\n"
            "  --seed S           every choice follows it (default 0)\n"
            "  --minutes M        each participant's budget in minutes (default 30)\n"
            "  --random-search K  also K configurations of random search into the same archive (default 0)\n"
            "  --slots S          runs at once (default 2)\n"
            "  --final-seeds F    final evaluations per participant, seeds 0..F-1 (default 3; 1 to 10)\n"
            "  --plugin-path P    a plugin file or directory searched first\n"
            "  --force            replace ARCHIVE when it already holds an archive\n"
            "  --quiet            only the summary\n\n"
            "  --synthetic-runs R  instead: a large archive for benchmarks, without training: R random-search\n"
            "                     runs of E epochs (--epochs, default 100) of B batch losses (--batches, default\n"
            "                     1000) each, through the archive writer, with their sweep table (no study.h5)\n\n"
            "Exit codes: 0 done, 1 failed, 2 bad usage.\n",
            TB_SIMULATE_MAX_PARTICIPANTS);
}

static void print_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static int parse_int(const char *flag, const char *text, long long lo, long long hi, int *out)
{
    long long v;
    if (tb_cmd_parse_int("simulate", flag, text, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

int tb_cmd_simulate(int argc, char **argv)
{
    tb_simulate_options o;
    tb_simulate_defaults(&o);
    const char *archive = NULL;
    int force = 0, quiet = 0, epochs_given = 0, batches_given = 0, study_opts = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            simulate_usage(stdout);
            return TB_EXIT_OK;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        if (a[0] != '-') {
            if (archive) {
                fprintf(stderr, "tunebench simulate: one archive folder only ('%s' and '%s')\n", archive, a);
                return TB_EXIT_USAGE;
            }
            archive = a;
            continue;
        }
        static const char *const known[] = {"--participants", "--seed", "--minutes", "--random-search", "--slots",
                                            "--final-seeds", "--plugin-path", "--synthetic-runs", "--epochs",
                                            "--batches"};
        int is_known = 0;
        for (size_t k = 0; k < TB_ARRAY_LEN(known); k++) is_known |= !strcmp(a, known[k]);
        if (!is_known) {
            fprintf(stderr, "tunebench simulate: unknown option '%s' (see tunebench simulate --help)\n", a);
            return TB_EXIT_USAGE;
        }
        if (!(v = tb_cmd_need_value("simulate", argc, argv, &i))) return TB_EXIT_USAGE;
        int bad = 0;
        if (!strcmp(a, "--participants"))
            bad = parse_int(a, v, 1, TB_SIMULATE_MAX_PARTICIPANTS, &o.participants), study_opts++;
        else if (!strcmp(a, "--random-search")) bad = parse_int(a, v, 0, 100000, &o.random_search), study_opts++;
        else if (!strcmp(a, "--slots")) bad = parse_int(a, v, 1, 64, &o.slots), study_opts++;
        else if (!strcmp(a, "--final-seeds")) bad = parse_int(a, v, 1, 10, &o.final_seeds), study_opts++;
        else if (!strcmp(a, "--synthetic-runs")) bad = parse_int(a, v, 1, 100000, &o.synthetic_runs);
        else if (!strcmp(a, "--epochs")) bad = parse_int(a, v, 1, 10000, &o.synthetic_epochs), epochs_given = 1;
        else if (!strcmp(a, "--batches")) bad = parse_int(a, v, 1, 100000, &o.synthetic_batches), batches_given = 1;
        else if (!strcmp(a, "--plugin-path")) o.plugin_path = v, study_opts++;
        else if (!strcmp(a, "--seed")) {
            long long s;
            bad = tb_cmd_parse_int("simulate", a, v, 0, (long long)1 << 62, &s);
            o.seed = (uint64_t)s;
        } else if (!strcmp(a, "--minutes")) {
            char *end = NULL;
            double m = strtod(v, &end);
            if (end == v || *end || !(m >= 0.01) || m > 100000) {
                fprintf(stderr, "tunebench simulate: --minutes = '%s' is not a number in [0.01, 100000]\n", v);
                bad = -1;
            }
            o.minutes = m, study_opts++;
        }
        if (bad) return TB_EXIT_USAGE;
    }
    if (!archive) {
        fprintf(stderr, "tunebench simulate: no archive folder given (e.g. tunebench simulate studies/simulated; see "
                        "--help)\n");
        return TB_EXIT_USAGE;
    }
    if (!o.synthetic_runs && (epochs_given || batches_given)) {
        fprintf(stderr, "tunebench simulate: %s applies to --synthetic-runs R only\n",
                epochs_given ? "--epochs" : "--batches");
        return TB_EXIT_USAGE;
    }
    if (o.synthetic_runs && study_opts) {
        fprintf(stderr, "tunebench simulate: --synthetic-runs writes runs without a study: --participants, "
                        "--minutes, --random-search, --slots, --final-seeds and --plugin-path do not apply\n");
        return TB_EXIT_USAGE;
    }

    if (!quiet) o.progress = print_line;
    tb_err err = {{0}};
    tb_status st = tb_simulate_prepare_dir(archive, force, "--force", &err);
    if (st != TB_OK) {
        fprintf(stderr, "tunebench simulate: %s\n", err.msg);
        return st == TB_EINVAL ? TB_EXIT_USAGE : TB_EXIT_FAILED;
    }
    tb_simulate_result r;
    if (o.synthetic_runs) {
        if (!quiet) {
            printf("tunebench simulate: a synthetic archive in %s: %d runs x %d epochs x %d batches (no training)\n",
                   archive, o.synthetic_runs, o.synthetic_epochs, o.synthetic_batches);
            fflush(stdout);
        }
        st = tb_simulate_synthetic(archive, &o, &r, &err);
        if (st != TB_OK) {
            fprintf(stderr, "tunebench simulate: %s\n", err.msg);
            return TB_EXIT_FAILED;
        }
        printf("wrote %d runs (%lld batch losses) in %.1f s: %.1f MiB on disk; results %s/sweeps/%s.h5\n",
               r.sweep_runs, (long long)o.synthetic_runs * o.synthetic_epochs * o.synthetic_batches, r.seconds,
               (double)r.bytes / (1024.0 * 1024.0), archive, r.sweep_id);
        return TB_EXIT_OK;
    }
    /* each of the many runs loads the task and says so: only warnings, unless asked for */
    setenv("TUNEBENCH_LOG_LEVEL", "warn", 0);
    if (!quiet) {
        printf("tunebench simulate: %d participants, seed %llu, archive %s\n", o.participants,
               (unsigned long long)o.seed, archive);
        fflush(stdout);
    }
    st = tb_simulate_study(archive, &o, &r, &err);
    if (st != TB_OK) {
        fprintf(stderr, "tunebench simulate: %s\n", err.msg);
        return st == TB_EINVAL ? TB_EXIT_USAGE : TB_EXIT_FAILED;
    }
    printf("simulated %d participants (%d novice, %d medium, %d expert) in %.1f s: %d submissions (%d rejected, %d "
           "cancelled, %d diverged, %d finished), %d of %d final evaluations finished",
           r.participants, r.by_group[0], r.by_group[1], r.by_group[2], r.seconds, r.submissions, r.rejected,
           r.cancelled, r.diverged, r.finished, r.finals_finished, r.finals);
    if (r.sweep_id[0]) printf("; random search %s (%d runs)", r.sweep_id, r.sweep_runs);
    printf("\nthe archive: %s (study.h5, index.h5, runs/%s); its configuration: %s/simulate.ini\n", archive,
           r.sweep_id[0] ? ", sweeps/" : "", archive);
    return TB_EXIT_OK;
}
