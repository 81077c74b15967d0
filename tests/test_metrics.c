/* io/metrics.c: hand-computed cases, ties, one-class splits, the threshold edge,
 * scikit-learn's numbers (tests/reference/metrics_reference.txt, regenerated here
 * from the same counter generator as gen_metrics_reference.py), sharded sums, the
 * metrics.jsonl writer/reader, and a negative control: an AUC that ignores ties
 * must miss the reference by far more than the tolerance. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"

#define TOL 1e-12

static void near(double got, double want, double tol, const char *what)
{
    if (isnan(want) && isnan(got)) return;
    if (!(fabs(got - want) <= tol)) fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

/* --------------------------------------------------------- hand-computed */

static void test_hand_small(void **state)
{
    (void)state;
    /* sorted by score; threshold 0.5 -> 5 predicted positive */
    const double s[8] = {0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2};
    const uint8_t y[8] = {1, 1, 0, 1, 0, 0, 1, 0};
    io_metrics m;
    char err[IO_ERRLEN];
    assert_int_equal(io_metrics_compute_f64(s, y, 8, IO_METRICS_THRESHOLD, &m, err), 0);
    assert_int_equal(m.cm.tp, 3);
    assert_int_equal(m.cm.fp, 2);
    assert_int_equal(m.cm.tn, 2);
    assert_int_equal(m.cm.fn, 1);
    near(m.precision, 3.0 / 5, 0, "precision");
    near(m.recall, 3.0 / 4, 0, "recall");
    near(m.f1, 2.0 / 3, 0, "f1");
    near(m.accuracy, 5.0 / 8, 0, "accuracy");
    /* positive/negative pairs won: 4 + 4 + 3 + 1 of 16 */
    assert_true(m.roc_auc_defined);
    near(m.roc_auc, 12.0 / 16, 0, "roc_auc");
    /* precision at each positive: 1/1, 2/2, 3/4, 4/7 -> mean 93/112 */
    assert_true(m.pr_auc_defined);
    near(m.pr_auc, 93.0 / 112, 1e-15, "pr_auc");

    /* same rows shuffled: nothing depends on row order */
    const double s2[8] = {0.3, 0.55, 0.9, 0.2, 0.6, 0.8, 0.4, 0.7};
    const uint8_t y2[8] = {1, 0, 1, 0, 1, 1, 0, 0};
    io_metrics m2;
    assert_int_equal(io_metrics_compute_f64(s2, y2, 8, 0.5, &m2, err), 0);
    assert_memory_equal(&m.cm, &m2.cm, sizeof m.cm);
    assert_true(m.roc_auc == m2.roc_auc && m.pr_auc == m2.pr_auc);
}

static void test_ties(void **state)
{
    (void)state;
    io_metrics m;
    char err[IO_ERRLEN];
    /* all scores equal: a coin, whatever the row order */
    const double s1[4] = {0.5, 0.5, 0.5, 0.5};
    const uint8_t y1[4] = {1, 0, 1, 0};
    assert_int_equal(io_metrics_compute_f64(s1, y1, 4, 0.5, &m, err), 0);
    near(m.roc_auc, 0.5, 0, "roc all tied");
    near(m.pr_auc, 0.5, 0, "ap all tied");
    assert_int_equal(m.cm.tp, 2);
    assert_int_equal(m.cm.fp, 2);

    /* a positive tied with one negative counts 1/2 against it; AP has one point at
     * 0.8 with precision 1/2 (an AP taking the positive first would say 1) */
    const double s2[3] = {0.8, 0.8, 0.2};
    const uint8_t y2a[3] = {1, 0, 0}, y2b[3] = {0, 1, 0};
    io_metrics ma, mb;
    assert_int_equal(io_metrics_auc_f64(s2, y2a, 3, &ma, err), 0);
    assert_int_equal(io_metrics_auc_f64(s2, y2b, 3, &mb, err), 0);
    near(ma.roc_auc, 0.75, 0, "roc tie a");
    near(mb.roc_auc, 0.75, 0, "roc tie b");
    near(ma.pr_auc, 0.5, 0, "ap tie a");
    near(mb.pr_auc, 0.5, 0, "ap tie b");

    /* ties between positives only do not matter */
    const double s3[4] = {0.9, 0.9, 0.1, 0.1};
    const uint8_t y3[4] = {1, 1, 0, 0};
    assert_int_equal(io_metrics_auc_f64(s3, y3, 4, &m, err), 0);
    near(m.roc_auc, 1.0, 0, "roc perfect");
    near(m.pr_auc, 1.0, 0, "ap perfect");

    /* -0.0 and 0.0 are one score */
    const double s4[2] = {-0.0, 0.0};
    const uint8_t y4[2] = {0, 1};
    assert_int_equal(io_metrics_auc_f64(s4, y4, 2, &m, err), 0);
    near(m.roc_auc, 0.5, 0, "roc signed zeros");
}

