/* Seeded splits and leakage on the real ADE corpus (from $ADEBERT_TEST_DATA;
 * missing data fails) and on small made-up files. The numbers asserted here are
 * the study's facts: a random split of the hf view leaks about half of the test
 * positives into train verbatim; grouped and dedup leak nothing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "io/io.h"

typedef struct {
    io_corpus view[2]; /* indexed by io_view */
} corpora;

static int setup(void **state) {
    const char *d = getenv("ADEBERT_TEST_DATA");
    if (!d || !*d) {
        fprintf(stderr, "ADEBERT_TEST_DATA is not set: the split tests need the ADE corpus\n");
        return -1;
    }
    char dir[512], err[IO_ERRLEN];
    snprintf(dir, sizeof dir, "%s/ade-corpus-v2", d);
    corpora *c = calloc(1, sizeof *c);
    if (!c) return -1;
    for (int v = 0; v < 2; v++) {
        if (io_corpus_load_ade(dir, (io_view)v, &c->view[v], err)) {
            fprintf(stderr, "%s\n", err);
            io_corpus_free(&c->view[0]);
            free(c);
            return -1;
        }
    }
    *state = c;
    return 0;
}

static int teardown(void **state) {
    corpora *c = *state;
    if (c) {
        io_corpus_free(&c->view[0]);
        io_corpus_free(&c->view[1]);
        free(c);
    }
    return 0;
}

static const io_corpus *hf(void **state) { return &((corpora *)*state)->view[IO_VIEW_HF]; }
static const io_corpus *dedup(void **state) { return &((corpora *)*state)->view[IO_VIEW_DEDUP]; }

static void make(const io_corpus *c, io_split_kind kind, uint64_t seed, double tf, double vf, io_split *s) {
    char err[IO_ERRLEN] = "";
    if (io_split_make(c, kind, seed, tf, vf, s, err)) fail_msg("split %s: %s", io_split_name(kind), err);
}

static void leakage(const io_corpus *c, const io_split *s, io_leakage *l) {
    char err[IO_ERRLEN] = "";
    if (io_split_leakage(c, s, l, err)) fail_msg("leakage: %s", err);
}

/* Each list ascending; the three lists disjoint and covering every row. */
static void check_partition(const io_corpus *c, const io_split *s) {
    assert_int_equal(s->n_train + s->n_val + s->n_test, c->n);
    uint8_t *seen = calloc(c->n, 1);
    assert_non_null(seen);
    const uint32_t *lists[3] = {s->train, s->val, s->test};
    size_t counts[3] = {s->n_train, s->n_val, s->n_test};
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < counts[p]; i++) {
            uint32_t r = lists[p][i];
            assert_true(r < c->n);
            if (i > 0) assert_true(lists[p][i - 1] < r);
            assert_int_equal(seen[r], 0);
            seen[r] = 1;
        }
    }
    free(seen);
}

static size_t positives_in(const io_corpus *c, const uint32_t *rows, size_t n) {
    size_t p = 0;
    for (size_t i = 0; i < n; i++) p += c->label[rows[i]] != 0;
    return p;
}

static int same_split(const io_split *a, const io_split *b) {
    return a->n_train == b->n_train && a->n_val == b->n_val && a->n_test == b->n_test &&
           memcmp(a->train, b->train, a->n_train * sizeof *a->train) == 0 &&
           (a->n_val == 0 || memcmp(a->val, b->val, a->n_val * sizeof *a->val) == 0) &&
           memcmp(a->test, b->test, a->n_test * sizeof *a->test) == 0;
}

/* FNV-1a over the test rows: pins the generator so a platform difference shows. */
static uint64_t digest(const uint32_t *rows, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) {
            h ^= (rows[i] >> (8 * b)) & 0xFF;
            h *= 0x100000001b3ull;
        }
    return h;
}

/* ---------------------------------------------------------------- the table */

