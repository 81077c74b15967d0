/* dist/nccl: GPU gradients over NCCL, one GPU per rank.
 *
 * Contract
 * - Device: rank r uses device local_rank % (visible device count). Under
 *   `srun --gpus-per-task=1` (or CUDA_VISIBLE_DEVICES set per rank) every rank sees
 *   its GPU as device 0; under mpirun on an 8-GPU node local ranks 0..7 get 0..7.
 *   dist_nccl_create makes that device current on the calling thread; create the
 *   CUDA backend on dist_nccl_device() afterwards.
 * - One rank (ADEBERT_MPI=OFF, or a 1-rank MPI job): no NCCL communicator is made
 *   (unless forced), libnccl is never loaded and the reducer is a no-op: the sum over
 *   one rank is the identity, so no bf16 round trip is applied either.
 * - Several ranks: rank 0 makes the NCCL unique id, dist_bcast_bytes sends it, every
 *   rank calls ncclCommInitRank. libnccl.so.2 is loaded at run time (dlopen), so a
 *   binary built with NCCL still runs on a host without it as long as it runs one rank.
 * - The reducer has the shape of dist_reducer, on DEVICE buffers: start(buf, n) SUMs
 *   n floats in place across ranks, asynchronously, on the reducer's own stream,
 *   ordered after everything already enqueued on the caller's compute stream (an
 *   event is recorded there and the comm stream waits on it). Between start and wait
 *   no stream may read or write `buf`: it changes from the local gradient to the sum
 *   at an unspecified moment. Every rank starts the same buckets (same n, same order)
 *   between two waits, as NCCL requires. wait() blocks the host until every started
 *   bucket is reduced and makes the compute stream wait too, so the optimizer that
 *   follows on the compute stream sees the sums.
 * - Order of set-up: dist_nccl_create (collective; sets the device), then the CUDA
 *   backend on dist_nccl_device(), then a reducer on that backend's stream
 *   (nn_cuda_stream). Free the reducer before the backend, the communicator last.
 * - Wire precision: DIST_NCCL_WIRE_BF16 (default) converts each bucket to bf16 in a
 *   staging buffer (round to nearest even), all-reduces bf16 and converts back: half
 *   the bytes of fp32, at ~3 significant digits per partial sum (NCCL's bf16 sum
 *   accumulates in fp32 inside each reduction step). DIST_NCCL_WIRE_FP32 reduces the
 *   fp32 buffer in place (bit-exact sums of the same order on every rank).
 * - Failure: a NCCL error or the deadline (timeout_s, --comm-timeout, from start of
 *   wait) passing while the host waits means the other ranks are lost or stuck: the
 *   communicator is aborted (ncclCommAbort) and the job ended through dist_abort with
 *   rank, host and device in the message. progress() and wait() therefore never
 *   return a NCCL failure; they return -1 only for misuse (too many buckets, staging
 *   exhausted) and CUDA errors found on the host side.
 * - Every CUDA and NCCL call is checked; errors name the call.
 * - Built only when CUDA and nccl.h are found (ADEBERT_HAVE_NCCL). Otherwise every
 *   function fails with "built without NCCL", except the one-rank case of
 *   dist_nccl_create / the reducer (device 0, no-op), which needs no NCCL. */
#ifndef ADEBERT_DIST_NCCL_H
#define ADEBERT_DIST_NCCL_H

#include "dist/dist.h"

#include <stddef.h>

typedef enum { DIST_NCCL_WIRE_BF16 = 0, DIST_NCCL_WIRE_FP32 = 1 } dist_nccl_wire;

typedef struct {
    double timeout_s;   /* deadline of one reducer wait; <= 0 => 600 s */
    int force_comm;     /* make a NCCL communicator even for one rank (self-tests) */
} dist_nccl_opts;

typedef struct dist_nccl dist_nccl;

/* Picks and sets the device, then (several ranks, or force_comm) makes the NCCL
 * communicator. Collective over `c`: every rank calls it. opts may be NULL. */
int dist_nccl_create(dist_nccl **out, dist_comm *c, const dist_nccl_opts *opts, char err[DIST_ERRLEN]);
/* Destroys the communicator (after a clean run; the error paths abort it). */
void dist_nccl_free(dist_nccl *n);
int dist_nccl_device(const dist_nccl *n);
/* "NCCL 2.28.9, 8 ranks, device 3 (NVIDIA H200, PCI 0000:1b:00.0)" or "one rank: no
 * NCCL communicator, device 0 (...)". */
const char *dist_nccl_describe(const dist_nccl *n, char *buf, size_t len);

typedef struct dist_nccl_reducer dist_nccl_reducer;
/* compute_stream: the caller's cudaStream_t (NULL = the legacy default stream).
 * max_buckets: most start() calls between two waits. max_elems: most floats started
 * between two waits, summed over buckets (sizes the bf16 staging buffer). */
int dist_nccl_reducer_create(dist_nccl_reducer **out, dist_nccl *n, void *compute_stream, size_t max_buckets,
                             size_t max_elems, dist_nccl_wire wire, char err[DIST_ERRLEN]);
void dist_nccl_reducer_free(dist_nccl_reducer *r);
int dist_nccl_reducer_start(dist_nccl_reducer *r, float *dev_buf, size_t n, char err[DIST_ERRLEN]);
int dist_nccl_reducer_progress(dist_nccl_reducer *r, char err[DIST_ERRLEN]); /* non-blocking */
/* *wait_s (may be NULL) gets the time the host spent blocked. */
int dist_nccl_reducer_wait(dist_nccl_reducer *r, double *wait_s, char err[DIST_ERRLEN]);

/* Sanity check of the NCCL path on the ranks of `c` (works on one rank: a NCCL
 * communicator of one is forced): all-reduces a known fp32 buffer (n = 1M + 3
 * elements, values that bf16 holds exactly) through a reducer in fp32 and in bf16,
 * and checks every element on the host. Fills `report` with one line (version,
 * ranks, device, bytes, time). 0 ok; -1 failed (err says why). */
int dist_nccl_selftest(dist_comm *c, double timeout_s, char *report, size_t len, char err[DIST_ERRLEN]);

#endif
