/* BertForSequenceClassification, post-LN, on flat buffers. Only backend calls
 * touch device memory; host code here validates batches and stages indices. */
#include "nn/nn.h"
#include "nn/philox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t wqkv, bqkv, wo, bo, ln1g, ln1b, wi, bi, wo2, bo2, ln2g, ln2b;
} layer_off;

typedef struct {
    float *qkv, *probs, *ctx, *ln1_in, *ln1_mean, *ln1_rstd, *h1, *ffn_pre, *ffn_act, *ln2_in, *ln2_mean, *ln2_rstd;
} layer_act;

struct nn_model {
    nn_config cfg;
    nn_backend *be;
    const nn_backend_ops *op;
    int64_t max_tokens, max_seqs, max_seq_len;
    int64_t H, I, C, L, nh, dh;
    int infer; /* nn_model_create_inference: no G, layers share activations, no backward */
    int shared_P; /* P belongs to another model (nn_model_create_inference_shared) */

    nn_param *params;
    size_t nparams, nfloats;
    float *P, *G;
    size_t o_wemb, o_pemb, o_temb, o_elng, o_elnb, o_pw, o_pb, o_cw, o_cb;
    layer_off *lo;

    char *arena;
    size_t arena_bytes;
    /* device index arrays */
    int32_t *d_ids, *d_pos, *d_types, *d_offsets, *d_labels, *d_cls_idx, *d_zero_pos;
    uint32_t *d_tok_sample, *d_seq_sample;
    int64_t *d_prob_off;
    float *d_cw, *d_loss;
    /* activations */
    float *emb, *emb_mean, *emb_rstd;
    float **h; /* L + 1 of [T, H] */
    layer_act *la;
    float *cls_in, *pooled, *pooled_drop, *logits, *dlogits;
    /* backward scratch */
    float *dA, *dB, *dC, *dI, *dqkv, *dctx, *dpool, *dcls;

    /* host staging */
    int32_t *h_pos, *h_types, *h_cls_idx;
    uint32_t *h_tok_sample, *h_seq_sample;
    int64_t *h_prob_off;

    /* last forward */
    int64_t cur_T, cur_B, cur_maxlen;
    int cur_valid, cur_labels;
    nn_rng_key key;
    float p_hidden, p_attn, p_cls;

    nn_grad_ready_fn grad_ready;
    void *grad_ready_ctx;
};

/* ------------------------------------------------------------------ params */

static int add_param(nn_model *m, size_t cap, const char *name, int ndim, int64_t d0, int64_t d1, int decay)
{
    if (m->nparams >= cap) return 1;
    nn_param *p = &m->params[m->nparams++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    p->offset = m->nfloats;
    p->decay = decay;
    m->nfloats += p->numel;
    return 0;
}

static void last_offset(nn_model *m, size_t *dst)
{
    if (dst && m->nparams > 0) *dst = m->params[m->nparams - 1].offset;
}

/* Layout: HF names, but query/key/value weights adjacent (one [3H, H] matrix)
 * and their biases adjacent (one [3H] vector) so the projection is one GEMM. */
static int build_params(nn_model *m)
{
    const nn_config *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size;
    size_t cap = 5 + 16 * (size_t)c->num_hidden_layers + 4;
    m->params = calloc(cap, sizeof *m->params);
    m->lo = calloc((size_t)c->num_hidden_layers, sizeof *m->lo);
    if (!m->params || !m->lo) return 1;
    int rc = 0;
    char nm[96];
    rc |= add_param(m, cap, "bert.embeddings.word_embeddings.weight", 2, c->vocab_size, H, 1);
    m->o_wemb = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "bert.embeddings.position_embeddings.weight", 2, c->max_position_embeddings, H, 1);
    m->o_pemb = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "bert.embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, H, 1);
    m->o_temb = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "bert.embeddings.LayerNorm.weight", 1, H, 0, 0);
    m->o_elng = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "bert.embeddings.LayerNorm.bias", 1, H, 0, 0);
    m->o_elnb = m->params[m->nparams - 1].offset;
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        layer_off *o = &m->lo[l];
#define P(dst, suffix, nd, a, b, dec)                                                          \
    snprintf(nm, sizeof nm, "bert.encoder.layer.%lld.%s", (long long)l, suffix);               \
    rc |= add_param(m, cap, nm, nd, a, b, dec);                                                \
    last_offset(m, dst);
        P(&o->wqkv, "attention.self.query.weight", 2, H, H, 1)
        P(NULL, "attention.self.key.weight", 2, H, H, 1)
        P(NULL, "attention.self.value.weight", 2, H, H, 1)
        P(&o->bqkv, "attention.self.query.bias", 1, H, 0, 0)
        P(NULL, "attention.self.key.bias", 1, H, 0, 0)
        P(NULL, "attention.self.value.bias", 1, H, 0, 0)
        P(&o->wo, "attention.output.dense.weight", 2, H, H, 1)
        P(&o->bo, "attention.output.dense.bias", 1, H, 0, 0)
        P(&o->ln1g, "attention.output.LayerNorm.weight", 1, H, 0, 0)
        P(&o->ln1b, "attention.output.LayerNorm.bias", 1, H, 0, 0)
        P(&o->wi, "intermediate.dense.weight", 2, I, H, 1)
        P(&o->bi, "intermediate.dense.bias", 1, I, 0, 0)
        P(&o->wo2, "output.dense.weight", 2, H, I, 1)
        P(&o->bo2, "output.dense.bias", 1, H, 0, 0)
        P(&o->ln2g, "output.LayerNorm.weight", 1, H, 0, 0)
        P(&o->ln2b, "output.LayerNorm.bias", 1, H, 0, 0)
