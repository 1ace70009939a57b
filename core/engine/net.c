/* net.c: network DAG, parameter table and the forward/backward passes. */
#include "net.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tb_node {
    tb_layer_kind kind;
    char name[TB_NAME_MAX];     /* state_dict prefix ("" for layers without parameters) */
    int inputs[TB_MAX_CONCAT];  /* node ids; TB_NET_INPUT for the network input */
    int n_inputs;
    int ndim;                   /* 4: [n, c, h, w]; 2: [n, c] */
    int c, h, w;                /* per-sample output shape */
    int param_first, n_params;  /* entries of the parameter table */
    int has_bias;
    tb_init_spec init;
    union {
        tb_conv2d_shape conv;
        tb_linear_shape linear;
        tb_pool_shape pool;
        tb_bn_shape bn;
        float dropout_p;
        float negative_slope; /* leaky ReLU */
        int tanh_approx;      /* GELU */
    } u;
    int64_t num_batches_tracked; /* batchnorm: kept on the host, exported as an int64 buffer */
    /* placement, set by tb_net_build */
    size_t act_off, aux_off;     /* floats into the activation blocks, bytes into the aux block */
    float *out, *dout;
    void *aux;                   /* maxpool argmax, dropout mask, batchnorm saved mean|invstd */
    float *weight, *bias, *dweight, *dbias, *running_mean, *running_var;
    /* Batch-minor networks: a concat whose inputs feed nothing else has them
     * write their output straight into its channel slices (in_concat: the
     * concat's node id, -1 otherwise; slice_c: the first channel), so the
     * concat itself copies nothing either way. */
    int in_concat, slice_c;
    int concat_in_place; /* on the concat: all its inputs write into it */
    /* A ReLU that is the only consumer of a convolution, linear or batch norm
     * (none of which reads its own output backward) overwrites that layer's
     * output: the producer's out and dout are the ReLU's, it keeps no buffer
     * of its own, and the ReLU's forward and backward run in place
     * (relu_over: on the ReLU, the producer's id; -1 otherwise). */
    int relu_over;
} tb_node;

struct tb_net {
    int in_c, in_h, in_w;
    tb_node *nodes;
    int n_nodes, cap_nodes;
    tb_param *params;
    int n_params, cap_params;
    size_t params_size, buffers_size; /* floats */
    tb_err build_err;
    int failed;
    char adding[TB_NAME_MAX]; /* the state_dict name of the layer being added ("" when it has none) */
    char seq_prefix[TB_NAME_MAX]; /* the Sequential scope (tb_net_sequential); "" at the top */
    int seq_index;                /* the index the next module takes in that scope */

    tb_backend *be;
    int max_batch;
    uint64_t seed;
    float *param_block, *grad_block, *buffer_block;
    float *act_block, *act_grad_block, *workspace, *dlogits;
    void *aux_block;
    size_t act_size, aux_bytes, ws_size;
    uint8_t *grad_written; /* per node during backward: has dout been written yet */
    const float *input;    /* the batch of the last forward, read again by backward */
    /* Batch-minor layout: 4-D activations are [c, n, h, w] from the input to
     * the flatten, so that every convolution is one gemm over the batch. Chosen
     * at build when the backend has the ops and prefers_batch_minor says the
     * network gains; input_cn holds the input batch in that layout. */
    int batch_minor;
    float *input_cn;
    int profiling;         /* time every layer (synchronising the backend) */
    double *prof;          /* [n_nodes][2]: seconds in forward, backward */
};

const char *tb_layer_kind_name(tb_layer_kind kind)
{
    static const char *names[] = {"conv2d", "linear", "relu", "maxpool", "avgpool", "adaptive_avgpool",
                                  "concat", "dropout", "batchnorm", "flatten", "tanh", "sigmoid",
                                  "leaky_relu", "gelu", "identity"};
    return (unsigned)kind < TB_ARRAY_LEN(names) ? names[kind] : "?";
}

tb_net *tb_net_new(int in_c, int in_h, int in_w)
{
    tb_net *net = calloc(1, sizeof *net);
    if (!net) return NULL;
    net->in_c = in_c;
    net->in_h = in_h;
    net->in_w = in_w;
    if (in_c < 1 || in_h < 1 || in_w < 1) {
        net->failed = 1;
        tb_fail(&net->build_err, TB_EINVAL, "network input %dx%dx%d: every dimension must be >= 1", in_c, in_h,
                in_w);
    }
    return net;
}

void tb_net_free(tb_net *net)
{
    if (!net) return;
    if (net->be) {
        tb_backend *be = net->be;
        be->ops->free(be, net->param_block);
        be->ops->free(be, net->grad_block);
        be->ops->free(be, net->buffer_block);
        be->ops->free(be, net->act_block);
        be->ops->free(be, net->act_grad_block);
        be->ops->free(be, net->workspace);
        be->ops->free(be, net->dlogits);
        be->ops->free(be, net->aux_block);
        if (net->input_cn) be->ops->free(be, net->input_cn);
    }
    free(net->grad_written);
    free(net->prof);
    free(net->nodes);
    free(net->params);
    free(net);
}

/* ---- builder ----------------------------------------------------------- */

/* Records the first builder error, "layer NAME (what): message" for a layer
 * with a state_dict name (features.0), else "layer N (what after NAME):
 * message" naming the last named layer before it (or "layer N (what)" when
 * none); returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(tb_net *net, const char *what, const char *fmt, ...)
{
    if (!net->failed) {
        net->failed = 1;
        char tmp[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        /* a layer without a name (a pooling, a ReLU): its position and the named layer before it */
        const char *before = NULL;
        for (int i = net->n_nodes - 1; i >= 0 && !before; i--)
            if (net->nodes[i].name[0]) before = net->nodes[i].name;
        if (net->adding[0]) tb_fail(&net->build_err, TB_EINVAL, "layer %s (%s): %s", net->adding, what, tmp);
        else if (before)
            tb_fail(&net->build_err, TB_EINVAL, "layer %d (%s after %s): %s", net->n_nodes, what, before, tmp);
        else tb_fail(&net->build_err, TB_EINVAL, "layer %d (%s): %s", net->n_nodes, what, tmp);
    }
    return -1;
}

/* Output shape of an input reference; returns -1 for an invalid id. */
static int input_shape(const tb_net *net, int id, int *ndim, int *c, int *h, int *w)
{
    if (id == TB_NET_INPUT) {
        *ndim = 4;
        *c = net->in_c;
        *h = net->in_h;
        *w = net->in_w;
        return 0;
    }
    if (id < 0 || id >= net->n_nodes) return -1;
    const tb_node *n = &net->nodes[id];
    *ndim = n->ndim;
    *c = n->c;
    *h = n->h;
    *w = n->w;
    return 0;
}

