/* test_net.c: the network builder and DAG passes: state_dict names and
 * shapes, builder errors, and finite-difference gradients of a whole network
 * with a fire module (a node read by two consumers, then concatenated), so
 * the assign-then-accumulate rule for shared inputs is exercised end to end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/net.h"
#include "tb_test.h"
#include "engine/zoo.h"

static tb_net *fire_net(int with_bn, int with_dropout)
{
    tb_net *net = tb_net_new(3, 9, 9);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 8, 3, 2, 0, 1, 1, init);
    x = tb_net_relu(net, x);
    if (with_bn) x = tb_net_batchnorm(net, x, "features.2", 1e-5f, 0.1f);
    int sq = tb_net_conv2d(net, x, "features.3.squeeze", 4, 1, 1, 0, 1, 1, init);
    sq = tb_net_relu(net, sq);
    int e1 = tb_net_conv2d(net, sq, "features.3.expand1x1", 6, 1, 1, 0, 1, 1, init);
    e1 = tb_net_relu(net, e1);
    int e3 = tb_net_conv2d(net, sq, "features.3.expand3x3", 6, 3, 1, 1, 1, 1, init);
    e3 = tb_net_relu(net, e3);
    int cat[2] = {e1, e3};
    x = tb_net_concat(net, cat, 2);
    x = tb_net_maxpool(net, x, 3, 2, 0, 1);
    if (with_dropout) x = tb_net_dropout(net, x, 0.5f);
    x = tb_net_conv2d(net, x, "classifier.1", 5, 1, 1, 0, 1, 1, init);
    x = tb_net_adaptive_avgpool(net, x, 1, 1);
    tb_net_flatten(net, x);
    return net;
}

START_TEST(test_state_dict_names_and_shapes)
{
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = fire_net(1, 0);
    tb_err err;
    ck_assert_msg(tb_net_build(net, be, 4, &err) == TB_OK, "%s", err.msg);
    const char *expect[] = {"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
                            "features.2.running_mean", "features.2.running_var", "features.2.num_batches_tracked",
                            "features.3.squeeze.weight", "features.3.squeeze.bias",
                            "features.3.expand1x1.weight", "features.3.expand1x1.bias",
                            "features.3.expand3x3.weight", "features.3.expand3x3.bias", "classifier.1.weight",
                            "classifier.1.bias"};
    ck_assert_int_eq(tb_net_param_count(net), (int)TB_ARRAY_LEN(expect));
    for (int i = 0; i < tb_net_param_count(net); i++) ck_assert_str_eq(tb_net_param(net, i)->name, expect[i]);
    const tb_param *w = tb_net_param(net, tb_net_find_param(net, "features.3.expand3x3.weight"));
    ck_assert_int_eq(w->ndim, 4);
    ck_assert(w->shape[0] == 6 && w->shape[1] == 4 && w->shape[2] == 3 && w->shape[3] == 3);
    const tb_param *nbt = tb_net_param(net, 6);
    ck_assert(nbt->ndim == 0 && nbt->is_buffer && nbt->is_int64);
    ck_assert_int_eq(tb_net_classes(net), 5);
    /* trainable count: every non-buffer tensor */
    size_t expect_trainable = 8 * 3 * 9 + 8 + 8 + 8 + 4 * 8 + 4 + 6 * 4 + 6 + 6 * 4 * 9 + 6 + 5 * 12 + 5;
    ck_assert_uint_eq(tb_net_trainable_count(net), expect_trainable);
    ck_assert_uint_eq(tb_net_params_size(net), expect_trainable);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

START_TEST(test_builder_errors)
{
    tb_backend *be = tb_backend_cpu_create(1);
    tb_err err;
    /* linear on a 4-D input */
    int x;
    tb_net *net = tb_net_new(1, 8, 8);
    ck_assert_int_eq(tb_net_linear(net, TB_NET_INPUT, "fc", 10, 1, tb_init_torch_default()), -1);
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "flatten"), "message should suggest flatten: %s", err.msg);
    tb_net_free(net);
    /* kernel larger than the input */
    net = tb_net_new(1, 4, 4);
    x = tb_net_relu(net, TB_NET_INPUT);
    tb_net_conv2d(net, x, "features.1", 2, 7, 1, 0, 1, 1, tb_init_torch_default());
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    /* named by its state_dict name, not its position */
    ck_assert_str_eq(err.msg, "layer features.1 (conv2d): kernel 7 with padding 0 does not fit the input");
    tb_net_free(net);
    /* a layer without a state_dict name is named by its position and the named layer before it */
    net = tb_net_new(1, 4, 4);
    x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 2, 3, 1, 1, 1, 1, tb_init_torch_default());
    tb_net_maxpool(net, x, 0, 1, 0, 0);
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    TBT_ASSERT_HAS(err.msg, "layer 1 (maxpool after features.0): kernel 0");
    tb_net_free(net);
    /* groups that do not divide the channels */
    net = tb_net_new(3, 8, 8);
    tb_net_conv2d(net, TB_NET_INPUT, "c", 4, 3, 1, 1, 2, 1, tb_init_torch_default());
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "groups"), "%s", err.msg);
    tb_net_free(net);
    /* duplicate names */
    net = tb_net_new(1, 8, 8);
    x = tb_net_conv2d(net, TB_NET_INPUT, "c", 2, 3, 1, 1, 1, 1, tb_init_torch_default());
    tb_net_conv2d(net, x, "c", 2, 3, 1, 1, 1, 1, tb_init_torch_default());
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "already used"), "%s", err.msg);
    tb_net_free(net);
    /* an output that is not [n, classes] */
    net = tb_net_new(1, 8, 8);
    tb_net_conv2d(net, TB_NET_INPUT, "c", 2, 3, 1, 1, 1, 1, tb_init_torch_default());
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "[n, classes]"), "%s", err.msg);
    tb_net_free(net);
    /* concat of mismatched spatial sizes */
    net = tb_net_new(1, 8, 8);
    int a = tb_net_conv2d(net, TB_NET_INPUT, "a", 2, 3, 1, 1, 1, 1, tb_init_torch_default());
    int b = tb_net_conv2d(net, TB_NET_INPUT, "b", 2, 3, 2, 1, 1, 1, tb_init_torch_default());
    int ab[2] = {a, b};
    ck_assert_int_eq(tb_net_concat(net, ab, 2), -1);
    ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
    ck_assert_msg(strstr(err.msg, "concat"), "%s", err.msg);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* The fixture's network: conv-relu-bn, a fire module, ceil-mode maxpool,
 * dropout(0), 1x1 conv, global average pool; torch's state_dict keys. */
