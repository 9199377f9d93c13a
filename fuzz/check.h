/* What the fuzz targets share: CHECK says which invariant broke before it
 * traps (inlined helpers share one trap, so the stack alone does not tell). */
#ifndef RD_FUZZ_CHECK_H
#define RD_FUZZ_CHECK_H

#include <stdio.h>

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                                   \
            __builtin_trap();                                                                                          \
        }                                                                                                              \
    } while (0)

#endif
