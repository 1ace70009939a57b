/* archive_export.c: a study archive packed into one HDF5 file (docs/archive.md,
 * "Exporting"): read with the archive's own layout, written through
 * tb_h5_writer. Reads only: the archive may be live (no lock is taken). */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

#define PATH_CAP 4096

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* ---- export ---------------------------------------------------------------------------------------- */

/* What the study and sweeps wrote beside the runs: study.h5's tables at the
 * root, each sweeps/<id>.h5 as /sweeps/<id>. Files that are absent are skipped. */
static tb_status export_extras(const char *dir, hid_t out, const char *tmp, tb_err *err)
{
    static const char *const study_objects[] = {"study", "participants", "submissions", "finals", "events"};
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/study.h5", dir);
    if (access(path, F_OK) == 0) {
        hid_t f = tb_h5_open_readonly(path);
        if (f < 0) return tb_fail(err, TB_EIO, "export: cannot open %s", path);
        for (size_t i = 0; i < sizeof study_objects / sizeof *study_objects; i++) {
            if (H5Lexists(f, study_objects[i], H5P_DEFAULT) <= 0) continue;
            if (H5Ocopy(f, study_objects[i], out, study_objects[i], H5P_DEFAULT, H5P_DEFAULT) < 0) {
                H5Fclose(f);
                return tb_fail(err, TB_EIO, "export %s: cannot copy /%s from %s", tmp, study_objects[i], path);
            }
        }
        H5Fclose(f);
    }
    snprintf(path, sizeof path, "%s/sweeps", dir);
    DIR *d = opendir(path);
    if (!d) return TB_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    tb_status st = TB_OK;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t bigger = cap ? 2 * cap : 16;
            char **grown = realloc(names, sizeof *names * bigger);
            if (!grown) {
                st = tb_fail(err, TB_ENOMEM, "export: out of memory");
                break;
            }
            names = grown;
            cap = bigger;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = tb_fail(err, TB_ENOMEM, "export: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    hid_t g = -1;
    if (st == TB_OK && n && (g = H5Gcreate2(out, "sweeps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        st = tb_fail(err, TB_EIO, "export %s: cannot create /sweeps", tmp);
    for (size_t i = 0; i < n && st == TB_OK; i++) {
        char file[PATH_CAP + 256], name[256];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 3), names[i]);
        hid_t f = tb_h5_open_readonly(file);
        if (f < 0) {
            st = tb_fail(err, TB_EIO, "export: cannot open %s", file);
            break;
        }
        if (H5Ocopy(f, ".", g, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
            st = tb_fail(err, TB_EIO, "export %s: cannot copy %s", tmp, file);
        H5Fclose(f);
    }
    if (g >= 0) H5Gclose(g);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* The run's own run file (runs/<id>.run.h5, written by executors: weights,
 * test metrics, model and task) copied under /runs/<id>/run, its root
 * attributes on that group. Its curves, which have more columns than the
 * archive's, become /runs/<id>/curves/batch_detail and epoch_detail, so that
 * each group name has one schema in the export. *has is 1 when the run has a
 * run file; /runs/<id>@run_file names it ("" when none). */
static tb_status export_run_file(const char *dir, const char *id, hid_t runs, const char *tmp, int *has, tb_err *err)
{
    static const char *const moves[][2] = {{"run/curves/batch", "curves/batch_detail"},
                                           {"run/curves/epoch", "curves/epoch_detail"}};
    char path[PATH_CAP], rel[64];
    *has = 0;
    if (tb_archive_run_path(path, sizeof path, dir, id, ".run.h5") != 0)
        return tb_fail(err, TB_EINVAL, "export: the run file path of %s is too long", id);
    hid_t g = H5Gopen2(runs, id, H5P_DEFAULT);
    if (g < 0) return tb_fail(err, TB_EIO, "export %s: cannot open /runs/%s", tmp, id);
    tb_status st = TB_OK;
    tb_h5_writer w;
    if (access(path, F_OK) == 0) {
        hid_t f = tb_h5_open_readonly(path);
        if (f < 0) {
            st = tb_fail(err, TB_EIO, "export: cannot open run file %s", path);
            goto out;
        }
        herr_t rc = H5Ocopy(f, ".", g, "run", H5P_DEFAULT, H5P_DEFAULT);
        H5Fclose(f);
        if (rc < 0) {
            st = tb_fail(err, TB_EIO, "export %s: cannot copy run file %s", tmp, path);
            goto out;
        }
        if (H5Lexists(g, "curves", H5P_DEFAULT) <= 0) {
            hid_t c = H5Gcreate2(g, "curves", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (c < 0) {
                st = tb_fail(err, TB_EIO, "export %s: cannot create /runs/%s/curves", tmp, id);
                goto out;
            }
            H5Gclose(c);
        }
        if (H5Lexists(g, "run/curves", H5P_DEFAULT) > 0) {
            for (size_t i = 0; i < sizeof moves / sizeof *moves; i++) {
                if (H5Lexists(g, moves[i][0], H5P_DEFAULT) <= 0) continue;
                if (H5Lexists(g, moves[i][1], H5P_DEFAULT) > 0 ||
                    H5Lmove(g, moves[i][0], g, moves[i][1], H5P_DEFAULT, H5P_DEFAULT) < 0) {
                    st = tb_fail(err, TB_EIO, "export %s: cannot move /runs/%s/%s to /runs/%s/%s", tmp, id,
                                 moves[i][0], id, moves[i][1]);
                    goto out;
                }
            }
            if (H5Ldelete(g, "run/curves", H5P_DEFAULT) < 0) {
                st = tb_fail(err, TB_EIO, "export %s: cannot remove /runs/%s/run/curves", tmp, id);
                goto out;
            }
        }
        *has = 1;
        snprintf(rel, sizeof rel, "runs/%s.run.h5", id);
    } else {
        rel[0] = '\0';
    }
    tb_h5w_init(&w, tmp);
    tb_h5w_attr_str(&w, g, "run_file", rel);
    st = tb_h5w_finish(&w, err);
out:
    H5Gclose(g);
    return st;
}

tb_status tb_archive_export(const char *dir, const char *out_path, tb_err *err)
{
    tb_h5_quiet();
    char ipath[PATH_CAP], tmp[PATH_CAP];
    if (snprintf(ipath, sizeof ipath, "%s/index.h5", dir) >= (int)sizeof ipath ||
        snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return tb_fail(err, TB_EINVAL, "export %s: path too long", out_path);
    hid_t idx = tb_h5_open_readonly(ipath);
    if (idx < 0) return tb_fail(err, TB_EIO, "export: cannot open the archive index %s", ipath);
    tb_status st = TB_OK;
    hid_t out = -1, runs = -1, ids = -1, sp = -1, strt = -1;
    char **idv = NULL, *missing = NULL;
    size_t missing_len = 0;
    hsize_t n = 0;
    ids = H5Dopen2(idx, "index/id", H5P_DEFAULT);
    sp = ids >= 0 ? H5Dget_space(ids) : -1;
    strt = tb_h5_utf8_type();
    if (strt < 0 || sp < 0 || H5Sget_simple_extent_dims(sp, &n, NULL) != 1) {
        st = tb_fail(err, TB_EFORMAT, "export: %s has no /index/id column", ipath);
        goto done;
    }
    idv = calloc(n ? n : 1, sizeof *idv);
    if (!idv || (n && H5Dread(ids, strt, H5S_ALL, H5S_ALL, H5P_DEFAULT, idv) < 0)) {
        st = tb_fail(err, TB_EFORMAT, "export: cannot read /index/id from %s", ipath);
        goto done;
    }
    out = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    if (out < 0) {
        char why[128];
        st = tb_fail(err, TB_EIO, "export: cannot create %s%s", tmp, tb_h5_errno_suffix(errno, why));
        goto done;
    }
    char now[32];
    tb_iso_utc(tb_utc_now(), now);
    tb_h5_writer w;
    tb_h5w_init(&w, tmp);
    tb_h5w_attr_str(&w, out, "format", TB_ARCHIVE_EXPORT_FORMAT);
    tb_h5w_attr_i64(&w, out, "format_version", TB_ARCHIVE_VERSION);
    tb_h5w_attr_str(&w, out, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(&w, out, "exported", now);
    tb_h5w_attr_str(&w, out, "source", dir);
    if (!tb_h5w_ok(&w)) {
        st = tb_h5w_finish(&w, err);
        goto done;
    }
    if (H5Ocopy(idx, "index", out, "index", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        st = tb_fail(err, TB_EIO, "export %s: cannot copy the index from %s", tmp, ipath);
        goto done;
    }
    runs = H5Gcreate2(out, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (runs < 0) {
        st = tb_fail(err, TB_EIO, "export %s: cannot create /runs", tmp);
        goto done;
    }
    for (hsize_t i = 0; i < n; i++) {
        char rpath[PATH_CAP];
        if (!idv[i] || !tb_archive_valid_name(idv[i], TB_ARCHIVE_ID_MAX) || tb_archive_run_path(rpath, sizeof rpath, dir, idv[i], ".h5") != 0) {
            st = tb_fail(err, TB_EFORMAT, "export: %s lists a bad run id at row %llu", ipath, (unsigned long long)i);
            goto done;
        }
        hid_t rf = tb_h5_open_readonly(rpath);
        if (rf < 0) {
            st = tb_fail(err, TB_EIO, "export: cannot open run file %s", rpath);
            goto done;
        }
        herr_t rc = H5Ocopy(rf, ".", runs, idv[i], H5P_DEFAULT, H5P_DEFAULT);
        H5Fclose(rf);
        if (rc < 0) {
            st = tb_fail(err, TB_EIO, "export %s: cannot copy run file %s", tmp, rpath);
            goto done;
        }
        int has_run_file = 0;
        if ((st = export_run_file(dir, idv[i], runs, tmp, &has_run_file, err)) != TB_OK) goto done;
        if (!has_run_file) {
            size_t len = strlen(idv[i]) + 2;
            char *grown = realloc(missing, missing_len + len + 1);
            if (!grown) {
                st = tb_fail(err, TB_ENOMEM, "export: out of memory");
                goto done;
            }
            missing = grown;
            snprintf(missing + missing_len, len + 1, "%s%s", missing_len ? ", " : "", idv[i]);
            missing_len += strlen(missing + missing_len);
        }
    }
    tb_h5w_attr_str(&w, out, "runs_without_run_file", missing ? missing : "");
    if (!tb_h5w_ok(&w)) {
        st = tb_h5w_finish(&w, err);
        goto done;
    }
    if ((st = export_extras(dir, out, tmp, err)) != TB_OK) goto done;
done:
    if (runs >= 0) H5Gclose(runs);
    if (out >= 0 && tb_h5_close_file(out, 1) < 0 && st == TB_OK) {
        int e = errno;
        st = tb_fail(err, TB_EIO, "export: cannot close (flush) %s%s%s", tmp, e ? ": " : "", e ? strerror(e) : "");
    }
    free(missing);
    if (idv && n) H5Dvlen_reclaim(strt, sp, H5P_DEFAULT, idv);
    free(idv);
    if (strt >= 0) H5Tclose(strt);
    if (sp >= 0) H5Sclose(sp);
    if (ids >= 0) H5Dclose(ids);
    H5Fclose(idx);
    if (st == TB_OK && tb_rename_durable(tmp, out_path) != 0)
        st = tb_fail(err, TB_EIO, "export: cannot move %s to %s durably: %s", tmp, out_path, strerror(errno));
    if (st != TB_OK) unlink(tmp);
    return st;
}
