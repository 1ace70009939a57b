/* cmd_devices.c: `tunebench devices`: the CPU and each GPU a run can use, or why there is none. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "engine/device.h"

int tb_cmd_devices(int argc, char **argv)
{
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: tunebench devices\nLists the CPU and each GPU a run can use (train.device = cpu | cuda | "
               "cuda:N),\nor why there is none.\n");
        return 0;
    }
    if (argc > 0) {
        fprintf(stderr, "tunebench devices: unexpected argument '%s'\n", argv[0]);
        return TB_EXIT_USAGE;
    }
    char report[8192];
    tb_devices_report(report, sizeof report);
    fputs(report, stdout);
    return 0;
}