static tb_net *fixture_net(void)
{
    tb_net *net = tb_net_new(3, 11, 11);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(net, TB_NET_INPUT, "features.0", 8, 3, 2, 0, 1, 1, init);
    x = tb_net_relu(net, x);
    x = tb_net_batchnorm(net, x, "features.2", 1e-5f, 0.1f);
    int sq = tb_net_relu(net, tb_net_conv2d(net, x, "features.3.squeeze", 4, 1, 1, 0, 1, 1, init));
    int e1 = tb_net_relu(net, tb_net_conv2d(net, sq, "features.3.expand1x1", 6, 1, 1, 0, 1, 1, init));
    int e3 = tb_net_relu(net, tb_net_conv2d(net, sq, "features.3.expand3x3", 6, 3, 1, 1, 1, 1, init));
    int cat[2] = {e1, e3};
    x = tb_net_concat(net, cat, 2);
    x = tb_net_maxpool(net, x, 3, 2, 0, 1);
    x = tb_net_dropout(net, x, 0.0f);
    x = tb_net_conv2d(net, x, "classifier.1", 5, 1, 1, 0, 1, 1, init);
    x = tb_net_adaptive_avgpool(net, x, 1, 1);
    tb_net_flatten(net, x);
    return net;
}

/* Whole-network forward and backward against PyTorch (tests/reference/gen_net.py):
 * logits, loss, every parameter gradient (the squeeze output is read by two
 * convolutions, so its gradient is assigned by one and added by the other),
 * and the BN running statistics after the step. */
START_TEST(test_fire_network_matches_torch)
{
    const char *fx = tbt_fixture("net_fire.h5");
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = fixture_net();
    tb_err err;
    ck_assert_msg(tb_net_build(net, be, 3, &err) == TB_OK, "%s", err.msg);
    char path[256];
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_int64) continue;
        snprintf(path, sizeof path, "params/%s", p->name);
        size_t count;
        float *v = tbt_read_f32(fx, path, &count, NULL, NULL);
        ck_assert_uint_eq(count, p->count);
        tb_net_param_set(net, i, v);
        free(v);
    }
    size_t nx;
    float *x = tbt_read_f32(fx, "x", &nx, NULL, NULL);
    int32_t *y = tbt_read_i32(fx, "y", NULL);
    tb_net_forward(net, x, 3, 1, 0);
    float *logits = tbt_read_f32(fx, "logits", NULL, NULL, NULL);
    TBT_ASSERT_CLOSE(tb_net_output(net), logits, 15, 1e-5, 1e-6, "logits");
    float *dl = tb_net_output_grad_buffer(net);
    float loss = be->ops->loss(be, dl, tb_net_output(net), y, 3, 5, TB_LOSS_CROSS_ENTROPY);
    float *ref_loss = tbt_read_f32(fx, "loss", NULL, NULL, NULL);
    TBT_ASSERT_CLOSE(&loss, ref_loss, 1, 1e-5, 0, "loss");
    tb_net_zero_grads(net);
    tb_net_backward(net, dl, 3);
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_buffer) {
            if (p->is_int64) {
                float nbt;
                tb_net_param_get(net, i, &nbt);
                ck_assert_msg(nbt == 1.0f, "num_batches_tracked %g after one training forward", nbt);
                continue;
            }
            snprintf(path, sizeof path, "after/%s", p->name);
            float *ref = tbt_read_f32(fx, path, NULL, NULL, NULL);
            TBT_ASSERT_CLOSE(tb_net_buffers(net) + p->offset, ref, p->count, 1e-5, 1e-7, p->name);
            free(ref);
            continue;
        }
        snprintf(path, sizeof path, "grad/%s", p->name);
        float *ref = tbt_read_f32(fx, path, NULL, NULL, NULL);
        /* atol 1e-7: gradients of ~1e-2 summed in a different order than torch's differ by a few ulp */
        TBT_ASSERT_CLOSE(tb_net_grads(net) + p->offset, ref, p->count, 1e-5, 1e-7, p->name);
        free(ref);
    }
    free(x);
    free(y);
    free(logits);
    free(ref_loss);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* A network that exercises every batch-minor rule: BatchNorm2d and pooling
 * folded, a concat taken in place, a concat inside a concat, a concat whose
 * input also feeds another layer (copied, not in place), dropout drawing its
 * mask by [n, c, h, w] position, avg and adaptive pooling, flatten back to
 * [n, features]. */
