/* Model-level tests of nn: parameter table, HF init, packed == padded with a mask
 * (against an independent double-precision padded BERT written here), dropout
 * masks that follow the sample, whole-model gradients against finite
 * differences, bad input, and the forward-only model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn/nn.h"
#include "nn_test_util.h"

NN_TEST_BACKEND_FIXTURE

/* a batch of B sequences with the given lengths; ids/types/labels from r */
typedef struct {
    int64_t B;
    int32_t ids[512], types[512], off[33], labels[32];
    uint32_t sid[32];
} tbatch;

static void make_batch(tbatch *b, const int *lens, int64_t B, trng *r, int64_t vocab, int64_t nlab)
{
    b->B = B;
    b->off[0] = 0;
    for (int64_t s = 0; s < B; s++) {
        b->off[s + 1] = b->off[s] + lens[s];
        for (int32_t t = b->off[s]; t < b->off[s + 1]; t++) {
            b->ids[t] = (int32_t)(1 + trng_next(r) % (uint64_t)(vocab - 1));
            b->types[t] = (int32_t)(trng_next(r) % 2);
        }
        b->labels[s] = (int32_t)(trng_next(r) % (uint64_t)nlab);
        b->sid[s] = (uint32_t)(1000 + 17 * s);
    }
}

static nn_batch as_nn(const tbatch *b, int train)
{
    return test_nn_batch(b->B, b->ids, b->off, b->types, b->labels, b->sid, NULL, (double)b->B, train, 42, 3);
}

static nn_model *make_model(const nn_config *c, uint64_t seed)
{
    char err[NN_ERRLEN];
    nn_model *m = NULL;
    if (nn_model_create(&m, c, BE, 512, 32, c->max_position_embeddings, err)) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    if (nn_model_init_weights(m, seed, err)) {
        fprintf(stderr, "%s\n", err);
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------- parameter table */

static void test_param_table(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 1);
    assert_non_null(m);
    nn_config ic;
    char err[IO_ERRLEN];
    assert_int_equal(io_config_preset("tiny", &ic, err), 0);
    ic.vocab_size = c.vocab_size;
    ic.hidden_size = c.hidden_size;
    ic.num_attention_heads = c.num_attention_heads;
    ic.intermediate_size = c.intermediate_size;
    ic.max_position_embeddings = c.max_position_embeddings;
    ic.num_labels = c.num_labels;
    assert_int_equal((int64_t)nn_model_num_params(m), nn_config_param_count(&ic));
    size_t n = 0;
    const nn_param *ps = nn_model_params(m, &n);
    assert_int_equal(n, 5 + 16 * 2 + 4);
    size_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ps[i].offset, covered); /* contiguous, no gaps */
        covered += ps[i].numel;
        int is_bias = strstr(ps[i].name, "bias") != NULL, is_ln = strstr(ps[i].name, "LayerNorm") != NULL;
        assert_int_equal(ps[i].decay, !(is_bias || is_ln));
    }
    assert_int_equal(covered, nn_model_num_params(m));
    const char *must[] = {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                          "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                          "bert.encoder.layer.1.attention.self.value.bias",
                          "bert.encoder.layer.0.attention.output.LayerNorm.bias",
                          "bert.encoder.layer.1.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.weight",
                          "bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) assert_non_null(nn_model_find_param(m, must[i]));
    const nn_param *w = nn_model_find_param(m, "bert.encoder.layer.0.intermediate.dense.weight");
    assert_int_equal(w->shape[0], 37);
    assert_int_equal(w->shape[1], 48);
    assert_null(nn_model_find_param(m, "bert.encoder.layer.2.output.dense.weight"));
    nn_model_free(m);
}

