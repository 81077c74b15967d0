/* dist/sampler: determinism (a pinned order guards against silent changes that
 * would break resume across builds), rank slices that are disjoint and cover every
 * global batch for N = 1..4 and B in {3, 5, 32}, every sample once per epoch, the
 * length spread of grouped batches against a plain shuffle on ADE-like lengths,
 * and negative controls: a slicer that drops the remainder and an ungrouped
 * order must each fail the checks that the real ones pass. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist/sampler.h"

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static double unit(uint64_t seed, uint64_t i) { return ((splitmix64(seed + i * 0x9E3779B97F4A7C15ull) >> 11) + 0.5) * 0x1p-53; }

/* WordPiece lengths shaped like the ADE corpus: median ~32, p99 ~92 (lognormal,
 * sigma = ln(92/32) / 2.326), clamped to [5, 128] like max_seq_len. */
static uint32_t *ade_like_lengths(size_t n, uint64_t seed)
{
    uint32_t *len = malloc(n * sizeof *len);
    assert_non_null(len);
    const double mu = log(32.0), sigma = log(92.0 / 32.0) / 2.326;
    for (size_t i = 0; i < n; i++) {
        double u1 = unit(seed, 2 * i), u2 = unit(seed, 2 * i + 1);
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        double l = round(exp(mu + sigma * z));
        len[i] = (uint32_t)(l < 5 ? 5 : l > 128 ? 128 : l);
    }
    return len;
}

static dist_epoch epoch_of(const dist_sampler_config *c, const uint32_t *len, size_t n, uint64_t epoch)
{
    dist_epoch e;
    char err[DIST_ERRLEN];
    if (dist_sampler_epoch(c, len, n, epoch, &e, err)) fail_msg("sampler: %s", err);
    return e;
}

