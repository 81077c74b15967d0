// CUDA backend of the nn interface (nn/backend.h): one stream, one cuBLAS handle,
// fp32 storage. The semantics of every op are those of nn/cpu/cpu_backend.c
// (what overwrites, what accumulates, which aliasing is allowed); the tests in
// tests/test_nn_cuda.c compare the two op by op and on the whole model.
//
// This file holds the state, the error handling, memory, the op table and
// create/destroy; the kernels and their launchers live one family per file
// (list in internal.cuh). What follows holds for all of them.
//
// Determinism: no floating-point atomics anywhere. Every reduction has a fixed
// shape that depends only on the problem size (never on timing or on the number
// of SMs): per-row reductions are one block per row with a fixed shuffle tree,
// per-column reductions give each column to one thread (or one fixed block
// shape), sumsq uses a fixed grid of partials then one block. cuBLAS is
// deterministic on one stream with a fixed user workspace and atomics disallowed
// (its documented reproducibility conditions), which is how the handle is set up.
//
// Errors: the vtable returns void, so the first failure of a CUDA call, a kernel
// launch or a cuBLAS call is recorded with the call's name (sticky; printed once
// to stderr) and every later op is skipped. ->download then fills its destination
// with 0xFF bytes (NaN floats) and ->sumsq returns NaN, so the model's loss and the
// optimizer's gradient norm go non-finite; nn_cuda_last_error gives the message.
// ADEBERT_CUDA_SYNC_CHECK=1 synchronises after every kernel so an asynchronous
// fault names the kernel that caused it.
//
// Math: compiled with -fmad=false (nn/CMakeLists.txt) so element-wise formulas
// round like the CPU's (no contraction into FMA); erff/expf/tanhf/exp/log are
// CUDA's (within 1-2 ulp of glibc's).
#include "nn/cuda/internal.cuh"

#define WORKSPACE_BYTES ((size_t)32 << 20) // cuBLAS workspace (the size NVIDIA suggests for Hopper)

// ------------------------------------------------------------------ errors

void nn_cu_fail(cu_state *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "adebert: cuda backend: %s\n", s->errmsg);
}

int nn_cu_ck_cuda(cu_state *s, cudaError_t e, const char *what, const char *fn, int line)
{
    if (e == cudaSuccess) return 0;
    nn_cu_fail(s, "%s failed in %s (line %d): %s: %s", what, fn, line, cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
}

int nn_cu_ck_blas(cu_state *s, cublasStatus_t e, const char *what, const char *fn, int line)
{
    if (e == CUBLAS_STATUS_SUCCESS) return 0;
    nn_cu_fail(s, "%s failed in %s (line %d): %s", what, fn, line, cublasGetStatusString(e));
    return 1;
}

int nn_cu_ck_launch(cu_state *s, const char *kernel, const char *fn, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        nn_cu_fail(s, "launch of kernel %s failed in %s (line %d): %s: %s", kernel, fn, line, cudaGetErrorName(e),
                   cudaGetErrorString(e));
        return 1;
    }
    if (s->sync_check) {
        e = cudaStreamSynchronize(s->stream);
        if (e != cudaSuccess) {
            nn_cu_fail(s, "kernel %s failed (found in %s, line %d): %s: %s", kernel, fn, line, cudaGetErrorName(e),
                       cudaGetErrorString(e));
            return 1;
        }
    }
    return 0;
}

// ------------------------------------------------------------------ memory

static void rec_add(cu_state *s, void *p, size_t bytes)
{
    if (s->nrec == s->caprec) {
        size_t cap = s->caprec ? 2 * s->caprec : 64;
        alloc_rec *r = (alloc_rec *)realloc(s->recs, cap * sizeof *r);
        if (!r) return; // bookkeeping only: the peak may then undercount
        s->recs = r;
        s->caprec = cap;
    }
    s->recs[s->nrec].p = p;
    s->recs[s->nrec].bytes = bytes;
    s->nrec++;
    s->cur_bytes += bytes;
    if (s->cur_bytes > s->peak_bytes) s->peak_bytes = s->cur_bytes;
}

