/* libFuzzer target: the corpus readers (io/corpus.c) on arbitrary bytes written to a
 * file: byte 0 picks the format (0 .tsv, 1 .csv, 2 .jsonl, 3 the ADE distribution:
 * DRUG-AE.rel = the bytes up to the first NUL, ADE-NEG.txt = the rest) and the view
 * (bit 2: dedup). An accepted corpus must hold well-formed rows (labels 0/1, texts
 * NUL-terminated at their length, valid pointers), and its splits and leakage must
 * compute. Seeds: tests/fuzz/corpus_seeds (made up sentences, no corpus text). */
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
    fuzz_make_dir("corpus");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fmt = data[0] & 3;
    io_view view = (data[0] >> 2) & 1 ? IO_VIEW_DEDUP : IO_VIEW_HF;
    data++;
    size--;
    char path[512], p2[512], err[IO_ERRLEN];
    io_corpus c;
    memset(&c, 0, sizeof c);
    int rc;
    if (fmt < 3) {
        static const char *const names[3] = {"in.tsv", "in.csv", "in.jsonl"};
        fuzz_write(names[fmt], data, size, path, sizeof path);
        rc = io_corpus_load_file(path, view, &c, err);
    } else {
        const uint8_t *z = memchr(data, 0, size);
        size_t a = z ? (size_t)(z - data) : size;
        fuzz_write("DRUG-AE.rel", data, a, path, sizeof path);
        fuzz_write("ADE-NEG.txt", data + (z ? a + 1 : a), z ? size - a - 1 : 0, p2, sizeof p2);
        rc = io_corpus_load_ade(fuzz_dir, view, &c, err);
    }
    if (rc != 0) {
        if (!err[0] || !memchr(err, 0, IO_ERRLEN))
            abort(); /* an error must say something, in one terminated line */
        return 0;
    }
    for (size_t i = 0; i < c.n; i++) {
        if (c.label[i] > 1 || !c.text[i] || c.text[i][c.len[i]] != '\0' || strlen(c.text[i]) != c.len[i])
            abort();
        if (c.text[i] < c.arena || c.text[i] + c.len[i] >= c.arena + c.arena_size)
            abort();
    }
    uint32_t *first = malloc((c.n ? c.n : 1) * sizeof *first);
    if (first && io_corpus_text_classes(&c, first, err) == 0)
        for (size_t i = 0; i < c.n; i++)
            if (first[i] > i)
                abort();
    free(first);
    for (int k = 0; k < 3 && c.n; k++) {
        io_split s;
        memset(&s, 0, sizeof s);
        if (io_split_make(&c, (io_split_kind)k, 42, IO_TEST_FRACTION, 0.1, &s, err) == 0) {
            if (s.n_train + s.n_val + s.n_test > c.n)
                abort();
            io_leakage lk;
            (void)io_split_leakage(&c, &s, &lk, err);
            io_split_free(&s);
        }
    }
    io_corpus_free(&c);
    return 0;
}
