/* Seeded train/val/test splits and exact-text leakage.
 *
 * All randomness comes from a splitmix64-style counter generator: draw k of stream
 * s under seed x is mix64(key(x, s) + k * golden). It is pure integer arithmetic,
 * so a split is the same on every machine and compiler; rand() is never used.
 *
 * One routine, carve(), moves ceil(fraction * m) rows of a row set into a "taken"
 * part (test first, then validation out of what is left for train), following the
 * chosen strategy. Taken rows are marked and the row set swept in order, so every
 * output list comes out ascending without a sort. */
#include "io/io_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ generator */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t key, ctr;
} rng;

static rng rng_make(uint64_t seed, uint64_t stream) {
    rng r = {mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (stream * 0xD1B54A32D192ED03ull)), 0};
    return r;
}

static uint64_t rng_next(rng *r) {
    r->ctr++;
    return mix64(r->key + r->ctr * 0x9E3779B97F4A7C15ull);
}

/* Uniform in [0, k), k > 0, by rejection: no modulo bias, no 128-bit arithmetic. */
static uint64_t rng_below(rng *r, uint64_t k) {
    uint64_t threshold = (0 - k) % k; /* 2^64 mod k */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold) return x % k;
    }
}

static void shuffle(uint32_t *a, size_t n, rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* scikit-learn's rule for the size of the held-out part: ceil(fraction * n). */
static size_t take_count(double frac, size_t m) {
    return (size_t)ceil(frac * (double)m);
}

/* ------------------------------------------------------------ union-find */

static uint32_t uf_find(uint32_t *parent, uint32_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* The smaller index becomes the root, so components do not depend on union order. */
static void uf_union(uint32_t *parent, uint32_t a, uint32_t b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b) parent[b] = a;
    else if (b < a) parent[a] = b;
}

typedef struct {
    int64_t pmid;
    uint32_t row;
} pmid_row;

static int cmp_pmid_row(const void *pa, const void *pb) {
    const pmid_row *a = pa, *b = pb;
    if (a->pmid != b->pmid) return a->pmid < b->pmid ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

/* ------------------------------------------------------------ strategies */

typedef struct {
    const io_corpus *c;
    const uint32_t *first; /* text classes, grouped only */
    uint8_t *mark;         /* n bytes of scratch, all 0 between calls */
} ctx;

/* Shuffle `rows` and mark the first `k`. */
static int mark_random(ctx *x, const uint32_t *rows, size_t m, size_t k, rng *r) {
    uint32_t *tmp = malloc((m ? m : 1) * sizeof *tmp);
    if (!tmp) return -1;
    memcpy(tmp, rows, m * sizeof *tmp);
    shuffle(tmp, m, r);
    for (size_t i = 0; i < k; i++) x->mark[tmp[i]] = 1;
    free(tmp);
    return 0;
}

/* The study used scikit-learn's train_test_split(test_size=0.2, random_state=1,
 * stratify=label). We reproduce its proportions, not its rows (those depend on
 * NumPy's Mersenne Twister): the held-out size is ceil(f * m) as in scikit-learn,
 * each class gets floor(f * m_c), and the remaining rows go to the classes with
 * the largest fractional parts (ties: larger class, then lower label), so each
 * class is within one row of f * m_c. */
static int mark_stratified(ctx *x, const uint32_t *rows, size_t m, size_t k, rng *r) {
    size_t count[2] = {0, 0};
    for (size_t i = 0; i < m; i++) count[x->c->label[rows[i]] ? 1 : 0]++;
    size_t want[2];
    double rest[2];
    size_t given = 0;
    for (int c = 0; c < 2; c++) {
        double exact = (double)k * (double)count[c] / (double)(m ? m : 1);
        want[c] = (size_t)floor(exact);
        if (want[c] > count[c]) want[c] = count[c];
        rest[c] = exact - (double)want[c];
        given += want[c];
    }
    while (given < k) {
        int best = -1;
        for (int c = 0; c < 2; c++) {
            if (want[c] >= count[c]) continue;
            if (best < 0 || rest[c] > rest[best] || (rest[c] == rest[best] && count[c] > count[best])) best = c;
        }
        if (best < 0) break;
        want[best]++;
        rest[best] = -1.0;
        given++;
    }
    uint32_t *cls = malloc((m ? m : 1) * sizeof *cls);
    if (!cls) return -1;
    for (int c = 0; c < 2; c++) {
        size_t nc = 0;
        for (size_t i = 0; i < m; i++)
            if ((x->c->label[rows[i]] ? 1 : 0) == c) cls[nc++] = rows[i];
        shuffle(cls, nc, r);
        for (size_t i = 0; i < want[c]; i++) x->mark[cls[i]] = 1;
    }
    free(cls);
    return 0;
}

/* Components of the graph over `rows` whose edges join rows sharing a PubMed id
 * (when known) or an exact text. Components are shuffled and taken whole until
 * at least k rows are marked, so no abstract and no text straddles the cut. */
static int mark_grouped(ctx *x, const uint32_t *rows, size_t m, size_t k, rng *r) {
    const io_corpus *c = x->c;
    size_t n = c->n;
    int rc = -1;
    uint32_t *parent = malloc(n * sizeof *parent);
    uint32_t *text_rep = malloc(n * sizeof *text_rep);
    pmid_row *pr = malloc((m ? m : 1) * sizeof *pr);
    uint32_t *comp_id = malloc(n * sizeof *comp_id);
    uint32_t *comp_start = malloc((m + 1) * sizeof *comp_start);
    uint32_t *members = malloc((m ? m : 1) * sizeof *members);
    uint32_t *order = malloc((m ? m : 1) * sizeof *order);
    uint32_t *fill = malloc((m + 1) * sizeof *fill);
    if (!parent || !text_rep || !pr || !comp_id || !comp_start || !members || !order || !fill) goto out;

    for (size_t i = 0; i < m; i++) parent[rows[i]] = rows[i];
    memset(text_rep, 0xFF, n * sizeof *text_rep);
    for (size_t i = 0; i < m; i++) {
        uint32_t f = x->first[rows[i]];
        if (text_rep[f] == UINT32_MAX) text_rep[f] = rows[i];
        else uf_union(parent, rows[i], text_rep[f]);
    }
    size_t np = 0;
    for (size_t i = 0; i < m; i++)
        if (c->pmid[rows[i]] >= 0) pr[np++] = (pmid_row){c->pmid[rows[i]], rows[i]};
    qsort(pr, np, sizeof *pr, cmp_pmid_row);
    for (size_t i = 1; i < np; i++)
        if (pr[i].pmid == pr[i - 1].pmid) uf_union(parent, pr[i].row, pr[i - 1].row);

    /* Number components by their smallest row (rows ascend), then bucket members. */
    size_t ncomp = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t root = uf_find(parent, rows[i]);
        if (root == rows[i]) comp_id[root] = (uint32_t)ncomp++;
        comp_id[rows[i]] = comp_id[root];
    }
    memset(comp_start, 0, (ncomp + 1) * sizeof *comp_start);
    for (size_t i = 0; i < m; i++) comp_start[comp_id[rows[i]] + 1]++;
    for (size_t g = 0; g < ncomp; g++) comp_start[g + 1] += comp_start[g];
    memcpy(fill, comp_start, (ncomp + 1) * sizeof *fill);
    for (size_t i = 0; i < m; i++) members[fill[comp_id[rows[i]]]++] = rows[i];

    for (size_t g = 0; g < ncomp; g++) order[g] = (uint32_t)g;
    shuffle(order, ncomp, r);
    size_t taken = 0;
    for (size_t t = 0; t < ncomp && taken < k; t++) {
        uint32_t g = order[t];
        for (uint32_t j = comp_start[g]; j < comp_start[g + 1]; j++) x->mark[members[j]] = 1;
        taken += comp_start[g + 1] - comp_start[g];
    }
    rc = 0;
out:
    free(parent);
    free(text_rep);
    free(pr);
    free(comp_id);
    free(comp_start);
    free(members);
    free(order);
    free(fill);
    return rc;
}

/* Splits rows[0..m) into keep (left for train) and take (test or validation). */
static int carve(ctx *x, io_split_kind kind, rng *r, const uint32_t *rows, size_t m, double frac,
                 const char *part, uint32_t *keep, size_t *nk, uint32_t *take, size_t *nt,
                 char err[IO_ERRLEN]) {
    size_t k = take_count(frac, m);
    int rc = 0;
    if (k > 0) {
        if (kind == IO_SPLIT_RANDOM) rc = mark_random(x, rows, m, k, r);
        else if (kind == IO_SPLIT_STRATIFIED) rc = mark_stratified(x, rows, m, k, r);
        else rc = mark_grouped(x, rows, m, k, r);
    }
    if (rc) return io_fail(err, "split: out of memory");
    *nk = *nt = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t row = rows[i];
        if (x->mark[row]) take[(*nt)++] = row;
        else keep[(*nk)++] = row;
        x->mark[row] = 0;
    }
    if (frac > 0 && *nt == 0)
        return io_fail(err, "split: %s part is empty (%zu rows to split)", part, m);
    if (*nk == 0)
        return io_fail(err, "split: carving the %s part leaves no training rows (%zu rows%s)", part, m,
                    kind == IO_SPLIT_GROUPED ? "; one PMID/text group may be too large" : "");
    return 0;
}

