/* adebert's BERT against PyTorch + Hugging Face Transformers (float64) on a tiny
 * random model: logits, loss and every parameter gradient without dropout and
 * with adebert's dropout masks applied inside HF through hooks, and parameter
 * changes after 3 AdamW steps (warmup, one clipped step, class weights).
 * Fixture: tests/reference/fixture, made by tests/reference/gen_model_reference.py.
 * Per tensor: ||a - ref|| / ||ref|| <= 1e-4 and max|a - ref| <= 1e-4 max|ref|.
 * Tensors whose true gradient is zero by symmetry (attention key biases: softmax
 * is shift-invariant) hold only rounding noise on both sides; they are checked
 * to be negligible instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "io/io.h"
#include "launch/cli.h"
#include "nn/nn.h"
#include "nn_test_util.h"

static nn_backend *BE;
static io_safetensors REF, W;
static nn_config CFG;
static char DIR_[1024];

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("ADEBERT_SOURCE_DIR");
    snprintf(DIR_, sizeof DIR_, "%s/tests/reference/fixture", src ? src : ".");
    char path[1200], err[IO_ERRLEN];
    snprintf(path, sizeof path, "%s/config.json", DIR_);
    if (io_config_load(path, &CFG, err)) {
        fprintf(stderr, "%s (set ADEBERT_SOURCE_DIR to the repository root)\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/reference.safetensors", DIR_);
    if (io_safetensors_open(path, &REF, err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", DIR_);
    if (io_safetensors_open(path, &W, err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    BE = test_backend();
    return BE ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    io_safetensors_free(&REF);
    io_safetensors_free(&W);
    nn_backend_destroy(BE);
    return 0;
}

/* a whole reference tensor as floats (caller frees); n_out = element count */
static float *ref_tensor(const io_safetensors *st, const char *name, size_t *n_out)
{
    const io_st_tensor *t = io_safetensors_find(st, name);
    if (!t) {
        fprintf(stderr, "fixture lacks %s\n", name);
        return NULL;
    }
    float *x = malloc((size_t)t->numel * sizeof *x + 4);
    char err[IO_ERRLEN];
    if (io_safetensors_read_f32(st, t, x, (size_t)t->numel, err)) {
        fprintf(stderr, "%s\n", err);
        free(x);
        return NULL;
    }
    if (n_out) *n_out = (size_t)t->numel;
    return x;
}

typedef struct {
    int64_t B;
    int32_t *ids, *types, *off, *labels;
    uint32_t *sid;
    float cw[16];
    double denom;
    uint64_t seed;
} refbatch;

static int32_t *as_i32(const float *f, size_t n)
{
    int32_t *x = malloc(n * sizeof *x + 4);
    for (size_t i = 0; i < n; i++) x[i] = (int32_t)f[i];
    return x;
}

static void load_batch(refbatch *b)
{
    size_t n, nb, nc;
    float *ids = ref_tensor(&REF, "batch.ids", &n), *ty = ref_tensor(&REF, "batch.token_types", NULL);
    float *off = ref_tensor(&REF, "batch.offsets", &nb), *lab = ref_tensor(&REF, "batch.labels", NULL);
    float *sid = ref_tensor(&REF, "batch.sample_ids", NULL), *cw = ref_tensor(&REF, "batch.class_weights", &nc);
    float *den = ref_tensor(&REF, "batch.denominator", NULL), *seed = ref_tensor(&REF, "batch.seed", NULL);
    assert_non_null(ids);
    assert_non_null(seed);
    b->B = (int64_t)nb - 1;
    b->ids = as_i32(ids, n);
    b->types = as_i32(ty, n);
    b->off = as_i32(off, nb);
    b->labels = as_i32(lab, (size_t)b->B);
    b->sid = malloc((size_t)b->B * sizeof *b->sid);
    for (int64_t s = 0; s < b->B; s++) b->sid[s] = (uint32_t)sid[s];
    assert_int_equal(nc, CFG.num_labels);
    memcpy(b->cw, cw, nc * sizeof *cw);
    b->denom = den[0];
    b->seed = (uint64_t)seed[0];
    free(ids);
    free(ty);
    free(off);
    free(lab);
    free(sid);
    free(cw);
    free(den);
    free(seed);
}

static void free_batch(refbatch *b)
{
    free(b->ids);
    free(b->types);
    free(b->off);
    free(b->labels);
    free(b->sid);
}

static nn_batch as_nn(const refbatch *r, int train, uint32_t epoch, double denom)
{
    return test_nn_batch(r->B, r->ids, r->off, r->types, r->labels, r->sid, r->cw, denom, train, r->seed, epoch);
}

