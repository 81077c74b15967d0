// dist/nccl: NCCL gradient all-reduce on device buffers (contract in dist/nccl.h).
// C++ only for nvcc and decltype; the interface is C. libnccl is opened at run time
// so that a one-rank run never needs it.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "dist/nccl.h"
}

#define SRC "dist/comm_nccl.cu"

// ------------------------------------------------------------------ checks
// Each names the call and the line; `err` must be in scope and the function
// must return int.
#define CUDA_TRY(call)                                                                                      \
    do {                                                                                                    \
        cudaError_t e_ = (call);                                                                            \
        if (e_ != cudaSuccess) {                                                                            \
            snprintf(err, DIST_ERRLEN, "%.90s failed (" SRC ":%d): %s", #call, __LINE__,                    \
                     cudaGetErrorString(e_));                                                               \
            return -1;                                                                                      \
        }                                                                                                   \
    } while (0)

// NCCL_TRY(api, Fn, (args)) calls api->Fn args and reports it as ncclFn.
#define NCCL_TRY(api, fn, args)                                                                             \
    do {                                                                                                    \
        ncclResult_t e_ = (api)->fn args;                                                                   \
        if (e_ != ncclSuccess) {                                                                            \
            snprintf(err, DIST_ERRLEN, "nccl" #fn " failed (" SRC ":%d): %s", __LINE__,                     \
                     (api)->GetErrorString(e_));                                                            \
            return -1;                                                                                      \
        }                                                                                                   \
    } while (0)

// ------------------------------------------------------------------ libnccl
struct nccl_api {
    void *lib;
    decltype(&ncclGetVersion) GetVersion;
    decltype(&ncclGetUniqueId) GetUniqueId;
    decltype(&ncclCommInitRank) CommInitRank;
    decltype(&ncclAllReduce) AllReduce;
    decltype(&ncclCommGetAsyncError) CommGetAsyncError;
    decltype(&ncclCommAbort) CommAbort;
    decltype(&ncclCommDestroy) CommDestroy;
    decltype(&ncclGetErrorString) GetErrorString;
};