static tb_net *layout_net(void)
{
    tb_net *net = tb_net_new(3, 13, 11);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_relu(net, tb_net_conv2d(net, TB_NET_INPUT, "c0", 8, 3, 2, 1, 1, 1, init));
    x = tb_net_batchnorm(net, x, "bn0", 1e-5f, 0.1f);
    x = tb_net_maxpool(net, x, 3, 2, 0, 1);
    int a = tb_net_relu(net, tb_net_conv2d(net, x, "a", 4, 1, 1, 0, 1, 1, init));
    int b = tb_net_relu(net, tb_net_conv2d(net, x, "b", 5, 3, 1, 1, 1, 1, init));
    int inner[2] = {a, b};
    int ab = tb_net_concat(net, inner, 2); /* in place, and itself an input of an in-place concat */
    int c = tb_net_conv2d(net, x, "c", 3, 1, 1, 0, 1, 0, init);
    int outer[2] = {ab, c};
    int abc = tb_net_concat(net, outer, 2);
    int shared = tb_net_relu(net, tb_net_conv2d(net, abc, "d", 6, 3, 1, 1, 2, 1, init));
    int e = tb_net_conv2d(net, shared, "e", 6, 1, 1, 0, 1, 1, init);
    int mixed[2] = {shared, e}; /* shared also feeds e: this concat copies */
    x = tb_net_concat(net, mixed, 2);
    x = tb_net_dropout(net, x, 0.3f); /* the same mask in both layouts */
    x = tb_net_avgpool(net, x, 2, 1, 0, 0, 1);
    x = tb_net_adaptive_avgpool(net, x, 2, 2);
    x = tb_net_flatten(net, x);
    tb_net_linear(net, x, "fc", 7, 1, init);
    return net;
}

/* The CPU backend keeps 4-D activations batch-minor inside a network; the
 * same network on the same backend with the batch-minor ops taken away stays
 * [n, c, h, w] (the layout every other backend uses). Both must agree on the
 * logits and every gradient, at 2 threads (threads split the batch), for a
 * batch of 5 and then 2 (in-place slices move with the batch size). */
START_TEST(test_batch_minor_matches_nchw)
{
    tb_backend *be = tb_backend_cpu_create(2), *be_nchw = tb_backend_cpu_create(2);
    tb_backend_ops nchw_ops = *be->ops;
    nchw_ops.conv2d_cn_forward = NULL;
    nchw_ops.conv2d_cn_backward = NULL;
    be_nchw->ops = &nchw_ops;
    tb_net *net = layout_net(), *ref = layout_net();
    tb_err err;
    ck_assert_msg(tb_net_build(net, be, 5, &err) == TB_OK, "%s", err.msg);
    ck_assert_msg(tb_net_build(ref, be_nchw, 5, &err) == TB_OK, "%s", err.msg);
    ck_assert_int_eq(tb_net_batch_minor(net), 1);
    ck_assert_int_eq(tb_net_batch_minor(ref), 0);
    tb_net_init_params(net, 11);
    tb_net_init_params(ref, 11);
    const size_t sample = 3 * 13 * 11;
    float x[5 * 3 * 13 * 11];
    int32_t y[5] = {0, 3, 6, 2, 5};
    for (size_t i = 0; i < 5 * sample; i++) x[i] = sinf(0.37f * (float)i) + 0.1f * (float)(i % 7);
    for (int n = 5; n >= 2; n -= 3) {
        tb_net *nets[2] = {net, ref};
        for (int k = 0; k < 2; k++) {
            tb_backend *b = tb_net_backend(nets[k]);
            tb_net_forward(nets[k], x, n, 1, 0);
            float *dl = tb_net_output_grad_buffer(nets[k]);
            b->ops->loss(b, dl, tb_net_output(nets[k]), y, n, 7, TB_LOSS_CROSS_ENTROPY);
            tb_net_zero_grads(nets[k]);
            tb_net_backward(nets[k], dl, n);
        }
        char what[TB_NAME_MAX + 32];
        snprintf(what, sizeof what, "logits (n = %d)", n);
        TBT_ASSERT_CLOSE(tb_net_output(net), tb_net_output(ref), (size_t)n * 7, 1e-5, 1e-6, what);
        for (int i = 0; i < tb_net_param_count(net); i++) {
            const tb_param *p = tb_net_param(net, i);
            if (p->is_int64) continue;
            const float *got = (p->is_buffer ? tb_net_buffers(net) : tb_net_grads(net)) + p->offset;
            const float *want = (p->is_buffer ? tb_net_buffers(ref) : tb_net_grads(ref)) + p->offset;
            snprintf(what, sizeof what, "%s (n = %d)", p->name, n);
            TBT_ASSERT_CLOSE(got, want, p->count, 1e-4, 1e-6, what);
        }
    }
    tb_net_free(net);
    tb_net_free(ref);
    be_nchw->ops = be->ops;
    tb_backend_destroy(be_nchw);
    tb_backend_destroy(be);
}
END_TEST

/* ---- ReLU in place (net.c's plan_relus_in_place) ---- */

/* Large planes: stays NCHW. A ReLU over a convolution (Winograd forward with
 * 16 channels, 1x1 without bias), over a batch norm, over linears (one of them
 * the last node), ReLUs feeding a copying concat, dropout after fused ReLUs. */