/* every id in 0..n-1 exactly once */
static int is_permutation(const uint32_t *order, size_t n)
{
    unsigned char *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        if (order[i] >= n || seen[order[i]]) ok = 0;
        else seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

/* ------------------------------------------------------------ determinism */

static void test_determinism(void **state)
{
    (void)state;
    const size_t n = 1000;
    uint32_t *len = ade_like_lengths(n, 7);
    for (int grouped = 0; grouped <= 1; grouped++) {
        dist_sampler_config c = dist_sampler_defaults(32, 42);
        c.group_by_length = grouped;
        dist_epoch a = epoch_of(&c, len, n, 3), b = epoch_of(&c, len, n, 3), d = epoch_of(&c, len, n, 4);
        c.seed = 43;
        dist_epoch s = epoch_of(&c, len, n, 3);
        assert_memory_equal(a.order, b.order, n * sizeof *a.order);
        assert_true(memcmp(a.order, d.order, n * sizeof *a.order) != 0);
        assert_true(memcmp(a.order, s.order, n * sizeof *a.order) != 0);
        assert_true(is_permutation(a.order, n) && is_permutation(d.order, n) && is_permutation(s.order, n));
        /* different epochs put different samples together, not just reorder batches */
        size_t same_first = 0;
        for (size_t i = 0; i < 32; i++)
            for (size_t j = 0; j < 32; j++) same_first += a.order[i] == d.order[j];
        assert_true(same_first < 16);
        dist_epoch_free(&a);
        dist_epoch_free(&b);
        dist_epoch_free(&d);
        dist_epoch_free(&s);
    }
    free(len);
}

/* Pinned orders: the generator and the grouping are part of the resume contract
 * (a checkpoint stores only the position), so a change must be deliberate. */
static void test_pinned_order(void **state)
{
    (void)state;
    const uint32_t len[12] = {10, 40, 22, 7, 40, 31, 18, 5, 64, 12, 33, 9};
    dist_sampler_config c = dist_sampler_defaults(3, 42);
    c.group_by_length = 0;
    dist_epoch e = epoch_of(&c, len, 12, 0);
    const uint32_t plain[12] = {1, 11, 3, 9, 5, 4, 7, 2, 6, 0, 10, 8};
    assert_memory_equal(e.order, plain, sizeof plain);
    dist_epoch_free(&e);
    c = dist_sampler_defaults(3, 42);
    c.megabatch_mult = 2; /* megabatches of 6 */
    e = epoch_of(&c, len, 12, 0);
    /* by hand from `plain`: megabatch [1 11 3 9 5 4] sorted by length -> 1 4 5 9 11 3,
     * [7 2 6 0 10 8] -> 8 10 2 6 0 7; it holds the longest (8: 64 tokens), so the
     * two heads of 3 swap */
    const uint32_t grouped[12] = {8, 10, 2, 9, 11, 3, 1, 4, 5, 6, 0, 7};
    assert_memory_equal(e.order, grouped, sizeof grouped);
    dist_epoch_free(&e);
}

/* --------------------------------------------------------------- coverage */

typedef int (*slicer)(size_t total, size_t rank, size_t world, size_t *begin, size_t *count);

/* Problems found when rank slices from `fn` are laid over every global batch:
 * gaps, overlaps, sizes differing by more than one, extras not on the first
 * ranks, or a sample not seen exactly once in the epoch. */
static size_t coverage_violations(const dist_epoch *e, size_t world, slicer fn)
{
    size_t bad = 0;
    unsigned char *seen = calloc(e->n ? e->n : 1, 1);
    assert_non_null(seen);
    for (size_t b = 0; b < e->n_batches; b++) {
        size_t b0, bn;
        assert_int_equal(dist_sampler_batch(e, b, &b0, &bn), 0);
        size_t next = 0, lo = SIZE_MAX, hi = 0;
        for (size_t r = 0; r < world; r++) {
            size_t off, cnt;
            if (fn(bn, r, world, &off, &cnt)) return SIZE_MAX;
            if (off != next) bad++; /* gap or overlap with the previous rank */
            next = off + cnt;
            if (cnt < lo) lo = cnt;
            if (cnt > hi) hi = cnt;
            if (r > 0 && cnt > 0 && r >= bn % world && cnt > bn / world) bad++;
            for (size_t i = off; i < off + cnt && b0 + i < e->n; i++) {
                uint32_t id = e->order[b0 + i];
                if (seen[id]) bad++;
                seen[id] = 1;
            }
        }
        if (next != bn) bad++;
        if (hi - lo > 1) bad++;
    }
    for (size_t i = 0; i < e->n; i++) bad += !seen[i];
    free(seen);
    return bad;
}

/* what the real rank slice says must agree with dist_sampler_share on the batch */
static void check_rank_slices(const dist_epoch *e, size_t world)
{
    for (size_t b = 0; b < e->n_batches; b++) {
        size_t b0, bn;
        assert_int_equal(dist_sampler_batch(e, b, &b0, &bn), 0);
        for (size_t r = 0; r < world; r++) {
            size_t begin, count, off, cnt;
            assert_int_equal(dist_sampler_rank_slice(e, b, r, world, &begin, &count), 0);
            assert_int_equal(dist_sampler_share(bn, r, world, &off, &cnt), 0);
            assert_int_equal(begin, b0 + off);
            assert_int_equal(count, cnt);
        }
    }
}

static void test_rank_slices_cover(void **state)
{
    (void)state;
    const size_t sizes[] = {103, 64, 2, 1};
    const size_t batches[] = {3, 5, 32};
    uint32_t *len = ade_like_lengths(103, 11);
    int zero_share_seen = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++)
            for (size_t world = 1; world <= 4; world++) {
                size_t n = sizes[si], B = batches[bi];
                dist_sampler_config c = dist_sampler_defaults(B, 5);
                dist_epoch e = epoch_of(&c, len, n, 1);
                assert_int_equal(e.n_batches, (n + B - 1) / B);
                assert_true(is_permutation(e.order, n));
                size_t v = coverage_violations(&e, world, dist_sampler_share);
                if (v) fail_msg("n %zu B %zu N %zu: %zu violations", n, B, world, v);
                check_rank_slices(&e, world);
                /* a rank with nothing to do is representable */
                for (size_t b = 0; b < e.n_batches; b++)
                    for (size_t r = 0; r < world; r++) {
                        size_t begin, count;
                        assert_int_equal(dist_sampler_rank_slice(&e, b, r, world, &begin, &count), 0);
                        if (count == 0) zero_share_seen = 1;
                    }
                dist_epoch_free(&e);
            }
    assert_true(zero_share_seen);
    free(len);
}