#undef P
    }
    rc |= add_param(m, cap, "bert.pooler.dense.weight", 2, H, H, 1);
    m->o_pw = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "bert.pooler.dense.bias", 1, H, 0, 0);
    m->o_pb = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "classifier.weight", 2, c->num_labels, H, 1);
    m->o_cw = m->params[m->nparams - 1].offset;
    rc |= add_param(m, cap, "classifier.bias", 1, c->num_labels, 0, 0);
    m->o_cb = m->params[m->nparams - 1].offset;
    return rc;
}

/* ------------------------------------------------------------------ arena */

typedef struct {
    char *base;
    size_t off, cap;
} bump;

static void *take(bump *b, size_t bytes)
{
    size_t at = (b->off + 63) & ~(size_t)63;
    b->off = at + bytes;
    if (!b->base) return NULL; /* sizing pass */
    return b->base + at;
}

#define TAKE(ptr, count) ptr = take(&bp, (size_t)(count) * sizeof *(ptr))

static void carve(nn_model *m, char *base)
{
    bump bp = {base, 0, 0};
    int64_t T = m->max_tokens, B = m->max_seqs, H = m->H, I = m->I, C = m->C;
    int64_t probs = m->nh * m->max_seq_len * T; /* >= heads * sum_s L_s^2 */
    TAKE(m->d_ids, T);
    TAKE(m->d_pos, T);
    TAKE(m->d_types, T);
    TAKE(m->d_tok_sample, T);
    TAKE(m->d_offsets, B + 1);
    TAKE(m->d_labels, B);
    TAKE(m->d_cls_idx, B);
    TAKE(m->d_zero_pos, B);
    TAKE(m->d_seq_sample, B);
    TAKE(m->d_prob_off, B);
    TAKE(m->d_cw, C);
    TAKE(m->d_loss, 1);
    TAKE(m->emb, T * H);
    TAKE(m->emb_mean, T);
    TAKE(m->emb_rstd, T);
    /* inference: two hidden-state buffers used in turn (layer l reads h[l] and writes
     * h[l + 1]) and one set of layer activations all layers overwrite */
    int64_t nh_bufs = m->infer ? (m->L > 0 ? 2 : 1) : m->L + 1, nla = m->infer ? (m->L > 0 ? 1 : 0) : m->L;
    for (int64_t l = 0; l <= m->L; l++) {
        if (l < nh_bufs) TAKE(m->h[l], T * H);
        else m->h[l] = m->h[l % 2];
    }
    for (int64_t l = 0; l < nla; l++) {
        layer_act *a = &m->la[l];
        TAKE(a->qkv, T * 3 * H);
        TAKE(a->probs, probs);
        TAKE(a->ctx, T * H);
        TAKE(a->ln1_in, T * H);
        TAKE(a->ln1_mean, T);
        TAKE(a->ln1_rstd, T);
        TAKE(a->h1, T * H);
        TAKE(a->ffn_pre, T * I);
        TAKE(a->ffn_act, T * I);
        TAKE(a->ln2_in, T * H);
        TAKE(a->ln2_mean, T);
        TAKE(a->ln2_rstd, T);
    }
    TAKE(m->cls_in, B * H);
    TAKE(m->pooled, B * H);
    TAKE(m->pooled_drop, B * H);
    TAKE(m->logits, B * C);
    TAKE(m->dlogits, B * C); /* the loss's gradient: written whenever labels are given */
    if (!m->infer) { /* backward scratch */
        TAKE(m->dA, T * H);
        TAKE(m->dB, T * H);
        TAKE(m->dC, T * H);
        TAKE(m->dI, T * I);
        TAKE(m->dqkv, T * 3 * H);
        TAKE(m->dctx, T * H);
        TAKE(m->dpool, B * H);
        TAKE(m->dcls, B * H);
    }
    m->arena_bytes = bp.off;
    if (base) /* the shared layer activations, now that la[0] has its pointers */
        for (int64_t l = nla; l < m->L; l++) m->la[l] = m->la[0];
}

/* ------------------------------------------------------------------ lifetime */

/* The parameters were (or may have been) written: converted copies the backend keeps
 * of the weights (->gemm_weight) are stale. */
static void params_written(nn_model *m)
{
    if (m->P && m->op->weights_changed) m->op->weights_changed(m->be, m->P, m->nfloats * sizeof(float));
}

void nn_model_free(nn_model *m)
{
    if (!m) return;
    if (m->be) {
        params_written(m); /* freed memory: the next model may get the same addresses */
        if (m->P && !m->shared_P) m->op->free(m->be, m->P);
        if (m->G) m->op->free(m->be, m->G);
        if (m->arena) m->op->free(m->be, m->arena);
    }
    free(m->params);
    free(m->lo);
    free(m->h);
    free(m->la);
    free(m->h_pos);
    free(m->h_types);
    free(m->h_cls_idx);
    free(m->h_tok_sample);
    free(m->h_seq_sample);
    free(m->h_prob_off);
    free(m);
}

