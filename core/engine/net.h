/* net.h: a network is a small DAG of layers built with the functions below,
 * then placed on a backend. Forward runs the nodes in the order they were
 * added (which is topological: a node may only read earlier nodes), backward
 * in reverse.
 *
 * Memory: trainable parameters, their gradients, buffers (BN running
 * statistics), activations and activation gradients each live in one
 * contiguous block on the backend, allocated once by tb_net_build for the
 * largest batch; the parameter table gives each tensor its PyTorch state_dict
 * key, shape and offset. */
#ifndef TB_NET_H
#define TB_NET_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "base/common.h"
#include "weight_init.h"

#define TB_MAX_CONCAT 8
#define TB_NAME_MAX 128

typedef enum tb_layer_kind {
    TB_LAYER_CONV2D,
    TB_LAYER_LINEAR,
    TB_LAYER_RELU,
    TB_LAYER_MAXPOOL,
    TB_LAYER_AVGPOOL,
    TB_LAYER_ADAPTIVE_AVGPOOL,
    TB_LAYER_CONCAT,
    TB_LAYER_DROPOUT,
    TB_LAYER_BATCHNORM,
    TB_LAYER_FLATTEN,
    TB_LAYER_TANH,
    TB_LAYER_SIGMOID,
    TB_LAYER_LEAKY_RELU,
    TB_LAYER_GELU,
    TB_LAYER_IDENTITY,
} tb_layer_kind;

const char *tb_layer_kind_name(tb_layer_kind kind);

/* One tensor of the state_dict. */
typedef struct tb_param {
    char name[TB_NAME_MAX]; /* state_dict key, e.g. "features.3.squeeze.weight" */
    int ndim;               /* 0 for scalars (num_batches_tracked) */
    int64_t shape[4];       /* PyTorch's shape */
    size_t count;           /* elements */
    size_t offset;          /* into the params block (trainable) or buffers block */
    int is_buffer;          /* running_mean/var, num_batches_tracked: no gradient */
    int is_int64;           /* stored as float here, int64 in PyTorch (num_batches_tracked) */
    int node;               /* the layer it belongs to */
    int trainable;          /* 0: frozen (tb_net_set_trainable); the optimizer skips it, and
                               BN running statistics still update in training mode, as in PyTorch */
} tb_param;


/* Builder. Each layer function returns the new node's id, or -1 after which
 * the net records the first error and tb_net_build reports it. Names are the
 * state_dict prefixes of layers with parameters ("features.0", "classifier.1"). */
tb_net *tb_net_new(int in_c, int in_h, int in_w);
void tb_net_free(tb_net *net);

int tb_net_conv2d(tb_net *net, int input, const char *name, int out_c, int kernel, int stride, int pad, int groups,
                  int bias, tb_init_spec init);
int tb_net_linear(tb_net *net, int input, const char *name, int out_features, int bias, tb_init_spec init);
int tb_net_relu(tb_net *net, int input);
int tb_net_maxpool(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode);
int tb_net_avgpool(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode, int count_include_pad);
int tb_net_adaptive_avgpool(tb_net *net, int input, int out_h, int out_w);
int tb_net_concat(tb_net *net, const int *inputs, int n_inputs);
int tb_net_dropout(tb_net *net, int input, float p);
int tb_net_batchnorm(tb_net *net, int input, const char *name, float eps, float momentum);
int tb_net_flatten(tb_net *net, int input);
int tb_net_tanh(tb_net *net, int input);
int tb_net_sigmoid(tb_net *net, int input);
/* negative_slope: any finite value (torch's default 0.01) */
int tb_net_leaky_relu(tb_net *net, int input, float negative_slope);
/* tanh_approx 0: approximate='none' (torch's default), 1: approximate='tanh' */
int tb_net_gelu(tb_net *net, int input, int tanh_approx);
int tb_net_identity(tb_net *net, int input);
/* torch.nn.BatchNorm1d over [n, c] (after flatten or linear): the batchnorm
 * layer with hw = 1 and the same state_dict entries as BatchNorm2d */
int tb_net_batchnorm1d(tb_net *net, int input, const char *name, float eps, float momentum);

/* torch.nn.Sequential indices. The net counts modules: every layer added
 * (parameter-free ones included) but concat (torch.cat is no module) takes
 * the next index, as a module appended to a Sequential would. A Sequential
 * scope names them "<prefix>.<index>" ("<index>" for the empty prefix, a
 * top-level Sequential); a new net starts in the empty scope at index 0.
 * tb_net_sequential starts a new scope at index 0: 0, or -1 after recording
 * an error for a prefix that is too long or not a dotted name.
 * tb_net_next_name writes the name the next layer would take and returns buf. */
int tb_net_sequential(tb_net *net, const char *prefix);
const char *tb_net_next_name(const tb_net *net, char *buf, size_t len);

/* The PyTorch-style builder: the tb_*_opts structs of the plugin header, a
 * zero field taking torch's default (tunebench_plugin.h says which); NULL
 * opts: all defaults; a NULL or "" name: the next Sequential name. Layers
 * without parameters are labelled with their Sequential name (errors,
 * summaries). Each returns the node's id, or -1 with the error recorded. */
