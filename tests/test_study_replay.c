/* test_study_replay.c: study journal records replayed through study_apply
 * without a whole study (study_replay_detached, study_internal.h): damaged
 * numbers in a record must read as defaults, never as undefined conversions
 * (found by tests/fuzz/fuzz_study_journal; the --sanitize build's UBSan
 * stops on the old code). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "study/study_internal.h"
#include "tb_test.h"

static void append(tb_journal *j, int type, const char *payload)
{
    tb_err err;
    ck_assert_msg(tb_journal_append(j, (uint32_t)type, payload, strlen(payload), 0, &err) == TB_OK, "%s", err.msg);
}

START_TEST(damaged_numbers_read_as_defaults)
{
    char dir[] = "/tmp/tb_test_study_replay_XXXXXX", path[256], ini[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/study.journal", dir);
    snprintf(ini, sizeof ini, "[study]\narchive = %s\n", dir);
    tb_err err;
    tb_journal *j;
    ck_assert(tb_journal_open(path, &j, &err) == TB_OK);
    append(j, REC_OPEN, "t=1\npid=nan\n");
    append(j, REC_REGISTER, "t=2\nparticipant=a\neducation=master\nself_level=-1e300\n");
    append(j, REC_SUBMIT, "t=3\nparticipant=a\nrun=r1\nstatus=queued\nv.epochs=1e300\ng.lr=nan\ng.epochs=inf\n");
    append(j, REC_RUN_END, "t=4\nparticipant=a\nrun=r1\nstatus=finished\nepoch=-1e300\n");
    tb_journal_close(j);
    tb_config *cfg;
    ck_assert(tb_config_load_text(&cfg, ini, "test", &err) == TB_OK);
    ck_assert_msg(study_replay_detached(cfg, path, &err) == TB_OK, "%s", err.msg);
    tb_config_free(cfg);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *replay_suite(void)
{
    Suite *s = suite_create("study_replay");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, damaged_numbers_read_as_defaults);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(replay_suite()); }