static tb_node *add_node(tb_net *net, tb_layer_kind kind, const char *name, int input)
{
    if (net->failed) return NULL;
    snprintf(net->adding, sizeof net->adding, "%s", name ? name : "");
    int ndim, c, h, w;
    if (input_shape(net, input, &ndim, &c, &h, &w) != 0) {
        fail(net, tb_layer_kind_name(kind), "input %d is not an earlier layer (0..%d) or TB_NET_INPUT", input, net->n_nodes - 1);
        return NULL;
    }
    if (name && strlen(name) >= TB_NAME_MAX - 32) {
        fail(net, tb_layer_kind_name(kind), "name longer than %d characters", TB_NAME_MAX - 32);
        return NULL;
    }
    if (net->n_nodes == net->cap_nodes) {
        int cap = net->cap_nodes ? 2 * net->cap_nodes : 32;
        tb_node *grown = realloc(net->nodes, sizeof *grown * cap);
        if (!grown) {
            fail(net, tb_layer_kind_name(kind), "out of memory");
            return NULL;
        }
        net->nodes = grown;
        net->cap_nodes = cap;
    }
    tb_node *n = &net->nodes[net->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    if (name) snprintf(n->name, sizeof n->name, "%s", name);
    n->inputs[0] = input;
    n->n_inputs = 1;
    n->ndim = ndim;
    n->c = c;
    n->h = h;
    n->w = w;
    n->param_first = net->n_params;
    return n;
}

static int add_param(tb_net *net, tb_node *node, const char *suffix, int ndim, const int64_t *shape, int is_buffer,
                     int is_int64)
{
    if (net->n_params == net->cap_params) {
        int cap = net->cap_params ? 2 * net->cap_params : 64;
        tb_param *grown = realloc(net->params, sizeof *grown * cap);
        if (!grown) return fail(net, tb_layer_kind_name(node->kind), "out of memory");
        net->params = grown;
        net->cap_params = cap;
    }
    tb_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    int len = snprintf(p->name, sizeof p->name, "%.*s.%s", TB_NAME_MAX - 32, node->name, suffix);
    if (len < 0 || len >= (int)sizeof p->name) return fail(net, "param", "parameter name too long");
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    p->is_buffer = is_buffer;
    p->is_int64 = is_int64;
    p->node = net->n_nodes;
    p->trainable = !is_buffer;
    if (is_int64) {
        p->offset = 0; /* lives in the node, not in a block */
    } else if (is_buffer) {
        p->offset = net->buffers_size;
        net->buffers_size += p->count;
    } else {
        p->offset = net->params_size;
        net->params_size += p->count;
    }
    node->n_params++;
    net->n_params++;
    return 0;
}

static int commit_node(tb_net *net)
{
    if (net->failed) return -1;
    net->adding[0] = '\0'; /* a later error before add_node (concat's count) names no layer of this one */
    if (net->nodes[net->n_nodes].kind != TB_LAYER_CONCAT) net->seq_index++; /* torch.cat is no module */
    return net->n_nodes++;
}

/* A state_dict prefix: dot-separated parts of [A-Za-z0-9_] (torch's module names). */
static int valid_prefix(const char *p)
{
    if (!*p) return 1;
    int part = 0;
    for (; *p; p++) {
        if (*p == '.') {
            if (!part) return 0;
            part = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_') {
            part++;
        } else {
            return 0;
        }
    }
    return part > 0;
}

int tb_net_sequential(tb_net *net, const char *prefix)
{
    if (net->failed) return -1;
    if (!prefix) prefix = "";
    if (strlen(prefix) >= TB_NAME_MAX - 48) {
        net->adding[0] = '\0';
        return fail(net, "sequential", "prefix longer than %d characters", TB_NAME_MAX - 48);
    }
    if (!valid_prefix(prefix)) {
        snprintf(net->adding, sizeof net->adding, "%s", prefix);
        fail(net, "sequential", "\"%s\" is not a state_dict prefix (dot-separated names of letters, digits, _)",
             prefix);
        return -1;
    }
    snprintf(net->seq_prefix, sizeof net->seq_prefix, "%s", prefix);
    net->seq_index = 0;
    return 0;
}

const char *tb_net_next_name(const tb_net *net, char *buf, size_t len)
{
    if (net->seq_prefix[0]) snprintf(buf, len, "%s.%d", net->seq_prefix, net->seq_index);
    else snprintf(buf, len, "%d", net->seq_index);
    return buf;
}

static int require_name(tb_net *net, tb_node *n, const char *name)
{
    if (!name || !*name) return fail(net, tb_layer_kind_name(n->kind), "a layer with parameters needs a state_dict name");
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].name[0] && strcmp(net->nodes[i].name, name) == 0)
            return fail(net, tb_layer_kind_name(n->kind), "name already used by layer %d", i);
    return 0;
}

int tb_net_conv2d(tb_net *net, int input, const char *name, int out_c, int kernel, int stride, int pad, int groups,
                  int bias, tb_init_spec init)
{
    tb_node *n = add_node(net, TB_LAYER_CONV2D, name, input);
    if (!n || require_name(net, n, name)) return -1;
    if (n->ndim != 4) return fail(net, "conv2d", "input is %d-D, conv2d needs [n, c, h, w]", n->ndim);
    tb_conv2d_shape *s = &n->u.conv;
    *s = (tb_conv2d_shape){.in_c = n->c, .in_h = n->h, .in_w = n->w, .out_c = out_c, .kh = kernel, .kw = kernel,
                           .stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad, .groups = groups};
    if (stride < 1 || pad < 0)
        return fail(net, "conv2d", "stride %d must be >= 1 and padding %d >= 0", stride, pad);
    if (out_c < 1 || groups < 1 || n->c % groups || out_c % groups)
        return fail(net, "conv2d", "out_channels %d and in_channels must both be divisible by groups %d", out_c, groups);
    if (conv2d_infer(s) != 0)
        return fail(net, "conv2d", "kernel %d with padding %d does not fit the input", kernel, pad);
    n->c = out_c;
    n->h = s->out_h;
    n->w = s->out_w;
    n->has_bias = bias;
    n->init = init;
    int64_t wshape[4] = {out_c, s->in_c / groups, kernel, kernel}, bshape[1] = {out_c};
    if (add_param(net, n, "weight", 4, wshape, 0, 0)) return -1;
    if (bias && add_param(net, n, "bias", 1, bshape, 0, 0)) return -1;
    return commit_node(net);
}

int tb_net_linear(tb_net *net, int input, const char *name, int out_features, int bias, tb_init_spec init)
{
    tb_node *n = add_node(net, TB_LAYER_LINEAR, name, input);
    if (!n || require_name(net, n, name)) return -1;
    if (n->ndim != 2) return fail(net, "linear", "input is %d-D; add a flatten layer before linear", n->ndim);
    if (out_features < 1) return fail(net, "linear", "out_features %d must be >= 1", out_features);
    n->u.linear = (tb_linear_shape){.in_features = n->c, .out_features = out_features};
    int64_t wshape[2] = {out_features, n->c}, bshape[1] = {out_features};
    n->c = out_features;
    n->has_bias = bias;
    n->init = init;
    if (add_param(net, n, "weight", 2, wshape, 0, 0)) return -1;
    if (bias && add_param(net, n, "bias", 1, bshape, 0, 0)) return -1;
    return commit_node(net);
}

/* A layer that keeps its input's shape and has no options; label: its name in
 * errors and summaries (NULL: none), never a state_dict prefix (it has no parameters). */
static int add_elementwise(tb_net *net, tb_layer_kind kind, const char *label, int input)
{
    return add_node(net, kind, label, input) ? commit_node(net) : -1;
}

int tb_net_relu(tb_net *net, int input) { return add_elementwise(net, TB_LAYER_RELU, NULL, input); }

static int add_pool(tb_net *net, tb_layer_kind kind, const char *label, int input, int kernel, int stride, int pad,
                    int ceil_mode, int count_include_pad)
{
    tb_node *n = add_node(net, kind, label, input);
    if (!n) return -1;
    const char *what = tb_layer_kind_name(kind);
    if (n->ndim != 4) return fail(net, what, "input is %d-D, pooling needs [n, c, h, w]", n->ndim);
    if (stride < 1 || kernel < 1) return fail(net, what, "kernel %d and stride %d must be >= 1", kernel, stride);
    tb_pool_shape *s = &n->u.pool;
    *s = (tb_pool_shape){.c = n->c, .in_h = n->h, .in_w = n->w, .kh = kernel, .kw = kernel, .stride_h = stride,
                         .stride_w = stride, .pad_h = pad, .pad_w = pad, .ceil_mode = ceil_mode,
                         .count_include_pad = count_include_pad};
    if (pool_infer(s) != 0)
        return fail(net, what, "kernel %d with padding %d: padding must be at most half the kernel and the output non-empty", kernel, pad);
    n->h = s->out_h;
    n->w = s->out_w;
    return commit_node(net);
}

int tb_net_maxpool(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode)
{
    return add_pool(net, TB_LAYER_MAXPOOL, NULL, input, kernel, stride, pad, ceil_mode, 1);
}

int tb_net_avgpool(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode, int count_include_pad)
{
    return add_pool(net, TB_LAYER_AVGPOOL, NULL, input, kernel, stride, pad, ceil_mode, count_include_pad);
}

int tb_net_adaptive_avgpool(tb_net *net, int input, int out_h, int out_w)
{
    tb_node *n = add_node(net, TB_LAYER_ADAPTIVE_AVGPOOL, NULL, input);
    if (!n) return -1;
    if (n->ndim != 4) return fail(net, "adaptive_avgpool", "input is %d-D, pooling needs [n, c, h, w]", n->ndim);
    if (out_h < 1 || out_w < 1) return fail(net, "adaptive_avgpool", "output size %dx%d must be >= 1", out_h, out_w);
    n->u.pool = (tb_pool_shape){.c = n->c, .in_h = n->h, .in_w = n->w, .out_h = out_h, .out_w = out_w};
    n->h = out_h;
    n->w = out_w;
    return commit_node(net);
}

int tb_net_concat(tb_net *net, const int *inputs, int n_inputs)
{
    if (n_inputs < 1 || n_inputs > TB_MAX_CONCAT) {
        fail(net, "concat", "%d inputs; between 1 and %d allowed", n_inputs, TB_MAX_CONCAT);
        return -1;
    }
    tb_node *n = add_node(net, TB_LAYER_CONCAT, NULL, inputs[0]);
    if (!n) return -1;
    int channels = 0;
    for (int j = 0; j < n_inputs; j++) {
        int ndim, c, h, w;
        if (input_shape(net, inputs[j], &ndim, &c, &h, &w) != 0)
            return fail(net, "concat", "input %d (%d) is not an earlier layer", j, inputs[j]);
        if (ndim != n->ndim || h != n->h || w != n->w)
            return fail(net, "concat", "input %d has a different height/width or rank than input 0", j);
        n->inputs[j] = inputs[j];
        channels += c;
    }
    n->n_inputs = n_inputs;
    n->c = channels;
    return commit_node(net);
}