static void rec_remove(cu_state *s, void *p)
{
    for (size_t i = s->nrec; i-- > 0;)
        if (s->recs[i].p == p) {
            s->cur_bytes -= s->recs[i].bytes;
            s->recs[i] = s->recs[--s->nrec];
            return;
        }
}

void *nn_cu_dev_malloc(cu_state *s, size_t bytes, const char *what)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        // out of memory is reported to the caller by NULL (the model names the
        // size); it is not sticky: nothing on the device went wrong
        (void)cudaGetLastError();
        if (e != cudaErrorMemoryAllocation)
            nn_cu_fail(s, "cudaMalloc(%zu bytes, %s) failed: %s: %s", bytes, what, cudaGetErrorName(e),
                       cudaGetErrorString(e));
        return NULL;
    }
    rec_add(s, p, bytes);
    return p;
}

void nn_cu_dev_free(cu_state *s, void *p)
{
    if (!p) return;
    rec_remove(s, p);
    CK(s, cudaFree(p));
}

int nn_cu_scratch(cu_state *s, void **p, size_t *have, size_t need, const char *what)
{
    if (need <= *have) return 0;
    if (*p) {
        if (CK(s, cudaStreamSynchronize(s->stream))) return 1;
        nn_cu_dev_free(s, *p);
        *p = NULL;
        *have = 0;
    }
    *p = nn_cu_dev_malloc(s, need, what);
    if (!*p) {
        nn_cu_fail(s, "cannot allocate %zu bytes of %s", need, what);
        return 1;
    }
    *have = need;
    return 0;
}

static void *cu_alloc(nn_backend *b, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed) return NULL;
    size_t sz = (bytes + 255) & ~(size_t)255;
    if (sz < bytes) return NULL;
    if (sz == 0) sz = 256;
    void *p = nn_cu_dev_malloc(s, sz, "alloc");
    if (!p) return NULL;
    if (CK(s, cudaMemsetAsync(p, 0, sz, s->stream))) return NULL;
    return p;
}

static void cu_free(nn_backend *b, void *p)
{
    cu_state *s = ST(b);
    if (!p) return;
    // kernels on our stream may still use p: wait (errors here are not new information)
    if (!s->failed) CK(s, cudaStreamSynchronize(s->stream));
    rec_remove(s, p);
    cudaError_t e = cudaFree(p);
    if (!s->failed) nn_cu_ck_cuda(s, e, "cudaFree", __func__, __LINE__);
}

static void cu_upload(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes) return;
    CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream));
}

// reads the kernels' error flags (called where we synchronise anyway)
void nn_cu_check_flags(cu_state *s)
{
    unsigned f = 0;
    if (s->failed) return;
    if (CK(s, cudaMemcpyAsync(&f, s->flags, sizeof f, cudaMemcpyDeviceToHost, s->stream))) return;
    if (CK(s, cudaStreamSynchronize(s->stream))) return;
    if (f & FLAG_ATT_LEN)
        nn_cu_fail(s, "attention: a sequence is longer than nn_attn_desc.max_len (or offsets decrease); its "
                   "attention was not computed");
}

static void cu_sync(nn_backend *b)
{
    cu_state *s = ST(b);
    if (s->failed) return;
    if (CK(s, cudaStreamSynchronize(s->stream))) return;
    nn_cu_check_flags(s);
}

static void cu_download(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (!bytes) return;
    if (!s->failed) {
        CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream));
        if (!s->failed) CK(s, cudaStreamSynchronize(s->stream));
        if (!s->failed) nn_cu_check_flags(s);
    }
    if (s->failed) memset(dst, 0xFF, bytes); // NaN floats: a failed backend never yields plausible numbers
}

static void cu_copy(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes || dst == src) return;
    CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s->stream));
}

static void cu_zero(nn_backend *b, void *dst, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes) return;
    CK(s, cudaMemsetAsync(dst, 0, bytes, s->stream));
}

// ------------------------------------------------------------------ lifetime

