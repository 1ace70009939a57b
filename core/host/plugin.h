/* plugin.h: finding, loading and using plugins (the host side of
 * tunebench_plugin.h).
 *
 * Search order for plugin files: an explicit path (a file or directory from
 * the config's [plugins] path or --plugin-path), then each directory of
 * TUNEBENCH_PLUGIN_PATH (':'-separated), then the plugins folder relative to
 * the running executable (base/selfpath.h: <exe_dir>/../lib/tunebench/plugins
 * installed, build/plugins in the build tree), and only when nothing was
 * found so far the install directory compiled in. Only
 * regular files ending in .so are loaded, with dlopen(RTLD_NOW | RTLD_LOCAL).
 * An empty directory, or one without plugins, is simply searched.
 * Errors are one line and say what to do: not found (lists the directories
 * searched), missing entry symbol, ABI mismatch (both versions), wrong kind,
 * duplicate name. */
#ifndef TB_PLUGIN_H
#define TB_PLUGIN_H

#include <sys/types.h>

#include "base/common.h"
#include "base/config.h"
#include "data/task.h" /* tb_task_data_free for what tb_plugin_open_task gives */
#include "tunebench/tunebench_plugin.h"

typedef struct tb_plugin {
    tb_plugin_descriptor desc; /* copy: the host's size, zero-filled past the plugin's */
    void *handle;              /* dlopen handle */
    char path[1024];
    dev_t dev;                 /* the file's device and inode: a file loaded twice is recognised */
    ino_t ino;
} tb_plugin;

typedef struct tb_plugin_registry {
    tb_plugin *plugins;
    int count, cap;
    char searched[2048]; /* directories searched, for "not found" messages ("a, b (not found)") */
    /* the same, one "origin<TAB>directory[ (not found)]" line each, for `tunebench plugins` */
    char search_log[4096];
    int n_failed; /* files that failed to load (shadowed ones not counted), duplicates, unreadable folders */
    /* problems met while scanning directories (one line each), reported by `tunebench plugins` */
    char problems[4096];
} tb_plugin_registry;

/* Scans the search path (explicit may be NULL; a ':'-separated list of files
 * and directories) and loads every plugin found. reg must start zeroed
 * (tb_plugin_registry reg = {0}); searched and problems are rewritten. A
 * file that fails to load is recorded in reg->problems and skipped, except
 * an explicit file, whose failure is returned, as is an explicit path that
 * does not exist. Directories are read in name order. A name found again in
 * a later directory of the search order is shadowed (a note in problems);
 * two files of one directory with the same name are both kept and
 * tb_plugin_find refuses the name, naming both files. */
tb_status tb_plugins_discover(tb_plugin_registry *reg, const char *explicit_path, tb_err *err);
/* Loads one file (regular .so file only) into the registry; a name already
 * loaded from another file is an error naming both files. Loading the same
 * file twice is a no-op. */
tb_status tb_plugin_load_file(tb_plugin_registry *reg, const char *path, tb_err *err);
/* Finds a plugin by kind and name; errors say what exists and where we looked.
 * *out stays valid until the registry changes. */
tb_status tb_plugin_find(const tb_plugin_registry *reg, tb_plugin_kind kind, const char *name,
                         const tb_plugin **out, tb_err *err);
void tb_plugins_free(tb_plugin_registry *reg);

const char *tb_plugin_kind_name(tb_plugin_kind kind); /* "model", "task", "frontend" */

/* The host API handed to plugins. */
const tb_host_api *tb_host_api_get(void);

/* Resolves a plugin's options from cfg's section `section` (declared options
 * only: an unknown key is an error naming the nearest option); defaults for
 * the rest; types and ranges checked with messages naming section.key, value
 * and range. INT/FLOAT/INT_LIST options whose min and max are both 0 take
 * any value (host->arg_int of such a FLOAT gives it truncated, clamped to
 * the int64 range); PATH values get a leading ~ expanded from $HOME (relative paths
 * stay relative to the working directory). cfg may be NULL (defaults only). */
tb_status tb_plugin_args_resolve(const tb_plugin *plugin, const tb_config *cfg, const char *section,
                                 tb_plugin_args **out, tb_err *err);
/* The same for a section that also holds keys the host reads itself (e.g.
 * [model] name, freeze): host_keys[0..n_host_keys) are accepted there, not
 * passed to the plugin, and listed among the valid keys in messages. */
tb_status tb_plugin_args_resolve_ex(const tb_plugin *plugin, const tb_config *cfg, const char *section,
                                    const char *const *host_keys, int n_host_keys, tb_plugin_args **out,
                                    tb_err *err);
void tb_plugin_args_free(tb_plugin_args *args);
/* "name = value" lines of the resolved options (for run files); malloc'd. */
char *tb_plugin_args_describe(const tb_plugin_args *args);
/* The PATH options (the files a plugin reads, e.g. a task's data): the i-th
 * one's name and value (~ expanded) into *name and *value (args-owned).
 * Returns 1, or 0 when there are fewer than i + 1 (args may be NULL). */
int tb_plugin_args_path(const tb_plugin_args *args, int i, const char **name, const char **value);

/* Builds a model with a model plugin (args NULL: the options' defaults).
 * The network's own checks (output [n, classes]) happen in tb_net_build. */
tb_status tb_plugin_build_model(const tb_plugin *plugin, const tb_plugin_args *args, const tb_model_input *in,
                                tb_net **out, tb_err *err);
/* Loads a task's raw data with a task plugin (validated: sizes, labels,
 * splits, buffers; data that fails validation is freed). */
tb_status tb_plugin_open_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_data *out,
                              tb_err *err);
/* What a task plugin declares before loading (its optional describe_task,
 * ABI minor 7; args NULL: the options' defaults): *out zeroed, then filled;
 * all 0 for a plugin without the callback. TB_EFORMAT for an impossible
 * declaration, the plugin's status (its message prefixed with task plugin
 * "NAME": ) when it fails. */
tb_status tb_plugin_describe_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_shape *out,
                                  tb_err *err);
/* The data open_task returned against what describe_task declared (0s are
 * not checked): TB_EFORMAT naming the plugin, the member and both values. */
tb_status tb_plugin_check_declared(const tb_plugin *plugin, const tb_task_shape *declared, const tb_task_data *data,
                                   tb_err *err);
/* Runs a front-end plugin until it returns (args NULL: the options'
 * defaults, from the section named after the plugin). The plugin gets a
 * zeroed error buffer; its message comes back as one line prefixed with
 * frontend plugin "NAME": (the status's name when it wrote none). */
tb_status tb_plugin_run_frontend(const tb_plugin *plugin, const tb_study_api *api, const tb_plugin_args *args,
                                 tb_err *err);

#endif
