/* test_checkpoint.c: HDF5 checkpoints round-trip bit for bit (parameters,
 * buffers, optimizer slots and scalars), keep PyTorch's layout for h5py, and
 * fail with messages naming the file, key and shapes.
 *
 * With TB_CHECKPOINT_SAMPLE=<path> set, test_sample_for_docs also leaves a
 * checkpoint at <path> with /sample/x (an input batch) and /sample/logits (the
 * network's eval-mode output), /sample/y (labels) and /sample/next (a
 * checkpoint group after one more Adam step on x, y), which docs/checkpoints.md's
 * h5py snippets are checked against. */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/backend.h"
#include "store/checkpoint.h"
#include "engine/net.h"
#include "tb_test.h"
#include "engine/train.h"

#define IN_C 1
#define IN_H 8
#define IN_W 8
#define CLASSES 3
#define BATCH 4

/* ---- fixtures --------------------------------------------------------------------- */

static char tmpdir[512];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int k = snprintf(tmpdir, sizeof tmpdir, "%s/tb_test_checkpoint_XXXXXX", base);
    ck_assert(k > 0 && (size_t)k < sizeof tmpdir);
    ck_assert_msg(mkdtemp(tmpdir) != NULL, "cannot create a temporary directory under %s", base);
}

static const char *tmp_file(const char *name)
{
    /* a ring of buffers: a test keeps up to 32 names alive at once */
    static char path[32][1024];
    static int which;
    which = (which + 1) % 32;
    int k = snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
    ck_assert(k > 0 && (size_t)k < sizeof path[which]);
    return path[which];
}

static int count_dir_entries(void)
{
    char cmd[1200];
    int k = snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", tmpdir);
    ck_assert(k > 0 && (size_t)k < sizeof cmd);
    FILE *p = popen(cmd, "r");
    ck_assert(p);
    int n = -1;
    ck_assert(fscanf(p, "%d", &n) == 1);
    pclose(p);
    return n;
}

static void remove_tmpdir(void)
{
    char cmd[1200];
    int k = snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert(k > 0 && (size_t)k < sizeof cmd);
    ck_assert(system(cmd) == 0);
}

/* conv2d + batchnorm + relu + maxpool + flatten + linear, torch keys:
 * features.0.{weight,bias} features.1.{weight,bias,running_mean,running_var,
 * num_batches_tracked} classifier.{weight,bias} */
static tb_net *make_net(tb_backend *be, int conv_out, uint64_t seed)
{
    tb_net *net = tb_net_new(IN_C, IN_H, IN_W);
    ck_assert(net);
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", conv_out, 3, 1, 1, 1, 1, tb_init_torch_default());
    x = tb_net_batchnorm(net, x, "features.1", 1e-5f, 0.1f);
    x = tb_net_relu(net, x);
    x = tb_net_maxpool(net, x, 2, 2, 0, 0);
    x = tb_net_flatten(net, x);
    x = tb_net_linear(net, x, "classifier", CLASSES, 1, tb_init_torch_default());
    tb_err err = {{0}};
    tb_status st = tb_net_build(net, be, BATCH, &err);
    ck_assert_msg(st == TB_OK, "build: %s", err.msg);
    tb_net_init_params(net, seed);
    return net;
}

static void make_opt(tb_optimizer *opt, tb_net *net, tb_optim_kind kind)
{
    tb_optim_config cfg;
    tb_optim_defaults(&cfg, kind);
    if (kind == TB_OPT_SGD) cfg.momentum = 0.9;
    if (kind == TB_OPT_ADAM) cfg.weight_decay = 1e-4;
    tb_err err = {{0}};
    tb_status st = tb_optimizer_create(opt, net, &cfg, &err);
    ck_assert_msg(st == TB_OK, "optimizer: %s", err.msg);
}

static void sample_batch(float *x, int32_t *y)
{
    for (int i = 0; i < BATCH * IN_C * IN_H * IN_W; i++) x[i] = (float)sin(0.37 * i) + 0.25f * (float)(i % 5);
    for (int i = 0; i < BATCH; i++) y[i] = (i * 2 + 1) % CLASSES;
}

