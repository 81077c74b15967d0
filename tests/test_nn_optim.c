/* AdamW (torch.optim.AdamW semantics), HF's linear schedule with warmup, global
 * grad-norm clipping and the no-decay set, against a double reference written
 * from the PyTorch/Transformers formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn/nn.h"
#include "nn_test_util.h"

NN_TEST_BACKEND_FIXTURE

static void test_schedule(void **state)
{
    (void)state;
    nn_adamw_config c;
    nn_adamw_config_default(&c);
    assert_true(c.lr == 2e-5 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 0.01 &&
                c.max_grad_norm == 1.0);
    c.warmup_steps = 2;
    c.total_steps = 10;
    /* transformers.get_linear_schedule_with_warmup(opt, 2, 10).lr_lambda */
    const double want[] = {0.0, 0.5, 1.0, 7.0 / 8, 6.0 / 8, 5.0 / 8, 4.0 / 8, 3.0 / 8, 2.0 / 8, 1.0 / 8, 0.0, 0.0};
    for (int s = 0; s < 12; s++) assert_true(fabs(nn_lr_factor(&c, s) - want[s]) < 1e-15);
    c.warmup_steps = 0;
    assert_true(nn_lr_factor(&c, 0) == 1.0);
    assert_true(fabs(nn_lr_factor(&c, 5) - 0.5) < 1e-15);
    c.warmup_steps = 1;
    c.total_steps = 1;
    assert_true(nn_lr_factor(&c, 0) == 0.0); /* first step at lr(0) = 0 when warmup > 0 */
    assert_true(nn_lr_factor(&c, 1) == 0.0);
    /* HF TrainingArguments: ceil(warmup_ratio * total) */
    assert_int_equal(nn_warmup_from_ratio(0.1, 95), 10);
    assert_int_equal(nn_warmup_from_ratio(0.1, 100), 10);
    assert_int_equal(nn_warmup_from_ratio(0.0, 100), 0);
}

