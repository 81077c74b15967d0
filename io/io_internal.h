/* Shared by the io module's own sources only (not part of its contract). */
#ifndef ADEBERT_IO_INTERNAL_H
#define ADEBERT_IO_INTERNAL_H

#include "io/io.h"

/* Formats one error line into err (when non-NULL) and returns -1, so a failing
 * path reads `return io_fail(err, "%s:%zu: ...", path, line);`. */
int io_fail(char err[IO_ERRLEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The whole regular file, NUL-terminated (size + 1 bytes, malloc'd). */
int io_read_file(const char *path, char **data, size_t *size, char err[IO_ERRLEN]);

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF; NUL refused too): the
 * offset of the first bad byte, or `len` when all is well. */
size_t io_utf8_text_invalid_at(const unsigned char *s, size_t len);

/* 1 when a JSON text holds a \u0000 escape, which cJSON would silently end a
 * string at. */
int io_json_has_nul_escape(const char *s, size_t len);

/* FNV-1a with a finaliser: a hash for open-addressing text tables. */
uint64_t io_hash_bytes(const char *s, size_t len);

/* IEEE binary16 -> binary32, exact (subnormals, inf and NaN kept). */
float io_half_to_float(uint16_t h);

/* 32 bytes (a sha256 digest) as 64 lowercase hex digits and a NUL. */
void io_hex32(const uint8_t d[32], char hex[65]);

#endif