static int model_create(nn_model **out, const nn_config *cfg, nn_backend *be, int64_t max_tokens, int64_t max_seqs,
                        int64_t max_seq_len, int infer, float *shared_P, char err[NN_ERRLEN])
{
    *out = NULL;
    if (nn_config_validate(cfg, err)) return 1;
    if (!be || !be->ops) {
        snprintf(err, NN_ERRLEN, "model: no backend");
        return 1;
    }
    if (max_seq_len < 1 || max_seq_len > cfg->max_position_embeddings) {
        snprintf(err, NN_ERRLEN, "model: max_seq_len %lld must be in [1, max_position_embeddings = %lld]",
                 (long long)max_seq_len, (long long)cfg->max_position_embeddings);
        return 1;
    }
    if (max_seqs < 1 || max_seqs > ((int64_t)1 << 24) || max_tokens < 1 || max_tokens > ((int64_t)1 << 26)) {
        snprintf(err, NN_ERRLEN, "model: max_seqs %lld / max_tokens %lld out of range", (long long)max_seqs,
                 (long long)max_tokens);
        return 1;
    }
    if (max_seq_len > max_tokens) max_seq_len = max_tokens;
    /* activation bytes, in double first: reject absurd sizes before allocating */
    double T = (double)max_tokens, H = (double)cfg->hidden_size, I = (double)cfg->intermediate_size;
    double est = 4.0 * ((double)cfg->num_hidden_layers *
                            (T * (9 * H + 2 * I) + (double)cfg->num_attention_heads * (double)max_seq_len * T) +
                        T * (10 * H + I));
    if (est > 1.0e12) {
        snprintf(err, NN_ERRLEN, "model: activations would need %.3g bytes (max_tokens %lld too large)", est,
                 (long long)max_tokens);
        return 1;
    }
    nn_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, NN_ERRLEN, "model: out of memory");
        return 1;
    }
    m->cfg = *cfg;
    m->infer = infer;
    m->be = be;
    m->op = be->ops;
    m->max_tokens = max_tokens;
    m->max_seqs = max_seqs;
    m->max_seq_len = max_seq_len;
    m->H = cfg->hidden_size;
    m->I = cfg->intermediate_size;
    m->C = cfg->num_labels;
    m->L = cfg->num_hidden_layers;
    m->nh = cfg->num_attention_heads;
    m->dh = m->H / m->nh;
    m->h = calloc((size_t)m->L + 1, sizeof *m->h);
    m->la = calloc((size_t)m->L, sizeof *m->la);
    m->h_pos = malloc((size_t)max_tokens * sizeof *m->h_pos);
    m->h_types = malloc((size_t)max_tokens * sizeof *m->h_types);
    m->h_tok_sample = malloc((size_t)max_tokens * sizeof *m->h_tok_sample);
    m->h_cls_idx = malloc((size_t)max_seqs * sizeof *m->h_cls_idx);
    m->h_seq_sample = malloc((size_t)max_seqs * sizeof *m->h_seq_sample);
    m->h_prob_off = malloc((size_t)max_seqs * sizeof *m->h_prob_off);
    if (!m->h || !m->la || !m->h_pos || !m->h_types || !m->h_tok_sample || !m->h_cls_idx || !m->h_seq_sample ||
        !m->h_prob_off || build_params(m)) {
        snprintf(err, NN_ERRLEN, "model: out of memory");
        nn_model_free(m);
        return 1;
    }
    carve(m, NULL);
    m->shared_P = shared_P != NULL;
    m->P = shared_P ? shared_P : m->op->alloc(be, m->nfloats * sizeof(float));
    if (m->P && !infer) m->G = m->op->alloc(be, m->nfloats * sizeof(float));
    if (m->P && (infer || m->G)) m->arena = m->op->alloc(be, m->arena_bytes);
    if (!m->arena) {
        snprintf(err, NN_ERRLEN, "model: cannot allocate %.1f MiB of parameters + activations on %s",
                 ((infer ? 1.0 : 2.0) * m->nfloats * sizeof(float) + m->arena_bytes) / 1048576.0, m->op->name);
        nn_model_free(m);
        return 1;
    }
    carve(m, m->arena);
    /* constant zeros: the classifier-dropout position */
    m->op->zero(be, m->d_zero_pos, (size_t)max_seqs * sizeof(int32_t));
    *out = m;
    return 0;
}

int nn_model_create(nn_model **out, const nn_config *cfg, nn_backend *be, int64_t max_tokens, int64_t max_seqs,
                    int64_t max_seq_len, char err[NN_ERRLEN])
{
    return model_create(out, cfg, be, max_tokens, max_seqs, max_seq_len, 0, NULL, err);
}

int nn_model_create_inference(nn_model **out, const nn_config *cfg, nn_backend *be, int64_t max_tokens,
                              int64_t max_seqs, int64_t max_seq_len, char err[NN_ERRLEN])
{
    return model_create(out, cfg, be, max_tokens, max_seqs, max_seq_len, 1, NULL, err);
}