static tb_net *relu_net_nchw(void)
{
    tb_init_spec init = tb_init_torch_default();
    tb_net *net = tb_net_new(3, 40, 40);
    int x = tb_net_relu(net, tb_net_conv2d(net, TB_NET_INPUT, "c0", 16, 3, 1, 1, 1, 1, init));
    x = tb_net_relu(net, tb_net_conv2d(net, x, "c1", 16, 3, 1, 1, 1, 1, init));
    int a = tb_net_relu(net, tb_net_conv2d(net, x, "c2", 8, 1, 1, 0, 1, 0, init));
    int b = tb_net_relu(net, tb_net_conv2d(net, x, "c3", 8, 3, 1, 1, 1, 1, init));
    int cat[2] = {a, b};
    x = tb_net_concat(net, cat, 2);
    x = tb_net_batchnorm(net, tb_net_conv2d(net, x, "c4", 8, 3, 2, 1, 1, 0, init), "bn", 1e-5f, 0.1f);
    x = tb_net_dropout(net, tb_net_relu(net, x), 0.3f);
    x = tb_net_flatten(net, tb_net_maxpool(net, x, 2, 2, 0, 0));
    x = tb_net_dropout(net, tb_net_relu(net, tb_net_linear(net, x, "fc1", 20, 1, init)), 0.2f);
    tb_net_relu(net, tb_net_linear(net, x, "fc2", 7, 1, init));
    return net;
}

/* Small planes: batch-minor, with in-place concats of fused ReLUs, a grouped
 * convolution under a batch norm, a 1x1 convolution over long runs of images
 * (64 channels, batch 24) and BatchNorm1d under a ReLU. */
static tb_net *relu_net_batch_minor(void)
{
    tb_init_spec init = tb_init_torch_default();
    tb_net *net = tb_net_new(3, 12, 12);
    int x = tb_net_relu(net, tb_net_conv2d(net, TB_NET_INPUT, "c0", 32, 3, 1, 1, 1, 1, init));
    int sq = tb_net_relu(net, tb_net_conv2d(net, x, "sq", 16, 1, 1, 0, 1, 1, init));
    int e1 = tb_net_relu(net, tb_net_conv2d(net, sq, "e1", 64, 1, 1, 0, 1, 1, init));
    int e3 = tb_net_relu(net, tb_net_conv2d(net, sq, "e3", 8, 3, 1, 1, 1, 1, init));
    int cat[2] = {e1, e3};
    x = tb_net_dropout(net, tb_net_concat(net, cat, 2), 0.4f);
    int e = tb_net_relu(net, tb_net_batchnorm(net, tb_net_conv2d(net, x, "c5", 8, 3, 1, 1, 2, 0, init), "bn", 1e-5f,
                                              0.1f));
    int f = tb_net_relu(net, tb_net_conv2d(net, x, "c6", 8, 1, 1, 0, 1, 1, init));
    int cat2[2] = {e, f};
    x = tb_net_relu(net, tb_net_conv2d(net, tb_net_concat(net, cat2, 2), "c7", 8, 3, 2, 1, 1, 1, init));
    x = tb_net_flatten(net, tb_net_adaptive_avgpool(net, tb_net_dropout(net, x, 0.3f), 2, 2));
    x = tb_net_relu(net, tb_net_batchnorm1d(net, tb_net_linear(net, x, "fc1", 12, 1, init), "bn1", 1e-5f, 0.1f));
    tb_net_linear(net, x, "fc2", 7, 1, init);
    return net;
}

/* The same network with the plan (the CPU backend) and without it (the same
 * backend with conv2d_relu_backward taken away, as on the GPU): the logits,
 * every gradient and the running statistics must be the same bits, at 1 and 2
 * threads, through batches of 24, 3, 24 and 1 with evaluations of 2 between,
 * once with a NaN in the input; and the plan must save memory. */
START_TEST(test_relu_in_place_same_bits)
{
    enum { MB = 24 };
    tb_net *(*const make[2])(void) = {relu_net_nchw, relu_net_batch_minor};
    const int steps[] = {24, 3, 24, 1};
    for (int which = 0; which < 2; which++)
        for (int threads = 1; threads <= 2; threads++)
            for (int with_nan = 0; with_nan < 2; with_nan++) {
                tb_backend *be = tb_backend_cpu_create(threads), *be_off = tb_backend_cpu_create(threads);
                tb_backend_ops off_ops = *be->ops;
                off_ops.conv2d_relu_backward = NULL;
                be_off->ops = &off_ops;
                tb_net *net = make[which](), *ref = make[which]();
                tb_err err;
                ck_assert_msg(tb_net_build(net, be, MB, &err) == TB_OK, "%s", err.msg);
                ck_assert_msg(tb_net_build(ref, be_off, MB, &err) == TB_OK, "%s", err.msg);
                ck_assert_int_eq(tb_net_batch_minor(net), which);
                ck_assert_msg(tb_net_memory_bytes(net) < tb_net_memory_bytes(ref), "the plan keeps fewer buffers");
                tb_net_init_params(net, 5);
                tb_net_init_params(ref, 5);
                int c, h, w;
                tb_net_input_shape(net, &c, &h, &w);
                const size_t sample = (size_t)c * h * w;
                float *x = malloc(sizeof(float) * MB * sample);
                ck_assert(x != NULL);
                for (size_t i = 0; i < MB * sample; i++) x[i] = sinf(0.37f * (float)i) + 0.1f * (float)(i % 7) - 0.2f;
                if (with_nan) x[100] = NAN;
                int32_t y[MB];
                for (int i = 0; i < MB; i++) y[i] = (i * 5) % 7;
                for (int step = 0; step < 4; step++) {
                    const int n = steps[step];
                    tb_net *nets[2] = {net, ref};
                    for (int k = 0; k < 2; k++) {
                        tb_backend *b = tb_net_backend(nets[k]);
                        tb_net_forward(nets[k], x, n, 1, (uint64_t)step);
                        float *dl = tb_net_output_grad_buffer(nets[k]);
                        b->ops->loss(b, dl, tb_net_output(nets[k]), y, n, 7, TB_LOSS_CROSS_ENTROPY);
                        tb_net_zero_grads(nets[k]);
                        tb_net_backward(nets[k], dl, n);
                    }
                    char what[TB_NAME_MAX + 96];
                    snprintf(what, sizeof what, "net %d, %d threads, nan %d, step %d (n %d)", which, threads, with_nan,
                             step, n);
                    ck_assert_msg(memcmp(tb_net_output(net), tb_net_output(ref), sizeof(float) * n * 7) == 0,
                                  "%s: logits differ", what);
                    for (int i = 0; i < tb_net_param_count(net); i++) {
                        const tb_param *p = tb_net_param(net, i);
                        if (p->is_int64) continue;
                        const float *got = (p->is_buffer ? tb_net_buffers(net) : tb_net_grads(net)) + p->offset;
                        const float *want = (p->is_buffer ? tb_net_buffers(ref) : tb_net_grads(ref)) + p->offset;
                        ck_assert_msg(memcmp(got, want, sizeof(float) * p->count) == 0, "%s: %s differs", what,
                                      p->name);
                    }
                    tb_net_forward(net, x, 2, 0, 0);
                    tb_net_forward(ref, x, 2, 0, 0);
                    ck_assert_msg(memcmp(tb_net_output(net), tb_net_output(ref), sizeof(float) * 2 * 7) == 0,
                                  "%s: evaluation logits differ", what);
                }
                free(x);
                tb_net_free(net);
                tb_net_free(ref);
                be_off->ops = be->ops;
                tb_backend_destroy(be_off);
                tb_backend_destroy(be);
            }
}
END_TEST