static void test_init(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 7), *m2 = make_model(&c, 7), *m3 = make_model(&c, 8);
    size_t n = nn_model_num_params(m), np;
    float *a = malloc(n * 4), *b = malloc(n * 4), *d = malloc(n * 4);
    char err[NN_ERRLEN];
    assert_int_equal(nn_model_get_params(m, a, n, err), 0);
    assert_int_equal(nn_model_get_params(m2, b, n, err), 0);
    assert_int_equal(nn_model_get_params(m3, d, n, err), 0);
    assert_memory_equal(a, b, n * 4);             /* same seed => same weights */
    assert_true(memcmp(a, d, n * 4) != 0);        /* other seed => other weights */
    const nn_param *ps = nn_model_params(m, &np);
    double s = 0, s2 = 0, cnt = 0;
    for (size_t i = 0; i < np; i++) {
        const float *w = a + ps[i].offset;
        if (ps[i].ndim == 1) {
            float want = strstr(ps[i].name, "LayerNorm.weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < ps[i].numel; j++) assert_true(w[j] == want);
        } else {
            for (size_t j = 0; j < ps[i].numel; j++) {
                s += w[j];
                s2 += (double)w[j] * w[j];
                cnt++;
            }
        }
    }
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    assert_true(fabs(mean) < 1e-3);
    assert_true(fabs(sd - 0.02) < 1e-3);
    const nn_param *we = nn_model_find_param(m, "bert.embeddings.word_embeddings.weight");
    for (int64_t j = 0; j < c.hidden_size; j++) assert_true(a[we->offset + c.pad_token_id * c.hidden_size + j] == 0.0f);
    free(a);
    free(b);
    free(d);
    nn_model_free(m);
    nn_model_free(m2);
    nn_model_free(m3);
}

/* ------------------------------------------------------------- padded reference */

static const double *PR(const nn_model *m, const double *p, const char *name)
{
    const nn_param *q = nn_model_find_param(m, name);
    assert_non_null(q);
    return p + q->offset;
}

static void dlin(const double *x, int64_t n, int64_t in, const double *W, const double *b, int64_t out, double *y)
{
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < out; o++) {
            double s = b[o];
            for (int64_t i = 0; i < in; i++) s += x[t * in + i] * W[o * in + i];
            y[t * out + o] = s;
        }
}

static void dln(double *x, int64_t n, int64_t H, const double *g, const double *b, double eps)
{
    for (int64_t t = 0; t < n; t++) {
        double mu = 0, v = 0;
        for (int64_t j = 0; j < H; j++) mu += x[t * H + j];
        mu /= H;
        for (int64_t j = 0; j < H; j++) v += (x[t * H + j] - mu) * (x[t * H + j] - mu);
        double rs = 1 / sqrt(v / H + eps);
        for (int64_t j = 0; j < H; j++) x[t * H + j] = (x[t * H + j] - mu) * rs * g[j] + b[j];
    }
}

/* HF BertForSequenceClassification on a PADDED [B, Lmax] batch with an additive
 * attention mask, in double; dropout multipliers indexed by (sample, position). */
