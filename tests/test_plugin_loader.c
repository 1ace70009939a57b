/* test_plugin_loader.c: the plugin loader (core/host/plugin.c) against the
 * deliberately broken plugins of tests/plugins: one test per loader error,
 * with the message's contents (both ABI versions, the directories searched,
 * both files of a duplicate, a broken option table, a front end without its
 * table or run, ...); discovery through TUNEBENCH_PLUGIN_PATH (an empty
 * directory included); option resolution; a model built by a plugin and
 * run forward; a task opened and validated; a front end run through the
 * host; the host API table. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/config.h"
#include "engine/net.h"
#include "host/plugin.h"
#include "run/run.h"
#include "base/rng.h"
#include "tb_test.h"

#define TEST_PLUGINS TB_PLUGIN_BUILD_DIR "/../test-plugins"

static const char *case_path(const char *rel)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", TEST_PLUGINS, rel);
    return b;
}

/* Loads one file and expects failure; returns the message. */
static const char *load_fails(const char *rel)
{
    static tb_err err;
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    memset(&err, 0, sizeof err);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path(rel), &err) != TB_OK, "%s loaded", rel);
    ck_assert_int_eq(reg.count, 0);
    ck_assert_msg(strchr(err.msg, '\n') == NULL, "not one line: %s", err.msg);
    tb_plugins_free(&reg);
    return err.msg;
}

/* Discovers with an explicit path (the environment cleared). */
static void discover(tb_plugin_registry *reg, const char *explicit_rel)
{
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    memset(reg, 0, sizeof *reg);
    tb_err err;
    ck_assert_msg(tb_plugins_discover(reg, explicit_rel ? case_path(explicit_rel) : NULL, &err) == TB_OK, "%s",
                  err.msg);
}