/* HF weights -> flat buffer, by name and shape; every tensor of the file used */
static nn_model *load_model(void)
{
    char err[NN_ERRLEN];
    nn_model *m = NULL;
    if (nn_model_create(&m, &CFG, BE, 256, 16, CFG.max_position_embeddings, err)) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    size_t n = nn_model_num_params(m), np;
    const nn_param *ps = nn_model_params(m, &np);
    float *host = malloc(n * sizeof *host);
    assert_int_equal(np, W.n);
    for (size_t i = 0; i < np; i++) {
        const io_st_tensor *t = io_safetensors_find(&W, ps[i].name);
        assert_non_null(t);
        assert_int_equal(t->ndim, ps[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], ps[i].shape[d]);
        assert_int_equal(io_safetensors_read_f32(&W, t, host + ps[i].offset, ps[i].numel, err), 0);
    }
    assert_int_equal(nn_model_set_params(m, host, n, err), 0);
    free(host);
    return m;
}

static int symmetric_zero(const char *name)
{
    return strstr(name, "attention.self.key.bias") != NULL;
}

/* compare a[n] with the reference tensor `name`; returns 0 when within tolerance */
static int compare(const char *label, const float *a, size_t n, const char *name, double scale_for_zero)
{
    size_t rn = 0;
    float *r = ref_tensor(&REF, name, &rn);
    assert_non_null(r);
    assert_int_equal(rn, n);
    double num = 0, den = 0, maxd = 0, maxr = 0, maxa = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - r[i];
        num += d * d;
        den += (double)r[i] * r[i];
        if (fabs(d) > maxd) maxd = fabs(d);
        if (fabs(r[i]) > maxr) maxr = fabs(r[i]);
        if (fabs(a[i]) > maxa) maxa = fabs(a[i]);
    }
    free(r);
    double rel = sqrt(num) / (sqrt(den) + 1e-300);
    int ok;
    if (scale_for_zero > 0 && symmetric_zero(name)) ok = maxa <= 1e-5 * scale_for_zero && maxr <= 1e-5 * scale_for_zero;
    else ok = rel <= 1e-4 && maxd <= 1e-4 * maxr;
    if (!ok || getenv("ADEBERT_TEST_VERBOSE"))
        fprintf(stderr, "%s %s: rel %.3g maxdiff %.3g max|ref| %.3g %s\n", label, name, rel, maxd, maxr,
                ok ? "ok" : "MISMATCH");
    return ok ? 0 : 1;
}

static int compare_grads(nn_model *m, const char *prefix)
{
    size_t n = nn_model_num_params(m), np;
    const nn_param *ps = nn_model_params(m, &np);
    float *g = malloc(n * sizeof *g);
    char err[NN_ERRLEN], name[200];
    nn_model_get_grads(m, g, n, err);
    double gn = 0;
    for (size_t i = 0; i < n; i++) gn += (double)g[i] * g[i];
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        snprintf(name, sizeof name, "%s.grad.%s", prefix, ps[i].name);
        bad += compare(prefix, g + ps[i].offset, ps[i].numel, name, sqrt(gn));
    }
    free(g);
    return bad;
}

static void check_case(int train)
{
    nn_model *m = load_model();
    assert_non_null(m);
    refbatch rb;
    load_batch(&rb);
    nn_batch b = as_nn(&rb, train, 0, rb.denom);
    float loss, logits[64];
    char err[NN_ERRLEN];
    nn_model_zero_grad(m);
    assert_int_equal(nn_model_forward(m, &b, &loss, logits, err), 0);
    assert_int_equal(nn_model_backward(m, err), 0);
    const char *p = train ? "train" : "eval";
    char name[64];
    snprintf(name, sizeof name, "%s.logits", p);
    int bad = compare(p, logits, (size_t)(rb.B * CFG.num_labels), name, 0);
    snprintf(name, sizeof name, "%s.loss", p);
    bad += compare(p, &loss, 1, name, 0);
    bad += compare_grads(m, p);
    assert_int_equal(bad, 0);
    free_batch(&rb);
    nn_model_free(m);
}

static void test_eval_values_and_grads(void **state)
{
    (void)state;
    check_case(0);
}

static void test_dropout_values_and_grads(void **state)
{
    (void)state;
    check_case(1);
}

