/* zoo.h: networks built into the core for the default job, benchmarks and
 * tests. Model plugins (a later issue) build theirs the same way. */
#ifndef TB_ZOO_H
#define TB_ZOO_H

#include "net.h"

/* conv(c->32, 3x3, pad 1)-relu-maxpool(2) - conv(32->64, 3x3, pad 1)-relu-maxpool(2)
 * - flatten - linear(128)-relu - linear(classes), PyTorch's default init.
 * state_dict keys: features.0, features.3, classifier.0, classifier.2. */
tb_net *tb_zoo_small_cnn(int channels, int height, int width, int classes);

/* Names accepted by tb_zoo_build, comma-separated. */
const char *tb_zoo_names(void);
/* Builds a zoo network by name, or returns NULL. */
tb_net *tb_zoo_build(const char *name, int channels, int height, int width, int classes);

#endif
