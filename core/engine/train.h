/* train.h: the training loop every front end and executor drives.
 *
 * One call trains a built network for a number of epochs over a dataset,
 * evaluates on a validation set after each epoch and reports events to
 * listeners. Cancellation is cooperative (checked between batches), and an
 * optional wall-time limit ends the run the same way. A NaN/Inf loss or
 * parameter ends the run with status TB_EDIVERGED. The next training batch is
 * loaded on a thread of its own while the current step runs (train.c). */
#ifndef TB_TRAIN_H
#define TB_TRAIN_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/common.h"
#include "data/dataset.h"
#include "loss.h"
#include "metrics.h"
#include "net.h"
#include "optimizer.h"

typedef struct tb_train_config {
    int epochs;
    int batch_size;
    tb_loss_kind loss;
    tb_optim_config optim;
    uint64_t seed;          /* shuffling and dropout streams; init is the caller's (tb_net_init_params) */
    double time_limit_s;    /* 0: none */
    int eval_batch_size;    /* 0: batch_size */
    int batch_events;       /* report every k-th batch (0 or 1: every batch) */
    int no_prefetch;        /* 1: load each next batch on this thread after the step (the order before
                             * prefetching; same results); the environment's TB_PREFETCH=0 does the same */
} tb_train_config;

typedef enum tb_event_kind {
    TB_EVENT_BATCH = 0,
    TB_EVENT_EPOCH = 1,
    TB_EVENT_END = 2,
} tb_event_kind;

typedef struct tb_train_event {
    tb_event_kind kind;
    int epoch;              /* 1-based */
    int batch;              /* 1-based within the epoch */
    int batches_per_epoch;
    int64_t step;           /* optimizer steps so far */
    double batch_loss;
    double epoch_loss;      /* mean training loss over the epoch (EPOCH) */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
    double elapsed_s;       /* since the start of training */
    double epoch_s;         /* duration of this epoch (EPOCH) */
    double images_per_s;    /* training throughput over the epoch so far */
    tb_status status;       /* END: how the run ended */
    double input_wait_s;    /* seconds the loop waited for input (loading, or the loader thread, and the
                             * upload) in this epoch so far (BATCH, EPOCH), in all epochs (END) */
} tb_train_event;

typedef void (*tb_train_listener)(void *user, const tb_train_event *ev);

#define TB_MAX_LISTENERS 8
typedef struct tb_train_hooks {
    tb_train_listener listener[TB_MAX_LISTENERS];
    void *user[TB_MAX_LISTENERS];
    int n_listeners;
    atomic_int *cancel; /* non-zero: stop before the next batch; may be NULL */
} tb_train_hooks;

int tb_train_hooks_add(tb_train_hooks *h, tb_train_listener fn, void *user);

typedef struct tb_train_result {
    tb_status status;
    int epochs_done;
    int64_t steps;
    double final_train_loss;
    double final_val_loss, final_val_accuracy;
    double seconds;
    double input_wait_s;    /* seconds the loop waited for input, all epochs (tb_train_event's) */
} tb_train_result;

/* Validates cfg against the dataset (batch size, epochs, optimizer values). */
tb_status tb_train_validate(const tb_train_config *cfg, const tb_dataset *train, tb_err *err);

/* Trains net (already built and initialised) on train; val may be NULL.
 * opt may be NULL (created from cfg->optim and destroyed at the end) or an
 * existing optimizer (e.g. loaded from a checkpoint) that is kept. */
tb_status tb_train(tb_net *net, tb_optimizer *opt, const tb_train_config *cfg, const tb_dataset *train,
                   const tb_dataset *val, const tb_train_hooks *hooks, tb_train_result *result, tb_err *err);

/* Scores net on every sample of ds in eval mode. m must be initialised with the net's class count. */
tb_status tb_evaluate(tb_net *net, const tb_dataset *ds, tb_loss_kind loss, int batch_size, tb_metrics *m,
                      tb_err *err);

#endif