static void test_share_rule(void **state)
{
    (void)state;
    /* B = 5 on 4 ranks: 2, 1, 1, 1; B = 3 on 4 ranks: 1, 1, 1, 0 */
    size_t begin, count;
    const size_t want5[4][2] = {{0, 2}, {2, 1}, {3, 1}, {4, 1}};
    const size_t want3[4][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 0}};
    for (size_t r = 0; r < 4; r++) {
        assert_int_equal(dist_sampler_share(5, r, 4, &begin, &count), 0);
        assert_int_equal(begin, want5[r][0]);
        assert_int_equal(count, want5[r][1]);
        assert_int_equal(dist_sampler_share(3, r, 4, &begin, &count), 0);
        assert_int_equal(begin, want3[r][0]);
        assert_int_equal(count, want3[r][1]);
    }
    assert_int_not_equal(dist_sampler_share(5, 4, 4, &begin, &count), 0);
    assert_int_not_equal(dist_sampler_share(5, 0, 0, &begin, &count), 0);
    assert_int_equal(begin + count, 0);
}

/* Negative control: each rank takes B/N and the remainder is lost. */
static int naive_share(size_t total, size_t rank, size_t world, size_t *begin, size_t *count)
{
    size_t q = total / world;
    *begin = rank * q;
    *count = q;
    return 0;
}

/* and one that gives every rank ceil(B/N): overlaps past the end */
static int greedy_share(size_t total, size_t rank, size_t world, size_t *begin, size_t *count)
{
    size_t q = (total + world - 1) / world;
    *begin = rank * q;
    *count = *begin >= total ? 0 : (total - *begin < q ? total - *begin : q);
    return 0;
}

static void test_negative_control_slicer(void **state)
{
    (void)state;
    uint32_t *len = ade_like_lengths(103, 11);
    dist_sampler_config c = dist_sampler_defaults(5, 5);
    dist_epoch e = epoch_of(&c, len, 103, 0);
    assert_int_equal(coverage_violations(&e, 4, dist_sampler_share), 0);
    assert_true(coverage_violations(&e, 4, naive_share) > 0);
    /* 5 on 4 ranks as 2, 2, 1, 0: covers, but sizes differ by 2 */
    assert_true(coverage_violations(&e, 4, greedy_share) > 0);
    dist_epoch_free(&e);
    free(len);
}

/* ---------------------------------------------------------- length spread */

typedef struct {
    double mean_spread; /* mean over batches of max - min length */
    double pad_ratio;   /* padded tokens (B x max) over real tokens */
} spread;

static spread measure(const dist_epoch *e, const uint32_t *len)
{
    double sum_spread = 0, padded = 0, real = 0;
    for (size_t b = 0; b < e->n_batches; b++) {
        size_t b0, bn;
        assert_int_equal(dist_sampler_batch(e, b, &b0, &bn), 0);
        uint32_t lo = UINT32_MAX, hi = 0;
        for (size_t i = b0; i < b0 + bn; i++) {
            uint32_t l = len[e->order[i]];
            if (l < lo) lo = l;
            if (l > hi) hi = l;
            real += l;
        }
        sum_spread += hi - lo;
        padded += (double)hi * (double)bn;
    }
    spread s = {sum_spread / (double)e->n_batches, padded / real};
    return s;
}