int nn_model_create_inference_shared(nn_model **out, const nn_model *src, nn_backend *be, int64_t max_tokens,
                                     int64_t max_seqs, int64_t max_seq_len, char err[NN_ERRLEN])
{
    *out = NULL;
    if (!src || !be || !be->ops || be->ops != src->op || strcmp(be->ops->name, "cpu") != 0) {
        snprintf(err, NN_ERRLEN, "model: parameters can be shared only between CPU backends");
        return 1;
    }
    return model_create(out, &src->cfg, be, max_tokens, max_seqs, max_seq_len, 1, src->P, err);
}

int nn_model_is_inference(const nn_model *m) { return m->infer; }
const nn_config *nn_model_config(const nn_model *m) { return &m->cfg; }
nn_backend *nn_model_backend(const nn_model *m) { return m->be; }
size_t nn_model_num_params(const nn_model *m) { return m->nfloats; }
size_t nn_model_arena_bytes(const nn_model *m) { return m->arena_bytes; }
float *nn_model_param_buf(nn_model *m)
{
    params_written(m); /* the caller may write through it (the optimizer does, every step) */
    return m->P;
}
const float *nn_model_param_buf_const(const nn_model *m) { return m->P; }
float *nn_model_grad_buf(nn_model *m) { return m->G; }

const nn_param *nn_model_params(const nn_model *m, size_t *count)
{
    *count = m->nparams;
    return m->params;
}