static void test_one_class(void **state)
{
    (void)state;
    io_metrics m;
    char err[IO_ERRLEN];
    const double s[3] = {0.2, 0.6, 0.9};
    const uint8_t neg[3] = {0, 0, 0}, pos[3] = {1, 1, 1};

    assert_int_equal(io_metrics_compute_f64(s, neg, 3, 0.5, &m, err), 0);
    assert_false(m.roc_auc_defined);
    assert_false(m.pr_auc_defined);
    assert_true(isnan(m.roc_auc) && isnan(m.pr_auc));
    /* no positive: recall and F1 are 0/0 -> 0; 2 false positives -> precision 0 */
    near(m.precision, 0, 0, "precision");
    near(m.recall, 0, 0, "recall");
    near(m.f1, 0, 0, "f1");
    near(m.accuracy, 1.0 / 3, 0, "accuracy");

    assert_int_equal(io_metrics_compute_f64(s, pos, 3, 0.5, &m, err), 0);
    assert_false(m.roc_auc_defined);
    assert_true(m.pr_auc_defined);
    near(m.pr_auc, 1.0, 0, "ap all positive");
    near(m.precision, 1.0, 0, "precision");
    near(m.recall, 2.0 / 3, 0, "recall");

    /* nothing predicted positive: precision 0/0 -> 0 */
    assert_int_equal(io_metrics_compute_f64(s, pos, 3, 0.95, &m, err), 0);
    near(m.precision, 0, 0, "precision 0/0");
    near(m.f1, 0, 0, "f1");

    /* zero rows: every ratio 0, both AUCs undefined */
    assert_int_equal(io_metrics_compute_f64(NULL, NULL, 0, 0.5, &m, err), 0);
    assert_int_equal(m.cm.tp + m.cm.fp + m.cm.tn + m.cm.fn, 0);
    near(m.accuracy, 0, 0, "accuracy of nothing");
    assert_false(m.roc_auc_defined || m.pr_auc_defined);
}

static void test_threshold_edge(void **state)
{
    (void)state;
    char err[IO_ERRLEN];
    /* p >= threshold is positive: exactly 0.5 is, the float just below is not */
    const float s[2] = {0.5f, nextafterf(0.5f, 0.0f)};
    const uint8_t y[2] = {1, 1};
    io_confusion cm = {0, 0, 0, 0};
    assert_int_equal(io_confusion_add_f32(&cm, s, y, 2, IO_METRICS_THRESHOLD, err), 0);
    assert_int_equal(cm.tp, 1);
    assert_int_equal(cm.fn, 1);
    const double d[2] = {0.5, nextafter(0.5, 0.0)};
    io_confusion cd = {0, 0, 0, 0};
    assert_int_equal(io_confusion_add_f64(&cd, d, y, 2, 0.5, err), 0);
    assert_memory_equal(&cm, &cd, sizeof cm);
    /* a float compared with a double threshold it cannot represent: 0.3f > 0.3 */
    const float t[1] = {0.3f};
    io_confusion ct = {0, 0, 0, 0};
    assert_int_equal(io_confusion_add_f32(&ct, t, y, 1, 0.3, err), 0);
    assert_int_equal(ct.tp, (double)0.3f >= 0.3);
}

