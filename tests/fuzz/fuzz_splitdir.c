/* libFuzzer target: a split folder's manifest.json (io/splitdir.c) on arbitrary bytes,
 * beside fixed train/val/test.jsonl (tests/fuzz/splitdir_parts, made-up rows): is,
 * load (sha256 verified against the manifest), split and hashes. The parts are the
 * corpus target's business (fuzz_corpus .jsonl); here the manifest's fields are. An
 * accepted folder's split must cover exactly the rows loaded.
 * Seed: tests/fuzz/splitdir_seeds/manifest.json (adebert data split's own). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "tests/fuzz/fuzz_common.h"

#ifndef FUZZ_SRC_DIR
#error FUZZ_SRC_DIR (tests/fuzz) must be defined
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_make_dir("splitdir");
    static const char *const parts[3] = {"train.jsonl", "val.jsonl", "test.jsonl"};
    for (int i = 0; i < 3; i++) {
        char src[512], dst[512], buf[1 << 16];
        snprintf(src, sizeof src, "%s/splitdir_parts/%s", FUZZ_SRC_DIR, parts[i]);
        FILE *f = fopen(src, "rb");
        if (!f)
            abort();
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fuzz_write(parts[i], buf, n, dst, sizeof dst);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], err[IO_ERRLEN];
    fuzz_write(IO_SPLITDIR_MANIFEST, data, size, path, sizeof path);
    if (!io_splitdir_is(fuzz_dir))
        abort();
    char *h = NULL;
    if (io_splitdir_hashes(fuzz_dir, &h, err) == 0 && !h)
        abort();
    free(h);
    io_corpus c;
    memset(&c, 0, sizeof c);
    if (io_splitdir_load(fuzz_dir, &c, err) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    io_split s;
    memset(&s, 0, sizeof s);
    if (io_splitdir_split(fuzz_dir, c.n, &s, err) == 0) {
        if (s.n_train + s.n_val + s.n_test != c.n)
            abort();
        for (size_t i = 0; i < s.n_train; i++)
            if (s.train[i] >= c.n)
                abort();
        for (size_t i = 0; i < s.n_val; i++)
            if (s.val[i] >= c.n)
                abort();
        for (size_t i = 0; i < s.n_test; i++)
            if (s.test[i] >= c.n)
                abort();
        io_split_free(&s);
    }
    io_corpus_free(&c);
    return 0;
}
