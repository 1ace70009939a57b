/* study_replay_detached.c: the study journal's decoding and study_apply
 * without the rest of tb_study_open (test-only; see study_internal.h), so a
 * fuzzer can replay thousands of journals a second. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "study_internal.h"

tb_status study_replay_detached(const tb_config *cfg, const char *journal_path, tb_err *err)
{
    tb_study *s = study_new();
    if (!s) return tb_fail(err, TB_ENOMEM, "out of memory");
    tb_status st = tb_study_settings_load(&s->st, &s->space, cfg, err);
    if (st == TB_OK) {
        pthread_mutex_lock(&s->mu);
        tb_study_recovery rec;
        memset(&rec, 0, sizeof rec);
        st = study_replay(s, journal_path, 1, &rec, err);
        /* the queries a reopened study answers from the replayed state */
        double now = tb_utc_now();
        (void)study_active_count(s);
        (void)study_max_active(s);
        for (int i = 0; i < s->np; i++) {
            (void)study_used_seconds(s, &s->p[i], now);
            (void)study_lobby_position(s, i, now);
            (void)study_best_run(s, i);
            (void)study_finals_of(s, i);
            (void)study_state_name(&s->p[i]);
        }
        pthread_mutex_unlock(&s->mu);
    }
    study_free(s);
    return st;
}