static const tb_plugin *find_ok(const tb_plugin_registry *reg, tb_plugin_kind kind, const char *name)
{
    const tb_plugin *p = NULL;
    tb_err err;
    ck_assert_msg(tb_plugin_find(reg, kind, name, &p, &err) == TB_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(p);
    return p;
}

static const char *find_fails(const tb_plugin_registry *reg, tb_plugin_kind kind, const char *name)
{
    static tb_err err;
    const tb_plugin *p = (const tb_plugin *)1;
    ck_assert_msg(tb_plugin_find(reg, kind, name, &p, &err) != TB_OK, "%s found", name);
    ck_assert_ptr_null(p);
    ck_assert_msg(strchr(err.msg, '\n') == NULL, "not one line: %s", err.msg);
    return err.msg;
}

/* ---- the loader's errors --------------------------------------------------------- */

START_TEST(test_no_entry_symbol)
{
    const char *msg = load_fails("no_entry/no_entry.so");
    TBT_ASSERT_HAS(msg, "no_entry.so: no symbol tunebench_plugin_entry");
    TBT_ASSERT_HAS(msg, "is it a tunebench plugin? build it with TB_PLUGIN_EXPORT");
    msg = load_fails("null_desc/null_desc.so");
    TBT_ASSERT_HAS(msg, "null_desc.so: tunebench_plugin_entry() returned NULL");
}
END_TEST

START_TEST(test_abi_major_mismatch)
{
    const char *msg = load_fails("abi_major/abi_major.so");
    char expect[128];
    snprintf(expect, sizeof expect, "built for plugin ABI %d.%d, this tunebench supports %d.%d",
             TB_PLUGIN_ABI_MAJOR + 1, TB_PLUGIN_ABI_MINOR, TB_PLUGIN_ABI_MAJOR, TB_PLUGIN_ABI_MINOR);
    TBT_ASSERT_HAS(msg, "abi_major.so: ");
    TBT_ASSERT_HAS(msg, expect);
    TBT_ASSERT_HAS(msg, "rebuild the plugin against this tunebench's tunebench_plugin.h");

    /* found by name, the failure explains why the plugin is missing */
    tb_plugin_registry reg;
    discover(&reg, "abi_major");
    TBT_ASSERT_HAS(reg.problems, expect);
    msg = find_fails(&reg, TB_PLUGIN_MODEL, "abi_major");
    TBT_ASSERT_HAS(msg, "model plugin \"abi_major\" could not be loaded");
    TBT_ASSERT_HAS(msg, expect);
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_abi_minor_newer)
{
    const char *msg = load_fails("abi_minor/abi_minor.so");
    char expect[128];
    snprintf(expect, sizeof expect, "built for plugin ABI %d.%d, this tunebench supports %d.%d", TB_PLUGIN_ABI_MAJOR,
             TB_PLUGIN_ABI_MINOR + 1, TB_PLUGIN_ABI_MAJOR, TB_PLUGIN_ABI_MINOR);
    TBT_ASSERT_HAS(msg, expect);
    TBT_ASSERT_HAS(msg, "update tunebench");
}
END_TEST

START_TEST(test_wrong_kind)
{
    tb_plugin_registry reg;
    discover(&reg, "wrong_kind");
    const tb_plugin *p = find_ok(&reg, TB_PLUGIN_TASK, "tbtest_wrong_kind");
    ck_assert_int_eq(p->desc.kind, TB_PLUGIN_TASK);
    const char *msg = find_fails(&reg, TB_PLUGIN_MODEL, "tbtest_wrong_kind");
    TBT_ASSERT_HAS(msg, "plugin \"tbtest_wrong_kind\"");
    TBT_ASSERT_HAS(msg, "tbtest_wrong_kind.so");
    TBT_ASSERT_HAS(msg, "is a task plugin, not a model plugin");
    TBT_ASSERT_HAS(msg, "available models: ");
    /* and the calls refuse the wrong kind too */
    tb_net *net = NULL;
    tb_err err;
    tb_model_input in = {1, 4, 4, 2};
    ck_assert(tb_plugin_build_model(p, NULL, &in, &net, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "not a model plugin");
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_model_without_build_model)
{
    const char *msg = load_fails("no_build_model/no_build_model.so");
    TBT_ASSERT_HAS(msg, "no_build_model.so: model plugin \"tbtest_no_build\" has no build_model callback");
    TBT_ASSERT_HAS(msg, "set .build_model");
}
END_TEST

START_TEST(test_bad_name)
{
    const char *msg = load_fails("bad_name/bad_name.so");
    TBT_ASSERT_HAS(msg, "bad_name.so: invalid plugin name \"Bad-Name\"");
    TBT_ASSERT_HAS(msg, "lowercase letters, digits and '_'");
}
END_TEST

START_TEST(test_duplicate_name)
{
    /* two files of one directory: both kept, the name refused */
    tb_plugin_registry reg;
    discover(&reg, "duplicate");
    const char *msg = find_fails(&reg, TB_PLUGIN_MODEL, "tbtest_dup");
    TBT_ASSERT_HAS(msg, "duplicate plugin name \"tbtest_dup\"");
    TBT_ASSERT_HAS(msg, "duplicate/dup_a.so");
    TBT_ASSERT_HAS(msg, "duplicate/dup_b.so");
    TBT_ASSERT_HAS(msg, "remove or rename one");
    tb_plugins_free(&reg);

    /* loading file by file */
    tb_err err;
    memset(&reg, 0, sizeof reg);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("duplicate/dup_a.so"), &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("duplicate/dup_a.so"), &err) == TB_OK, "same file: %s", err.msg);
    ck_assert_int_eq(reg.count, 1);
    ck_assert(tb_plugin_load_file(&reg, case_path("duplicate/dup_b.so"), &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "dup_a.so");
    TBT_ASSERT_HAS(err.msg, "dup_b.so");
    ck_assert_int_eq(reg.count, 1);
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_shadowed_by_earlier_directory)
{
    /* dup_a.so given explicitly comes first; the directory holding it and
     * dup_b.so comes later (TUNEBENCH_PLUGIN_PATH): dup_b is shadowed */
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    setenv("TUNEBENCH_PLUGIN_PATH", case_path("duplicate"), 1);
    tb_err err;
    ck_assert_msg(tb_plugins_discover(&reg, case_path("duplicate/dup_a.so"), &err) == TB_OK, "%s", err.msg);
    const tb_plugin *p = find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_dup");
    TBT_ASSERT_HAS(p->path, "dup_a.so");
    TBT_ASSERT_HAS(reg.problems, "dup_b.so: model plugin \"tbtest_dup\" is shadowed by");
    tb_plugins_free(&reg);
    unsetenv("TUNEBENCH_PLUGIN_PATH");
}
END_TEST

START_TEST(test_not_found_lists_directories)
{
    tb_plugin_registry reg;
    discover(&reg, "valid");
    const char *msg = find_fails(&reg, TB_PLUGIN_MODEL, "tbtest_modle");
    TBT_ASSERT_HAS(msg, "model plugin \"tbtest_modle\" not found (did you mean tbtest_model?); searched: ");
    TBT_ASSERT_HAS(msg, case_path("valid"));
    TBT_ASSERT_HAS(msg, ", " TB_PLUGIN_BUILD_DIR " (set TUNEBENCH_PLUGIN_PATH");
    TBT_ASSERT_HAS(msg, "(set TUNEBENCH_PLUGIN_PATH or [plugins] path)");
    TBT_ASSERT_HAS(msg, "available models: ");
    TBT_ASSERT_HAS(msg, "tbtest_model");
    msg = find_fails(&reg, TB_PLUGIN_TASK, "zzzz_nothing_like_it");
    TBT_ASSERT_HAS(msg, "task plugin \"zzzz_nothing_like_it\" not found; searched: ");
    TBT_ASSERT_HAS(msg, "available tasks: ");
    TBT_ASSERT_HAS(msg, "tbtest_task");
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_skips_what_is_not_a_plugin)
{
    tb_plugin_registry reg;
    discover(&reg, "valid");
    find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_model");
    find_ok(&reg, TB_PLUGIN_TASK, "tbtest_task");
    int from_valid = 0;
    for (int i = 0; i < reg.count; i++) from_valid += strstr(reg.plugins[i].path, "/valid/") != NULL;
    ck_assert_int_eq(from_valid, 2);
    TBT_ASSERT_LACKS(reg.problems, "x.so");
    TBT_ASSERT_LACKS(reg.problems, "README");
    TBT_ASSERT_LACKS(reg.problems, "notes.so.txt");
    ck_assert_msg(strncmp(reg.searched, case_path("valid"), strlen(case_path("valid"))) == 0, "searched %s",
                  reg.searched);
    tb_plugins_free(&reg);

    /* named explicitly, they are refused with a reason */
    struct stat st;
    ck_assert(stat(case_path("valid/x.so"), &st) == 0 && S_ISDIR(st.st_mode));
    TBT_ASSERT_HAS(load_fails("valid/x.so"), "not a regular file");
    TBT_ASSERT_HAS(load_fails("valid/README.txt"), "not a plugin (plugin files end in .so)");
    const char *msg = load_fails("not_elf/garbage.so");
    TBT_ASSERT_HAS(msg, "garbage.so: cannot load: ");
    TBT_ASSERT_HAS(msg, "not a shared library");
}
END_TEST

START_TEST(test_explicit_path_errors)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    ck_assert(tb_plugins_discover(&reg, "/nonexistent/tunebench-plugins", &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "plugin path /nonexistent/tunebench-plugins: No such file or directory");
    TBT_ASSERT_HAS(err.msg, "--plugin-path");
    tb_plugins_free(&reg);
    /* an explicit file's failure is returned, a scanned directory's recorded */
    memset(&reg, 0, sizeof reg);
    ck_assert(tb_plugins_discover(&reg, case_path("no_entry/no_entry.so"), &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "no symbol tunebench_plugin_entry");
    tb_plugins_free(&reg);
    memset(&reg, 0, sizeof reg);
    ck_assert(tb_plugins_discover(&reg, case_path("no_entry"), &err) == TB_OK);
    TBT_ASSERT_HAS(reg.problems, "no_entry.so: no symbol tunebench_plugin_entry");
    tb_plugins_free(&reg);
}
END_TEST

START_TEST(test_discovery_from_environment)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    char env[2200];
    snprintf(env, sizeof env, "%s:/nonexistent/tb-env-dir:%s", case_path("valid"), case_path("wrong_kind"));
    setenv("TUNEBENCH_PLUGIN_PATH", env, 1);
    tb_err err;
    ck_assert_msg(tb_plugins_discover(&reg, NULL, &err) == TB_OK, "%s", err.msg);
    find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_model");
    find_ok(&reg, TB_PLUGIN_TASK, "tbtest_wrong_kind");
    TBT_ASSERT_HAS(reg.searched, case_path("valid"));
    TBT_ASSERT_HAS(reg.searched, "/nonexistent/tb-env-dir");
    /* the order: environment first, then the build directory (the test
     * executables live in the build tree; the test folders live beside it,
     * so look for it as a whole entry, the last one: plugins were found, so
     * the compiled-in install directory is not searched) */
    const char *tail = ", " TB_PLUGIN_BUILD_DIR;
    size_t ns = strlen(reg.searched), nt = strlen(tail);
    ck_assert_msg(ns >= nt && strcmp(reg.searched + ns - nt, tail) == 0, "searched %s", reg.searched);
    ck_assert(strstr(reg.searched, case_path("valid")) < strstr(reg.searched, ", " TB_PLUGIN_BUILD_DIR));
    TBT_ASSERT_HAS(reg.searched, "/nonexistent/tb-env-dir (not found)");
    TBT_ASSERT_HAS(reg.search_log, "the build tree\t" TB_PLUGIN_BUILD_DIR "\n");
    TBT_ASSERT_HAS(reg.problems, "TUNEBENCH_PLUGIN_PATH entry /nonexistent/tb-env-dir: No such file or directory");
    tb_plugins_free(&reg);
    unsetenv("TUNEBENCH_PLUGIN_PATH");
}
END_TEST

START_TEST(test_short_descriptor)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("short_desc/tbtest_short.so"), &err) == TB_OK, "%s", err.msg);
    const tb_plugin *p = find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_short");
    ck_assert_uint_eq(p->desc.size, offsetof(tb_plugin_descriptor, open_task));
    ck_assert_ptr_null(p->desc.open_task); /* past the plugin's size: zero */
    ck_assert_ptr_null(p->desc.frontend);
    ck_assert_ptr_nonnull(p->desc.build_model);
    tb_model_input in = {1, 4, 4, 2};
    tb_net *net = NULL;
    ck_assert_msg(tb_plugin_build_model(p, NULL, &in, &net, &err) == TB_OK, "%s", err.msg);
    tb_net_free(net);
    tb_plugins_free(&reg);
}
END_TEST

