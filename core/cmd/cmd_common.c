/* cmd_common.c: what the commands share (see cmd.h): exit codes, argument
 * parsing, configuration loading, signal handling, printing metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static void prefix(const char *cmd)
{
    if (cmd) fprintf(stderr, "tunebench %s: ", cmd);
    else fputs("tunebench: ", stderr);
}

int tb_cmd_parse_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        prefix(cmd);
        fprintf(stderr, "%s = '%s' is not an integer in [%lld, %lld]\n", flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

const char *tb_cmd_need_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        prefix(cmd);
        fprintf(stderr, "%s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int tb_cmd_common_arg(const char *cmd, const char *arg, int *quiet, const char **config, void (*usage)(FILE *))
{
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
        usage(stdout);
        return 1;
    }
    if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
        *quiet = 1;
        return 0;
    }
    if (arg[0] == '-') return 2;
    if (*config) {
        prefix(cmd);
        fprintf(stderr, "one configuration file only ('%s' and '%s')\n", *config, arg);
        return -1;
    }
    *config = arg;
    return 0;
}

tb_config *tb_cmd_load_config(const char *cmd, const char *path, int n_sets, char *const *sets, const char *run_out,
                              const char *plugin_path)
{
    tb_err err = {{0}};
    tb_config *cfg = NULL;
    if (tb_config_load(&cfg, path, &err) != TB_OK) {
        prefix(cmd);
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    for (int i = 0; i < n_sets; i++)
        if (tb_config_set_assignment(cfg, sets[i], &err) != TB_OK) {
            prefix(cmd);
            fprintf(stderr, "--set %s: %s\n", sets[i], err.msg);
            tb_config_free(cfg);
            return NULL;
        }
    if ((run_out && tb_config_set(cfg, "output.run", run_out, &err) != TB_OK) ||
        (plugin_path && tb_config_set(cfg, "plugins.path", plugin_path, &err) != TB_OK)) {
        prefix(cmd);
        fprintf(stderr, "%s\n", err.msg);
        tb_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* ---- signals ------------------------------------------------------------------------ */

static const int caught[3] = {SIGINT, SIGTERM, SIGHUP};

/* What the handler does; set before it is installed, read only by it. */
static atomic_int *volatile sig_flag;
static void (*volatile sig_note)(void *, int);
static void *volatile sig_user;
static const char *volatile sig_message;
static volatile int sig_pipe = -1;
static atomic_int sig_last;

const char *tb_cmd_signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

static void put(const char *s)
{
    ssize_t rc = write(STDERR_FILENO, s, strlen(s));
    (void)rc;
}

static void on_signal(int sig)
{
    int saved = errno; /* the interrupted code may be reading it */
    atomic_store(&sig_last, sig);
    atomic_int *flag = sig_flag;
    if (flag) atomic_store(flag, 1);
    void (*note)(void *, int) = sig_note;
    if (note) note(sig_user, sig);
    const char *msg = sig_message;
    if (msg) {
        put("tunebench: ");
        put(tb_cmd_signal_name(sig));
        put(": ");
        put(msg);
    }
    int fd = sig_pipe;
    if (fd >= 0) {
        unsigned char b = (unsigned char)sig;
        ssize_t rc = write(fd, &b, 1);
        (void)rc;
    }
    errno = saved;
}

typedef struct act_thread {
    int fd;
    void (*act)(void *, int);
    void *user;
} act_thread;
static act_thread act_state;

/* Calls act for each signal the handler passes on; a 0 byte ends it. */
static void *run_act(void *arg)
{
    act_thread *t = arg;
    for (;;) {
        unsigned char b;
        ssize_t n = read(t->fd, &b, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || b == 0) return NULL;
        t->act(t->user, b);
    }
}

