/* The HDF5 checkpoint file: see io/checkpoint.h for the layout and contract. */
#include "io/checkpoint.h"
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint checksums are defined over little-endian fp32 bytes"
#endif

/* ------------------------------------------------------------------ XXH64 */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t xround(uint64_t acc, uint64_t in) { acc += in * P2; acc = rotl64(acc, 31); return acc * P1; }
static uint64_t xmerge(uint64_t acc, uint64_t v) { acc ^= xround(0, v); return acc * P1 + P4; }

uint64_t ckpt_xxh64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char *lim = end - 32;
        do {
            v1 = xround(v1, rd64(p)); v2 = xround(v2, rd64(p + 8));
            v3 = xround(v3, rd64(p + 16)); v4 = xround(v4, rd64(p + 24));
            p += 32;
        } while (p <= lim);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xmerge(h, v1); h = xmerge(h, v2); h = xmerge(h, v3); h = xmerge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) { h ^= xround(0, rd64(p)); h = rotl64(h, 27) * P1 + P4; p += 8; }
    if (end - p >= 4) { h ^= (uint64_t)rd32(p) * P1; h = rotl64(h, 23) * P2 + P3; p += 4; }
    while (p < end) { h ^= (uint64_t)(*p) * P5; h = rotl64(h, 11) * P1; p++; }
    h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
    return h;
}

/* Buffer checksum: XXH64 over the per-tensor hashes in strcmp order of the names. */
typedef struct {
    const char *name;
    uint64_t h;
} named_hash;

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named_hash *)a)->name, ((const named_hash *)b)->name);
}

static uint64_t combine(named_hash *nh, size_t n)
{
    qsort(nh, n, sizeof *nh, cmp_named);
    unsigned char *buf = malloc(n ? n * 8 : 1);
    if (!buf) return 0; /* callers treat 0 as "cannot verify" via the OOM path below */
    for (size_t i = 0; i < n; i++) memcpy(buf + 8 * i, &nh[i].h, 8);
    uint64_t h = ckpt_xxh64(buf, n * 8, 0);
    free(buf);
    return h;
}

static int check_name(const char *name)
{
    if (!name || !name[0] || strlen(name) >= CKPT_NAME_MAX || strchr(name, '/')) return 0;
    if (!strcmp(name, ".") || !strcmp(name, "..")) return 0;
    return 1;
}

static int check_table(const char *path, const ckpt_tensor *table, size_t n, char err[IO_ERRLEN])
{
    if (n && !table) return io_fail(err, "%s: no tensor table", path);
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t = &table[i];
        if (!check_name(t->name))
            return io_fail(err, "%s: tensor %zu: invalid name (empty, '/', or >= %d bytes)", path, i,
                           CKPT_NAME_MAX);
        if (t->ndim < 1 || t->ndim > CKPT_MAX_DIMS)
            return io_fail(err, "%s: tensor %s: ndim %d not in 1..%d", path, t->name, t->ndim, CKPT_MAX_DIMS);
        uint64_t prod = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] <= 0 || (uint64_t)t->shape[d] > (UINT64_C(1) << 40) / prod)
                return io_fail(err, "%s: tensor %s: bad shape", path, t->name);
            prod *= (uint64_t)t->shape[d];
        }
        if (prod != t->numel) return io_fail(err, "%s: tensor %s: numel %zu != product of shape", path, t->name, t->numel);
        if (t->offset > SIZE_MAX / 4 - t->numel) return io_fail(err, "%s: tensor %s: offset overflows", path, t->name);
    }
    return 0;
}

int ckpt_buffer_checksum(const ckpt_tensor *table, size_t n, const float *buf, uint64_t *out, char err[IO_ERRLEN])
{
    if (check_table("checksum", table, n, err)) return -1;
    named_hash *nh = malloc((n ? n : 1) * sizeof *nh);
    if (!nh) return io_fail(err, "checksum: out of memory");
    for (size_t i = 0; i < n; i++) {
        nh[i].name = table[i].name;
        nh[i].h = ckpt_xxh64(buf + table[i].offset, table[i].numel * sizeof(float), 0);
    }
    *out = combine(nh, n);
    free(nh);
    return 0;
}

/* ---------------------------------------------------------- HDF5 plumbing */

typedef struct {
    H5E_auto2_t func;
    void *data;
} quiet;

static void quiet_begin(quiet *q)
{
    /* No HDF5 cleanup at exit: a file whose close failed (a write that hit a full
     * disk or a file-size limit) stays in HDF5's id table, and closing it again from
     * the library's atexit handler crashes (HDF5 1.10). Every file adebert opens is
     * closed explicitly; the process's exit releases the rest. Effective only before
     * the library's first use: later calls fail harmlessly. */
    H5dont_atexit();
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5Eclear2(H5E_DEFAULT);
}

