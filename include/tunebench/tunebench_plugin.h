/* tunebench_plugin.h: the one header a tunebench plugin includes.
 *
 * A plugin is a shared library exporting one symbol,
 *
 *     const tb_plugin_descriptor *tunebench_plugin_entry(void);
 *
 * that returns a static descriptor: ABI version, the descriptor's size, kind
 * (model, task, front end), name, version, licence, its options and its
 * callbacks. The host reaches the plugin only through those callbacks and the
 * plugin reaches the host only through the tb_host_api table it is handed, so
 * a plugin links nothing from tunebench and can be tested against a fake table.
 *
 * Rules (the loader enforces what it can):
 *   - never call exit() or abort(); return a status and write one line into
 *     the error buffer you are given;
 *   - never print; use host->log;
 *   - the plugin's name is unique among loaded plugins and is what configs use;
 *   - model plugins describe networks with the host's layer builder and write
 *     no backward code; they run on every backend the host has;
 *   - task plugins hand over raw uint8 (or, ABI minor 3, float32) images; the host does the resizing,
 *     normalisation, shuffling, augmentation and k-fold splits, the same way
 *     for every task.
 *
 * Compatibility: the host refuses a plugin whose ABI major differs from its
 * own, and one whose minor is newer. tb_host_api and tb_plugin_descriptor only
 * grow at the end; each carries its size, so either side can tell which
 * members the other has. See docs/plugins.md for a guide. */
#ifndef TUNEBENCH_PLUGIN_H
#define TUNEBENCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TB_PLUGIN_ABI_MAJOR 1
#define TB_PLUGIN_ABI_MINOR 8 /* 1: tb_host_api version 2 (task_data_free); 2: version 3 (nearest);
                                 3: tb_task_data's pixels_f32 and classes_guessed, version 4 (task_data_release);
                                 4: tb_study_api version 2 (submission_note);
                                 5: tb_study_api version 3 (enums, sized snapshots, curves, the organiser's view);
                                 6: tb_host_api version 5 (tanh, sigmoid, leaky ReLU, GELU, identity,
                                    BatchNorm1d; the PyTorch-style builder: option structs, Sequential indices);
                                 7: the task descriptor's optional describe_task (tb_task_shape);
                                 8: tb_study_api version 4 (register_machine) */
#define TB_PLUGIN_ENTRY_SYMBOL "tunebench_plugin_entry"

#if defined(__GNUC__)
#define TB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TB_PLUGIN_EXPORT
#endif

/* The descriptor's first fields, always these: the ABI this header defines
 * and the descriptor's size as this plugin sees it. */
#define TB_PLUGIN_ABI \
    .abi_major = TB_PLUGIN_ABI_MAJOR, .abi_minor = TB_PLUGIN_ABI_MINOR, .size = sizeof(tb_plugin_descriptor)

/* Defines the exported entry point returning &descriptor (a static
 * tb_plugin_descriptor): TB_PLUGIN_DEFINE_ENTRY(descriptor) */
#define TB_PLUGIN_DEFINE_ENTRY(descriptor)                                          \
    TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void);     \
    TB_PLUGIN_EXPORT const tb_plugin_descriptor *tunebench_plugin_entry(void) { return &(descriptor); }

/* ---- types shared with the core -------------------------------------------- */

/* tb_status: tunebench_status.h, shared with the core */
#include "tunebench_status.h"

/* A network under construction; opaque to plugins. */
typedef struct tb_net tb_net;

typedef enum tb_init_kind {
    TB_INIT_DEFAULT = 0,     /* torch's reset_parameters(): weight kaiming_uniform(a=sqrt(5)),
                                bias uniform(+-1/sqrt(fan_in)) */
    TB_INIT_KAIMING_UNIFORM, /* kaiming_uniform_(mode=fan_in, nonlinearity=relu): U(+-sqrt(6/fan_in)) */
    TB_INIT_KAIMING_NORMAL,  /* kaiming_normal_(mode=fan_in, nonlinearity=relu): N(0, 2/fan_in) */
    TB_INIT_XAVIER_UNIFORM,  /* U(+-sqrt(6/(fan_in+fan_out))) */
    TB_INIT_XAVIER_NORMAL,   /* N(0, 2/(fan_in+fan_out)) */
    TB_INIT_NORMAL,          /* N(0, arg^2) */
    TB_INIT_CONSTANT,        /* arg */
} tb_init_kind;

/* How one layer's weight and bias are initialised. */
typedef struct tb_init_spec {
    tb_init_kind weight;
    float weight_arg;  /* std for NORMAL, value for CONSTANT */
    tb_init_kind bias; /* DEFAULT: uniform(+-1/sqrt(fan_in)); CONSTANT: bias_arg; any other kind: 0 */
    float bias_arg;
} tb_init_spec;

