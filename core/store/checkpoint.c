/* checkpoint.c: checkpoints in HDF5 with PyTorch's state_dict keys and shapes
 * (layout in checkpoint.h and docs/checkpoints.md).
 *
 * HDF5's automatic error printing is switched off for the duration of every
 * public call (and restored after), so the library prints nothing; failures
 * are reported through tb_err as one line naming the file, key and shapes. */
#include "checkpoint.h"

#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TB_VERSION
#define TB_VERSION "unknown"
#endif
#ifndef TB_GIT_COMMIT
#define TB_GIT_COMMIT "unknown"
#endif

#define STR_MAX 256 /* longest string attribute we read */

/* ---- HDF5 error printing ------------------------------------------------------ */

typedef struct quiet_h5 {
    H5E_auto2_t func;
    void *data;
    int saved;
} quiet_h5;

static void quiet_begin(quiet_h5 *q)
{
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const quiet_h5 *q)
{
    if (q->saved) H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

/* ---- small helpers -------------------------------------------------------------- */

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0) fn(*id);
    *id = H5I_INVALID_HID;
}

/* "[16, 1, 3, 3]", "[]" for a scalar. */
static void fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[0] = '\0';
    tb_appendf(buf, len, &used, "[");
    for (int i = 0; i < ndim; i++) tb_appendf(buf, len, &used, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    tb_appendf(buf, len, &used, "]");
    /* a shape that does not fit is cut, which only shortens an error message */
}

static int valid_key(const char *key) { return key[0] != '\0' && strchr(key, '/') == NULL && strcmp(key, ".") != 0; }

/* ---- attributes ------------------------------------------------------------------ */

/* Opens attribute name of obj for reading. Returns 0 when absent (*a untouched),
 * 1 when open, or -1 with err set. where names obj in messages. */
static int open_attr(hid_t obj, const char *where, const char *name, hid_t *a, tb_status *st, tb_err *err)
{
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) {
        *st = tb_fail(err, TB_EFORMAT, "%s: cannot query attribute '%s'", where, name);
        return -1;
    }
    if (ex == 0) return 0;
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) {
        *st = tb_fail(err, TB_EFORMAT, "%s: cannot open attribute '%s'", where, name);
        return -1;
    }
    hid_t sp = H5Aget_space(*a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (np != 1) {
        H5Aclose(*a);
        *st = tb_fail(err, TB_EFORMAT, "%s: attribute '%s' holds %lld values, expected one", where, name,
                      (long long)np);
        return -1;
    }
    return 1;
}

/* Reads a string attribute (variable or fixed length). *found = 0 when absent. */
static tb_status read_attr_str(hid_t obj, const char *where, const char *name, char *buf, size_t len, int *found,
                               tb_err *err)
{
    const char *why = "";
    int r = tb_h5_read_attr_str(obj, name, buf, len, &why);
    *found = r != 0;
    if (r >= 0) return TB_OK;
    if (r == -2)
        return tb_fail(err, TB_EFORMAT, "%s: attribute '%s' is longer than %zu characters", where, name, len - 1);
    return tb_fail(err, TB_EFORMAT, "%s: attribute '%s' %s", where, name, why);
}

/* Reads a numeric scalar attribute converted to mtype (H5T_NATIVE_INT64 or _DOUBLE). */
static tb_status read_attr_num(hid_t obj, const char *where, const char *name, hid_t mtype, void *out, int *found,
                               tb_err *err)
{
    hid_t a = H5I_INVALID_HID;
    tb_status st = TB_OK;
    *found = 0;
    int r = open_attr(obj, where, name, &a, &st, err);
    if (r <= 0) return st;
    *found = 1;
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (ft >= 0) H5Tclose(ft);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        st = tb_fail(err, TB_EFORMAT, "%s: attribute '%s' is not a number", where, name);
    else if (H5Aread(a, mtype, out) < 0)
        st = tb_fail(err, TB_EFORMAT, "%s: cannot read attribute '%s' as a number", where, name);
    H5Aclose(a);
    return st;
}

/* ---- datasets --------------------------------------------------------------------- */

