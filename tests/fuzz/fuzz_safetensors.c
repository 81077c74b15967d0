/* libFuzzer target: io_safetensors_parse on arbitrary bytes, then every tensor it
 * accepts is read back as fp32 where its dtype allows. */
#include <stdint.h>
#include <stdlib.h>

#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    io_safetensors st;
    char err[IO_ERRLEN];
    if (io_safetensors_parse(data, size, &st, err) != 0) return 0;
    for (size_t i = 0; i < st.n; i++) {
        const io_st_tensor *t = &st.tensors[i];
        size_t n = (size_t)t->numel;
        if (n > ((size_t)1 << 24)) continue;
        float *x = malloc(n ? n * sizeof *x : 1);
        if (!x) continue;
        (void)io_safetensors_read_f32(&st, t, x, n, err);
        free(x);
        (void)io_safetensors_find(&st, t->name);
    }
    io_safetensors_free(&st);
    return 0;
}
