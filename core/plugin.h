/* plugin.h: finding, loading and using plugins (the host side of
 * tunebench_plugin.h).
 *
 * Search order for plugin files: an explicit path (a file or directory from
 * the config's [plugins] path or --plugin-path), then each directory of
 * TUNEBENCH_PLUGIN_PATH (':'-separated), then the build directory's plugins
 * folder, then the install directory (<prefix>/lib/tunebench/plugins). Only
 * regular files ending in .so are loaded, with dlopen(RTLD_NOW | RTLD_LOCAL).
 * Errors are one line and say what to do: not found (lists the directories
 * searched), missing entry symbol, ABI mismatch (both versions), wrong kind,
 * duplicate name. */
#ifndef TB_PLUGIN_H
#define TB_PLUGIN_H

#include "common.h"
#include "config.h"
#include "tunebench_plugin.h"

typedef struct tb_plugin {
    tb_plugin_descriptor desc; /* copy: the host's size, zero-filled past the plugin's */
    void *handle;              /* dlopen handle */
    char path[1024];
} tb_plugin;

typedef struct tb_plugin_registry {
    tb_plugin *plugins;
    int count, cap;
    char searched[2048]; /* directories searched, for "not found" messages */
    /* problems met while scanning directories (one line each), reported by `tunebench plugins` */
    char problems[4096];
} tb_plugin_registry;

/* Scans the search path (explicit may be NULL) and loads every plugin found.
 * A file that fails to load is recorded in reg->problems and skipped, except
 * an explicit file, whose failure is returned. */
tb_status tb_plugins_discover(tb_plugin_registry *reg, const char *explicit_path, tb_err *err);
/* Loads one file (regular .so file only) into the registry. */
tb_status tb_plugin_load_file(tb_plugin_registry *reg, const char *path, tb_err *err);
/* Finds a plugin by kind and name; errors say what exists and where we looked. */
tb_status tb_plugin_find(const tb_plugin_registry *reg, tb_plugin_kind kind, const char *name,
                         const tb_plugin **out, tb_err *err);
void tb_plugins_free(tb_plugin_registry *reg);

const char *tb_plugin_kind_name(tb_plugin_kind kind); /* "model", "task", "frontend" */

/* The host API handed to plugins. */
const tb_host_api *tb_host_api_get(void);

/* Resolves a plugin's options from cfg's section `section` (declared options
 * only: an unknown key is an error naming the nearest option); defaults for
 * the rest; types and ranges checked with messages naming section.key, value
 * and range. */
tb_status tb_plugin_args_resolve(const tb_plugin *plugin, const tb_config *cfg, const char *section,
                                 tb_plugin_args **out, tb_err *err);
void tb_plugin_args_free(tb_plugin_args *args);
/* "name = value" lines of the resolved options (for run files); malloc'd. */
char *tb_plugin_args_describe(const tb_plugin_args *args);

/* Builds a model with a model plugin. */
tb_status tb_plugin_build_model(const tb_plugin *plugin, const tb_plugin_args *args, const tb_model_input *in,
                                tb_net **out, tb_err *err);
/* Loads a task's raw data with a task plugin (validated: sizes, labels, splits). */
tb_status tb_plugin_open_task(const tb_plugin *plugin, const tb_plugin_args *args, tb_task_data *out,
                              tb_err *err);
void tb_task_data_free(tb_task_data *data);

#endif
