/* libFuzzer target: io_torchbin_parse on arbitrary bytes, then every tensor it
 * accepts is read back (so an offset or stride check that let something through
 * shows up as an out-of-bounds read under ASan). Seeds: tests/reference/torchbin/. */
#include <stdint.h>
#include <stdlib.h>

#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    io_torchbin b;
    char err[IO_ERRLEN];
    if (io_torchbin_parse(data, size, &b, err) != 0) return 0;
    for (size_t i = 0; i < b.n; i++) {
        size_t n = (size_t)b.tensors[i].numel;
        if (n > ((size_t)1 << 24)) continue; /* bounded by the file, but keep RSS small */
        float *x = malloc(n ? n * sizeof *x : 1);
        if (!x) continue;
        (void)io_torchbin_read_f32(&b, i, x, n, err);
        free(x);
    }
    (void)io_torchbin_find(&b, "bert.embeddings.word_embeddings.weight");
    io_torchbin_free(&b);
    return 0;
}
