/* The CPU backend's optional ops (nn/backend.h) against what they stand for, bit for bit:
 *  - the fused forward steps (bias_gelu_fwd, bias_dropout_add_layernorm_fwd, dropout_copy)
 *    equal the composed primitives over odd shapes, row tails, GELU chunk boundaries,
 *    1 and 3 threads, with and without dropout;
 *  - the model with the CPU's ops table equals the model on a table without the optional
 *    ops (the composition model.c falls back to, as on CUDA): logits, loss, gradients;
 *  - in bf16, ->gemm_weight (resident bf16 weights) equals ->gemm (conversion on every
 *    call), follows ->weights_changed, and the model converts each weight matrix once
 *    per parameter change (a training step: once, not in forward and again in backward).
 * Each comparison has a negative control that must differ (a perturbed bias, dropout
 * site or parameter; a weight written without ->weights_changed), so an equality that
 * cannot fail does not pass. The bf16 tests skip on CPUs without AVX512-BF16/AMX. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_test_util.h"

static float *frand(trng *r, size_t n, double scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * trng_uniform(r));
    return x;
}

static float *fdup(const float *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* the next float away from zero: the smallest change of a value */
static float nudge(float x)
{
    return nextafterf(x, x < 0 ? -INFINITY : INFINITY);
}

/* rows x cols: single elements, odd widths, rows shorter and longer than a GELU chunk
 * (1024 elements), chunks that start mid-row, MiniLM's 384 and 1536 */
static const int64_t SHAPES[][2] = {{1, 1}, {3, 7}, {5, 33}, {2, 1023}, {3, 1025}, {7, 384}, {11, 97}, {4, 1539}};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])
static const int THREADS[] = {1, 3};

static nn_backend *cpu(int threads)
{
    nn_backend *b = NULL;
    char err[256];
    assert_int_equal(nn_backend_cpu_create(&b, threads, err, sizeof err), 0);
    return b;
}

/* ------------------------------------------------------------ bias + GELU */

/* fused y (and d unless NULL, aliasing x when alias) vs bias_add then gelu_fwd[_deriv] */
static int bias_gelu_same(nn_backend *be, const float *x0, const float *bias, const float *bias_ref, int64_t rows,
                          int64_t cols, int deriv, int alias)
{
    const nn_backend_ops *op = be->ops;
    size_t n = (size_t)(rows * cols);
    float *xf = fdup(x0, n), *yf = malloc(n * 4), *df = alias ? xf : malloc(n * 4);
    op->bias_gelu_fwd(be, yf, deriv ? df : NULL, xf, bias, rows, cols);
    float *xr = fdup(x0, n), *yr = malloc(n * 4), *dr = alias ? xr : malloc(n * 4);
    op->bias_add(be, xr, bias_ref, rows, cols);
    if (deriv) op->gelu_fwd_deriv(be, yr, dr, xr, (int64_t)n);
    else op->gelu_fwd(be, yr, xr, (int64_t)n);
    int ok = same(yf, yr, n) && (!deriv || same(df, dr, n));
    if (!alias) ok = ok && same(xf, x0, n); /* x is left as given */
    if (!alias) {
        free(df);
        free(dr);
    }
    free(xf);
    free(yf);
    free(xr);
    free(yr);
    return ok;
}

static void test_bias_gelu(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof THREADS / sizeof *THREADS; t++) {
        nn_backend *be = cpu(THREADS[t]);
        for (size_t s = 0; s < NSHAPES; s++) {
            const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
            trng r = {100 + s};
            float *x = frand(&r, (size_t)(rows * cols), 5.0), *bias = frand(&r, (size_t)cols, 2.0);
            for (int variant = 0; variant < 3; variant++) { /* inference; training into d; training, d = x */
                int deriv = variant > 0, alias = variant == 2;
                assert_true(bias_gelu_same(be, x, bias, bias, rows, cols, deriv, alias));
            }
            /* negative control: the last bias element a ulp off must change the result */
            float *bad = fdup(bias, (size_t)cols);
            bad[cols - 1] = nudge(bad[cols - 1]) + 0.25f;
            assert_false(bias_gelu_same(be, x, bias, bad, rows, cols, 1, 0));
            free(bad);
            free(x);
            free(bias);
        }
        nn_backend_destroy(be);
    }
}

/* ------------------------------------------------------------ bias + dropout + residual + LayerNorm */

typedef struct {
    uint32_t *sample;
    int32_t *pos;
} rowkeys;