static void quiet_end(quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t walk_first(unsigned n, const H5E_error2_t *e, void *data)
{
    char *buf = data;
    if (n == 0 && e->desc) {
        /* one line: HDF5's descriptions can hold newlines (e.g. a failed write's) */
        snprintf(buf, 160, "%s", e->desc);
        for (char *c = buf; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    return 0;
}

/* Formats err, appending HDF5's innermost message when its stack holds one. */
static int h5fail(char err[IO_ERRLEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int h5fail(char err[IO_ERRLEN], const char *fmt, ...)
{
    char msg[IO_ERRLEN], h5[160] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (H5Eget_num(H5E_DEFAULT) > 0) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, h5);
    H5Eclear2(H5E_DEFAULT);
    if (h5[0]) return io_fail(err, "%s (HDF5: %s)", msg, h5);
    return io_fail(err, "%s", msg);
}

static hid_t make_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* Closing the file closes whatever an error path left open. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    /* Lock when the file system can; do not fail where it cannot (some Lustre mounts). */
    H5Pset_file_locking(fapl, 1, 1);
#endif
    return fapl;
}

/* --------------------------------------------------------------- writing */

static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, size_t n, const void *val)
{
    hsize_t dim = n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, mtype, val) < 0;
    if (a >= 0 && H5Aclose(a) < 0) rc = 1;
    H5Sclose(sp);
    return rc ? -1 : 0;
}

static int attr_i64(hid_t o, const char *name, int64_t v) { return attr_write(o, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &v); }
static int attr_u64(hid_t o, const char *name, uint64_t v) { return attr_write(o, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &v); }
static int attr_f64(hid_t o, const char *name, double v) { return attr_write(o, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &v); }

static int attr_str(hid_t o, const char *name, const char *s)
{
    size_t len = strlen(s);
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    int rc = H5Tset_size(t, len + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
             H5Tset_cset(t, H5T_CSET_UTF8) < 0 || attr_write(o, name, t, t, 1, s) < 0;
    H5Tclose(t);
    return rc ? -1 : 0;
}

/* Chunks of at most CHUNK_ELEMS elements, split from the last dimension back; a split
 * dimension is cut into equal parts so the edge chunk (stored full size) wastes
 * little (3072 rows in chunks of 341 would waste 11%, in 10 chunks of 308: 0.3%). */
#define CHUNK_ELEMS ((hsize_t)1 << 18)
static void chunk_dims(int ndim, const hsize_t *dims, hsize_t *chunk)
{
    hsize_t budget = CHUNK_ELEMS;
    for (int d = ndim - 1; d >= 0; d--) {
        hsize_t b = budget ? budget : 1;
        chunk[d] = dims[d] < b ? dims[d] : b;
        if (chunk[d] < dims[d]) {
            hsize_t parts = (dims[d] + chunk[d] - 1) / chunk[d];
            chunk[d] = (dims[d] + parts - 1) / parts;
        }
        budget = budget / chunk[d];
    }
}

static hid_t make_dcpl(int ndim, const hsize_t *dims, int fletcher)
{
    hsize_t chunk[CKPT_MAX_DIMS];
    chunk_dims(ndim, dims, chunk);
    for (int d = 0; d < ndim; d++)
        if (chunk[d] == 0) chunk[d] = 1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return -1;
    if (H5Pset_chunk(dcpl, ndim, chunk) < 0 || (fletcher && H5Pset_fletcher32(dcpl) < 0)) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

static int write_tensors(const char *path, hid_t grp, const char *gname, const ckpt_tensor *table, size_t n,
                         const float *buf, uint64_t *combined, char err[IO_ERRLEN])
{
    named_hash *nh = malloc((n ? n : 1) * sizeof *nh);
    if (!nh) return io_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t = &table[i];
        hsize_t dims[CKPT_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
        const float *src = buf + t->offset;
        uint64_t h = ckpt_xxh64(src, t->numel * sizeof(float), 0);
        nh[i].name = t->name;
        nh[i].h = h;
        hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
        hid_t dcpl = make_dcpl(t->ndim, dims, 1);
        hid_t ds = (sp < 0 || dcpl < 0) ? -1 : H5Dcreate2(grp, t->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        int bad = ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, src) < 0 ||
                  attr_u64(ds, "xxh64", h) < 0;
        if (bad) h5fail(err, "%s: cannot write %s/%s", path, gname, t->name); /* before closes clear the stack */
        /* H5Dclose writes the chunks still in the chunk cache: its failure is a failed write */
        if (ds >= 0 && H5Dclose(ds) < 0 && !bad) {
            bad = 1;
            h5fail(err, "%s: cannot write %s/%s (closing the dataset)", path, gname, t->name);
        }
        if (dcpl >= 0) H5Pclose(dcpl);
        if (sp >= 0) H5Sclose(sp);
        if (bad) {
            free(nh);
            return -1;
        }
    }
    *combined = combine(nh, n);
    free(nh);
    return 0;
}

static uint64_t vocab_hash(const char *const *vocab, size_t n)
{
    /* XXH64 over (u64 LE length, bytes) per token. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += 8 + strlen(vocab[i]);
    unsigned char *b = malloc(total ? total : 1);
    if (!b) return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t l = strlen(vocab[i]);
        memcpy(b + o, &l, 8);
        memcpy(b + o + 8, vocab[i], l);
        o += 8 + l;
    }
    uint64_t h = ckpt_xxh64(b, total, 0);
    free(b);
    return h;
}

typedef struct {
    uint64_t model, m, v, vocab, metrics;
} sums;

/* state_xxh64: every scalar, string and checksum attribute of /state, fixed order. */
static uint64_t state_hash(const ckpt_state *st, const sums *s, int has_optim, uint64_t n_tensors, uint64_t n_floats)
{
    const char *strs[3] = {st->adebert_version ? st->adebert_version : "", st->config_json ? st->config_json : "",
                           st->data_json ? st->data_json : ""};
    size_t cap = 256;
    for (int i = 0; i < 3; i++) cap += 8 + strlen(strs[i]);
    unsigned char *b = malloc(cap);
    if (!b) return 0;
    size_t o = 0;
#define PUT(x) do { uint64_t v_ = (uint64_t)(x); memcpy(b + o, &v_, 8); o += 8; } while (0)
    PUT((int64_t)CKPT_FORMAT_VERSION);
    PUT(st->epoch); PUT(st->step); PUT(st->batch_in_epoch); PUT(st->seed);
    for (int i = 0; i < CKPT_RNG_WORDS; i++) PUT(st->rng_counters[i]);
    uint64_t ls;
    memcpy(&ls, &st->loss_scale, 8);
    PUT(ls);
    PUT(st->good_steps); PUT((int64_t)st->lowercase); PUT((int64_t)has_optim); PUT(n_tensors); PUT(n_floats);
    PUT(s->model); PUT(s->m); PUT(s->v); PUT(s->vocab); PUT(s->metrics);
    PUT(st->vocab_n); PUT(st->metrics_len);
#undef PUT
    for (int i = 0; i < 3; i++) {
        uint64_t l = strlen(strs[i]);
        memcpy(b + o, &l, 8);
        memcpy(b + o + 8, strs[i], l);
        o += 8 + l;
    }
    uint64_t h = ckpt_xxh64(b, o, 0);
    free(b);
    return h;
}

/* Fixed-length strings (NUL-padded to the longest token), so that Fletcher32 covers
 * them: variable-length strings live in HDF5's global heap, which no filter covers
 * and whose damage crashes HDF5 1.10's reader. */
#define VOCAB_MAX_TOKEN 1024
static int write_vocab(const char *path, hid_t fid, const ckpt_state *st, char err[IO_ERRLEN])
{
    size_t w = 1;
    for (size_t i = 0; i < st->vocab_n; i++) {
        size_t l = strlen(st->vocab[i]);
        if (l > VOCAB_MAX_TOKEN) return io_fail(err, "%s: vocab token %zu is over %d bytes", path, i, VOCAB_MAX_TOKEN);
        if (l > w) w = l;
    }
    char *buf = calloc(st->vocab_n ? st->vocab_n : 1, w);
    if (!buf) return io_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < st->vocab_n; i++) memcpy(buf + i * w, st->vocab[i], strlen(st->vocab[i]));
    hid_t g = H5Gcreate2(fid, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    hsize_t dim = st->vocab_n, maxdim = H5S_UNLIMITED, per = ((hsize_t)1 << 20) / w;
    hsize_t chunk = dim < 1 ? 1 : dim < per ? dim : per;
    hid_t sp = H5Screate_simple(1, &dim, &maxdim);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int bad = g < 0 || t < 0 || sp < 0 || dcpl < 0 || H5Tset_size(t, w) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
              H5Tset_cset(t, H5T_CSET_UTF8) < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 || H5Pset_fletcher32(dcpl) < 0;
    hid_t ds = bad ? -1 : H5Dcreate2(g, "vocab", t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    bad = bad || ds < 0 || (st->vocab_n && H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0);
    if (bad) h5fail(err, "%s: cannot write /tokenizer/vocab", path);
    if (ds >= 0 && H5Dclose(ds) < 0 && !bad) bad = h5fail(err, "%s: cannot write /tokenizer/vocab (closing it)", path) != 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (g >= 0 && H5Gclose(g) < 0 && !bad) bad = h5fail(err, "%s: cannot write /tokenizer (closing it)", path) != 0;
    free(buf);
    return bad ? -1 : 0;
}

static int write_metrics(const char *path, hid_t grp, const ckpt_state *st, char err[IO_ERRLEN])
{
    hsize_t dim = st->metrics_len, maxdim = H5S_UNLIMITED;
    hsize_t chunk = dim < 1 ? 1 : dim < ((hsize_t)1 << 20) ? dim : ((hsize_t)1 << 20);
    hid_t sp = H5Screate_simple(1, &dim, &maxdim);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int bad = sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 || H5Pset_fletcher32(dcpl) < 0;
    hid_t ds = bad ? -1 : H5Dcreate2(grp, "metrics", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    bad = bad || ds < 0 ||
          (st->metrics_len && H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, st->metrics) < 0);
    if (bad) h5fail(err, "%s: cannot write /state/metrics", path);
    if (ds >= 0 && H5Dclose(ds) < 0 && !bad) bad = h5fail(err, "%s: cannot write /state/metrics (closing it)", path) != 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return bad ? -1 : 0;
}

static int write_state(const char *path, hid_t grp, const ckpt_state *st, const sums *s, int has_optim,
                       uint64_t n_tensors, uint64_t n_floats, char err[IO_ERRLEN])
{
    int bad = attr_i64(grp, "format_version", CKPT_FORMAT_VERSION) ||
              attr_str(grp, "adebert_version", st->adebert_version ? st->adebert_version : "") ||
              attr_i64(grp, "epoch", st->epoch) || attr_i64(grp, "step", st->step) ||
              attr_i64(grp, "batch_in_epoch", st->batch_in_epoch) || attr_u64(grp, "seed", st->seed) ||
              attr_write(grp, "rng_counters", H5T_STD_U64LE, H5T_NATIVE_UINT64, CKPT_RNG_WORDS, st->rng_counters) ||
              attr_f64(grp, "loss_scale", st->loss_scale) || attr_i64(grp, "good_steps", st->good_steps) ||
              attr_i64(grp, "lowercase", st->lowercase ? 1 : 0) || attr_i64(grp, "has_optim", has_optim) ||
              attr_u64(grp, "n_tensors", n_tensors) || attr_u64(grp, "n_floats", n_floats) ||
              attr_str(grp, "config_json", st->config_json ? st->config_json : "") ||
              attr_str(grp, "data_json", st->data_json ? st->data_json : "") ||
              attr_u64(grp, "model_xxh64", s->model) || attr_u64(grp, "optim_m_xxh64", s->m) ||
              attr_u64(grp, "optim_v_xxh64", s->v) || attr_u64(grp, "vocab_xxh64", s->vocab) ||
              attr_u64(grp, "metrics_xxh64", s->metrics) || attr_u64(grp, "vocab_size", st->vocab_n) ||
              attr_u64(grp, "metrics_bytes", st->metrics_len) ||
              attr_u64(grp, "state_xxh64", state_hash(st, s, has_optim, n_tensors, n_floats));
    return bad ? h5fail(err, "%s: cannot write the /state attributes", path) : 0;
}

static int fsync_path(const char *p, int dir)
{
    int fd = open(p, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ckpt_write(const char *path, const ckpt_tensor *table, size_t n, const float *model, const float *m,
               const float *v, const ckpt_state *st, char err[IO_ERRLEN])
{
    if (!path || !path[0]) return io_fail(err, "checkpoint: no path");
    if (!st) return io_fail(err, "%s: no state", path);
    if (!model && n) return io_fail(err, "%s: no model buffer", path);
    if ((m == NULL) != (v == NULL)) return io_fail(err, "%s: give both optimizer moments or neither", path);
    if (check_table(path, table, n, err)) return -1;
    const char *strs[3] = {st->adebert_version, st->config_json, st->data_json};
    const char *snames[3] = {"adebert_version", "config_json", "data_json"};
    for (int i = 0; i < 3; i++)
        if (strs[i] && strlen(strs[i]) >= CKPT_ATTR_MAX)
            return io_fail(err, "%s: %s is %zu bytes; attributes must stay under %d (put it in a dataset)", path,
                           snames[i], strlen(strs[i]), CKPT_ATTR_MAX);
    if (st->vocab_n && !st->vocab) return io_fail(err, "%s: vocab_n %zu but no vocab", path, st->vocab_n);
    for (size_t i = 0; i < st->vocab_n; i++)
        if (!st->vocab[i]) return io_fail(err, "%s: vocab token %zu is NULL", path, i);
    if (st->metrics_len && !st->metrics) return io_fail(err, "%s: metrics_len but no metrics", path);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return io_fail(err, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    char *dir = strdup(path);
    if (!dir) { free(tmp); return io_fail(err, "%s: out of memory", path); }
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';

    /* A stale PATH.tmp (a crash mid-save) is replaced; the file is born 0600. */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        int e = errno;
        io_fail(err, "%s: cannot remove stale %s (%s)", path, tmp, strerror(e));
        free(tmp); free(dir);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        io_fail(err, "%s: cannot create %s (%s)", path, tmp, strerror(e));
        free(tmp); free(dir);
        return -1;
    }
    int fe = fchmod(fd, 0600);
    close(fd);

    quiet q;
    quiet_begin(&q);
    int rc = -1;
    hid_t fapl = make_fapl();
    hid_t fid = -1, gm = -1, go = -1, gom = -1, gov = -1, gs = -1;
    sums s = {0};
    int has_optim = m != NULL;
    uint64_t n_floats = 0;
    for (size_t i = 0; i < n; i++) n_floats += table[i].numel;
    if (fe != 0) { io_fail(err, "%s: cannot chmod %s", path, tmp); goto out; }
    if (fapl < 0) { h5fail(err, "%s: HDF5 property list", path); goto out; }
    fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fid < 0) { h5fail(err, "%s: cannot create %s", path, tmp); goto out; }
    gm = H5Gcreate2(fid, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (gm < 0) { h5fail(err, "%s: cannot create /model", path); goto out; }
    if (write_tensors(path, gm, "/model", table, n, model, &s.model, err)) goto out;
    if (has_optim) {
        go = H5Gcreate2(fid, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        gom = go < 0 ? -1 : H5Gcreate2(go, "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        gov = go < 0 ? -1 : H5Gcreate2(go, "v", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (gom < 0 || gov < 0) { h5fail(err, "%s: cannot create /optim", path); goto out; }
        if (write_tensors(path, gom, "/optim/m", table, n, m, &s.m, err)) goto out;
        if (write_tensors(path, gov, "/optim/v", table, n, v, &s.v, err)) goto out;
    }
    if (write_vocab(path, fid, st, err)) goto out;
    gs = H5Gcreate2(fid, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (gs < 0) { h5fail(err, "%s: cannot create /state", path); goto out; }
    if (write_metrics(path, gs, st, err)) goto out;
    s.vocab = vocab_hash(st->vocab, st->vocab_n);
    s.metrics = ckpt_xxh64(st->metrics_len ? st->metrics : "", st->metrics_len, 0);
    if (write_state(path, gs, st, &s, has_optim, n, n_floats, err)) goto out;
    if (H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0) { h5fail(err, "%s: cannot flush %s", path, tmp); goto out; }
    /* closing a group may write its object header: a failure there is a failed save */
    herr_t gc = H5Gclose(gs); gs = -1;
    if (gov >= 0) { gc |= H5Gclose(gov); gov = -1; }
    if (gom >= 0) { gc |= H5Gclose(gom); gom = -1; }
    if (go >= 0) { gc |= H5Gclose(go); go = -1; }
    gc |= H5Gclose(gm); gm = -1;
    if (gc < 0) { h5fail(err, "%s: cannot close the groups of %s", path, tmp); goto out; }
    herr_t ce = H5Fclose(fid);
    fid = -1;
    if (ce < 0) { h5fail(err, "%s: cannot close %s", path, tmp); goto out; }
    if (fsync_path(tmp, 0) != 0) { io_fail(err, "%s: fsync %s: %s", path, tmp, strerror(errno)); goto out; }
    if (rename(tmp, path) != 0) { io_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno)); goto out; }
    if (fsync_path(dir, 1) != 0) {
        /* The file is complete and in place; only the directory entry's durability is unknown. */
        io_fail(err, "%s: written, but fsync of directory %s failed: %s", path, dir, strerror(errno));
        rc = -1;
        free(tmp); free(dir);
        if (fapl >= 0) H5Pclose(fapl);
        quiet_end(&q);
        return rc;
    }
    rc = 0;
out:
    if (gs >= 0) H5Gclose(gs);
    if (gov >= 0) H5Gclose(gov);
    if (gom >= 0) H5Gclose(gom);
    if (go >= 0) H5Gclose(go);
    if (gm >= 0) H5Gclose(gm);
    if (fid >= 0) H5Fclose(fid);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc != 0) unlink(tmp);
    quiet_end(&q);
    free(tmp);
    free(dir);
    return rc;
}

/* --------------------------------------------------------------- reading */

typedef struct {
    char *strs[3];    /* adebert_version, config_json, data_json */
    char **vocab;     /* pointer array */
    char *vocab_arena;
    char *metrics;
    sums s;
} owned;

void ckpt_state_free(ckpt_state *st)
{
    if (!st) return;
    owned *o = st->owned_;
    if (o) {
        for (int i = 0; i < 3; i++) free(o->strs[i]);
        free(o->vocab);
        free(o->vocab_arena);
        free(o->metrics);
        free(o);
    }
    memset(st, 0, sizeof *st);
}

static int open_file(const char *path, hid_t *fid, char err[IO_ERRLEN])
{
    struct stat sb;
    if (stat(path, &sb) != 0) return io_fail(err, "%s: cannot open checkpoint (%s)", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return io_fail(err, "%s: not a regular file", path);
    hid_t fapl = make_fapl();
    if (fapl < 0) return h5fail(err, "%s: HDF5 property list", path);
    *fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (*fid < 0) h5fail(err, "%s: not a readable HDF5 checkpoint (truncated or corrupt?)", path);
    H5Pclose(fapl);
    return *fid < 0 ? -1 : 0;
}

/* Opens attribute `name` of `obj`, checking its class and element count. */
static hid_t attr_open(const char *path, hid_t obj, const char *oname, const char *name, H5T_class_t cls,
                       hssize_t count, char err[IO_ERRLEN])
{
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) {
        h5fail(err, "%s: %s has no attribute %s (malformed checkpoint)", path, oname, name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) { h5fail(err, "%s: cannot open attribute %s of %s", path, name, oname); return -1; }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int vl = (c == H5T_STRING && t >= 0) ? H5Tis_variable_str(t) : 0;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (c != cls || np != count || vl) {
        H5Aclose(a);
        io_fail(err, "%s: attribute %s of %s has the wrong type or size (malformed checkpoint)", path, name, oname);
        return -1;
    }
    return a;
}

static int attr_read_num(const char *path, hid_t obj, const char *name, H5T_class_t cls, hid_t mtype, size_t count,
                         void *out, char err[IO_ERRLEN])
{
    hid_t a = attr_open(path, obj, "/state", name, cls, (hssize_t)count, err);
    if (a < 0) return -1;
    herr_t r = H5Aread(a, mtype, out);
    if (r < 0) h5fail(err, "%s: cannot read attribute %s of /state", path, name);
    H5Aclose(a);
    return r < 0 ? -1 : 0;
}

static int attr_read_str(const char *path, hid_t obj, const char *name, char **out, char err[IO_ERRLEN])
{
    hid_t a = attr_open(path, obj, "/state", name, H5T_STRING, 1, err);
    if (a < 0) return -1;
    hid_t mt = H5Aget_type(a); /* fixed-length string: read as stored (cset, padding) */
    size_t sz = mt < 0 ? 0 : H5Tget_size(mt);
    if (sz == 0 || sz > CKPT_ATTR_MAX) {
        if (mt >= 0) H5Tclose(mt);
        H5Aclose(a);
        return io_fail(err, "%s: attribute %s of /state: bad size", path, name);
    }
    char *buf = malloc(sz + 1);
    int bad = !buf || H5Aread(a, mt, buf) < 0;
    if (bad) h5fail(err, "%s: cannot read attribute %s of /state", path, name);
    if (mt >= 0) H5Tclose(mt);
    H5Aclose(a);
    if (bad) { free(buf); return -1; }
    buf[sz] = '\0';
    *out = buf;
    return 0;
}

/* The storage layout our writer uses: chunked, chunk dims within the extent, chunk
 * under 64 MiB, and (for filtered data) Fletcher32 as the only filter. HDF5 1.10
 * trusts a damaged layout message far enough to crash in H5Dread; this refuses it
 * first. dims may hold zeros (an empty unlimited dataset). */
/* Size of the file on disk (0 when it cannot be read: then no chunk fits). */
static hsize_t file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size > 0 ? (hsize_t)sb.st_size : 0;
}

static int layout_ok(const char *path, hid_t ds, int nd, const hsize_t *dims, size_t elem, int fletcher)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return 0;
    hsize_t ch[CKPT_MAX_DIMS] = {0};
    int ok = H5Pget_layout(dcpl) == H5D_CHUNKED && nd <= CKPT_MAX_DIMS && H5Pget_chunk(dcpl, nd, ch) == nd;
    hsize_t bytes = elem;
    for (int d = 0; ok && d < nd; d++) {
        ok = ch[d] >= 1 && (ch[d] <= dims[d] || (dims[d] == 0 && ch[d] == 1)) && ch[d] <= ((hsize_t)1 << 26);
        bytes *= ch[d];
        ok = ok && bytes <= ((hsize_t)64 << 20);
    }
    if (ok) {
        int nf = H5Pget_nfilters(dcpl);
        unsigned flags = 0, cd[4];
        size_t ncd = 4;
        char fname[32];
        ok = fletcher ? nf == 1 && H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof fname, fname, NULL) ==
                                          H5Z_FILTER_FLETCHER32
                      : nf == 0;
    }
    H5Pclose(dcpl);
    /* Every chunk must be there and be stored at exactly its size (+4 bytes of
     * Fletcher32) inside the file: HDF5 1.10 sizes its read buffer from the chunk
     * index but copies the logical chunk size, so a damaged index entry overflows
     * (seen under ASan). */
    if (ok) {
        hsize_t want = 1;
        for (int d = 0; d < nd; d++) want *= dims[d] ? (dims[d] + ch[d] - 1) / ch[d] : 0;
        hsize_t nchunks = 0, fsize = file_bytes(path);
        hid_t sp = H5Dget_space(ds);
        ok = sp >= 0 && H5Dget_num_chunks(ds, sp, &nchunks) >= 0 && nchunks == want;
        for (hsize_t i = 0; ok && i < nchunks; i++) {
            hsize_t off[CKPT_MAX_DIMS];
            unsigned mask = 0;
            haddr_t addr = 0;
            hsize_t size = 0;
            ok = H5Dget_chunk_info(ds, sp, i, off, &mask, &addr, &size) >= 0 && mask == 0 &&
                 size == bytes + (fletcher ? 4 : 0) && addr != HADDR_UNDEF && addr <= fsize && size <= fsize - addr;
        }
        if (sp >= 0) H5Sclose(sp);
    }
    return ok;
}

static int read_vocab(const char *path, hid_t fid, owned *o, ckpt_state *st, char err[IO_ERRLEN])
{
    hid_t ds = H5Dopen2(fid, "/tokenizer/vocab", H5P_DEFAULT);
    if (ds < 0) return h5fail(err, "%s: missing dataset /tokenizer/vocab (malformed checkpoint)", path);
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds);
    size_t w = ft >= 0 ? H5Tget_size(ft) : 0;
    int ok = ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0 && w >= 1 &&
             w <= VOCAB_MAX_TOKEN && H5Sget_simple_extent_ndims(sp) == 1;
    hsize_t dim = 0;
    if (ok) H5Sget_simple_extent_dims(sp, &dim, NULL);
    ok = ok && dim == (hsize_t)st->vocab_n && layout_ok(path, ds, 1, &dim, w, 1);
    hid_t mt = ok ? H5Tcopy(ft) : -1; /* read as stored: same size, padding and cset */
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (!ok || mt < 0) {
        if (mt >= 0) H5Tclose(mt);
        H5Dclose(ds);
        return io_fail(err, "%s: /tokenizer/vocab is not a 1-D fixed-length string dataset of vocab_size %zu", path,
                       st->vocab_n);
    }
    char *raw = malloc(dim ? (size_t)dim * w : 1);
    o->vocab = malloc((dim ? (size_t)dim : 1) * sizeof *o->vocab);
    o->vocab_arena = malloc(dim ? (size_t)dim * (w + 1) : 1);
    int rc = 0;
    if (!raw || !o->vocab || !o->vocab_arena) rc = io_fail(err, "%s: out of memory", path);
    else if (dim && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
        rc = h5fail(err, "%s: cannot read /tokenizer/vocab: data corrupt", path);
    H5Tclose(mt);
    H5Dclose(ds);
    if (rc == 0) {
        size_t off = 0;
        for (hsize_t i = 0; i < dim; i++) {
            const char *src = raw + (size_t)i * w;
            size_t l = 0;
            while (l < w && src[l]) l++;
            memcpy(o->vocab_arena + off, src, l);
            o->vocab_arena[off + l] = '\0';
            o->vocab[i] = o->vocab_arena + off;
            off += l + 1;
        }
        st->vocab_n = (size_t)dim;
        st->vocab = (const char *const *)o->vocab;
    }
    free(raw);
    return rc;
}

static int read_metrics(const char *path, hid_t fid, owned *o, ckpt_state *st, char err[IO_ERRLEN])
{
    hid_t ds = H5Dopen2(fid, "/state/metrics", H5P_DEFAULT);
    if (ds < 0) return h5fail(err, "%s: missing dataset /state/metrics (malformed checkpoint)", path);
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds);
    int ok = ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_INTEGER && H5Tget_size(ft) == 1 &&
             H5Sget_simple_extent_ndims(sp) == 1;
    hsize_t dim = 0;
    if (ok) H5Sget_simple_extent_dims(sp, &dim, NULL);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (!ok || dim != (hsize_t)st->metrics_len || !layout_ok(path, ds, 1, &dim, 1, 1)) {
        H5Dclose(ds);
        return io_fail(err, "%s: /state/metrics is not a 1-D byte dataset of metrics_bytes %zu", path, st->metrics_len);
    }
    o->metrics = malloc((size_t)dim + 1);
    if (!o->metrics) { H5Dclose(ds); return io_fail(err, "%s: out of memory", path); }
    if (dim && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, o->metrics) < 0) {
        h5fail(err, "%s: cannot read /state/metrics: data corrupt", path);
        H5Dclose(ds);
        return -1;
    }
    H5Dclose(ds);
    o->metrics[dim] = '\0';
    st->metrics = o->metrics;
    st->metrics_len = (size_t)dim;
    return 0;
}

static int read_state_fid(const char *path, hid_t fid, ckpt_state *st, char err[IO_ERRLEN])
{
    memset(st, 0, sizeof *st);
    owned *o = calloc(1, sizeof *o);
    if (!o) return io_fail(err, "%s: out of memory", path);
    st->owned_ = o;
    hid_t g = H5Gopen2(fid, "/state", H5P_DEFAULT);
    if (g < 0) return h5fail(err, "%s: missing group /state (not an adebert checkpoint?)", path);
    int64_t ver = 0, lower = 0, hopt = 0;
    uint64_t nt = 0, nf = 0, want_state = 0, vsize = 0, mbytes = 0;
    int rc = attr_read_num(path, g, "format_version", H5T_INTEGER, H5T_NATIVE_INT64, 1, &ver, err);
    if (rc == 0 && ver != CKPT_FORMAT_VERSION)
        rc = io_fail(err, "%s: checkpoint format version %lld is not supported (this adebert reads version %d)", path,
                     (long long)ver, CKPT_FORMAT_VERSION);
#define RD(name, cls, mt, cnt, ptr) \
    if (rc == 0) rc = attr_read_num(path, g, name, cls, mt, cnt, ptr, err)
    RD("epoch", H5T_INTEGER, H5T_NATIVE_INT64, 1, &st->epoch);
    RD("step", H5T_INTEGER, H5T_NATIVE_INT64, 1, &st->step);
    RD("batch_in_epoch", H5T_INTEGER, H5T_NATIVE_INT64, 1, &st->batch_in_epoch);
    RD("seed", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &st->seed);
    RD("rng_counters", H5T_INTEGER, H5T_NATIVE_UINT64, CKPT_RNG_WORDS, st->rng_counters);
    RD("loss_scale", H5T_FLOAT, H5T_NATIVE_DOUBLE, 1, &st->loss_scale);
    RD("good_steps", H5T_INTEGER, H5T_NATIVE_INT64, 1, &st->good_steps);
    RD("lowercase", H5T_INTEGER, H5T_NATIVE_INT64, 1, &lower);
    RD("has_optim", H5T_INTEGER, H5T_NATIVE_INT64, 1, &hopt);
    RD("n_tensors", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &nt);
    RD("n_floats", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &nf);
    RD("model_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &o->s.model);
    RD("optim_m_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &o->s.m);
    RD("optim_v_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &o->s.v);
    RD("vocab_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &o->s.vocab);
    RD("metrics_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &o->s.metrics);
    RD("state_xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &want_state);
    RD("vocab_size", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &vsize);
    RD("metrics_bytes", H5T_INTEGER, H5T_NATIVE_UINT64, 1, &mbytes);
#undef RD
    if (rc == 0) rc = attr_read_str(path, g, "adebert_version", &o->strs[0], err);
    if (rc == 0) rc = attr_read_str(path, g, "config_json", &o->strs[1], err);
    if (rc == 0) rc = attr_read_str(path, g, "data_json", &o->strs[2], err);
    H5Gclose(g);
    if (rc) return rc;
    st->format_version = (int)ver;
    st->lowercase = lower != 0;
    st->has_optim = hopt != 0;
    st->n_tensors = (size_t)nt;
    st->n_floats = nf;
    st->adebert_version = o->strs[0];
    st->config_json = o->strs[1];
    st->data_json = o->strs[2];
    st->vocab_n = (size_t)vsize;     /* the sizes the datasets must have (hashed in state_xxh64) */
    st->metrics_len = (size_t)mbytes;
    if (lower != (lower != 0) || hopt != (hopt != 0))
        return io_fail(err, "%s: /state lowercase/has_optim not 0 or 1 (malformed checkpoint)", path);
    if (state_hash(st, &o->s, st->has_optim, nt, nf) != want_state)
        return io_fail(err, "%s: /state attributes fail their checksum (state_xxh64): corrupt or edited", path);
    if (read_vocab(path, fid, o, st, err)) return -1;
    if (vocab_hash(st->vocab, st->vocab_n) != o->s.vocab)
        return io_fail(err, "%s: /tokenizer/vocab fails its checksum (vocab_xxh64): corrupt or edited", path);
    if (read_metrics(path, fid, o, st, err)) return -1;
    if (ckpt_xxh64(st->metrics, st->metrics_len, 0) != o->s.metrics)
        return io_fail(err, "%s: /state/metrics fails its checksum (metrics_xxh64): corrupt or edited", path);
    return 0;
}

/* Checks and (when dst or scratch is given) reads one tensor dataset; *h_stored and
 * *h_data (when read) receive its checksums. want: expected shape, or NULL (any
 * fp32 tensor of 1..CKPT_MAX_DIMS dims; then *numel_out is its size). */
static int read_tensor(const char *path, hid_t grp, const char *gname, const char *name, const ckpt_tensor *want,
                       float *dst, float **scratch, size_t *scratch_cap, uint64_t *h_stored, uint64_t *h_data,
                       size_t *numel_out, uint64_t max_numel, char err[IO_ERRLEN])
{
    htri_t ex = H5Lexists(grp, name, H5P_DEFAULT);
    if (ex <= 0) {
        h5fail(err, "%s: missing tensor %s/%s (a checkpoint of a different model config?)", path, gname, name);
        return -1;
    }
    hid_t ds = H5Dopen2(grp, name, H5P_DEFAULT);
    if (ds < 0) return h5fail(err, "%s: %s/%s is not a dataset", path, gname, name);
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds);
    int ok = ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_FLOAT && H5Tget_size(ft) == 4;
    int nd = ok ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[CKPT_MAX_DIMS] = {0};
    if (ft >= 0) H5Tclose(ft);
    if (nd < 1 || nd > CKPT_MAX_DIMS || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(ds);
        return io_fail(err, "%s: %s/%s is not an fp32 tensor of 1..%d dims", path, gname, name, CKPT_MAX_DIMS);
    }
    H5Sclose(sp);
    size_t numel = 1;
    for (int d = 0; d < nd; d++) {
        if (dims[d] == 0 || dims[d] > ((hsize_t)1 << 40) / numel) {
            H5Dclose(ds);
            return io_fail(err, "%s: %s/%s: bad dimensions", path, gname, name);
        }
        numel *= (size_t)dims[d];
    }
    if (want) {
        int same = nd == want->ndim;
        for (int d = 0; same && d < nd; d++) same = dims[d] == (hsize_t)want->shape[d];
        if (!same) {
            char got[96] = "", exp[96] = "";
            for (int d = 0; d < nd; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
            for (int d = 0; d < want->ndim; d++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? "," : "", (long long)want->shape[d]);
            H5Dclose(ds);
            return io_fail(err, "%s: %s/%s has shape [%s], expected [%s] (a checkpoint of a different model config?)",
                           path, gname, name, got, exp);
        }
    }
    if (numel > max_numel) {
        H5Dclose(ds);
        return io_fail(err, "%s: %s/%s: more floats than /state n_floats (malformed checkpoint)", path, gname, name);
    }
    if (!layout_ok(path, ds, nd, dims, sizeof(float), 1)) {
        H5Dclose(ds);
        return io_fail(err, "%s: %s/%s: unexpected storage layout (corrupt checkpoint)", path, gname, name);
    }
    if (numel_out) *numel_out = numel;
    hid_t a = attr_open(path, ds, name, "xxh64", H5T_INTEGER, 1, err);
    if (a < 0) { H5Dclose(ds); return -1; }
    herr_t r = H5Aread(a, H5T_NATIVE_UINT64, h_stored);
    H5Aclose(a);
    if (r < 0) {
        h5fail(err, "%s: cannot read %s/%s xxh64", path, gname, name);
        H5Dclose(ds);
        return -1;
    }
    float *buf = dst;
    if (!buf && scratch) {
        if (*scratch_cap < numel) {
            float *nb = realloc(*scratch, numel * sizeof(float));
            if (!nb) { H5Dclose(ds); return io_fail(err, "%s: out of memory", path); }
            *scratch = nb;
            *scratch_cap = numel;
        }
        buf = *scratch;
    }
    if (buf) {
        if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            h5fail(err, "%s: cannot read %s/%s: data corrupt", path, gname, name);
            H5Dclose(ds);
            return -1;
        }
        *h_data = ckpt_xxh64(buf, numel * sizeof(float), 0);
        if (*h_data != *h_stored) {
            H5Dclose(ds);
            return io_fail(err, "%s: %s/%s fails its checksum (xxh64): corrupt or edited", path, gname, name);
        }
    }
    H5Dclose(ds);
    return 0;
}

/* One group (/model, /optim/m, /optim/v). With a table: exactly its tensors, read
 * into buf. Without: every dataset of the group, read into scratch when full. */
static int check_group(const char *path, hid_t fid, const char *gname, const ckpt_tensor *table, size_t n, float *buf,
                       int full, uint64_t want_combined, const ckpt_state *st, char err[IO_ERRLEN])
{
    hid_t g = H5Gopen2(fid, gname, H5P_DEFAULT);
    if (g < 0) return h5fail(err, "%s: missing group %s (malformed checkpoint)", path, gname);
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) {
        h5fail(err, "%s: cannot list %s", path, gname);
        H5Gclose(g);
        return -1;
    }
    size_t count = table ? n : (size_t)gi.nlinks;
    if (gi.nlinks != count || count != st->n_tensors) {
        H5Gclose(g);
        return io_fail(err, "%s: %s holds %llu tensors, expected %zu (a checkpoint of a different model config?)", path,
                       gname, (unsigned long long)gi.nlinks, table ? n : st->n_tensors);
    }
    named_hash *nh = calloc(count ? count : 1, sizeof *nh);
    char (*names)[CKPT_NAME_MAX] = table ? NULL : calloc(count ? count : 1, CKPT_NAME_MAX);
    float *scratch = NULL;
    size_t scap = 0;
    uint64_t floats = 0;
    int rc = 0;
    if (!nh || (!table && !names)) rc = io_fail(err, "%s: out of memory", path);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *name;
        if (table) {
            name = table[i].name;
        } else {
            ssize_t l = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, names[i], CKPT_NAME_MAX, H5P_DEFAULT);
            if (l < 0 || l >= CKPT_NAME_MAX) { rc = h5fail(err, "%s: %s: bad tensor name", path, gname); break; }
            name = names[i];
        }
        uint64_t hs = 0, hd = 0;
        size_t numel = 0;
        rc = read_tensor(path, g, gname, name, table ? &table[i] : NULL, buf ? buf + table[i].offset : NULL,
                         (!buf && full) ? &scratch : NULL, &scap, &hs, &hd, &numel, st->n_floats - floats, err);
        nh[i].name = name;
        nh[i].h = hs;
        floats += numel;
    }
    if (rc == 0 && floats != st->n_floats)
        rc = io_fail(err, "%s: %s holds %llu floats, /state says %llu (malformed checkpoint)", path, gname,
                     (unsigned long long)floats, (unsigned long long)st->n_floats);
    if (rc == 0 && combine(nh, count) != want_combined)
        rc = io_fail(err, "%s: %s fails the buffer checksum in /state: corrupt or edited", path, gname);
    free(scratch);
    free(names);
    free(nh);
    H5Gclose(g);
    return rc;
}

int ckpt_read_state(const char *path, ckpt_state *st, char err[IO_ERRLEN])
{
    if (!st) return io_fail(err, "%s: no state", path ? path : "checkpoint");
    memset(st, 0, sizeof *st);
    if (!path) return io_fail(err, "checkpoint: no path");
    quiet q;
    quiet_begin(&q);
    hid_t fid = -1;
    int rc = open_file(path, &fid, err);
    if (rc == 0) rc = read_state_fid(path, fid, st, err);
    if (fid >= 0) H5Fclose(fid);
    if (rc) ckpt_state_free(st);
    quiet_end(&q);
    return rc;
}

int ckpt_read(const char *path, const ckpt_tensor *table, size_t n, float *model, float *m, float *v, ckpt_state *st,
              char err[IO_ERRLEN])
{
    if (!path) return io_fail(err, "checkpoint: no path");
    ckpt_state local, *s = st ? st : &local;
    memset(s, 0, sizeof *s);
    if (check_table(path, table, n, err)) return -1;
    static const ckpt_tensor none[1];
    if (!table) table = none; /* an empty table: the file must have no tensors */
    if (n && !model) return io_fail(err, "%s: no model buffer", path);
    quiet q;
    quiet_begin(&q);
    hid_t fid = -1;
    int rc = open_file(path, &fid, err);
    if (rc == 0) rc = read_state_fid(path, fid, s, err);
    owned *o = s->owned_;
    if (rc == 0) rc = check_group(path, fid, "/model", table, n, model, 1, o->s.model, s, err);
    if (rc == 0 && (m || v) && !s->has_optim) rc = io_fail(err, "%s: checkpoint has no optimizer state", path);
    if (rc == 0 && m) rc = check_group(path, fid, "/optim/m", table, n, m, 1, o->s.m, s, err);
    if (rc == 0 && v) rc = check_group(path, fid, "/optim/v", table, n, v, 1, o->s.v, s, err);
    if (fid >= 0) H5Fclose(fid);
    quiet_end(&q);
    if (rc || !st) ckpt_state_free(s);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            size_t bytes = table[i].numel * sizeof(float);
            if (model) memset(model + table[i].offset, 0, bytes);
            if (m) memset(m + table[i].offset, 0, bytes);
            if (v) memset(v + table[i].offset, 0, bytes);
        }
    }
    return rc;
}

int ckpt_verify(const char *path, int full, char err[IO_ERRLEN])
{
    if (!path) return io_fail(err, "checkpoint: no path");
    ckpt_state s;
    memset(&s, 0, sizeof s);
    quiet q;
    quiet_begin(&q);
    hid_t fid = -1;
    int rc = open_file(path, &fid, err);
    if (rc == 0) rc = read_state_fid(path, fid, &s, err);
    owned *o = s.owned_;
    if (rc == 0) rc = check_group(path, fid, "/model", NULL, 0, NULL, full, o->s.model, &s, err);
    if (rc == 0 && s.has_optim) rc = check_group(path, fid, "/optim/m", NULL, 0, NULL, full, o->s.m, &s, err);
    if (rc == 0 && s.has_optim) rc = check_group(path, fid, "/optim/v", NULL, 0, NULL, full, o->s.v, &s, err);
    if (fid >= 0) H5Fclose(fid);
    quiet_end(&q);
    ckpt_state_free(&s);
    return rc;
}