static void test_bad_input(void **state)
{
    (void)state;
    char err[IO_ERRLEN] = "";
    io_metrics m;
    io_confusion cm = {0, 0, 0, 0};
    const double s[2] = {0.1, NAN};
    const uint8_t y[2] = {0, 1}, bad[2] = {0, 2};
    assert_int_not_equal(io_metrics_auc_f64(s, y, 2, &m, err), 0);
    assert_non_null(strstr(err, "NaN"));
    assert_int_not_equal(io_confusion_add_f64(&cm, s, y, 2, 0.5, err), 0);
    const double ok[2] = {0.1, 0.2};
    assert_int_not_equal(io_metrics_compute_f64(ok, bad, 2, 0.5, &m, err), 0);
    assert_non_null(strstr(err, "label"));
    assert_int_not_equal(io_confusion_add_f64(&cm, ok, y, 2, NAN, err), 0);
    assert_int_equal(cm.tp + cm.fp + cm.tn + cm.fn, 0);
}

/* ------------------------------------------------ scikit-learn reference */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t draw(uint64_t seed, uint64_t i) { return splitmix64(seed + i * 0x9E3779B97F4A7C15ull); }

typedef struct {
    char name[32];
    uint64_t seed;
    size_t n;
    uint64_t levels, den;
    long long off;
    int f32;
    double thr;
    long long n_pos;
    double sum;
    long long tp, fp, tn, fn;
    double precision, recall, f1, accuracy, roc, ap;
} ref_case;

/* Same rows as gen_metrics_reference.py's make_case. */
static void make_case(const ref_case *c, double *sd, float *sf, uint8_t *y)
{
    for (size_t j = 0; j < c->n; j++) {
        uint64_t x = draw(c->seed, 2 * j), r = draw(c->seed, 2 * j + 1);
        uint64_t k = x % c->levels;
        double s = (double)k / (double)c->levels;
        if (c->f32) s = (double)(float)s;
        sd[j] = s;
        sf[j] = (float)s;
        y[j] = (long long)(r % (c->den * c->levels)) < (long long)k + c->off;
    }
}

static size_t load_reference(ref_case *cases, size_t cap)
{
    const char *src = getenv("ADEBERT_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/reference/metrics_reference.txt", src && *src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    char line[2048];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (n == cap) fail_msg("too many reference cases");
        ref_case *c = &cases[n];
        char thr[64], sum[64], v[6][64];
        int got = sscanf(line, "%31s %" SCNu64 " %zu %" SCNu64 " %" SCNu64 " %lld %d %63s %lld %63s %lld %lld %lld %lld "
                               "%63s %63s %63s %63s %63s %63s",
                         c->name, &c->seed, &c->n, &c->levels, &c->den, &c->off, &c->f32, thr, &c->n_pos, sum, &c->tp,
                         &c->fp, &c->tn, &c->fn, v[0], v[1], v[2], v[3], v[4], v[5]);
        if (got != 20) fail_msg("%s: bad line %zu (%d fields)", path, n + 1, got);
        c->thr = strtod(thr, NULL);
        c->sum = strtod(sum, NULL);
        c->precision = strtod(v[0], NULL);
        c->recall = strtod(v[1], NULL);
        c->f1 = strtod(v[2], NULL);
        c->accuracy = strtod(v[3], NULL);
        c->roc = strtod(v[4], NULL);
        c->ap = strtod(v[5], NULL);
        n++;
    }
    fclose(f);
    if (n < 10) fail_msg("%s: only %zu cases", path, n);
    return n;
}

typedef struct {
    double *sd;
    float *sf;
    uint8_t *y;
} rows;

static rows rows_alloc(size_t n)
{
    rows r = {malloc(n * sizeof(double)), malloc(n * sizeof(float)), malloc(n)};
    assert_non_null(r.sd);
    assert_non_null(r.sf);
    assert_non_null(r.y);
    return r;
}