static void cu_release(cu_state *s)
{
    if (!s) return;
    if (s->stream) (void)cudaStreamSynchronize(s->stream);
    if (s->blas) (void)cublasDestroy(s->blas);
    if (s->workspace) (void)cudaFree(s->workspace);
    if (s->red) (void)cudaFree(s->red);
    if (s->flags) (void)cudaFree(s->flags);
    if (s->att_scratch) (void)cudaFree(s->att_scratch);
    if (s->lowp) (void)cudaFree(s->lowp);
    if (s->stream) (void)cudaStreamDestroy(s->stream);
    (void)cudaGetLastError();
    free(s->recs);
    free(s);
}

static void cu_destroy(nn_backend *b)
{
    if (!b) return;
    cu_release(ST(b));
    free(b);
}

// Fields by name (C++20 designated initialisers, in nn_backend_ops order): ops
// of the same signature (add/mul, gelu_fwd/tanh_fwd, ...) cannot be swapped.
static const nn_backend_ops CUDA_OPS = {
    .name = "cuda",
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .zero = cu_zero,
    .sync = cu_sync,
    .gemm = nn_cu_gemm,
    .bias_add = nn_cu_bias_add,
    .bias_grad_acc = nn_cu_bias_grad_acc,
    .add = nn_cu_add,
    .embed_fwd = nn_cu_embed_fwd,
    .embed_bwd_acc = nn_cu_embed_bwd_acc,
    .layernorm_fwd = nn_cu_layernorm_fwd,
    .layernorm_bwd = nn_cu_layernorm_bwd,
    .gelu_fwd = nn_cu_gelu_fwd,
    .gelu_bwd = nn_cu_gelu_bwd,
    .gelu_fwd_deriv = nn_cu_gelu_fwd_deriv,
    .mul = nn_cu_mul,
    .tanh_fwd = nn_cu_tanh_fwd,
    .tanh_bwd = nn_cu_tanh_bwd,
    .dropout = nn_cu_dropout,
    .gather_rows = nn_cu_gather_rows,
    .scatter_rows_acc = nn_cu_scatter_rows_acc,
    .attention_fwd = nn_cu_attention_fwd,
    .attention_bwd = nn_cu_attention_bwd,
    .xent = nn_cu_xent,
    .sumsq = nn_cu_sumsq,
    .scale = nn_cu_scale,
    .adamw = nn_cu_adamw,
    .destroy = cu_destroy,
};

static int is_cuda(const nn_backend *b) { return b && b->ops == &CUDA_OPS && b->impl; }

extern "C" const char *nn_cuda_last_error(const nn_backend *b)
{
    if (!is_cuda(b)) return NULL;
    const cu_state *s = (const cu_state *)b->impl;
    return s->failed ? s->errmsg : NULL;
}

extern "C" size_t nn_cuda_peak_bytes(const nn_backend *b)
{
    return is_cuda(b) ? ((const cu_state *)b->impl)->peak_bytes : 0;
}

extern "C" const char *nn_cuda_device_name(const nn_backend *b)
{
    return is_cuda(b) ? ((const cu_state *)b->impl)->devname : "";
}

extern "C" void *nn_cuda_stream(const nn_backend *b)
{
    return is_cuda(b) ? (void *)((const cu_state *)b->impl)->stream : NULL;
}

// create-time checks fill err and fail
#define CREATE_CK(call)                                                                                          \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess) {                                                                                 \
            snprintf(err, errlen, "cuda backend: %s failed: %s: %s", #call, cudaGetErrorName(e_),                \
                     cudaGetErrorString(e_));                                                                    \
            (void)cudaGetLastError();                                                                            \
            cu_release(s);                                                                                       \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