static void padded_reference(const nn_model *m, const double *p, const tbatch *tb, int train, double *logits,
                             double *loss)
{
    const nn_config *c = nn_model_config(m);
    int64_t B = tb->B, H = c->hidden_size, I = c->intermediate_size, nh = c->num_attention_heads, dh = H / nh;
    int64_t Lm = 0, C = c->num_labels;
    for (int64_t s = 0; s < B; s++)
        if (tb->off[s + 1] - tb->off[s] > Lm) Lm = tb->off[s + 1] - tb->off[s];
    int64_t N = B * Lm;
    float ph = train ? (float)c->hidden_dropout_prob : 0, pa = train ? (float)c->attention_probs_dropout_prob : 0;
    double *x = calloc(N * H, sizeof *x), *qkv = calloc(N * 3 * H, sizeof *qkv), *ctx = calloc(N * H, sizeof *ctx);
    double *t1 = calloc(N * H, sizeof *t1), *ff = calloc(N * I, sizeof *ff), *S = calloc(Lm, sizeof *S);
    int32_t *ids = calloc(N, sizeof *ids), *ty = calloc(N, sizeof *ty), *valid = calloc(N, sizeof *valid);
    for (int64_t s = 0; s < B; s++)
        for (int64_t i = 0; i < Lm; i++) {
            int64_t L = tb->off[s + 1] - tb->off[s];
            ids[s * Lm + i] = i < L ? tb->ids[tb->off[s] + i] : (int32_t)c->pad_token_id;
            ty[s * Lm + i] = i < L ? tb->types[tb->off[s] + i] : 0;
            valid[s * Lm + i] = i < L;
        }
    const double *we = PR(m, p, "bert.embeddings.word_embeddings.weight"),
                 *pe = PR(m, p, "bert.embeddings.position_embeddings.weight"),
                 *te = PR(m, p, "bert.embeddings.token_type_embeddings.weight");
    for (int64_t r = 0; r < N; r++)
        for (int64_t j = 0; j < H; j++)
            x[r * H + j] = we[ids[r] * H + j] + pe[(r % Lm) * H + j] + te[ty[r] * H + j];
    dln(x, N, H, PR(m, p, "bert.embeddings.LayerNorm.weight"), PR(m, p, "bert.embeddings.LayerNorm.bias"),
        c->layer_norm_eps);
#define DROP(buf, site)                                                                                       \
    for (int64_t r = 0; r < N; r++)                                                                           \
        for (int64_t j = 0; j < H; j++)                                                                       \
            buf[r * H + j] *= nn_dropout_multiplier(42, 3, tb->sid[r / Lm], site, (uint32_t)(r % Lm), (uint32_t)j, ph);
    DROP(x, NN_SITE_EMBEDDINGS)
    char nm[200];
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
#define LP(suffix) (snprintf(nm, sizeof nm, "bert.encoder.layer.%lld.%s", (long long)l, suffix), PR(m, p, nm))
        const char *qn[3] = {"attention.self.query", "attention.self.key", "attention.self.value"};
        for (int k = 0; k < 3; k++) {
            char wn[64], bn[64];
            snprintf(wn, sizeof wn, "%s.weight", qn[k]);
            snprintf(bn, sizeof bn, "%s.bias", qn[k]);
            const double *W = LP(wn);
            const double *bb = LP(bn);
            dlin(x, N, H, W, bb, H, t1);
            for (int64_t r = 0; r < N; r++) memcpy(qkv + r * 3 * H + k * H, t1 + r * H, H * sizeof *t1);
        }
        for (int64_t s = 0; s < B; s++)
            for (int64_t h = 0; h < nh; h++)
                for (int64_t i = 0; i < Lm; i++) {
                    double mx = -1e300, sum = 0;
                    for (int64_t j = 0; j < Lm; j++) {
                        double d = 0;
                        for (int64_t e = 0; e < dh; e++)
                            d += qkv[(s * Lm + i) * 3 * H + h * dh + e] * qkv[(s * Lm + j) * 3 * H + H + h * dh + e];
                        S[j] = d / sqrt((double)dh) + (valid[s * Lm + j] ? 0.0 : -1e30); /* the mask */
                        if (S[j] > mx) mx = S[j];
                    }
                    for (int64_t j = 0; j < Lm; j++) sum += (S[j] = exp(S[j] - mx));
                    for (int64_t e = 0; e < dh; e++) {
                        double a = 0;
                        for (int64_t j = 0; j < Lm; j++)
                            a += S[j] / sum *
                                 nn_dropout_multiplier(42, 3, tb->sid[s], NN_SITE_ATTN_PROBS(l), (uint32_t)i,
                                                       (uint32_t)(h * c->max_position_embeddings + j), pa) *
                                 qkv[(s * Lm + j) * 3 * H + 2 * H + h * dh + e];
                        ctx[(s * Lm + i) * H + h * dh + e] = a;
                    }
                }
        dlin(ctx, N, H, LP("attention.output.dense.weight"), LP("attention.output.dense.bias"), H, t1);
        DROP(t1, NN_SITE_ATTN_OUT(l))
        for (int64_t i = 0; i < N * H; i++) x[i] += t1[i];
        dln(x, N, H, LP("attention.output.LayerNorm.weight"), LP("attention.output.LayerNorm.bias"), c->layer_norm_eps);
        dlin(x, N, H, LP("intermediate.dense.weight"), LP("intermediate.dense.bias"), I, ff);
        for (int64_t i = 0; i < N * I; i++) ff[i] = 0.5 * ff[i] * (1 + erf(ff[i] / sqrt(2.0)));
        dlin(ff, N, I, LP("output.dense.weight"), LP("output.dense.bias"), H, t1);
        DROP(t1, NN_SITE_FFN_OUT(l))
        for (int64_t i = 0; i < N * H; i++) x[i] += t1[i];
        dln(x, N, H, LP("output.LayerNorm.weight"), LP("output.LayerNorm.bias"), c->layer_norm_eps);
#undef LP
    }