const nn_param *nn_model_find_param(const nn_model *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

int nn_model_set_params(nn_model *m, const float *host, size_t n, char err[NN_ERRLEN])
{
    if (n != m->nfloats) {
        snprintf(err, NN_ERRLEN, "model: %zu parameters given, %zu expected", n, m->nfloats);
        return 1;
    }
    m->op->upload(m->be, m->P, host, n * sizeof(float));
    m->op->sync(m->be);
    params_written(m);
    return 0;
}

int nn_model_get_params(nn_model *m, float *host, size_t n, char err[NN_ERRLEN])
{
    if (n != m->nfloats) {
        snprintf(err, NN_ERRLEN, "model: buffer of %zu floats, %zu needed", n, m->nfloats);
        return 1;
    }
    m->op->download(m->be, host, m->P, n * sizeof(float));
    m->op->sync(m->be);
    return 0;
}

int nn_model_get_grads(nn_model *m, float *host, size_t n, char err[NN_ERRLEN])
{
    if (!m->G) {
        snprintf(err, NN_ERRLEN, "model: created for inference, it has no gradients");
        return 1;
    }
    if (n != m->nfloats) {
        snprintf(err, NN_ERRLEN, "model: buffer of %zu floats, %zu needed", n, m->nfloats);
        return 1;
    }
    m->op->download(m->be, host, m->G, n * sizeof(float));
    m->op->sync(m->be);
    return 0;
}

void nn_model_zero_grad(nn_model *m)
{
    if (!m->G) return;
    m->op->zero(m->be, m->G, m->nfloats * sizeof(float));
}

int nn_model_init_weights(nn_model *m, uint64_t seed, char err[NN_ERRLEN])
{
    float *host = malloc(m->nfloats * sizeof *host);
    if (!host) {
        snprintf(err, NN_ERRLEN, "model: out of memory for initial weights");
        return 1;
    }
    /* normal(0, 0.02) by Box-Muller on Philox words keyed by (seed, tensor index) */
    uint64_t z = nn_splitmix64(seed ^ 0x696e6974ull /* "init" */);
    for (size_t i = 0; i < m->nparams; i++) {
        const nn_param *p = &m->params[i];
        float *w = host + p->offset;
        size_t len = strlen(p->name);
        int is_ln_w = len >= 16 && strcmp(p->name + len - 16, "LayerNorm.weight") == 0;
        if (p->ndim == 1) {
            for (size_t j = 0; j < p->numel; j++) w[j] = is_ln_w ? 1.0f : 0.0f;
            continue;
        }
        for (size_t j = 0; j < p->numel; j += 2) {
            nn_philox4 r = nn_philox4x32_10((uint32_t)(j >> 1), (uint32_t)(j >> 33), (uint32_t)i, 0x5eed,
                                            (uint32_t)z, (uint32_t)(z >> 32));
            double u1 = ((double)(r.v[0] >> 8) + 0.5) / 16777216.0, u2 = (double)(r.v[1] >> 8) / 16777216.0;
            double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
            w[j] = (float)(0.02 * rad * cos(th));
            if (j + 1 < p->numel) w[j + 1] = (float)(0.02 * rad * sin(th));
        }
    }
    float *pad = host + m->o_wemb + (size_t)m->cfg.pad_token_id * (size_t)m->H;
    memset(pad, 0, (size_t)m->H * sizeof *pad);
    int rc = nn_model_set_params(m, host, m->nfloats, err);
    free(host);
    return rc;
}

/* ------------------------------------------------------------------ helpers */

/* C[M, N] (= | += by beta) A[M, K] op(W), W the weight matrix at offset w, stored packed:
 * [N, K] with trans_w (forward), [K, N] without (backward's dx). Through ->gemm_weight
 * where the backend has it: it may keep W converted (CPU bf16) instead of converting
 * it on every call. */
static void gemm_w(nn_model *m, int trans_w, int64_t M, int64_t N, int64_t K, const float *A, size_t w, float beta,
                   float *C)
{
    const nn_backend_ops *op = m->op;
    (op->gemm_weight ? op->gemm_weight : op->gemm)(m->be, 0, trans_w, M, N, K, 1.0f, A, K, m->P + w,
                                                   trans_w ? K : N, beta, C, N);
}

/* y[T, out] = x[T, in] W[out, in]^T + b */
static void linear_fwd(nn_model *m, float *y, const float *x, size_t w, size_t b, int64_t T, int64_t in, int64_t out)
{
    gemm_w(m, 1, T, out, in, x, w, 0.0f, y);
    m->op->bias_add(m->be, y, m->P + b, T, out);
}

/* dW += dy^T x ; db += colsum(dy) ; dx (=|+=) dy W  (dx NULL: skip) */
static void linear_bwd(nn_model *m, float *dx, int dx_acc, const float *dy, const float *x, size_t w, size_t b,
                       int64_t T, int64_t in, int64_t out)
{
    m->op->gemm(m->be, 1, 0, out, in, T, 1.0f, dy, out, x, in, 1.0f, m->G + w, in);
    m->op->bias_grad_acc(m->be, m->G + b, dy, T, out);
    if (dx) gemm_w(m, 0, T, in, out, dy, w, dx_acc ? 1.0f : 0.0f, dx);
}

/* The fused steps below use the backend's one-pass op where it has one, else the
 * primitives it stands for, in the same order (the same bits either way). */

/* x[T, n] += b, then y = gelu(x) and, unless dydx is NULL (inference), dydx = gelu'(x)
 * (dydx may be x: the model keeps the derivative, not the pre-activation) */
static void bias_gelu(nn_model *m, float *y, float *dydx, float *x, size_t b, int64_t T, int64_t n)
{
    const nn_backend_ops *op = m->op;
    if (op->bias_gelu_fwd) {
        op->bias_gelu_fwd(m->be, y, dydx, x, m->P + b, T, n);
        return;
    }
    op->bias_add(m->be, x, m->P + b, T, n);
    if (dydx) op->gelu_fwd_deriv(m->be, y, dydx, x, T * n);
    else op->gelu_fwd(m->be, y, x, T * n);
}

/* The tail of a post-LN residual block: x[T, H] = dropout(x + b) + res (the LayerNorm
 * input, kept for backward), y = LayerNorm(x) with gain g and shift beta */
static void bias_dropout_add_ln(nn_model *m, float *y, float *mean, float *rstd, float *x, size_t b,
                                const nn_dropout_desc *d, const float *res, size_t g, size_t beta, int64_t T,
                                float eps)
{
    const nn_backend_ops *op = m->op;
    const int64_t H = m->H;
    if (op->bias_dropout_add_layernorm_fwd) {
        op->bias_dropout_add_layernorm_fwd(m->be, y, mean, rstd, x, m->P + b, d, res, m->P + g, m->P + beta, T, H,
                                           eps);
        return;
    }
    op->bias_add(m->be, x, m->P + b, T, H);
    op->dropout(m->be, x, T, H, d);
    op->add(m->be, x, res, T * H);
    op->layernorm_fwd(m->be, y, mean, rstd, x, m->P + g, m->P + beta, T, H, eps);
}

/* y[rows, cols] = dropout(x) */
static void dropout_copy(nn_model *m, float *y, const float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d)
{
    if (m->op->dropout_copy) {
        m->op->dropout_copy(m->be, y, x, rows, cols, d);
        return;
    }
    m->op->copy(m->be, y, x, (size_t)(rows * cols) * sizeof(float));
    m->op->dropout(m->be, y, rows, cols, d);
}

static nn_dropout_desc tok_drop(nn_model *m, float p, uint32_t site)
{
    nn_dropout_desc d = {p, m->key, site, m->d_tok_sample, m->d_pos};
    return d;
}

static nn_attn_desc attn_desc(nn_model *m, int64_t l)
{
    nn_attn_desc d;
    memset(&d, 0, sizeof d);
    d.nseq = m->cur_B;
    d.heads = m->nh;
    d.head_dim = m->dh;
    d.max_len = m->cur_maxlen;
    d.offsets = m->d_offsets;
    d.prob_off = m->d_prob_off;
    d.scale = (float)(1.0 / sqrt((double)m->dh));
    d.p = m->p_attn;
    d.key = m->key;
    d.site = NN_SITE_ATTN_PROBS(l);
    d.seq_sample = m->d_seq_sample;
    d.elem_stride = m->cfg.max_position_embeddings;
    return d;
}

float nn_dropout_multiplier(uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t site, uint32_t pos,
                            uint32_t elem, float p)
{
    if (!(p > 0.0f)) return 1.0f;
    uint32_t bits = nn_rng_bits(nn_rng_key_make(seed, epoch), sample, site, pos, elem);
    return nn_rng_keep(bits, p) ? nn_dropout_scale(p) : 0.0f;
}

double nn_model_train_flops(const nn_config *c, const int32_t *offsets, int64_t nseq)
{
    double H = (double)c->hidden_size, I = (double)c->intermediate_size, T = 0, sq = 0;
    for (int64_t s = 0; s < nseq; s++) {
        double L = (double)(offsets[s + 1] - offsets[s]);
        T += L;
        sq += L * L;
    }
    double per_tok = (double)c->num_hidden_layers * (4 * H * H + 2 * H * I);
    double attn = (double)c->num_hidden_layers * 4.0 * sq * H;
    double head = (double)nseq * (H * H + H * (double)c->num_labels);
    return 3.0 * (2.0 * per_tok * T + attn + 2.0 * head);
}

/* ------------------------------------------------------------------ forward */

static int check_batch(nn_model *m, const nn_batch *b, char err[NN_ERRLEN])
{
    const nn_config *c = &m->cfg;
    if (b->nseq < 0 || b->nseq > m->max_seqs) {
        snprintf(err, NN_ERRLEN, "batch: %lld sequences, the model was sized for %lld", (long long)b->nseq,
                 (long long)m->max_seqs);
        return 1;
    }
    if (b->nseq == 0) return 0;
    if (!b->ids || !b->offsets || b->offsets[0] != 0) {
        snprintf(err, NN_ERRLEN, "batch: ids/offsets missing or offsets[0] != 0");
        return 1;
    }
    for (int64_t s = 0; s < b->nseq; s++) {
        int64_t L = (int64_t)b->offsets[s + 1] - b->offsets[s];
        if (L < 1 || L > c->max_position_embeddings || L > m->max_seq_len) {
            snprintf(err, NN_ERRLEN,
                     "batch: sequence %lld has %lld tokens (allowed 1..%lld; max_position_embeddings %lld)",
                     (long long)s, (long long)L, (long long)m->max_seq_len, (long long)c->max_position_embeddings);
            return 1;
        }
        if ((int64_t)b->offsets[s + 1] > m->max_tokens) {
            snprintf(err, NN_ERRLEN, "batch: more than %lld tokens", (long long)m->max_tokens);
            return 1;
        }
    }
    int64_t T = b->offsets[b->nseq];
    for (int64_t t = 0; t < T; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->vocab_size) {
            snprintf(err, NN_ERRLEN, "batch: token id %d at position %lld out of range [0, %lld)", b->ids[t],
                     (long long)t, (long long)c->vocab_size);
            return 1;
        }
        if (b->token_types && (b->token_types[t] < 0 || b->token_types[t] >= c->type_vocab_size)) {
            snprintf(err, NN_ERRLEN, "batch: token type %d out of range", b->token_types[t]);
            return 1;
        }
    }
    if (b->labels) {
        for (int64_t s = 0; s < b->nseq; s++)
            if (b->labels[s] < 0 || b->labels[s] >= c->num_labels) {
                snprintf(err, NN_ERRLEN, "batch: label %d out of range [0, %lld)", b->labels[s],
                         (long long)c->num_labels);
                return 1;
            }
        if (!(b->loss_denominator > 0) || !isfinite(b->loss_denominator)) {
            snprintf(err, NN_ERRLEN, "batch: loss_denominator must be > 0");
            return 1;
        }
    }
    if (b->class_weights)
        for (int64_t k = 0; k < c->num_labels; k++)
            if (!(b->class_weights[k] >= 0) || !isfinite(b->class_weights[k])) {
                snprintf(err, NN_ERRLEN, "batch: class weights must be finite and >= 0");
                return 1;
            }
    if (b->train && !b->sample_ids &&
        (c->hidden_dropout_prob > 0 || c->attention_probs_dropout_prob > 0 || c->classifier_dropout > 0)) {
        snprintf(err, NN_ERRLEN, "batch: training with dropout needs sample_ids");
        return 1;
    }
    return 0;
}

