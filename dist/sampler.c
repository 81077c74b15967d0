/* The distributed length-grouped sampler (contract in dist/sampler.h). */
#include "dist/sampler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char err[DIST_ERRLEN], const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, DIST_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------------ generator */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stream constant of its own, so the epoch shuffle is unrelated to the data
 * split (io/split.c) drawn from the same user seed. */
#define SAMPLER_STREAM 0x5A3D1E7C0B9F2468ull

typedef struct {
    uint64_t key, ctr;
} rng;

static rng rng_make(uint64_t seed, uint64_t epoch)
{
    uint64_t k = mix64(seed ^ SAMPLER_STREAM);
    rng r = {mix64(k + (epoch + 1) * 0xD1B54A32D192ED03ull), 0};
    return r;
}

static uint64_t rng_next(rng *r)
{
    r->ctr++;
    return mix64(r->key + r->ctr * 0x9E3779B97F4A7C15ull);
}

/* Uniform in [0, k), k > 0, by rejection: no modulo bias. */
static uint64_t rng_below(rng *r, uint64_t k)
{
    uint64_t threshold = (0 - k) % k; /* 2^64 mod k */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold) return x % k;
    }
}

/* -------------------------------------------------------------- sampler */

dist_sampler_config dist_sampler_defaults(size_t batch_size, uint64_t seed)
{
    dist_sampler_config c = {batch_size, seed, 1, 1, 0};
    return c;
}

size_t dist_sampler_steps(size_t n, size_t batch_size)
{
    if (batch_size == 0) return 0;
    return n / batch_size + (n % batch_size != 0);
}

void dist_epoch_free(dist_epoch *e)
{
    if (!e) return;
    free(e->order);
    memset(e, 0, sizeof *e);
}

typedef struct {
    uint32_t len, id;
    size_t pos; /* position in the permutation: makes the sort a stable one */
} keyed;

static int by_len_desc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

int dist_sampler_epoch(const dist_sampler_config *cfg, const uint32_t *lengths, size_t n, uint64_t epoch,
                       dist_epoch *out, char err[DIST_ERRLEN])
{
    if (!out) return fail(err, "sampler: NULL output");
    memset(out, 0, sizeof *out);
    if (!cfg) return fail(err, "sampler: NULL config");
    const size_t B = cfg->batch_size;
    if (B == 0) return fail(err, "sampler: batch size must be at least 1");
    if (n > UINT32_MAX) return fail(err, "sampler: %zu samples do not fit 32-bit ids", n);
    if (cfg->group_by_length && n > 0 && !lengths) return fail(err, "sampler: grouping by length needs the lengths");

    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return fail(err, "sampler: out of memory for %zu samples", n);
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    rng r = rng_make(cfg->seed, epoch);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }

    if (cfg->group_by_length && n > 0) {
        size_t mult = cfg->megabatch_mult;
        if (mult == 0) {
            /* HF's rule: small data sets get smaller megabatches so that several
             * still exist and the order keeps some randomness */
            mult = n / (4 * B);
            if (mult > DIST_SAMPLER_MAX_MEGABATCH_MULT) mult = DIST_SAMPLER_MAX_MEGABATCH_MULT;
            if (mult == 0) mult = 1;
        }
        size_t mb = mult * B;
        if (mb / mult != B) mb = n; /* overflow: one megabatch */
        keyed *k = malloc((mb < n ? mb : n) * sizeof *k);
        if (!k) {
            free(order);
            return fail(err, "sampler: out of memory for a megabatch of %zu", mb);
        }
        size_t longest_mb = 0;
        uint32_t longest = 0;
        for (size_t start = 0; start < n; start += mb) {
            size_t m = n - start < mb ? n - start : mb;
            for (size_t i = 0; i < m; i++) {
                k[i].id = order[start + i];
                k[i].len = lengths[k[i].id];
                k[i].pos = i;
            }
            qsort(k, m, sizeof *k, by_len_desc);
            for (size_t i = 0; i < m; i++) order[start + i] = k[i].id;
            /* first megabatch with the maximum, like argmax */
            if (start == 0 || k[0].len > longest) {
                longest = k[0].len;
                longest_mb = start;
            }
        }
        free(k);
        if (cfg->longest_first && longest_mb != 0) {
            /* Swap the head of that megabatch (its longest samples, a tight group)
             * with the head of the first one, up to one batch: every batch keeps a
             * small spread, where HF's single-sample swap leaves two mixed batches. */
            size_t m_last = n - longest_mb < mb ? n - longest_mb : mb;
            size_t w = B;
            if (w > m_last) w = m_last;
            for (size_t i = 0; i < w; i++) {
                uint32_t t = order[i];
                order[i] = order[longest_mb + i];
                order[longest_mb + i] = t;
            }
        }
    }

    out->epoch = epoch;
    out->n = n;
    out->batch_size = B;
    out->n_batches = dist_sampler_steps(n, B);
    out->order = order;
    return 0;
}