#undef DROP
    double *cls = calloc(B * H, sizeof *cls), *pool = calloc(B * H, sizeof *pool);
    for (int64_t s = 0; s < B; s++) memcpy(cls + s * H, x + s * Lm * H, H * sizeof *cls);
    dlin(cls, B, H, PR(m, p, "bert.pooler.dense.weight"), PR(m, p, "bert.pooler.dense.bias"), H, pool);
    float pc = train ? (float)(c->classifier_dropout >= 0 ? c->classifier_dropout : c->hidden_dropout_prob) : 0;
    for (int64_t s = 0; s < B; s++)
        for (int64_t j = 0; j < H; j++)
            pool[s * H + j] = tanh(pool[s * H + j]) *
                              nn_dropout_multiplier(42, 3, tb->sid[s], NN_SITE_CLASSIFIER, 0, (uint32_t)j, pc);
    dlin(pool, B, H, PR(m, p, "classifier.weight"), PR(m, p, "classifier.bias"), C, logits);
    double tot = 0;
    for (int64_t s = 0; s < B; s++) {
        double mx = -1e300, se = 0;
        for (int64_t k = 0; k < C; k++) mx = fmax(mx, logits[s * C + k]);
        for (int64_t k = 0; k < C; k++) se += exp(logits[s * C + k] - mx);
        tot += log(se) + mx - logits[s * C + tb->labels[s]];
    }
    *loss = tot / B;
    free(x);
    free(qkv);
    free(ctx);
    free(t1);
    free(ff);
    free(S);
    free(ids);
    free(ty);
    free(valid);
    free(cls);
    free(pool);
}

static double *params_double(nn_model *m)
{
    size_t n = nn_model_num_params(m);
    float *f = malloc(n * 4);
    char err[NN_ERRLEN];
    assert_int_equal(nn_model_get_params(m, f, n, err), 0);
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* Scale up the init so attention and LayerNorm are far from linear: a test on
 * near-zero weights would pass with many wrong implementations. */
static void spice_params(nn_model *m, uint64_t seed)
{
    size_t n = nn_model_num_params(m), np;
    float *f = malloc(n * 4);
    char err[NN_ERRLEN];
    nn_model_get_params(m, f, n, err);
    const nn_param *ps = nn_model_params(m, &np);
    trng r = {seed};
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < ps[i].numel; j++) {
            float *w = f + ps[i].offset + j;
            if (ps[i].ndim == 2) *w *= 10.0f; /* std 0.2 */
            else *w += (float)(0.2 * trng_uniform(&r));
        }
    nn_model_set_params(m, f, n, err);
    free(f);
}

static void test_packed_equals_padded(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 3);
    spice_params(m, 4);
    trng r = {5};
    const int lens[] = {7, 1, 33, 4, 9}; /* 33: the CPU backend's GEMM attention path */
    tbatch tb;
    make_batch(&tb, lens, 5, &r, c.vocab_size, c.num_labels);
    double *p = params_double(m);
    for (int train = 0; train < 2; train++) {
        nn_batch b = as_nn(&tb, train);
        float loss, logits[5 * 3];
        char err[NN_ERRLEN];
        assert_int_equal(nn_model_forward(m, &b, &loss, logits, err), 0);
        double rl[15], rloss, lg[15];
        padded_reference(m, p, &tb, train, rl, &rloss);
        for (int i = 0; i < 15; i++) lg[i] = logits[i];
        assert_true(rel_err(lg, rl, 15) < 2e-5);
        assert_true(fabs(loss - rloss) < 2e-5 * fabs(rloss));
        /* negative control: the reference is sensitive to the mask placement — with
         * another epoch (other masks) it must disagree when training */
        if (train) {
            b.epoch = 4;
            assert_int_equal(nn_model_forward(m, &b, &loss, logits, err), 0);
            for (int i = 0; i < 15; i++) lg[i] = logits[i];
            assert_true(rel_err(lg, rl, 15) > 1e-3);
        }
    }
    free(p);
    nn_model_free(m);
}

/* ------------------------------------------------------------- dropout follows the sample */