/* Creates dataset name under loc with PyTorch's shape (ndim 0: scalar) and
 * writes buf; a failure is recorded in w with the dataset's path. */
static void write_dataset(tb_h5_writer *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                          const int64_t *shape, const void *buf)
{
    hsize_t dims[4];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    tb_h5w_dataset(w, loc, name, ftype, mtype, ndim, dims, buf);
}

/* What read_dataset_info saw in the file. */
typedef struct file_tensor {
    int missing;       /* no such key */
    int misshapen;     /* a different shape (rank and dims below) */
    int rank;
    hsize_t dims[H5S_MAX_RANK];
    H5T_class_t cls;
    size_t size;       /* bytes per value in the file */
} file_tensor;

/* Opens dataset name under loc, checks it holds numbers in the expected shape
 * and reads it converted to mtype; info says what the file held. A missing
 * dataset or a different shape is TB_EFORMAT with a message naming the key
 * and both shapes. */
static tb_status read_dataset_info(hid_t loc, const char *where, const char *name, int ndim, const int64_t *shape,
                                   hid_t mtype, void *buf, file_tensor *info, tb_err *err)
{
    memset(info, 0, sizeof *info);
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    if (ex < 0) return tb_fail(err, TB_EFORMAT, "cannot look up %s/%s", where, name);
    if (ex == 0) {
        info->missing = 1;
        return tb_fail(err, TB_EFORMAT, "%s/%s is missing", where, name);
    }
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return tb_fail(err, TB_EFORMAT, "%s/%s is not a dataset", where, name);
    tb_status st = TB_OK;
    hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (sp < 0 || rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        st = tb_fail(err, TB_EFORMAT, "cannot read the shape of %s/%s", where, name);
        goto out;
    }
    info->cls = cls;
    info->size = ft >= 0 ? H5Tget_size(ft) : 0;
    info->rank = rank;
    for (int i = 0; i < rank; i++) info->dims[i] = dims[i];
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        st = tb_fail(err, TB_EFORMAT, "%s/%s does not hold numbers (HDF5 type class %d)", where, name, (int)cls);
        goto out;
    }
    int same = rank == ndim;
    for (int i = 0; same && i < rank; i++) same = dims[i] == (hsize_t)shape[i];
    if (!same) {
        char have[96], want[96];
        int64_t fd[H5S_MAX_RANK];
        for (int i = 0; i < rank; i++) fd[i] = (int64_t)dims[i];
        fmt_shape(have, sizeof have, rank, fd);
        fmt_shape(want, sizeof want, ndim, shape);
        st = tb_fail(err, TB_EFORMAT, "%s/%s has shape %s in the file, the network expects %s", where, name, have,
                     want);
        info->misshapen = 1;
        goto out;
    }
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = tb_fail(err, TB_EFORMAT, "cannot read %s/%s", where, name);
out:
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return st;
}

/* read_dataset_info for a caller that needs only the status */
static tb_status read_dataset(hid_t loc, const char *where, const char *name, int ndim, const int64_t *shape,
                              hid_t mtype, void *buf, tb_err *err)
{
    file_tensor info;
    return read_dataset_info(loc, where, name, ndim, shape, mtype, buf, &info, err);
}

/* Deletes link name of group if present (a checkpoint group is rewritten whole). */
static void drop_link(tb_h5_writer *w, hid_t group, const char *name)
{
    if (!tb_h5w_ok(w)) return;
    htri_t ex = H5Lexists(group, name, H5P_DEFAULT);
    if (tb_h5w_check(w, ex < 0 ? -1 : 0, group, "look up", name) < 0) return;
    if (ex > 0) tb_h5w_check(w, H5Ldelete(group, name, H5P_DEFAULT) < 0 ? -1 : 0, group, "replace", name);
}

/* A group that remembers its links' creation order (state_dict order), or -1
 * (recorded in w). */
static hid_t create_group(tb_h5_writer *w, hid_t loc, const char *name)
{
    if (!tb_h5w_ok(w)) return H5I_INVALID_HID;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
    if (gcpl >= 0 && H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0)
        g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    tb_h5w_check(w, g < 0 ? -1 : 0, loc, "create group", name);
    return g;
}

