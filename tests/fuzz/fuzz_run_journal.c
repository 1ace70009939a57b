/* fuzz_run_journal.c: bytes -> DIR/a/runs/<id>.journal -> tb_archive_open(DIR/a)
 * (recovery: the journal cut back to its valid prefix, replayed, the run
 * file rebuilt, the run marked interrupted, the index written), then
 * tb_archive_close; DIR/a is emptied after every input. Input: see
 * fz_journal_image (fuzz_util.h); the run id is r000001. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "store/archive.h"

static char adir[600], runs[700], jpath[800];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(adir, sizeof adir, "%s/a", fz_dir());
    snprintf(runs, sizeof runs, "%s/runs", adir);
    snprintf(jpath, sizeof jpath, "%s/r000001.journal", runs);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return -1;
    mkdir(adir, 0755);
    mkdir(runs, 0755);
    size_t n;
    unsigned char *img = fz_journal_image(data, size, &n);
    fz_write(jpath, img, n);
    free(img);
    tb_archive *a = NULL;
    tb_archive_recovery rec;
    tb_err err;
    if (tb_archive_open(adir, 1, &a, &rec, &err) == TB_OK) {
        /* what a reader asks of the recovered run */
        tb_archive_run_info info;
        tb_archive_run_info_by_id(a, "r000001", &info, &err);
        tb_archive_close(a, &err);
    }
    fz_rm_tree(adir, 0);
    return 0;
}
