#include "io/io_internal.h"

#include <stdarg.h>
#include <stdio.h>

int io_fail(char err[IO_ERRLEN], const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, IO_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}