/* the masks HF applied are exactly adebert's */
static void test_masks_match(void **state)
{
    (void)state;
    refbatch rb;
    load_batch(&rb);
    int64_t Lm = 0, H = CFG.hidden_size, nh = CFG.num_attention_heads;
    for (int64_t s = 0; s < rb.B; s++)
        if (rb.off[s + 1] - rb.off[s] > Lm) Lm = rb.off[s + 1] - rb.off[s];
    float ph = (float)CFG.hidden_dropout_prob, pa = (float)CFG.attention_probs_dropout_prob;
    size_t n;
    float *m = ref_tensor(&REF, "mask.embeddings", &n);
    assert_int_equal(n, (size_t)(rb.B * Lm * H));
    int64_t zeros = 0;
    for (int64_t s = 0; s < rb.B; s++)
        for (int64_t i = 0; i < Lm; i++)
            for (int64_t j = 0; j < H; j++) {
                float want = nn_dropout_multiplier(rb.seed, 0, rb.sid[s], NN_SITE_EMBEDDINGS, (uint32_t)i, (uint32_t)j, ph);
                assert_true(m[(s * Lm + i) * H + j] == want);
                zeros += want == 0.0f;
            }
    assert_true(zeros > 0);
    free(m);
    for (int64_t l = 0; l < CFG.num_hidden_layers; l++) {
        char name[64];
        snprintf(name, sizeof name, "mask.layer.%lld.attn_probs", (long long)l);
        m = ref_tensor(&REF, name, &n);
        assert_int_equal(n, (size_t)(rb.B * nh * Lm * Lm));
        for (int64_t s = 0; s < rb.B; s++)
            for (int64_t h = 0; h < nh; h++)
                for (int64_t i = 0; i < Lm; i++)
                    for (int64_t j = 0; j < Lm; j++)
                        assert_true(m[((s * nh + h) * Lm + i) * Lm + j] ==
                                    nn_dropout_multiplier(rb.seed, 0, rb.sid[s], NN_SITE_ATTN_PROBS(l), (uint32_t)i,
                                                          (uint32_t)(h * CFG.max_position_embeddings + j), pa));
        free(m);
        snprintf(name, sizeof name, "mask.layer.%lld.ffn_out", (long long)l);
        m = ref_tensor(&REF, name, &n);
        for (int64_t s = 0; s < rb.B; s++)
            for (int64_t i = 0; i < Lm; i++)
                for (int64_t j = 0; j < H; j++)
                    assert_true(m[(s * Lm + i) * H + j] == nn_dropout_multiplier(rb.seed, 0, rb.sid[s], NN_SITE_FFN_OUT(l),
                                                                               (uint32_t)i, (uint32_t)j, ph));
        free(m);
    }
    m = ref_tensor(&REF, "mask.classifier", &n);
    for (int64_t s = 0; s < rb.B; s++)
        for (int64_t j = 0; j < H; j++)
            assert_true(m[s * H + j] == nn_dropout_multiplier(rb.seed, 0, rb.sid[s], NN_SITE_CLASSIFIER, 0, (uint32_t)j, ph));
    free(m);
    free_batch(&rb);
}

static void test_adamw_deltas(void **state)
{
    (void)state;
    nn_model *m = load_model();
    assert_non_null(m);
    refbatch rb;
    load_batch(&rb);
    size_t n = nn_model_num_params(m), np;
    float *p0 = malloc(n * sizeof *p0), *p1 = malloc(n * sizeof *p1);
    char err[NN_ERRLEN], name[200];
    nn_model_get_params(m, p0, n, err);
    float *den = ref_tensor(&REF, "adamw.denominators", NULL), *norms = ref_tensor(&REF, "adamw.grad_norms", NULL);
    float *lrs = ref_tensor(&REF, "adamw.lrs", NULL);
    nn_adamw_config c;
    nn_adamw_config_default(&c);
    c.lr = 1e-3;
    c.weight_decay = 0.01;
    c.warmup_steps = 1;
    c.total_steps = 4;
    c.max_grad_norm = 1.0;
    nn_adamw *o = NULL;
    assert_int_equal(nn_adamw_create(&o, m, &c, err), 0);
    for (int step = 0; step < 3; step++) {
        nn_batch b = as_nn(&rb, 1, (uint32_t)step, den[step]);
        float loss;
        double gn, lr;
        nn_model_zero_grad(m);
        assert_int_equal(nn_model_forward(m, &b, &loss, NULL, err), 0);
        assert_int_equal(nn_model_backward(m, err), 0);
        assert_int_equal(nn_adamw_step(o, &gn, &lr, err), 0);
        if (getenv("ADEBERT_TEST_VERBOSE"))
            fprintf(stderr, "step %d: grad norm %.7g (ref %.7g) lr %g (ref %g)\n", step, gn, norms[step], lr, lrs[step]);
        assert_true(fabs(gn - norms[step]) <= 1e-4 * norms[step]);
        assert_true(fabs(lr - lrs[step]) <= 1e-6 * lrs[step] + 1e-12);
    }
    assert_true(norms[1] > 1.0f && norms[0] < 1.0f && norms[2] < 1.0f); /* the fixture clips on step 2 */
    nn_model_get_params(m, p1, n, err);
    for (size_t i = 0; i < n; i++) p1[i] -= p0[i];
    const nn_param *ps = nn_model_params(m, &np);
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        snprintf(name, sizeof name, "adamw.delta.%s", ps[i].name);
        if (symmetric_zero(ps[i].name)) {
            /* noise-driven Adam updates (|update| <= lr): both sides tiny vs. lr-scale moves */
            continue;
        }
        bad += compare("adamw", p1 + ps[i].offset, ps[i].numel, name, 0);
    }
    assert_int_equal(bad, 0);
    nn_adamw_free(o);
    free(p0);
    free(p1);
    free(den);
    free(norms);
    free(lrs);
    free_batch(&rb);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks_match),
        cmocka_unit_test(test_eval_values_and_grads),
        cmocka_unit_test(test_dropout_values_and_grads),
        cmocka_unit_test(test_adamw_deltas),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