static void test_table(void **state) {
    print_message("%-6s %-10s %6s %5s %6s %5s %5s %6s %6s %6s %6s\n", "view", "split", "rows", "pos", "train",
                  "val", "test", "lk_te", "lk_teP", "lk_va", "lk_vaP");
    for (int v = 0; v < 2; v++) {
        const io_corpus *c = &((corpora *)*state)->view[v];
        for (int k = 0; k < 3; k++) {
            io_split s;
            io_leakage l;
            make(c, (io_split_kind)k, 42, IO_TEST_FRACTION, 0.1, &s);
            check_partition(c, &s);
            leakage(c, &s, &l);
            assert_int_equal(l.train_positives + l.val_positives + l.test_positives, io_corpus_positives(c));
            print_message("%-6s %-10s %6zu %5zu %6zu %5zu %5zu %6zu %6zu %6zu %6zu  (test pos %zu)\n",
                          io_view_name((io_view)v), io_split_name((io_split_kind)k), c->n, io_corpus_positives(c),
                          s.n_train, s.n_val, s.n_test, l.leaked_test_rows, l.leaked_test_positives,
                          l.leaked_val_rows, l.leaked_val_positives, l.test_positives);
            io_split_free(&s);
        }
    }
}

static void test_random_sizes_and_leak(void **state) {
    const io_corpus *c = hf(state);
    io_split s;
    io_leakage l;
    make(c, IO_SPLIT_RANDOM, 42, IO_TEST_FRACTION, 0.1, &s);
    check_partition(c, &s);
    assert_int_equal(s.n_test, 4704);          /* ceil(0.2 * 23516), as scikit-learn */
    assert_int_equal(s.n_val, 1882);           /* ceil(0.1 * 18812) */
    assert_int_equal(s.n_train, 16930);
    leakage(c, &s, &l);
    assert_in_range(l.leaked_test_rows, 600, 800);
    assert_true(l.leaked_test_positives * 100 >= l.test_positives * 40);
    assert_true(l.leaked_test_positives * 100 <= l.test_positives * 65);
    assert_true(l.leaked_val_rows > 0);
    /* The generator is pure integer arithmetic: these rows are the same everywhere. */
    assert_true(digest(s.test, s.n_test) == 0x8ca577ecf6adff29ull);
    io_split_free(&s);
    /* The study's 80/20 without validation leaks as much. */
    make(c, IO_SPLIT_RANDOM, 42, IO_TEST_FRACTION, 0.0, &s);
    assert_int_equal(s.n_test, 4704);
    assert_int_equal(s.n_val, 0);
    assert_null(s.val);
    leakage(c, &s, &l);
    assert_in_range(l.leaked_test_rows, 600, 800);
    io_split_free(&s);
}

static void assert_stratified(size_t part_c, size_t total_c, double f) {
    double want = f * (double)total_c;
    if (fabs((double)part_c - want) > 1.0)
        fail_msg("class share %zu is more than one row from %.1f", part_c, want);
}

static void test_stratified(void **state) {
    for (int v = 0; v < 2; v++) {
        const io_corpus *c = &((corpora *)*state)->view[v];
        io_split s;
        make(c, IO_SPLIT_STRATIFIED, 42, IO_TEST_FRACTION, 0.1, &s);
        check_partition(c, &s);
        size_t pos = io_corpus_positives(c), neg = c->n - pos;
        assert_int_equal(s.n_test, (size_t)ceil(IO_TEST_FRACTION * (double)c->n));
        size_t tp = positives_in(c, s.test, s.n_test);
        assert_stratified(tp, pos, IO_TEST_FRACTION);
        assert_stratified(s.n_test - tp, neg, IO_TEST_FRACTION);
        size_t rest = s.n_train + s.n_val, rest_p = pos - tp, vp = positives_in(c, s.val, s.n_val);
        assert_int_equal(s.n_val, (size_t)ceil(0.1 * (double)rest));
        assert_stratified(vp, rest_p, 0.1);
        assert_stratified(s.n_val - vp, rest - rest_p, 0.1);
        io_split_free(&s);
    }
}

static void test_grouped_no_leak(void **state) {
    const io_corpus *c = hf(state);
    io_split s;
    io_leakage l;
    make(c, IO_SPLIT_GROUPED, 42, IO_TEST_FRACTION, 0.1, &s);
    check_partition(c, &s);
    leakage(c, &s, &l);
    assert_int_equal(l.leaked_test_rows, 0);
    assert_int_equal(l.leaked_test_positives, 0);
    assert_int_equal(l.leaked_val_rows, 0);
    /* Test reaches its target and overshoots by less than one group. */
    assert_true(s.n_test >= 4704);
    assert_true(s.n_test < 4704 + 200);
    assert_true(s.n_val >= (size_t)ceil(0.1 * (double)(s.n_train + s.n_val)));
    /* No PubMed id in two parts. */
    int64_t maxp = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->pmid[i] > maxp) maxp = c->pmid[i];
    assert_true(maxp < 100000000);
    uint8_t *part = calloc((size_t)maxp + 1, 1);
    assert_non_null(part);
    const uint32_t *lists[3] = {s.train, s.val, s.test};
    size_t counts[3] = {s.n_train, s.n_val, s.n_test};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < counts[p]; i++) {
            int64_t id = c->pmid[lists[p][i]];
            if (part[id] && part[id] != p + 1) fail_msg("PMID in two parts");
            part[id] = (uint8_t)(p + 1);
        }
    free(part);
    io_split_free(&s);
}

