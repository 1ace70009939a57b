/* cmd_study.c: `tunebench study` (a study with a front-end plugin) and
 * `tunebench export` (an archive packed into one file). */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "host/plugin.h"
#include "run/run.h"
#include "study/study.h"

/* The study the signals go to; NULL once it is closing (under study_mu for act). */
static tb_study *volatile current_study;
static pthread_mutex_t study_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stopped_by;
static pthread_t main_thread;

/* In the handler: Ctrl-C cancels the run the participant is watching. */
static void note_signal(void *user, int sig)
{
    (void)user;
    tb_study *s = current_study;
    if (sig == SIGINT && s) tb_study_note_interrupt(s);
}

/* In the signal setup's thread: SIGTERM or SIGHUP closes the study as the end
 * of the session would (live runs interrupted and credited), once. */
static void stop_study(void *user, int sig)
{
    (void)user;
    if (sig == SIGINT || atomic_exchange(&stopped_by, sig) != 0) return;
    char why[64];
    snprintf(why, sizeof why, "interrupted by %s", tb_cmd_signal_name(sig));
    pthread_mutex_lock(&study_mu);
    if (current_study) tb_study_stop(current_study, why);
    pthread_mutex_unlock(&study_mu);
    /* a front end reading the terminal: its input ends, and the read now is interrupted */
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    pthread_kill(main_thread, SIGINT);
}