int tb_nn_conv2d(tb_net *net, int input, const tb_conv2d_opts *opts);
int tb_nn_linear(tb_net *net, int input, const tb_linear_opts *opts);
int tb_nn_batchnorm2d(tb_net *net, int input, const tb_batchnorm_opts *opts);
int tb_nn_batchnorm1d(tb_net *net, int input, const tb_batchnorm_opts *opts);
int tb_nn_maxpool2d(tb_net *net, int input, const tb_maxpool2d_opts *opts);
int tb_nn_avgpool2d(tb_net *net, int input, const tb_avgpool2d_opts *opts);
int tb_nn_adaptive_avgpool2d(tb_net *net, int input, const tb_adaptive_avgpool2d_opts *opts);
int tb_nn_dropout(tb_net *net, int input, const tb_dropout_opts *opts);
int tb_nn_leaky_relu(tb_net *net, int input, const tb_leaky_relu_opts *opts);
int tb_nn_gelu(tb_net *net, int input, const tb_gelu_opts *opts);
int tb_nn_relu(tb_net *net, int input);
int tb_nn_tanh(tb_net *net, int input);
int tb_nn_sigmoid(tb_net *net, int input);
int tb_nn_identity(tb_net *net, int input);
int tb_nn_flatten(tb_net *net, int input);

/* The checks that need no backend: the builder's first error (naming the
 * layer by its state_dict key when it has one), no layers, a last layer that
 * is not [n, classes]. TB_EINVAL with the message; tb_net_build runs them too. */
tb_status tb_net_check(const tb_net *net, tb_err *err);
/* Allocates every block on be for batches of up to max_batch samples. The
 * last node added is the output; it must be [n, classes] (after flatten or linear). */
tb_status tb_net_build(tb_net *net, tb_backend *be, int max_batch, tb_err *err);
/* Initialises every parameter from (seed, TB_STREAM_INIT, hash of its state_dict
 * key), so adding or removing a layer leaves the other layers' weights alone, and
 * resets buffers (running_mean 0, running_var 1, num_batches_tracked 0). */
void tb_net_init_params(tb_net *net, uint64_t seed);

/* x [n, in_c, in_h, in_w] in backend memory. train selects batch statistics
 * for BN and enables dropout; step numbers dropout masks. */
void tb_net_forward(tb_net *net, const float *x, int n, int train, uint64_t step);
/* dlogits [n, classes] in backend memory; accumulates into the grads block. */
void tb_net_backward(tb_net *net, const float *dlogits, int n);
void tb_net_zero_grads(tb_net *net);

/* Accessors */
tb_backend *tb_net_backend(const tb_net *net);
/* 1 when the built network keeps its 4-D activations as [c, n, h, w] (the
 * CPU backend, convolutions mostly on planes under 32x32), 0 for [n, c, h, w]. */
int tb_net_batch_minor(const tb_net *net);
const float *tb_net_output(const tb_net *net);       /* [n, classes], backend memory */
float *tb_net_output_grad_buffer(const tb_net *net); /* [max_batch, classes], scratch for dlogits */
int tb_net_classes(const tb_net *net);
int tb_net_max_batch(const tb_net *net);
void tb_net_input_shape(const tb_net *net, int *c, int *h, int *w);
uint64_t tb_net_seed(const tb_net *net);
void tb_net_set_seed(tb_net *net, uint64_t seed); /* dropout stream seed */

int tb_net_param_count(const tb_net *net); /* state_dict entries, in state_dict order */
const tb_param *tb_net_param(const tb_net *net, int i);
int tb_net_find_param(const tb_net *net, const char *name); /* index or -1 */
float *tb_net_params(const tb_net *net);  /* trainable block, backend memory */
float *tb_net_grads(const tb_net *net);
float *tb_net_buffers(const tb_net *net);
size_t tb_net_params_size(const tb_net *net);  /* floats in params (= grads) */
size_t tb_net_buffers_size(const tb_net *net); /* floats in buffers */
size_t tb_net_trainable_count(const tb_net *net);
/* Bytes this net holds on its backend (blocks, activations, workspace). */
size_t tb_net_memory_bytes(const tb_net *net);
/* Forward FLOPs per sample (multiply-add = 2), for benchmarks. */
double tb_net_forward_flops(const tb_net *net);

/* Copies a parameter tensor (or buffer) between host memory and the net. */
void tb_net_param_get(const tb_net *net, int i, float *host);
void tb_net_param_set(tb_net *net, int i, const float *host);

/* Freezes (trainable 0) or unfreezes every parameter whose state_dict key
 * starts with one of the comma-separated prefixes ("features." or
 * "features.,classifier.1."); "" or "*" matches all. Returns how many tensors matched. */
int tb_net_set_trainable(tb_net *net, const char *prefixes, int trainable);
/* 1 when name starts with one of the comma-separated prefixes ("*" matches all). */
int tb_name_has_prefix(const char *name, const char *prefixes);
/* Output shape of a layer (or TB_NET_INPUT) while building: 0, or -1 for an unknown id. */
int tb_net_layer_shape(const tb_net *net, int layer, int *c, int *h, int *w);
/* Smallest height*width among the net's batch-norm layers, or 0 without one
 * (training needs more than one value per channel: n * hw > 1). */
int tb_net_min_bn_plane(const tb_net *net);
/* Trainable parameters per layer with parameters, "name: count" lines; malloc'd. */
char *tb_net_param_report(const tb_net *net);

/* Per-layer timing: when on, every layer synchronises the backend and adds
 * its forward and backward time; the report gives milliseconds per step and,
 * for convolutions and linear layers at `batch` samples a step, GFLOP/s and
 * its share of peak_gflops (0: no share). */
void tb_net_set_profiling(tb_net *net, int on);
void tb_net_profile_report(const tb_net *net, int steps, int batch, double peak_gflops, char *buf, size_t len);

/* Human-readable layer list with output shapes and parameter counts. */
void tb_net_summary(const tb_net *net, char *buf, size_t len);

#endif