static rowkeys make_rowkeys(int64_t rows)
{
    rowkeys k = {malloc((size_t)rows * sizeof *k.sample), malloc((size_t)rows * sizeof *k.pos)};
    for (int64_t i = 0; i < rows; i++) {
        k.sample[i] = (uint32_t)(7 + i / 3);
        k.pos[i] = (int32_t)(i % 3);
    }
    return k;
}

/* fused vs bias_add, dropout, add, layernorm_fwd: y, mean, rstd and the LayerNorm input
 * x must all match. The composition uses bias_ref and dref (negative controls). */
static int ln_same(nn_backend *be, const float *x0, const float *bias, const float *bias_ref, const float *res,
                   const float *g, const float *beta, const nn_dropout_desc *d, const nn_dropout_desc *dref,
                   int64_t rows, int64_t cols)
{
    const nn_backend_ops *op = be->ops;
    size_t n = (size_t)(rows * cols);
    float *xf = fdup(x0, n), *yf = malloc(n * 4), *mf = malloc((size_t)rows * 4), *rf = malloc((size_t)rows * 4);
    float *xr = fdup(x0, n), *yr = malloc(n * 4), *mr = malloc((size_t)rows * 4), *rr = malloc((size_t)rows * 4);
    op->bias_dropout_add_layernorm_fwd(be, yf, mf, rf, xf, bias, d, res, g, beta, rows, cols, 1e-12f);
    op->bias_add(be, xr, bias_ref, rows, cols);
    if (dref) op->dropout(be, xr, rows, cols, dref);
    op->add(be, xr, res, (int64_t)n);
    op->layernorm_fwd(be, yr, mr, rr, xr, g, beta, rows, cols, 1e-12f);
    int ok = same(xf, xr, n) && same(yf, yr, n) && same(mf, mr, (size_t)rows) && same(rf, rr, (size_t)rows);
    free(xf);
    free(yf);
    free(mf);
    free(rf);
    free(xr);
    free(yr);
    free(mr);
    free(rr);
    return ok;
}

static void test_bias_dropout_add_layernorm(void **state)
{
    (void)state;
    const nn_rng_key key = nn_rng_key_make(42, 3);
    for (size_t t = 0; t < sizeof THREADS / sizeof *THREADS; t++) {
        nn_backend *be = cpu(THREADS[t]);
        for (size_t s = 0; s < NSHAPES; s++) {
            const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
            const size_t n = (size_t)(rows * cols);
            trng r = {200 + s};
            float *x = frand(&r, n, 3.0), *res = frand(&r, n, 3.0), *bias = frand(&r, (size_t)cols, 1.0);
            float *g = frand(&r, (size_t)cols, 1.0), *beta = frand(&r, (size_t)cols, 1.0);
            rowkeys k = make_rowkeys(rows);
            nn_dropout_desc d = {0.1f, key, 9, k.sample, k.pos}, off = d, other = d;
            off.p = 0.0f;
            other.site = 10;
            assert_true(ln_same(be, x, bias, bias, res, g, beta, NULL, NULL, rows, cols)); /* inference */
            assert_true(ln_same(be, x, bias, bias, res, g, beta, &off, &off, rows, cols)); /* p = 0 */
            assert_true(ln_same(be, x, bias, bias, res, g, beta, &d, &d, rows, cols));     /* training */
            /* negative controls: a perturbed bias; another dropout site (once masks drop something) */
            float *bad = fdup(bias, (size_t)cols);
            bad[cols - 1] = nudge(bad[cols - 1]) + 0.25f;
            assert_false(ln_same(be, x, bias, bad, res, g, beta, &d, &d, rows, cols));
            if (n >= 64) assert_false(ln_same(be, x, bias, bias, res, g, beta, &d, &other, rows, cols));
            free(bad);
            free(x);
            free(res);
            free(bias);
            free(g);
            free(beta);
            free(k.sample);
            free(k.pos);
        }
        nn_backend_destroy(be);
    }
}

/* ------------------------------------------------------------ dropout into a copy */