int nn_model_forward(nn_model *m, const nn_batch *b, float *loss, float *logits, char err[NN_ERRLEN])
{
    m->cur_valid = 0;
    if (check_batch(m, b, err)) return 1;
    const nn_backend_ops *op = m->op;
    nn_backend *be = m->be;
    const int64_t B = b->nseq, T = B ? b->offsets[B] : 0, H = m->H, I = m->I, C = m->C;
    if (loss) *loss = 0.0f;
    m->cur_B = B;
    m->cur_T = T;
    m->cur_labels = b->labels != NULL && !b->no_grad;
    if (B == 0) { /* a rank without samples: zero loss, zero gradient contribution */
        m->cur_valid = 1;
        return 0;
    }
    /* ---- stage indices */
    int64_t maxlen = 0, poff = 0;
    for (int64_t s = 0; s < B; s++) {
        int32_t o = b->offsets[s], L = b->offsets[s + 1] - o;
        uint32_t sid = b->sample_ids ? b->sample_ids[s] : (uint32_t)s;
        for (int32_t i = 0; i < L; i++) {
            m->h_pos[o + i] = i;
            m->h_tok_sample[o + i] = sid;
            m->h_types[o + i] = b->token_types ? b->token_types[o + i] : 0;
        }
        m->h_cls_idx[s] = o;
        m->h_seq_sample[s] = sid;
        m->h_prob_off[s] = poff;
        poff += m->nh * (int64_t)L * L;
        if (L > maxlen) maxlen = L;
    }
    m->cur_maxlen = maxlen;
    op->upload(be, m->d_ids, b->ids, (size_t)T * sizeof(int32_t));
    op->upload(be, m->d_pos, m->h_pos, (size_t)T * sizeof(int32_t));
    op->upload(be, m->d_types, m->h_types, (size_t)T * sizeof(int32_t));
    op->upload(be, m->d_tok_sample, m->h_tok_sample, (size_t)T * sizeof(uint32_t));
    op->upload(be, m->d_offsets, b->offsets, (size_t)(B + 1) * sizeof(int32_t));
    op->upload(be, m->d_cls_idx, m->h_cls_idx, (size_t)B * sizeof(int32_t));
    op->upload(be, m->d_seq_sample, m->h_seq_sample, (size_t)B * sizeof(uint32_t));
    op->upload(be, m->d_prob_off, m->h_prob_off, (size_t)B * sizeof(int64_t));
    if (b->labels) op->upload(be, m->d_labels, b->labels, (size_t)B * sizeof(int32_t));
    if (b->class_weights) op->upload(be, m->d_cw, b->class_weights, (size_t)C * sizeof(float));

    m->key = nn_rng_key_make(b->seed, b->epoch);
    const nn_config *c = &m->cfg;
    m->p_hidden = b->train ? (float)c->hidden_dropout_prob : 0.0f;
    m->p_attn = b->train ? (float)c->attention_probs_dropout_prob : 0.0f;
    m->p_cls = b->train ? (float)(c->classifier_dropout >= 0 ? c->classifier_dropout : c->hidden_dropout_prob) : 0.0f;
    const float eps = (float)c->layer_norm_eps;

    /* ---- embeddings */
    op->embed_fwd(be, m->emb, m->d_ids, m->d_pos, m->d_types, m->P + m->o_wemb, m->P + m->o_pemb, m->P + m->o_temb,
                  T, H);
    op->layernorm_fwd(be, m->h[0], m->emb_mean, m->emb_rstd, m->emb, m->P + m->o_elng, m->P + m->o_elnb, T, H, eps);
    nn_dropout_desc dd = tok_drop(m, m->p_hidden, NN_SITE_EMBEDDINGS);
    op->dropout(be, m->h[0], T, H, &dd);

    /* ---- encoder */
    for (int64_t l = 0; l < m->L; l++) {
        layer_act *a = &m->la[l];
        const layer_off *o = &m->lo[l];
        linear_fwd(m, a->qkv, m->h[l], o->wqkv, o->bqkv, T, H, 3 * H);
        nn_attn_desc ad = attn_desc(m, l);
        op->attention_fwd(be, &ad, a->qkv, a->probs, a->ctx);
        gemm_w(m, 1, T, H, H, a->ctx, o->wo, 0.0f, a->ln1_in);
        dd = tok_drop(m, m->p_hidden, NN_SITE_ATTN_OUT(l));
        bias_dropout_add_ln(m, a->h1, a->ln1_mean, a->ln1_rstd, a->ln1_in, o->bo, &dd, m->h[l], o->ln1g, o->ln1b, T,
                            eps);
        gemm_w(m, 1, T, I, H, a->h1, o->wi, 0.0f, a->ffn_pre);
        /* training: ffn_pre ends holding gelu'(pre), all backward needs */
        bias_gelu(m, a->ffn_act, b->no_grad ? NULL : a->ffn_pre, a->ffn_pre, o->bi, T, I);
        gemm_w(m, 1, T, H, I, a->ffn_act, o->wo2, 0.0f, a->ln2_in);
        dd = tok_drop(m, m->p_hidden, NN_SITE_FFN_OUT(l));
        bias_dropout_add_ln(m, m->h[l + 1], a->ln2_mean, a->ln2_rstd, a->ln2_in, o->bo2, &dd, a->h1, o->ln2g, o->ln2b,
                            T, eps);
    }

    /* ---- pooler, dropout, classifier */
    op->gather_rows(be, m->cls_in, m->h[m->L], m->d_cls_idx, B, H);
    linear_fwd(m, m->pooled, m->cls_in, m->o_pw, m->o_pb, B, H, H);
    op->tanh_fwd(be, m->pooled, m->pooled, B * H);
    nn_dropout_desc cd = {m->p_cls, m->key, NN_SITE_CLASSIFIER, m->d_seq_sample, m->d_zero_pos};
    dropout_copy(m, m->pooled_drop, m->pooled, B, H, &cd);
    linear_fwd(m, m->logits, m->pooled_drop, m->o_cw, m->o_cb, B, H, C);

    if (b->labels) {
        op->xent(be, m->logits, m->d_labels, b->class_weights ? m->d_cw : NULL, B, C,
                 (float)(1.0 / b->loss_denominator), m->d_loss, m->dlogits);
        if (loss) op->download(be, loss, m->d_loss, sizeof(float));
    }
    if (logits) op->download(be, logits, m->logits, (size_t)(B * C) * sizeof(float));
    op->sync(be);
    m->cur_valid = 1;
    return 0;
}