static void test_length_spread(void **state)
{
    (void)state;
    const size_t n = 18812; /* about the ADE hf view's train part */
    uint32_t *len = ade_like_lengths(n, 3);
    dist_sampler_config g = dist_sampler_defaults(32, 42), p = g;
    p.group_by_length = 0;
    dist_epoch eg = epoch_of(&g, len, n, 0), ep = epoch_of(&p, len, n, 0);
    spread sg = measure(&eg, len), sp = measure(&ep, len);
    print_message("length spread per batch: grouped %.2f, shuffled %.2f tokens; padding ratio %.3f vs %.3f\n",
                  sg.mean_spread, sp.mean_spread, sg.pad_ratio, sp.pad_ratio);
    assert_true(sp.mean_spread > 20);              /* the data do have a spread */
    assert_true(sg.mean_spread < 0.1 * sp.mean_spread);
    assert_true(sg.pad_ratio < 1.1 && sp.pad_ratio > 1.5);

    /* longest first: batch 0 holds the longest sample */
    uint32_t maxlen = 0;
    for (size_t i = 0; i < n; i++)
        if (len[i] > maxlen) maxlen = len[i];
    uint32_t first_max = 0;
    for (size_t i = 0; i < 32; i++)
        if (len[eg.order[i]] > first_max) first_max = len[eg.order[i]];
    assert_int_equal(first_max, maxlen);

    /* every megabatch (50 x 32) is sorted longest first, apart from the swapped
     * head of the first one and of the one that held the longest sample */
    size_t mb = 50 * 32, unsorted = 0;
    for (size_t s0 = 0; s0 < n; s0 += mb) {
        size_t end = s0 + mb < n ? s0 + mb : n;
        for (size_t i = s0 + 32 + 1; i < end; i++) unsorted += len[eg.order[i - 1]] < len[eg.order[i]];
    }
    assert_int_equal(unsorted, 0);

    /* negative control: the spread assertion fails for the plain shuffle */
    assert_false(sp.mean_spread < 0.1 * sp.mean_spread);
    dist_sampler_config g2 = g;
    g2.megabatch_mult = 1; /* grouping inside one batch does nothing */
    dist_epoch e1 = epoch_of(&g2, len, n, 0);
    spread s1 = measure(&e1, len);
    assert_false(s1.mean_spread < 0.1 * sp.mean_spread);

    dist_epoch_free(&eg);
    dist_epoch_free(&ep);
    dist_epoch_free(&e1);
    free(len);
}

/* ----------------------------------------------------------- edges, resume */

static void test_edges(void **state)
{
    (void)state;
    char err[DIST_ERRLEN];
    dist_epoch e;
    dist_sampler_config c = dist_sampler_defaults(32, 1);
    assert_int_equal(dist_sampler_epoch(&c, NULL, 0, 0, &e, err), 0);
    assert_int_equal(e.n_batches, 0);
    size_t b, k;
    assert_int_not_equal(dist_sampler_batch(&e, 0, &b, &k), 0);
    dist_epoch_free(&e);
    dist_epoch_free(&e);

    const uint32_t len[4] = {3, 4, 5, 6};
    c.batch_size = 0;
    assert_int_not_equal(dist_sampler_epoch(&c, len, 4, 0, &e, err), 0);
    assert_null(e.order);
    c.batch_size = 2;
    assert_int_not_equal(dist_sampler_epoch(&c, NULL, 4, 0, &e, err), 0);
    c.group_by_length = 0;
    assert_int_equal(dist_sampler_epoch(&c, NULL, 4, 0, &e, err), 0);
    assert_int_equal(e.n_batches, 2);
    assert_int_not_equal(dist_sampler_rank_slice(&e, 2, 0, 1, &b, &k), 0);
    assert_int_not_equal(dist_sampler_rank_slice(&e, 0, 1, 1, &b, &k), 0);
    dist_epoch_free(&e);

    assert_int_equal(dist_sampler_steps(0, 32), 0);
    assert_int_equal(dist_sampler_steps(32, 32), 1);
    assert_int_equal(dist_sampler_steps(33, 32), 2);
    assert_int_equal(dist_sampler_steps(5, 0), 0);
}

static void test_resume_position(void **state)
{
    (void)state;
    const size_t n = 103, B = 5, spe = dist_sampler_steps(n, B); /* 21 */
    dist_data_position p = dist_sampler_position(0, spe);
    assert_true(p.epoch == 0 && p.batch == 0);
    p = dist_sampler_position(20, spe);
    assert_true(p.epoch == 0 && p.batch == 20);
    p = dist_sampler_position(21, spe);
    assert_true(p.epoch == 1 && p.batch == 0);
    p = dist_sampler_position(3 * 21 + 7, spe);
    assert_true(p.epoch == 3 && p.batch == 7);

    /* a resumed run recomputes the epoch from (seed, epoch) and gets the batches
     * the uninterrupted run would have seen */
    uint32_t *len = ade_like_lengths(n, 9);
    dist_sampler_config c = dist_sampler_defaults(B, 77);
    dist_epoch run = epoch_of(&c, len, n, 3);
    dist_epoch resumed = epoch_of(&c, len, n, p.epoch);
    size_t b0, bn, r0, rn;
    for (size_t b = p.batch; b < spe; b++) {
        assert_int_equal(dist_sampler_batch(&run, b, &b0, &bn), 0);
        assert_int_equal(dist_sampler_batch(&resumed, b, &r0, &rn), 0);
        assert_int_equal(bn, rn);
        assert_memory_equal(&run.order[b0], &resumed.order[r0], bn * sizeof(uint32_t));
    }
    dist_epoch_free(&run);
    dist_epoch_free(&resumed);
    free(len);
}