static void test_dropout_invariance(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    c.hidden_dropout_prob = 0.3;
    c.attention_probs_dropout_prob = 0.3;
    nn_model *m = make_model(&c, 11);
    spice_params(m, 12);
    trng r = {13};
    /* batch A: target sample in slot 0; batch B: in slot 2 with other companions */
    const int la[] = {8, 5, 3}, lb[] = {2, 11, 8, 6};
    tbatch A, Bt;
    make_batch(&A, la, 3, &r, c.vocab_size, c.num_labels);
    make_batch(&Bt, lb, 4, &r, c.vocab_size, c.num_labels);
    memcpy(Bt.ids + Bt.off[2], A.ids, 8 * sizeof(int32_t));
    memcpy(Bt.types + Bt.off[2], A.types, 8 * sizeof(int32_t));
    Bt.labels[2] = A.labels[0];
    Bt.sid[2] = A.sid[0] = 555;
    Bt.sid[0] = 7;
    Bt.sid[1] = 8;
    Bt.sid[3] = 9;
    float la_[9], lb_[12], loss;
    char err[NN_ERRLEN];
    nn_batch ba = as_nn(&A, 1), bb = as_nn(&Bt, 1);
    assert_int_equal(nn_model_forward(m, &ba, &loss, la_, err), 0);
    assert_int_equal(nn_model_forward(m, &bb, &loss, lb_, err), 0);
    for (int k = 0; k < 3; k++) assert_true(fabs(la_[k] - lb_[2 * 3 + k]) < 1e-5 * (1 + fabs(la_[k])));
    /* and the same without dropout, to know dropout actually changed something */
    float ev[9];
    ba.train = 0;
    assert_int_equal(nn_model_forward(m, &ba, &loss, ev, err), 0);
    double dif = 0;
    for (int k = 0; k < 3; k++) dif += fabs(ev[k] - la_[k]);
    assert_true(dif > 1e-3);
    /* negative control: same tokens under another sample id => other masks */
    bb.train = 1;
    Bt.sid[2] = 556;
    assert_int_equal(nn_model_forward(m, &bb, &loss, lb_, err), 0);
    dif = 0;
    for (int k = 0; k < 3; k++) dif += fabs(la_[k] - lb_[2 * 3 + k]);
    assert_true(dif > 1e-3);
    nn_model_free(m);
}

/* ------------------------------------------------------------- whole-model gradient */

/* Directional derivatives per tensor: fp32 forward, central differences with a
 * step chosen per tensor and Richardson extrapolation; tolerance 0.2% (fp32 noise), which still
 * catches any wiring error (those are O(1)). Op-level exactness is covered in
 * double by test_nn_ops; this test checks the composition. */
static void test_model_gradient(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 21);
    spice_params(m, 22);
    trng r = {23};
    const int lens[] = {6, 3, 29};
    tbatch tb;
    make_batch(&tb, lens, 3, &r, c.vocab_size, c.num_labels);
    const float cw[3] = {0.5f, 2.0f, 1.25f};
    nn_batch b = as_nn(&tb, 1);
    b.class_weights = cw;
    b.loss_denominator = 1.7;
    size_t n = nn_model_num_params(m), np;
    float *p = malloc(n * 4), *g = malloc(n * 4), *q = malloc(n * 4);
    char err[NN_ERRLEN];
    float loss;
    nn_model_get_params(m, p, n, err);
    nn_model_zero_grad(m);
    assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    assert_int_equal(nn_model_backward(m, err), 0);
    nn_model_get_grads(m, g, n, err);
    const nn_param *ps = nn_model_params(m, &np);
    int checked = 0;
    for (size_t i = 0; i < np; i++) {
        const float *gi = g + ps[i].offset;
        double gn = 0;
        for (size_t j = 0; j < ps[i].numel; j++) gn += (double)gi[j] * gi[j];
        gn = sqrt(gn);
        if (strstr(ps[i].name, "word_embeddings")) {
            /* rows of tokens absent from the batch must have zero gradient */
            int seen[97] = {0};
            for (int t = 0; t < tb.off[3]; t++) seen[tb.ids[t]] = 1;
            for (int64_t row = 0; row < c.vocab_size; row++)
                if (!seen[row])
                    for (int64_t j = 0; j < c.hidden_size; j++) assert_true(gi[row * c.hidden_size + j] == 0.0f);
        }
        if (gn < 1e-6) continue;
        /* direction: the gradient itself (then d = |g|^2); step |h g| = 1e-2, and
         * Richardson extrapolation over h and h/2 removes the O(h^2) term */
        double h0 = 1e-2 / gn, fdh[2];
        for (int k = 0; k < 2; k++) {
            double h = k ? h0 / 2 : h0, lp, lm;
            memcpy(q, p, n * 4);
            for (size_t j = 0; j < ps[i].numel; j++) q[ps[i].offset + j] = (float)(p[ps[i].offset + j] + h * gi[j]);
            nn_model_set_params(m, q, n, err);
            nn_model_forward(m, &b, &loss, NULL, err);
            lp = loss;
            for (size_t j = 0; j < ps[i].numel; j++) q[ps[i].offset + j] = (float)(p[ps[i].offset + j] - h * gi[j]);
            nn_model_set_params(m, q, n, err);
            nn_model_forward(m, &b, &loss, NULL, err);
            lm = loss;
            fdh[k] = (lp - lm) / (2 * h);
        }
        double h = h0;
        double fd = (4 * fdh[1] - fdh[0]) / 3, want = gn * gn;
        if (getenv("ADEBERT_TEST_VERBOSE") || fabs(fd - want) > 2e-3 * want + 1e-5)
            fprintf(stderr, "%s: fd %.6g analytic %.6g (h %.3g)\n", ps[i].name, fd, want, h);
        assert_true(fabs(fd - want) <= 2e-3 * want + 1e-5);
        checked++;
    }
    assert_true(checked >= 30);
    nn_model_set_params(m, p, n, err);
    free(p);
    free(g);
    free(q);
    nn_model_free(m);
}