int tb_net_dropout(tb_net *net, int input, float p)
{
    tb_node *n = add_node(net, TB_LAYER_DROPOUT, NULL, input);
    if (!n) return -1;
    if (!(p >= 0.0f && p <= 1.0f)) return fail(net, "dropout", "p = %g is outside [0, 1]", (double)p);
    n->u.dropout_p = p;
    return commit_node(net);
}

/* The rest of batchnorm and batchnorm1d: checks, shape and the state_dict entries of torch's BatchNorm. */
static int add_batchnorm(tb_net *net, tb_node *n, const char *what, float eps, float momentum)
{
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return fail(net, what, "eps = %g must be > 0 and momentum = %g in [0, 1]", (double)eps, (double)momentum);
    n->u.bn = (tb_bn_shape){.c = n->c, .hw = n->h * n->w, .eps = eps, .momentum = momentum};
    int64_t shape[1] = {n->c};
    if (add_param(net, n, "weight", 1, shape, 0, 0) || add_param(net, n, "bias", 1, shape, 0, 0) ||
        add_param(net, n, "running_mean", 1, shape, 1, 0) || add_param(net, n, "running_var", 1, shape, 1, 0) ||
        add_param(net, n, "num_batches_tracked", 0, shape, 1, 1))
        return -1;
    return commit_node(net);
}

int tb_net_batchnorm(tb_net *net, int input, const char *name, float eps, float momentum)
{
    tb_node *n = add_node(net, TB_LAYER_BATCHNORM, name, input);
    if (!n || require_name(net, n, name)) return -1;
    if (n->ndim != 4)
        return fail(net, "batchnorm", "input is %d-D [n, %d], BatchNorm2d needs [n, c, h, w] (BatchNorm1d takes "
                    "[n, c])", n->ndim, n->c);
    return add_batchnorm(net, n, "batchnorm", eps, momentum);
}

int tb_net_tanh(tb_net *net, int input) { return add_elementwise(net, TB_LAYER_TANH, NULL, input); }
int tb_net_sigmoid(tb_net *net, int input) { return add_elementwise(net, TB_LAYER_SIGMOID, NULL, input); }
int tb_net_identity(tb_net *net, int input) { return add_elementwise(net, TB_LAYER_IDENTITY, NULL, input); }

int tb_net_leaky_relu(tb_net *net, int input, float negative_slope)
{
    tb_node *n = add_node(net, TB_LAYER_LEAKY_RELU, NULL, input);
    if (!n) return -1;
    if (!isfinite(negative_slope))
        return fail(net, "leaky_relu", "negative_slope = %g must be a finite number", (double)negative_slope);
    n->u.negative_slope = negative_slope;
    return commit_node(net);
}

int tb_net_gelu(tb_net *net, int input, int tanh_approx)
{
    tb_node *n = add_node(net, TB_LAYER_GELU, NULL, input);
    if (!n) return -1;
    if (tanh_approx != 0 && tanh_approx != 1)
        return fail(net, "gelu", "approximate = %d must be 0 ('none') or 1 ('tanh')", tanh_approx);
    n->u.tanh_approx = tanh_approx;
    return commit_node(net);
}

int tb_net_batchnorm1d(tb_net *net, int input, const char *name, float eps, float momentum)
{
    tb_node *n = add_node(net, TB_LAYER_BATCHNORM, name, input);
    if (!n || require_name(net, n, name)) return -1;
    if (n->ndim != 2)
        return fail(net, "batchnorm1d", "input is [n, %d, %d, %d]; BatchNorm1d needs [n, c] (after flatten or "
                    "linear; BatchNorm2d takes [n, c, h, w])", n->c, n->h, n->w);
    return add_batchnorm(net, n, "batchnorm1d", eps, momentum);
}

static int add_flatten(tb_net *net, const char *label, int input)
{
    tb_node *n = add_node(net, TB_LAYER_FLATTEN, label, input);
    if (!n) return -1;
    n->c = n->c * n->h * n->w;
    n->h = n->w = 1;
    n->ndim = 2;
    return commit_node(net);
}

int tb_net_flatten(tb_net *net, int input) { return add_flatten(net, NULL, input); }

/* ---- the PyTorch-style builder (tb_*_opts of the plugin header) ------------------------ */

