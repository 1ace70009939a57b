/* fuzz_config.c: bytes -> an INI file -> tb_config_load, then every check a
 * configuration gets without data: tb_run_config_parse ([model], [task],
 * [train], [output], [plugins]), the plugin checks (tb_run_config_check:
 * plugins found in the build's folder, their sections and options), the
 * study's [study] and [space] (tb_study_settings_load), each [train] value
 * against the space, a submission resolved and applied, random search's
 * draws, a random sweep's plan, and the round trips the code documents:
 *   tb_config_to_ini's text loads again;
 *   tb_space_to_ini's text loads again;
 *   every configuration tb_space_sample draws passes tb_space_resolve.
 * A broken documented property aborts (a finding); errors are fine.
 * [plugins] path is never followed (it could dlopen any file on the machine). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "fuzz_util.h"
#include "host/plugin.h"
#include "run/run.h"
#include "study/hparam_space.h"
#include "study/study.h"
#include "study/sweep.h"

static char path[600];
static tb_plugin_registry keep; /* the plugins stay loaded: dlopen/dlclose per input would re-register them */

static void property(int ok, const char *what, const char *detail)
{
    if (ok) return;
    fprintf(stderr, "fuzz_config: property broken: %s: %s\n", what, detail);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsetenv("TUNEBENCH_PLUGIN_PATH");
    snprintf(path, sizeof path, "%s/fuzz.ini", fz_dir());
    tb_err err;
    if (tb_plugins_discover(&keep, NULL, &err) != TB_OK) fprintf(stderr, "fuzz_config: plugins: %s\n", err.msg);
    return 0;
}

static void check_space(tb_config *cfg)
{
    tb_study_settings st;
    tb_space sp;
    tb_err err;
    if (tb_study_settings_load(&st, &sp, cfg, &err) != TB_OK) {
        /* the space alone, as tb_space_load is also called without [study] */
        if (tb_space_load(&sp, cfg, &err) != TB_OK) return;
    }
    char *ini = tb_space_to_ini(&sp);
    if (ini) {
        tb_config *c2 = NULL;
        tb_space sp2;
        tb_status r = tb_config_load_text(&c2, ini, "space", &err);
        property(r == TB_OK, "tb_space_to_ini's text loads", err.msg);
        r = tb_space_load(&sp2, c2, &err);
        property(r == TB_OK, "tb_space_to_ini's text is a valid space", err.msg);
        tb_config_free(c2);
        free(ini);
    }
    /* the [train] values as a submission */
    const char *given[TB_HP_COUNT];
    for (int h = 0; h < TB_HP_COUNT; h++) {
        given[h] = tb_config_get(cfg, "train", tb_hp_names[h]);
        char canon[TB_HP_TEXT];
        if (given[h]) tb_space_check_value(&sp, (tb_hp)h, given[h], canon, &err);
        char desc[256];
        tb_space_describe(&sp, (tb_hp)h, desc, sizeof desc);
    }
    tb_hp_values v;
    int bad;
    if (tb_space_resolve(&sp, given, 0, &v, &bad, &err) == TB_OK) {
        tb_config *c = tb_config_new();
        tb_space_apply(&v, c, &err);
        tb_config_free(c);
    }
    for (uint64_t i = 0; i < 3; i++) {
        tb_space_sample(&sp, 12345, i * 0x9E3779B97F4A7C15ull, &v);
        const char *g[TB_HP_COUNT];
        for (int h = 0; h < TB_HP_COUNT; h++) g[h] = v.text[h];
        tb_status r = tb_space_resolve(&sp, g, 0, NULL, &bad, &err);
        property(r == TB_OK, "tb_space_sample's draw passes tb_space_resolve", err.msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) return -1;
    fz_write(path, data, size);
    tb_config *cfg = NULL;
    tb_err err;
    if (tb_config_load(&cfg, path, &err) != TB_OK) return 0;

    char *ini = tb_config_to_ini(cfg);
    if (ini) {
        tb_config *c2 = NULL;
        tb_status r = tb_config_load_text(&c2, ini, "round trip", &err);
        property(r == TB_OK, "tb_config_to_ini's text loads", err.msg);
        tb_config_free(c2);
        free(ini);
    }
    int follow_plugins = tb_config_get(cfg, "plugins", "path") == NULL;
    tb_run_config rc;
    if (tb_run_config_parse(&rc, cfg, &err) == TB_OK && follow_plugins) tb_run_config_check(&rc, &err);
    char *runs = NULL;
    if (tb_run_sections_ini(cfg, &runs, &err) == TB_OK) free(runs);
    check_space(cfg);
    if (follow_plugins) {
        tb_sweep sw;
        memset(&sw, 0, sizeof sw);
        char *problems = NULL;
        tb_sweep_plan_random(&sw, cfg, 2, 7, 0, &problems, &err);
        free(problems);
        tb_sweep_free(&sw);
    }
    tb_config_free(cfg);
    return 0;
}