static void rows_free(rows *r)
{
    free(r->sd);
    free(r->sf);
    free(r->y);
}

static void check_case(const ref_case *c, const io_metrics *m)
{
    char what[64];
    assert_int_equal(m->cm.tp, c->tp);
    assert_int_equal(m->cm.fp, c->fp);
    assert_int_equal(m->cm.tn, c->tn);
    assert_int_equal(m->cm.fn, c->fn);
    snprintf(what, sizeof what, "%.31s precision", c->name);
    near(m->precision, c->precision, TOL, what);
    snprintf(what, sizeof what, "%.31s recall", c->name);
    near(m->recall, c->recall, TOL, what);
    snprintf(what, sizeof what, "%.31s f1", c->name);
    near(m->f1, c->f1, TOL, what);
    snprintf(what, sizeof what, "%.31s accuracy", c->name);
    near(m->accuracy, c->accuracy, TOL, what);
    assert_int_equal(m->roc_auc_defined, !isnan(c->roc));
    assert_int_equal(m->pr_auc_defined, !isnan(c->ap));
    snprintf(what, sizeof what, "%.31s roc_auc", c->name);
    near(m->roc_auc, c->roc, TOL, what);
    snprintf(what, sizeof what, "%.31s pr_auc", c->name);
    near(m->pr_auc, c->ap, TOL, what);
}

static void test_sklearn_reference(void **state)
{
    (void)state;
    ref_case cases[64];
    size_t nc = load_reference(cases, 64);
    char err[IO_ERRLEN];
    for (size_t i = 0; i < nc; i++) {
        const ref_case *c = &cases[i];
        rows r = rows_alloc(c->n);
        make_case(c, r.sd, r.sf, r.y);
        /* the generator agrees with Python's, bit for bit */
        double sum = 0;
        long long npos = 0;
        for (size_t j = 0; j < c->n; j++) {
            sum += r.sd[j];
            npos += r.y[j];
        }
        if (sum != c->sum || npos != c->n_pos)
            fail_msg("%s: regenerated rows differ from the fixture (sum %.17g vs %.17g, positives %lld vs %lld)",
                     c->name, sum, c->sum, npos, c->n_pos);
        io_metrics m;
        if (c->f32) assert_int_equal(io_metrics_compute_f32(r.sf, r.y, c->n, c->thr, &m, err), 0);
        else assert_int_equal(io_metrics_compute_f64(r.sd, r.y, c->n, c->thr, &m, err), 0);
        check_case(c, &m);
        rows_free(&r);
    }
}

/* Rank-sharded evaluation: per-shard confusion sums + AUC over the gathered
 * (reordered) scores give the 1-rank numbers exactly. */