/* torch's default initialisation of Conv2d and Linear (reset_parameters()):
 * weight kaiming_uniform(a=sqrt(5)), bias U(+-1/sqrt(fan_in)). A zeroed
 * tb_init_spec is this, so option structs left at zero get it. */
#define TB_INIT_TORCH_DEFAULT ((tb_init_spec){TB_INIT_DEFAULT, 0.0f, TB_INIT_DEFAULT, 0.0f})

#define TB_NET_INPUT (-1)

/* ---- the PyTorch-style builder's options (host API version 5) -----------------
 *
 * One struct per layer, passed by pointer (NULL: every field at its default).
 * A field left at zero takes torch's default, written beside it, so
 *
 *     x = host->conv2d(net, x, &(tb_conv2d_opts){.out_channels = 6, .kernel = 5});
 *
 * is nn.Conv2d(in, 6, 5): stride 1, padding 0, groups 1, bias=True,
 * TB_INIT_TORCH_DEFAULT. Zero therefore never means the value 0 where torch's
 * default is another: dropout p = 0 (use identity), BatchNorm momentum = 0
 * (net_batchnorm/net_batchnorm1d take it) and negative_slope = 0 (relu) are
 * spelt another way. Negative values are refused with the field's name.
 *
 * name: the layer's state_dict prefix. NULL (or "") takes the net's next
 * Sequential index ("features.3" inside net_sequential(net, "features"),
 * "3" at the top level); a name given is used as it is, and the layer still
 * takes its index, so the layers after it keep torch's numbering.
 *
 * These structs never change: a new option means a new struct and entry. */

typedef struct tb_conv2d_opts {
    int out_channels;   /* required, >= 1 */
    int kernel;         /* kernel_size (square), required, >= 1 */
    int stride;         /* 0: 1 */
    int padding;        /* 0 */
    int groups;         /* 0: 1 */
    int no_bias;        /* 1: bias=False */
    tb_init_spec init;  /* zero: TB_INIT_TORCH_DEFAULT */
    const char *name;   /* NULL: the next Sequential index */
} tb_conv2d_opts;

typedef struct tb_linear_opts {
    int out_features;   /* required, >= 1 */
    int no_bias;        /* 1: bias=False */
    tb_init_spec init;  /* zero: TB_INIT_TORCH_DEFAULT */
    const char *name;   /* NULL: the next Sequential index */
} tb_linear_opts;

/* BatchNorm2d over [n, c, h, w] and BatchNorm1d over [n, c]: affine, tracking
 * running statistics; weight 1, bias 0, running_mean 0, running_var 1. */
typedef struct tb_batchnorm_opts {
    float eps;          /* 0: 1e-5 */
    float momentum;     /* 0: 0.1 */
    const char *name;   /* NULL: the next Sequential index */
} tb_batchnorm_opts;

typedef struct tb_maxpool2d_opts {
    int kernel;         /* kernel_size (square), required, >= 1 */
    int stride;         /* 0: kernel (torch's stride=None) */
    int padding;        /* 0; at most kernel / 2 */
    int ceil_mode;      /* 0: floor */
} tb_maxpool2d_opts;

typedef struct tb_avgpool2d_opts {
    int kernel;         /* kernel_size (square), required, >= 1 */
    int stride;         /* 0: kernel (torch's stride=None) */
    int padding;        /* 0; at most kernel / 2 */
    int ceil_mode;      /* 0: floor */
    int exclude_pad;    /* 1: count_include_pad=False (torch's default counts the padding) */
} tb_avgpool2d_opts;

typedef struct tb_adaptive_avgpool2d_opts {
    int out_h;          /* output_size, required, >= 1 */
    int out_w;          /* 0: out_h (torch's output_size=int) */
} tb_adaptive_avgpool2d_opts;

typedef struct tb_dropout_opts {
    float p;            /* 0: 0.5; in (0, 1] */
} tb_dropout_opts;

typedef struct tb_leaky_relu_opts {
    float negative_slope; /* 0: 0.01 */
} tb_leaky_relu_opts;

typedef struct tb_gelu_opts {
    const char *approximate; /* NULL or "none": the exact erf form (torch's default); "tanh" */
} tb_gelu_opts;

/* ---- options ---------------------------------------------------------------- */

typedef enum tb_option_type {
    TB_OPTION_INT = 1,
    TB_OPTION_FLOAT = 2,
    TB_OPTION_BOOL = 3,     /* true/false, yes/no, 1/0 */
    TB_OPTION_STRING = 4,
    TB_OPTION_CHOICE = 5,   /* one of `choices`, '|'-separated */
    TB_OPTION_INT_LIST = 6, /* comma-separated integers, each in [min, max] */
    TB_OPTION_PATH = 7,     /* a file or directory; the host expands a leading ~ */
} tb_option_type;

