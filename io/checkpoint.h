/* io/checkpoint: the HDF5 checkpoint file (DESIGN.md "Checkpoint (HDF5), versioned").
 * Only built with ADEBERT_HDF5=ON (then ADEBERT_HAVE_HDF5 is defined); HDF5 is used
 * inside checkpoint.c only, this header does not need hdf5.h.
 *
 * Layout (format version CKPT_FORMAT_VERSION):
 *   /model/<HF name>           fp32, the tensor's shape         \  chunked (~1 MiB),
 *   /optim/m/<HF name>         AdamW first moment (optional)     | Fletcher32; each has a
 *   /optim/v/<HF name>         AdamW second moment (optional)   /  uint64 attribute `xxh64`
 *   /tokenizer/vocab           1-D fixed-length UTF-8 strings (NUL-padded to the
 *                              longest token, <= 1024 bytes), token id = index; chunked,
 *                              Fletcher32 (not variable-length: HDF5 filters cannot
 *                              cover the global heap, and a damaged heap crashes 1.10)
 *   /state/metrics             1-D uint8: the bytes of metrics.jsonl (exact)
 *   /state attributes          format_version, adebert_version, epoch, step,
 *                              batch_in_epoch, seed, rng_counters[4], loss_scale,
 *                              good_steps, lowercase, has_optim, n_tensors, n_floats,
 *                              vocab_size, metrics_bytes (the two datasets' lengths),
 *                              config_json, data_json (strings < CKPT_ATTR_MAX bytes),
 *                              and checksums: model_xxh64, optim_m_xxh64, optim_v_xxh64,
 *                              vocab_xxh64, metrics_xxh64, state_xxh64
 * With h5py: f['/model/bert.pooler.dense.weight'][()], f['/state'].attrs['step'],
 * [t.decode() for t in f['/tokenizer/vocab'][()]], f['/state/metrics'][()].tobytes().
 * Tokens cannot contain NUL bytes (read back up to the first NUL).
 *
 * Checksums (Fletcher32 covers chunk data only, not metadata): XXH64 (seed 0) of each
 * tensor's bytes (little-endian fp32) is the dataset's `xxh64`; a buffer checksum
 * (model_xxh64, ...) is XXH64 over the per-tensor values (8 bytes LE each) taken in
 * strcmp order of the names, so it does not depend on the order of the table.
 * state_xxh64 covers every scalar and string attribute of /state.
 *
 * The reader trusts nothing it has not checked: dataset types, shapes and storage
 * layout (chunked, Fletcher32 only, chunk within the extent) are validated before
 * HDF5 reads data (HDF5 1.10 can crash on a damaged layout message), and sizes against
 * the /state attributes before anything is allocated.
 *
 * Errors follow io.h: 0 on success, non-zero with one line in err naming the file.
 * HDF5's own error printing is silenced during each call (and restored after); its
 * innermost message is appended to ours instead. Not thread-safe (serial HDF5). */
#ifndef ADEBERT_IO_CHECKPOINT_H
#define ADEBERT_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

#define CKPT_FORMAT_VERSION 1
#define CKPT_MAX_DIMS 4
#define CKPT_RNG_WORDS 4
/* String attributes (config_json, data_json, adebert_version) must be shorter than
 * this: HDF5's default object header format caps one attribute message at 64 KiB,
 * header included. */
#define CKPT_ATTR_MAX (63 * 1024)
/* Tensor names: HF names, no '/', not empty, shorter than this. */
#define CKPT_NAME_MAX 256

/* One named tensor of a flat fp32 buffer (the checkpoint view of nn_param:
 * copy name/offset/numel/ndim/shape). */
typedef struct {
    const char *name;
    size_t offset, numel; /* in floats; numel must equal the product of shape */
    int ndim;             /* 1..CKPT_MAX_DIMS */
    int64_t shape[CKPT_MAX_DIMS];
} ckpt_tensor;

/* Everything but the tensors. Written from; read into (then the strings and arrays
 * are malloc'd and owned: ckpt_state_free). */