static void test_sharded_equals_whole(void **state)
{
    (void)state;
    ref_case cases[64];
    size_t nc = load_reference(cases, 64);
    char err[IO_ERRLEN];
    const ref_case *c = &cases[0];
    rows r = rows_alloc(c->n);
    make_case(c, r.sd, r.sf, r.y);
    io_metrics whole;
    assert_int_equal(io_metrics_compute_f64(r.sd, r.y, c->n, c->thr, &whole, err), 0);
    for (int world = 1; world <= 4; world++) {
        io_confusion sum = {0, 0, 0, 0};
        rows g = rows_alloc(c->n);
        size_t at = 0;
        /* rank k holds rows k, k+world, ...; the gather concatenates by rank */
        for (int k = 0; k < world; k++) {
            io_confusion part = {0, 0, 0, 0};
            for (size_t j = (size_t)k; j < c->n; j += (size_t)world) {
                assert_int_equal(io_confusion_add_f64(&part, &r.sd[j], &r.y[j], 1, c->thr, err), 0);
                g.sd[at] = r.sd[j];
                g.y[at] = r.y[j];
                at++;
            }
            sum.tp += part.tp;
            sum.fp += part.fp;
            sum.tn += part.tn;
            sum.fn += part.fn;
        }
        assert_int_equal(at, c->n);
        assert_int_equal(io_confusion_check(&sum, (int64_t)c->n, err), 0);
        io_metrics m;
        memset(&m, 0, sizeof m);
        io_metrics_from_confusion(&sum, &m);
        assert_int_equal(io_metrics_auc_f64(g.sd, g.y, c->n, &m, err), 0);
        assert_memory_equal(&m.cm, &whole.cm, sizeof m.cm);
        assert_true(m.precision == whole.precision && m.recall == whole.recall && m.f1 == whole.f1 &&
                    m.accuracy == whole.accuracy && m.roc_auc == whole.roc_auc && m.pr_auc == whole.pr_auc);
        rows_free(&g);
    }
    /* a lost shard and a doubled one are caught */
    io_confusion lost = whole.cm;
    lost.tn -= 3;
    assert_int_not_equal(io_confusion_check(&lost, (int64_t)c->n, err), 0);
    assert_non_null(strstr(err, "split has"));
    io_confusion dbl = whole.cm;
    dbl.tp *= 2;
    assert_int_not_equal(io_confusion_check(&dbl, (int64_t)c->n, err), 0);
    rows_free(&r);
    (void)nc;
}

/* Negative control: sort, then count positive-above-negative pairs and precision
 * per row, breaking ties by row order as a naive implementation does. On the tied
 * fixtures this must be far off scikit-learn, or the reference proves nothing. */
typedef struct {
    double s;
    uint8_t y;
    size_t i;
} lazy_row;

static int lazy_cmp(const void *a, const void *b)
{
    const lazy_row *x = a, *z = b;
    if (x->s != z->s) return x->s < z->s ? 1 : -1;
    return (x->i > z->i) - (x->i < z->i);
}

static void lazy_auc(const double *s, const uint8_t *y, size_t n, double *roc, double *ap)
{
    lazy_row *r = malloc(n * sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) r[i] = (lazy_row){s[i], y[i], i};
    qsort(r, n, sizeof *r, lazy_cmp);
    double pos_above = 0, won = 0, npos = 0, nneg = 0, tp = 0, sum_prec = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].y) {
            pos_above++;
            npos++;
            tp++;
            sum_prec += tp / (double)(i + 1);
        } else {
            won += pos_above;
            nneg++;
        }
    }
    *roc = won / (npos * nneg);
    *ap = sum_prec / npos;
    free(r);
}

static void test_negative_control_lazy_auc(void **state)
{
    (void)state;
    ref_case cases[64];
    size_t nc = load_reference(cases, 64);
    int checked = 0;
    for (size_t i = 0; i < nc; i++) {
        const ref_case *c = &cases[i];
        if (strcmp(c->name, "ties20") != 0 && strcmp(c->name, "ties3") != 0) continue;
        rows r = rows_alloc(c->n);
        make_case(c, r.sd, r.sf, r.y);
        double roc, ap;
        /* rows in random order: ties broken at random, right on average only; a
         * million times the tolerance away is still caught by it */
        lazy_auc(r.sd, r.y, c->n, &roc, &ap);
        if (fabs(roc - c->roc) < 1e6 * TOL) fail_msg("%s: the lazy ROC-AUC %.9f matches the reference", c->name, roc);
        if (fabs(ap - c->ap) < 1e6 * TOL) fail_msg("%s: the lazy PR-AUC %.9f matches the reference", c->name, ap);
        /* rows sorted positives-first inside each tie (a sort on (score, label)):
         * off by far more */
        size_t *idx = malloc(c->n * sizeof *idx);
        rows t = rows_alloc(c->n);
        assert_non_null(idx);
        size_t k = 0;
        for (int want = 1; want >= 0; want--)
            for (size_t j = 0; j < c->n; j++)
                if (r.y[j] == want) idx[k++] = j;
        for (size_t j = 0; j < c->n; j++) {
            t.sd[j] = r.sd[idx[j]];
            t.y[j] = r.y[idx[j]];
        }
        lazy_auc(t.sd, t.y, c->n, &roc, &ap);
        if (fabs(roc - c->roc) < 1e-2) fail_msg("%s: the optimistic ROC-AUC %.6f matches the reference", c->name, roc);
        if (fabs(ap - c->ap) < 1e-2) fail_msg("%s: the optimistic PR-AUC %.6f matches the reference", c->name, ap);
        /* the real one does not care about the order */
        io_metrics m;
        char err[IO_ERRLEN];
        assert_int_equal(io_metrics_auc_f64(t.sd, t.y, c->n, &m, err), 0);
        near(m.roc_auc, c->roc, TOL, "roc reordered");
        near(m.pr_auc, c->ap, TOL, "ap reordered");
        free(idx);
        rows_free(&t);
        checked++;
        rows_free(&r);
    }
    assert_int_equal(checked, 2);
}