/* ---- writing ---------------------------------------------------------------------- */

/* HDF5 failures go to w (with the object's path); the rest (bad input, out of
 * memory) are returned with err. */
static tb_status write_optimizer(tb_h5_writer *w, hid_t group, const tb_net *net, const tb_optimizer *opt,
                                 tb_err *err)
{
    const tb_optim_config *cfg = &opt->cfg;
    const size_t n = tb_net_params_size(net);
    if (opt->n != n)
        return tb_fail(err, TB_EINVAL, "the optimizer holds state for %zu parameters, the network has %zu", opt->n,
                       n);
    const int slots = tb_optim_slots(cfg);
    float *host = NULL;
    tb_status st = TB_OK;
    hid_t og = create_group(w, group, "optimizer"), sg = H5I_INVALID_HID;
    if (og < 0) return TB_EIO;

    tb_h5w_attr_str(w, og, "kind", tb_optim_name(cfg->kind));
    tb_h5w_attr_i64(w, og, "step", opt->scalars.step);
    /* every optimizer hyperparameter (engine/hparams.h), booleans too, as doubles */
#define WRITE_HPARAM(name, ...) tb_h5w_attr_f64(w, og, #name, (double)cfg->name);
    TB_OPTIM_HPARAMS(WRITE_HPARAM)
#undef WRITE_HPARAM
    tb_h5w_attr_f64(w, og, "eta", opt->scalars.eta);
    tb_h5w_attr_f64(w, og, "mu", opt->scalars.mu);
    if (!tb_h5w_ok(w)) goto out;

    if (slots > 0 && n > 0) {
        host = malloc((size_t)slots * n * sizeof *host);
        if (!host) {
            st = tb_fail(err, TB_ENOMEM, "out of memory for %d x %zu floats of optimizer state", slots, n);
            goto out;
        }
        opt->be->ops->to_host(opt->be, host, opt->state, (size_t)slots * n * sizeof *host);
    }
    for (int s = 0; s < slots && tb_h5w_ok(w); s++) {
        const char *slot = tb_optim_slot_name(cfg, s);
        if (!slot) {
            st = tb_fail(err, TB_EINVAL, "optimizer slot %d has no usable name", s);
            goto out;
        }
        sg = create_group(w, og, slot);
        for (int i = 0; i < tb_net_param_count(net) && tb_h5w_ok(w); i++) {
            const tb_param *p = tb_net_param(net, i);
            if (p->is_buffer || !p->trainable) continue;
            if (p->offset + p->count > n) {
                st = tb_fail(err, TB_EINVAL, "parameter %s lies outside the parameter block", p->name);
                goto out;
            }
            write_dataset(w, sg, p->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, p->shape,
                          host + (size_t)s * n + p->offset);
        }
        tb_h5w_close_group(w, sg);
        sg = H5I_INVALID_HID;
    }
out:
    free(host);
    close_id(&sg, H5Gclose);
    tb_h5w_close_group(w, og);
    return st != TB_OK ? st : tb_h5w_ok(w) ? TB_OK : TB_EIO;
}

/* The checkpoint into group; HDF5 failures are recorded in w and returned as
 * TB_EIO (err untouched: tb_h5w_finish says which write failed). */