/* ---- the PyTorch-style builder (tb_nn_*, the host's conv2d, linear, ...) ---- */

/* The keys of a net, ','-joined in state_dict order; malloc'd. */
static char *joined_keys(const tb_net *net)
{
    size_t cap = 64 + (size_t)tb_net_param_count(net) * TB_NAME_MAX, used = 0;
    char *s = calloc(cap, 1);
    ck_assert(s != NULL);
    for (int i = 0; i < tb_net_param_count(net); i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%s", i ? "," : "", tb_net_param(net, i)->name);
    return s;
}

/* nn.Sequential(Flatten, Linear, BatchNorm1d, GELU, Linear, LeakyReLU(0.2), Linear, Tanh,
 * Linear, Sigmoid, Identity, Linear, GELU('tanh'), Linear): gen_activations.py's net_mlp,
 * written with the option structs and no names at all. */
static tb_net *mlp_net(void)
{
    tb_net *net = tb_net_new(3, 2, 2);
    int x = tb_nn_flatten(net, TB_NET_INPUT);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 10});
    x = tb_nn_batchnorm1d(net, x, NULL);
    x = tb_nn_gelu(net, x, NULL);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 8});
    x = tb_nn_leaky_relu(net, x, &(tb_leaky_relu_opts){.negative_slope = 0.2f});
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 8});
    x = tb_nn_tanh(net, x);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 6});
    x = tb_nn_sigmoid(net, x);
    x = tb_nn_identity(net, x);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 7});
    x = tb_nn_gelu(net, x, &(tb_gelu_opts){.approximate = "tanh"});
    tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 4});
    return net;
}

/* Keys, forward, loss, every gradient and BatchNorm1d's running statistics of
 * a whole nn.Sequential through the new layers, against PyTorch: the wiring
 * (tanh/sigmoid backward from the output, leaky ReLU/GELU from the input). */
START_TEST(test_new_layers_network_matches_torch)
{
    const char *fx = tbt_fixture("activations.h5");
    tb_backend *be = tb_backend_cpu_create(1);
    tb_net *net = mlp_net();
    tb_err err;
    ck_assert_msg(tb_net_build(net, be, 5, &err) == TB_OK, "%s", err.msg);
    char *want = tbt_read_str_attr(fx, "/net_mlp", "state_dict_keys"), *got = joined_keys(net);
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
    char path[256];
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_int64) continue;
        snprintf(path, sizeof path, "net_mlp/params/%s", p->name);
        size_t count;
        float *v = tbt_read_f32(fx, path, &count, NULL, NULL);
        ck_assert_uint_eq(count, p->count);
        tb_net_param_set(net, i, v);
        free(v);
    }
    float *x = tbt_read_f32(fx, "net_mlp/x", NULL, NULL, NULL);
    int32_t *y = tbt_read_i32(fx, "net_mlp/y", NULL);
    tb_net_forward(net, x, 5, 1, 0);
    float *logits = tbt_read_f32(fx, "net_mlp/logits", NULL, NULL, NULL);
    TBT_ASSERT_CLOSE(tb_net_output(net), logits, 20, 1e-5, 1e-6, "logits");
    float *dl = tb_net_output_grad_buffer(net);
    float loss = be->ops->loss(be, dl, tb_net_output(net), y, 5, 4, TB_LOSS_CROSS_ENTROPY);
    float *ref_loss = tbt_read_f32(fx, "net_mlp/loss", NULL, NULL, NULL);
    TBT_ASSERT_CLOSE(&loss, ref_loss, 1, 1e-5, 0, "loss");
    tb_net_zero_grads(net);
    tb_net_backward(net, dl, 5);
    for (int i = 0; i < tb_net_param_count(net); i++) {
        const tb_param *p = tb_net_param(net, i);
        if (p->is_int64) {
            float nbt;
            tb_net_param_get(net, i, &nbt);
            ck_assert_msg(nbt == 1.0f, "num_batches_tracked %g after one training forward", nbt);
            continue;
        }
        snprintf(path, sizeof path, p->is_buffer ? "net_mlp/after/%s" : "net_mlp/grad/%s", p->name);
        float *ref = tbt_read_f32(fx, path, NULL, NULL, NULL);
        const float *got_v = (p->is_buffer ? tb_net_buffers(net) : tb_net_grads(net)) + p->offset;
        /* atol 1e-7 as the fire network's: a few ulp of sums taken in another order */
        TBT_ASSERT_CLOSE(got_v, ref, p->count, 1e-5, 1e-7, p->name);
        free(ref);
    }
    free(x), free(y), free(logits), free(ref_loss);
    tb_net_free(net);
    tb_backend_destroy(be);
}
END_TEST