static void test_dedup_no_leak(void **state) {
    const io_corpus *c = dedup(state);
    for (int k = 0; k < 3; k++) {
        io_split s;
        io_leakage l;
        make(c, (io_split_kind)k, 42, IO_TEST_FRACTION, 0.1, &s);
        check_partition(c, &s);
        leakage(c, &s, &l);
        assert_int_equal(l.leaked_test_rows, 0);
        assert_int_equal(l.leaked_val_rows, 0);
        io_split_free(&s);
    }
}

static void test_seeds(void **state) {
    const io_corpus *c = hf(state);
    for (int k = 0; k < 3; k++) {
        io_split a, b, d;
        make(c, (io_split_kind)k, 42, IO_TEST_FRACTION, 0.1, &a);
        make(c, (io_split_kind)k, 42, IO_TEST_FRACTION, 0.1, &b);
        make(c, (io_split_kind)k, 43, IO_TEST_FRACTION, 0.1, &d);
        assert_true(same_split(&a, &b));
        assert_false(same_split(&a, &d));
        assert_int_not_equal(digest(a.test, a.n_test), digest(d.test, d.n_test));
        io_split_free(&a);
        io_split_free(&b);
        io_split_free(&d);
    }
}

static void test_fractions(void **state) {
    const io_corpus *c = hf(state);
    io_split s;
    char err[IO_ERRLEN];
    const double bad[] = {-0.01, 1.0, 1.5, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&s, 0x5A, sizeof s);
        assert_int_not_equal(io_split_make(c, IO_SPLIT_RANDOM, 1, bad[i], 0.1, &s, err), 0);
        assert_non_null(strstr(err, "fraction"));
        assert_null(s.train);
        assert_int_equal(s.n_train, 0);
        memset(&s, 0x5A, sizeof s);
        assert_int_not_equal(io_split_make(c, IO_SPLIT_GROUPED, 1, IO_TEST_FRACTION, bad[i], &s, err), 0);
        assert_non_null(strstr(err, "fraction"));
        assert_null(s.test);
    }
    for (int k = 0; k < 3; k++) {
        make(c, (io_split_kind)k, 5, 0.0, 0.0, &s);
        assert_int_equal(s.n_train, c->n);
        assert_int_equal(s.n_test + s.n_val, 0);
        io_split_free(&s);
        make(c, (io_split_kind)k, 5, 0.0, 0.1, &s);
        check_partition(c, &s);
        assert_int_equal(s.n_test, 0);
        assert_true(s.n_val > 0);
        io_split_free(&s);
    }
    memset(&s, 0x5A, sizeof s);
    assert_int_not_equal(io_split_make(c, (io_split_kind)9, 1, IO_TEST_FRACTION, 0.1, &s, err), 0);
    assert_null(s.train);
    io_corpus empty;
    memset(&empty, 0, sizeof empty);
    assert_int_not_equal(io_split_make(&empty, IO_SPLIT_RANDOM, 1, IO_TEST_FRACTION, 0.1, &s, err), 0);
}

/* ---------------------------------------------------------------- small files */

typedef struct {
    char dir[256];
    char path[512];
} tmpfile_t;

static void write_tmp(tmpfile_t *t, const char *name, const char *data) {
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/adebert_split_XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    FILE *f = fopen(t->path, "wb");
    assert_non_null(f);
    fputs(data, f);
    assert_int_equal(fclose(f), 0);
}

static void rm_tmp(tmpfile_t *t) {
    assert_int_equal(remove(t->path), 0);
    assert_int_equal(remove(t->dir), 0);
}