/* ------------------------------------------------------------------ backward */

/* Gradient groups in the order backward completes them: group 0 is the head
 * (pooler and classifier, at the end of the flat buffer), groups 1..L the layers
 * top down, group L+1 the embeddings (at its start). Each is one contiguous range
 * because the layout follows the model. */
static void group_range(const nn_model *m, size_t g, size_t *off, size_t *len)
{
    size_t L = (size_t)m->L;
    if (g == 0) {
        *off = m->o_pw;
        *len = m->nfloats - m->o_pw;
    } else if (g <= L) {
        size_t l = L - g;
        size_t end = l + 1 < L ? m->lo[l + 1].wqkv : m->o_pw;
        *off = m->lo[l].wqkv;
        *len = end - *off;
    } else {
        *off = 0;
        *len = m->lo[0].wqkv;
    }
}

size_t nn_model_grad_groups(const nn_model *m, size_t *off, size_t *len, size_t max)
{
    size_t n = (size_t)m->L + 2;
    if (max < n) return 0;
    for (size_t g = 0; g < n; g++) group_range(m, g, &off[g], &len[g]);
    return n;
}

void nn_model_set_grad_ready(nn_model *m, nn_grad_ready_fn fn, void *ctx)
{
    m->grad_ready = fn;
    m->grad_ready_ctx = ctx;
}