/* LeNet-5 with net_sequential scopes has a torch.nn.Sequential LeNet-5's keys
 * (docs/examples/lenet5 builds the same through the host table). */
START_TEST(test_sequential_names_lenet5)
{
    const char *fx = tbt_fixture("activations.h5");
    tb_net *net = tb_net_new(1, 28, 28);
    int x = tb_nn_conv2d(net, TB_NET_INPUT, &(tb_conv2d_opts){.out_channels = 6, .kernel = 5, .padding = 2});
    x = tb_nn_tanh(net, x);
    x = tb_nn_avgpool2d(net, x, &(tb_avgpool2d_opts){.kernel = 2});
    x = tb_nn_conv2d(net, x, &(tb_conv2d_opts){.out_channels = 16, .kernel = 5});
    x = tb_nn_tanh(net, x);
    x = tb_nn_avgpool2d(net, x, &(tb_avgpool2d_opts){.kernel = 2});
    x = tb_nn_flatten(net, x);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 120});
    x = tb_nn_tanh(net, x);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 84});
    x = tb_nn_tanh(net, x);
    tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 10});
    char *want = tbt_read_str_attr(fx, "/lenet5", "state_dict_keys"), *got = joined_keys(net);
    ck_assert_str_eq(got, want);
    int c, h, w;
    ck_assert_int_eq(tb_net_layer_shape(net, 6, &c, &h, &w), 0);
    ck_assert_int_eq(c, 16 * 5 * 5); /* the flatten feeds Linear(400, 120), as the paper's */
    /* the torch defaults the zeroed fields stand for: stride 1, bias, torch's init */
    const tb_param *w0 = tb_net_param(net, tb_net_find_param(net, "3.weight"));
    ck_assert_int_eq((int)w0->shape[0], 16);
    ck_assert_int_eq((int)w0->shape[1], 6);
    ck_assert_int_ge(tb_net_find_param(net, "3.bias"), 0);
    free(want);
    free(got);
    tb_net_free(net);
}
END_TEST

/* Scopes, explicit names, what takes an index and what does not. */
START_TEST(test_sequential_scopes)
{
    tb_net *net = tb_net_new(3, 8, 8);
    char buf[TB_NAME_MAX];
    ck_assert_str_eq(tb_net_next_name(net, buf, sizeof buf), "0");
    ck_assert_int_eq(tb_net_sequential(net, "features"), 0);
    int x = tb_nn_conv2d(net, TB_NET_INPUT, &(tb_conv2d_opts){.out_channels = 4, .kernel = 3, .padding = 1,
                                                               .no_bias = 1});
    x = tb_nn_batchnorm2d(net, x, NULL);
    x = tb_nn_relu(net, x);
    /* a branch joined by concat: torch.cat is no module, so no index */
    int a = tb_nn_conv2d(net, x, &(tb_conv2d_opts){.out_channels = 2, .kernel = 1, .name = "features.3.left"});
    int b = tb_nn_conv2d(net, x, &(tb_conv2d_opts){.out_channels = 2, .kernel = 1, .name = "features.3.right"});
    int ab[2] = {a, b};
    x = tb_net_concat(net, ab, 2);
    ck_assert_str_eq(tb_net_next_name(net, buf, sizeof buf), "features.5"); /* the two named convs took 3, 4 */
    x = tb_nn_maxpool2d(net, x, &(tb_maxpool2d_opts){.kernel = 2});
    int ch, h, w;
    tb_net_layer_shape(net, x, &ch, &h, &w);
    ck_assert_int_eq(h, 4); /* stride defaulted to the kernel, as torch's None */
    x = tb_nn_dropout(net, x, NULL);
    ck_assert_int_eq(tb_net_sequential(net, "head"), 0);
    x = tb_nn_flatten(net, x);
    x = tb_nn_linear(net, x, &(tb_linear_opts){.out_features = 5, .no_bias = 1});
    tb_nn_batchnorm1d(net, x, &(tb_batchnorm_opts){.eps = 1e-3f, .momentum = 0.2f});
    char *got = joined_keys(net);
    ck_assert_str_eq(got, "features.0.weight,features.1.weight,features.1.bias,features.1.running_mean,"
                          "features.1.running_var,features.1.num_batches_tracked,features.3.left.weight,"
                          "features.3.left.bias,features.3.right.weight,features.3.right.bias,head.1.weight,"
                          "head.2.weight,head.2.bias,head.2.running_mean,head.2.running_var,"
                          "head.2.num_batches_tracked");
    free(got);
    /* parameter-free layers carry their Sequential name in the summary */
    char summary[4096];
    tb_net_summary(net, summary, sizeof summary);
    TBT_ASSERT_HAS(summary, "maxpool          features.5");
    TBT_ASSERT_HAS(summary, "dropout          features.6");
    tb_net_free(net);
}
END_TEST

