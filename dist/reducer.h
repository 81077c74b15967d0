/* dist/reducer: the one gradient-reducer interface a training step talks to.
 *
 * A step calls bucket_ready(buf, n) for each gradient bucket as backward
 * finishes it (in the same order, with the same sizes, on every rank; a rank
 * without samples still calls it for every bucket), then finish() before the
 * optimizer. bucket_ready starts the bucket's SUM across ranks and progresses the
 * earlier ones, so the reduction overlaps the rest of backward; finish blocks until
 * every started bucket holds the sum. Between bucket_ready and finish nothing may
 * touch `buf`.
 *
 * Two implementations, chosen once at set-up:
 * - host: MPI non-blocking all-reduce on host buffers (dist_reducer, dist/dist.h;
 *   a no-op in the one-rank build);
 * - nccl: NCCL on device buffers, on its own stream ordered after the caller's
 *   compute stream (dist_nccl_reducer, dist/nccl.h, whose contract applies). */
#ifndef ADEBERT_DIST_REDUCER_H
#define ADEBERT_DIST_REDUCER_H

#include "dist/dist.h"
#include "dist/nccl.h"

#include <stddef.h>

typedef struct dist_grad_reducer dist_grad_reducer;

/* max_buckets: most bucket_ready calls between two finishes. */
int dist_grad_reducer_host(dist_grad_reducer **out, dist_comm *c, size_t max_buckets, char err[DIST_ERRLEN]);
/* max_elems: most floats made ready between two finishes (sizes the bf16 staging). */
int dist_grad_reducer_nccl(dist_grad_reducer **out, dist_nccl *n, void *compute_stream, size_t max_buckets,
                           size_t max_elems, dist_nccl_wire wire, char err[DIST_ERRLEN]);
void dist_grad_reducer_free(dist_grad_reducer *r); /* NULL ok */

int dist_grad_reducer_bucket_ready(dist_grad_reducer *r, float *buf, size_t n, char err[DIST_ERRLEN]);
/* *wait_s (may be NULL) gets the time the host spent blocked. */
int dist_grad_reducer_finish(dist_grad_reducer *r, double *wait_s, char err[DIST_ERRLEN]);

#endif