#define CREATE_CKB(call)                                                                                         \
    do {                                                                                                         \
        cublasStatus_t e_ = (call);                                                                              \
        if (e_ != CUBLAS_STATUS_SUCCESS) {                                                                       \
            snprintf(err, errlen, "cuda backend: %s failed: %s", #call, cublasGetStatusString(e_));              \
            cu_release(s);                                                                                       \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

extern "C" int nn_backend_cuda_create(nn_backend **out, int device, nn_precision prec, char *err, size_t errlen)
{
    *out = NULL;
    const char *pname = nn_precision_name(prec);
    if (!pname) {
        snprintf(err, errlen, "cuda backend: invalid precision %d", (int)prec);
        return 1;
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        snprintf(err, errlen, "cuda backend: no CUDA device: %s",
                 e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 1;
    }
    if (device < 0 || device >= ndev) {
        snprintf(err, errlen, "cuda backend: device %d does not exist (%d visible)", device, ndev);
        return 1;
    }
    cu_state *s = (cu_state *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "cuda backend: out of memory");
        return 1;
    }
    s->device = device;
    s->prec = prec;
    const char *sc = getenv("ADEBERT_CUDA_SYNC_CHECK");
    s->sync_check = sc && *sc && strcmp(sc, "0") != 0;
    CREATE_CK(cudaSetDevice(device));
    cudaDeviceProp prop;
    CREATE_CK(cudaGetDeviceProperties(&prop, device));
    s->sm_major = prop.major;
    s->sm_minor = prop.minor;
    snprintf(s->devname, sizeof s->devname, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    if ((prec == NN_PREC_BF16 || prec == NN_PREC_TF32) && prop.major < 8) {
        snprintf(err, errlen, "cuda backend: precision %s needs compute capability 8.0 or newer; device %d (%s) is "
                              "sm_%d%d (use fp16 or fp32)",
                 pname, device, prop.name, prop.major, prop.minor);
        cu_release(s);
        return 1;
    }
    switch (prec) {
    case NN_PREC_FP32: s->ctype = CUBLAS_COMPUTE_32F; break;
    case NN_PREC_TF32: s->ctype = CUBLAS_COMPUTE_32F_FAST_TF32; break;
    // BF16/FP16: the inputs are rounded by our own kernel and multiplied as 16-bit
    // matrices with fp32 accumulation (gemm.cu). Not CUBLAS_COMPUTE_32F_FAST_16BF:
    // that only *allows* bf16; on an H200 with cuBLAS 13 a 96x80x512 product came
    // back TF32-rounded (bench/results/gpu-2026-12-04).
    case NN_PREC_BF16:
    case NN_PREC_FP16: s->ctype = CUBLAS_COMPUTE_32F; break;
    }
    CREATE_CK(cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    CREATE_CK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CREATE_CKB(cublasCreate(&s->blas));
    CREATE_CKB(cublasSetStream(s->blas, s->stream)); // before the workspace: setting a stream resets it
    // FP32: no tensor-core down-conversion (CUBLAS_COMPUTE_32F already forbids it;
    // the math mode says so too). Other precisions: the compute type decides.
    CREATE_CKB(cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH));
    CREATE_CKB(cublasSetAtomicsMode(s->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    CREATE_CKB(cublasSetPointerMode(s->blas, CUBLAS_POINTER_MODE_HOST));
    CREATE_CK(cudaMalloc(&s->workspace, WORKSPACE_BYTES));
    rec_add(s, s->workspace, WORKSPACE_BYTES);
    CREATE_CKB(cublasSetWorkspace(s->blas, s->workspace, WORKSPACE_BYTES));
    CREATE_CK(cudaMalloc((void **)&s->red, (SUMSQ_BLOCKS + 1) * sizeof(double)));
    rec_add(s, s->red, (SUMSQ_BLOCKS + 1) * sizeof(double));
    CREATE_CK(cudaMalloc((void **)&s->flags, sizeof(unsigned)));
    rec_add(s, s->flags, sizeof(unsigned));
    CREATE_CK(cudaMemsetAsync(s->flags, 0, sizeof(unsigned), s->stream));
    CREATE_CK(nn_cu_attention_setup(&s->smem_optin));
    CREATE_CK(cudaStreamSynchronize(s->stream));
    nn_backend *b = (nn_backend *)calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "cuda backend: out of memory");
        cu_release(s);
        return 1;
    }
    b->ops = &CUDA_OPS;
    b->impl = s;
    *out = b;
    return 0;
}
