/* fuzz_study_journal.c: bytes -> DIR/study.journal -> replayed into a fresh
 * in-memory study (study_replay_detached, core/study/study_internal.h): the
 * journal's framing and CRCs (tb_journal_truncate_to_valid, tb_journal_read),
 * every record's payload decoding and study_apply, then the queries a
 * reopened study answers from that state. tb_study_open itself also loads the
 * task, opens the archive and starts an executor per call, too slow to fuzz.
 * Input: see fz_journal_image (fuzz_util.h): raw file bytes, or records
 * framed by the target so that mutations reach the payloads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/config.h"
#include "fuzz_util.h"
#include "study/study_internal.h"

static char path[600];
static tb_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fz_dir();
    snprintf(path, sizeof path, "%s/study.journal", dir);
    char ini[1024];
    /* a narrowed space and two final seeds, as a real study has */
    snprintf(ini, sizeof ini,
             "[study]\narchive = %s\nbudget_minutes = 1\nfinal_seeds = 0,1\n"
             "[space]\nepochs = int 1 3\n[model]\nname = cnn\n[task]\nname = fashion_mnist\n",
             dir);
    tb_err err;
    if (tb_config_load_text(&cfg, ini, "fuzz study", &err) != TB_OK) {
        fprintf(stderr, "fuzz_study_journal: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return -1;
    size_t n;
    unsigned char *img = fz_journal_image(data, size, &n);
    fz_write(path, img, n);
    free(img);
    tb_err err;
    study_replay_detached(cfg, path, &err);
    fz_rm_tree(fz_dir(), 1); /* the journal, and any damaged tail replay kept aside */
    return 0;
}
