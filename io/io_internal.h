/* Shared by the io module's own sources only (not part of its contract). */
#ifndef ADEBERT_IO_INTERNAL_H
#define ADEBERT_IO_INTERNAL_H

#include "io/io.h"

/* Formats one error line into err (when non-NULL) and returns -1, so a failing
 * path reads `return io_fail(err, "%s:%zu: ...", path, line);`. */
int io_fail(char err[IO_ERRLEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* IEEE binary16 -> binary32, exact (subnormals, inf and NaN kept). */
float io_half_to_float(uint16_t h);

#endif