/* One option of a plugin, read from the plugin's section of a config. */
typedef struct tb_plugin_option {
    const char *name;          /* key, e.g. "version" */
    tb_option_type type;
    const char *default_value; /* as it would be written in the config; NULL: required */
    double min, max;           /* closed range for INT, FLOAT, INT_LIST */
    const char *choices;       /* CHOICE: "1_0|1_1" */
    const char *help;          /* one line */
} tb_plugin_option;

/* The option values the host resolved and validated for this use of the
 * plugin (config, defaults and --set overrides); read with host->arg_*. */
typedef struct tb_plugin_args tb_plugin_args;

/* ---- what task plugins return ----------------------------------------------- */

typedef enum tb_split {
    TB_SPLIT_TRAIN = 0,
    TB_SPLIT_VAL = 1,
    TB_SPLIT_TEST = 2,
} tb_split;

/* Raw samples: uint8 images [count, channels, height, width] (all the same
 * size), labels in [0, classes) and the split each sample belongs to. Memory
 * from host->alloc; the host takes ownership when open_task succeeds.
 *
 * ABI minor 3 appends pixels_f32 and classes_guessed. The host zeroes the
 * whole tb_task_data before calling open_task, so a plugin built with an
 * older header (which never writes past `source`) leaves them 0. */
typedef struct tb_task_data {
    int count;
    int channels, height, width;
    int classes;
    uint8_t *pixels;
    int32_t *labels;
    uint8_t *splits;           /* tb_split per sample */
    char **class_names;        /* [classes], each from host->alloc; may be NULL */
    /* Optional: per-channel mean/std of pixel/255 the task is known to use
     * (e.g. ImageNet statistics); when has_norm is 0 the host computes them on
     * the training split or takes them from the config. */
    int has_norm;
    float mean[4], std[4];
    char source[256];          /* where the data came from, for run files */

    /* ABI minor 3 (host API version 4) */
    /* Float samples instead of uint8: [count, channels, height, width] float32
     * values as they should train (ToTensor's output: the host normalises
     * (v - mean) / std, with mean/std of the values themselves, not of v/255).
     * Exactly one of pixels and pixels_f32 is set; every value must be finite
     * (the host refuses NaN and Inf, naming the first sample). Release it with
     * task_data_release (version 4), which knows this member. */
    float *pixels_f32;
    /* 1 when `classes` was guessed (e.g. the largest label + 1) rather than
     * given or read; the host logs it and records it in the run file */
    int classes_guessed;
} tb_task_data;

/* What a task declares before loading (describe_task, ABI minor 7): the
 * channels, height, width and class count open_task will return, as far as
 * the options tell them without reading the data; 0 for what they do not
 * (e.g. a class count guessed from the labels). */
typedef struct tb_task_shape {
    int channels, height, width;
    int classes;
} tb_task_shape;

/* ---- the host's services ------------------------------------------------------ */

#define TB_HOST_API_VERSION 5

typedef enum tb_log_level {
    TB_LOG_DEBUG = 0,
    TB_LOG_INFO = 1,
    TB_LOG_WARN = 2,
} tb_log_level;