/* An empty directory on the search path (explicit or from the environment)
 * is searched and holds nothing: no error, no problem. */
START_TEST(test_empty_directory)
{
    char empty[] = "/tmp/tbtest-empty-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(empty));
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    ck_assert_msg(tb_plugins_discover(&reg, empty, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(strncmp(reg.searched, empty, strlen(empty)) == 0, "searched %s", reg.searched);
    TBT_ASSERT_LACKS(reg.problems, empty);
    for (int i = 0; i < reg.count; i++) TBT_ASSERT_LACKS(reg.plugins[i].path, empty);
    tb_plugins_free(&reg);

    memset(&reg, 0, sizeof reg);
    char env[2200];
    snprintf(env, sizeof env, "%s:%s", empty, case_path("valid"));
    setenv("TUNEBENCH_PLUGIN_PATH", env, 1);
    ck_assert_msg(tb_plugins_discover(&reg, NULL, &err) == TB_OK, "%s", err.msg);
    find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_model"); /* the next directory is still scanned */
    TBT_ASSERT_HAS(reg.searched, empty);
    TBT_ASSERT_LACKS(reg.problems, empty);
    tb_plugins_free(&reg);
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    ck_assert_int_eq(rmdir(empty), 0);
}
END_TEST

START_TEST(test_task_without_open_task)
{
    const char *msg = load_fails("no_open_task/no_open_task.so");
    TBT_ASSERT_HAS(msg, "no_open_task.so: task plugin \"tbtest_no_open\" has no open_task callback");
    TBT_ASSERT_HAS(msg, "set .open_task");
}
END_TEST

/* One broken option table per check of the loader (tbtest_broken.c, TBT_OPTIONS). */
START_TEST(test_bad_option_tables)
{
    static const char *const why[] = {
        "option 1 has an invalid name \"Bad-Opt\" (use a-z, 0-9 and '_')",
        "option \"width\" is declared twice",
        "choice option \"act\" needs choices like \"a|b\"",
        "option \"rate\" has an invalid range [2, 1]",
        "option \"mystery\" has an unknown type 99",
        "n_options = 1 but options is NULL",
        "option \"rate\" has an invalid range [nan, 1]",
        /* defaults the option's own declaration refuses: plugin, option, default and range named */
        "option \"depth\" has the default 100, outside its range [1, 64]",
        "option \"act\" has the default \"gelu\", which is not one of its choices relu|none",
        "option \"rate\" has the default \"fast\", which is not a valid float (range [0, 1])",
        "option \"widths\" has the default 4,100, outside its range [1, 64]",
        "option \"shuffle\" has the default \"maybe\", which is not a bool (true/false, yes/no, on/off, 1/0)",
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(why); i++) {
        char rel[64], expect[512];
        snprintf(rel, sizeof rel, "bad_options/opt_%zu.so", i + 1);
        const char *msg = load_fails(rel);
        snprintf(expect, sizeof expect, "opt_%zu.so: model plugin \"tbtest_opts\": %s (fix its option table)", i + 1,
                 why[i]);
        TBT_ASSERT_HAS(msg, expect);
    }
    /* scanned, they are problems and nothing is loaded */
    tb_plugin_registry reg;
    discover(&reg, "bad_options");
    TBT_ASSERT_HAS(reg.problems, "opt_1.so: model plugin \"tbtest_opts\": option 1 has an invalid name");
    TBT_ASSERT_HAS(reg.problems, "opt_7.so: ");
    TBT_ASSERT_HAS(reg.problems, "opt_8.so: model plugin \"tbtest_opts\": option \"depth\" has the default 100, "
                                 "outside its range [1, 64] (fix its option table)");
    for (int i = 0; i < reg.count; i++) TBT_ASSERT_LACKS(reg.plugins[i].path, "bad_options");
    tb_plugins_free(&reg);
    /* `tunebench plugins` lists the bad default among its problems (whatever its exit status) */
    static char out[1 << 16];
    char args[1200];
    snprintf(args, sizeof args, "plugins --plugin-path '%s'", case_path("bad_options"));
    int rc = tbt_tunebench(args, "2>&1", out, sizeof out);
    ck_assert_msg(rc == 0 || rc == 1, "exit %d:\n%s", rc, out);
    tbt_assert_in_order(out, "problems:\n", "opt_8.so: model plugin \"tbtest_opts\": option \"depth\" has the default 100, "
                        "outside its range [1, 64]", NULL);
    TBT_ASSERT_LACKS(out, "tbtest_opts  (model plugin");
}
END_TEST

/* A front end without its table, with a table too small for run, or without run. */
START_TEST(test_frontend_errors)
{
    const char *msg = load_fails("bad_frontend/fe_no_table.so");
    TBT_ASSERT_HAS(msg, "fe_no_table.so: frontend plugin \"tbtest_fe_bad\" has no frontend table (set .frontend in "
                        "its descriptor to a static tb_frontend_api)");
    msg = load_fails("bad_frontend/fe_small_table.so");
    char expect[256];
    snprintf(expect, sizeof expect,
             "fe_small_table.so: frontend plugin \"tbtest_fe_bad\": frontend table size %zu is too small (at least "
             "%zu; set .size = sizeof(tb_frontend_api))",
             offsetof(tb_frontend_api, run), offsetof(tb_frontend_api, run) + sizeof(void (*)(void)));
    TBT_ASSERT_HAS(msg, expect);
    msg = load_fails("bad_frontend/fe_no_run.so");
    TBT_ASSERT_HAS(msg, "fe_no_run.so: frontend plugin \"tbtest_fe_bad\" has no run callback (set .run in its "
                        "tb_frontend_api)");
}
END_TEST

/* tb_plugin_run_frontend: the kind checked, a zeroed buffer, the message made
 * one line and prefixed with the plugin's name, defaults when args is NULL. */
START_TEST(test_run_frontend)
{
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("frontend/tbtest_fe.so"), &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("valid/tbtest_model.so"), &err) == TB_OK, "%s", err.msg);
    const tb_plugin *fe = find_ok(&reg, TB_PLUGIN_FRONTEND, "tbtest_fe");
    ck_assert_int_eq(fe->desc.kind, TB_PLUGIN_FRONTEND);
    tb_study_api api;
    memset(&api, 0, sizeof api);
    api.version = TB_STUDY_API_VERSION;
    api.size = sizeof api;
    /* defaults (mode ok), and the same through resolved args */
    memset(&err, 'x', sizeof err);
    ck_assert_msg(tb_plugin_run_frontend(fe, &api, NULL, &err) == TB_OK, "%s", err.msg);
    const char *modes[] = {"ok", "multiline", "silent", "long"};
    const char *want[] = {NULL, "frontend plugin \"tbtest_fe\": first line second line  ",
                          "frontend plugin \"tbtest_fe\": cancelled", "frontend plugin \"tbtest_fe\": xxxxxxxx"};
    const tb_status codes[] = {TB_OK, TB_EIO, TB_ECANCELLED, TB_EINVAL};
    for (size_t i = 0; i < TB_ARRAY_LEN(modes); i++) {
        tb_config *cfg = tb_config_new();
        ck_assert(tb_config_set(cfg, "tbtest_fe.mode", modes[i], &err) == TB_OK);
        tb_plugin_args *args = NULL;
        ck_assert_msg(tb_plugin_args_resolve(fe, cfg, "tbtest_fe", &args, &err) == TB_OK, "%s", err.msg);
        memset(&err, 0, sizeof err);
        tb_status s = tb_plugin_run_frontend(fe, &api, args, &err);
        ck_assert_msg(s == codes[i], "mode %s: %s (%s)", modes[i], tb_status_name(s), err.msg);
        if (want[i]) {
            ck_assert_msg(strncmp(err.msg, want[i], strlen(want[i])) == 0, "mode %s: \"%s\"", modes[i], err.msg);
            ck_assert_msg(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\r') == NULL, "not one line: %s", err.msg);
            ck_assert_uint_lt(strlen(err.msg), sizeof err.msg);
        }
        tb_plugin_args_free(args);
        tb_config_free(cfg);
    }
    /* without the study API the plugin says so */
    ck_assert(tb_plugin_run_frontend(fe, NULL, NULL, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "frontend plugin \"tbtest_fe\": no study API");
    /* another kind is refused before anything runs */
    const tb_plugin *model = find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_model");
    ck_assert(tb_plugin_run_frontend(model, &api, NULL, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "plugin \"tbtest_model\" is a model plugin, not a frontend plugin");
    /* and a front end is refused by the calls of other kinds */
    tb_net *net = NULL;
    tb_model_input in = {1, 4, 4, 2};
    ck_assert(tb_plugin_build_model(fe, NULL, &in, &net, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "is a frontend plugin, not a model plugin");
    tb_task_data data;
    ck_assert(tb_plugin_open_task(fe, NULL, &data, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "is a frontend plugin, not a task plugin");
    tb_plugins_free(&reg);
}
END_TEST

/* ---- options ------------------------------------------------------------------------- */

static tb_plugin_registry valid_reg;

static const tb_plugin *valid_plugin(tb_plugin_kind kind, const char *name)
{
    memset(&valid_reg, 0, sizeof valid_reg);
    tb_err err;
    ck_assert_msg(tb_plugin_load_file(&valid_reg, case_path(kind == TB_PLUGIN_MODEL ? "valid/tbtest_model.so"
                                                                                      : "valid/tbtest_task.so"),
                                      &err) == TB_OK,
                  "%s", err.msg);
    return find_ok(&valid_reg, kind, name);
}

/* Resolves tbtest_model's options from "k=v" assignments; returns the status. */
static tb_status resolve_with(const tb_plugin *p, const char *const *sets, int n, tb_plugin_args **args, tb_err *err)
{
    tb_config *cfg = tb_config_new();
    for (int i = 0; i < n; i++) ck_assert_msg(tb_config_set_assignment(cfg, sets[i], err) == TB_OK, "%s", err->msg);
    tb_status s = tb_plugin_args_resolve(p, cfg, p->desc.name, args, err);
    tb_config_free(cfg);
    return s;
}

START_TEST(test_args_defaults_and_values)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_MODEL, "tbtest_model");
    const tb_host_api *h = tb_host_api_get();
    setenv("HOME", "/home/tbtest", 1);
    tb_plugin_args *args = NULL;
    tb_err err;
    ck_assert_msg(resolve_with(p, NULL, 0, &args, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(h->arg_int(args, "width"), 4);
    ck_assert_double_eq_tol(h->arg_float(args, "scale"), 0.5, 1e-12);
    ck_assert_int_eq(h->arg_bool(args, "bias"), 1);
    ck_assert_str_eq(h->arg_string(args, "label"), "hello");
    ck_assert_str_eq(h->arg_string(args, "act"), "relu");
    int64_t list[8];
    ck_assert_int_eq(h->arg_int_list(args, "widths", list, 8), 2);
    ck_assert(list[0] == 4 && list[1] == 8);
    ck_assert_str_eq(h->arg_string(args, "data"), "/home/tbtest/tbtest");
    ck_assert_int_eq(h->arg_is_set(args, "width"), 0);
    /* an undeclared name: a warning and zero, never a crash */
    setenv("TUNEBENCH_LOG_LEVEL", "quiet", 1);
    ck_assert_int_eq(h->arg_int(args, "no_such_option"), 0);
    ck_assert_ptr_null(h->arg_string(args, "no_such_option"));
    unsetenv("TUNEBENCH_LOG_LEVEL");
    tb_plugin_args_free(args);

    const char *sets[] = {"tbtest_model.width=8",        "tbtest_model.scale = 0.25", "tbtest_model.BIAS=no",
                          "tbtest_model.label=Some Text", "tbtest_model.act=NONE",     "tbtest_model.widths=1, 2,3",
                          "tbtest_model.data=~/x",        "tbtest_model.offset=-12345678901"};
    ck_assert_msg(resolve_with(p, sets, (int)TB_ARRAY_LEN(sets), &args, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(h->arg_int(args, "width"), 8);
    ck_assert_double_eq_tol(h->arg_float(args, "scale"), 0.25, 1e-12);
    ck_assert_int_eq(h->arg_bool(args, "bias"), 0);
    ck_assert_str_eq(h->arg_string(args, "label"), "Some Text");
    ck_assert_str_eq(h->arg_string(args, "act"), "none"); /* the declared spelling */
    ck_assert_int_eq(h->arg_int_list(args, "widths", list, 2), 3); /* copies 2, says 3 */
    ck_assert(list[0] == 1 && list[1] == 2);
    ck_assert_str_eq(h->arg_string(args, "data"), "/home/tbtest/x");
    ck_assert(h->arg_int(args, "offset") == -12345678901LL); /* min = max = 0: any value */
    ck_assert_double_eq(h->arg_float(args, "gain"), 1.0);
    ck_assert(h->arg_int(args, "gain") == 1);
    ck_assert_int_eq(h->arg_is_set(args, "width"), 1);
    ck_assert_int_eq(h->arg_is_set(args, "fail"), 0);
    char *d = tb_plugin_args_describe(args);
    TBT_ASSERT_HAS(d, "width = 8\n");
    TBT_ASSERT_HAS(d, "act = none\n");
    TBT_ASSERT_HAS(d, "widths = 1, 2,3\n");
    TBT_ASSERT_HAS(d, "data = /home/tbtest/x\n");
    TBT_ASSERT_HAS(d, "fail = false\n");
    free(d);
    tb_plugin_args_free(args);
    tb_plugins_free(&valid_reg);
}
END_TEST

static const char *resolve_fails(const tb_plugin *p, const char *set)
{
    static tb_err err;
    tb_plugin_args *args = NULL;
    const char *sets[1] = {set};
    ck_assert_msg(resolve_with(p, sets, 1, &args, &err) != TB_OK, "%s accepted", set);
    ck_assert_ptr_null(args);
    return err.msg;
}

/* A FLOAT without a range takes any finite value; arg_int gives it truncated
 * and clamped to the int64 range (no undefined cast past 2^63). */
START_TEST(test_args_float_without_range)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_MODEL, "tbtest_model");
    const tb_host_api *h = tb_host_api_get();
    struct {
        const char *text;
        double f;
        int64_t i;
    } cases[] = {
        {"2.75", 2.75, 2},
        {"-2.75", -2.75, -2},
        {"1e300", 1e300, INT64_MAX},
        {"-1e300", -1e300, INT64_MIN},
        {"9223372036854775808", 0x1p63, INT64_MAX},  /* 2^63: just past INT64_MAX */
        {"-9223372036854775808", -0x1p63, INT64_MIN}, /* -2^63 itself fits */
        {"1.7976931348623157e308", 1.7976931348623157e308, INT64_MAX},
    };
    for (size_t k = 0; k < TB_ARRAY_LEN(cases); k++) {
        char set[96];
        snprintf(set, sizeof set, "tbtest_model.gain=%s", cases[k].text);
        const char *sets[] = {set};
        tb_plugin_args *args = NULL;
        tb_err err;
        ck_assert_msg(resolve_with(p, sets, 1, &args, &err) == TB_OK, "%s: %s", set, err.msg);
        ck_assert_msg(h->arg_float(args, "gain") == cases[k].f, "%s: %.17g", set, h->arg_float(args, "gain"));
        ck_assert_msg(h->arg_int(args, "gain") == cases[k].i, "%s: %" PRId64, set, h->arg_int(args, "gain"));
        ck_assert_int_eq(h->arg_bool(args, "gain"), 1);
        tb_plugin_args_free(args);
    }
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.gain=inf"), "tbtest_model.gain = inf is outside ");
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.gain=-inf"), "tbtest_model.gain = -inf is outside ");
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.gain=nan"), "tbtest_model.gain = \"nan\" is not a number");
    tb_plugins_free(&valid_reg);
}
END_TEST

START_TEST(test_args_errors)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_MODEL, "tbtest_model");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.width=0"), "tbtest_model.width = 0 is outside [1, 64]");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.width=4.5"),
                     "tbtest_model.width = \"4.5\" is not an integer; allowed: [1, 64]");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.scale=abc"),
                     "tbtest_model.scale = \"abc\" is not a number; allowed: [0, 1]");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.scale=nan"),
                     "tbtest_model.scale = \"nan\" is not a number; allowed: [0, 1]");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.scale=1.5"), "tbtest_model.scale = 1.5 is outside [0, 1]");
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.bias=maybe"), "tbtest_model.bias = \"maybe\" is not a boolean");
    ck_assert_str_eq(resolve_fails(p, "tbtest_model.act=relux"),
                     "tbtest_model.act = \"relux\" is not a valid choice (did you mean relu?); allowed: relu|none");
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.widths=4,x"), "(item 2 is \"x\")");
    TBT_ASSERT_HAS(resolve_fails(p, "tbtest_model.widths=4,65"), "tbtest_model.widths = 4,65 is outside [1, 64]");
    const char *msg = resolve_fails(p, "tbtest_model.widht=3");
    TBT_ASSERT_HAS(msg, "unknown key tbtest_model.widht (did you mean width?); valid keys in [tbtest_model]: width, ");
    TBT_ASSERT_HAS(msg, "fail");

    /* keys the host reads itself may share the section */
    tb_config *cfg = tb_config_new();
    tb_err err;
    ck_assert(tb_config_set(cfg, "model.name", "tbtest_model", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "model.width", "5", &err) == TB_OK);
    const char *host_keys[] = {"name", "freeze"};
    tb_plugin_args *args = NULL;
    ck_assert(tb_plugin_args_resolve(p, cfg, "model", &args, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "unknown key model.name");
    ck_assert_msg(tb_plugin_args_resolve_ex(p, cfg, "model", host_keys, 2, &args, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(tb_host_api_get()->arg_int(args, "width"), 5);
    tb_plugin_args_free(args);
    ck_assert(tb_config_set(cfg, "model.frezee", "features", &err) == TB_OK);
    ck_assert(tb_plugin_args_resolve_ex(p, cfg, "model", host_keys, 2, &args, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg,
                   "unknown key model.frezee (did you mean freeze?); valid keys in [model]: name, freeze, width");
    tb_config_free(cfg);
    tb_plugins_free(&valid_reg);
}
END_TEST

START_TEST(test_args_required_option)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_TASK, "tbtest_task");
    tb_plugin_args *args = NULL;
    tb_err err;
    ck_assert(resolve_with(p, NULL, 0, &args, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "tbtest_task.count is required by task plugin \"tbtest_task\"");
    TBT_ASSERT_HAS(err.msg, "add count = ... to [tbtest_task]");
    /* the task call without arguments resolves defaults and fails the same way */
    tb_task_data data;
    ck_assert(tb_plugin_open_task(p, NULL, &data, &err) != TB_OK);
    TBT_ASSERT_HAS(err.msg, "count is required");
    tb_plugins_free(&valid_reg);
}
END_TEST

/* ---- building and opening --------------------------------------------------------------- */

START_TEST(test_build_model_and_forward)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_MODEL, "tbtest_model");
    const char *sets[] = {"tbtest_model.width=6"};
    tb_plugin_args *args = NULL;
    tb_err err;
    ck_assert_msg(resolve_with(p, sets, 1, &args, &err) == TB_OK, "%s", err.msg);
    tb_model_input in = {2, 7, 5, 3};
    tb_net *net = NULL;
    ck_assert_msg(tb_plugin_build_model(p, args, &in, &net, &err) == TB_OK, "%s", err.msg);
    tb_backend *be = tb_backend_cpu_create(1);
    ck_assert_msg(tb_net_build(net, be, 4, &err) == TB_OK, "%s", err.msg);
    tb_net_init_params(net, 7);
    ck_assert_int_eq(tb_net_classes(net), 3);
    ck_assert_int_ge(tb_net_find_param(net, "features.0.weight"), 0);
    ck_assert_int_ge(tb_net_find_param(net, "classifier.weight"), 0);
    const tb_param *w = tb_net_param(net, tb_net_find_param(net, "features.0.weight"));
    ck_assert(w->shape[0] == 6 && w->shape[1] == 2 && w->shape[2] == 3 && w->shape[3] == 3);
    size_t n_in = 4 * 2 * 7 * 5;
    float *x = be->ops->alloc(be, n_in * sizeof(float));
    float *hx = malloc(n_in * sizeof(float));
    for (size_t i = 0; i < n_in; i++) hx[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    be->ops->to_device(be, x, hx, n_in * sizeof(float));
    tb_net_forward(net, x, 4, 0, 0);
    float out[12];
    be->ops->to_host(be, out, tb_net_output(net), sizeof out);
    for (int i = 0; i < 12; i++) ck_assert(isfinite(out[i]));
    ck_assert(out[0] != out[3] || out[1] != out[4]); /* different inputs, different logits */
    be->ops->free(be, x);
    free(hx);
    tb_net_free(net);
    tb_backend_destroy(be);
    tb_plugin_args_free(args);

    /* a plugin's failure comes back prefixed with its name */
    const char *fail[] = {"tbtest_model.fail=yes"};
    ck_assert(resolve_with(p, fail, 1, &args, &err) == TB_OK);
    ck_assert(tb_plugin_build_model(p, args, &in, &net, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "model plugin \"tbtest_model\": asked to fail (width 4)");
    ck_assert_ptr_null(net);
    tb_plugin_args_free(args);
    tb_plugins_free(&valid_reg);
}
END_TEST

/* A plugin that reads an option it does not declare ("dropuot" for dropout)
 * fails the call, naming the plugin, the name, the declared options and the
 * nearest; on several threads at once with the same args too. */
typedef struct {
    const tb_plugin *p;
    const tb_plugin_args *args;
    tb_status s;
    tb_err err;
} undeclared_call;

static void *build_undeclared(void *arg)
{
    undeclared_call *c = arg;
    tb_model_input in = {1, 4, 4, 2};
    tb_net *net = NULL;
    c->s = tb_plugin_build_model(c->p, c->args, &in, &net, &c->err);
    if (net) tb_net_free(net);
    return NULL;
}

START_TEST(test_undeclared_option)
{
    static const char want[] = "model plugin \"tbtest_undeclared\" read option \"dropuot\", which it does not declare "
                               "(declared: dropout, hidden; did you mean dropout?) (a bug in the plugin)";
    tb_plugin_registry reg;
    memset(&reg, 0, sizeof reg);
    tb_err err;
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("undeclared/undeclared_model.so"), &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("undeclared/undeclared_task.so"), &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_plugin_load_file(&reg, case_path("frontend/tbtest_fe.so"), &err) == TB_OK, "%s", err.msg);
    const tb_plugin *model = find_ok(&reg, TB_PLUGIN_MODEL, "tbtest_undeclared");
    /* the defaults (args NULL) and resolved args: the plugin built a network, the host refuses it */
    tb_model_input in = {1, 4, 4, 2};
    tb_net *net = NULL;
    ck_assert(tb_plugin_build_model(model, NULL, &in, &net, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(net);
    tb_plugin_args *args = NULL;
    ck_assert_msg(tb_plugin_args_resolve(model, NULL, "model", &args, &err) == TB_OK, "%s", err.msg);
    undeclared_call calls[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&calls[i], 0, sizeof calls[i]);
        calls[i].p = model;
        calls[i].args = args;
        ck_assert_int_eq(pthread_create(&th[i], NULL, build_undeclared, &calls[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(calls[i].s, TB_EINVAL);
        ck_assert_str_eq(calls[i].err.msg, want);
    }
    tb_plugin_args_free(args);

    /* a task plugin: the misuse is named rather than the plugin's own failure */
    const tb_plugin *task = find_ok(&reg, TB_PLUGIN_TASK, "tbtest_undeclared_task");
    tb_task_data data;
    ck_assert(tb_plugin_open_task(task, NULL, &data, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "task plugin \"tbtest_undeclared_task\" read option \"dropuot\", which it does not "
                              "declare (declared: dropout, hidden; did you mean dropout?) (a bug in the plugin)");
    /* a front end that returned TB_OK fails all the same */
    const tb_plugin *fe = find_ok(&reg, TB_PLUGIN_FRONTEND, "tbtest_fe");
    tb_config *cfg = tb_config_new();
    ck_assert(tb_config_set(cfg, "tbtest_fe.mode", "undeclared", &err) == TB_OK);
    ck_assert_msg(tb_plugin_args_resolve(fe, cfg, "tbtest_fe", &args, &err) == TB_OK, "%s", err.msg);
    tb_study_api api;
    memset(&api, 0, sizeof api);
    api.version = TB_STUDY_API_VERSION;
    api.size = sizeof api;
    ck_assert(tb_plugin_run_frontend(fe, &api, args, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "frontend plugin \"tbtest_fe\" read option \"mdoe\", which it does not declare "
                              "(declared: mode; did you mean mode?) (a bug in the plugin)");
    tb_plugin_args_free(args);
    tb_config_free(cfg);
    tb_plugins_free(&reg);
}
END_TEST

/* A model that outputs another class count than the task declares: refused
 * when the run is configured (before any data loads), naming both plugins,
 * both counts and the final layer by its state_dict name. */
START_TEST(test_class_count_mismatch)
{
    char text[4096];
    snprintf(text, sizeof text,
             "[model]\nname = tbtest_seven\n[task]\nname = tbtest_task\n[tbtest_task]\ncount = 20\n"
             "[train]\noptimizer = sgd\nbatch_size = 4\nthreads = 1\n[plugins]\npath = %s:%s\n",
             case_path("seven"), case_path("valid"));
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert_msg(tb_config_load_text(&cfg, text, "seven.ini", &err) == TB_OK, "%s", err.msg);
    tb_run run;
    ck_assert_int_eq(tb_run_configure(&run, cfg, &err), TB_EINVAL);
    ck_assert_str_eq(err.msg, "task plugin \"tbtest_task\" has 3 classes (declared) but model plugin \"tbtest_seven\" "
                              "outputs 7 (its final layer fc; size it with the tb_model_input's classes)");
    ck_assert(!run.task_loaded);
    tb_run_free(&run);
    tb_config_free(cfg);
}
END_TEST

/* What a task declares (describe_task) and what open_task returns must agree:
 * a plugin that declares 9 classes and returns 3 is named as buggy, with both
 * values; a plugin without describe_task declares nothing (all 0). */
START_TEST(test_declared_shape_checked)
{
    char text[4096];
    snprintf(text, sizeof text,
             "[model]\nname = tbtest_model\n[task]\nname = tbtest_task\n[tbtest_task]\ncount = 20\ndefect = declared\n"
             "[train]\noptimizer = sgd\nbatch_size = 4\nthreads = 1\n[plugins]\npath = %s\n",
             case_path("valid"));
    tb_config *cfg = NULL;
    tb_err err;
    ck_assert_msg(tb_config_load_text(&cfg, text, "declared.ini", &err) == TB_OK, "%s", err.msg);
    tb_run run;
    ck_assert_msg(tb_run_configure(&run, cfg, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(run.declared.channels, 1);
    ck_assert_int_eq(run.declared.height, 4);
    ck_assert_int_eq(run.declared.width, 4);
    ck_assert_int_eq(run.declared.classes, 9);
    ck_assert_int_eq(tb_run_prepare(&run, &err), TB_EFORMAT);
    ck_assert_str_eq(err.msg, "task plugin \"tbtest_task\" declared classes = 9 (describe_task) but its data have 3 (a "
                              "bug in the plugin)");
    tb_run_free(&run);
    tb_config_free(cfg);

    /* a plugin built without describe_task (the slot it takes was reserved, so NULL): nothing declared */
    tb_plugin_registry reg = {0};
    ck_assert_msg(tb_plugins_discover(&reg, case_path("undeclared"), &err) == TB_OK, "%s", err.msg);
    const tb_plugin *old = NULL;
    ck_assert_msg(tb_plugin_find(&reg, TB_PLUGIN_TASK, "tbtest_undeclared_task", &old, &err) == TB_OK, "%s", err.msg);
    ck_assert(old->desc.describe_task == NULL);
    tb_task_shape shape = {7, 7, 7, 7};
    tb_plugin_args *args = NULL;
    ck_assert_msg(tb_plugin_args_resolve(old, NULL, "tbtest_undeclared_task", &args, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(tb_plugin_describe_task(old, args, &shape, &err), TB_OK);
    ck_assert(shape.channels == 0 && shape.height == 0 && shape.width == 0 && shape.classes == 0);
    tb_plugin_args_free(args);
    tb_plugins_free(&reg);
}
END_TEST

static tb_status open_with(const tb_plugin *p, const char *defect, tb_task_data *data, tb_err *err)
{
    char set[64];
    snprintf(set, sizeof set, "tbtest_task.defect=%s", defect);
    const char *sets[] = {"tbtest_task.count=20", set};
    tb_plugin_args *args = NULL;
    ck_assert_msg(resolve_with(p, sets, 2, &args, err) == TB_OK, "%s", err->msg);
    tb_status s = tb_plugin_open_task(p, args, data, err);
    tb_plugin_args_free(args);
    return s;
}

START_TEST(test_open_task)
{
    const tb_plugin *p = valid_plugin(TB_PLUGIN_TASK, "tbtest_task");
    tb_task_data data;
    tb_err err;
    ck_assert_msg(open_with(p, "none", &data, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(data.count, 20);
    ck_assert(data.channels == 1 && data.height == 4 && data.width == 4 && data.classes == 3);
    ck_assert_int_eq(data.labels[19], 19 % 3);
    ck_assert_int_eq(data.splits[9], TB_SPLIT_TEST);
    ck_assert_int_eq(data.pixels[16 * 5], 40 * (5 % 3));
    ck_assert_str_eq(data.class_names[2], "class2");
    ck_assert_str_eq(data.source, "tbtest_task(count=20)");
    tb_task_data_free(&data);
    ck_assert_ptr_null(data.pixels);

    /* invalid data is refused and freed (the sanitizer run checks for leaks) */
    ck_assert(open_with(p, "label", &data, &err) == TB_EFORMAT);
    ck_assert_str_eq(err.msg, "task plugin \"tbtest_task\" returned invalid data: label 3 of sample 19 is outside "
                              "[0, 3) (a bug in the plugin)");
    ck_assert_ptr_null(data.pixels);
    ck_assert(open_with(p, "split", &data, &err) == TB_EFORMAT);
    TBT_ASSERT_HAS(err.msg, "split 7 of sample 0 is not 0 (train), 1 (val) or 2 (test)");
    ck_assert(open_with(p, "no_pixels", &data, &err) == TB_EFORMAT);
    TBT_ASSERT_HAS(err.msg, "pixels is NULL");
    ck_assert_ptr_null(data.labels);
    ck_assert(open_with(p, "fail", &data, &err) == TB_EIO);
    ck_assert_str_eq(err.msg, "task plugin \"tbtest_task\": no data here (defect = fail)");
    ck_assert_int_eq(data.count, 0);
    tb_plugins_free(&valid_reg);
}
END_TEST

/* ---- `tunebench plugins` ------------------------------------------------------------------ */

START_TEST(test_cli_plugins)
{
    static char out[1 << 16];
    char args[1200];
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    snprintf(args, sizeof args, "plugins --plugin-path '%s:%s'", case_path("valid"), case_path("bad_name"));
    /* bad_name.so fails to load: listed under problems, exit 1 (the rest is listed) */
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", out, sizeof out), 1);
    TBT_ASSERT_HAS(out, "tunebench plugins: 1 file failed to load (see problems)");
    TBT_ASSERT_HAS(out, "model plugins (");
    TBT_ASSERT_HAS(out, "  tbtest_model  (model plugin, version 1.2.3, licence MIT)\n");
    TBT_ASSERT_HAS(out, "      file: ");
    TBT_ASSERT_HAS(out, "valid/tbtest_model.so\n");
    TBT_ASSERT_HAS(out, "      a tiny convolutional model for the loader tests\n");
    TBT_ASSERT_HAS(out, "options (in the config section [tbtest_model]):");
    /* option rows: name, type, default, allowed, help (columns padded) */
    const char *rows[][5] = {
        {"width", "int", "4", "[1, 64]", "output channels of the convolution"},
        {"act", "choice", "relu", "relu|none", "activation after the convolution"},
        {"widths", "int list", "4,8", "[1, 64]", "a list of integers"},
        {"offset", "int", "0", "any", "an integer without a range"},
        {"count", "int", "(required)", "[1, 100000]", "number of samples (required)"},
    };
    for (size_t r = 0; r < TB_ARRAY_LEN(rows); r++) {
        char start[64], line[512];
        snprintf(start, sizeof start, "\n        %s ", rows[r][0]);
        const char *at = strstr(out, start);
        ck_assert_msg(at != NULL, "no option row for %s in:\n%s", rows[r][0], out);
        at += 1;
        size_t n = strcspn(at, "\n");
        snprintf(line, sizeof line, "%.*s", (int)n, at);
        const char *p = line;
        for (int c = 1; c < 5; c++) {
            const char *q = strstr(p, rows[r][c]);
            ck_assert_msg(q != NULL, "option row \"%s\" lacks \"%s\" after column %d", line, rows[r][c], c);
            p = q + strlen(rows[r][c]);
        }
    }
    TBT_ASSERT_HAS(out, "task plugins (");
    /* every folder searched, in order, with where it came from */
    tbt_assert_in_order(out, "searched, in order:\n", "  plugin path ", case_path("valid"), "  plugin path ",
                        case_path("bad_name"), "  the build tree ", TB_PLUGIN_BUILD_DIR "\n", NULL);
    TBT_ASSERT_HAS(out, "problems:\n  ");
    TBT_ASSERT_HAS(out, "bad_name.so: invalid plugin name \"Bad-Name\"");

    /* front ends are listed in their own section (the build's cli plugin) */
    snprintf(args, sizeof args, "plugins --plugin-path '%s'", TB_PLUGIN_BUILD_DIR "/cli.so");
    ck_assert_int_eq(tbt_tunebench(args, "2>&1", out, sizeof out), 0);
    tbt_assert_in_order(out, "model plugins (", "task plugins (", "frontend plugins (", /* the build's cli and http */
                        "  cli  (frontend plugin, version 1.0.0, licence MIT)\n",
                        "      use: tunebench study CONFIG --frontend cli\n",
                        "options (in the config section [cli]):", "        script   path   \"\"  ",
                        "        refresh ", "searched, in order:", NULL);
    TBT_ASSERT_LACKS(out, "frontend plugins (0)");

    ck_assert_int_eq(tbt_tunebench("plugins --help", "2>&1", out, sizeof out), 0);
    TBT_ASSERT_HAS(out, "usage: tunebench plugins [--plugin-path P] [--help]");
    TBT_ASSERT_HAS(out, "Exit codes: 0 listed, 1 no plugin found, a file failed to load");
    ck_assert_int_eq(tbt_tunebench("plugins --bogus", "2>&1", out, sizeof out), 2);
    TBT_ASSERT_HAS(out, "unknown argument --bogus");
    ck_assert_int_eq(tbt_tunebench("plugins --plugin-path", "2>&1", out, sizeof out), 2);
    ck_assert_int_eq(tbt_tunebench("plugins --plugin-path /nonexistent/tb-plugins", "2>&1", out, sizeof out), 1);
    TBT_ASSERT_HAS(out, "plugin path /nonexistent/tb-plugins: No such file or directory");
}
END_TEST

/* ---- the host API ----------------------------------------------------------------------- */

START_TEST(test_host_api)
{
    const tb_host_api *h = tb_host_api_get();
    ck_assert_uint_eq(h->version, TB_HOST_API_VERSION);
    ck_assert_uint_eq(h->size, sizeof(tb_host_api));
    /* every member is filled: walk the table as pointers after version and size */
    size_t first = offsetof(tb_host_api, arg_int);
    ck_assert_uint_eq((sizeof(tb_host_api) - first) % sizeof(void (*)(void)), 0);
    for (size_t off = first; off < sizeof(tb_host_api); off += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, (const char *)h + off, sizeof fn);
        ck_assert_msg(fn != NULL, "host API member at offset %zu is NULL", off);
    }
    ck_assert_int_ge(h->threads(), 1);
    void *m = h->alloc(100);
    ck_assert_ptr_nonnull(m);
    h->free(m);

    int32_t a[50], b[50];
    h->permutation(a, 50, 123, TB_STREAM_SPLIT, 4);
    tb_rng_permutation(b, 50, 123, TB_STREAM_SPLIT, 4);
    ck_assert(memcmp(a, b, sizeof a) == 0);

    uint8_t src[2 * 4 * 4], dst[2 * 2 * 2];
    memset(src, 100, sizeof src);
    h->resize_u8(dst, 2, 2, src, 4, 4, 2);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(dst[i], 100);

    tb_net *net = h->net_new(3, 8, 8);
    int x = h->net_conv2d(net, TB_NET_INPUT, "c", 5, 3, 2, 1, 1, 1, (tb_init_spec){TB_INIT_DEFAULT, 0, TB_INIT_DEFAULT, 0});
    int c, hh, w;
    ck_assert_int_eq(h->net_shape(net, TB_NET_INPUT, &c, &hh, &w), 0);
    ck_assert(c == 3 && hh == 8 && w == 8);
    ck_assert_int_eq(h->net_shape(net, x, &c, &hh, &w), 0);
    ck_assert(c == 5 && hh == 4 && w == 4);
    ck_assert_int_eq(h->net_shape(net, 99, &c, &hh, &w), -1);
    h->net_free(net);

    char tmpl[] = "/tmp/tbtest-cache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    setenv("XDG_CACHE_HOME", tmpl, 1);
    const char *dir = h->cache_dir("tbtest_cache");
    ck_assert_ptr_nonnull(dir);
    char expect[256];
    snprintf(expect, sizeof expect, "%s/tunebench/tbtest_cache", tmpl);
    ck_assert_str_eq(dir, expect);
    struct stat st;
    ck_assert(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    ck_assert_ptr_eq(h->cache_dir("tbtest_cache"), dir); /* the same pointer for the same plugin */
    setenv("TUNEBENCH_LOG_LEVEL", "quiet", 1);
    ck_assert_ptr_null(h->cache_dir("../escape"));
    h->log(TB_LOG_WARN, "tbtest", "not shown at level quiet");
    unsetenv("TUNEBENCH_LOG_LEVEL");
    rmdir(dir);
    snprintf(expect, sizeof expect, "%s/tunebench", tmpl);
    rmdir(expect);
    rmdir(tmpl);
    unsetenv("XDG_CACHE_HOME");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("plugin_loader");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_no_entry_symbol);
    tcase_add_test(tc, test_abi_major_mismatch);
    tcase_add_test(tc, test_abi_minor_newer);
    tcase_add_test(tc, test_wrong_kind);
    tcase_add_test(tc, test_model_without_build_model);
    tcase_add_test(tc, test_bad_name);
    tcase_add_test(tc, test_duplicate_name);
    tcase_add_test(tc, test_shadowed_by_earlier_directory);
    tcase_add_test(tc, test_not_found_lists_directories);
    tcase_add_test(tc, test_skips_what_is_not_a_plugin);
    tcase_add_test(tc, test_explicit_path_errors);
    tcase_add_test(tc, test_discovery_from_environment);
    tcase_add_test(tc, test_short_descriptor);
    tcase_add_test(tc, test_empty_directory);
    tcase_add_test(tc, test_task_without_open_task);
    tcase_add_test(tc, test_bad_option_tables);
    tcase_add_test(tc, test_frontend_errors);
    suite_add_tcase(s, tc);
    TCase *use = tcase_create("use");
    tcase_add_test(use, test_args_defaults_and_values);
    tcase_add_test(use, test_args_errors);
    tcase_add_test(use, test_args_float_without_range);
    tcase_add_test(use, test_args_required_option);
    tcase_add_test(use, test_build_model_and_forward);
    tcase_add_test(use, test_undeclared_option);
    tcase_add_test(use, test_class_count_mismatch);
    tcase_add_test(use, test_declared_shape_checked);
    tcase_add_test(use, test_open_task);
    tcase_add_test(use, test_run_frontend);
    tcase_add_test(use, test_host_api);
    tcase_add_test(use, test_cli_plugins);
    suite_add_tcase(s, use);
    return s;
}

int main(void) { return tbt_run(suite()); }
