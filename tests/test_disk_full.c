/* test_disk_full.c: the executable on a disk that fills up. A file size limit
 * (`ulimit -f` with SIGXFSZ ignored: EFBIG, "File too large") needs no root;
 * a 16 KiB tmpfs gives real ENOSPC where mount is allowed (skipped with a
 * printed reason elsewhere). Every case: exit 1, not a signal; one line that
 * names the file and the reason; no HDF5 traces; no temporary file left; and
 * the archive works again once there is room. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tb_test.h"

static char dir[1024], task[1200], ini[1200];

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(dir, sizeof dir, "%s/tb_test_disk_full_XXXXXX", base);
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(task, sizeof task, "%s/toy.h5", dir);
    snprintf(ini, sizeof ini, "%s/toy.ini", dir);
    tbt_make_toy_task(task, 192, 64, 64, 4, 12, 3);
    FILE *f = fopen(ini, "w");
    ck_assert(f != NULL);
    fputs(tbt_toy_config(task, "threads = 1\n"), f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Runs tunebench args under a file size limit of kib KiB (0: none); the exit code, -1 for a signal. */
static int run_limited(int kib, const char *args, char *out, size_t cap)
{
    char cmd[4096];
    if (kib > 0)
        snprintf(cmd, sizeof cmd, "sh -c \"trap '' XFSZ; ulimit -f %d; exec '%s' %s\" 2>&1", kib * 2, TB_TUNEBENCH_EXE,
                 args); /* sh counts 512-byte blocks */
    else snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", TB_TUNEBENCH_EXE, args);
    return tbt_capture(cmd, out, cap);
}

/* The first temporary file under path (recursively) into found, or 0 when there is none. */
static int find_temporary(const char *path, char *found, size_t cap)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int hit = 0;
    while (!hit && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) hit = find_temporary(p, found, cap);
        else if (strstr(e->d_name, ".tmp")) {
            snprintf(found, cap, "%s", p);
            hit = 1;
        }
    }
    closedir(d);
    return hit;
}

static void assert_clean_failure(int rc, const char *out, const char *file, const char *where)
{
    /* train exits 1; so does a sweep whose runs the archive could not record
     * (they end interrupted, each with its reason) */
    ck_assert_msg(rc == 1, "exit %d (-1: a signal):\n%s", rc, out);
    ck_assert_msg(!strstr(out, "HDF5-DIAG") && !strstr(out, "#000:"), "HDF5 printed its error stack:\n%s", out);
    ck_assert_msg(strstr(out, file), "the message does not name %s:\n%s", file, out);
    ck_assert_msg(strstr(out, "File too large") || strstr(out, "No space left on device"), "no reason given:\n%s", out);
    char tmp[2048];
    ck_assert_msg(!find_temporary(where, tmp, sizeof tmp), "a temporary file was left: %s\n%s", tmp, out);
}

/* train with the run file past the limit: the checkpoint does not fit */
START_TEST(train_past_a_file_size_limit_fails_cleanly)
{
    static char out[1 << 16];
    char args[3000], runs[1300];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    ck_assert(mkdir(runs, 0755) == 0);
    snprintf(args, sizeof args, "train '%s' --quiet --out '%s/out.h5'", ini, runs);
    int rc = run_limited(16, args, out, sizeof out);
    ck_assert_int_eq(rc, 1);
    assert_clean_failure(rc, out, "out.h5", runs);
    ck_assert_msg(strstr(out, "File too large"), "%s", out);
    /* with room again the same command works */
    ck_assert_msg(run_limited(0, args, out, sizeof out) == 0, "%s", out);
}
END_TEST

/* train into a 16 KiB tmpfs: real ENOSPC */
START_TEST(train_into_a_full_file_system_fails_cleanly)
{
    char mnt[1200];
    snprintf(mnt, sizeof mnt, "%s/full", dir);
    ck_assert(mkdir(mnt, 0755) == 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=16k") != 0) {
        printf("skipped: cannot mount a 16 KiB tmpfs here (%s): the file size limit test covers EFBIG only\n",
               strerror(errno));
        return;
    }
    static char out[1 << 16];
    char args[3000];
    snprintf(args, sizeof args, "train '%s' --quiet --out '%s/out.h5'", ini, mnt);
    int rc = run_limited(0, args, out, sizeof out);
    char tmp[2048];
    int left = find_temporary(mnt, tmp, sizeof tmp);
    umount2(mnt, MNT_DETACH);
    ck_assert_msg(rc == 1, "exit %d (-1: a signal):\n%s", rc, out);
    ck_assert_msg(!strstr(out, "HDF5-DIAG"), "HDF5 printed its error stack:\n%s", out);
    ck_assert_msg(strstr(out, "out.h5") && strstr(out, "No space left on device"), "%s", out);
    ck_assert_msg(!left, "a temporary file was left: %s", tmp);
}
END_TEST

/* a sweep whose archive hits the limit, then the same archive with room again */
START_TEST(sweep_past_a_file_size_limit_fails_cleanly_and_the_archive_recovers)
{
    static char out[1 << 16];
    char args[3000], archive[1300];
    snprintf(archive, sizeof archive, "%s/archive", dir);
    snprintf(args, sizeof args, "sweep '%s' --grid train.lr=1e-2,1e-3 --archive '%s' --slots 2 --threads 1", ini, archive);
    int rc = run_limited(24, args, out, sizeof out);
    assert_clean_failure(rc, out, archive, archive);
    /* a file size limit gives EFBIG only: the reason given must be that one */
    ck_assert_msg(strstr(out, "File too large"), "%s", out);

    /* stale temporaries of a process that died: the next open removes its own, nothing else */
    static const char *const stale[] = {"index.h5.tmp", "study.h5.tmp", "runs/r000009.h5.tmp",
                                        "runs/r000009.run.h5.tmp-4242", "sweeps/s0009-grid.h5.tmp"};
    char p[1600];
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", archive, stale[i]);
        FILE *f = fopen(p, "w");
        ck_assert_msg(f != NULL, "%s", p);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/notes.tmp", archive); /* not ours */
    FILE *f = fopen(p, "w");
    ck_assert(f != NULL);
    fclose(f);
    ck_assert_msg(run_limited(0, args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(!strstr(out, "HDF5-DIAG"), "%s", out);
    ck_assert_msg(access(p, F_OK) == 0, "recovery removed a file it does not own");
    unlink(p);
    char tmp[2048];
    ck_assert_msg(!find_temporary(archive, tmp, sizeof tmp), "a temporary file was left: %s", tmp);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("disk_full");
    TCase *tc = tcase_create("disk_full");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_past_a_file_size_limit_fails_cleanly);
    tcase_add_test(tc, train_into_a_full_file_system_fails_cleanly);
    tcase_add_test(tc, sweep_past_a_file_size_limit_fails_cleanly_and_the_archive_recovers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