/* The trainer's plan: a subset of corpus rows, lengths from CSR offsets. */
static void test_plan_over_rows(void **state)
{
    (void)state;
    const size_t n_corpus = 301, n_rows = 100, B = 7;
    uint32_t *corpus_len = ade_like_lengths(n_corpus, 21);
    uint64_t *offsets = malloc((n_corpus + 1) * sizeof *offsets);
    uint32_t rows[100], len[100];
    assert_non_null(offsets);
    offsets[0] = 0;
    for (size_t i = 0; i < n_corpus; i++) offsets[i + 1] = offsets[i] + corpus_len[i];
    for (size_t i = 0; i < n_rows; i++) {
        rows[i] = (uint32_t)(3 * i + 1);
        len[i] = corpus_len[rows[i]];
    }
    char err[DIST_ERRLEN];
    dist_epoch_plan plan;
    assert_int_equal(dist_sampler_plan(&plan, rows, n_rows, offsets, B, 1, 42, 2, err), 0);
    dist_sampler_config c = dist_sampler_defaults(B, 42);
    dist_epoch e = epoch_of(&c, len, n_rows, 2);
    assert_int_equal(plan.n, n_rows);
    assert_int_equal(plan.n_batches, e.n_batches);
    assert_int_equal(plan.n_batches, 15);
    for (size_t i = 0; i < n_rows; i++) assert_int_equal(plan.order[i], rows[e.order[i]]);
    for (size_t b = 0; b < plan.n_batches; b++) {
        size_t b0, bn;
        assert_int_equal(dist_sampler_batch(&e, b, &b0, &bn), 0);
        assert_int_equal(plan.batch_start[b], b0);
        assert_int_equal(plan.batch_start[b + 1] - plan.batch_start[b], bn);
    }
    assert_int_equal(plan.batch_start[plan.n_batches], n_rows);
    dist_sampler_plan_free(&plan);
    dist_sampler_plan_free(&plan);
    dist_epoch_free(&e);

    /* group_by_length = 0: the plain seeded permutation, not the grouped order */
    assert_int_equal(dist_sampler_plan(&plan, rows, n_rows, offsets, B, 0, 42, 2, err), 0);
    c.group_by_length = 0;
    e = epoch_of(&c, NULL, n_rows, 2);
    int differs_from_grouped = 0;
    dist_epoch grouped = epoch_of(&(dist_sampler_config){.batch_size = B, .seed = 42, .group_by_length = 1,
                                                         .longest_first = 1},
                                  len, n_rows, 2);
    for (size_t i = 0; i < n_rows; i++) {
        assert_int_equal(plan.order[i], rows[e.order[i]]);
        differs_from_grouped |= plan.order[i] != rows[grouped.order[i]];
    }
    assert_true(differs_from_grouped);
    dist_sampler_plan_free(&plan);
    dist_epoch_free(&e);
    dist_epoch_free(&grouped);

    assert_int_equal(dist_sampler_plan(&plan, NULL, 0, NULL, B, 1, 42, 0, err), 0);
    assert_int_equal(plan.n_batches, 0);
    assert_int_equal(plan.batch_start[0], 0);
    dist_sampler_plan_free(&plan);
    assert_int_not_equal(dist_sampler_plan(&plan, rows, n_rows, offsets, 0, 1, 42, 0, err), 0);
    assert_null(plan.order);
    assert_null(plan.batch_start);
    free(offsets);
    free(corpus_len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_pinned_order),
        cmocka_unit_test(test_rank_slices_cover),
        cmocka_unit_test(test_share_rule),
        cmocka_unit_test(test_negative_control_slicer),
        cmocka_unit_test(test_length_spread),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_resume_position),
        cmocka_unit_test(test_plan_over_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
