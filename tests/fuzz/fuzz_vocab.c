/* libFuzzer target: io_vocab_load (vocab.txt) on arbitrary bytes written to a file;
 * an accepted vocabulary must answer lookups consistently and drive the tokenizer
 * over a fixed made-up sentence (both casings) within its bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_make_dir("vocab");
    return 0;
}

static const char SENTENCE[] = "Zorbex 20 mg gave the pat\xc3\xaf" "ent a r\xc3\xa4" "sh; [CLS] x-ray ##ok \xe6\x97\xa5\xe6\x9c\xac.";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], err[IO_ERRLEN];
    fuzz_write("vocab.txt", data, size, path, sizeof path);
    io_vocab *v = NULL;
    if (io_vocab_load(path, &v, err) != 0) {
        if (!err[0] || v)
            abort();
        return 0;
    }
    size_t n = io_vocab_size(v);
    for (size_t i = 0; i < n && i < 64; i++) {
        const char *t = io_vocab_token(v, (int32_t)i);
        if (!t)
            abort();
        int32_t id = io_vocab_find(v, t, strlen(t));
        if (id < 0 || (size_t)id >= n)
            abort();
    }
    if (io_vocab_token(v, (int32_t)n) != NULL)
        abort();
    for (int lower = 0; lower < 2; lower++) {
        io_tokenizer *tk = NULL;
        if (io_tokenizer_init(&tk, v, lower, err) != 0)
            continue;
        int32_t ids[64];
        size_t k = 0;
        if (io_tokenizer_encode(tk, SENTENCE, sizeof SENTENCE - 1, 64, ids, 64, &k, err) == 0) {
            if (k > 64)
                abort();
            for (size_t i = 0; i < k; i++)
                if (ids[i] < 0 || (size_t)ids[i] >= n)
                    abort();
        }
        io_tokenizer_free(tk);
    }
    io_vocab_free(v);
    return 0;
}