/* ------------------------------------------------------------ public */

void io_split_free(io_split *s) {
    if (!s) return;
    free(s->train);
    free(s->val);
    free(s->test);
    memset(s, 0, sizeof *s);
}

/* Shrinks a scratch list to its final size; an empty part is NULL. */
static uint32_t *fit(uint32_t *p, size_t count) {
    if (count == 0) {
        free(p);
        return NULL;
    }
    uint32_t *q = realloc(p, count * sizeof *q);
    return q ? q : p;
}

int io_split_make(const io_corpus *c, io_split_kind kind, uint64_t seed, double test_fraction,
                  double val_fraction, io_split *out, char err[IO_ERRLEN]) {
    if (!out) return io_fail(err, "io_split_make: null output");
    memset(out, 0, sizeof *out);
    if (!c || c->n == 0) return io_fail(err, "io_split_make: empty corpus");
    if (c->n >= UINT32_MAX) return io_fail(err, "io_split_make: too many rows");
    if (kind != IO_SPLIT_RANDOM && kind != IO_SPLIT_STRATIFIED && kind != IO_SPLIT_GROUPED)
        return io_fail(err, "io_split_make: unknown split kind %d", (int)kind);
    if (!(test_fraction >= 0.0 && test_fraction < 1.0))
        return io_fail(err, "io_split_make: test fraction must be in [0, 1)");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return io_fail(err, "io_split_make: validation fraction must be in [0, 1)");

    size_t n = c->n;
    int rc = -1;
    ctx x = {c, NULL, calloc(n, 1)};
    uint32_t *first = NULL;
    uint32_t *all = malloc(n * sizeof *all);
    uint32_t *rest = malloc(n * sizeof *rest);
    out->train = malloc(n * sizeof *out->train);
    out->val = malloc(n * sizeof *out->val);
    out->test = malloc(n * sizeof *out->test);
    if (!x.mark || !all || !rest || !out->train || !out->val || !out->test) {
        io_fail(err, "io_split_make: out of memory");
        goto out;
    }
    if (kind == IO_SPLIT_GROUPED) {
        first = malloc(n * sizeof *first);
        if (!first) {
            io_fail(err, "io_split_make: out of memory");
            goto out;
        }
        if (io_corpus_text_classes(c, first, err)) goto out;
        x.first = first;
    }
    for (size_t i = 0; i < n; i++) all[i] = (uint32_t)i;

    size_t n_rest = 0;
    rng r_test = rng_make(seed, 1), r_val = rng_make(seed, 2);
    if (carve(&x, kind, &r_test, all, n, test_fraction, "test", rest, &n_rest, out->test, &out->n_test, err))
        goto out;
    if (carve(&x, kind, &r_val, rest, n_rest, val_fraction, "validation", out->train, &out->n_train, out->val,
              &out->n_val, err))
        goto out;
    out->train = fit(out->train, out->n_train);
    out->val = fit(out->val, out->n_val);
    out->test = fit(out->test, out->n_test);
    rc = 0;
out:
    free(x.mark);
    free(first);
    free(all);
    free(rest);
    if (rc) io_split_free(out);
    return rc;
}