/* ------------------------------------------------------------ JSON lines */

static void tmpdir(char *buf, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/adebert-metrics-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(buf)) fail_msg("mkdtemp: %s", strerror(errno));
}

static void rm_dir(const char *dir, const char *file)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    unlink(p);
    rmdir(dir);
}

static io_metrics_record sample_record(void)
{
    io_metrics_record r;
    memset(&r, 0, sizeof r);
    r.schema_version = IO_METRICS_SCHEMA_VERSION;
    strcpy(r.split, "val");
    r.epoch = 1;
    r.step = 100;
    r.lr = 2e-5;
    r.train_loss = 0.25;
    r.eval_loss = 0.5;
    io_confusion cm = {3, 1, 5, 2};
    io_metrics_from_confusion(&cm, &r.m);
    r.m.roc_auc = 0.875;
    r.m.roc_auc_defined = 1;
    r.m.pr_auc = 0.1;
    r.m.pr_auc_defined = 1;
    r.grad_norm = 1.5;
    r.loss_scale = 1;
    r.seconds = 12.5;
    r.tokens_per_s = 1234.5;
    return r;
}

static void test_format_golden(void **state)
{
    (void)state;
    io_metrics_record r = sample_record();
    char *line = NULL, *again = NULL, err[IO_ERRLEN];
    assert_int_equal(io_metrics_format(&r, &line, err), 0);
    const char *want = "{\"schema_version\":1,\"split\":\"val\",\"epoch\":1,\"step\":100,\"lr\":2e-05,"
                       "\"train_loss\":0.25,\"eval_loss\":0.5,\"precision\":0.75,\"recall\":0.6,"
                       "\"f1\":0.6666666666666666,\"accuracy\":0.7272727272727273,\"roc_auc\":0.875,\"pr_auc\":0.1,"
                       "\"tp\":3,\"fp\":1,\"tn\":5,\"fn\":2,\"grad_norm\":1.5,\"loss_scale\":1,\"seconds\":12.5,"
                       "\"tokens_per_s\":1234.5}";
    assert_string_equal(line, want);
    assert_int_equal(io_metrics_format(&r, &again, err), 0);
    assert_string_equal(line, again);
    free(line);
    free(again);

    /* undefined AUC and no train loss yet: null; the defined flag wins over a stale value */
    r.m.roc_auc_defined = 0;
    r.train_loss = NAN;
    r.grad_norm = INFINITY;
    assert_int_equal(io_metrics_format(&r, &line, err), 0);
    assert_non_null(strstr(line, "\"roc_auc\":null"));
    assert_non_null(strstr(line, "\"train_loss\":null"));
    assert_non_null(strstr(line, "\"grad_norm\":null"));
    free(line);

    /* rejected: unknown split, schema key reused as an extra, repeated extra */
    io_metrics_record b = sample_record();
    strcpy(b.split, "train");
    assert_int_not_equal(io_metrics_format(&b, &line, err), 0);
    assert_null(line);
    b = sample_record();
    io_metrics_extra ex[2] = {{"f1", 0, NULL, 1}, {"x", 0, NULL, 1}};
    b.n_extra = 1;
    b.extra = ex;
    assert_int_not_equal(io_metrics_format(&b, &line, err), 0);
    io_metrics_extra dup[2] = {{"x", 0, NULL, 1}, {"x", 1, "a", 0}};
    b.n_extra = 2;
    b.extra = dup;
    assert_int_not_equal(io_metrics_format(&b, &line, err), 0);
}