/* Records an error about an option of the layer `label` (its Sequential or given name). */
__attribute__((format(printf, 4, 5))) static int fail_opt(tb_net *net, const char *label, const char *what,
                                                          const char *fmt, ...)
{
    if (net->failed) return -1;
    char tmp[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(net->adding, sizeof net->adding, "%s", label);
    return fail(net, what, "%s", tmp);
}

/* The name of the next layer: the one given, or its Sequential index. */
static const char *opt_name(const tb_net *net, const char *given, char *buf, size_t len)
{
    return given && *given ? given : tb_net_next_name(net, buf, len);
}

/* Names a parameter-free node just added after its Sequential index (errors, summaries). */
static int label_node(tb_net *net, int id, const char *label)
{
    if (id >= 0) snprintf(net->nodes[id].name, sizeof net->nodes[id].name, "%s", label);
    return id;
}

int tb_nn_conv2d(tb_net *net, int input, const tb_conv2d_opts *opts)
{
    const tb_conv2d_opts o = opts ? *opts : (tb_conv2d_opts){0};
    char buf[TB_NAME_MAX];
    const char *name = opt_name(net, o.name, buf, sizeof buf);
    if (o.out_channels < 1) return fail_opt(net, name, "conv2d", "out_channels = %d: required, >= 1", o.out_channels);
    if (o.kernel < 1) return fail_opt(net, name, "conv2d", "kernel = %d: required (kernel_size), >= 1", o.kernel);
    if (o.stride < 0) return fail_opt(net, name, "conv2d", "stride = %d must be >= 1 (0: torch's 1)", o.stride);
    if (o.padding < 0) return fail_opt(net, name, "conv2d", "padding = %d must be >= 0", o.padding);
    if (o.groups < 0) return fail_opt(net, name, "conv2d", "groups = %d must be >= 1 (0: torch's 1)", o.groups);
    if (o.no_bias != 0 && o.no_bias != 1)
        return fail_opt(net, name, "conv2d", "no_bias = %d must be 0 (bias=True) or 1", o.no_bias);
    return tb_net_conv2d(net, input, name, o.out_channels, o.kernel, o.stride ? o.stride : 1, o.padding,
                         o.groups ? o.groups : 1, !o.no_bias, o.init);
}

int tb_nn_linear(tb_net *net, int input, const tb_linear_opts *opts)
{
    const tb_linear_opts o = opts ? *opts : (tb_linear_opts){0};
    char buf[TB_NAME_MAX];
    const char *name = opt_name(net, o.name, buf, sizeof buf);
    if (o.out_features < 1)
        return fail_opt(net, name, "linear", "out_features = %d: required, >= 1", o.out_features);
    if (o.no_bias != 0 && o.no_bias != 1)
        return fail_opt(net, name, "linear", "no_bias = %d must be 0 (bias=True) or 1", o.no_bias);
    return tb_net_linear(net, input, name, o.out_features, !o.no_bias, o.init);
}

static int nn_batchnorm(tb_net *net, int input, const tb_batchnorm_opts *opts, int dims)
{
    const tb_batchnorm_opts o = opts ? *opts : (tb_batchnorm_opts){0};
    char buf[TB_NAME_MAX];
    const char *name = opt_name(net, o.name, buf, sizeof buf);
    const char *what = dims == 1 ? "batchnorm1d" : "batchnorm2d";
    if (!(o.eps >= 0.0f)) return fail_opt(net, name, what, "eps = %g must be > 0 (0: torch's 1e-5)", (double)o.eps);
    if (!(o.momentum >= 0.0f && o.momentum <= 1.0f))
        return fail_opt(net, name, what, "momentum = %g must be in (0, 1] (0: torch's 0.1)", (double)o.momentum);
    const float eps = o.eps > 0.0f ? o.eps : 1e-5f, momentum = o.momentum > 0.0f ? o.momentum : 0.1f;
    return dims == 1 ? tb_net_batchnorm1d(net, input, name, eps, momentum)
                     : tb_net_batchnorm(net, input, name, eps, momentum);
}

int tb_nn_batchnorm2d(tb_net *net, int input, const tb_batchnorm_opts *opts) { return nn_batchnorm(net, input, opts, 2); }
int tb_nn_batchnorm1d(tb_net *net, int input, const tb_batchnorm_opts *opts) { return nn_batchnorm(net, input, opts, 1); }

/* The pools' common checks; fills *stride with its default (the kernel). */
static int pool_opts(tb_net *net, const char *label, const char *what, int kernel, int *stride, int padding,
                     int ceil_mode)
{
    if (kernel < 1) return fail_opt(net, label, what, "kernel = %d: required (kernel_size), >= 1", kernel);
    if (*stride < 0) return fail_opt(net, label, what, "stride = %d must be >= 1 (0: the kernel, torch's None)", *stride);
    if (padding < 0) return fail_opt(net, label, what, "padding = %d must be >= 0", padding);
    if (ceil_mode != 0 && ceil_mode != 1) return fail_opt(net, label, what, "ceil_mode = %d must be 0 or 1", ceil_mode);
    if (*stride == 0) *stride = kernel;
    return 0;
}

int tb_nn_maxpool2d(tb_net *net, int input, const tb_maxpool2d_opts *opts)
{
    const tb_maxpool2d_opts o = opts ? *opts : (tb_maxpool2d_opts){0};
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    int stride = o.stride;
    if (pool_opts(net, label, "maxpool2d", o.kernel, &stride, o.padding, o.ceil_mode)) return -1;
    return add_pool(net, TB_LAYER_MAXPOOL, label, input, o.kernel, stride, o.padding, o.ceil_mode, 1);
}

int tb_nn_avgpool2d(tb_net *net, int input, const tb_avgpool2d_opts *opts)
{
    const tb_avgpool2d_opts o = opts ? *opts : (tb_avgpool2d_opts){0};
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    int stride = o.stride;
    if (pool_opts(net, label, "avgpool2d", o.kernel, &stride, o.padding, o.ceil_mode)) return -1;
    if (o.exclude_pad != 0 && o.exclude_pad != 1)
        return fail_opt(net, label, "avgpool2d", "exclude_pad = %d must be 0 or 1 (count_include_pad=False)",
                        o.exclude_pad);
    return add_pool(net, TB_LAYER_AVGPOOL, label, input, o.kernel, stride, o.padding, o.ceil_mode, !o.exclude_pad);
}

int tb_nn_adaptive_avgpool2d(tb_net *net, int input, const tb_adaptive_avgpool2d_opts *opts)
{
    const tb_adaptive_avgpool2d_opts o = opts ? *opts : (tb_adaptive_avgpool2d_opts){0};
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    if (o.out_h < 1)
        return fail_opt(net, label, "adaptive_avgpool2d", "out_h = %d: required (output_size), >= 1", o.out_h);
    if (o.out_w < 0) return fail_opt(net, label, "adaptive_avgpool2d", "out_w = %d must be >= 1 (0: out_h)", o.out_w);
    return label_node(net, tb_net_adaptive_avgpool(net, input, o.out_h, o.out_w ? o.out_w : o.out_h), label);
}

int tb_nn_dropout(tb_net *net, int input, const tb_dropout_opts *opts)
{
    const tb_dropout_opts o = opts ? *opts : (tb_dropout_opts){0};
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    if (!(o.p >= 0.0f && o.p <= 1.0f))
        return fail_opt(net, label, "dropout", "p = %g must be in (0, 1] (0: torch's 0.5)", (double)o.p);
    return label_node(net, tb_net_dropout(net, input, o.p > 0.0f ? o.p : 0.5f), label);
}

int tb_nn_leaky_relu(tb_net *net, int input, const tb_leaky_relu_opts *opts)
{
    const tb_leaky_relu_opts o = opts ? *opts : (tb_leaky_relu_opts){0};
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    if (!isfinite(o.negative_slope))
        return fail_opt(net, label, "leaky_relu", "negative_slope = %g must be a finite number",
                        (double)o.negative_slope);
    return label_node(net, tb_net_leaky_relu(net, input, o.negative_slope != 0.0f ? o.negative_slope : 0.01f), label);
}

int tb_nn_gelu(tb_net *net, int input, const tb_gelu_opts *opts)
{
    const char *a = opts && opts->approximate ? opts->approximate : "none";
    char label[TB_NAME_MAX];
    tb_net_next_name(net, label, sizeof label);
    int tanh_approx;
    if (strcmp(a, "none") == 0) tanh_approx = 0;
    else if (strcmp(a, "tanh") == 0) tanh_approx = 1;
    else return fail_opt(net, label, "gelu", "approximate = \"%.40s\" must be \"none\" or \"tanh\"", a);
    return label_node(net, tb_net_gelu(net, input, tanh_approx), label);
}

static int nn_elementwise(tb_net *net, tb_layer_kind kind, int input)
{
    char label[TB_NAME_MAX];
    return add_elementwise(net, kind, tb_net_next_name(net, label, sizeof label), input);
}

int tb_nn_relu(tb_net *net, int input) { return nn_elementwise(net, TB_LAYER_RELU, input); }
int tb_nn_tanh(tb_net *net, int input) { return nn_elementwise(net, TB_LAYER_TANH, input); }
int tb_nn_sigmoid(tb_net *net, int input) { return nn_elementwise(net, TB_LAYER_SIGMOID, input); }
int tb_nn_identity(tb_net *net, int input) { return nn_elementwise(net, TB_LAYER_IDENTITY, input); }
int tb_nn_flatten(tb_net *net, int input)
{
    char label[TB_NAME_MAX];
    return add_flatten(net, tb_net_next_name(net, label, sizeof label), input);
}

/* ---- placement ----------------------------------------------------------- */

/* Forward FLOPs of one sample through node n (conv2d and linear; 0 for the rest). */
static double node_flops(const tb_node *n)
{
    if (n->kind == TB_LAYER_CONV2D) {
        const tb_conv2d_shape *s = &n->u.conv;
        return 2.0 * s->out_c * s->out_h * s->out_w * (s->in_c / s->groups) * s->kh * s->kw;
    }
    if (n->kind == TB_LAYER_LINEAR) return 2.0 * n->u.linear.in_features * n->u.linear.out_features;
    return 0;
}

static size_t node_size(const tb_node *n) { return (size_t)n->c * n->h * n->w; }

static size_t align_floats(size_t x) { return (x + 15) & ~(size_t)15; } /* 64 bytes */

static float *param_ptr(tb_net *net, int pi, int grad)
{
    const tb_param *p = &net->params[pi];
    if (p->is_int64) return NULL;
    if (p->is_buffer) return net->buffer_block + p->offset;
    return (grad ? net->grad_block : net->param_block) + p->offset;
}

tb_status tb_net_check(const tb_net *net, tb_err *err)
{
    if (net->failed) return tb_fail(err, TB_EINVAL, "%s", net->build_err.msg);
    if (net->n_nodes == 0) return tb_fail(err, TB_EINVAL, "network has no layers");
    const tb_node *last = &net->nodes[net->n_nodes - 1];
    if (last->ndim != 2)
        return tb_fail(err, TB_EINVAL, "the last layer (%s) outputs [n, %d, %d, %d]; it must be [n, classes]: end "
                       "with flatten or linear", tb_layer_kind_name(last->kind), last->c, last->h, last->w);
    return TB_OK;
}

/* Batch-minor pays where convolutions work on small planes: a 7x7 or 3x3
 * plane makes a per-image gemm of 49 or 9 columns, the whole batch one of
 * thousands (SqueezeNet at 64 px: 1.2x to 1.4x a step on this machine). From
 * about 32x32 up a single image's gemm is large already and the long rows of
 * [c, n, h, w] cost a little (SqueezeNet 1.0 at 224 px: 0.9x). So a network
 * takes it when most of its convolution FLOPs are on planes under 32x32. */
#define BATCH_MINOR_MAX_PLANE 1024
static int prefers_batch_minor(const tb_net *net)
{
    double small = 0, all = 0;
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *n = &net->nodes[k];
        if (n->kind != TB_LAYER_CONV2D) continue;
        const double flops = node_flops(n);
        all += flops;
        if (n->u.conv.out_h * n->u.conv.out_w < BATCH_MINOR_MAX_PLANE) small += flops;
    }
    return all > 0 && 2 * small > all;
}

/* How many input slots of the network's layers read node id. */
static int uses_of(const tb_net *net, int id)
{
    int uses = 0;
    for (int m = 0; m < net->n_nodes; m++)
        for (int q = 0; q < net->nodes[m].n_inputs; q++) uses += net->nodes[m].inputs[q] == id;
    return uses;
}

/* Which concats take their inputs' outputs in place (see tb_node.in_concat):
 * batch-minor only ([c, n, h, w] makes each input's block a contiguous slice
 * of the concat's), and only when every input is a distinct layer that feeds
 * nothing but this concat. */
