/* libFuzzer target: the HDF5 checkpoint reader (io/checkpoint.c) on mutations of a
 * real small checkpoint written to a file: ckpt_verify (metadata only, then every
 * tensor), ckpt_read_state, and ckpt_read into buffers sized by the seed's table.
 * An accepted file must give in-bounds state (vocab tokens, metrics bytes).
 * Seed: tests/fuzz/checkpoint_seeds/tiny.h5, made by `fuzz_checkpoint -make_seed=PATH`
 * (ckpt_write of the table below: 3 tensors, 5 tokens, one metrics line).
 * HDF5 itself is not instrumented: its crashes show up as SEGV. After each input no HDF5
 * object may be left open (ours to close); memory HDF5 keeps after an error on a
 * corrupt file is its own (run with LSAN_OPTIONS=suppressions=tests/fuzz/hdf5_lsan.supp). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "io/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ckpt_tensor TABLE[3] = {
    {"bert.embeddings.word_embeddings.weight", 0, 20, 2, {5, 4}},
    {"bert.pooler.dense.bias", 20, 4, 1, {4}},
    {"classifier.weight", 24, 8, 2, {2, 4}},
};
#define NFLOATS 32

static int make_seed(const char *path)
{
    float p[NFLOATS], m[NFLOATS], v[NFLOATS];
    for (int i = 0; i < NFLOATS; i++) {
        p[i] = (float)i * 0.25f - 3.0f;
        m[i] = (float)i * 1e-3f;
        v[i] = (float)i * 1e-6f;
    }
    static const char *const vocab[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "zorbex"};
    static const char metrics[] = "{\"split\":\"val\",\"epoch\":1,\"f1\":0.5}\n";
    ckpt_state st;
    memset(&st, 0, sizeof st);
    st.adebert_version = "fuzz-seed";
    st.epoch = 1;
    st.step = 7;
    st.seed = 42;
    st.loss_scale = 1;
    st.config_json = "{\"hidden_size\":4}";
    st.data_json = "{\"view\":\"hf\"}";
    st.vocab_n = 5;
    st.vocab = vocab;
    st.metrics = metrics;
    st.metrics_len = sizeof metrics - 1;
    char err[IO_ERRLEN];
    if (ckpt_write(path, TABLE, 3, p, m, v, &st, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (!strncmp((*argv)[i], "-make_seed=", 11))
            exit(make_seed((*argv)[i] + 11));
    fuzz_make_dir("checkpoint");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], err[IO_ERRLEN];
    fuzz_write("ck.h5", data, size, path, sizeof path);
    (void)ckpt_verify(path, 0, err);
    (void)ckpt_verify(path, 1, err);
    ckpt_state st;
    memset(&st, 0, sizeof st);
    if (ckpt_read_state(path, &st, err) == 0) {
        for (size_t i = 0; i < st.vocab_n; i++)
            if (!st.vocab[i] || strlen(st.vocab[i]) > 1024)
                abort();
        if (st.metrics_len && (!st.metrics || st.metrics[st.metrics_len] != '\0'))
            abort();
        ckpt_state_free(&st);
    }
    float p[NFLOATS], m[NFLOATS], v[NFLOATS];
    memset(&st, 0, sizeof st);
    if (ckpt_read(path, TABLE, 3, p, m, v, &st, err) == 0)
        ckpt_state_free(&st);
    /* every file, dataset, group, type, space and attribute the reader opened is closed:
     * an HDF5 handle left open on an error path is a leak of ours, not of HDF5 */
    ssize_t open_objs = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_objs != 0) {
        fprintf(stderr, "fuzz_checkpoint: %zd HDF5 objects left open\n", open_objs);
        abort();
    }
    return 0;
}