/* steps optimizer steps on the fixed batch: forward (train), loss, backward, step. */
static void train_steps(tb_net *net, tb_optimizer *opt, int steps)
{
    tb_backend *be = tb_net_backend(net);
    float x[BATCH * IN_C * IN_H * IN_W];
    int32_t y[BATCH];
    sample_batch(x, y);
    float *xd = be->ops->alloc(be, sizeof x);
    ck_assert(xd);
    be->ops->to_device(be, xd, x, sizeof x);
    for (int s = 0; s < steps; s++) {
        tb_net_forward(net, xd, BATCH, 1, (uint64_t)opt->scalars.step);
        float *dlogits = tb_net_output_grad_buffer(net);
        float loss = be->ops->loss(be, dlogits, tb_net_output(net), y, BATCH, CLASSES, TB_LOSS_CROSS_ENTROPY);
        ck_assert(isfinite(loss));
        tb_net_zero_grads(net);
        tb_net_backward(net, dlogits, BATCH);
        tb_optimizer_step(opt, net);
    }
    be->ops->free(be, xd);
}

/* Eval-mode logits of the fixed batch, on the host. */
static void eval_logits(tb_net *net, float *logits)
{
    tb_backend *be = tb_net_backend(net);
    float x[BATCH * IN_C * IN_H * IN_W];
    int32_t y[BATCH];
    sample_batch(x, y);
    float *xd = be->ops->alloc(be, sizeof x);
    ck_assert(xd);
    be->ops->to_device(be, xd, x, sizeof x);
    tb_net_forward(net, xd, BATCH, 0, 0);
    be->ops->to_host(be, logits, tb_net_output(net), sizeof(float) * BATCH * CLASSES);
    be->ops->free(be, xd);
}

/* Every state_dict tensor, concatenated, as floats. */
static float *net_state(const tb_net *net, size_t *total)
{
    size_t t = 0;
    for (int i = 0; i < tb_net_param_count(net); i++) t += tb_net_param(net, i)->count;
    float *s = malloc(t * sizeof *s);
    ck_assert(s);
    size_t off = 0;
    for (int i = 0; i < tb_net_param_count(net); i++) {
        tb_net_param_get(net, i, s + off);
        off += tb_net_param(net, i)->count;
    }
    *total = t;
    return s;
}

static float *opt_state(const tb_optimizer *opt, size_t *floats)
{
    *floats = (size_t)tb_optim_slots(&opt->cfg) * opt->n;
    float *s = malloc((*floats ? *floats : 1) * sizeof *s);
    ck_assert(s);
    if (*floats) opt->be->ops->to_host(opt->be, s, opt->state, *floats * sizeof *s);
    return s;
}

static void assert_nets_equal(const tb_net *a, const tb_net *b)
{
    ck_assert_int_eq(tb_net_param_count(a), tb_net_param_count(b));
    for (int i = 0; i < tb_net_param_count(a); i++) {
        const tb_param *p = tb_net_param(a, i);
        float *va = malloc(p->count * sizeof *va), *vb = malloc(p->count * sizeof *vb);
        ck_assert(va && vb);
        tb_net_param_get(a, i, va);
        tb_net_param_get(b, i, vb);
        ck_assert_msg(memcmp(va, vb, p->count * sizeof *va) == 0, "%s differs after the round trip", p->name);
        free(va);
        free(vb);
    }
}

static void assert_opts_equal(const tb_optimizer *a, const tb_optimizer *b)
{
    size_t na, nb;
    float *sa = opt_state(a, &na), *sb = opt_state(b, &nb);
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++)
        ck_assert_msg(memcmp(&sa[i], &sb[i], sizeof *sa) == 0, "optimizer state element %zu: %.9g vs %.9g", i,
                      (double)sa[i], (double)sb[i]);
    ck_assert_int_eq(a->scalars.step, b->scalars.step);
    ck_assert_msg(memcmp(&a->scalars.eta, &b->scalars.eta, sizeof(double)) == 0, "eta %.17g vs %.17g",
                  a->scalars.eta, b->scalars.eta);
    ck_assert_msg(memcmp(&a->scalars.mu, &b->scalars.mu, sizeof(double)) == 0, "mu %.17g vs %.17g", a->scalars.mu,
                  b->scalars.mu);
    free(sa);
    free(sb);
}

#define ASSERT_MSG_HAS(err, needle)                                                                              \
    ck_assert_msg(strstr((err).msg, (needle)) != NULL, "error message \"%s\" does not mention \"%s\"", (err).msg, \
                  (needle))

/* stderr redirected to a file while HDF5 is probed: nothing may appear there. */
static int saved_stderr = -1;
static char stderr_file[1100];