static void plan_concats_in_place(tb_net *net)
{
    for (int k = 0; k < net->n_nodes; k++) {
        net->nodes[k].in_concat = -1;
        net->nodes[k].concat_in_place = 0;
    }
    if (!net->batch_minor) return;
    for (int k = 0; k < net->n_nodes; k++) {
        tb_node *cat = &net->nodes[k];
        if (cat->kind != TB_LAYER_CONCAT || cat->ndim != 4) continue;
        int ok = 1;
        for (int j = 0; j < cat->n_inputs && ok; j++) {
            const int id = cat->inputs[j];
            /* another consumer, or this concat twice */
            if (id == TB_NET_INPUT || net->nodes[id].in_concat >= 0 || uses_of(net, id) != 1) ok = 0;
        }
        if (!ok) continue;
        int c0 = 0;
        for (int j = 0; j < cat->n_inputs; j++) {
            tb_node *in = &net->nodes[cat->inputs[j]];
            in->in_concat = k;
            in->slice_c = c0;
            c0 += in->c;
        }
        cat->concat_in_place = 1;
    }
}

/* Which ReLUs run in place over their producer (tb_node.relu_over): on
 * backends with the fused backward (the CPU's), producers whose only
 * consumer is the ReLU and whose backward never reads their own output. */
static void plan_relus_in_place(tb_net *net)
{
    for (int k = 0; k < net->n_nodes; k++) {
        net->nodes[k].relu_over = -1;
        if (net->nodes[k].kind == TB_LAYER_CONV2D) net->nodes[k].u.conv.relu = 0;
        if (net->nodes[k].kind == TB_LAYER_BATCHNORM) net->nodes[k].u.bn.relu = 0;
    }
    if (!net->be->ops->conv2d_relu_backward) return;
    for (int k = 0; k < net->n_nodes; k++) {
        tb_node *relu = &net->nodes[k];
        const int id = relu->inputs[0];
        if (relu->kind != TB_LAYER_RELU || id == TB_NET_INPUT) continue;
        const tb_layer_kind kind = net->nodes[id].kind;
        if (kind != TB_LAYER_CONV2D && kind != TB_LAYER_LINEAR && kind != TB_LAYER_BATCHNORM) continue;
        if (uses_of(net, id) != 1) continue;
        relu->relu_over = id;
        /* a convolution or batch norm applies it as it writes its output (CPU kernels) */
        if (kind == TB_LAYER_CONV2D) net->nodes[id].u.conv.relu = 1;
        if (kind == TB_LAYER_BATCHNORM) net->nodes[id].u.bn.relu = 1;
    }
}

/* Producers of in-place ReLUs write where their ReLU's output is (after
 * the concat slices, which may have moved it). */
static void place_relu_producers(tb_net *net)
{
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *relu = &net->nodes[k];
        if (relu->relu_over < 0) continue;
        net->nodes[relu->relu_over].out = relu->out;
        net->nodes[relu->relu_over].dout = relu->dout;
    }
}

static int is_relu_producer(const tb_net *net, int id)
{
    for (int k = id + 1; k < net->n_nodes; k++)
        if (net->nodes[k].relu_over == id) return 1;
    return 0;
}

/* Whether the producer itself applies its in-place ReLU (the plan's flags) */
static int applies_relu(const tb_node *producer)
{
    return (producer->kind == TB_LAYER_CONV2D && producer->u.conv.relu) ||
           (producer->kind == TB_LAYER_BATCHNORM && producer->u.bn.relu);
}

/* Points the outputs (and gradients) of in-place concat inputs at their
 * slices for a batch of n: a slice starts at channel * n * h * w. */
static void place_concat_slices(tb_net *net, int n)
{
    for (int k = net->n_nodes - 1; k >= 0; k--) { /* a concat inside a concat is placed before its inputs */
        tb_node *nd = &net->nodes[k];
        if (nd->in_concat < 0) continue;
        const tb_node *cat = &net->nodes[nd->in_concat];
        const size_t at = (size_t)nd->slice_c * n * nd->h * nd->w;
        nd->out = cat->out + at;
        nd->dout = cat->dout + at;
    }
    place_relu_producers(net);
}

tb_status tb_net_build(tb_net *net, tb_backend *be, int max_batch, tb_err *err)
{
    if (net->be) return tb_fail(err, TB_EINVAL, "network is already built");
    tb_status checked = tb_net_check(net, err);
    if (checked != TB_OK) return checked;
    if (max_batch < 1) return tb_fail(err, TB_EINVAL, "batch size %d must be >= 1", max_batch);
    const tb_node *last = &net->nodes[net->n_nodes - 1];

    net->be = be;
    net->max_batch = max_batch;
    const tb_backend_ops *ops = be->ops;
    net->batch_minor = 0;
    if (ops->conv2d_cn_workspace_floats && ops->conv2d_cn_forward && ops->conv2d_cn_backward && ops->swap_outer_axes)
        net->batch_minor = prefers_batch_minor(net);
    plan_concats_in_place(net);
    plan_relus_in_place(net);
    const size_t input_floats = (size_t)max_batch * net->in_c * net->in_h * net->in_w;
    size_t act = 0, aux = 0, ws = 0;
    for (int k = 0; k < net->n_nodes; k++) {
        tb_node *n = &net->nodes[k];
        n->act_off = act;
        if (!is_relu_producer(net, k)) act += align_floats((size_t)max_batch * node_size(n));
        n->aux_off = aux;
        size_t bytes = 0;
        if (n->kind == TB_LAYER_MAXPOOL) bytes = sizeof(int32_t) * max_batch * node_size(n);
        if (n->kind == TB_LAYER_DROPOUT) bytes = (size_t)max_batch * node_size(n);
        if (n->kind == TB_LAYER_BATCHNORM) bytes = 2 * sizeof(float) * n->c;
        aux += (bytes + 63) & ~(size_t)63;
        if (n->kind == TB_LAYER_CONV2D) {
            size_t need = net->batch_minor ? ops->conv2d_cn_workspace_floats(be, &n->u.conv, max_batch)
                                           : ops->conv2d_workspace_floats(be, &n->u.conv, max_batch);
            if (need > ws) ws = need;
        }
    }
    net->act_size = act;
    net->aux_bytes = aux;
    net->ws_size = ws;
    const size_t dl = (size_t)max_batch * last->c;
    const double need = (double)sizeof(float) * (2.0 * (double)net->params_size + (double)net->buffers_size +
                                                 2.0 * (double)act + (double)ws + (double)dl +
                                                 (net->batch_minor ? (double)input_floats : 0.0)) + (double)aux;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    const int on_host = !be->device[0] || strcmp(be->device, "cpu") == 0; /* a GPU's alloc says for itself */
    if (on_host && have > 0 && need > 0.9 * have) {
        net->be = NULL;
        return tb_fail(err, TB_ENOMEM, "the network needs %.1f GiB for batches of %d (activations %.1f GiB); this "
                       "machine has %.1f GiB: use a smaller batch or input", need / 1073741824.0, max_batch,
                       2.0 * sizeof(float) * (double)act / 1073741824.0, have / 1073741824.0);
    }
    const tb_backend_ops *o = be->ops;
    struct {
        void **ptr;
        size_t bytes;
    } blocks[] = {{(void **)&net->param_block, sizeof(float) * (net->params_size ? net->params_size : 1)},
                  {(void **)&net->grad_block, sizeof(float) * (net->params_size ? net->params_size : 1)},
                  {(void **)&net->buffer_block, sizeof(float) * (net->buffers_size ? net->buffers_size : 1)},
                  {(void **)&net->act_block, sizeof(float) * act},
                  {(void **)&net->act_grad_block, sizeof(float) * act},
                  {&net->aux_block, aux ? aux : 64},
                  {(void **)&net->workspace, sizeof(float) * (ws ? ws : 1)},
                  {(void **)&net->dlogits, sizeof(float) * dl},
                  {(void **)&net->input_cn, net->batch_minor ? sizeof(float) * input_floats : 0}};
    for (size_t b = 0; b < TB_ARRAY_LEN(blocks); b++) {
        if (!blocks[b].bytes) continue; /* input_cn of a network that stays NCHW */
        *blocks[b].ptr = o->alloc(be, blocks[b].bytes);
        if (!*blocks[b].ptr) {
            for (size_t k = 0; k < b; k++) {
                o->free(be, *blocks[k].ptr);
                *blocks[k].ptr = NULL;
            }
            net->be = NULL; /* not built: a later tb_net_build may retry */
            tb_status failed = tb_backend_check(be, err); /* e.g. cuDNN has no algorithm: not memory */
            if (failed) return failed;
            return tb_fail(err, TB_ENOMEM, "out of memory placing the network on %s (%.2f GiB for batch %d)%s",
                           be->device[0] ? be->device : "the backend", need / 1073741824.0, max_batch,
                           on_host ? "" : ": use a smaller batch or input, or raise train.gpu_memory_mib");
        }
    }
    net->grad_written = calloc((size_t)net->n_nodes, 1);
    net->prof = calloc((size_t)net->n_nodes * 2, sizeof(double));
    if (!net->prof || !net->grad_written)
        return tb_fail(err, TB_ENOMEM, "out of memory placing the network");

    for (int k = 0; k < net->n_nodes; k++) {
        tb_node *n = &net->nodes[k];
        n->out = net->act_block + n->act_off;
        n->dout = net->act_grad_block + n->act_off;
        n->aux = (char *)net->aux_block + n->aux_off;
        if (n->kind == TB_LAYER_CONV2D || n->kind == TB_LAYER_LINEAR || n->kind == TB_LAYER_BATCHNORM) {
            n->weight = param_ptr(net, n->param_first, 0);
            n->dweight = param_ptr(net, n->param_first, 1);
            if (n->kind == TB_LAYER_BATCHNORM || n->has_bias) {
                n->bias = param_ptr(net, n->param_first + 1, 0);
                n->dbias = param_ptr(net, n->param_first + 1, 1);
            }
            if (n->kind == TB_LAYER_BATCHNORM) {
                n->running_mean = param_ptr(net, n->param_first + 2, 0);
                n->running_var = param_ptr(net, n->param_first + 3, 0);
            }
        }
    }
    place_relu_producers(net);
    tb_net_init_params(net, 0);
    return TB_OK;
}