static void test_grad_accumulates(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 31);
    trng r = {32};
    const int lens[] = {5, 4};
    tbatch tb;
    make_batch(&tb, lens, 2, &r, c.vocab_size, c.num_labels);
    nn_batch b = as_nn(&tb, 1);
    size_t n = nn_model_num_params(m);
    float *g1 = malloc(n * 4), *g2 = malloc(n * 4), loss;
    char err[NN_ERRLEN];
    nn_model_zero_grad(m);
    nn_model_forward(m, &b, &loss, NULL, err);
    nn_model_backward(m, err);
    nn_model_get_grads(m, g1, n, err);
    nn_model_forward(m, &b, &loss, NULL, err);
    nn_model_backward(m, err);
    nn_model_get_grads(m, g2, n, err);
    for (size_t i = 0; i < n; i++) assert_true(fabs(g2[i] - 2 * g1[i]) <= 1e-5 * (fabs(g1[i]) + 1e-6) + 1e-9);
    /* an empty batch (a rank with no samples) is fine and adds nothing */
    nn_batch e = b;
    e.nseq = 0;
    assert_int_equal(nn_model_forward(m, &e, &loss, NULL, err), 0);
    assert_true(loss == 0.0f);
    assert_int_equal(nn_model_backward(m, err), 0);
    nn_model_get_grads(m, g1, n, err);
    assert_memory_equal(g1, g2, n * 4);
    free(g1);
    free(g2);
    nn_model_free(m);
}

/* ------------------------------------------------------------- gradient groups */

/* What the hook saw: each group's range and a copy of its gradients at call time. */
typedef struct {
    size_t n, off[8], len[8];
    float *snap[8];
} hook_log;

static void record_group(void *ctx, float *grad, size_t off, size_t len)
{
    hook_log *h = ctx;
    assert_true(h->n < 8);
    h->off[h->n] = off;
    h->len[h->n] = len;
    h->snap[h->n] = malloc(len * sizeof(float));
    memcpy(h->snap[h->n], grad + off, len * sizeof(float)); /* CPU backend: host memory */
    h->n++;
}

/* The groups tile the gradient buffer in backward order (head, layers top down,
 * embeddings), and the hook fires for each with its gradients already final, so a
 * reduction started there sees the finished values. */