static tb_status write_group_impl(tb_h5_writer *w, hid_t group, const tb_net *net, const tb_optimizer *opt,
                                  tb_err *err)
{
    if (!net) return tb_fail(err, TB_EINVAL, "no network to save");
    const int np = tb_net_param_count(net);
    size_t max_count = 1;
    for (int i = 0; i < np; i++) {
        const tb_param *p = tb_net_param(net, i);
        if (!valid_key(p->name)) return tb_fail(err, TB_EINVAL, "state_dict key '%s' cannot be an HDF5 name", p->name);
        if (p->count > max_count) max_count = p->count;
    }
    tb_h5w_attr_str(w, group, "format", TB_CHECKPOINT_FORMAT);
    tb_h5w_attr_i64(w, group, "format_version", TB_CHECKPOINT_VERSION);
    tb_h5w_attr_str(w, group, "tunebench_version", TB_VERSION);
    tb_h5w_attr_str(w, group, "git_commit", TB_GIT_COMMIT);
    drop_link(w, group, "params");
    drop_link(w, group, "optimizer");
    if (!tb_h5w_ok(w)) return TB_EIO;

    float *host = malloc(max_count * sizeof *host);
    int64_t *ints = malloc(max_count * sizeof *ints);
    tb_status st = TB_OK;
    if (!host || !ints) {
        st = tb_fail(err, TB_ENOMEM, "out of memory for a tensor of %zu floats", max_count);
        goto out;
    }
    hid_t pg = create_group(w, group, "params");
    for (int i = 0; i < np && tb_h5w_ok(w); i++) {
        const tb_param *p = tb_net_param(net, i);
        tb_net_param_get(net, i, host);
        if (p->is_int64) {
            for (size_t k = 0; k < p->count; k++) ints[k] = (int64_t)llround((double)host[k]);
            write_dataset(w, pg, p->name, H5T_STD_I64LE, H5T_NATIVE_INT64, p->ndim, p->shape, ints);
        } else {
            write_dataset(w, pg, p->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, p->shape, host);
        }
    }
    tb_h5w_close_group(w, pg);
    if (opt && tb_h5w_ok(w)) st = write_optimizer(w, group, net, opt, err);
out:
    free(host);
    free(ints);
    return st != TB_OK ? st : tb_h5w_ok(w) ? TB_OK : TB_EIO;
}

tb_status tb_checkpoint_write_into(tb_h5_writer *w, hid_t group, const tb_net *net, const tb_optimizer *opt,
                                   tb_err *err)
{
    quiet_h5 q;
    quiet_begin(&q);
    tb_status st = write_group_impl(w, group, net, opt, err);
    quiet_end(&q);
    return st;
}

tb_status tb_checkpoint_write_group(hid_t group, const tb_net *net, const tb_optimizer *opt, tb_err *err)
{
    char file[1024] = "?";
    H5Fget_name(group, file, sizeof file);
    tb_h5_writer w;
    tb_h5w_init(&w, file);
    tb_status st = tb_checkpoint_write_into(&w, group, net, opt, err);
    return tb_h5w_ok(&w) ? st : tb_h5w_finish(&w, err);
}

/* ---- reading ------------------------------------------------------------------------ */

static tb_status check_format(hid_t group, tb_err *err)
{
    char fmt[STR_MAX];
    int found = 0;
    tb_status st = read_attr_str(group, "/", "format", fmt, sizeof fmt, &found, err);
    if (st != TB_OK) return st;
    if (!found)
        return tb_fail(err, TB_EFORMAT, "no 'format' attribute: not a tunebench checkpoint (expected format '%s')",
                       TB_CHECKPOINT_FORMAT);
    if (strcmp(fmt, TB_CHECKPOINT_FORMAT) != 0)
        return tb_fail(err, TB_EFORMAT, "format is '%s', expected '%s'", fmt, TB_CHECKPOINT_FORMAT);
    int64_t version = 0;
    st = read_attr_num(group, "/", "format_version", H5T_NATIVE_INT64, &version, &found, err);
    if (st != TB_OK) return st;
    if (!found) return tb_fail(err, TB_EFORMAT, "no 'format_version' attribute (supported: %d)", TB_CHECKPOINT_VERSION);
    if (version != TB_CHECKPOINT_VERSION)
        return tb_fail(err, TB_EFORMAT, "format_version %" PRId64 " found, this build supports version %d%s", version,
                       TB_CHECKPOINT_VERSION, version > TB_CHECKPOINT_VERSION ? " (written by a newer tunebench)" : "");
    return TB_OK;
}

/* Reads optimizer state into host_state [slots * n] (pre-filled with the
 * optimizer's current state) and *sc. */
