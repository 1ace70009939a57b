/* backend.c: what every backend shares (see backend.h); each backend's own
 * operations are in its file (backend_cpu.c, cuda/backend_cuda.cu). */
#include "backend.h"

#include <stdio.h>

tb_status tb_backend_check(tb_backend *be, tb_err *err)
{
    tb_status st = TB_OK;
    char msg[512];
    if (!be || !be->ops->failed(be, &st, msg, sizeof msg)) return TB_OK;
    return tb_fail(err, st == TB_OK ? TB_EDEVICE : st, "%s: %s", be->device[0] ? be->device : be->name, msg);
}

void tb_backend_destroy(tb_backend *be)
{
    if (be) be->ops->destroy(be);
}
