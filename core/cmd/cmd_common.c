/* cli_common.c: argument parsing, configuration loading and signal handling
 * shared by the subcommands (see cli.h). */
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

int tb_cli_parse_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out)
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

const char *tb_cli_need_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        prefix(cmd);
        fprintf(stderr, "%s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

tb_config *tb_cli_load_config(const char *cmd, const char *path, int n_sets, char *const *sets, const char *run_out,
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

/* What the handler does; set before it is installed, read only by it. */
static atomic_int *volatile sig_flag;
static void (*volatile sig_note)(void *);
static void *volatile sig_user;
static const char *volatile sig_message;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno; /* the interrupted code may be reading it */
    atomic_int *flag = sig_flag;
    if (flag) atomic_store(flag, 1);
    void (*note)(void *) = sig_note;
    if (note) note(sig_user);
    const char *msg = sig_message;
    if (msg) {
        ssize_t rc = write(STDERR_FILENO, msg, strlen(msg));
        (void)rc;
    }
    errno = saved;
}

void tb_cli_signals_catch(tb_cli_signals *saved, atomic_int *flag, void (*note)(void *user), void *user,
                          const char *message, int how)
{
    sig_flag = flag;
    sig_note = note;
    sig_user = user;
    sig_message = message;
    saved->how = how;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = how & TB_CLI_ONCE ? SA_RESETHAND : 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &saved->old_int);
    if (how & TB_CLI_SIGTERM) sigaction(SIGTERM, &sa, &saved->old_term);
}

void tb_cli_signals_restore(const tb_cli_signals *saved)
{
    sigaction(SIGINT, &saved->old_int, NULL);
    if (saved->how & TB_CLI_SIGTERM) sigaction(SIGTERM, &saved->old_term, NULL);
    sig_note = NULL;
    sig_flag = NULL;
    sig_message = NULL;
}