static tb_status read_optimizer(hid_t group, const tb_net *net, const tb_optimizer *opt, float *host_state,
                                tb_optim_scalars *sc, tb_err *err)
{
    const tb_optim_config *cfg = &opt->cfg;
    const size_t n = tb_net_params_size(net);
    htri_t ex = H5Lexists(group, "optimizer", H5P_DEFAULT);
    if (ex < 0) return tb_fail(err, TB_EFORMAT, "cannot look up group optimizer");
    if (ex == 0)
        return tb_fail(err, TB_EFORMAT,
                       "has no optimizer state (saved without an optimizer); load it without one to start a fresh %s",
                       tb_optim_name(cfg->kind));
    hid_t og = H5Gopen2(group, "optimizer", H5P_DEFAULT), sg = H5I_INVALID_HID;
    if (og < 0) return tb_fail(err, TB_EFORMAT, "optimizer is not a group");
    tb_status st = TB_OK;
    char kind[STR_MAX];
    int found = 0;
    if ((st = read_attr_str(og, "optimizer", "kind", kind, sizeof kind, &found, err)) != TB_OK) goto out;
    if (!found) {
        st = tb_fail(err, TB_EFORMAT, "optimizer has no 'kind' attribute");
        goto out;
    }
    if (strcmp(kind, tb_optim_name(cfg->kind)) != 0) {
        st = tb_fail(err, TB_EFORMAT, "optimizer state is for '%s', this optimizer is '%s'", kind,
                     tb_optim_name(cfg->kind));
        goto out;
    }
    static const char *const scalars[3] = {"step", "eta", "mu"};
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            st = read_attr_num(og, "optimizer", "step", H5T_NATIVE_INT64, &sc->step, &found, err);
        else
            st = read_attr_num(og, "optimizer", scalars[k], H5T_NATIVE_DOUBLE, k == 1 ? &sc->eta : &sc->mu, &found,
                               err);
        if (st != TB_OK) goto out;
        if (!found) {
            st = tb_fail(err, TB_EFORMAT, "optimizer has no '%s' attribute", scalars[k]);
            goto out;
        }
    }
    if (sc->step < 0) {
        st = tb_fail(err, TB_EFORMAT, "optimizer step %" PRId64 " is negative", sc->step);
        goto out;
    }
    const int slots = tb_optim_slots(cfg);
    for (int s = 0; s < slots; s++) {
        const char *slot = tb_optim_slot_name(cfg, s);
        char where[64];
        int w = snprintf(where, sizeof where, "optimizer/%s", slot ? slot : "?");
        if (!slot || w < 0 || (size_t)w >= sizeof where) {
            st = tb_fail(err, TB_EINVAL, "optimizer slot %d has no usable name", s);
            goto out;
        }
        ex = H5Lexists(og, slot, H5P_DEFAULT);
        if (ex <= 0) {
            st = tb_fail(err, TB_EFORMAT, "%s is missing (the checkpoint's %s was saved with other settings)", where,
                         kind);
            goto out;
        }
        sg = H5Gopen2(og, slot, H5P_DEFAULT);
        if (sg < 0) {
            st = tb_fail(err, TB_EFORMAT, "%s is not a group", where);
            goto out;
        }
        for (int i = 0; i < tb_net_param_count(net); i++) {
            const tb_param *p = tb_net_param(net, i);
            if (p->is_buffer || !p->trainable) continue;
            if (p->offset + p->count > n) {
                st = tb_fail(err, TB_EINVAL, "parameter %s lies outside the parameter block", p->name);
                goto out;
            }
            st = read_dataset(sg, where, p->name, p->ndim, p->shape, H5T_NATIVE_FLOAT,
                              host_state + (size_t)s * n + p->offset, err);
            if (st != TB_OK) goto out;
        }
        H5Gclose(sg);
        sg = H5I_INVALID_HID;
    }
out:
    close_id(&sg, H5Gclose);
    H5Gclose(og);
    return st;
}

static void append_name(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);
    if (used + 1 < len) snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

/* The final layer's key prefix ("classifier.2."): the layer of the last
 * trainable tensor (not a buffer) the network declares. */
static void final_layer_prefix(const tb_net *net, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = tb_net_param_count(net) - 1; i >= 0; i--) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_buffer) continue;
        const char *dot = strrchr(p->name, '.');
        size_t n = dot ? (size_t)(dot - p->name) + 1 : 0;
        if (n >= len) n = 0;
        memcpy(buf, p->name, n);
        buf[n] = '\0';
        return;
    }
}