static void test_grad_groups(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    nn_model *m = make_model(&c, 41);
    size_t off[NN_MAX_GRAD_GROUPS], len[NN_MAX_GRAD_GROUPS];
    size_t ng = nn_model_grad_groups(m, off, len, NN_MAX_GRAD_GROUPS);
    assert_int_equal(ng, (size_t)c.num_hidden_layers + 2);
    assert_int_equal(nn_model_grad_groups(m, off, len, 3), 0); /* too small */
    /* back to front: head at the end, embeddings at 0, no gap, no overlap */
    size_t end = nn_model_num_params(m);
    for (size_t g = 0; g < ng; g++) {
        assert_int_equal(off[g] + len[g], end);
        assert_true(len[g] > 0);
        end = off[g];
    }
    assert_int_equal(end, 0);
    assert_int_equal(off[0], nn_model_find_param(m, "bert.pooler.dense.weight")->offset);
    assert_int_equal(off[1], nn_model_find_param(m, "bert.encoder.layer.1.attention.self.query.weight")->offset);

    trng r = {42};
    const int lens[] = {6, 3, 9};
    tbatch tb;
    make_batch(&tb, lens, 3, &r, c.vocab_size, c.num_labels);
    nn_batch b = as_nn(&tb, 1);
    hook_log h;
    memset(&h, 0, sizeof h);
    nn_model_set_grad_ready(m, record_group, &h);
    char err[NN_ERRLEN];
    float loss;
    nn_model_zero_grad(m);
    assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    assert_int_equal(nn_model_backward(m, err), 0);
    assert_int_equal(h.n, ng);
    size_t n = nn_model_num_params(m);
    float *g = malloc(n * sizeof *g);
    assert_int_equal(nn_model_get_grads(m, g, n, err), 0);
    for (size_t k = 0; k < ng; k++) {
        assert_int_equal(h.off[k], off[k]);
        assert_int_equal(h.len[k], len[k]);
        assert_memory_equal(h.snap[k], g + off[k], len[k] * sizeof(float));
        free(h.snap[k]);
    }
    free(g);
    nn_model_free(m);
}

/* ------------------------------------------------------------- bad input */

static void test_bad_input(void **state)
{
    (void)state;
    char err[NN_ERRLEN];
    nn_model *m = NULL;
    nn_config c = test_tiny_cfg();
    c.num_attention_heads = 5; /* 48 % 5 != 0 */
    assert_int_not_equal(nn_model_create(&m, &c, BE, 64, 4, 16, err), 0);
    assert_non_null(strstr(err, "multiple"));
    assert_null(m);
    c = test_tiny_cfg();
    c.num_hidden_layers = 0;
    assert_int_not_equal(nn_model_create(&m, &c, BE, 64, 4, 16, err), 0);
    c = test_tiny_cfg();
    c.vocab_size = (int64_t)1 << 24;
    c.hidden_size = 65536;
    c.num_attention_heads = 1;
    assert_int_not_equal(nn_model_create(&m, &c, BE, 64, 4, 16, err), 0); /* 1e12 parameters */
    c = test_tiny_cfg();
    c.hidden_dropout_prob = 1.0;
    assert_int_not_equal(nn_model_create(&m, &c, BE, 64, 4, 16, err), 0);
    c = test_tiny_cfg();
    assert_int_not_equal(nn_model_create(&m, &c, BE, (int64_t)1 << 26, 4, 40, err), 0); /* arena too big */
    c.hidden_size = 4096;
    c.num_attention_heads = 64;
    c.intermediate_size = 16384;
    c.num_hidden_layers = 48;
    assert_int_not_equal(nn_model_create(&m, &c, BE, (int64_t)1 << 20, 4, 40, err), 0);
    assert_null(m);
    c = test_tiny_cfg();
    assert_int_not_equal(nn_model_create(&m, &c, BE, 64, 4, 41, err), 0); /* > max_position_embeddings */

    c = test_tiny_cfg();
    m = make_model(&c, 1);
    trng r = {41};
    const int lens[] = {5, 4};
    tbatch tb;
    make_batch(&tb, lens, 2, &r, c.vocab_size, c.num_labels);
    float loss;
    nn_batch b = as_nn(&tb, 1);
    assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    tb.ids[3] = 97;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    assert_non_null(strstr(err, "token id"));
    tb.ids[3] = -1;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    tb.ids[3] = 5;
    assert_int_not_equal(nn_model_backward(m, err), 0); /* the failed forward invalidated it */
    tb.labels[1] = 3;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    tb.labels[1] = 1;
    tb.types[0] = 2;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    tb.types[0] = 0;
    int32_t off_bad[3] = {0, 5, 5}; /* empty sequence */
    b.offsets = off_bad;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    int32_t off_long[3] = {0, 41, 45}; /* longer than max_position_embeddings */
    int32_t ids[64] = {1};
    for (int i = 0; i < 64; i++) ids[i] = 1;
    b.offsets = off_long;
    b.ids = ids;
    b.token_types = NULL;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    assert_non_null(strstr(err, "max_position_embeddings"));
    b.offsets = tb.off;
    b.ids = tb.ids;
    b.nseq = 33; /* more than the arena holds */
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    b.nseq = 2;
    b.loss_denominator = 0;
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    b.loss_denominator = 2;
    b.sample_ids = NULL; /* dropout needs sample ids */
    assert_int_not_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    b.train = 0;
    assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
    nn_model_free(m);
}