static int nccl_load(nccl_api *a, char err[DIST_ERRLEN])
{
    memset(a, 0, sizeof *a);
    const char *tried = "libnccl.so.2";
    a->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
#ifdef ADEBERT_NCCL_LIBRARY
    if (!a->lib) {
        tried = "libnccl.so.2 and " ADEBERT_NCCL_LIBRARY;
        a->lib = dlopen(ADEBERT_NCCL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    }
#endif
    if (!a->lib) {
        const char *why = dlerror();
        snprintf(err, DIST_ERRLEN, "cannot load NCCL (%s): %.120s; put its folder on LD_LIBRARY_PATH", tried,
                 why ? why : "not found");
        return -1;
    }
#define SYM(f)                                                                                              \
    do {                                                                                                    \
        a->f = reinterpret_cast<decltype(a->f)>(dlsym(a->lib, "nccl" #f));                                  \
        if (!a->f) {                                                                                        \
            snprintf(err, DIST_ERRLEN, "libnccl.so.2 lacks nccl" #f " (NCCL too old?)");                    \
            dlclose(a->lib);                                                                                \
            a->lib = NULL;                                                                                  \
            return -1;                                                                                      \
        }                                                                                                   \
    } while (0)
    SYM(GetVersion);
    SYM(GetUniqueId);
    SYM(CommInitRank);
    SYM(AllReduce);
    SYM(CommGetAsyncError);
    SYM(CommAbort);
    SYM(CommDestroy);
    SYM(GetErrorString);
#undef SYM
    return 0;
}

// ------------------------------------------------------------------ communicator
struct dist_nccl {
    dist_comm *c;
    nccl_api api;
    ncclComm_t comm; // NULL: one rank, nothing to reduce
    int device, version;
    double timeout_s;
    char dev_desc[128]; // "NVIDIA H200, PCI 0000:1b:00.0"
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int pick_device(dist_nccl *n, char err[DIST_ERRLEN])
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(err, DIST_ERRLEN, "no CUDA device visible to this rank: %s",
                 e == cudaSuccess ? "cudaGetDeviceCount found 0" : cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }
    n->device = n->c->local_rank % count;
    CUDA_TRY(cudaSetDevice(n->device));
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, n->device));
    char bus[32] = "?";
    CUDA_TRY(cudaDeviceGetPCIBusId(bus, (int)sizeof bus, n->device));
    snprintf(n->dev_desc, sizeof n->dev_desc, "%.60s, PCI %s", p.name, bus);
    return 0;
}

// Rank 0's verdict and unique id travel together, so no rank waits on a rank
// that already failed.
struct id_msg {
    int64_t ok;
    ncclUniqueId id;
};

// Every rank has loaded NCCL and set its device (agreed on by the caller).
static int make_comm(dist_nccl *n, char err[DIST_ERRLEN])
{
    dist_comm *c = n->c;
    char local[DIST_ERRLEN] = "";
    id_msg m;
    memset(&m, 0, sizeof m);
    if (c->rank == 0) {
        ncclResult_t e = n->api.GetUniqueId(&m.id);
        m.ok = e == ncclSuccess;
        if (!m.ok)
            snprintf(local, DIST_ERRLEN, "ncclGetUniqueId failed (" SRC ":%d): %s", __LINE__,
                     n->api.GetErrorString(e));
    }
    if (dist_bcast_bytes(c, &m, sizeof m, err))
        return -1;
    if (!m.ok) {
        snprintf(err, DIST_ERRLEN, "%s", c->rank == 0 ? local : "rank 0 could not make a NCCL unique id");
        return -1;
    }
    NCCL_TRY(&n->api, CommInitRank, (&n->comm, c->size, m.id, c->rank));
    return 0;
}

extern "C" int dist_nccl_create(dist_nccl **out, dist_comm *c, const dist_nccl_opts *opts, char err[DIST_ERRLEN])
{
    *out = NULL;
    dist_nccl *n = (dist_nccl *)calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    n->c = c;
    n->timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : 600.0;
    char local[DIST_ERRLEN] = "";
    int64_t bad = pick_device(n, local) != 0;
    if (c->size > 1 || (opts && opts->force_comm)) {
        if (!bad && nccl_load(&n->api, local) == 0)
            n->api.GetVersion(&n->version);
        else
            bad = 1;
        // A rank that failed still joins this collective, so the others hear of it
        // instead of waiting for it in ncclCommInitRank.
        if (dist_allreduce_max_i64(c, &bad, 1, err))
            goto fail;
        if (bad) {
            snprintf(err, DIST_ERRLEN, "%s", local[0] ? local : "another rank has no usable CUDA device or NCCL");
            goto fail;
        }
        if (make_comm(n, err))
            goto fail;
    } else if (bad) {
        snprintf(err, DIST_ERRLEN, "%s", local);
        goto fail;
    }
    *out = n;
    return 0;
fail:
    if (n->api.lib)
        dlclose(n->api.lib);
    free(n);
    return -1;
}

extern "C" void dist_nccl_free(dist_nccl *n)
{
    if (!n)
        return;
    if (n->comm)
        n->api.CommDestroy(n->comm);
    if (n->api.lib)
        dlclose(n->api.lib);
    free(n);
}

extern "C" int dist_nccl_device(const dist_nccl *n) { return n->device; }

extern "C" const char *dist_nccl_describe(const dist_nccl *n, char *buf, size_t len)
{
    if (!n->comm)
        snprintf(buf, len, "one rank: no NCCL communicator, device %d (%s)", n->device, n->dev_desc);
    else
        snprintf(buf, len, "NCCL %d.%d.%d, %d rank%s, device %d (%s)", n->version / 10000, n->version / 100 % 100,
                 n->version % 100, n->c->size, n->c->size == 1 ? "" : "s", n->device, n->dev_desc);
    return buf;
}

// The communicator is beyond repair (a peer died, a link failed, or we waited past
// the deadline): abort it so no NCCL kernel stays stuck, then end the job.
static void fail_abort(dist_nccl *n, const char *what)
{
    char msg[2 * DIST_ERRLEN];
    snprintf(msg, sizeof msg, "NCCL all-reduce on device %d (%s): %s; communicator aborted", n->device,
             n->dev_desc, what);
    if (n->comm)
        n->api.CommAbort(n->comm);
    n->comm = NULL;
    dist_abort(n->c, 1, msg);
}

// ------------------------------------------------------------------ kernels
static __global__ void to_bf16(__nv_bfloat16 *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static __global__ void from_bf16(float *dst, const __nv_bfloat16 *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

static unsigned grid_for(size_t n)
{
    size_t g = (n + 255) / 256;
    return (unsigned)(g < 4096 ? (g ? g : 1) : 4096);
}

// ------------------------------------------------------------------ reducer
struct dist_nccl_reducer {
    dist_nccl *n;
    cudaStream_t compute, comm;
    cudaEvent_t ready, done;
    dist_nccl_wire wire;
    __nv_bfloat16 *stage;
    size_t stage_cap, stage_used;
    size_t started, max_buckets;
    int active; // 0: one rank without a communicator, every call is a no-op
};

static int reducer_init(dist_nccl_reducer *r, char err[DIST_ERRLEN])
{
    int lo = 0, hi = 0;
    CUDA_TRY(cudaSetDevice(r->n->device));
    // Highest priority: reduction kernels get SMs ahead of the backward that overlaps them.
    CUDA_TRY(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    CUDA_TRY(cudaStreamCreateWithPriority(&r->comm, cudaStreamNonBlocking, hi));
    CUDA_TRY(cudaEventCreateWithFlags(&r->ready, cudaEventDisableTiming));
    CUDA_TRY(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming));
    if (r->wire == DIST_NCCL_WIRE_BF16 && r->stage_cap)
        CUDA_TRY(cudaMalloc((void **)&r->stage, r->stage_cap * sizeof *r->stage));
    return 0;
}

extern "C" int dist_nccl_reducer_create(dist_nccl_reducer **out, dist_nccl *n, void *compute_stream,
                                        size_t max_buckets, size_t max_elems, dist_nccl_wire wire,
                                        char err[DIST_ERRLEN])
{
    *out = NULL;
    if (wire != DIST_NCCL_WIRE_BF16 && wire != DIST_NCCL_WIRE_FP32) {
        snprintf(err, DIST_ERRLEN, "dist_nccl_reducer_create: unknown wire precision %d", (int)wire);
        return -1;
    }
    dist_nccl_reducer *r = (dist_nccl_reducer *)calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, DIST_ERRLEN, "out of memory");
        return -1;
    }
    r->n = n;
    r->compute = (cudaStream_t)compute_stream;
    r->wire = wire;
    r->max_buckets = max_buckets ? max_buckets : 1;
    r->stage_cap = max_elems;
    r->active = n->comm != NULL;
    if (r->active && reducer_init(r, err)) {
        dist_nccl_reducer_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

extern "C" void dist_nccl_reducer_free(dist_nccl_reducer *r)
{
    if (!r)
        return;
    if (r->active) {
        if (r->comm)
            cudaStreamSynchronize(r->comm);
        cudaFree(r->stage);
        if (r->ready)
            cudaEventDestroy(r->ready);
        if (r->done)
            cudaEventDestroy(r->done);
        if (r->comm)
            cudaStreamDestroy(r->comm);
    }
    free(r);
}

extern "C" int dist_nccl_reducer_start(dist_nccl_reducer *r, float *dev_buf, size_t n, char err[DIST_ERRLEN])
{
    if (!r->active || n == 0)
        return 0;
    if (r->started == r->max_buckets) {
        snprintf(err, DIST_ERRLEN, "dist_nccl_reducer_start: more than %zu buckets between waits", r->max_buckets);
        return -1;
    }
    if (r->wire == DIST_NCCL_WIRE_BF16 && n > r->stage_cap - r->stage_used) {
        snprintf(err, DIST_ERRLEN, "dist_nccl_reducer_start: %zu + %zu elements exceed the staging buffer (%zu)",
                 r->stage_used, n, r->stage_cap);
        return -1;
    }
    nccl_api *api = &r->n->api;
    CUDA_TRY(cudaEventRecord(r->ready, r->compute));
    CUDA_TRY(cudaStreamWaitEvent(r->comm, r->ready, 0));
    if (r->wire == DIST_NCCL_WIRE_BF16) {
        __nv_bfloat16 *s = r->stage + r->stage_used;
        to_bf16<<<grid_for(n), 256, 0, r->comm>>>(s, dev_buf, n);
        CUDA_TRY(cudaGetLastError());
        NCCL_TRY(api, AllReduce, (s, s, n, ncclBfloat16, ncclSum, r->n->comm, r->comm));
        from_bf16<<<grid_for(n), 256, 0, r->comm>>>(dev_buf, s, n);
        CUDA_TRY(cudaGetLastError());
        r->stage_used += n;
    } else {
        NCCL_TRY(api, AllReduce, (dev_buf, dev_buf, n, ncclFloat32, ncclSum, r->n->comm, r->comm));
    }
    r->started++;
    return 0;
}

// An asynchronous NCCL error ends the job (see the header): nothing to return.
static void check_async(dist_nccl_reducer *r)
{
    ncclResult_t ae = ncclSuccess;
    ncclResult_t e = r->n->api.CommGetAsyncError(r->n->comm, &ae);
    if (e != ncclSuccess || (ae != ncclSuccess && ae != ncclInProgress)) {
        char what[DIST_ERRLEN];
        snprintf(what, sizeof what, "ncclCommGetAsyncError: %s",
                 r->n->api.GetErrorString(e != ncclSuccess ? e : ae));
        fail_abort(r->n, what);
    }
}

extern "C" int dist_nccl_reducer_progress(dist_nccl_reducer *r, char err[DIST_ERRLEN])
{
    (void)err;
    if (r->active && r->started)
        check_async(r);
    return 0;
}

extern "C" int dist_nccl_reducer_wait(dist_nccl_reducer *r, double *wait_s, char err[DIST_ERRLEN])
{
    if (wait_s)
        *wait_s = 0;
    if (!r->active || r->started == 0)
        return 0;
    CUDA_TRY(cudaEventRecord(r->done, r->comm));
    double t0 = now_s(), deadline = t0 + r->n->timeout_s;
    for (long spins = 0;; spins++) {
        cudaError_t q = cudaEventQuery(r->done);
        if (q == cudaSuccess)
            break;
        if (q != cudaErrorNotReady) {
            char what[DIST_ERRLEN];
            snprintf(what, sizeof what, "cudaEventQuery on the reduction stream: %s", cudaGetErrorString(q));
            fail_abort(r->n, what);
        }
        check_async(r);
        double t = now_s();
        if (t > deadline) {
            char what[DIST_ERRLEN];
            snprintf(what, sizeof what,
                     "%zu bucket(s) not reduced after %.0f s (--comm-timeout): a peer rank is stuck or dead",
                     r->started, r->n->timeout_s);
            fail_abort(r->n, what);
        }
        if (t - t0 < 1e-3) {
            sched_yield(); // a short wait is the common case: stay responsive
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    // The host has seen it complete; the stream wait keeps the contract for work the
    // caller enqueued on the compute stream before calling wait.
    CUDA_TRY(cudaStreamWaitEvent(r->compute, r->done, 0));
    r->started = 0;
    r->stage_used = 0;
    if (wait_s)
        *wait_s = now_s() - t0;
    return 0;
}

// ------------------------------------------------------------------ self-test
// Delays the stream ~1 ms so that a reduction not ordered after the compute
// stream would read the buffer before it is filled.
static __global__ void spin(long long cycles)
{
    long long t0 = clock64();
    while (clock64() - t0 < cycles) {
    }
}

// Small integers: exact in bf16 (and every partial sum of up to 128 ranks too).
static __device__ __host__ float test_value(size_t i, int rank) { return (float)((int)((i + (size_t)rank) % 5) - 2); }

static __global__ void fill(float *x, size_t n, int rank)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = test_value(i, rank);
}

static int selftest_run(dist_nccl *n, dist_nccl_wire wire, cudaStream_t compute, float *d, float *h, size_t count,
                        double *ms, char err[DIST_ERRLEN])
{
    dist_comm *c = n->c;
    dist_nccl_reducer *r = NULL;
    if (dist_nccl_reducer_create(&r, n, compute, 2, count, wire, err))
        return -1;
    int rc = -1;
    double t0 = 0, wait_s = 0;
    size_t split = count / 2 + 1, bad = 0, first_bad = 0;
    double got_bad = 0, want_bad = 0;
    const char *name = wire == DIST_NCCL_WIRE_BF16 ? "bf16" : "fp32";
    spin<<<1, 1, 0, compute>>>(2000000);
    fill<<<grid_for(count), 256, 0, compute>>>(d, count, c->rank);
    if (cudaGetLastError() != cudaSuccess) {
        snprintf(err, DIST_ERRLEN, "self-test: fill kernel launch failed");
        goto out;
    }
    t0 = now_s();
    if (dist_nccl_reducer_start(r, d, split, err) || dist_nccl_reducer_start(r, d + split, count - split, err) ||
        dist_nccl_reducer_progress(r, err) || dist_nccl_reducer_wait(r, &wait_s, err))
        goto out;
    *ms = 1e3 * (now_s() - t0);
    if (cudaMemcpyAsync(h, d, count * sizeof *h, cudaMemcpyDeviceToHost, compute) != cudaSuccess ||
        cudaStreamSynchronize(compute) != cudaSuccess) {
        snprintf(err, DIST_ERRLEN, "self-test: cudaMemcpyAsync/cudaStreamSynchronize of the result failed");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        double want = 0;
        for (int k = 0; k < c->size; k++)
            want += test_value(i, k);
        // exact up to 128 ranks; beyond, bf16 partial sums may round
        double tol = wire == DIST_NCCL_WIRE_BF16 && c->size > 128 ? 1e-2 * 2 * c->size : 0;
        if (!(h[i] - want <= tol && want - h[i] <= tol)) {
            if (!bad++) {
                first_bad = i;
                got_bad = h[i];
                want_bad = want;
            }
        }
    }
    if (bad) {
        snprintf(err, DIST_ERRLEN, "self-test %s all-reduce: %zu of %zu elements wrong (first [%zu] = %g, want %g)",
                 name, bad, count, first_bad, got_bad, want_bad);
        goto out;
    }
    rc = 0;
out:
    dist_nccl_reducer_free(r);
    return rc;
}

extern "C" int dist_nccl_selftest(dist_comm *c, double timeout_s, char *report, size_t len, char err[DIST_ERRLEN])
{
    dist_nccl_opts o = {timeout_s, 1};
    dist_nccl *n = NULL;
    if (dist_nccl_create(&n, c, &o, err))
        return -1;
    const size_t count = ((size_t)1 << 20) + 3; // odd: exercises the kernels' tails
    float *d = NULL, *h = NULL;
    cudaStream_t compute = NULL;
    double ms32 = 0, ms16 = 0;
    int rc = -1;
    cudaError_t e;
    if ((e = cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMalloc((void **)&d, count * sizeof *d)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&h, count * sizeof *h)) != cudaSuccess) {
        snprintf(err, DIST_ERRLEN, "self-test: cudaStreamCreate/cudaMalloc/cudaMallocHost failed: %s",
                 cudaGetErrorString(e));
        goto out;
    }
    if (selftest_run(n, DIST_NCCL_WIRE_FP32, compute, d, h, count, &ms32, err) ||
        selftest_run(n, DIST_NCCL_WIRE_BF16, compute, d, h, count, &ms16, err))
        goto out;
    {
        char desc[256];
        snprintf(report, len, "%s: fp32 and bf16 all-reduce of %zu floats exact (%.2f ms fp32, %.2f ms bf16, "
                 "first call each, incl. a 2M-cycle ordering delay)",
                 dist_nccl_describe(n, desc, sizeof desc), count, ms32, ms16);
    }
    rc = 0;
out:
    cudaFree(d);
    cudaFreeHost(h);
    if (compute)
        cudaStreamDestroy(compute);
    dist_nccl_free(n);
    return rc;
}