static int same_double(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

static void assert_record_equal(const io_metrics_record *a, const io_metrics_record *b)
{
    assert_int_equal(a->schema_version, b->schema_version);
    assert_string_equal(a->split, b->split);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->step, b->step);
    assert_memory_equal(&a->m.cm, &b->m.cm, sizeof a->m.cm);
    const double x[] = {a->lr, a->train_loss, a->eval_loss, a->m.precision, a->m.recall, a->m.f1, a->m.accuracy,
                        a->m.roc_auc_defined ? a->m.roc_auc : NAN, a->m.pr_auc_defined ? a->m.pr_auc : NAN,
                        a->grad_norm, a->loss_scale, a->seconds, a->tokens_per_s};
    const double z[] = {b->lr, b->train_loss, b->eval_loss, b->m.precision, b->m.recall, b->m.f1, b->m.accuracy,
                        b->m.roc_auc_defined ? b->m.roc_auc : NAN, b->m.pr_auc_defined ? b->m.pr_auc : NAN,
                        b->grad_norm, b->loss_scale, b->seconds, b->tokens_per_s};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        if (!same_double(x[i], z[i])) fail_msg("field %zu: %.17g != %.17g", i, x[i], z[i]);
    assert_int_equal(a->m.roc_auc_defined, b->m.roc_auc_defined);
    assert_int_equal(a->m.pr_auc_defined, b->m.pr_auc_defined);
    assert_int_equal(a->n_extra, b->n_extra);
    for (size_t i = 0; i < a->n_extra; i++) {
        assert_string_equal(a->extra[i].key, b->extra[i].key);
        assert_int_equal(a->extra[i].is_string, b->extra[i].is_string);
        if (a->extra[i].is_string) assert_string_equal(a->extra[i].str, b->extra[i].str);
        else assert_true(same_double(a->extra[i].num, b->extra[i].num));
    }
}

static void test_append_read_roundtrip(void **state)
{
    (void)state;
    char dir[512], path[1024], err[IO_ERRLEN];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, IO_METRICS_FILE);
    /* 0600 even when the umask would allow more */
    mode_t old = umask(0);

    io_metrics_record r[3];
    r[0] = sample_record();
    r[1] = sample_record();
    strcpy(r[1].split, "test");
    r[1].m.roc_auc_defined = 0;
    r[1].m.roc_auc = NAN;
    r[1].m.pr_auc = 1.0 / 3; /* needs 16-17 digits to come back exactly */
    r[1].lr = 0.1 + 0.2;
    r[1].train_loss = NAN;
    r[1].tokens_per_s = 3.0e9 + 0.125;
    r[2] = sample_record();
    r[2].epoch = 2;
    r[2].step = 9007199254740991LL; /* 2^53 - 1 */
    io_metrics_extra ex[3] = {
        {"resumed_from_step", 0, NULL, 120}, {"selected_on", 1, "val f1 \"quoted\"\n", 0}, {"missing", 0, NULL, NAN}};
    r[2].n_extra = 3;
    r[2].extra = ex;
    for (int i = 0; i < 3; i++)
        if (io_metrics_append(path, &r[i], err)) fail_msg("append %d: %s", i, err);
    umask(old);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* one whole line per record */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) {
        assert_int_equal(buf[strlen(buf) - 1], '\n');
        assert_int_equal(buf[0], '{');
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 3);

    io_metrics_log log;
    if (io_metrics_read(path, &log, err)) fail_msg("read: %s", err);
    assert_int_equal(log.n, 3);
    for (int i = 0; i < 3; i++) assert_record_equal(&r[i], &log.rec[i]);
    assert_true(isnan(log.rec[2].extra[2].num));

    /* formatting the read-back records gives the same bytes */
    for (int i = 0; i < 3; i++) {
        char *a = NULL, *b = NULL;
        assert_int_equal(io_metrics_format(&r[i], &a, err), 0);
        assert_int_equal(io_metrics_format(&log.rec[i], &b, err), 0);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    io_metrics_log_free(&log);
    io_metrics_log_free(&log); /* freeing twice is harmless */
    rm_dir(dir, IO_METRICS_FILE);
}