static void test_dropout_copy(void **state)
{
    (void)state;
    const nn_rng_key key = nn_rng_key_make(7, 1);
    for (size_t t = 0; t < sizeof THREADS / sizeof *THREADS; t++) {
        nn_backend *be = cpu(THREADS[t]);
        for (size_t s = 0; s < NSHAPES; s++) {
            const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
            const size_t n = (size_t)(rows * cols);
            trng r = {300 + s};
            float *x = frand(&r, n, 2.0), *y = malloc(n * 4), *z = malloc(n * 4);
            rowkeys k = make_rowkeys(rows);
            const float ps[] = {0.0f, 0.3f};
            for (int i = 0; i < 2; i++) {
                nn_dropout_desc d = {ps[i], key, 4, k.sample, k.pos};
                be->ops->dropout_copy(be, y, x, rows, cols, &d);
                be->ops->copy(be, z, x, n * 4);
                be->ops->dropout(be, z, rows, cols, &d);
                assert_true(same(y, z, n));
                if (ps[i] > 0 && n >= 64) { /* negative control: another site */
                    d.site = 5;
                    be->ops->dropout_copy(be, y, x, rows, cols, &d);
                    assert_false(same(y, z, n));
                }
            }
            free(x);
            free(y);
            free(z);
            free(k.sample);
            free(k.pos);
        }
        nn_backend_destroy(be);
    }
}

/* ------------------------------------------------------------ the model, fused vs composed */

/* A backend sharing `be`'s state with the optional ops removed: the model composes the
 * primitives, as it does on a backend without them. */
typedef struct {
    nn_backend_ops ops;
    nn_backend b;
} plain_backend;

static void make_plain(plain_backend *p, nn_backend *be)
{
    p->ops = *be->ops;
    p->ops.bias_gelu_fwd = NULL;
    p->ops.bias_dropout_add_layernorm_fwd = NULL;
    p->ops.dropout_copy = NULL;
    p->ops.gemm_weight = NULL;
    p->ops.weights_changed = NULL;
    p->b.ops = &p->ops;
    p->b.impl = be->impl;
}

enum { NSEQ = 5 };
static const int LENS[NSEQ] = {9, 1, 23, 30, 4};

typedef struct {
    int32_t ids[128], types[128], off[NSEQ + 1], labels[NSEQ];
    uint32_t sid[NSEQ];
} mbatch;

static void make_mbatch(mbatch *b, const nn_config *c)
{
    trng r = {77};
    b->off[0] = 0;
    for (int s = 0; s < NSEQ; s++) {
        b->off[s + 1] = b->off[s] + LENS[s];
        for (int32_t t = b->off[s]; t < b->off[s + 1]; t++) {
            b->ids[t] = (int32_t)(1 + trng_next(&r) % (uint64_t)(c->vocab_size - 1));
            b->types[t] = (int32_t)(trng_next(&r) % 2);
        }
        b->labels[s] = (int32_t)(trng_next(&r) % (uint64_t)c->num_labels);
        b->sid[s] = (uint32_t)(500 + 3 * s);
    }
}

/* forward (training, with dropout) + backward, then a no_grad forward: logits, loss and
 * gradients into out (laid end to end) */
typedef struct {
    float logits[2][NSEQ * 8], loss;
    float *grad;
} run_out;

static nn_model *tiny_model(nn_backend *be, const nn_config *c, const float *params)
{
    nn_model *m = NULL;
    char err[NN_ERRLEN];
    assert_int_equal(nn_model_create(&m, c, be, 128, NSEQ, c->max_position_embeddings, err), 0);
    assert_int_equal(nn_model_set_params(m, params, nn_model_num_params(m), err), 0);
    return m;
}

static void run_model(nn_model *m, const mbatch *mb, run_out *o)
{
    char err[NN_ERRLEN];
    memset(o, 0, sizeof *o);
    size_t n = nn_model_num_params(m);
    nn_batch b = test_nn_batch(NSEQ, mb->ids, mb->off, mb->types, mb->labels, mb->sid, NULL, NSEQ, 1, 42, 2);
    nn_model_zero_grad(m);
    assert_int_equal(nn_model_forward(m, &b, &o->loss, o->logits[0], err), 0);
    assert_int_equal(nn_model_backward(m, err), 0);
    o->grad = malloc(n * sizeof *o->grad);
    assert_int_equal(nn_model_get_grads(m, o->grad, n, err), 0);
    b.train = 0;
    b.no_grad = 1;
    assert_int_equal(nn_model_forward(m, &b, NULL, o->logits[1], err), 0);
}

static int runs_same(const run_out *a, const run_out *b, size_t n)
{
    return memcmp(a->logits, b->logits, sizeof a->logits) == 0 && a->loss == b->loss && same(a->grad, b->grad, n);
}

/* the tiny test config with a wider odd FFN (GELU chunks that cross rows) and larger
 * weights (far from linear) */
static nn_config model_cfg(void)
{
    nn_config c = test_tiny_cfg();
    c.intermediate_size = 203;
    return c;
}