static nn_model *tiny_model(void)
{
    nn_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 50;
    c.hidden_size = 16;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 9;
    c.max_position_embeddings = 12;
    c.type_vocab_size = 2;
    c.num_labels = 2;
    c.layer_norm_eps = 1e-12;
    c.classifier_dropout = -1;
    char err[NN_ERRLEN];
    nn_model *m = NULL;
    if (nn_model_create(&m, &c, BE, 32, 4, 12, err) || nn_model_init_weights(m, 5, err)) {
        fprintf(stderr, "%s\n", err);
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* three steps with warmup 1 (the first at lr 0), total 4; grads scaled so that
 * step 2 clips and the others do not; double reference of torch.optim.AdamW +
 * clip_grad_norm_ + LambdaLR */
static void run_case(int clip_on, double *max_rel_vs_clipped_ref)
{
    nn_model *m = tiny_model();
    assert_non_null(m);
    size_t n = nn_model_num_params(m), np;
    const nn_param *ps = nn_model_params(m, &np);
    float *p = malloc(n * 4), *gf = malloc(n * 4);
    double *pr = malloc(n * sizeof *pr), *mr = calloc(n, sizeof *mr), *vr = calloc(n, sizeof *vr);
    double *g = malloc(n * sizeof *g);
    char *decay = malloc(n);
    char err[NN_ERRLEN];
    nn_model_get_params(m, p, n, err);
    for (size_t i = 0; i < n; i++) pr[i] = p[i];
    for (size_t i = 0; i < np; i++) memset(decay + ps[i].offset, ps[i].decay, ps[i].numel);
    nn_adamw_config c;
    nn_adamw_config_default(&c);
    c.lr = 1e-2;
    c.weight_decay = 0.1;
    c.warmup_steps = 1;
    c.total_steps = 4;
    c.max_grad_norm = clip_on ? 1.0 : 0.0;
    nn_adamw *o = NULL;
    assert_int_equal(nn_adamw_create(&o, m, &c, err), 0);
    trng r = {77};
    for (int t = 1; t <= 3; t++) {
        double ss = 0;
        for (size_t i = 0; i < n; i++) {
            g[i] = trng_uniform(&r) * (t == 2 ? 0.5 : 0.002);
            gf[i] = (float)g[i];
            ss += (double)gf[i] * gf[i];
        }
        BE->ops->upload(BE, nn_model_grad_buf(m), gf, n * 4);
        double gn, lr;
        assert_int_equal(nn_adamw_step(o, &gn, &lr, err), 0);
        double norm = sqrt(ss), coef = 1.0 / (norm + 1e-6), lr_ref = 1e-2 * nn_lr_factor(&c, t - 1);
        assert_true(fabs(gn - norm) < 1e-9 * norm);
        assert_true(fabs(lr - lr_ref) < 1e-15);
        if (t == 1) assert_true(lr == 0.0);
        if (t == 2) assert_true(norm > 1.0); /* clipping is active on this step */
        else assert_true(norm < 1.0);
        for (size_t i = 0; i < n; i++) {
            double gi = gf[i] * (coef < 1 ? coef : 1.0); /* the reference always clips */
            if (decay[i]) pr[i] *= 1 - lr_ref * 0.1;
            mr[i] = 0.9 * mr[i] + 0.1 * gi;
            vr[i] = 0.999 * vr[i] + 0.001 * gi * gi;
            double denom = sqrt(vr[i]) / sqrt(1 - pow(0.999, t)) + 1e-8;
            pr[i] -= lr_ref / (1 - pow(0.9, t)) * mr[i] / denom;
        }
    }
    assert_int_equal(nn_adamw_steps_done(o), 3);
    nn_model_get_params(m, p, n, err);
    /* compare parameter CHANGES (the quantity that matters) per tensor */
    float *p0 = malloc(n * 4);
    nn_model *m0 = tiny_model();
    nn_model_get_params(m0, p0, n, err);
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        double num = 0, den = 0;
        for (size_t j = ps[i].offset; j < ps[i].offset + ps[i].numel; j++) {
            double d = (p[j] - p0[j]) - (pr[j] - p0[j]);
            num += d * d;
            den += (pr[j] - p0[j]) * (pr[j] - p0[j]);
        }
        double rel = sqrt(num) / (sqrt(den) + 1e-30);
        if (rel > worst) worst = rel;
    }
    *max_rel_vs_clipped_ref = worst;
    nn_adamw_free(o);
    nn_model_free(m);
    nn_model_free(m0);
    free(p);
    free(p0);
    free(gf);
    free(pr);
    free(mr);
    free(vr);
    free(g);
    free(decay);
}

static void test_adamw_clip_decay(void **state)
{
    (void)state;
    double rel;
    run_case(1, &rel);
    assert_true(rel < 1e-4);
    run_case(0, &rel); /* negative control: no clipping must not match */
    assert_true(rel > 1e-2);
}

static void test_no_decay_set(void **state)
{
    (void)state;
    nn_model *m = tiny_model();
    size_t n = nn_model_num_params(m), np;
    const nn_param *ps = nn_model_params(m, &np);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    char err[NN_ERRLEN];
    nn_model_get_params(m, a, n, err);
    nn_adamw_config c;
    nn_adamw_config_default(&c);
    c.lr = 0.5;
    c.weight_decay = 0.1;
    c.total_steps = 10;
    nn_adamw *o = NULL;
    assert_int_equal(nn_adamw_create(&o, m, &c, err), 0);
    nn_model_zero_grad(m); /* zero gradients: only decoupled decay moves parameters */
    assert_int_equal(nn_adamw_step(o, NULL, NULL, err), 0);
    nn_model_get_params(m, b, n, err);
    for (size_t i = 0; i < np; i++) {
        int want_decay = !(strstr(ps[i].name, "bias") || strstr(ps[i].name, "LayerNorm.weight"));
        assert_int_equal(ps[i].decay, want_decay);
        for (size_t j = ps[i].offset; j < ps[i].offset + ps[i].numel; j++) {
            float want = want_decay ? a[j] * (1.0f - 0.5f * 0.1f) : a[j];
            assert_true(fabs(b[j] - want) <= 1e-7 * fabs(a[j]) + 1e-12);
        }
    }
    /* a non-finite gradient is refused */
    float nanv = NAN;
    BE->ops->upload(BE, nn_model_grad_buf(m), &nanv, 4);
    assert_int_not_equal(nn_adamw_step(o, NULL, NULL, err), 0);
    nn_adamw_free(o);
    nn_model_free(m);
    free(a);
    free(b);
}

static void test_bad_config(void **state)
{
    (void)state;
    nn_model *m = tiny_model();
    nn_adamw_config c;
    nn_adamw_config_default(&c);
    char err[NN_ERRLEN];
    nn_adamw *o = NULL;
    c.beta2 = 1.0;
    assert_int_not_equal(nn_adamw_create(&o, m, &c, err), 0);
    nn_adamw_config_default(&c);
    c.total_steps = 0;
    assert_int_not_equal(nn_adamw_create(&o, m, &c, err), 0);
    nn_adamw_config_default(&c);
    c.eps = 0;
    assert_int_not_equal(nn_adamw_create(&o, m, &c, err), 0);
    assert_null(o);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_adamw_clip_decay),
        cmocka_unit_test(test_no_decay_set),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