/* rep != NULL: model.init_from (no optimizer). Then a tensor of the final
 * layer under keep_prefixes whose shape in the file differs only in its
 * first dimension (another class count) keeps the net's fresh values, listed
 * in rep->reinitialised; every other missing or misshapen key is an error
 * naming it; a missing num_batches_tracked (torchvision-converted
 * state_dicts lack it) loads as 0 and is listed in rep->defaulted;
 * non-finite weights are an error naming the tensor; tensors stored as
 * another type than float32 (int32, float64, ...) are converted and counted. */
static tb_status read_group_impl(hid_t group, tb_net *net, tb_optimizer *opt, const char *keep_prefixes,
                                 tb_checkpoint_load_report *rep, tb_err *err)
{
    if (!net) return tb_fail(err, TB_EINVAL, "no network to load into");
    tb_status st = check_format(group, err);
    if (st != TB_OK) return st;

    const int np = tb_net_param_count(net);
    size_t total = 0, max_count = 1;
    for (int i = 0; i < np; i++) {
        const tb_param *p = tb_net_param(net, i);
        total += p->count;
        if (p->count > max_count) max_count = p->count;
    }
    const size_t n = tb_net_params_size(net);
    float *host = malloc((total ? total : 1) * sizeof *host);
    int64_t *ints = malloc(max_count * sizeof *ints);
    float *state = NULL;
    tb_optim_scalars sc = {0, 0, 0};
    hid_t pg = H5I_INVALID_HID;
    if (!host || !ints) {
        st = tb_fail(err, TB_ENOMEM, "out of memory for %zu floats of parameters", total);
        goto out;
    }
    htri_t ex = H5Lexists(group, "params", H5P_DEFAULT);
    if (ex <= 0) {
        st = tb_fail(err, TB_EFORMAT, "has no 'params' group");
        goto out;
    }
    pg = H5Gopen2(group, "params", H5P_DEFAULT);
    if (pg < 0) {
        st = tb_fail(err, TB_EFORMAT, "params is not a group");
        goto out;
    }
    /* read everything first, so that a bad file leaves the network untouched */
    char final_prefix[256];
    final_layer_prefix(net, final_prefix, sizeof final_prefix);
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        const tb_param *p = tb_net_param(net, i);
        if (!valid_key(p->name)) {
            st = tb_fail(err, TB_EINVAL, "state_dict key '%s' cannot be an HDF5 name", p->name);
            goto out;
        }
        file_tensor ft;
        if (p->is_int64) {
            st = read_dataset_info(pg, "params", p->name, p->ndim, p->shape, H5T_NATIVE_INT64, ints, &ft, err);
            for (size_t k = 0; st == TB_OK && k < p->count; k++) host[off + k] = (float)ints[k];
        } else {
            st = read_dataset_info(pg, "params", p->name, p->ndim, p->shape, H5T_NATIVE_FLOAT, host + off, &ft, err);
        }
        if (rep && st == TB_EFORMAT && ft.missing && p->is_int64) {
            for (size_t k = 0; k < p->count; k++) host[off + k] = 0.0f; /* torchvision-converted: absent */
            append_name(rep->defaulted, sizeof rep->defaulted, p->name);
            rep->n_defaulted++;
            st = TB_OK;
        } else if (rep && st == TB_EFORMAT && ft.misshapen) {
            /* another class count: the final layer's tensors differ in their first dimension only */
            int classes_differ = final_prefix[0] && keep_prefixes && tb_name_has_prefix(p->name, keep_prefixes) &&
                                 strncmp(p->name, final_prefix, strlen(final_prefix)) == 0 &&
                                 strchr(p->name + strlen(final_prefix), '.') == NULL && ft.rank == p->ndim &&
                                 p->ndim >= 1;
            for (int k = 1; classes_differ && k < p->ndim; k++) classes_differ = ft.dims[k] == (hsize_t)p->shape[k];
            if (classes_differ) {
                tb_net_param_get(net, i, host + off); /* keep its new initialisation */
                append_name(rep->reinitialised, sizeof rep->reinitialised, p->name);
                st = TB_OK;
            } else if (keep_prefixes && *keep_prefixes && tb_name_has_prefix(p->name, keep_prefixes)) {
                char inner[sizeof err->msg];
                snprintf(inner, sizeof inner, "%s", err->msg);
                st = tb_fail(err, TB_EFORMAT,
                             "%s (only the final layer's tensors, %s*, are re-initialised, and only for another "
                             "class count)",
                             inner, final_prefix[0] ? final_prefix : "none");
            }
        } else if (rep && st == TB_OK) {
            if (!p->is_int64) {
                for (size_t k = 0; k < p->count; k++) {
                    if (!isfinite(host[off + k])) {
                        st = tb_fail(err, TB_EFORMAT,
                                     "params/%s holds a non-finite value (%g at index %zu): a model cannot start "
                                     "from non-finite weights",
                                     p->name, (double)host[off + k], k);
                        goto out;
                    }
                }
            }
            int native = p->is_int64 ? ft.cls == H5T_INTEGER : ft.cls == H5T_FLOAT && ft.size == 4;
            if (!native) {
                if (rep->n_converted++ == 0)
                    snprintf(rep->converted, sizeof rep->converted, "%s%zu (first: params/%s)",
                             ft.cls == H5T_FLOAT ? "float" : ft.cls == H5T_INTEGER ? "int" : "type ", 8 * ft.size,
                             p->name);
            }
        }
        if (st != TB_OK) goto out;
        off += p->count;
    }
    if (opt) {
        if (opt->n != n) {
            st = tb_fail(err, TB_EINVAL, "the optimizer holds state for %zu parameters, the network has %zu", opt->n,
                         n);
            goto out;
        }
        size_t floats = (size_t)tb_optim_slots(&opt->cfg) * n;
        state = malloc((floats ? floats : 1) * sizeof *state);
        if (!state) {
            st = tb_fail(err, TB_ENOMEM, "out of memory for %zu floats of optimizer state", floats);
            goto out;
        }
        if (floats) opt->be->ops->to_host(opt->be, state, opt->state, floats * sizeof *state);
        if ((st = read_optimizer(group, net, opt, state, &sc, err)) != TB_OK) goto out;
        if (floats) opt->be->ops->to_device(opt->be, opt->state, state, floats * sizeof *state);
        opt->scalars = sc;
    }
    off = 0;
    for (int i = 0; i < np; i++) {
        tb_net_param_set(net, i, host + off);
        off += tb_net_param(net, i)->count;
    }