static float *model_params(nn_backend *be, const nn_config *c)
{
    nn_model *m = NULL;
    char err[NN_ERRLEN];
    assert_int_equal(nn_model_create(&m, c, be, 128, NSEQ, c->max_position_embeddings, err), 0);
    assert_int_equal(nn_model_init_weights(m, 5, err), 0);
    size_t n = nn_model_num_params(m), np;
    float *p = malloc(n * sizeof *p);
    assert_int_equal(nn_model_get_params(m, p, n, err), 0);
    const nn_param *ps = nn_model_params(m, &np);
    trng r = {6};
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < ps[i].numel; j++) {
            float *w = p + ps[i].offset + j;
            if (ps[i].ndim == 2) *w *= 10.0f;
            else *w += (float)(0.2 * trng_uniform(&r));
        }
    nn_model_free(m);
    return p;
}

static void model_fused_vs_plain(int bf16)
{
    nn_backend *be = cpu(2);
    char err[256];
    if (bf16) assert_int_equal(nn_backend_cpu_set_precision(be, NN_PREC_BF16, err, sizeof err), 0);
    plain_backend pb;
    make_plain(&pb, be);
    nn_config c = model_cfg();
    mbatch mb;
    make_mbatch(&mb, &c);
    float *params = model_params(be, &c);
    nn_model *fused = tiny_model(be, &c, params), *plain = tiny_model(&pb.b, &c, params);
    size_t n = nn_model_num_params(fused);
    run_out a, b, a2;
    run_model(fused, &mb, &a);
    run_model(plain, &mb, &b);
    assert_true(runs_same(&a, &b, n));
    run_model(fused, &mb, &a2); /* again: resident weights reused, same bits */
    assert_true(runs_same(&a, &a2, n));
    /* negative control: one bias a little off on the composed side must show */
    const nn_param *bo = nn_model_find_param(plain, "bert.encoder.layer.1.output.dense.bias");
    params[bo->offset] += 0.01f;
    assert_int_equal(nn_model_set_params(plain, params, n, err), 0);
    run_out c2;
    run_model(plain, &mb, &c2);
    assert_false(runs_same(&a, &c2, n));
    free(a.grad);
    free(b.grad);
    free(a2.grad);
    free(c2.grad);
    free(params);
    nn_model_free(fused);
    nn_model_free(plain);
    nn_backend_destroy(be);
}

static void test_model_fused_equals_composed(void **state)
{
    (void)state;
    model_fused_vs_plain(0);
}

/* ------------------------------------------------------------ resident bf16 weights */

static int have_bf16(void)
{
    char why[256];
    if (nn_cpu_bf16_available(why, sizeof why)) return 1;
    printf("  no bf16 GEMM here (%s)\n", why);
    return 0;
}

/* In bf16, the model on resident weights equals the model converting every call. */
static void test_model_bf16_resident_equals_per_call(void **state)
{
    (void)state;
    if (!have_bf16()) skip();
    model_fused_vs_plain(1);
}

static void test_gemm_weight_equals_gemm(void **state)
{
    (void)state;
    if (!have_bf16()) skip();
    nn_backend *be = cpu(2);
    char err[256];
    assert_int_equal(nn_backend_cpu_set_precision(be, NN_PREC_BF16, err, sizeof err), 0);
    const nn_backend_ops *op = be->ops;
    /* odd sizes (row tails of the 16-wide conversion), both weight layouts, transposed A,
     * alpha and beta */
    const int64_t dims[][3] = {{1, 1, 1}, {7, 19, 33}, {30, 384, 384}, {13, 1539, 385}, {5, 2, 48}};
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int64_t M = dims[s][0], N = dims[s][1], K = dims[s][2];
                const int64_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 3;
                trng r = {400 + s};
                float *A = frand(&r, (size_t)(M * K), 1.0), *W = frand(&r, (size_t)(K * N), 1.0);
                float *C0 = frand(&r, (size_t)(M * ldc), 1.0);
                float *C1 = fdup(C0, (size_t)(M * ldc)), *C2 = fdup(C0, (size_t)(M * ldc));
                const float alpha = s % 2 ? 0.5f : 1.0f, beta = tb ? 1.0f : 0.0f;
                for (int rep = 0; rep < 2; rep++) { /* first call converts W, the second reuses it */
                    memcpy(C1, C0, (size_t)(M * ldc) * 4);
                    memcpy(C2, C0, (size_t)(M * ldc) * 4);
                    op->gemm(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C1, ldc);
                    op->gemm_weight(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C2, ldc);
                    assert_true(same(C1, C2, (size_t)(M * ldc)));
                }
                /* W written, then announced: the next call sees the new values */
                for (int64_t i = 0; i < K * N; i += 3) W[i] = -W[i] + 0.125f;
                op->weights_changed(be, W, (size_t)(K * N) * 4);
                memcpy(C1, C0, (size_t)(M * ldc) * 4);
                memcpy(C2, C0, (size_t)(M * ldc) * 4);
                op->gemm(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C1, ldc);
                op->gemm_weight(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C2, ldc);
                assert_true(same(C1, C2, (size_t)(M * ldc)));
                /* negative control: written but not announced, the resident copy is used and
                 * the result is stale (the cache is really in the path) */
                for (int64_t i = 0; i < K * N; i++) W[i] = W[i] * 2.0f + 1.0f;
                memcpy(C1, C0, (size_t)(M * ldc) * 4);
                memcpy(C2, C0, (size_t)(M * ldc) * 4);
                op->gemm(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C1, ldc);
                op->gemm_weight(be, ta, tb, M, N, K, alpha, A, lda, W, ldb, beta, C2, ldc);
                assert_false(same(C1, C2, (size_t)(M * ldc)));
                op->weights_changed(be, W, (size_t)(K * N) * 4); /* W is freed next */
                free(A);
                free(W);
                free(C0);
                free(C1);
                free(C2);
            }
    nn_backend_destroy(be);
}

