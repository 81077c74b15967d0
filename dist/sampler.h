/* dist/sampler: the distributed length-grouped sampler. Pure computation, no MPI:
 * every rank computes the same epoch order from (seed, epoch) alone, so no rank
 * ever has to tell another which samples it takes.
 *
 * One epoch:
 *  1. a permutation of 0..n-1 by Fisher-Yates, every draw from a counter-based
 *     generator (splitmix64 keyed by seed and epoch): identical on every machine,
 *     compiler and rank, never rand();
 *  2. length grouping, like Hugging Face's group_by_length (LengthGroupedSampler):
 *     the permutation is cut into megabatches of mult x B samples (mult = min(n /
 *     (4B), 50), at least 1), each sorted by length, longest first (ties keep their
 *     permutation order), so consecutive batches hold similar lengths and a packed
 *     batch wastes little attention work on short neighbours; optionally the longest
 *     sample's batch is moved to the front, so the step with the most tokens comes
 *     first and an arena too small fails at step 0, not hours in;
 *  3. consecutive global batches of B samples; the last one may be partial
 *     (drop_last = 0): steps per epoch = ceil(n / B).
 * Within a global batch of size b, rank r of N takes the contiguous share
 * [r*q + min(r, b%N), +q + (r < b%N)), q = b/N: sizes differ by at most one, the
 * first b%N ranks take the extra sample, and a rank may get 0 samples (b < N); it
 * still joins every collective.
 *
 * Resume: the data position inside an epoch is the index of the next global batch;
 * (epoch, batch) - or the global step count, since every epoch has the same number
 * of steps - is all a checkpoint needs to continue the exact sample stream. */
#ifndef ADEBERT_DIST_SAMPLER_H
#define ADEBERT_DIST_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "dist/dist.h"

#define DIST_SAMPLER_MAX_MEGABATCH_MULT 50

typedef struct {
    size_t batch_size;     /* global batch B >= 1 */
    uint64_t seed;
    int group_by_length;   /* 1: megabatches sorted by length; 0: the plain permutation */
    int longest_first;     /* 1: the longest sample's batch goes first */
    size_t megabatch_mult; /* 0: HF's rule min(n / (4B), 50), at least 1 */
} dist_sampler_config;

/* B, seed; group_by_length = 1, longest_first = 1, megabatch_mult = 0. */
dist_sampler_config dist_sampler_defaults(size_t batch_size, uint64_t seed);

typedef struct {
    uint64_t epoch;
    size_t n;          /* samples */
    size_t batch_size; /* B */
    size_t n_batches;  /* ceil(n / B) = steps in this epoch */
    uint32_t *order;   /* n sample ids; batch k is order[k*B .. min((k+1)*B, n)) */
} dist_epoch;

/* ceil(n / batch_size); 0 when batch_size is 0. */
size_t dist_sampler_steps(size_t n, size_t batch_size);

/* The order of `epoch` for n samples with token counts lengths[0..n) (lengths may
 * be NULL when group_by_length is 0). n must fit in 32 bits. */
int dist_sampler_epoch(const dist_sampler_config *cfg, const uint32_t *lengths, size_t n, uint64_t epoch,
                       dist_epoch *out, char err[DIST_ERRLEN]);
/* Accepts a zeroed or already-freed epoch. */
void dist_epoch_free(dist_epoch *e);

/* Global batch `batch`: positions [*begin, *begin + *count) of e->order. */
int dist_sampler_batch(const dist_epoch *e, size_t batch, size_t *begin, size_t *count);

/* Rank `rank` of `world`'s share of `total` items: [*begin, *begin + *count),
 * relative to the start of the batch (rule in the header comment). Non-zero (and
 * *begin = *count = 0) when world is 0 or rank >= world. */
int dist_sampler_share(size_t total, size_t rank, size_t world, size_t *begin, size_t *count);

/* This rank's part of global batch `batch`: positions [*begin, *begin + *count) of
 * e->order (absolute). *count may be 0. */
int dist_sampler_rank_slice(const dist_epoch *e, size_t batch, size_t rank, size_t world, size_t *begin,
                            size_t *count);

/* The trainer's view: one epoch over a subset of corpus rows (a split's train
 * list), lengths taken from the CSR token offsets (row i has offsets[i+1] -
 * offsets[i] tokens), grouping as asked (otherwise dist_sampler_defaults). order holds corpus
 * row ids, rows[] permuted; global batch b is order[batch_start[b] ..
 * batch_start[b+1]). Same order as dist_sampler_epoch over positions 0..n_rows-1
 * mapped through rows[]. */
typedef struct {
    uint64_t epoch;
    size_t n;            /* rows */
    size_t batch_size;
    size_t n_batches;
    uint32_t *order;     /* n corpus row ids */
    size_t *batch_start; /* n_batches + 1 entries, batch_start[n_batches] == n */
} dist_epoch_plan;

int dist_sampler_plan(dist_epoch_plan *plan, const uint32_t *rows, size_t n_rows, const uint64_t *offsets,
                      size_t batch_size, int group_by_length, uint64_t seed, uint64_t epoch,
                      char err[DIST_ERRLEN]);
/* Accepts a zeroed or already-freed plan. */
void dist_sampler_plan_free(dist_epoch_plan *plan);

/* Where training continues after `steps_done` optimizer steps, with
 * steps_per_epoch = dist_sampler_steps(n, B) > 0. */
typedef struct {
    uint64_t epoch;
    size_t batch; /* next global batch inside that epoch */
} dist_data_position;

dist_data_position dist_sampler_position(uint64_t steps_done, size_t steps_per_epoch);

#endif
