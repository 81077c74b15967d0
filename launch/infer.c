/* launch/infer: a checkpoint as a scorer (see infer.h). */
#include "launch/infer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int alloc_batch_buffers(infer_ctx *c, int64_t max_seqs, int64_t max_seq_len, char err[MIO_ERRLEN]);

int infer_finish_open(infer_ctx *c, int64_t max_seqs, int64_t max_seq_len, char err[MIO_ERRLEN])
{
    char ierr[IO_ERRLEN];
    if (io_tokenizer_init(&c->tok, c->info.vocab, c->info.data.lowercase, ierr)) {
        snprintf(err, MIO_ERRLEN, "%s", ierr);
        return -1;
    }
    snprintf(c->precision, sizeof c->precision, "fp32");
    return alloc_batch_buffers(c, max_seqs, max_seq_len, err);
}

int infer_open(infer_ctx *c, const char *ckpt, int64_t max_seqs, int64_t max_seq_len, int threads,
               char err[MIO_ERRLEN])
{
    memset(c, 0, sizeof *c);
    char nerr[NN_ERRLEN];
    if (nn_backend_cpu_create(&c->be, threads, nerr, sizeof nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        return -1;
    }
    /* mio_open_model caps the arena at max_position_embeddings; a longer request is
     * refused below, before any forward */
    if (mio_open_model(ckpt, c->be, max_seqs, max_seq_len, &c->info, &c->model, err))
        goto fail;
    int64_t msl = max_seq_len > 0 ? max_seq_len : c->info.data.max_seq_len;
    if (msl < 2 || msl > c->info.mc.max_position_embeddings) {
        snprintf(err, MIO_ERRLEN, "max sequence length %lld is outside [2, %lld] (the model's max_position_embeddings)",
                 (long long)msl, (long long)c->info.mc.max_position_embeddings);
        goto fail;
    }
    if (c->info.mc.num_labels != 2) {
        snprintf(err, MIO_ERRLEN, "%.300s: the model has %lld labels; ADE detection is binary (2)", ckpt,
                 (long long)c->info.mc.num_labels);
        goto fail;
    }
    if (infer_finish_open(c, max_seqs, msl, err))
        goto fail;
    return 0;
fail:
    infer_close(c);
    return -1;
}

static int alloc_batch_buffers(infer_ctx *c, int64_t max_seqs, int64_t max_seq_len, char err[MIO_ERRLEN])
{
    c->max_seqs = max_seqs;
    c->max_seq_len = max_seq_len;
    size_t ms = (size_t)max_seqs;
    c->ids = malloc(ms * (size_t)max_seq_len * sizeof *c->ids);
    c->offsets = malloc((ms + 1) * sizeof *c->offsets);
    c->labels = malloc(ms * sizeof *c->labels);
    c->logits = malloc(ms * 2 * sizeof *c->logits);
    if (!c->ids || !c->offsets || !c->labels || !c->logits) {
        snprintf(err, MIO_ERRLEN, "out of memory for batch buffers");
        return -1;
    }
    return 0;
}

int infer_open_replica(infer_ctx *r, const infer_ctx *c, int threads, char err[MIO_ERRLEN])
{
    memset(r, 0, sizeof *r);
    char nerr[NN_ERRLEN];
    if (nn_backend_cpu_create(&r->be, threads, nerr, sizeof nerr) ||
        nn_model_create_inference_shared(&r->model, c->model, r->be, c->max_seqs * c->max_seq_len, c->max_seqs,
                                         c->max_seq_len, nerr)) {
        snprintf(err, MIO_ERRLEN, "%s", nerr);
        infer_close(r);
        return -1;
    }
    if (alloc_batch_buffers(r, c->max_seqs, c->max_seq_len, err) || infer_set_precision(r, c->precision, err)) {
        infer_close(r);
        return -1;
    }
    return 0;
}

int infer_pool_open(infer_pool *pl, infer_ctx *c, size_t max_batches, char err[MIO_ERRLEN])
{
    memset(pl, 0, sizeof *pl);
    pl->c = c;
    int W = omp_get_max_threads();
    if (W > INFER_MAX_WORKERS)
        W = INFER_MAX_WORKERS;
    if ((size_t)W > max_batches)
        W = (int)max_batches;
    if (W < 1)
        W = 1;
    pl->rep = calloc((size_t)W, sizeof *pl->rep);
    pl->seq = malloc((size_t)W * (size_t)c->max_seqs * sizeof *pl->seq);
    if (!pl->rep || !pl->seq) {
        snprintf(err, MIO_ERRLEN, "out of memory for scoring workers");
        infer_pool_close(pl);
        return -1;
    }
    for (int w = 1; w < W; w++, pl->W = w)
        if (infer_open_replica(&pl->rep[w], c, 1, err)) {
            infer_pool_close(pl);
            return -1;
        }
    pl->W = W;
    return 0;
}

void infer_pool_close(infer_pool *pl)
{
    if (!pl)
        return;
    for (int w = 1; w < pl->W; w++)
        infer_close(&pl->rep[w]);
    free(pl->rep);
    free(pl->seq);
    memset(pl, 0, sizeof *pl);
}

int infer_pool_score(infer_pool *pl, size_t n, const int32_t *ids, size_t stride, const size_t *len,
                     const uint8_t *labels, double *p, double *batch_loss, size_t *bad, char err[MIO_ERRLEN])
{
    const size_t B = (size_t)pl->c->max_seqs, nb = (n + B - 1) / B;
    int W = pl->W;
    if ((size_t)W > nb)
        W = nb ? (int)nb : 1;
    size_t first_bad = nb;
    omp_set_max_active_levels(1); /* a worker's own parallel regions run on its thread */
#pragma omp parallel num_threads(W) if (W > 1)
    {
        int w = omp_get_thread_num();
        infer_ctx *c = w ? &pl->rep[w] : pl->c;
        const int32_t **seq = pl->seq + (size_t)w * B;
        char e[MIO_ERRLEN];
        for (size_t b = (size_t)w; b < nb; b += (size_t)W) {
            size_t stop;
#pragma omp atomic read
            stop = first_bad;
            if (stop < nb)
                break;
            size_t i = b * B, k = n - i < B ? n - i : B;
            for (size_t j = 0; j < k; j++)
                seq[j] = ids + (i + j) * stride;
            double loss = 0;
            if (infer_batch(c, (int64_t)k, seq, len + i, labels ? labels + i : NULL, p + i, &loss, e)) {
#pragma omp critical(infer_pool_fail)
                if (b < first_bad) {
                    memcpy(err, e, MIO_ERRLEN);
#pragma omp atomic write
                    first_bad = b;
                }
                break;
            }
            if (batch_loss)
                batch_loss[b] = loss;
        }
    }
    if (first_bad < nb) {
        *bad = first_bad;
        return -1;
    }
    return 0;
}

int infer_precision_valid(const char *name)
{
    return name && (!strcmp(name, "fp32") || !strcmp(name, "bf16") || !strcmp(name, "auto")) ? 0 : -1;
}

int infer_set_precision(infer_ctx *c, const char *name, char err[MIO_ERRLEN])
{
    char why[NN_ERRLEN];
    if (nn_backend_cpu_set_precision_name(c->be, name, why, sizeof why)) {
        snprintf(err, MIO_ERRLEN, "--precision %s: %s", name, why);
        return -1;
    }
    snprintf(c->precision, sizeof c->precision, "%s", *nn_backend_cpu_isa(c->be) ? "bf16" : "fp32");
    return 0;
}

void infer_close(infer_ctx *c)
{
    if (!c)
        return;
    free(c->ids);
    free(c->offsets);
    free(c->labels);
    free(c->logits);
    io_tokenizer_free(c->tok);
    nn_model_free(c->model);
    if (c->be)
        nn_backend_destroy(c->be);
    mio_info_free(&c->info);
    memset(c, 0, sizeof *c);
}

int infer_encode(infer_ctx *c, const char *text, size_t len, int32_t *ids, size_t *n, char err[IO_ERRLEN])
{
    return io_tokenizer_encode(c->tok, text, len, (size_t)c->max_seq_len, ids, (size_t)c->max_seq_len, n, err);
}

int infer_batch(infer_ctx *c, int64_t n, const int32_t *const *seq, const size_t *len, const uint8_t *labels,
                double *p, double *loss_sum, char err[MIO_ERRLEN])
{
    if (n < 0 || n > c->max_seqs) {
        snprintf(err, MIO_ERRLEN, "batch of %lld sequences exceeds %lld", (long long)n, (long long)c->max_seqs);
        return -1;
    }
    if (n == 0)
        return 0;
    int64_t t = 0;
    c->offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (len[i] < 1 || (int64_t)len[i] > c->max_seq_len) {
            snprintf(err, MIO_ERRLEN, "sequence of %zu tokens (at most %lld)", len[i], (long long)c->max_seq_len);
            return -1;
        }
        memcpy(c->ids + t, seq[i], len[i] * sizeof *c->ids);
        t += (int64_t)len[i];
        c->offsets[i + 1] = (int32_t)t;
        if (labels)
            c->labels[i] = labels[i];
    }
    nn_batch b = {0};
    b.nseq = n;
    b.ids = c->ids;
    b.offsets = c->offsets;
    b.labels = labels ? c->labels : NULL;
    b.loss_denominator = 1.0; /* the forward returns the batch's sum of losses */
    b.train = 0;
    b.no_grad = 1;
    float loss = 0;
    char nerr[NN_ERRLEN];
    if (nn_model_forward(c->model, &b, &loss, c->logits, nerr)) {
        snprintf(err, MIO_ERRLEN, "forward: %s", nerr);
        return -1;
    }
    for (int64_t j = 0; j < n; j++) {
        p[j] = nn_binary_p1(c->logits + 2 * j); /* the scorer training's evaluations use */
        if (isnan(p[j])) {
            snprintf(err, MIO_ERRLEN, "the model gave a NaN score (damaged weights?)");
            return -1;
        }
    }
    if (labels && loss_sum)
        *loss_sum += loss;
    return 0;
}