typedef struct {
    int format_version;         /* read back; the writer always writes CKPT_FORMAT_VERSION */
    const char *adebert_version;
    int64_t epoch;              /* training loop's epoch counter */
    int64_t step;               /* optimizer steps done */
    int64_t batch_in_epoch;     /* data position: global batches done in `epoch` */
    uint64_t seed;              /* run seed */
    uint64_t rng_counters[CKPT_RNG_WORDS]; /* caller-defined generator counters */
    double loss_scale;          /* fp16 dynamic loss scale (1 when unused) */
    int64_t good_steps;         /* its good-step counter */
    int lowercase;              /* tokenizer casing: 1 lowercase, 0 cased */
    const char *config_json;    /* resolved config (model + training), < CKPT_ATTR_MAX */
    const char *data_json;      /* data settings: view, split, seed, val_fraction,
                                   casing, max_seq_len; < CKPT_ATTR_MAX */
    size_t vocab_n;
    const char *const *vocab;   /* vocab_n tokens (may be 0 / NULL) */
    const char *metrics;        /* metrics.jsonl text (may be NULL when metrics_len 0) */
    size_t metrics_len;
    /* read back only (ignored by the writer): */
    int has_optim;              /* /optim/m and /optim/v present */
    size_t n_tensors;           /* datasets in /model */
    uint64_t n_floats;          /* floats in /model */
    void *owned_;               /* private */
} ckpt_state;

/* Write a checkpoint atomically: PATH.tmp in the same directory (created 0600,
 * replacing a stale one), H5Fflush, H5Fclose, fsync, rename to PATH, fsync the
 * directory. On any failure PATH.tmp is removed and an existing PATH is untouched.
 * `model` holds the flat buffer the table indexes; `m` and `v` (AdamW moments, same
 * layout) are both given or both NULL (a checkpoint without optimizer state). */
int ckpt_write(const char *path, const ckpt_tensor *table, size_t n, const float *model,
               const float *m, const float *v, const ckpt_state *st, char err[IO_ERRLEN]);

/* Load the tensors of `table` into the flat buffers. The file must hold exactly the
 * table's tensors under /model with the same shapes (otherwise: missing tensor, shape
 * mismatch or tensor count error, "a different model config?"), pass Fletcher32 and
 * every checksum, and have a known format version. m and v may be NULL (optimizer
 * state not wanted); when given, the file must have it. `st` (may be NULL) receives
 * the state as ckpt_read_state does. On failure the table's ranges of the given
 * buffers are zeroed and *st is freed. */
int ckpt_read(const char *path, const ckpt_tensor *table, size_t n, float *model, float *m, float *v,
              ckpt_state *st, char err[IO_ERRLEN]);

/* The state only (scalars, strings, vocab, metrics; verified against their checksums),
 * e.g. to build the model from config_json before ckpt_read. */
int ckpt_read_state(const char *path, ckpt_state *st, char err[IO_ERRLEN]);
void ckpt_state_free(ckpt_state *st);

/* Verify without a parameter table or the caller's buffers (for --resume picking the
 * newest good checkpoint). full = 0: opens (a truncated file fails here), checks the
 * format version, the state and its checksums, and that every tensor has its
 * dataset-level checksum; no tensor data is read. full = 1: also reads every tensor
 * (one scratch buffer of the largest tensor), so Fletcher32 and all tensor checksums
 * are checked: as thorough as ckpt_read, at about its cost in I/O. */
int ckpt_verify(const char *path, int full, char err[IO_ERRLEN]);

/* XXH64 (the reference algorithm, seed as given) of len bytes. */
uint64_t ckpt_xxh64(const void *data, size_t len, uint64_t seed);

/* The buffer checksum ckpt_write stores as model_xxh64 etc. for `buf` under `table`. */
int ckpt_buffer_checksum(const ckpt_tensor *table, size_t n, const float *buf, uint64_t *out,
                         char err[IO_ERRLEN]);

#endif