typedef struct tb_host_api {
    uint32_t version; /* TB_HOST_API_VERSION of the host */
    uint32_t size;    /* sizeof(tb_host_api) in the host; members past it are absent */

    /* options of this plugin (declared names only; the host already checked types and ranges) */
    int64_t (*arg_int)(const tb_plugin_args *args, const char *name); /* INT; CHOICE: the index in `choices` */
    double (*arg_float)(const tb_plugin_args *args, const char *name);
    int (*arg_bool)(const tb_plugin_args *args, const char *name);
    const char *(*arg_string)(const tb_plugin_args *args, const char *name); /* STRING, CHOICE, PATH */
    /* INT_LIST: copies up to max values, returns how many the list has */
    int (*arg_int_list)(const tb_plugin_args *args, const char *name, int64_t *out, int max);
    /* 1 when the option was given explicitly (config or --set), 0 when defaulted */
    int (*arg_is_set)(const tb_plugin_args *args, const char *name);

    /* messages and memory */
    void (*log)(tb_log_level level, const char *plugin, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    void *(*alloc)(size_t bytes); /* NULL when out of memory; released with host->free */
    void (*free)(void *ptr);

    /* layer builder: each returns the new layer's id, or -1 after which the
     * network records the error and the host reports it (see core/engine/net.h) */
    tb_net *(*net_new)(int in_c, int in_h, int in_w);
    void (*net_free)(tb_net *net);
    int (*net_conv2d)(tb_net *net, int input, const char *name, int out_c, int kernel, int stride, int pad,
                      int groups, int bias, tb_init_spec init);
    int (*net_linear)(tb_net *net, int input, const char *name, int out_features, int bias, tb_init_spec init);
    int (*net_relu)(tb_net *net, int input);
    int (*net_maxpool)(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode);
    int (*net_avgpool)(tb_net *net, int input, int kernel, int stride, int pad, int ceil_mode,
                       int count_include_pad);
    int (*net_adaptive_avgpool)(tb_net *net, int input, int out_h, int out_w);
    int (*net_concat)(tb_net *net, const int *inputs, int n_inputs);
    int (*net_dropout)(tb_net *net, int input, float p);
    int (*net_batchnorm)(tb_net *net, int input, const char *name, float eps, float momentum);
    int (*net_flatten)(tb_net *net, int input);
    /* output shape of a layer (or TB_NET_INPUT): returns 0, or -1 for an unknown id */
    int (*net_shape)(const tb_net *net, int layer, int *c, int *h, int *w);

    /* images: bilinear resize (antialiased when shrinking) of one uint8 image
     * [channels, sh, sw] to [channels, dh, dw] */
    void (*resize_u8)(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, int channels);
    /* Fisher-Yates permutation of 0..n-1 from (seed, stream id, sub-stream); the same as the core's */
    void (*permutation)(int32_t *perm, int32_t n, uint64_t seed, uint32_t stream, uint32_t sub);
    /* number of CPU threads a plugin may use for loading */
    int (*threads)(void);
    /* a writable cache directory for this plugin (created), e.g. ~/.cache/tunebench/imagenette */
    const char *(*cache_dir)(const char *plugin);

    /* version 2 (plugins built with ABI minor >= 1 may rely on it) */
    /* releases everything of a tb_task_data allocated with host->alloc
     * (pixels, labels, splits, class_names and their strings; NULL members
     * are fine) and zeroes it: a task plugin's clean-up on failure. It
     * touches only the members up to `source` (a plugin built before ABI
     * minor 3 passes a smaller struct): use task_data_release for pixels_f32. */
    void (*task_data_free)(tb_task_data *data);

    /* version 3 (plugins built with ABI minor >= 2 may rely on it) */
    /* the candidate nearest to word for a "did you mean" hint, or NULL when
     * none is close: the rule the core's own configuration errors use */
    const char *(*nearest)(const char *word, const char *const *candidates, int n);

    /* version 4 (plugins built with ABI minor >= 3 may rely on it) */
    /* as task_data_free, for a tb_task_data of `size` bytes as the plugin
     * sees it (pass sizeof *data): also releases pixels_f32 when the struct
     * has it, and zeroes those `size` bytes */
    void (*task_data_release)(tb_task_data *data, size_t size);

    /* version 5 (plugins built with ABI minor >= 6 may rely on it) */
    /* the new layers in the style of the calls above; each returns the layer's
     * id or -1 as they do. negative_slope: any finite value (torch: 0.01);
     * tanh_approx 0: GELU's exact erf form (torch's default), 1: approximate='tanh';
     * net_batchnorm1d: nn.BatchNorm1d over [n, c] (after flatten or linear) */
    int (*net_tanh)(tb_net *net, int input);
    int (*net_sigmoid)(tb_net *net, int input);
    int (*net_leaky_relu)(tb_net *net, int input, float negative_slope);
    int (*net_gelu)(tb_net *net, int input, int tanh_approx);
    int (*net_identity)(tb_net *net, int input);
    int (*net_batchnorm1d)(tb_net *net, int input, const char *name, float eps, float momentum);

    /* The PyTorch-style builder (docs/plugins.md, "The PyTorch-style
     * builder"). The net numbers modules as torch.nn.Sequential does: every
     * layer call above or below but concat (torch.cat is no module) takes the
     * next index. net_sequential starts a Sequential named prefix, at index
     * 0: the layers after it default to "prefix.0", "prefix.1", ... (NULL or
     * "": "0", "1", ..., a top-level Sequential, which is also where a new net
     * starts). Returns 0, or -1 after recording an error for a prefix that is
     * not dot-separated names of [A-Za-z0-9_]. Options: the tb_*_opts structs
     * above (NULL: defaults). Each returns the layer's id, or -1 as above. */
    int (*net_sequential)(tb_net *net, const char *prefix);
    int (*conv2d)(tb_net *net, int input, const tb_conv2d_opts *opts);
    int (*linear)(tb_net *net, int input, const tb_linear_opts *opts);
    int (*batchnorm2d)(tb_net *net, int input, const tb_batchnorm_opts *opts);
    int (*batchnorm1d)(tb_net *net, int input, const tb_batchnorm_opts *opts);
    int (*maxpool2d)(tb_net *net, int input, const tb_maxpool2d_opts *opts);
    int (*avgpool2d)(tb_net *net, int input, const tb_avgpool2d_opts *opts);
    int (*adaptive_avgpool2d)(tb_net *net, int input, const tb_adaptive_avgpool2d_opts *opts);
    int (*dropout)(tb_net *net, int input, const tb_dropout_opts *opts);
    int (*leaky_relu)(tb_net *net, int input, const tb_leaky_relu_opts *opts);
    int (*gelu)(tb_net *net, int input, const tb_gelu_opts *opts);
    /* no options: as net_relu etc., but labelled with their Sequential name in
     * errors and summaries. (With <tgmath.h>, whose tanh is a macro, write
     * (host->tanh)(net, x).) */
    int (*relu)(tb_net *net, int input);
    int (*tanh)(tb_net *net, int input);
    int (*sigmoid)(tb_net *net, int input);
    int (*identity)(tb_net *net, int input);
    int (*flatten)(tb_net *net, int input);
} tb_host_api;

/* ---- the descriptor ----------------------------------------------------------- */

typedef enum tb_plugin_kind {
    TB_PLUGIN_MODEL = 1,
    TB_PLUGIN_TASK = 2,
    TB_PLUGIN_FRONTEND = 3,
} tb_plugin_kind;

/* Input a model is built for. */
typedef struct tb_model_input {
    int channels, height, width;
    int classes;
} tb_model_input;

/* ---- front ends ----------------------------------------------------------------
 *
 * A front end drives participants through a study: registration, consent,
 * submissions, live progress, cancel, history, budget, the final choice. The
 * study itself (validation, queueing, budgets, the archive, final
 * evaluations) lives in the host; a front end reaches it only through the
 * tb_study_api table it is handed, so every front end (CLI, HTTP) follows
 * the same protocol and records the same things. All functions are
 * thread-safe; those taking err write one line there on failure. */

#define TB_STUDY_API_VERSION 4 /* 2: submission_note; 3: enums, sized snapshots, curves, organiser;
                                  4: register_machine */
#define TB_STUDY_HP_COUNT 15 /* the paper's 15 hyperparameters, Table 1's order */

/* A hyperparameter's type (tb_fe_hp.type). */
enum { TB_FE_HP_INT = 1, TB_FE_HP_FLOAT = 2, TB_FE_HP_CHOICE = 3 };

/* A run's status (tb_fe_run.status_code); tb_fe_run.status spells it. Values never change. */
typedef enum tb_fe_run_status {
    TB_FE_RUN_QUEUED = 0,
    TB_FE_RUN_TRAINING = 1,
    TB_FE_RUN_FINISHED = 2,   /* the final statuses from here on */
    TB_FE_RUN_CANCELLED = 3,
    TB_FE_RUN_DIVERGED = 4,
    TB_FE_RUN_INTERRUPTED = 5,
    TB_FE_RUN_REJECTED = 6,
} tb_fe_run_status;

/* Where a participant stands (tb_fe_state.state_code); tb_fe_state.state spells it. */
typedef enum tb_fe_participant_state {
    TB_FE_REGISTERED = 0,
    TB_FE_CONSENTED = 1,
    TB_FE_LOBBY = 2,
    TB_FE_ACTIVE = 3,
    TB_FE_DONE = 4,
} tb_fe_participant_state;

/* The curves of a run (tb_study_api.curve). x: the global batch step (1-based) for
 * TB_FE_CURVE_BATCH_LOSS, the epoch (1-based) for the others. */
typedef enum tb_fe_curve_kind {
    TB_FE_CURVE_BATCH_LOSS = 0,
    TB_FE_CURVE_EPOCH_LOSS = 1,   /* mean training loss of the epoch */
    TB_FE_CURVE_VAL_LOSS = 2,     /* NaN without a validation split */
    TB_FE_CURVE_VAL_ACCURACY = 3, /* fraction in [0, 1]; NaN without a validation split */
} tb_fe_curve_kind;

typedef struct tb_study tb_study; /* opaque */

/* What registration asks. Optional numbers are NaN (self_level 0) when not given. */
typedef struct tb_fe_participant {
    const char *id;            /* pseudonym [A-Za-z0-9._-], at most 63 bytes; NULL or "": the study assigns one */
    const char *education;     /* one of education_levels() */
    double dl_months;          /* months of deep-learning experience, >= 0 (mandatory) */
    double programming_months; /* optional */
    double ml_months;          /* optional: machine learning beyond deep learning */
    int self_level;            /* optional self-rated level 1 (none) .. 5 (expert); 0: not given */
} tb_fe_participant;

/* One hyperparameter as a front end shows it. */
typedef struct tb_fe_hp {
    const char *name;     /* [train] key, e.g. "lr" */
    int type;             /* TB_FE_HP_INT, TB_FE_HP_FLOAT or TB_FE_HP_CHOICE */
    int mandatory;
    double lo, hi;        /* closed range (integer, real) */
    const char *choices;  /* choice: '|'-separated */
    const char *preset;   /* the preset value ("" when none; a mandatory one has a preset only when [train] gives it) */
    const char *allowed;  /* "float in [1e-06, 10] (log scale)" */
} tb_fe_hp;

/* A snapshot of one submission and its run. Accuracies are fractions in
 * [0, 1]; batch counts within the current epoch (the one after `epoch`);
 * batches_per_epoch is 0 until training starts. */
typedef struct tb_fe_run {
    char run_id[32];           /* "" when rejected */
    int number;                /* 1-based within the participant */
    char status[16];           /* queued, training, finished, cancelled, diverged, interrupted, rejected */
    int epoch, epochs;         /* last epoch completed (and durable) / epochs asked for */
    int batch, batches_per_epoch;
    double batch_loss, epoch_loss, val_loss, val_accuracy; /* NaN until known */
    double submitted_s;        /* UTC seconds since 1970 */
    double seconds;            /* training time so far */
    char message[256];         /* why it ended, or the validation error of a rejection */
    char values[TB_STUDY_HP_COUNT][64]; /* as resolved (presets filled in); as given when rejected */
    uint64_t seq;              /* changes whenever the run changes; for wait() */
    /* Version 3: only the sized calls (run_info, history_info) fill these; the older
     * ones write the fields above only (TB_FE_RUN_V2_SIZE bytes). */
    int status_code;           /* tb_fe_run_status */
    char participant[64];      /* whose run it is */
    int queue_position;        /* 1-based among the runs waiting for a slot while queued, else 0 */
    double started_s, ended_s; /* UTC; NaN until reached */
    int given[TB_STUDY_HP_COUNT];            /* 1: the participant set the value; 0: the preset */
    char comments[TB_STUDY_HP_COUNT][256];   /* the participant's comment per field ("" none) */
} tb_fe_run;
#define TB_FE_RUN_V2_SIZE offsetof(tb_fe_run, status_code)

/* Where a participant stands. */
typedef struct tb_fe_state {
    char id[64];
    char state[16];            /* registered, consented, lobby, active, done */
    int lobby_position;        /* 1-based while in the lobby */
    double budget_s, used_s, left_s;
    int submissions;
    char live_run[32];         /* the run queued or training, or "" */
    char final_run[32];        /* the final configuration's run, "" before the end */
    char final_reason[16];     /* "chosen", "budget" or "none" (no finished run to choose) */
    int finals_done, finals_total; /* final evaluations finished / queued (one per final seed) */
    double final_mean, final_sd;   /* test accuracy (fraction) over the finished final runs, NaN until all
                                    * are done; final_sd NaN with fewer than two */
    /* Version 3: only the sized calls (participant_info, participant_at) fill these; the
     * older state() writes the fields above only (TB_FE_STATE_V2_SIZE bytes). */
    int state_code;                /* tb_fe_participant_state */
    char education[32];
    double dl_months, programming_months, ml_months; /* NaN when not given (optional ones) */
    int self_level;                /* 0: not given */
    double registered_s;           /* UTC */
    int finished_runs;             /* submissions that finished */
    char best_run[32];             /* the best finished run by validation accuracy ("" none) */
    double best_val_accuracy;      /* its validation accuracy, NaN when none */
} tb_fe_state;
#define TB_FE_STATE_V2_SIZE offsetof(tb_fe_state, state_code)

/* Study-level counts for the organiser (tb_study_api.counts). */
typedef struct tb_fe_counts {
    int participants;
    int by_state[5];          /* indexed by tb_fe_participant_state */
    int runs;                 /* submissions, rejected ones included */
    int runs_by_status[7];    /* indexed by tb_fe_run_status */
    int finals_total, finals_done, finals_pending;
    int slots;                /* runs that train at once */
    int max_active;           /* participants whose clock may run at once */
    int admitting;            /* 1: new participants may register */
    int closing;              /* 1: the study is closing (signal or close_study) */
    double created_s;         /* UTC the study was created */
} tb_fe_counts;

typedef struct tb_study_api {
    uint32_t version; /* TB_STUDY_API_VERSION of the host */
    uint32_t size;    /* sizeof(tb_study_api) in the host */
    tb_study *study;

    /* the study as participants see it */
    const char *(*title)(tb_study *s);
    const char *(*briefing)(tb_study *s);         /* the task description shown before consent (may be long) */
    double (*budget_s)(tb_study *s);
    int (*hp_info)(tb_study *s, int i, tb_fe_hp *out); /* i in [0, 15); returns 0, or -1 */
    const char *(*education_levels)(tb_study *s); /* '|'-separated */
    const char *(*comments)(tb_study *s);         /* the predefined comments, '|'-separated; free text is allowed too */

    /* participants */
    tb_status (*register_participant)(tb_study *s, const tb_fe_participant *p, char id_out[64], char *err,
                                      size_t errlen);
    tb_status (*consent)(tb_study *s, const char *id, char *err, size_t errlen);
    /* Asks to start (or resume) working: *admitted 1 when the clock runs, 0 in the lobby (call again).
     * Refused (TB_EINVAL) before consent and once the participant is done. */
    tb_status (*enter)(tb_study *s, const char *id, int *admitted, char *err, size_t errlen);
    /* Stops the clock (a break, or leaving to come back later); not while a run is live */
    tb_status (*pause)(tb_study *s, const char *id, char *err, size_t errlen);
    tb_status (*state)(tb_study *s, const char *id, tb_fe_state *out, char *err, size_t errlen);

    /* Validates and queues a configuration: values[i] NULL or "" means not
     * given (presets for optional ones), comments[i] NULL or "" none. A
     * rejection is recorded (history_count grows) and returns TB_EINVAL with
     * the error naming the field, value and allowed range; *bad_hp receives
     * the field's index (or -1). A refusal that is not a rejection (not
     * admitted, a run still live, no budget left) also returns TB_EINVAL but
     * records nothing. */
    tb_status (*submit)(tb_study *s, const char *id, const char *const *values, const char *const *comments,
                        char run_id[32], int *bad_hp, char *err, size_t errlen);
    tb_status (*cancel)(tb_study *s, const char *id, const char *run_id, char *err, size_t errlen);
    tb_status (*run_state)(tb_study *s, const char *run_id, tb_fe_run *out, char *err, size_t errlen);
    /* Waits until run_id's seq differs from seq (1) or timeout_ms passes (0); -1 for an unknown run.
     * A pending Ctrl-C (take_interrupt) makes it return 0 at the next wake-up. */
    int (*wait)(tb_study *s, const char *run_id, uint64_t seq, int timeout_ms);
    int (*history_count)(tb_study *s, const char *id);
    tb_status (*history_at)(tb_study *s, const char *id, int i, tb_fe_run *out, char *err, size_t errlen);

    /* Ends the participant's tuning with run_id's configuration as the final
     * one (NULL: the best finished run by validation accuracy); queues the
     * final evaluations. */
    tb_status (*finish)(tb_study *s, const char *id, const char *run_id, char *err, size_t errlen);

    /* 1 when Ctrl-C was pressed since the last call (the host catches SIGINT) */
    int (*take_interrupt)(tb_study *s);

    /* Version 2. What the participant should know about run_id's submission
     * although it was accepted: the values they set (other than the preset)
     * that the chosen optimizer does not read, so they are ignored, e.g.
     * "optimizer adam does not read momentum = 0.9: it is ignored". Returns 1
     * with the note in out (one line), 0 when there is none (out ""). */
    int (*submission_note)(tb_study *s, const char *run_id, char *out, size_t cap);

    /* ---- Version 3 ----
     * Sized snapshots: out_size is sizeof(*out) as the caller was built; the
     * host writes min(out_size, its own size) bytes, so a struct that grows at
     * the end stays compatible both ways. */
    tb_status (*participant_info)(tb_study *s, const char *id, tb_fe_state *out, size_t out_size, char *err,
                                  size_t errlen);
    tb_status (*run_info)(tb_study *s, const char *run_id, tb_fe_run *out, size_t out_size, char *err,
                          size_t errlen);
    tb_status (*history_info)(tb_study *s, const char *id, int i, tb_fe_run *out, size_t out_size, char *err,
                              size_t errlen);
    /* The optimizers that read hyperparameter i, '|'-separated (e.g. "sgd|rmsprop"), or "" when
     * every optimizer reads it. NULL for a bad i. */
    const char *(*hp_readers)(tb_study *s, int i);
    /* 1 when the study config lets participants see their final test accuracy ([study] show_result). */
    int (*show_result)(tb_study *s);

    /* Points [from, from + cap) of run_id's curve `kind` (tb_fe_curve_kind) into
     * x[] and y[]; returns the curve's whole length n (so min(cap, n - from)
     * points were copied when from < n), or -1 for an unknown run or kind.
     * Finished runs and runs of earlier sessions are read from the archive. */
    int (*curve)(tb_study *s, const char *run_id, int kind, int from, double *x, double *y, int cap);

    /* Any change to the study (a participant, a run, a batch, closing) bumps
     * change_seq; wait_change blocks until it differs from seq (1), the study
     * begins closing (1), or timeout_ms passes (0). No Ctrl-C wake-up. */
    uint64_t (*change_seq)(tb_study *s);
    int (*wait_change)(tb_study *s, uint64_t seq, int timeout_ms);
    /* Blocks until the study begins closing (1: a SIGTERM or close_study) or
     * timeout_ms passes or a Ctrl-C is pending (0; see take_interrupt). */
    int (*wait_close)(tb_study *s, int timeout_ms);

    /* The organiser's view. */
    int (*participant_count)(tb_study *s);
    tb_status (*participant_at)(tb_study *s, int i, tb_fe_state *out, size_t out_size, char *err, size_t errlen);
    /* The submission runs queued or training: training ones first, then the
     * queue in order; up to cap ids into run_ids, returns how many there are. */
    int (*live_runs)(tb_study *s, char (*run_ids)[32], int cap);
    void (*counts)(tb_study *s, tb_fe_counts *out, size_t out_size);
    /* Stops (0) or resumes (1) registering new participants; journalled, so it
     * holds after a restart. Registered participants carry on. */
    tb_status (*set_admitting)(tb_study *s, int admitting, char *err, size_t errlen);
    /* Closes the study as a SIGTERM would, but as a normal end: live runs end
     * "interrupted" with `why` (their time given back), front ends are refused
     * from here on and their wait_close returns 1; queued final evaluations still
     * run when the host waits for them. */
    tb_status (*close_study)(tb_study *s, const char *why, char *err, size_t errlen);
    const char *(*archive_path)(tb_study *s);
    /* Packs the archive into one HDF5 file at out_path (written to a temporary
     * name, then renamed; what the live files show at this moment). */
    tb_status (*export_archive)(tb_study *s, const char *out_path, char *err, size_t errlen);

    /* Version 4 (ABI minor 8). */
    /* Registers a machine participant (a tuner front end's): id
     * "tuner-<strategy>-<n>" (the first free n) into id_out, education
     * "machine" (people cannot register with it), no experience figures, the
     * strategy kept in its registration record; consented at once. strategy:
     * 1 to 24 of A-Z a-z 0-9 _ -. */
    tb_status (*register_machine)(tb_study *s, const char *strategy, char id_out[64], char *err, size_t errlen);
} tb_study_api;

/* What a front-end plugin provides (its descriptor's `frontend`). */
typedef struct tb_frontend_api {
    uint32_t size; /* sizeof(tb_frontend_api) the plugin was built with */
    /* Runs the front end until it is done (e.g. its script ended or the user
     * quit). args: the plugin's options from the study config's section named
     * after the plugin. The study goes on after run returns (final
     * evaluations finish in the host). */
    tb_status (*run)(const tb_host_api *host, const tb_study_api *study, const tb_plugin_args *args, char *err,
                     size_t errlen);
} tb_frontend_api;

typedef struct tb_plugin_descriptor {
    uint32_t abi_major;  /* TB_PLUGIN_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;  /* TB_PLUGIN_ABI_MINOR */
    uint32_t size;       /* sizeof(tb_plugin_descriptor) the plugin was built with */
    tb_plugin_kind kind;
    const char *name;    /* unique; [a-z0-9_]+ ; what configs name */
    const char *version; /* the plugin's own version */
    const char *license; /* SPDX identifier, e.g. "MIT" */
    const char *description; /* one line */
    const tb_plugin_option *options;
    int n_options;

    /* TB_PLUGIN_MODEL: builds the network for `in` into *out (created with
     * host->net_new). State_dict names must be those of the reference
     * implementation (e.g. torchvision) so checkpoints move by name. */
    tb_status (*build_model)(const tb_host_api *host, const tb_plugin_args *args, const tb_model_input *in,
                             tb_net **out, char *err, size_t errlen);
    /* Layers a "freeze = base" setting freezes: state_dict key prefixes, ','
     * separated (e.g. "features."), and the head that is re-initialised when
     * class counts differ (e.g. "classifier."). NULL when not applicable. */
    const char *base_prefixes;
    const char *head_prefixes;

    /* TB_PLUGIN_TASK: loads the data into *out (see tb_task_data). */
    tb_status (*open_task)(const tb_host_api *host, const tb_plugin_args *args, tb_task_data *out, char *err,
                           size_t errlen);

    /* TB_PLUGIN_FRONTEND: what the front end does (see tb_frontend_api). */
    const tb_frontend_api *frontend;

    /* TB_PLUGIN_TASK, optional (ABI minor 7; NULL in older plugins, whose
     * reserved slot it takes): fills *out (zeroed by the host) with the shape
     * and class count open_task will return, from the options alone, cheaply
     * (a file's header at most, never the samples), so the host can build the
     * model and report a mismatch before the data loads. Leave 0 what cannot
     * be known without loading. The host checks open_task's data against it. */
    tb_status (*describe_task)(const tb_host_api *host, const tb_plugin_args *args, tb_task_shape *out, char *err,
                               size_t errlen);

    void *reserved[7]; /* zero; room to grow without changing the size check of older hosts */
} tb_plugin_descriptor;

typedef const tb_plugin_descriptor *(*tb_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
