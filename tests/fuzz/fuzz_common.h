/* Shared by the file-based fuzz targets: a private temporary directory (on /dev/shm
 * when it exists: the readers take paths, so each input is written to a file there),
 * and a helper that writes one file. */
#ifndef ADEBERT_FUZZ_COMMON_H
#define ADEBERT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256];

static void fuzz_make_dir(const char *tag)
{
    const char *bases[2] = {"/dev/shm", "/tmp"};
    for (int i = 0; i < 2 && !fuzz_dir[0]; i++) {
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/adebert-fuzz-%s-XXXXXX", bases[i], tag);
        if (!mkdtemp(fuzz_dir))
            fuzz_dir[0] = 0;
    }
    if (!fuzz_dir[0])
        abort();
}

/* fuzz_dir/name := data[0..n); returns the path (static buffer per call site is not
 * needed: callers copy it). */
static void fuzz_write(const char *name, const void *data, size_t n, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(data, 1, n, f) != n)
        abort();
    fclose(f);
}
#endif