int dist_sampler_batch(const dist_epoch *e, size_t batch, size_t *begin, size_t *count)
{
    if (!e || !begin || !count || batch >= e->n_batches) return -1;
    *begin = batch * e->batch_size;
    size_t left = e->n - *begin;
    *count = left < e->batch_size ? left : e->batch_size;
    return 0;
}

int dist_sampler_share(size_t total, size_t rank, size_t world, size_t *begin, size_t *count)
{
    if (!begin || !count) return -1;
    *begin = *count = 0;
    if (world == 0 || rank >= world) return -1;
    size_t q = total / world, extra = total % world;
    *begin = rank * q + (rank < extra ? rank : extra);
    *count = q + (rank < extra);
    return 0;
}

int dist_sampler_rank_slice(const dist_epoch *e, size_t batch, size_t rank, size_t world, size_t *begin,
                            size_t *count)
{
    size_t b0, bn, off;
    if (dist_sampler_batch(e, batch, &b0, &bn)) return -1;
    if (dist_sampler_share(bn, rank, world, &off, count)) return -1;
    *begin = b0 + off;
    return 0;
}

void dist_sampler_plan_free(dist_epoch_plan *plan)
{
    if (!plan) return;
    free(plan->order);
    free(plan->batch_start);
    memset(plan, 0, sizeof *plan);
}

int dist_sampler_plan(dist_epoch_plan *plan, const uint32_t *rows, size_t n_rows, const uint64_t *offsets,
                      size_t batch_size, int group_by_length, uint64_t seed, uint64_t epoch,
                      char err[DIST_ERRLEN])
{
    if (!plan) return fail(err, "sampler: NULL output");
    memset(plan, 0, sizeof *plan);
    if (n_rows > 0 && (!rows || !offsets)) return fail(err, "sampler: NULL rows or token offsets");
    if (n_rows > UINT32_MAX) return fail(err, "sampler: %zu rows do not fit 32-bit ids", n_rows);
    uint32_t *len = malloc((n_rows ? n_rows : 1) * sizeof *len);
    if (!len) return fail(err, "sampler: out of memory for %zu rows", n_rows);
    for (size_t i = 0; i < n_rows; i++) {
        uint64_t l = offsets[rows[i] + 1] - offsets[rows[i]];
        len[i] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
    }
    dist_sampler_config cfg = dist_sampler_defaults(batch_size, seed);
    cfg.group_by_length = group_by_length != 0;
    dist_epoch e;
    int rc = dist_sampler_epoch(&cfg, len, n_rows, epoch, &e, err);
    free(len);
    if (rc) return rc;
    size_t *starts = malloc((e.n_batches + 1) * sizeof *starts);
    if (!starts) {
        dist_epoch_free(&e);
        return fail(err, "sampler: out of memory for %zu batches", e.n_batches);
    }
    for (size_t b = 0; b < e.n_batches; b++) starts[b] = b * batch_size;
    starts[e.n_batches] = n_rows;
    /* positions -> corpus rows, in place */
    for (size_t i = 0; i < n_rows; i++) e.order[i] = rows[e.order[i]];
    plan->epoch = epoch;
    plan->n = n_rows;
    plan->batch_size = batch_size;
    plan->n_batches = e.n_batches;
    plan->order = e.order; /* ownership moves to the plan */
    plan->batch_start = starts;
    return 0;
}

dist_data_position dist_sampler_position(uint64_t steps_done, size_t steps_per_epoch)
{
    dist_data_position p = {0, 0};
    if (steps_per_epoch == 0) return p;
    p.epoch = steps_done / steps_per_epoch;
    p.batch = (size_t)(steps_done % steps_per_epoch);
    return p;
}