static void study_usage(FILE *f)
{
    fprintf(f,
            "usage: tunebench study CONFIG [--frontend NAME]... [--script FILE] [--archive DIR] [--set k=v]...\n"
            "                       [--plugin-path P] [--no-wait] [--accept-journal-loss]\n\n"
            "Runs a tuning study (docs/study.md): participants register, tune the 15 hyperparameters of\n"
            "CONFIG's [space] within their time budget, and choose a final configuration, which is retrained\n"
            "once per final seed and scored on the test split. Everything goes to the study's archive\n"
            "([study] archive, or --archive); running the same command again continues the study after a\n"
            "crash or a stop.\n\n"
            "  --frontend NAME   a front-end plugin (default: cli); its options come from CONFIG's [NAME].\n"
            "                    Repeatable: several front ends serve one study at once, e.g. --frontend http\n"
            "                    --frontend tuner (people in a browser beside machine participants); the\n"
            "                    session ends when every one has returned. [study] machine_participants adds\n"
            "                    the tuner front end (docs/tuners.md)\n"
            "  --script FILE     the first front end reads its script from FILE (cli: commands; '-': standard input)\n"
            "  --archive DIR     overrides [study] archive\n"
            "  --set k=v         overrides a configuration value (repeatable)\n"
            "  --plugin-path P   an extra plugin file or directory, searched first\n"
            "  --no-wait         do not wait for queued final evaluations at the end (they resume when the\n"
            "                    study is opened again)\n"
            "  --accept-journal-loss  open a study whose journal is damaged with intact records after the\n"
            "                    damage: they are cut with it (kept in study.journal.damaged-N, recorded in\n"
            "                    study.h5). Without it such a study is refused and nothing is changed\n\n"
            "Ctrl-C cancels the run a participant is watching, not the session. SIGTERM or SIGHUP closes\n"
            "the study cleanly: the runs in progress end interrupted (their time given back) and the\n"
            "study continues when opened again. Exit codes: 0 done, 1 the front end or the archive\n"
            "failed, 2 bad usage or configuration, 4 stopped by SIGTERM or SIGHUP.\n");
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_recovery(const tb_study_recovery *r)
{
    if (r->archive.interrupted || r->archive.rebuilt || r->archive.journals_cut || r->archive.damaged)
        fprintf(stderr,
                "tunebench: recovered the archive: %d runs, %d were live and are now interrupted, %d run files "
                "rebuilt, %d journals cut (%llu bytes), %d damaged files kept aside\n",
                r->archive.runs, r->archive.interrupted, r->archive.rebuilt, r->archive.journals_cut,
                (unsigned long long)r->archive.bytes_dropped, r->archive.damaged);
    if (r->participants)
        fprintf(stderr,
                "tunebench: continuing the study: %d participants; %d runs interrupted (%.1f s given back); %d "
                "final evaluations queued again\n",
                r->participants, r->interrupted_runs, r->credited_s, r->finals_requeued);
    if (r->adopted_runs)
        fprintf(stderr,
                "tunebench: %d runs were still on the cluster (Slurm jobs): followed again, not submitted twice; "
                "their epochs recorded from where the archive stopped\n", r->adopted_runs);
    if (r->journal_damaged)
        fprintf(stderr,
                "tunebench: the study journal was %s at byte %llu: %llu bytes cut (%llu intact records among them), "
                "kept in %s; study.h5 records the loss (events: journal_loss)\n",
                r->journal_records_lost ? "damaged" : "torn (a crash in the middle of a write)",
                (unsigned long long)r->journal_damage_at, (unsigned long long)r->journal_bytes_cut,
                (unsigned long long)r->journal_records_lost, r->journal_kept);
    if (r->unrecorded_runs)
        fprintf(stderr,
                "tunebench: %d runs in the archive are not in the study journal (the process stopped before "
                "recording them, or their records were cut): not counted as submissions; index.h5 says why, "
                "study.h5 lists them (events: unrecorded_run)\n",
                r->unrecorded_runs);
}

/* The sections a study configuration may have: its own, the model's and the
 * task's, and one per front-end plugin (so one file serves `--frontend cli`
 * and `--frontend http`); a front end's section is checked against its
 * options even when another front end runs. */
static tb_status check_study_sections(const tb_config *cfg, const tb_plugin_registry *reg, const char *frontend,
                                      tb_err *err)
{
    const char *model = tb_config_get(cfg, "model", "name"), *task = tb_config_get(cfg, "task", "name");
    const char *fixed[] = {"study", "space", "slurm", "model", "task", "train", "output", "plugins", frontend,
                           model ? model : "model", task ? task : "task"};
    const int n_fixed = (int)TB_ARRAY_LEN(fixed);
    const char **valid = calloc((size_t)(n_fixed + reg->count), sizeof *valid);
    if (!valid) return tb_fail(err, TB_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < n_fixed; i++) valid[n++] = fixed[i];
    tb_status st = TB_OK;
    for (int i = 0; i < reg->count && st == TB_OK; i++) {
        const tb_plugin *p = &reg->plugins[i];
        if (p->desc.kind != TB_PLUGIN_FRONTEND) continue;
        valid[n++] = p->desc.name;
        if (strcmp(p->desc.name, frontend) != 0 && tb_config_has_section(cfg, p->desc.name)) {
            tb_plugin_args *other = NULL;
            st = tb_plugin_args_resolve(p, cfg, p->desc.name, &other, err);
            tb_plugin_args_free(other);
        }
    }
    if (st == TB_OK) st = tb_config_check_sections(cfg, valid, n, err);
    free(valid);
    return st;
}

/* ---- several front ends at once ------------------------------------------------------------- */

#define MAX_FRONTENDS 8

typedef struct frontend_run {
    const tb_plugin *fe;
    tb_plugin_args *args;
    const tb_study_api *api;
    pthread_t thread;
    int started;
    tb_status st;
    tb_err err;
} frontend_run;

static void *frontend_main(void *arg)
{
    frontend_run *r = arg;
    r->st = tb_plugin_run_frontend(r->fe, r->api, r->args, &r->err);
    return NULL;
}

/* [study] machine_participants = random:2, asha:1 is the tuner front end's
 * participants option (docs/tuners.md): the tuner joins the front ends and
 * gets the value, unless [tuner] participants says otherwise (refused). */
static tb_status add_machine_participants(tb_config *cfg, const char **frontends, int *n_fe, tb_err *err)
{
    const char *spec = tb_config_get(cfg, "study", "machine_participants");
    if (!spec || !*spec) return TB_OK;
    const char *own = tb_config_get(cfg, "tuner", "participants");
    if (own && strcmp(own, spec) != 0)
        return tb_fail(err, TB_EINVAL, "study.machine_participants = '%s' and tuner.participants = '%s' disagree: "
                       "give the machine participants in one place", spec, own);
    tb_status st = tb_config_set(cfg, "tuner.participants", spec, err);
    if (st != TB_OK) return st;
    for (int i = 0; i < *n_fe; i++)
        if (!strcmp(frontends[i], "tuner")) return TB_OK;
    if (*n_fe == 0) frontends[(*n_fe)++] = "cli"; /* the people's front end stays the default */
    if (*n_fe == MAX_FRONTENDS) return tb_fail(err, TB_EINVAL, "too many front ends");
    frontends[(*n_fe)++] = "tuner";
    return TB_OK;
}

int tb_cmd_study(int argc, char **argv)
{
    const char *config = NULL, *script = NULL, *archive = NULL, *plugin_path = NULL;
    const char *frontends[MAX_FRONTENDS + 1] = {NULL};
    int no_wait = 0, n_sets = 0, n_fe = 0;
    tb_study_options opts = {0};
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets) return TB_EXIT_FAILED;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            study_usage(stdout);
            free(sets);
            return TB_EXIT_OK;
        }
        if (!strcmp(a, "--no-wait")) {
            no_wait = 1;
            continue;
        }
        if (!strcmp(a, "--accept-journal-loss")) {
            opts.accept_journal_loss = 1;
            continue;
        }
        if (a[0] != '-') {
            if (config) {
                fprintf(stderr, "tunebench: one configuration file only ('%s' and '%s')\n", config, a);
                free(sets);
                return TB_EXIT_USAGE;
            }
            config = a;
            continue;
        }
        const int fe_arg = !strcmp(a, "--frontend");
        if (fe_arg && n_fe == MAX_FRONTENDS) {
            fprintf(stderr, "tunebench: --frontend given more than %d times\n", MAX_FRONTENDS);
            free(sets);
            return TB_EXIT_USAGE;
        }
        const char **dst = fe_arg ? &frontends[n_fe++] : !strcmp(a, "--script") ? &script
                         : !strcmp(a, "--archive") ? &archive : !strcmp(a, "--plugin-path") ? &plugin_path : NULL;
        const char *v;
        if (!dst && strcmp(a, "--set") != 0) {
            fprintf(stderr, "tunebench: unknown option '%s' (see tunebench study --help)\n", a);
            free(sets);
            return TB_EXIT_USAGE;
        }
        if (!(v = tb_cmd_need_value(NULL, argc, argv, &i))) {
            free(sets);
            return TB_EXIT_USAGE;
        }
        if (dst) *dst = v;
        else sets[n_sets++] = (char *)v;
    }
    if (!config) {
        fprintf(stderr, "tunebench: no study configuration given (e.g. configs/study_fashion_mnist.ini; see --help)\n");
        free(sets);
        return TB_EXIT_USAGE;
    }

    tb_err err = {{0}};
    int code = TB_EXIT_USAGE;
    tb_plugin_registry reg = {0};
    frontend_run fes[MAX_FRONTENDS];
    memset(fes, 0, sizeof fes);
    tb_study *study = NULL;
    tb_config *cfg = tb_cmd_load_config(NULL, config, n_sets, sets, NULL, plugin_path);
    if (!cfg) {
        free(sets);
        return TB_EXIT_USAGE;
    }
    if (add_machine_participants(cfg, frontends, &n_fe, &err) != TB_OK) goto fail;
    if (n_fe == 0) frontends[n_fe++] = "cli";
    for (int i = 0; i < n_fe; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(frontends[i], frontends[j])) {
                tb_fail(&err, TB_EINVAL, "--frontend %s is given twice (each front end serves the whole study once)",
                        frontends[i]);
                goto fail;
            }
    char key[128];
    snprintf(key, sizeof key, "%s.script", frontends[0]);
    if (script && tb_config_set(cfg, key, script, &err) != TB_OK) goto fail;
    /* a terminal's Ctrl-C belongs to the first front end: a tuner beside it leaves the study's interrupt alone */
    for (int i = 1; i < n_fe; i++)
        if (!strcmp(frontends[i], "tuner") && !tb_config_get(cfg, "tuner", "ctrl_c") &&
            tb_config_set(cfg, "tuner.ctrl_c", "false", &err) != TB_OK)
            goto fail;

    /* the front ends first: a typo there should not cost a data load */
    if (tb_plugins_discover(&reg, tb_config_get(cfg, "plugins", "path"), &err) != TB_OK) goto fail;
    for (int i = 0; i < n_fe; i++)
        if (tb_plugin_find(&reg, TB_PLUGIN_FRONTEND, frontends[i], &fes[i].fe, &err) != TB_OK) goto fail;
    if (check_study_sections(cfg, &reg, frontends[0], &err) != TB_OK) goto fail;
    for (int i = 0; i < n_fe; i++)
        if (tb_plugin_args_resolve(fes[i].fe, cfg, frontends[i], &fes[i].args, &err) != TB_OK) goto fail;

    /* the archive's place before the study loads any data */
    const char *dir = archive ? archive : tb_config_get(cfg, "study", "archive");
    if (dir && tb_run_check_dir(archive ? "--archive" : "study.archive", dir, &err) != TB_OK) goto fail;
    tb_study_recovery rec;
    if (tb_study_open_opts(cfg, archive, &opts, &study, &rec, &err) != TB_OK) {
        code = (err.msg[0] && strstr(err.msg, "in use")) || rec.journal_refused ? TB_EXIT_FAILED : TB_EXIT_USAGE;
        if (rec.journal_refused) {
            fprintf(stderr, "tunebench: %s\n", err.msg);
            snprintf(err.msg, sizeof err.msg, "the study was not opened; to continue without the records after "
                     "the damage, run the same command with --accept-journal-loss");
        }
        goto fail;
    }
    print_recovery(&rec);
    current_study = study;
    atomic_store(&stopped_by, 0);
    main_thread = pthread_self();
    tb_cmd_signals sig;
    tb_cmd_signals_catch(&sig, &(tb_cmd_signal_opts){.note = note_signal, .act = stop_study});

    code = TB_EXIT_OK;
    /* the first front end in this thread (a terminal's Ctrl-C is its), the others beside it */
    for (int i = 1; i < n_fe; i++) {
        fes[i].api = tb_study_api_get(study);
        fes[i].started = pthread_create(&fes[i].thread, NULL, frontend_main, &fes[i]) == 0;
        if (!fes[i].started) {
            fes[i].st = TB_ENOMEM;
            snprintf(fes[i].err.msg, sizeof fes[i].err.msg, "front end %s: cannot start its thread", frontends[i]);
        }
    }
    fes[0].api = tb_study_api_get(study);
    frontend_main(&fes[0]);
    for (int i = 1; i < n_fe; i++)
        if (fes[i].started) pthread_join(fes[i].thread, NULL);
    for (int i = 0; i < n_fe; i++)
        if (fes[i].st != TB_OK && !atomic_load(&stopped_by)) {
            fprintf(stderr, "tunebench: %s\n", fes[i].err.msg); /* names the front end */
            code = TB_EXIT_FAILED;
        }

    /* final evaluations go on after the front end is done */
    int pending = tb_study_finals_pending(study), interrupted = 0;
    if (pending && !no_wait && !atomic_load(&stopped_by)) {
        fprintf(stderr, "tunebench: %d final evaluations to go (Ctrl-C stops them; they resume when the study is "
                "opened again)\n", pending);
        tb_study_api const *api = tb_study_api_get(study);
        api->take_interrupt(api->study);
        while ((pending = tb_study_finals_pending(study)) > 0) {
            if (api->take_interrupt(api->study)) {
                interrupted = 1;
                break;
            }
            sleep_ms(200);
        }
    }
    pthread_mutex_lock(&study_mu);
    current_study = NULL;
    pthread_mutex_unlock(&study_mu);
    tb_err close_err = {{0}};
    if (tb_study_close(study, 0, &close_err) != TB_OK) {
        fprintf(stderr, "tunebench: closing the study: %s\n", close_err.msg);
        code = TB_EXIT_FAILED;
    }
    tb_cmd_signals_restore(&sig);
    int by = atomic_load(&stopped_by);
    if (by) {
        fprintf(stderr, "tunebench: stopped by %s: the study was closed; runs in progress were interrupted and their "
                "time given back; it continues when opened again\n", tb_cmd_signal_name(by));
        if (code == TB_EXIT_OK) code = TB_EXIT_INTERRUPTED;
    }
    if (interrupted) fprintf(stderr, "tunebench: final evaluations stopped; they resume when the study is opened again\n");
    for (int i = 0; i < n_fe; i++) tb_plugin_args_free(fes[i].args);
    tb_plugins_free(&reg);
    tb_config_free(cfg);
    free(sets);
    return code;

fail:
    fprintf(stderr, "tunebench: %s\n", err.msg);
    for (int i = 0; i < n_fe; i++) tb_plugin_args_free(fes[i].args);
    tb_plugins_free(&reg);
    tb_config_free(cfg);
    free(sets);
    return code;
}
