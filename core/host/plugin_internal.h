/* plugin_internal.h: what the host wing's files share and nobody else sees:
 * a plugin's resolved options (plugin_options.c makes them, host_api.c reads
 * them for the plugin's arg_* calls). */
#ifndef TB_PLUGIN_INTERNAL_H
#define TB_PLUGIN_INTERNAL_H

#include "plugin.h"

#define NAME_MAX_LEN 64 /* a plugin's or option's name, with its terminator */
#define MAX_LIST 256    /* the longest INT_LIST option */

/* [a-z0-9_]+, at most NAME_MAX_LEN - 1 characters: plugin and option names. */
int tb_valid_plugin_name(const char *s);

/* Checks option o's default against its type, range and choices (NULL, a
 * required option, and STRING/PATH defaults pass); 0 when valid, else -1
 * and a message naming the option, the default and what is allowed in why. */
int tb_plugin_option_check_default(const tb_plugin_option *o, char *why, size_t len);

typedef struct tb_arg {
    const tb_plugin_option *opt;
    char *text; /* resolved text (choice: as declared; path: ~ expanded) */
    int is_set;
    int64_t i;
    double f;
    int b;
    int64_t *list;
    int n_list;
} tb_arg;

struct tb_plugin_args {
    char plugin[NAME_MAX_LEN];
    int n;
    tb_arg *a;
    /* The first undeclared name the plugin read (host->arg_*), which fails the
     * call it happened in (plugin_calls.c). The accessors cannot return a status
     * and may run on several threads at once: misuse_state goes 0 -> 1 (one
     * writer claims misuse_name) -> 2 (written, released to readers). */
    _Atomic int misuse_state;
    char misuse_name[NAME_MAX_LEN * 2];
};

/* Records name as read although undeclared (the first one only; thread-safe). */
void tb_plugin_args_record_misuse(const tb_plugin_args *args, const char *name);
/* 0 when the plugin read only declared options through args; else 1 and
 * "read option \"NAME\", which it does not declare (declared: ...; did you
 * mean ...?)" in msg. args may be NULL. */
int tb_plugin_args_misuse(const tb_plugin_args *args, char *msg, size_t len);

#endif