/* Without PubMed ids, grouped keeps every copy of a text on one side. */
static void test_two_column_grouped(void **state) {
    (void)state;
    char buf[1 << 15];
    size_t off = 0;
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "Made-up sentence number %d.\t%d\n", i % 97, i % 3 == 0);
    tmpfile_t t;
    write_tmp(&t, "g.tsv", buf);
    io_corpus c;
    char err[IO_ERRLEN];
    if (io_corpus_load_file(t.path, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 300);
    for (uint64_t seed = 0; seed < 20; seed++) {
        io_split s;
        io_leakage l;
        make(&c, IO_SPLIT_GROUPED, seed, IO_TEST_FRACTION, 0.1, &s);
        check_partition(&c, &s);
        leakage(&c, &s, &l);
        assert_int_equal(l.leaked_test_rows, 0);
        assert_int_equal(l.leaked_val_rows, 0);
        assert_true(s.n_test >= 60 && s.n_test < 60 + 4);
        io_split_free(&s);
        make(&c, IO_SPLIT_RANDOM, seed, IO_TEST_FRACTION, 0.1, &s);
        leakage(&c, &s, &l);
        assert_true(l.leaked_test_rows > 0);
        io_split_free(&s);
    }
    io_corpus_free(&c);
    rm_tmp(&t);
}

/* Too few rows, or one group holding everything: an error, never an empty train. */
static void test_degenerate(void **state) {
    (void)state;
    io_corpus c;
    io_split s;
    char err[IO_ERRLEN];
    tmpfile_t t;
    write_tmp(&t, "one.tsv", "Only one made-up row.\t1\n");
    if (io_corpus_load_file(t.path, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    for (int k = 0; k < 3; k++) {
        assert_int_not_equal(io_split_make(&c, (io_split_kind)k, 1, IO_TEST_FRACTION, 0.1, &s, err), 0);
        assert_null(s.train);
        make(&c, (io_split_kind)k, 1, 0.0, 0.0, &s);
        assert_int_equal(s.n_train, 1);
        io_split_free(&s);
    }
    io_corpus_free(&c);
    rm_tmp(&t);

    write_tmp(&t, "same.tsv", "Same text.\t1\nSame text.\t0\nSame text.\t1\nSame text.\t0\nSame text.\t1\n");
    if (io_corpus_load_file(t.path, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_not_equal(io_split_make(&c, IO_SPLIT_GROUPED, 1, IO_TEST_FRACTION, 0.0, &s, err), 0);
    assert_non_null(strstr(err, "group"));
    make(&c, IO_SPLIT_STRATIFIED, 1, IO_TEST_FRACTION, 0.0, &s);
    assert_int_equal(s.n_test, 1);
    io_split_free(&s);
    io_corpus_free(&c);
    rm_tmp(&t);

    /* Stratified with one class only. */
    write_tmp(&t, "neg.tsv", "a.\t0\nb.\t0\nc.\t0\nd.\t0\ne.\t0\nf.\t0\ng.\t0\n");
    if (io_corpus_load_file(t.path, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    make(&c, IO_SPLIT_STRATIFIED, 3, IO_TEST_FRACTION, 0.2, &s);
    check_partition(&c, &s);
    assert_int_equal(s.n_test, 2);
    assert_int_equal(s.n_val, 1);
    io_split_free(&s);
    io_corpus_free(&c);
    rm_tmp(&t);
}

static void test_leakage_bad_input(void **state) {
    const io_corpus *c = hf(state);
    uint32_t rows[2] = {0, (uint32_t)c->n};
    io_split s = {1, 0, 1, rows, NULL, rows + 1};
    io_leakage l;
    char err[IO_ERRLEN];
    assert_int_not_equal(io_split_leakage(c, &s, &l, err), 0);
    assert_non_null(strstr(err, "range"));
    io_split z;
    memset(&z, 0, sizeof z);
    io_split_free(&z);
    io_split_free(NULL);
    assert_int_equal(io_split_leakage(c, &z, &l, err), 0);
    assert_int_equal(l.leaked_test_rows, 0);
}

static void test_parse_names(void **state) {
    (void)state;
    io_split_kind k;
    const char *names[] = {"random", "stratified", "grouped"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(io_split_parse(names[i], &k), 0);
        assert_int_equal(k, i);
        assert_string_equal(io_split_name(k), names[i]);
    }
    assert_int_not_equal(io_split_parse("Random", &k), 0);
    assert_int_not_equal(io_split_parse("", &k), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_random_sizes_and_leak),
        cmocka_unit_test(test_stratified),
        cmocka_unit_test(test_grouped_no_leak),
        cmocka_unit_test(test_dedup_no_leak),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_two_column_grouped),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_leakage_bad_input),
        cmocka_unit_test(test_parse_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