static void capture_stderr(void)
{
    int k = snprintf(stderr_file, sizeof stderr_file, "%s/stderr.txt", tmpdir);
    ck_assert(k > 0 && (size_t)k < sizeof stderr_file);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(stderr_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(saved_stderr >= 0 && fd >= 0);
    ck_assert(dup2(fd, 2) == 2);
    close(fd);
}

static void assert_stderr_empty(void)
{
    fflush(stderr);
    ck_assert(dup2(saved_stderr, 2) == 2);
    close(saved_stderr);
    struct stat sb;
    ck_assert(stat(stderr_file, &sb) == 0);
    ck_assert_msg(sb.st_size == 0, "HDF5 printed %lld bytes to stderr (see %s)", (long long)sb.st_size, stderr_file);
    unlink(stderr_file);
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_roundtrip_adam)
{
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *a = make_net(be, 4, 1);
    tb_optimizer oa;
    make_opt(&oa, a, TB_OPT_ADAM);
    train_steps(a, &oa, 2);
    ck_assert_int_eq(oa.scalars.step, 2);
    size_t nf;
    float *st_a = opt_state(&oa, &nf);
    int nonzero = 0;
    for (size_t i = 0; i < nf; i++) nonzero += st_a[i] != 0.0f;
    ck_assert_msg(nonzero > (int)(nf / 2), "adam state is mostly zero (%d of %zu)", nonzero, nf);
    free(st_a);

    const char *path = tmp_file("ckpt.h5");
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_save(path, a, &oa, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(count_dir_entries(), 1); /* no temporary file left behind */

    tb_net *b = make_net(be, 4, 99); /* different initial weights */
    tb_optimizer ob;
    make_opt(&ob, b, TB_OPT_ADAM);
    ck_assert_msg(tb_checkpoint_load(path, b, &ob, &err) == TB_OK, "%s", err.msg);
    assert_nets_equal(a, b);
    assert_opts_equal(&oa, &ob);
    int nbt = tb_net_find_param(b, "features.1.num_batches_tracked");
    ck_assert_int_ge(nbt, 0);
    float v;
    tb_net_param_get(b, nbt, &v);
    ck_assert(v == 2.0f);

    /* the same network computes the same outputs, and one more step agrees bit for bit */
    float la[BATCH * CLASSES], lb[BATCH * CLASSES];
    eval_logits(a, la);
    eval_logits(b, lb);
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    train_steps(a, &oa, 1);
    train_steps(b, &ob, 1);
    assert_nets_equal(a, b);
    assert_opts_equal(&oa, &ob);

    /* saving again over the file replaces it */
    ck_assert_msg(tb_checkpoint_save(path, a, &oa, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(count_dir_entries(), 1);
    tb_net *c = make_net(be, 4, 7);
    ck_assert_msg(tb_checkpoint_load(path, c, NULL, &err) == TB_OK, "%s", err.msg); /* weights only */
    assert_nets_equal(a, c);

    tb_optimizer_destroy(&oa);
    tb_optimizer_destroy(&ob);
    tb_net_free(a);
    tb_net_free(b);
    tb_net_free(c);
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

START_TEST(test_roundtrip_other_optimizers)
{
    const tb_optim_kind kinds[] = {TB_OPT_SGD, TB_OPT_ADAGRAD, TB_OPT_ADADELTA, TB_OPT_RMSPROP, TB_OPT_ASGD};
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    for (size_t k = 0; k < TB_ARRAY_LEN(kinds); k++) {
        tb_net *a = make_net(be, 4, 3);
        tb_optimizer oa;
        make_opt(&oa, a, kinds[k]);
        train_steps(a, &oa, 2);
        const char *path = tmp_file("opt.h5");
        tb_err err = {{0}};
        ck_assert_msg(tb_checkpoint_save(path, a, &oa, &err) == TB_OK, "%s: %s", tb_optim_name(kinds[k]), err.msg);
        tb_net *b = make_net(be, 4, 5);
        tb_optimizer ob;
        make_opt(&ob, b, kinds[k]);
        ck_assert_msg(tb_checkpoint_load(path, b, &ob, &err) == TB_OK, "%s: %s", tb_optim_name(kinds[k]), err.msg);
        assert_nets_equal(a, b);
        assert_opts_equal(&oa, &ob);
        tb_optimizer_destroy(&oa);
        tb_optimizer_destroy(&ob);
        tb_net_free(a);
        tb_net_free(b);
    }
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

/* ---- the layout, read with the HDF5 C API as h5py would ---------------------------- */

static void assert_dataset(hid_t f, const char *path, H5T_class_t cls, size_t size, int rank, const hsize_t *dims)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "no dataset %s", path);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    ck_assert_msg(H5Tget_class(t) == cls && H5Tget_size(t) == size, "%s: type class %d size %zu", path,
                  (int)H5Tget_class(t), H5Tget_size(t));
    ck_assert_msg(H5Tget_order(t) == H5T_ORDER_LE, "%s is not little-endian", path);
    if (rank == 0) {
        ck_assert_msg(H5Sget_simple_extent_type(s) == H5S_SCALAR, "%s is not a scalar dataspace", path);
    } else {
        hsize_t got[8];
        ck_assert_int_eq(H5Sget_simple_extent_ndims(s), rank);
        H5Sget_simple_extent_dims(s, got, NULL);
        for (int i = 0; i < rank; i++)
            ck_assert_msg(got[i] == dims[i], "%s dim %d is %llu, expected %llu", path, i, (unsigned long long)got[i],
                          (unsigned long long)dims[i]);
    }
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
}

static void assert_attr_str(hid_t obj, const char *name, const char *want)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    hid_t t = H5Aget_type(a);
    ck_assert(H5Tget_class(t) == H5T_STRING);
    ck_assert_msg(H5Tis_variable_str(t) > 0, "attribute %s is not a variable-length string", name);
    ck_assert(H5Tget_cset(t) == H5T_CSET_UTF8);
    char *s = NULL;
    ck_assert(H5Aread(a, t, &s) >= 0);
    if (want) ck_assert_str_eq(s, want);
    else ck_assert(s && *s);
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
}

static double attr_f64(hid_t obj, const char *name)
{
    double v = NAN;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    ck_assert(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

START_TEST(test_layout)
{
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = make_net(be, 4, 1);
    tb_optimizer opt;
    make_opt(&opt, net, TB_OPT_ADAM);
    train_steps(net, &opt, 3);
    const char *path = tmp_file("layout.h5");
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_save(path, net, &opt, &err) == TB_OK, "%s", err.msg);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    const hsize_t w0[4] = {4, 1, 3, 3}, b4[1] = {4}, wc[2] = {CLASSES, 4 * 4 * 4}, bc[1] = {CLASSES};
    assert_dataset(f, "/params/features.0.weight", H5T_FLOAT, 4, 4, w0);
    assert_dataset(f, "/params/features.0.bias", H5T_FLOAT, 4, 1, b4);
    assert_dataset(f, "/params/features.1.weight", H5T_FLOAT, 4, 1, b4);
    assert_dataset(f, "/params/features.1.bias", H5T_FLOAT, 4, 1, b4);
    assert_dataset(f, "/params/features.1.running_mean", H5T_FLOAT, 4, 1, b4);
    assert_dataset(f, "/params/features.1.running_var", H5T_FLOAT, 4, 1, b4);
    assert_dataset(f, "/params/features.1.num_batches_tracked", H5T_INTEGER, 8, 0, NULL);
    assert_dataset(f, "/params/classifier.weight", H5T_FLOAT, 4, 2, wc);
    assert_dataset(f, "/params/classifier.bias", H5T_FLOAT, 4, 1, bc);

    /* num_batches_tracked: a signed int64 scalar holding the number of training forwards */
    hid_t d = H5Dopen2(f, "/params/features.1.num_batches_tracked", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    ck_assert(H5Tget_sign(t) == H5T_SGN_2);
    int64_t nbt = -1;
    ck_assert(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &nbt) >= 0);
    ck_assert_int_eq(nbt, 3);
    H5Tclose(t);
    H5Dclose(d);

    /* the values are the network's */
    float w[36];
    d = H5Dopen2(f, "/params/features.0.weight", H5P_DEFAULT);
    ck_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(d);
    float wn[36];
    tb_net_param_get(net, tb_net_find_param(net, "features.0.weight"), wn);
    ck_assert(memcmp(w, wn, sizeof w) == 0);

    /* exactly the state_dict's keys */
    hid_t pg = H5Gopen2(f, "/params", H5P_DEFAULT);
    H5G_info_t info;
    ck_assert(H5Gget_info(pg, &info) >= 0);
    ck_assert_int_eq((int)info.nlinks, tb_net_param_count(net));
    H5Gclose(pg);

    /* root attributes */
    assert_attr_str(f, "format", TB_CHECKPOINT_FORMAT);
    assert_attr_str(f, "tunebench_version", TB_VERSION);
    assert_attr_str(f, "git_commit", NULL);
    ck_assert(attr_f64(f, "format_version") == TB_CHECKPOINT_VERSION);

    /* optimizer: attributes by torch name, slots for trainable tensors only */
    hid_t og = H5Gopen2(f, "/optimizer", H5P_DEFAULT);
    ck_assert(og >= 0);
    assert_attr_str(og, "kind", "adam");
    ck_assert(attr_f64(og, "step") == 3);
    ck_assert(attr_f64(og, "lr") == 1e-3);
    ck_assert(attr_f64(og, "beta1") == 0.9);
    ck_assert(attr_f64(og, "beta2") == 0.999);
    ck_assert(attr_f64(og, "eps") == 1e-8);
    ck_assert(attr_f64(og, "weight_decay") == 1e-4);
    ck_assert(attr_f64(og, "amsgrad") == 0);
    static const char *const more[] = {"momentum", "dampening", "nesterov", "lr_decay", "initial_accumulator_value",
                                       "rho", "alpha", "centered", "lambd", "t0", "eta", "mu"};
    for (size_t i = 0; i < TB_ARRAY_LEN(more); i++) ck_assert_msg(H5Aexists(og, more[i]) > 0, "no attribute %s", more[i]);
    H5Gclose(og);
    assert_dataset(f, "/optimizer/exp_avg/features.0.weight", H5T_FLOAT, 4, 4, w0);
    assert_dataset(f, "/optimizer/exp_avg_sq/classifier.weight", H5T_FLOAT, 4, 2, wc);
    assert_dataset(f, "/optimizer/exp_avg_sq/features.1.bias", H5T_FLOAT, 4, 1, b4);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ck_assert(H5Lexists(f, "/optimizer/exp_avg/features.1.running_mean", H5P_DEFAULT) == 0);
    ck_assert(H5Lexists(f, "/optimizer/max_exp_avg_sq", H5P_DEFAULT) == 0);

    /* slot values are the optimizer's */
    size_t nf;
    float *state = opt_state(&opt, &nf);
    const tb_param *p = tb_net_param(net, tb_net_find_param(net, "classifier.weight"));
    float *sq = malloc(p->count * sizeof *sq);
    ck_assert(sq);
    d = H5Dopen2(f, "/optimizer/exp_avg_sq/classifier.weight", H5P_DEFAULT);
    ck_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, sq) >= 0);
    H5Dclose(d);
    ck_assert(memcmp(sq, state + opt.n + p->offset, p->count * sizeof *sq) == 0);
    free(sq);
    free(state);
    H5Fclose(f);

    tb_optimizer_destroy(&opt);
    tb_net_free(net);
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

/* ---- embedding in a run file ----------------------------------------------------------- */

START_TEST(test_group_api)
{
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *a = make_net(be, 4, 1);
    tb_optimizer oa;
    make_opt(&oa, a, TB_OPT_SGD);
    train_steps(a, &oa, 1);
    const char *path = tmp_file("run.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gcreate2(f, "checkpoint", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(g >= 0);
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_write_group(g, a, &oa, &err) == TB_OK, "%s", err.msg);
    train_steps(a, &oa, 1);
    /* writing the same group again replaces its contents */
    ck_assert_msg(tb_checkpoint_write_group(g, a, &oa, &err) == TB_OK, "%s", err.msg);
    H5Gclose(g);
    H5Fclose(f);

    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    g = H5Gopen2(f, "checkpoint", H5P_DEFAULT);
    tb_net *b = make_net(be, 4, 2);
    tb_optimizer ob;
    make_opt(&ob, b, TB_OPT_SGD);
    ck_assert_msg(tb_checkpoint_read_group(g, b, &ob, &err) == TB_OK, "%s", err.msg);
    assert_nets_equal(a, b);
    assert_opts_equal(&oa, &ob);
    ck_assert_int_eq(ob.scalars.step, 2);
    H5Gclose(g);
    H5Fclose(f);

    tb_optimizer_destroy(&oa);
    tb_optimizer_destroy(&ob);
    tb_net_free(a);
    tb_net_free(b);
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

/* Reopens path read-write and applies one damage. */
static void damage(const char *path, int what)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    if (what == 0) {
        ck_assert(H5Ldelete(f, "/params/features.0.bias", H5P_DEFAULT) >= 0);
    } else if (what == 1 || what == 2) {
        ck_assert(H5Adelete(f, what == 1 ? "format" : "format_version") >= 0);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a;
        if (what == 1) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
            const char *v = "some-other-format";
            ck_assert(H5Awrite(a, t, &v) >= 0);
            H5Tclose(t);
        } else {
            a = H5Acreate2(f, "format_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
            int64_t v = 2;
            ck_assert(H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
        }
        H5Aclose(a);
        H5Sclose(sp);
    } else if (what == 3) {
        ck_assert(H5Ldelete(f, "/optimizer/exp_avg/classifier.weight", H5P_DEFAULT) >= 0);
    }
    H5Fclose(f);
}

START_TEST(test_errors)
{
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *a = make_net(be, 4, 1);
    tb_optimizer oa;
    make_opt(&oa, a, TB_OPT_ADAM);
    train_steps(a, &oa, 1);
    const char *good = tmp_file("good.h5");
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_save(good, a, &oa, &err) == TB_OK, "%s", err.msg);

    tb_net *b = make_net(be, 4, 42);
    size_t nb;
    float *before = net_state(b, &nb);
    capture_stderr();

    /* nonexistent file */
    const char *missing = tmp_file("nope.h5");
    ck_assert_int_eq(tb_checkpoint_load(missing, b, NULL, &err), TB_EIO);
    ASSERT_MSG_HAS(err, missing);
    ASSERT_MSG_HAS(err, "No such file");

    /* not HDF5 */
    const char *text = tmp_file("text.h5");
    FILE *tf = fopen(text, "w");
    ck_assert(tf);
    fputs("not a checkpoint\n", tf);
    fclose(tf);
    ck_assert_int_eq(tb_checkpoint_load(text, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, text);
    ASSERT_MSG_HAS(err, "not an HDF5 file");

    /* an HDF5 file that is not a checkpoint */
    const char *other = tmp_file("other.h5");
    hid_t f = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    H5Fclose(f);
    ck_assert_int_eq(tb_checkpoint_load(other, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, other);
    ASSERT_MSG_HAS(err, "not a tunebench checkpoint");

    /* missing tensor */
    const char *p0 = tmp_file("missing_tensor.h5");
    ck_assert(tb_checkpoint_save(p0, a, &oa, &err) == TB_OK);
    damage(p0, 0);
    ck_assert_int_eq(tb_checkpoint_load(p0, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, p0);
    ASSERT_MSG_HAS(err, "params/features.0.bias is missing");

    /* wrong format, newer version */
    const char *p1 = tmp_file("wrong_format.h5");
    ck_assert(tb_checkpoint_save(p1, a, &oa, &err) == TB_OK);
    damage(p1, 1);
    ck_assert_int_eq(tb_checkpoint_load(p1, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, p1);
    ASSERT_MSG_HAS(err, "'some-other-format'");
    ASSERT_MSG_HAS(err, "'" TB_CHECKPOINT_FORMAT "'");
    const char *p2 = tmp_file("newer.h5");
    ck_assert(tb_checkpoint_save(p2, a, &oa, &err) == TB_OK);
    damage(p2, 2);
    ck_assert_int_eq(tb_checkpoint_load(p2, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "format_version 2 found");
    ASSERT_MSG_HAS(err, "supports version 1");

    /* shape mismatch: 6 conv channels in the file, the network has 4 */
    tb_net *wide = make_net(be, 6, 1);
    const char *p3 = tmp_file("wide.h5");
    ck_assert(tb_checkpoint_save(p3, wide, NULL, &err) == TB_OK);
    ck_assert_int_eq(tb_checkpoint_load(p3, b, NULL, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, p3);
    ASSERT_MSG_HAS(err, "params/features.0.weight");
    ASSERT_MSG_HAS(err, "[6, 1, 3, 3] in the file");
    ASSERT_MSG_HAS(err, "expects [4, 1, 3, 3]");

    /* optimizer: none saved, a different kind, a missing slot tensor */
    tb_optimizer sgd;
    make_opt(&sgd, b, TB_OPT_SGD);
    tb_optimizer adam;
    make_opt(&adam, b, TB_OPT_ADAM);
    const char *p4 = tmp_file("no_opt.h5");
    ck_assert(tb_checkpoint_save(p4, a, NULL, &err) == TB_OK);
    ck_assert_int_eq(tb_checkpoint_load(p4, b, &adam, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "no optimizer state");
    ck_assert_int_eq(tb_checkpoint_load(good, b, &sgd, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, good);
    ASSERT_MSG_HAS(err, "'adam'");
    ASSERT_MSG_HAS(err, "'sgd'");
    const char *p5 = tmp_file("no_slot.h5");
    ck_assert(tb_checkpoint_save(p5, a, &oa, &err) == TB_OK);
    damage(p5, 3);
    ck_assert_int_eq(tb_checkpoint_load(p5, b, &adam, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "optimizer/exp_avg/classifier.weight is missing");

    /* saving into a directory that does not exist */
    const char *nodir = tmp_file("no/such/dir/x.h5");
    ck_assert_int_eq(tb_checkpoint_save(nodir, a, NULL, &err), TB_EIO);
    ASSERT_MSG_HAS(err, nodir);

    assert_stderr_empty();

    /* every failed load left the network and optimizers untouched */
    size_t na;
    float *after = net_state(b, &na);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(before, after, nb * sizeof *before) == 0);
    ck_assert_int_eq(adam.scalars.step, 0);
    size_t nf;
    float *s = opt_state(&adam, &nf);
    for (size_t i = 0; i < nf; i++) ck_assert(s[i] == 0.0f);
    free(s);
    free(before);
    free(after);

    tb_optimizer_destroy(&sgd);
    tb_optimizer_destroy(&adam);
    tb_optimizer_destroy(&oa);
    tb_net_free(a);
    tb_net_free(b);
    tb_net_free(wide);
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

/* ---- a sample for docs/checkpoints.md ------------------------------------------------- */

START_TEST(test_sample_for_docs)
{
    const char *out = getenv("TB_CHECKPOINT_SAMPLE");
    if (!out || !*out) return;
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = make_net(be, 4, 1);
    tb_optimizer opt;
    make_opt(&opt, net, TB_OPT_ADAM);
    train_steps(net, &opt, 3);
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_save(out, net, &opt, &err) == TB_OK, "%s", err.msg);
    float x[BATCH * IN_C * IN_H * IN_W], logits[BATCH * CLASSES];
    int32_t y[BATCH];
    sample_batch(x, y);
    eval_logits(net, logits);
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gcreate2(f, "sample", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t xd[4] = {BATCH, IN_C, IN_H, IN_W}, ld[2] = {BATCH, CLASSES};
    hid_t s1 = H5Screate_simple(4, xd, NULL), s2 = H5Screate_simple(2, ld, NULL);
    hid_t d1 = H5Dcreate2(g, "x", H5T_IEEE_F32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t d2 = H5Dcreate2(g, "logits", H5T_IEEE_F32LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(d1, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    ck_assert(H5Dwrite(d2, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, logits) >= 0);
    H5Dclose(d1);
    H5Dclose(d2);
    H5Sclose(s1);
    H5Sclose(s2);
    const hsize_t yd[1] = {BATCH};
    hid_t s3 = H5Screate_simple(1, yd, NULL);
    hid_t d3 = H5Dcreate2(g, "y", H5T_STD_I64LE, s3, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int64_t y64[BATCH];
    for (int i = 0; i < BATCH; i++) y64[i] = y[i];
    ck_assert(H5Dwrite(d3, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y64) >= 0);
    H5Dclose(d3);
    H5Sclose(s3);
    /* /sample/next: the state_dict after one more training step on (x, y) */
    train_steps(net, &opt, 1);
    hid_t ng = H5Gcreate2(g, "next", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(ng >= 0);
    ck_assert_msg(tb_checkpoint_write_group(ng, net, NULL, &err) == TB_OK, "%s", err.msg);
    H5Gclose(ng);
    H5Gclose(g);
    H5Fclose(f);
    printf("test_checkpoint: wrote sample checkpoint %s\n", out);
    tb_optimizer_destroy(&opt);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* ---- model.init_from (issue 11) --------------------------------------------------------- */

/* features.0 conv, features.1 batchnorm, classifier.0 hidden linear, classifier.2 the final layer */
static tb_net *make_head_net(tb_backend *be, int hidden, int classes, uint64_t seed)
{
    tb_net *net = tb_net_new(IN_C, IN_H, IN_W);
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 4, 3, 1, 1, 1, 1, tb_init_torch_default());
    x = tb_net_batchnorm(net, x, "features.1", 1e-5f, 0.1f);
    x = tb_net_relu(net, x);
    x = tb_net_flatten(net, x);
    x = tb_net_linear(net, x, "classifier.0", hidden, 1, tb_init_torch_default());
    x = tb_net_relu(net, x);
    x = tb_net_linear(net, x, "classifier.2", classes, 1, tb_init_torch_default());
    tb_err err = {{0}};
    ck_assert_msg(tb_net_build(net, be, BATCH, &err) == TB_OK, "build: %s", err.msg);
    tb_net_init_params(net, seed);
    return net;
}

/* A copy of src at dst with one change to params/key: 0 delete, 1 a NaN at [3],
 * 2 +Inf at [0], 3 stored as float64 (same values). */
static void edit_checkpoint(const char *src, const char *dst, const char *key, int what)
{
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    ck_assert(system(cmd) == 0);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
    ck_assert(g >= 0);
    if (what == 0) {
        ck_assert(H5Ldelete(g, key, H5P_DEFAULT) >= 0);
    } else {
        hid_t d = H5Dopen2(g, key, H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        double *v = malloc(sizeof *v * (size_t)n);
        ck_assert(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        if (what == 1) v[3] = NAN;
        if (what == 2) v[0] = INFINITY;
        if (what == 3) {
            H5Dclose(d);
            ck_assert(H5Ldelete(g, key, H5P_DEFAULT) >= 0);
            d = H5Dcreate2(g, key, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            ck_assert(d >= 0);
        }
        ck_assert(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        free(v);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Gclose(g);
    H5Fclose(f);
}

static float *param_values(const tb_net *net, const char *name, size_t *n)
{
    int i = tb_net_find_param(net, name);
    ck_assert_msg(i >= 0, "%s", name);
    *n = tb_net_param(net, i)->count;
    float *v = malloc(sizeof *v * *n);
    tb_net_param_get(net, i, v);
    return v;
}

START_TEST(test_init_from_head_rules)
{
    make_tmpdir();
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *src = make_head_net(be, 8, CLASSES, 1);
    const char *good = tmp_file("src.h5"), *bad = tmp_file("edited.h5");
    tb_err err = {{0}};
    ck_assert_msg(tb_checkpoint_save(good, src, NULL, &err) == TB_OK, "%s", err.msg);
    char kept[256];

    /* another class count: only the final layer is re-initialised, by name */
    tb_net *dst = make_head_net(be, 8, CLASSES + 2, 2);
    ck_assert_msg(tb_checkpoint_load_transfer(good, dst, "classifier.", kept, sizeof kept, &err) == TB_OK, "%s",
                  err.msg);
    ck_assert_str_eq(kept, "classifier.2.weight, classifier.2.bias");
    size_t na, nb;
    float *a = param_values(src, "classifier.0.bias", &na), *b = param_values(dst, "classifier.0.bias", &nb);
    ck_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(a), free(b);
    tb_net_free(dst);

    /* the hidden layer under the head prefix, misshapen: an error naming the key, not a re-initialisation */
    dst = make_head_net(be, 6, CLASSES + 2, 2);
    ck_assert_int_eq(tb_checkpoint_load_transfer(good, dst, "classifier.", kept, sizeof kept, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "params/classifier.0.weight has shape [8, ");
    ASSERT_MSG_HAS(err, "only the final layer's tensors, classifier.2.*");
    tb_net_free(dst);

    /* a missing bias of the hidden layer, and of the final layer with the same class count: errors */
    dst = make_head_net(be, 8, CLASSES, 2);
    edit_checkpoint(good, bad, "classifier.0.bias", 0);
    ck_assert_int_eq(tb_checkpoint_load_transfer(bad, dst, "classifier.", kept, sizeof kept, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "params/classifier.0.bias is missing");
    edit_checkpoint(good, bad, "classifier.2.bias", 0);
    ck_assert_int_eq(tb_checkpoint_load_transfer(bad, dst, "classifier.", kept, sizeof kept, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "params/classifier.2.bias is missing");

    /* non-finite weights: refused naming the tensor */
    edit_checkpoint(good, bad, "features.0.weight", 1);
    ck_assert_int_eq(tb_checkpoint_load_transfer(bad, dst, "classifier.", kept, sizeof kept, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "params/features.0.weight holds a non-finite value (nan at index 3)");
    edit_checkpoint(good, bad, "classifier.2.weight", 2);
    ck_assert_int_eq(tb_checkpoint_load_transfer(bad, dst, "classifier.", kept, sizeof kept, &err), TB_EFORMAT);
    ASSERT_MSG_HAS(err, "params/classifier.2.weight holds a non-finite value (inf at index 0)");

    /* a torchvision-converted state_dict without num_batches_tracked: 0, with a note */
    edit_checkpoint(good, bad, "features.1.num_batches_tracked", 0);
    tb_checkpoint_load_report rep;
    ck_assert_msg(tb_checkpoint_load_init(bad, dst, "classifier.", &rep, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rep.n_defaulted, 1);
    ck_assert_str_eq(rep.defaulted, "features.1.num_batches_tracked");
    float nbt;
    tb_net_param_get(dst, tb_net_find_param(dst, "features.1.num_batches_tracked"), &nbt);
    ck_assert_float_eq(nbt, 0.0f);
    ck_assert_int_eq(rep.n_converted, 0);
    ck_assert_str_eq(rep.reinitialised, "");

    /* float64 weights: converted, reported once with the first tensor */
    edit_checkpoint(good, bad, "features.0.weight", 3);
    ck_assert_msg(tb_checkpoint_load_init(bad, dst, "classifier.", &rep, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(rep.n_converted, 1);
    ck_assert_str_eq(rep.converted, "float64 (first: params/features.0.weight)");
    a = param_values(src, "features.0.weight", &na), b = param_values(dst, "features.0.weight", &nb);
    ck_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(a), free(b);

    tb_net_free(dst);
    tb_net_free(src);
    tb_backend_destroy(be);
    remove_tmpdir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_test(tc, test_roundtrip_adam);
    tcase_add_test(tc, test_roundtrip_other_optimizers);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_group_api);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_sample_for_docs);
    tcase_add_test(tc, test_init_from_head_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