/* Bad options are refused with the layer's name, the field and its value. */
START_TEST(test_option_errors_name_the_field)
{
    tb_backend *be = tb_backend_cpu_create(1);
    tb_err err;
    struct {
        const char *want;
        int which;
    } cases[] = {
        {"layer features.0 (conv2d): out_channels = 0: required, >= 1", 0},
        {"layer features.0 (conv2d): stride = -2 must be >= 1 (0: torch's 1)", 1},
        {"layer features.2 (avgpool2d): kernel = 0: required (kernel_size), >= 1", 2},
        {"layer features.1 (gelu): approximate = \"tanhh\" must be \"none\" or \"tanh\"", 3},
        {"layer 2 (linear): out_features = -1: required, >= 1", 4},
        {"layer features.1 (batchnorm1d): input is [n, 4, 8, 8]; BatchNorm1d needs [n, c]", 5},
        {"layer features.1 (dropout): p = 1.5 must be in (0, 1] (0: torch's 0.5)", 6},
        {"layer features..x (sequential): \"features..x\" is not a state_dict prefix", 7},
        {"layer features.1 (leaky_relu): negative_slope = inf must be a finite number", 8},
        {"layer features.1 (batchnorm2d): eps = -1 must be > 0", 9},
    };
    for (size_t k = 0; k < TB_ARRAY_LEN(cases); k++) {
        tb_net *net = tb_net_new(1, 8, 8);
        tb_net_sequential(net, "features");
        const tb_conv2d_opts ok = {.out_channels = 4, .kernel = 3, .padding = 1};
        int x = TB_NET_INPUT;
        switch (cases[k].which) {
        case 0: tb_nn_conv2d(net, x, &(tb_conv2d_opts){.kernel = 3}); break;
        case 1: tb_nn_conv2d(net, x, &(tb_conv2d_opts){.out_channels = 2, .kernel = 3, .stride = -2}); break;
        case 2:
            x = tb_nn_conv2d(net, x, &ok);
            x = tb_nn_tanh(net, x);
            tb_nn_avgpool2d(net, x, NULL);
            break;
        case 3: tb_nn_gelu(net, tb_nn_conv2d(net, x, &ok), &(tb_gelu_opts){.approximate = "tanhh"}); break;
        case 4:
            tb_net_sequential(net, NULL);
            x = tb_nn_flatten(net, x);
            x = tb_nn_relu(net, x);
            tb_nn_linear(net, x, &(tb_linear_opts){.out_features = -1});
            break;
        case 5: tb_nn_batchnorm1d(net, tb_nn_conv2d(net, x, &ok), NULL); break;
        case 6: tb_nn_dropout(net, tb_nn_conv2d(net, x, &ok), &(tb_dropout_opts){.p = 1.5f}); break;
        case 7: tb_net_sequential(net, "features..x"); break;
        case 8:
            tb_nn_leaky_relu(net, tb_nn_conv2d(net, x, &ok), &(tb_leaky_relu_opts){.negative_slope = INFINITY});
            break;
        case 9: tb_nn_batchnorm2d(net, tb_nn_conv2d(net, x, &ok), &(tb_batchnorm_opts){.eps = -1.0f}); break;
        }
        ck_assert_int_eq(tb_net_build(net, be, 2, &err), TB_EINVAL);
        TBT_ASSERT_HAS(err.msg, cases[k].want);
        tb_net_free(net);
    }
    tb_backend_destroy(be);
}
END_TEST

START_TEST(test_init_independent_of_batch_and_other_layers)
{
    tb_backend *be = tb_backend_cpu_create(1);
    tb_err err;
    tb_net *a = tb_zoo_small_cnn(1, 28, 28, 10), *b = tb_zoo_small_cnn(1, 28, 28, 10);
    ck_assert(tb_net_build(a, be, 16, &err) == TB_OK);
    ck_assert(tb_net_build(b, be, 100, &err) == TB_OK);
    tb_net_init_params(a, 42);
    tb_net_init_params(b, 42);
    ck_assert_uint_eq(tb_net_params_size(a), tb_net_params_size(b));
    ck_assert(memcmp(tb_net_params(a), tb_net_params(b), sizeof(float) * tb_net_params_size(a)) == 0);
    tb_net_init_params(b, 43);
    ck_assert(memcmp(tb_net_params(a), tb_net_params(b), sizeof(float) * tb_net_params_size(a)) != 0);
    /* PyTorch's default bound for features.3.weight: 1/sqrt(fan_in) = 1/sqrt(32*9) */
    int wi = tb_net_find_param(a, "features.3.weight");
    const tb_param *w = tb_net_param(a, wi);
    float bound = 1.0f / sqrtf(32 * 9.0f), maxabs = 0;
    for (size_t i = 0; i < w->count; i++) maxabs = fmaxf(maxabs, fabsf(tb_net_params(a)[w->offset + i]));
    ck_assert_msg(maxabs <= bound && maxabs > 0.95f * bound, "max |w| %g, bound %g", maxabs, bound);
    tb_net_free(a);
    tb_net_free(b);

    /* a net with an extra layer in front keeps the weights of the layers it shares by name */
    tb_net *c = tb_net_new(1, 8, 8), *d = tb_net_new(1, 8, 8);
    tb_init_spec init = tb_init_torch_default();
    int x = tb_net_conv2d(c, TB_NET_INPUT, "features.0", 4, 3, 1, 1, 1, 1, init);
    x = tb_net_flatten(c, x);
    tb_net_linear(c, x, "fc", 3, 1, init);
    x = tb_net_conv2d(d, TB_NET_INPUT, "features.0", 4, 3, 1, 1, 1, 1, init);
    x = tb_net_batchnorm(d, x, "features.1", 1e-5f, 0.1f);
    x = tb_net_flatten(d, x);
    tb_net_linear(d, x, "fc", 3, 1, init);
    ck_assert(tb_net_build(c, be, 2, &err) == TB_OK && tb_net_build(d, be, 2, &err) == TB_OK);
    tb_net_init_params(c, 9);
    tb_net_init_params(d, 9);
    const tb_param *fc = tb_net_param(c, tb_net_find_param(c, "fc.weight"));
    const tb_param *fd = tb_net_param(d, tb_net_find_param(d, "fc.weight"));
    ck_assert(memcmp(tb_net_params(c) + fc->offset, tb_net_params(d) + fd->offset, sizeof(float) * fc->count) == 0);
    tb_net_free(c);
    tb_net_free(d);
    tb_backend_destroy(be);
}
END_TEST

