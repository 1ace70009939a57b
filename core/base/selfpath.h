/* selfpath.h: where this tunebench's own files are, found from the running
 * executable (/proc/self/exe), so an installed tunebench works from any
 * prefix it was installed to (cmake --install build --prefix P).
 *
 * The folder found holds plugins/ and libtunebench_cuda.so:
 *   - an installed tunebench (P/bin/tunebench): <exe_dir>/../lib/tunebench
 *     (the install's bin-to-libdir path, TB_EXE_TO_PKGLIBDIR);
 *   - an executable of the build tree (build/tunebench, build/tests/test_x):
 *     the build directory (TB_BUILD_DIR), i.e. <exe_dir>/plugins for build/tunebench.
 * An executable inside the build directory whose ../lib/tunebench exists is
 * taken as installed (an install staged under the build directory). */
#ifndef TB_SELFPATH_H
#define TB_SELFPATH_H

#include <stddef.h>

/* Fills dir (len bytes) with the folder described above and returns a short
 * label of how it was found ("next to the executable", "the build tree");
 * NULL (dir = "") when /proc/self/exe cannot be read or the path is too long. */
const char *tb_self_pkglibdir(char *dir, size_t len);

#endif