/* ---- initialisation -------------------------------------------------------- */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void tb_net_init_params(tb_net *net, uint64_t seed)
{
    net->seed = seed;
    size_t max_count = 1;
    for (int i = 0; i < net->n_params; i++)
        if (net->params[i].count > max_count) max_count = net->params[i].count;
    float *host = malloc(sizeof(float) * max_count);
    if (!host) return; /* tb_net_build has just allocated far more; treat as impossible */
    for (int i = 0; i < net->n_params; i++) {
        tb_param *p = &net->params[i];
        tb_node *n = &net->nodes[p->node];
        if (p->is_int64) {
            n->num_batches_tracked = 0;
            continue;
        }
        const char *suffix = strrchr(p->name, '.') + 1;
        tb_rng r;
        tb_rng_init(&r, seed, TB_STREAM_INIT, fnv1a(p->name));
        if (n->kind == TB_LAYER_BATCHNORM) {
            float v = strcmp(suffix, "weight") == 0 || strcmp(suffix, "running_var") == 0 ? 1.0f : 0.0f;
            for (size_t k = 0; k < p->count; k++) host[k] = v;
        } else {
            int fan_in, fan_out;
            if (n->kind == TB_LAYER_CONV2D) {
                const tb_conv2d_shape *s = &n->u.conv;
                fan_in = s->in_c / s->groups * s->kh * s->kw;
                fan_out = s->out_c * s->kh * s->kw;
            } else {
                fan_in = n->u.linear.in_features;
                fan_out = n->u.linear.out_features;
            }
            int is_bias = strcmp(suffix, "bias") == 0;
            tb_init_kind kind = is_bias ? n->init.bias : n->init.weight;
            float arg = is_bias ? n->init.bias_arg : n->init.weight_arg;
            tb_init_fill(host, p->count, kind, arg, fan_in, fan_out, is_bias, &r);
        }
        net->be->ops->to_device(net->be, param_ptr(net, i, 0), host, sizeof(float) * p->count);
    }
    free(host);
}

/* ---- passes ------------------------------------------------------------------ */

static double profile_start(tb_backend *be)
{
    be->ops->synchronize(be);
    return tb_now();
}

static const float *node_input(const tb_net *net, const float *x, int id)
{
    if (id == TB_NET_INPUT) return net->batch_minor ? net->input_cn : x;
    return net->nodes[id].out;
}

/* ---- batch-minor activations: per-plane and per-channel layers see the
 * batch folded into their other axes, so they need no kernels of their own ---- */

static int is_batch_minor(const tb_net *net, const tb_node *nd) { return net->batch_minor && nd->ndim == 4; }

/* A pooling over [c, n, h, w] is one over n*c planes of one sample. */
static tb_pool_shape pool_call(const tb_net *net, const tb_node *nd, int *n)
{
    tb_pool_shape s = nd->u.pool;
    if (is_batch_minor(net, nd)) {
        s.c *= *n;
        *n = 1;
    }
    return s;
}

/* BatchNorm2d over [c, n, h, w]: each channel's n*h*w values are contiguous,
 * in the order [n, c, h, w] visits them, so the sums are the same sums. */
static tb_bn_shape bn_call(const tb_net *net, const tb_node *nd, int *n)
{
    tb_bn_shape s = nd->u.bn;
    if (is_batch_minor(net, nd)) {
        s.hw *= *n;
        *n = 1;
    }
    return s;
}

/* The input of a flatten, [c, n, h*w], when it is batch-minor. */
static int flatten_from_batch_minor(const tb_net *net, const tb_node *nd, int *c, size_t *hw)
{
    int ndim, h, w;
    if (!net->batch_minor || input_shape(net, nd->inputs[0], &ndim, c, &h, &w) != 0 || ndim != 4) return 0;
    *hw = (size_t)h * w;
    return 1;
}

void tb_net_forward(tb_net *net, const float *x, int n, int train, uint64_t step)
{
    tb_backend *be = net->be;
    const tb_backend_ops *o = be->ops;
    net->input = x;
    if (net->batch_minor) {
        o->swap_outer_axes(be, net->input_cn, x, n, net->in_c, (size_t)net->in_h * net->in_w, 0);
        place_concat_slices(net, n);
    }
    for (int k = 0; k < net->n_nodes; k++) {
        tb_node *nd = &net->nodes[k];
        const float *in = node_input(net, x, nd->inputs[0]);
        double t0 = net->profiling ? profile_start(be) : 0;
        size_t count = (size_t)n * node_size(nd);
        int folded_n = n;
        switch (nd->kind) {
        case TB_LAYER_CONV2D:
            if (is_batch_minor(net, nd))
                o->conv2d_cn_forward(be, nd->out, in, nd->weight, nd->bias, &nd->u.conv, n, net->workspace);
            else
                o->conv2d_forward(be, nd->out, in, nd->weight, nd->bias, &nd->u.conv, n, net->workspace);
            break;
        case TB_LAYER_LINEAR: o->linear_forward(be, nd->out, in, nd->weight, nd->bias, &nd->u.linear, n); break;
        case TB_LAYER_RELU:
            if (nd->relu_over >= 0 && applies_relu(&net->nodes[nd->relu_over])) break;
            o->relu_forward(be, nd->out, in, count);
            break;
        case TB_LAYER_MAXPOOL: {
            tb_pool_shape ps = pool_call(net, nd, &folded_n);
            o->maxpool_forward(be, nd->out, nd->aux, in, &ps, folded_n);
            break;
        }
        case TB_LAYER_AVGPOOL: {
            tb_pool_shape ps = pool_call(net, nd, &folded_n);
            o->avgpool_forward(be, nd->out, in, &ps, folded_n);
            break;
        }
        case TB_LAYER_ADAPTIVE_AVGPOOL: {
            tb_pool_shape ps = pool_call(net, nd, &folded_n);
            o->adaptive_avgpool_forward(be, nd->out, in, &ps, folded_n);
            break;
        }
        case TB_LAYER_CONCAT: {
            if (nd->concat_in_place) break; /* its inputs wrote their slices */
            const float *ins[TB_MAX_CONCAT];
            int channels[TB_MAX_CONCAT];
            for (int j = 0; j < nd->n_inputs; j++) {
                ins[j] = node_input(net, x, nd->inputs[j]);
                channels[j] = nd->inputs[j] == TB_NET_INPUT ? net->in_c : net->nodes[nd->inputs[j]].c;
            }
            if (is_batch_minor(net, nd)) /* [c, n*h*w]: one sample of longer planes */
                o->concat_forward(be, nd->out, ins, channels, nd->n_inputs, n * nd->h * nd->w, 1);
            else
                o->concat_forward(be, nd->out, ins, channels, nd->n_inputs, nd->h * nd->w, n);
            break;
        }
        case TB_LAYER_DROPOUT:
            if (train && nd->u.dropout_p > 0.0f && is_batch_minor(net, nd)) {
                /* masks are drawn by [n, c, h, w] position, as on every backend:
                 * through [n, c, h, w] in this node's gradient buffer (free until
                 * backward), the mask kept in that order */
                const int c = nd->c;
                const size_t hw = (size_t)nd->h * nd->w;
                o->swap_outer_axes(be, nd->dout, in, c, n, hw, 0);
                o->dropout_forward(be, nd->dout, nd->aux, nd->dout, count, nd->u.dropout_p, net->seed, (uint32_t)k,
                                   step);
                o->swap_outer_axes(be, nd->out, nd->dout, n, c, hw, 0);
            } else if (train && nd->u.dropout_p > 0.0f) {
                o->dropout_forward(be, nd->out, nd->aux, in, count, nd->u.dropout_p, net->seed, (uint32_t)k, step);
            } else {
                o->copy_or_add(be, nd->out, in, count, 0);
            }
            break;
        case TB_LAYER_BATCHNORM: {
            float *saved = nd->aux;
            tb_bn_shape bs = bn_call(net, nd, &folded_n);
            if (train) {
                o->batchnorm_forward_train(be, nd->out, saved, saved + nd->c, nd->running_mean, nd->running_var, in,
                                           nd->weight, nd->bias, &bs, folded_n);
                nd->num_batches_tracked++;
            } else {
                o->batchnorm_forward_eval(be, nd->out, in, nd->weight, nd->bias, nd->running_mean, nd->running_var,
                                          &bs, folded_n);
            }
            break;
        }
        case TB_LAYER_FLATTEN: {
            int c;
            size_t hw;
            if (flatten_from_batch_minor(net, nd, &c, &hw)) o->swap_outer_axes(be, nd->out, in, c, n, hw, 0);
            else o->copy_or_add(be, nd->out, in, count, 0);
            break;
        }
        case TB_LAYER_IDENTITY: o->copy_or_add(be, nd->out, in, count, 0); break;
        case TB_LAYER_TANH: o->tanh_forward(be, nd->out, in, count); break;
        case TB_LAYER_SIGMOID: o->sigmoid_forward(be, nd->out, in, count); break;
        case TB_LAYER_LEAKY_RELU: o->leaky_relu_forward(be, nd->out, in, count, nd->u.negative_slope); break;
        case TB_LAYER_GELU: o->gelu_forward(be, nd->out, in, count, nd->u.tanh_approx); break;
        }
        if (net->profiling) net->prof[2 * k] += profile_start(be) - t0;
    }
}

