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
    tcase_add_test(tc, test_maxpool_plane_smaller_than_kernel);
    tcase_add_test(tc, test_thread_count_follows_the_backend);
    tcase_add_test(tc, test_init_independent_of_batch_and_other_layers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