static void test_torn_tail(void **state)
{
    (void)state;
    char dir[512], path[1024], err[IO_ERRLEN];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, IO_METRICS_FILE);
    io_metrics_record r = sample_record();
    assert_int_equal(io_metrics_append(path, &r, err), 0);
    /* a crash mid-write leaves half a line */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("{\"schema_version\":1,\"spl", f);
    fclose(f);
    r.epoch = 7;
    assert_int_equal(io_metrics_append(path, &r, err), 0);

    io_metrics_log log;
    /* the torn line is reported, by number, and the new record is intact */
    assert_int_not_equal(io_metrics_read(path, &log, err), 0);
    assert_non_null(strstr(err, "line 2"));
    f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096], last[4096] = "";
    while (fgets(buf, sizeof buf, f)) strcpy(last, buf);
    fclose(f);
    assert_int_equal(io_metrics_parse(last, strlen(last), &log, err), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.rec[0].epoch, 7);
    io_metrics_log_free(&log);
    rm_dir(dir, IO_METRICS_FILE);
}

static void test_reader_errors(void **state)
{
    (void)state;
    io_metrics_log log;
    char err[IO_ERRLEN];
    char *good = NULL;
    io_metrics_record r = sample_record();
    assert_int_equal(io_metrics_format(&r, &good, err), 0);
    char text[8192];

    snprintf(text, sizeof text, "%s\n\n%s\n", good, good);
    assert_int_equal(io_metrics_parse(text, strlen(text), &log, err), 0);
    assert_int_equal(log.n, 2);
    io_metrics_log_free(&log);

    snprintf(text, sizeof text, "%s\nnot json\n", good);
    assert_int_not_equal(io_metrics_parse(text, strlen(text), &log, err), 0);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(log.n, 0);
    assert_null(log.rec);

    const char *missing = "{\"schema_version\":1,\"split\":\"val\",\"epoch\":1}";
    assert_int_not_equal(io_metrics_parse(missing, strlen(missing), &log, err), 0);
    assert_non_null(strstr(err, "missing"));

    char *v2 = strdup(good);
    v2[strlen("{\"schema_version\":")] = '2';
    assert_int_not_equal(io_metrics_parse(v2, strlen(v2), &log, err), 0);
    assert_non_null(strstr(err, "schema_version"));
    free(v2);

    char *frac = strdup(good);
    char *tp = strstr(frac, "\"tp\":3");
    assert_non_null(tp);
    memcpy(tp, "\"tp\":[]", 7); /* also clobbers the comma: invalid either way */
    assert_int_not_equal(io_metrics_parse(frac, strlen(frac), &log, err), 0);
    free(frac);

    snprintf(text, sizeof text, "%.*s,\"obj\":{}}", (int)strlen(good) - 1, good);
    assert_int_not_equal(io_metrics_parse(text, strlen(text), &log, err), 0);
    assert_non_null(strstr(err, "obj"));

    assert_int_not_equal(io_metrics_read("/nonexistent/metrics.jsonl", &log, err), 0);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_small),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_one_class),
        cmocka_unit_test(test_threshold_edge),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_sklearn_reference),
        cmocka_unit_test(test_sharded_equals_whole),
        cmocka_unit_test(test_negative_control_lazy_auc),
        cmocka_unit_test(test_format_golden),
        cmocka_unit_test(test_append_read_roundtrip),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_reader_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