/* Where a backward writes the gradient of input `id`, and whether it adds to
 * what an earlier consumer wrote. NULL for the network input. */
static float *input_grad(tb_net *net, int id, int *accumulate)
{
    *accumulate = 0;
    if (id == TB_NET_INPUT) return NULL;
    *accumulate = net->grad_written[id];
    net->grad_written[id] = 1;
    return net->nodes[id].dout;
}

static void backward_node(tb_net *net, tb_node *nd, int n);

void tb_net_backward(tb_net *net, const float *dlogits, int n)
{
    tb_backend *be = net->be;
    const tb_backend_ops *o = be->ops;
    memset(net->grad_written, 0, (size_t)net->n_nodes);
    if (net->batch_minor) place_concat_slices(net, n);
    tb_node *last = &net->nodes[net->n_nodes - 1];
    o->copy_or_add(be, last->dout, dlogits, (size_t)n * last->c, 0);
    net->grad_written[net->n_nodes - 1] = 1;

    for (int k = net->n_nodes - 1; k >= 0; k--) {
        tb_node *nd = &net->nodes[k];
        if (!net->grad_written[k]) continue; /* nothing downstream uses this node */
        double t0 = net->profiling ? profile_start(be) : 0;
        backward_node(net, nd, n);
        if (net->profiling) net->prof[2 * k + 1] += profile_start(be) - t0;
    }
}

/* One node's backward: input gradients (assigned or added) and parameter gradients. */
static void backward_node(tb_net *net, tb_node *nd, int n)
{
    tb_backend *be = net->be;
    const tb_backend_ops *o = be->ops;
    size_t count = (size_t)n * node_size(nd);
    if (nd->kind == TB_LAYER_CONCAT) {
        float *dins[TB_MAX_CONCAT];
        int channels[TB_MAX_CONCAT], acc[TB_MAX_CONCAT];
        for (int j = 0; j < nd->n_inputs; j++) {
            int id = nd->inputs[j];
            channels[j] = id == TB_NET_INPUT ? net->in_c : net->nodes[id].c;
            dins[j] = input_grad(net, id, &acc[j]);
        }
        if (nd->concat_in_place) return; /* the inputs' gradients are slices of this one's */
        if (is_batch_minor(net, nd))
            o->concat_backward(be, dins, nd->dout, channels, nd->n_inputs, n * nd->h * nd->w, 1, acc);
        else
            o->concat_backward(be, dins, nd->dout, channels, nd->n_inputs, nd->h * nd->w, n, acc);
        return;
    }
    const float *in = node_input(net, net->input, nd->inputs[0]);
    int acc;
    float *din = input_grad(net, nd->inputs[0], &acc);
    switch (nd->kind) {
    case TB_LAYER_CONV2D: {
        float *dbias = nd->u.conv.relu ? NULL : nd->dbias; /* its in-place ReLU added it */
        if (is_batch_minor(net, nd))
            o->conv2d_cn_backward(be, din, nd->dweight, dbias, nd->dout, in, nd->weight, &nd->u.conv, n, acc,
                                  net->workspace);
        else
            o->conv2d_backward(be, din, nd->dweight, dbias, nd->dout, in, nd->weight, &nd->u.conv, n, acc,
                               net->workspace);
        break;
    }
    case TB_LAYER_LINEAR:
        o->linear_backward(be, din, nd->dweight, nd->dbias, nd->dout, in, nd->weight, &nd->u.linear, n, acc);
        break;
    case TB_LAYER_BATCHNORM: {
        const float *saved = nd->aux;
        int folded_n = n;
        tb_bn_shape bs = bn_call(net, nd, &folded_n);
        o->batchnorm_backward(be, din, nd->dweight, nd->dbias, nd->dout, in, nd->weight, saved, saved + nd->c, &bs,
                              folded_n, acc);
        break;
    }
    default: {
        if (!din) break; /* parameter-free layer on the input: nothing to compute */
        int folded_n = n, c;
        size_t hw;
        tb_pool_shape ps = nd->kind == TB_LAYER_MAXPOOL || nd->kind == TB_LAYER_AVGPOOL ||
                                   nd->kind == TB_LAYER_ADAPTIVE_AVGPOOL
                               ? pool_call(net, nd, &folded_n)
                               : (tb_pool_shape){0};
        switch (nd->kind) {
        case TB_LAYER_RELU:
            if (nd->relu_over >= 0 && net->nodes[nd->relu_over].kind == TB_LAYER_CONV2D) {
                /* in place (din is nd->dout), with the convolution's bias gradient,
                 * which its own backward then skips (backward_node's conv case) */
                tb_node *conv = &net->nodes[nd->relu_over];
                int folded = is_batch_minor(net, conv);
                o->conv2d_relu_backward(be, din, nd->out, conv->dbias, &conv->u.conv, n, folded);
            } else {
                o->relu_backward(be, din, nd->dout, nd->out, count, acc);
            }
            break;
        case TB_LAYER_MAXPOOL: o->maxpool_backward(be, din, nd->dout, nd->aux, &ps, folded_n, acc); break;
        case TB_LAYER_AVGPOOL: o->avgpool_backward(be, din, nd->dout, &ps, folded_n, acc); break;
        case TB_LAYER_ADAPTIVE_AVGPOOL: o->adaptive_avgpool_backward(be, din, nd->dout, &ps, folded_n, acc); break;
        case TB_LAYER_DROPOUT:
            if (nd->u.dropout_p > 0.0f && is_batch_minor(net, nd)) {
                /* the mask is in [n, c, h, w] order (forward): the gradient goes
                 * through that order in this node's output buffer, which no
                 * backward reads any more */
                const size_t plane = (size_t)nd->h * nd->w;
                o->swap_outer_axes(be, nd->out, nd->dout, nd->c, n, plane, 0);
                o->dropout_backward(be, nd->out, nd->out, nd->aux, count, nd->u.dropout_p, 0);
                o->swap_outer_axes(be, din, nd->out, n, nd->c, plane, acc);
            } else if (nd->u.dropout_p > 0.0f) {
                o->dropout_backward(be, din, nd->dout, nd->aux, count, nd->u.dropout_p, acc);
            } else {
                o->copy_or_add(be, din, nd->dout, count, acc);
            }
            break;
        case TB_LAYER_FLATTEN:
            if (flatten_from_batch_minor(net, nd, &c, &hw)) o->swap_outer_axes(be, din, nd->dout, n, c, hw, acc);
            else o->copy_or_add(be, din, nd->dout, count, acc);
            break;
        case TB_LAYER_IDENTITY: o->copy_or_add(be, din, nd->dout, count, acc); break;
        case TB_LAYER_TANH: o->tanh_backward(be, din, nd->dout, nd->out, count, acc); break;
        case TB_LAYER_SIGMOID: o->sigmoid_backward(be, din, nd->dout, nd->out, count, acc); break;
        case TB_LAYER_LEAKY_RELU:
            o->leaky_relu_backward(be, din, nd->dout, in, count, nd->u.negative_slope, acc);
            break;
        case TB_LAYER_GELU: o->gelu_backward(be, din, nd->dout, in, count, nd->u.tanh_approx, acc); break;
        default: break;
        }
    }
    }
}