/* The contract on conversions: each weight matrix once after the parameters are set,
 * none for further batches, and once per training step (forward and backward share it). */
static void test_conversions_once_per_change(void **state)
{
    (void)state;
    if (!have_bf16()) skip();
    nn_backend *be = cpu(2);
    char err[NN_ERRLEN];
    assert_int_equal(nn_backend_cpu_set_precision(be, NN_PREC_BF16, err, sizeof err), 0);
    nn_config c = model_cfg();
    const uint64_t weights = 4 * (uint64_t)c.num_hidden_layers + 2; /* QKV, out, FFN in/out; pooler, classifier */
    mbatch mb;
    make_mbatch(&mb, &c);
    float *params = model_params(be, &c);
    nn_model *m = tiny_model(be, &c, params);
    nn_batch b = test_nn_batch(NSEQ, mb.ids, mb.off, mb.types, mb.labels, mb.sid, NULL, NSEQ, 1, 42, 2);
    nn_batch inf = b;
    inf.train = 0;
    inf.no_grad = 1;
    uint64_t c0 = nn_backend_cpu_bf16_weight_conversions(be);
    float loss;
    for (int i = 0; i < 3; i++) assert_int_equal(nn_model_forward(m, &inf, &loss, NULL, err), 0);
    assert_int_equal(nn_backend_cpu_bf16_weight_conversions(be) - c0, weights);

    nn_adamw *opt = NULL;
    nn_adamw_config ac;
    nn_adamw_config_default(&ac);
    ac.lr = 1e-3;
    ac.total_steps = 10;
    assert_int_equal(nn_adamw_create(&opt, m, &ac, err), 0);
    for (int step = 0; step < 3; step++) {
        uint64_t before = nn_backend_cpu_bf16_weight_conversions(be);
        nn_model_zero_grad(m);
        assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
        assert_int_equal(nn_model_backward(m, err), 0);
        assert_int_equal(nn_adamw_step(opt, NULL, NULL, err), 0);
        /* step 0 runs on the copies the inference made; later steps on the update's */
        assert_int_equal(nn_backend_cpu_bf16_weight_conversions(be) - before, step ? weights : 0);
    }
    /* an evaluation after a step converts once, then reuses */
    uint64_t before = nn_backend_cpu_bf16_weight_conversions(be);
    for (int i = 0; i < 2; i++) assert_int_equal(nn_model_forward(m, &inf, &loss, NULL, err), 0);
    assert_int_equal(nn_backend_cpu_bf16_weight_conversions(be) - before, weights);
    nn_adamw_free(opt);
    nn_model_free(m);
    free(params);
    nn_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bias_gelu),
        cmocka_unit_test(test_bias_dropout_add_layernorm),
        cmocka_unit_test(test_dropout_copy),
        cmocka_unit_test(test_model_fused_equals_composed),
        cmocka_unit_test(test_model_bf16_resident_equals_per_call),
        cmocka_unit_test(test_gemm_weight_equals_gemm),
        cmocka_unit_test(test_conversions_once_per_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