out:
    close_id(&pg, H5Gclose);
    free(host);
    free(ints);
    free(state);
    return st;
}

tb_status tb_checkpoint_read_group(hid_t group, tb_net *net, tb_optimizer *opt, tb_err *err)
{
    quiet_h5 q;
    quiet_begin(&q);
    tb_status st = read_group_impl(group, net, opt, NULL, NULL, err);
    quiet_end(&q);
    return st;
}

/* ---- files ------------------------------------------------------------------------- */

/* err = "checkpoint <path>: <inner>" */
static tb_status with_path(tb_err *err, tb_status st, const char *path, const tb_err *inner)
{
    return tb_fail(err, st, "checkpoint %s: %s", path, inner->msg);
}

tb_status tb_checkpoint_save(const char *path, const tb_net *net, const tb_optimizer *opt, tb_err *err)
{
    if (!path || !*path) return tb_fail(err, TB_EINVAL, "checkpoint: no file name given");
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return tb_fail(err, TB_EINVAL, "checkpoint: file name %.200s... is too long", path);

    quiet_h5 q;
    quiet_begin(&q);
    tb_err inner = {{0}};
    tb_status st = TB_OK;
    errno = 0;
    hid_t fid = tb_h5_create(tmp, H5P_DEFAULT, H5P_DEFAULT);
    if (fid < 0) {
        int e = errno;
        st = tb_fail(err, TB_EIO, "checkpoint %s: cannot create temporary file %s%s%s", path, tmp, e ? ": " : "",
                     e ? strerror(e) : "");
        quiet_end(&q);
        return st;
    }
    tb_h5_writer w;
    tb_h5w_init(&w, path); /* named by its final name: the temporary file is ours */
    st = write_group_impl(&w, fid, net, opt, &inner);
    if (st == TB_OK) tb_h5w_check(&w, H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0 ? -1 : 0, -1, "flush the writes", NULL);
    tb_h5w_close_file(&w, fid);
    if (!tb_h5w_ok(&w)) { /* "cannot write dataset /params/fc.weight in PATH (reason)" */
        st = tb_h5w_finish(&w, err);
        goto fail;
    }
    if (st != TB_OK) {
        st = with_path(err, st, path, &inner);
        goto fail;
    }
    /* H5Fflush only issues pwrite; fsync so the renamed file survives power loss */
    if (tb_fsync_path(tmp, 0) != 0) {
        st = tb_fail(err, TB_EIO, "checkpoint %s: cannot fsync %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (tb_rename_into_place(tmp, path) != 0) { /* never over a directory, FIFO or device */
        st = tb_fail(err, TB_EIO, "checkpoint %s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    (void)tb_fsync_parent(path); /* best effort: some file systems refuse fsync on directories */
    quiet_end(&q);
    return TB_OK;
fail:
    unlink(tmp);
    quiet_end(&q);
    return st;
}

static tb_status load_file(const char *path, tb_net *net, tb_optimizer *opt, const char *keep_prefixes,
                           tb_checkpoint_load_report *rep, tb_err *err)
{
    if (!path || !*path) return tb_fail(err, TB_EINVAL, "checkpoint: no file name given");
    struct stat sb;
    if (stat(path, &sb) != 0) return tb_fail(err, TB_EIO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return tb_fail(err, TB_EIO, "checkpoint %s: not a regular file", path);

    quiet_h5 q;
    quiet_begin(&q);
    tb_err inner = {{0}};
    tb_status st;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        st = tb_fail(err, TB_EFORMAT, "checkpoint %s: not an HDF5 file%s", path, is < 0 ? " (cannot be read)" : "");
        quiet_end(&q);
        return st;
    }
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid < 0) {
        st = tb_fail(err, TB_EIO,
                     "checkpoint %s: HDF5 cannot open it (damaged, or still open for writing by another process)",
                     path);
        quiet_end(&q);
        return st;
    }
    /* a run file (runfile.h) holds its final weights in the group /checkpoint */
    hid_t group = fid;
    if (H5Lexists(fid, "params", H5P_DEFAULT) <= 0 && H5Lexists(fid, "checkpoint", H5P_DEFAULT) > 0)
        group = H5Gopen2(fid, "checkpoint", H5P_DEFAULT);
    if (group < 0) st = tb_fail(&inner, TB_EFORMAT, "cannot open its checkpoint group");
    else st = read_group_impl(group, net, opt, keep_prefixes, rep, &inner);
    if (group >= 0 && group != fid) H5Gclose(group);
    if (st != TB_OK) st = with_path(err, st, path, &inner);
    H5Fclose(fid);
    quiet_end(&q);
    return st;
}

tb_status tb_checkpoint_load(const char *path, tb_net *net, tb_optimizer *opt, tb_err *err)
{
    return load_file(path, net, opt, NULL, NULL, err);
}

tb_status tb_checkpoint_load_init(const char *path, tb_net *net, const char *head_prefixes,
                                  tb_checkpoint_load_report *rep, tb_err *err)
{
    memset(rep, 0, sizeof *rep);
    return load_file(path, net, NULL, head_prefixes ? head_prefixes : "", rep, err);
}

tb_status tb_checkpoint_load_transfer(const char *path, tb_net *net, const char *head_prefixes, char *kept,
                                      size_t kept_len, tb_err *err)
{
    if (kept && kept_len) kept[0] = '\0';
    tb_checkpoint_load_report rep;
    tb_status st = tb_checkpoint_load_init(path, net, head_prefixes, &rep, err);
    if (st == TB_OK && kept && kept_len) snprintf(kept, kept_len, "%s", rep.reinitialised);
    return st;
}
