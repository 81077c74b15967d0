/* launch/cluster: what a job on a cluster (Slurm, mpirun over a hostfile) must get
 * right before training starts, kept out of cmd_train.c and testable on a CPU host.
 *
 * Contract
 * - The environment is read through a cluster_getenv_fn (NULL = getenv), so unit
 *   tests inject it; nothing here is global or cached.
 * - Device default (issue 14.1): `train` without --device runs on the GPUs when the
 *   job has any (SLURM_GPUS_PER_NODE > 0, SLURM_JOB_GPUS / SLURM_STEP_GPUS non-empty,
 *   CUDA_VISIBLE_DEVICES naming devices) and adebert was built with CUDA; a build
 *   without CUDA refuses (one line: rebuild, or say --device cpu). No GPUs: cpu.
 *   An explicit --device is never changed.
 * - Resume after a requeue (14.3): SLURM_RESTART_COUNT > 0 and no checkpoint found
 *   means the run directory is not the one the job wrote (node-local --out, another
 *   node): refuse instead of starting over and replacing metrics.jsonl.
 * - Ranks vs GPUs (14.8): collective over the communicator; each rank's GPU (device
 *   local_rank mod visible count, named by its PCI bus id) must be used by no other
 *   rank on its node, else NCCL fails later with only "invalid usage". The count and
 *   ids come from CUDA, or from env ADEBERT_FAKE_GPU_COUNT=N (a TEST HOOK, honoured
 *   only by this check: N GPUs named fake-gpu-0..N-1, the same on every rank of a
 *   node) so the check is testable without GPUs.
 * - Binding (14.4): one line per rank on stderr: rank, local rank, host, the CPUs it
 *   may run on (sched_getaffinity), OMP_NUM_THREADS and the GPU (index and PCI id);
 *   printed for several ranks, on a GPU or under Slurm (SLURM_JOB_ID), not for a
 *   one-rank CPU run; ADEBERT_PRINT_BINDING=1|0 forces it on or off.
 * Functions return 0 ok, -1 with a one-line message in err. */
#ifndef ADEBERT_LAUNCH_CLUSTER_H
#define ADEBERT_LAUNCH_CLUSTER_H

#include "dist/dist.h"

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_ERRLEN 512

typedef const char *(*cluster_getenv_fn)(const char *name, void *ctx);

/* 1 when the job has GPUs by its environment; `why` (may be NULL) gets the variable
 * that says so ("SLURM_GPUS_PER_NODE=8"). 0 otherwise. */
int cluster_job_has_gpus(cluster_getenv_fn get, void *ctx, char *why, size_t why_len);

/* Resolves `device` in place when it is empty (not given): "cuda" or "cpu". `note`
 * (may be NULL) gets why the default was chosen, or "" when --device was given.
 * -1: the job has GPUs but built_with_cuda is 0 (err says how to go on). */
int cluster_default_device(char *device, size_t device_len, int built_with_cuda, cluster_getenv_fn get,
                           void *ctx, char *note, size_t note_len, char err[CLUSTER_ERRLEN]);

/* SLURM_RESTART_COUNT > 0 (from `get`) and found == 0: -1, err names the directory
 * and the fix. Otherwise 0. */
int cluster_check_resume_found(int found, const char *run_dir, cluster_getenv_fn get, void *ctx,
                               char err[CLUSTER_ERRLEN]);

/* One rank's view for the ranks-vs-GPUs check. */
typedef struct {
    uint64_t host_key, gpu_key; /* hashes of the host name and of the GPU's PCI id */
    int local_rank, local_size, visible;
} cluster_rank_gpu;

/* Pure part of the check: the first two ranks (a < b) of the same host with the
 * same GPU, in *a and *b; 0 when none, 1 when found. */
int cluster_find_shared_gpu(const cluster_rank_gpu *v, int n, int *a, int *b);

/* Visible GPUs (cudaGetDeviceCount, or ADEBERT_FAKE_GPU_COUNT) and the PCI id of
 * device `dev` into id (may be NULL). *faked is set to 1 when the test hook answered.
 * Returns the count (0: none or no CUDA). */
int cluster_visible_gpus(cluster_getenv_fn get, void *ctx, int dev, char *id, size_t id_len, int *faked);

/* Collective: every rank calls it. 0: every rank of every node has a GPU of its own.
 * -1 on rank 0 with the message (both counts, the two ranks); the other ranks then
 * wait in a barrier for rank 0 to end the job (dist_abort), so one line is printed. */
int cluster_check_ranks_vs_gpus(dist_comm *c, cluster_getenv_fn get, void *ctx, char err[CLUSTER_ERRLEN]);

/* "0-11,48-59" from the CPU set of this process (sched_getaffinity); -1 on error. */
int cluster_cpu_list(char *buf, size_t len, int *ncpus);

/* Prints this rank's binding line on stderr. gpu: device index, or -1 on the CPU.
 * note: the device default's note (may be NULL or ""). */
void cluster_print_binding(const dist_comm *c, const char *device, int gpu, const char *note);

#endif