/* Announces group `g` as final. */
static void group_ready(nn_model *m, size_t g)
{
    if (!m->grad_ready) return;
    size_t off, len;
    group_range(m, g, &off, &len);
    m->op->sync(m->be); /* the range must be final on the device before anyone reads it */
    m->grad_ready(m->grad_ready_ctx, m->G, off, len);
}

int nn_model_backward(nn_model *m, char err[NN_ERRLEN])
{
    if (m->infer) {
        snprintf(err, NN_ERRLEN, "backward: the model was created for inference (nn_model_create_inference)");
        return 1;
    }
    if (!m->cur_valid || !m->cur_labels) {
        snprintf(err, NN_ERRLEN, "backward: no forward pass with labels (and without no_grad) to differentiate");
        return 1;
    }
    const nn_backend_ops *op = m->op;
    nn_backend *be = m->be;
    const int64_t B = m->cur_B, T = m->cur_T, H = m->H, I = m->I, C = m->C;
    if (B == 0) return 0;

    /* classifier */
    linear_bwd(m, m->dpool, 0, m->dlogits, m->pooled_drop, m->o_cw, m->o_cb, B, H, C);
    nn_dropout_desc cd = {m->p_cls, m->key, NN_SITE_CLASSIFIER, m->d_seq_sample, m->d_zero_pos};
    op->dropout(be, m->dpool, B, H, &cd);
    op->tanh_bwd(be, m->dpool, m->dpool, m->pooled, B * H);
    linear_bwd(m, m->dcls, 0, m->dpool, m->cls_in, m->o_pw, m->o_pb, B, H, H);
    op->zero(be, m->dA, (size_t)(T * H) * sizeof(float));
    op->scatter_rows_acc(be, m->dA, m->dcls, m->d_cls_idx, B, H);
    group_ready(m, 0);

    /* encoder, top down; dA = gradient wrt the layer's output */
    for (int64_t l = m->L - 1; l >= 0; l--) {
        layer_act *a = &m->la[l];
        const layer_off *o = &m->lo[l];
        op->layernorm_bwd(be, m->dB, m->G + o->ln2g, m->G + o->ln2b, m->dA, a->ln2_in, a->ln2_mean, a->ln2_rstd,
                          m->P + o->ln2g, T, H);
        nn_dropout_desc dd = tok_drop(m, m->p_hidden, NN_SITE_FFN_OUT(l));
        dropout_copy(m, m->dC, m->dB, T, H, &dd);
        linear_bwd(m, m->dI, 0, m->dC, a->ffn_act, o->wo2, o->bo2, T, I, H);
        op->mul(be, m->dI, a->ffn_pre, T * I);
        linear_bwd(m, m->dB, 1, m->dI, a->h1, o->wi, o->bi, T, H, I);
        op->layernorm_bwd(be, m->dA, m->G + o->ln1g, m->G + o->ln1b, m->dB, a->ln1_in, a->ln1_mean, a->ln1_rstd,
                          m->P + o->ln1g, T, H);
        dd = tok_drop(m, m->p_hidden, NN_SITE_ATTN_OUT(l));
        dropout_copy(m, m->dC, m->dA, T, H, &dd);
        linear_bwd(m, m->dctx, 0, m->dC, a->ctx, o->wo, o->bo, T, H, H);
        nn_attn_desc ad = attn_desc(m, l);
        op->attention_bwd(be, &ad, a->qkv, a->probs, m->dctx, m->dqkv);
        linear_bwd(m, m->dA, 1, m->dqkv, m->h[l], o->wqkv, o->bqkv, T, H, 3 * H);
        group_ready(m, (size_t)(m->L - l));
    }

    /* embeddings */
    nn_dropout_desc dd = tok_drop(m, m->p_hidden, NN_SITE_EMBEDDINGS);
    op->dropout(be, m->dA, T, H, &dd);
    op->layernorm_bwd(be, m->dB, m->G + m->o_elng, m->G + m->o_elnb, m->dA, m->emb, m->emb_mean, m->emb_rstd,
                      m->P + m->o_elng, T, H);
    op->embed_bwd_acc(be, m->G + m->o_wemb, m->G + m->o_pemb, m->G + m->o_temb, m->dB, m->d_ids, m->d_pos,
                      m->d_types, (int32_t)m->cfg.pad_token_id, T, H);
    op->sync(be);
    group_ready(m, (size_t)m->L + 1);
    return 0;
}

double nn_binary_p1(const float logits[2])
{
    double d = (double)logits[1] - (double)logits[0];
    return 1.0 / (1.0 + exp(-d));
}
