/* hparams.c: the rows of hparams.h's tables, for code that walks them at run time. */
#include "hparams.h"

#include <stddef.h>
#include <strings.h>

#include "optim.h"

const tb_hparam_info tb_hparams[TB_HPARAM_COUNT] = {
#define TRAIN_ROW(name, type, lo, hi, choices) {#name, TB_HPARAM_##type, lo, hi, choices, TB_READ_BY_ALL, 0},
#define OPTIM_ROW(name, type, lo, hi, read_by, ...) {#name, TB_HPARAM_##type, lo, hi, NULL, read_by, 1},
    TB_TRAIN_HPARAMS(TRAIN_ROW) TB_OPTIM_HPARAMS(OPTIM_ROW)
#undef TRAIN_ROW
#undef OPTIM_ROW
};

const tb_hparam_info *tb_hparam_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < TB_HPARAM_COUNT; i++)
        if (strcasecmp(name, tb_hparams[i].name) == 0) return &tb_hparams[i];
    return NULL;
}