/* Ceil-mode pooling over a plane narrower (or shorter) than the kernel: the
 * window must stay inside its own plane (a fast path once read the next one). */
START_TEST(test_maxpool_plane_smaller_than_kernel)
{
    const int shapes[][2] = {{3, 2}, {2, 3}, {2, 1}, {1, 2}};
    for (size_t k = 0; k < TB_ARRAY_LEN(shapes); k++) {
        const int H = shapes[k][0], W = shapes[k][1];
        tb_pool_shape s = {.c = 1, .in_h = H, .in_w = W, .kh = 3, .kw = 3, .stride_h = 2, .stride_w = 2,
                           .ceil_mode = 1};
        if (H < 2 || W < 2) s.kh = s.kw = s.stride_h = s.stride_w = 2;
        ck_assert_int_eq(pool_infer(&s), 0);
        ck_assert(s.out_h == 1 && s.out_w == 1);
        /* two planes: the second holds larger values that must not leak into the first */
        float in[2 * 6], out[2];
        int32_t idx[2];
        for (int i = 0; i < H * W; i++) in[i] = (float)i, in[H * W + i] = 100.0f + (float)i;
        maxpool_forward(out, idx, in, &s, 2);
        ck_assert_msg(out[0] == (float)(H * W - 1) && idx[0] == H * W - 1, "%dx%d: max %g at %d", H, W, out[0],
                      idx[0]);
        ck_assert(out[1] == 100.0f + (float)(H * W - 1) && idx[1] == H * W - 1);
        float g[2] = {1.0f, 2.0f}, din[2 * 6];
        maxpool_backward(din, g, idx, &s, 2, 0);
        for (int i = 0; i < 2 * H * W; i++) {
            float want = i == H * W - 1 ? 1.0f : i == 2 * H * W - 1 ? 2.0f : 0.0f;
            ck_assert_msg(din[i] == want, "%dx%d: din[%d] = %g", H, W, i, din[i]);
        }
    }
}
END_TEST

/* A net keeps its backend's thread count even after another backend set a
 * larger one: the per-thread conv workspace was sized for it at build time. */
START_TEST(test_thread_count_follows_the_backend)
{
    tb_backend *one = tb_backend_cpu_create(1);
    tb_net *net = tb_zoo_small_cnn(1, 28, 28, 10);
    tb_err err;
    ck_assert(tb_net_build(net, one, 8, &err) == TB_OK);
    tb_net_init_params(net, 5);
    float x[8 * 784];
    int32_t y[8];
    tb_rng r;
    tb_rng_init(&r, 1, TB_STREAM_AUGMENT, 0);
    for (size_t i = 0; i < TB_ARRAY_LEN(x); i++) x[i] = tb_rng_normal(&r);
    for (int i = 0; i < 8; i++) y[i] = i;
    size_t np = tb_net_params_size(net);
    float *before = malloc(sizeof(float) * np);
    for (int pass = 0; pass < 2; pass++) {
        tb_backend *four = pass ? tb_backend_cpu_create(4) : NULL; /* sets OpenMP's count to 4 */
        tb_net_forward(net, x, 8, 1, 0);
        one->ops->loss(one, tb_net_output_grad_buffer(net), tb_net_output(net), y, 8, 10, TB_LOSS_CROSS_ENTROPY);
        tb_net_zero_grads(net);
        tb_net_backward(net, tb_net_output_grad_buffer(net), 8);
        if (pass == 0) memcpy(before, tb_net_grads(net), sizeof(float) * np);
        else ck_assert_msg(memcmp(before, tb_net_grads(net), sizeof(float) * np) == 0,
                           "gradients changed when another backend set 4 threads");
        if (four) tb_backend_destroy(four);
    }
    free(before);
    tb_net_free(net);
    tb_backend_destroy(one);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("net");
    tcase_add_test(tc, test_state_dict_names_and_shapes);
    tcase_add_test(tc, test_builder_errors);
    tcase_add_test(tc, test_fire_network_matches_torch);
    tcase_add_test(tc, test_batch_minor_matches_nchw);
    tcase_add_test(tc, test_relu_in_place_same_bits);
    tcase_add_test(tc, test_maxpool_plane_smaller_than_kernel);
    tcase_add_test(tc, test_thread_count_follows_the_backend);
    tcase_add_test(tc, test_init_independent_of_batch_and_other_layers);
    tcase_add_test(tc, test_new_layers_network_matches_torch);
    tcase_add_test(tc, test_sequential_names_lenet5);
    tcase_add_test(tc, test_sequential_scopes);
    tcase_add_test(tc, test_option_errors_name_the_field);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