int io_split_parse(const char *s, io_split_kind *out) {
    if (!s || !out) return -1;
    if (strcmp(s, "random") == 0) *out = IO_SPLIT_RANDOM;
    else if (strcmp(s, "stratified") == 0) *out = IO_SPLIT_STRATIFIED;
    else if (strcmp(s, "grouped") == 0) *out = IO_SPLIT_GROUPED;
    else return -1;
    return 0;
}

const char *io_split_name(io_split_kind k) {
    switch (k) {
    case IO_SPLIT_RANDOM: return "random";
    case IO_SPLIT_STRATIFIED: return "stratified";
    case IO_SPLIT_GROUPED: return "grouped";
    }
    return "unknown";
}

int io_split_leakage(const io_corpus *c, const io_split *s, io_leakage *out, char err[IO_ERRLEN]) {
    if (!out) return io_fail(err, "io_split_leakage: null output");
    memset(out, 0, sizeof *out);
    if (!c || !s) return io_fail(err, "io_split_leakage: null argument");
    size_t n = c->n;
    const struct {
        const uint32_t *rows;
        size_t count;
    } parts[3] = {{s->train, s->n_train}, {s->val, s->n_val}, {s->test, s->n_test}};
    for (int p = 0; p < 3; p++) {
        if (parts[p].count && !parts[p].rows) return io_fail(err, "io_split_leakage: missing row list");
        for (size_t i = 0; i < parts[p].count; i++)
            if (parts[p].rows[i] >= n) return io_fail(err, "io_split_leakage: row index out of range");
    }
    if (n == 0) return 0;
    uint32_t *first = malloc(n * sizeof *first);
    uint8_t *in_train = calloc(n, 1);
    if (!first || !in_train) {
        free(first);
        free(in_train);
        return io_fail(err, "io_split_leakage: out of memory");
    }
    if (io_corpus_text_classes(c, first, err)) {
        free(first);
        free(in_train);
        return -1;
    }
    for (size_t i = 0; i < s->n_train; i++) {
        uint32_t row = s->train[i];
        in_train[first[row]] = 1;
        out->train_positives += c->label[row] != 0;
    }
    for (size_t i = 0; i < s->n_val; i++) {
        uint32_t row = s->val[i];
        int pos = c->label[row] != 0, leak = in_train[first[row]];
        out->val_positives += pos;
        out->leaked_val_rows += leak;
        out->leaked_val_positives += leak && pos;
    }
    for (size_t i = 0; i < s->n_test; i++) {
        uint32_t row = s->test[i];
        int pos = c->label[row] != 0, leak = in_train[first[row]];
        out->test_positives += pos;
        out->leaked_test_rows += leak;
        out->leaked_test_positives += leak && pos;
    }
    free(first);
    free(in_train);
    return 0;
}

/* ------------------------------------------------------------ --limit */

static int cmp_u32(const void *pa, const void *pb) {
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return (a > b) - (a < b);
}

/* Keep a seeded random k of the n rows (a plain prefix would be all positives:
 * the hf view lists DRUG-AE.rel first), still ascending. */
static size_t keep_random(uint32_t *rows, size_t n, size_t k, rng *r) {
    if (k >= n) return n;
    shuffle(rows, n, r);
    qsort(rows, k, sizeof *rows, cmp_u32);
    return k;
}

void io_split_limit(io_split *s, size_t max_train, size_t max_eval, uint64_t seed) {
    rng r = rng_make(seed, 0x4C494D4954ull); /* its own stream: the split itself is unchanged */
    s->n_train = keep_random(s->train, s->n_train, max_train, &r);
    s->n_val = keep_random(s->val, s->n_val, max_eval, &r);
    s->n_test = keep_random(s->test, s->n_test, max_eval, &r);
}