/* ------------------------------------------------------------- inference model */

/* nn_model_create_inference: layers share one set of activations and the hidden states
 * alternate between two buffers. With 4 layers (h[2] and h[4] reuse h[0]'s buffer) its
 * logits and loss must equal the training model's bit for bit, in evaluation and with
 * dropout on; it holds no gradients and refuses backward; its arena is smaller. The
 * control: one changed parameter changes the logits (the comparison can fail). */
static void test_inference_model(void **state)
{
    (void)state;
    nn_config c = test_tiny_cfg();
    c.num_hidden_layers = 4;
    char err[NN_ERRLEN];
    nn_model *tm = make_model(&c, 11), *im = NULL;
    assert_non_null(tm);
    spice_params(tm, 6);
    assert_int_equal(nn_model_create_inference(&im, &c, BE, 512, 32, c.max_position_embeddings, err), 0);
    assert_true(nn_model_is_inference(im));
    assert_false(nn_model_is_inference(tm));
    size_t n = nn_model_num_params(tm);
    float *p = malloc(n * sizeof *p);
    assert_int_equal(nn_model_get_params(tm, p, n, err), 0);
    assert_int_equal(nn_model_set_params(im, p, n, err), 0);
    /* the arena drops three layers' activations and the backward scratch */
    assert_true(nn_model_arena_bytes(im) * 2 < nn_model_arena_bytes(tm));
    assert_null(nn_model_grad_buf(im));
    trng r = {21};
    const int lens[] = {7, 1, 33, 4, 9, 12};
    tbatch tb;
    make_batch(&tb, lens, 6, &r, c.vocab_size, c.num_labels);
    for (int train = 0; train < 2; train++) {
        for (int no_grad = 0; no_grad < 2; no_grad++) {
            nn_batch b = as_nn(&tb, train);
            b.no_grad = no_grad;
            float lt, li, xt[6 * 3], xi[6 * 3];
            assert_int_equal(nn_model_forward(tm, &b, &lt, xt, err), 0);
            assert_int_equal(nn_model_forward(im, &b, &li, xi, err), 0);
            assert_memory_equal(xt, xi, sizeof xt);
            assert_memory_equal(&lt, &li, sizeof lt);
        }
    }
    /* backward: refused, with a message; gradients: none */
    nn_batch b = as_nn(&tb, 0);
    float loss, xi[6 * 3], xc[6 * 3];
    assert_int_equal(nn_model_forward(im, &b, &loss, xi, err), 0);
    assert_int_not_equal(nn_model_backward(im, err), 0);
    assert_non_null(strstr(err, "inference"));
    assert_int_not_equal(nn_model_get_grads(im, p, n, err), 0);
    nn_model_zero_grad(im); /* a no-op, not a crash */
    /* control: a changed weight in the last layer shows in the logits */
    const nn_param *w = nn_model_find_param(im, "bert.encoder.layer.3.output.dense.weight");
    assert_non_null(w);
    p[w->offset] += 0.25f;
    assert_int_equal(nn_model_set_params(im, p, n, err), 0);
    assert_int_equal(nn_model_forward(im, &b, &loss, xc, err), 0);
    assert_true(memcmp(xi, xc, sizeof xi) != 0);
    free(p);
    nn_model_free(im);
    nn_model_free(tm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_table),      cmocka_unit_test(test_init),
        cmocka_unit_test(test_packed_equals_padded), cmocka_unit_test(test_dropout_invariance),
        cmocka_unit_test(test_model_gradient),   cmocka_unit_test(test_grad_accumulates),
        cmocka_unit_test(test_bad_input),        cmocka_unit_test(test_grad_groups),
        cmocka_unit_test(test_inference_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