void tb_cmd_signals_catch(tb_cmd_signals *saved, const tb_cmd_signal_opts *o)
{
    sig_flag = o->flag;
    sig_note = o->note;
    sig_user = o->user;
    sig_message = o->message;
    atomic_store(&sig_last, 0);
    saved->pipe[0] = saved->pipe[1] = -1;
    if (o->act && pipe(saved->pipe) == 0) {
        act_state = (act_thread){saved->pipe[0], o->act, o->user};
        if (pthread_create(&saved->thread, NULL, run_act, &act_state) != 0) {
            close(saved->pipe[0]), close(saved->pipe[1]);
            saved->pipe[0] = saved->pipe[1] = -1;
        }
    }
    sig_pipe = saved->pipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = o->once ? SA_RESETHAND : 0; /* no SA_RESTART: a blocking read returns EINTR */
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaddset(&sa.sa_mask, caught[i]);
    for (int i = 0; i < 3; i++) sigaction(caught[i], &sa, &saved->old[i]);
}

void tb_cmd_signals_restore(tb_cmd_signals *saved)
{
    /* act's thread first, while the handlers still catch what it may raise */
    sig_pipe = -1;
    if (saved->pipe[1] >= 0) {
        unsigned char end = 0;
        ssize_t rc = write(saved->pipe[1], &end, 1);
        (void)rc;
        pthread_join(saved->thread, NULL);
    }
    for (int i = 0; i < 3; i++) sigaction(caught[i], &saved->old[i], NULL);
    if (saved->pipe[1] >= 0) {
        close(saved->pipe[0]), close(saved->pipe[1]);
        saved->pipe[0] = saved->pipe[1] = -1;
    }
    sig_note = NULL;
    sig_flag = NULL;
    sig_message = NULL;
}

int tb_cmd_signals_last(void) { return atomic_load(&sig_last); }

/* ---- runs: train and eval ---------------------------------------------------------- */

int tb_cmd_exit_code(tb_status st)
{
    switch (st) {
    case TB_OK: return TB_EXIT_OK;
    case TB_EINVAL: return TB_EXIT_USAGE;
    case TB_EDIVERGED: return TB_EXIT_DIVERGED;
    case TB_ECANCELLED:
    case TB_ETIMEOUT: return TB_EXIT_INTERRUPTED;
    default: return TB_EXIT_FAILED;
    }
}


int tb_cmd_parse_run_args(int argc, char **argv, tb_cmd_run_args *a, int allow_checkpoint, void (*usage)(FILE *))
{
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    if (!a->sets) return -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        const int common = tb_cmd_common_arg(NULL, arg, &a->quiet, &a->config, usage);
        if (common != 2) {
            if (common) return common;
            continue;
        }
        if (!allow_checkpoint && !strcmp(arg, "--force")) {
            a->force = 1;
            continue;
        }
        const int takes_value = !strcmp(arg, "--set") || !strcmp(arg, "--plugin-path") || !strcmp(arg, "--task-cache") ||
                                (!allow_checkpoint && !strcmp(arg, "--out")) ||
                                (allow_checkpoint && (!strcmp(arg, "--checkpoint") || !strcmp(arg, "--split")));
        if (!takes_value) {
            fprintf(stderr, "tunebench: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        if (!(v = tb_cmd_need_value(NULL, argc, argv, &i))) return -1;
        if (!strcmp(arg, "--set")) a->sets[a->n_sets++] = (char *)v;
        else if (!strcmp(arg, "--out")) a->out = v;
        else if (!strcmp(arg, "--plugin-path")) a->plugin_path = v;
        else if (!strcmp(arg, "--task-cache")) a->task_cache = v;
        else if (!strcmp(arg, "--checkpoint")) a->checkpoint = v;
        else a->split = v;
    }
    if (!a->config) {
        fprintf(stderr, "tunebench: no configuration file given (e.g. configs/quickstart.ini; see --help)\n");
        return -1;
    }
    return 0;
}

void tb_cmd_print_metrics(const char *what, const tb_metrics *m, const tb_task_data *raw)
{
    printf("%s: loss %.4f, accuracy %.2f%%, macro precision %.4f, recall %.4f, F1 %.4f (%lld samples)\n", what,
           m->loss, 100.0 * m->accuracy, m->macro_precision, m->macro_recall, m->macro_f1, (long long)m->count);
    if (m->classes > 20) return;
    printf("confusion matrix (rows: true class, columns: predicted):\n");
    for (int r = 0; r < m->classes; r++) {
        printf("  %-18.18s", raw->class_names ? raw->class_names[r] : "");
        for (int c = 0; c < m->classes; c++) printf(" %6lld", (long long)m->confusion[r * m->classes + c]);
        printf("\n");
    }
}