void tb_net_set_profiling(tb_net *net, int on)
{
    net->profiling = on;
    if (net->prof) memset(net->prof, 0, sizeof(double) * 2 * net->n_nodes);
}

void tb_net_profile_report(const tb_net *net, int steps, int batch, double peak_gflops, char *buf, size_t len)
{
    size_t used = 0;
    double total = 0;
    if (len) buf[0] = '\0';
    for (int k = 0; k < 2 * net->n_nodes; k++) total += net->prof[k];
    if (steps < 1 || total <= 0) return;
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *n = &net->nodes[k];
        double f = net->prof[2 * k] / steps * 1e3, b = net->prof[2 * k + 1] / steps * 1e3;
        /* a product layer's rate: its forward FLOPs once forward, twice backward
         * (once on the network's input, which needs no gradient) */
        char rate[64] = "";
        const double flops = node_flops(n) * batch * (n->inputs[0] == TB_NET_INPUT ? 2.0 : 3.0);
        if (flops > 0 && f + b > 0) {
            const double gf = flops / ((f + b) * 1e-3) / 1e9;
            if (peak_gflops > 0) snprintf(rate, sizeof rate, "  %6.1f GFLOP/s %3.0f%% of peak", gf, 100 * gf / peak_gflops);
            else snprintf(rate, sizeof rate, "  %6.1f GFLOP/s", gf);
        }
        if (tb_appendf(buf, len, &used, "%3d %-16s %-22s fwd %8.3f ms  bwd %8.3f ms  %5.1f%%%s\n", k,
                       tb_layer_kind_name(n->kind), n->name, f, b, 100.0 * (f + b) / (total / steps * 1e3), rate))
            break;
    }
}

void tb_net_zero_grads(tb_net *net)
{
    net->be->ops->zero(net->be, net->grad_block, sizeof(float) * net->params_size);
}

/* ---- accessors --------------------------------------------------------------- */

tb_backend *tb_net_backend(const tb_net *net) { return net->be; }
int tb_net_batch_minor(const tb_net *net) { return net->batch_minor; }
const float *tb_net_output(const tb_net *net) { return net->nodes[net->n_nodes - 1].out; }
float *tb_net_output_grad_buffer(const tb_net *net) { return net->dlogits; }
int tb_net_classes(const tb_net *net) { return net->n_nodes ? net->nodes[net->n_nodes - 1].c : 0; }
int tb_net_max_batch(const tb_net *net) { return net->max_batch; }
void tb_net_input_shape(const tb_net *net, int *c, int *h, int *w)
{
    *c = net->in_c;
    *h = net->in_h;
    *w = net->in_w;
}
uint64_t tb_net_seed(const tb_net *net) { return net->seed; }
void tb_net_set_seed(tb_net *net, uint64_t seed) { net->seed = seed; }
int tb_net_param_count(const tb_net *net) { return net->n_params; }
const tb_param *tb_net_param(const tb_net *net, int i) { return &net->params[i]; }
int tb_net_find_param(const tb_net *net, const char *name)
{
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0) return i;
    return -1;
}
float *tb_net_params(const tb_net *net) { return net->param_block; }
float *tb_net_grads(const tb_net *net) { return net->grad_block; }
float *tb_net_buffers(const tb_net *net) { return net->buffer_block; }
size_t tb_net_params_size(const tb_net *net) { return net->params_size; }
size_t tb_net_buffers_size(const tb_net *net) { return net->buffers_size; }

size_t tb_net_trainable_count(const tb_net *net)
{
    size_t total = 0;
    for (int i = 0; i < net->n_params; i++)
        if (net->params[i].trainable) total += net->params[i].count;
    return total;
}

size_t tb_net_memory_bytes(const tb_net *net)
{
    size_t dl = (size_t)net->max_batch * tb_net_classes(net);
    size_t input_cn = net->batch_minor ? (size_t)net->max_batch * net->in_c * net->in_h * net->in_w : 0;
    return sizeof(float) * (2 * net->params_size + net->buffers_size + 2 * net->act_size + net->ws_size + dl +
                            input_cn) +
           net->aux_bytes;
}

double tb_net_forward_flops(const tb_net *net)
{
    double flops = 0;
    for (int k = 0; k < net->n_nodes; k++) flops += node_flops(&net->nodes[k]);
    return flops;
}

void tb_net_param_get(const tb_net *net, int i, float *host)
{
    const tb_param *p = &net->params[i];
    if (p->is_int64) {
        host[0] = (float)net->nodes[p->node].num_batches_tracked;
        return;
    }
    net->be->ops->to_host(net->be, host, param_ptr((tb_net *)net, i, 0), sizeof(float) * p->count);
}

void tb_net_param_set(tb_net *net, int i, const float *host)
{
    const tb_param *p = &net->params[i];
    if (p->is_int64) {
        net->nodes[p->node].num_batches_tracked = (int64_t)host[0];
        return;
    }
    net->be->ops->to_device(net->be, param_ptr(net, i, 0), host, sizeof(float) * p->count);
}

void tb_net_summary(const tb_net *net, char *buf, size_t len)
{
    size_t used = 0;
#define APPEND(...) tb_appendf(buf, len, &used, __VA_ARGS__)
    if (len) buf[0] = '\0';
    APPEND("input [%d, %d, %d]\n", net->in_c, net->in_h, net->in_w);
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *n = &net->nodes[k];
        size_t params = 0;
        for (int i = n->param_first; i < n->param_first + n->n_params; i++)
            if (!net->params[i].is_buffer) params += net->params[i].count;
        if (n->ndim == 4)
            APPEND("%3d %-16s %-20s -> [%d, %d, %d]", k, tb_layer_kind_name(n->kind), n->name, n->c, n->h, n->w);
        else
            APPEND("%3d %-16s %-20s -> [%d]", k, tb_layer_kind_name(n->kind), n->name, n->c);
        if (params) APPEND("  %zu params", params);
        APPEND("\n");
    }
    APPEND("trainable parameters: %zu\n", tb_net_trainable_count(net));
#undef APPEND
    if (used >= len && len > 4) snprintf(buf + len - 5, 5, "...\n");
}

int tb_name_has_prefix(const char *name, const char *prefixes)
{
    const char *p = prefixes;
    if (!p || !*p || strcmp(p, "*") == 0) return 1;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len && strncmp(name, p, len) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

int tb_net_set_trainable(tb_net *net, const char *prefixes, int trainable)
{
    int matched = 0;
    for (int i = 0; i < net->n_params; i++) {
        tb_param *p = &net->params[i];
        if (p->is_buffer || !tb_name_has_prefix(p->name, prefixes)) continue;
        p->trainable = trainable;
        matched++;
    }
    return matched;
}

int tb_net_layer_shape(const tb_net *net, int layer, int *c, int *h, int *w)
{
    int ndim;
    return input_shape(net, layer, &ndim, c, h, w);
}

char *tb_net_param_report(const tb_net *net)
{
    size_t len = 64 + (size_t)net->n_nodes * (TB_NAME_MAX + 48), used = 0;
    char *buf = malloc(len);
    if (!buf) return NULL;
    buf[0] = '\0';
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *n = &net->nodes[k];
        size_t trainable = 0, frozen = 0;
        for (int i = n->param_first; i < n->param_first + n->n_params; i++) {
            const tb_param *p = &net->params[i];
            if (p->is_buffer) continue;
            if (p->trainable) trainable += p->count;
            else frozen += p->count;
        }
        if (!trainable && !frozen) continue;
        tb_appendf(buf, len, &used, "%s: %zu trainable%s", n->name, trainable, frozen ? "" : "\n");
        if (frozen) tb_appendf(buf, len, &used, ", %zu frozen\n", frozen);
    }
    tb_appendf(buf, len, &used, "total: %zu trainable of %zu\n", tb_net_trainable_count(net), net->params_size);
    return buf;
}

int tb_net_min_bn_plane(const tb_net *net)
{
    int best = 0;
    for (int k = 0; k < net->n_nodes; k++) {
        const tb_node *n = &net->nodes[k];
        if (n->kind == TB_LAYER_BATCHNORM && (best == 0 || n->u.bn.hw < best)) best = n->u.bn.hw;
    }
    return best;
}
