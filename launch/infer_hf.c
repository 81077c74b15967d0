/* launch/infer_hf: an HF model folder as an infer scorer (see infer_hf.h). */
#include "launch/infer_hf.h"

#include "launch/cli.h"
#include "launch/hf_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int infer_open_hf(infer_ctx *c, const char *cmd, const char *dir, int64_t max_seqs, int64_t max_seq_len,
                  int threads, char err[MIO_ERRLEN])
{
    memset(c, 0, sizeof *c);
    char herr[HFIO_ERRLEN], nerr[NN_ERRLEN];
    char notes[4096] = "";
    if (!hfio_is_model_dir(dir)) {
        snprintf(err, MIO_ERRLEN, "%.300s is not a Hugging Face model folder (no config.json)", dir);
        return -1;
    }
    if (!hfio_has_weights(dir)) {
        snprintf(err, MIO_ERRLEN, "%.300s has no model.safetensors or pytorch_model.bin", dir);
        return -1;
    }
    int lc = 1;
    if (hfio_inspect(cmd, dir, -1, &c->info.mc, &c->info.vocab, &lc, notes, sizeof notes, herr)) {
        snprintf(err, MIO_ERRLEN, "%s", herr);
        goto fail;
    }
    const nn_config *mc = &c->info.mc;
    int64_t msl = max_seq_len > 0 ? max_seq_len : (mc->max_position_embeddings < 128 ? mc->max_position_embeddings : 128);
    if (msl < 2 || msl > mc->max_position_embeddings) {
        snprintf(err, MIO_ERRLEN, "max sequence length %lld is outside [2, %lld] (the model's max_position_embeddings)",
                 (long long)msl, (long long)mc->max_position_embeddings);
        goto fail;
    }
    if (mc->num_labels != 2) {
        snprintf(err, MIO_ERRLEN, "%.300s: the model has %lld labels; ADE detection is binary (2)", dir,
                 (long long)mc->num_labels);
        goto fail;
    }
    c->info.data.max_seq_len = (int)msl;
    c->info.data.lowercase = lc;
    if (nn_backend_cpu_create(&c->be, threads, nerr, sizeof nerr) ||
        nn_model_create_inference(&c->model, &c->info.mc, c->be, max_seqs * msl, max_seqs, msl, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        goto fail;
    }
    if (hfio_load_weights(cmd, dir, c->model, 42, notes, sizeof notes, herr)) {
        snprintf(err, MIO_ERRLEN, "%s", herr);
        goto fail;
    }
    /* an untrained head would score at random: a model to serve must bring its own */
    if (strstr(notes, "initialised (") && strstr(notes, "classifier.")) {
        snprintf(err, MIO_ERRLEN, "%.300s has no classifier.* tensors (not a fine-tuned classifier; it would score at random)",
                 dir);
        goto fail;
    }
    if (infer_finish_open(c, max_seqs, msl, err))
        goto fail;
    fputs(notes, stderr);
    return 0;
fail:
    infer_close(c);
    return -1;
}
