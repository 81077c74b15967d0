/* io/checkpoint.c: bit-exact round trip (with and without optimizer state), file
 * mode, readability by h5ls/h5dump, and the bad inputs: truncated files, a flipped
 * byte in tensor data, an unknown format version, a different model config, an
 * unwritable destination (nothing left behind, an existing file untouched), the
 * 64 KiB attribute cap; and a negative control: an edit made through the HDF5 API
 * passes Fletcher32 and is caught only by the stored checksums. */
#ifndef ADEBERT_HAVE_HDF5
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "test_checkpoint: built without HDF5 (ADEBERT_HDF5=OFF): checkpoints are not tested\n");
    return 1;
}
#else
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "io/checkpoint.h"

/* ---------------------------------------------------------------- fixture */

#define NT 6
static ckpt_tensor T[NT];
static size_t NFLOATS;
static float *MODEL, *M, *V;
static char DIR_[128];
static const char *VOCAB[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "##ing", "naïve", "##ü", "", "アセト"};
#define NVOCAB (sizeof VOCAB / sizeof VOCAB[0])
static const char METRICS[] =
    "{\"schema_version\":1,\"split\":\"val\",\"epoch\":0,\"step\":10,\"f1\":0.5}\n"
    "{\"schema_version\":1,\"split\":\"val\",\"epoch\":1,\"step\":20,\"f1\":0.75}\n";

static void add(size_t i, const char *name, int ndim, int64_t a, int64_t b)
{
    T[i].name = name;
    T[i].ndim = ndim;
    T[i].shape[0] = a;
    T[i].shape[1] = b;
    T[i].numel = (size_t)(ndim == 1 ? a : a * b);
    T[i].offset = NFLOATS;
    NFLOATS += T[i].numel;
}

static uint64_t lcg = 12345;
static uint32_t next32(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg >> 32);
}

static void fill(float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = next32();
        memcpy(&b[i], &u, 4); /* arbitrary bit patterns: NaN payloads, denormals, -0 */
    }
}

static int setup(void **state)
{
    (void)state;
    /* 600 x 512 = 307,200 floats: more than one 2^18-element chunk. */
    add(0, "bert.embeddings.word_embeddings.weight", 2, 600, 512);
    add(1, "bert.embeddings.LayerNorm.weight", 1, 16, 0);
    add(2, "bert.encoder.layer.0.attention.self.query.weight", 2, 16, 16);
    add(3, "bert.encoder.layer.0.attention.self.query.bias", 1, 16, 0);
    add(4, "classifier.weight", 2, 2, 16);
    add(5, "classifier.bias", 1, 2, 0);
    MODEL = malloc(NFLOATS * 4);
    M = malloc(NFLOATS * 4);
    V = malloc(NFLOATS * 4);
    if (!MODEL || !M || !V) return -1;
    fill(MODEL, NFLOATS);
    fill(M, NFLOATS);
    fill(V, NFLOATS);
    snprintf(DIR_, sizeof DIR_, "/tmp/adebert_ckpt_test_XXXXXX");
    if (!mkdtemp(DIR_)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
    int rc = system(cmd);
    free(MODEL);
    free(M);
    free(V);
    return rc == 0 ? 0 : -1;
}

static ckpt_state base_state(void)
{
    ckpt_state s;
    memset(&s, 0, sizeof s);
    s.adebert_version = "0.1.0";
    s.epoch = 3;
    s.step = 1234;
    s.batch_in_epoch = 77;
    s.seed = 0xDEADBEEFCAFEF00DULL;
    s.rng_counters[0] = 1;
    s.rng_counters[1] = UINT64_MAX;
    s.rng_counters[3] = 42;
    s.loss_scale = 32768.0;
    s.good_steps = 1999;
    s.lowercase = 1;
    s.config_json = "{\"model\":{\"hidden_size\":16},\"lr\":2e-05}";
    s.data_json = "{\"view\":\"hf\",\"split\":\"grouped\",\"seed\":42,\"val_fraction\":0.1,"
                  "\"casing\":\"lowercase\",\"max_seq_len\":128}";
    s.vocab_n = NVOCAB;
    s.vocab = VOCAB;
    s.metrics = METRICS;
    s.metrics_len = strlen(METRICS);
    return s;
}

static void pathf(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", DIR_, name); }

static int exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static void write_good(const char *p, int optim)
{
    char err[IO_ERRLEN] = "";
    ckpt_state s = base_state();
    int rc = ckpt_write(p, T, NT, MODEL, optim ? M : NULL, optim ? V : NULL, &s, err);
    if (rc) fail_msg("ckpt_write %s: %s", p, err);
}

/* Expect failure with one line that names `p` and contains `what`. */
static void expect_error(int rc, const char *err, const char *p, const char *what)
{
    if (rc == 0) fail_msg("expected an error (%s) for %s, got success", what, p);
    if (!strstr(err, p)) fail_msg("error does not name the file %s: %s", p, err);
    if (strchr(err, '\n')) fail_msg("error is not one line: %s", err);
    if (what && !strstr(err, what)) fail_msg("error lacks \"%s\": %s", what, err);
    if (getenv("CKPT_TEST_VERBOSE")) fprintf(stderr, "  expected error: %s\n", err);
}

static void copy_prefix(const char *src, const char *dst, off_t len)
{
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);
    char buf[65536];
    off_t left = len;
    while (left > 0) {
        ssize_t r = read(in, buf, left < (off_t)sizeof buf ? (size_t)left : sizeof buf);
        assert_true(r > 0);
        assert_int_equal(write(out, buf, (size_t)r), r);
        left -= r;
    }
    close(in);
    close(out);
}

static off_t file_size(const char *p)
{
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return sb.st_size;
}

/* -------------------------------------------------------------- the tests */

static void test_xxh64_vectors(void **state)
{
    (void)state;
    /* Reference values from the xxhash package (python-xxhash, XXH64, seed 0). */
    unsigned char r100[100], r37[37];
    for (int i = 0; i < 100; i++) r100[i] = (unsigned char)i;
    for (int i = 0; i < 37; i++) r37[i] = (unsigned char)i;
    assert_true(ckpt_xxh64("", 0, 0) == 0xef46db3751d8e999ULL);
    assert_true(ckpt_xxh64("a", 1, 0) == 0xd24ec4f1a98c6e5bULL);
    assert_true(ckpt_xxh64("abc", 3, 0) == 0x44bc2cf5ad770999ULL);
    assert_true(ckpt_xxh64(r100, 100, 0) == 0x6ac1e58032166597ULL);
    assert_true(ckpt_xxh64(r37, 37, 0) == 0xd93fa2dfee5c24c9ULL);
}

static void check_state(const ckpt_state *r, int optim)
{
    ckpt_state w = base_state();
    assert_int_equal(r->format_version, CKPT_FORMAT_VERSION);
    assert_string_equal(r->adebert_version, w.adebert_version);
    assert_true(r->epoch == w.epoch && r->step == w.step && r->batch_in_epoch == w.batch_in_epoch);
    assert_true(r->seed == w.seed);
    assert_memory_equal(r->rng_counters, w.rng_counters, sizeof w.rng_counters);
    assert_memory_equal(&r->loss_scale, &w.loss_scale, sizeof(double));
    assert_true(r->good_steps == w.good_steps);
    assert_int_equal(r->lowercase, 1);
    assert_string_equal(r->config_json, w.config_json);
    assert_string_equal(r->data_json, w.data_json);
    assert_int_equal(r->vocab_n, NVOCAB);
    for (size_t i = 0; i < NVOCAB; i++) assert_string_equal(r->vocab[i], VOCAB[i]);
    assert_int_equal(r->metrics_len, strlen(METRICS));
    assert_memory_equal(r->metrics, METRICS, strlen(METRICS));
    assert_int_equal(r->has_optim, optim);
    assert_int_equal(r->n_tensors, NT);
    assert_true(r->n_floats == NFLOATS);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char p[300], tmp[310], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "rt.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    write_good(p, 1);
    assert_false(exists(tmp));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);

    float *m2 = malloc(NFLOATS * 4), *a = malloc(NFLOATS * 4), *b = malloc(NFLOATS * 4);
    assert_non_null(m2);
    assert_non_null(a);
    assert_non_null(b);
    ckpt_state r;
    int rc = ckpt_read(p, T, NT, m2, a, b, &r, err);
    if (rc) fail_msg("%s", err);
    assert_memory_equal(m2, MODEL, NFLOATS * 4);
    assert_memory_equal(a, M, NFLOATS * 4);
    assert_memory_equal(b, V, NFLOATS * 4);
    check_state(&r, 1);
    ckpt_state_free(&r);
    ckpt_state_free(&r); /* a freed state may be freed again */

    /* The table order does not matter (the buffer checksum sorts by name). */
    ckpt_tensor rev[NT];
    for (int i = 0; i < NT; i++) rev[i] = T[NT - 1 - i];
    memset(m2, 0, NFLOATS * 4);
    rc = ckpt_read(p, rev, NT, m2, NULL, NULL, NULL, err);
    if (rc) fail_msg("%s", err);
    assert_memory_equal(m2, MODEL, NFLOATS * 4);

    /* State only, and both verify levels. */
    rc = ckpt_read_state(p, &r, err);
    if (rc) fail_msg("%s", err);
    check_state(&r, 1);
    ckpt_state_free(&r);
    if (ckpt_verify(p, 0, err)) fail_msg("verify 0: %s", err);
    if (ckpt_verify(p, 1, err)) fail_msg("verify 1: %s", err);

    /* Checksums are what ckpt_buffer_checksum computes. */
    uint64_t h = 0;
    assert_int_equal(ckpt_buffer_checksum(T, NT, MODEL, &h, err), 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t at = H5Aopen_by_name(f, "/state", "model_xxh64", H5P_DEFAULT, H5P_DEFAULT);
    uint64_t stored = 0;
    assert_true(at >= 0 && H5Aread(at, H5T_NATIVE_UINT64, &stored) >= 0);
    H5Aclose(at);
    H5Fclose(f);
    assert_true(stored == h);
    free(m2);
    free(a);
    free(b);
}

static void test_no_optim(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "noopt.h5");
    write_good(p, 0);
    float *m2 = calloc(NFLOATS, 4), *a = calloc(NFLOATS, 4), *b = calloc(NFLOATS, 4);
    ckpt_state r;
    int rc = ckpt_read(p, T, NT, m2, NULL, NULL, &r, err);
    if (rc) fail_msg("%s", err);
    assert_memory_equal(m2, MODEL, NFLOATS * 4);
    check_state(&r, 0);
    ckpt_state_free(&r);
    if (ckpt_verify(p, 1, err)) fail_msg("verify: %s", err);
    rc = ckpt_read(p, T, NT, m2, a, b, NULL, err);
    expect_error(rc, err, p, "no optimizer state");
    /* On failure the outputs are zeroed. */
    for (size_t i = 0; i < NFLOATS; i++) assert_true(m2[i] == 0.0f);
    /* Only one moment: refused. */
    ckpt_state s = base_state();
    char q[300];
    pathf(q, sizeof q, "halfopt.h5");
    expect_error(ckpt_write(q, T, NT, MODEL, M, NULL, &s, err), err, q, "both");
    assert_false(exists(q));
    free(m2);
    free(a);
    free(b);
}

/* No vocab, no metrics, no strings (NULL = ""), and a zero-tensor model. */
static void test_empty_state(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "empty.h5");
    ckpt_state s;
    memset(&s, 0, sizeof s);
    if (ckpt_write(p, T, NT, MODEL, NULL, NULL, &s, err)) fail_msg("%s", err);
    ckpt_state r;
    float *a = malloc(NFLOATS * 4);
    if (ckpt_read(p, T, NT, a, NULL, NULL, &r, err)) fail_msg("%s", err);
    assert_int_equal(r.vocab_n, 0);
    assert_int_equal(r.metrics_len, 0);
    assert_string_equal(r.config_json, "");
    assert_string_equal(r.adebert_version, "");
    ckpt_state_free(&r);
    expect_error(ckpt_read(p, NULL, 0, NULL, NULL, NULL, NULL, err), err, p, "holds 6 tensors, expected 0");
    if (ckpt_write(p, NULL, 0, NULL, NULL, NULL, &s, err)) fail_msg("%s", err);
    if (ckpt_read(p, NULL, 0, NULL, NULL, NULL, NULL, err)) fail_msg("%s", err);
    if (ckpt_verify(p, 1, err)) fail_msg("%s", err);
    free(a);
}

static void run_capture(const char *cmd, const char *out, int *status, char **text)
{
    char full[1200];
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, out);
    *status = system(full);
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    *text = buf;
}

static void test_h5_tools(void **state)
{
    (void)state;
    char p[300], out[300], cmd[800];
    pathf(p, sizeof p, "tools.h5");
    pathf(out, sizeof out, "tools.txt");
    write_good(p, 1);
    int st;
    char *txt;
    snprintf(cmd, sizeof cmd, "h5ls -r '%s'", p);
    run_capture(cmd, out, &st, &txt);
    if (st != 0) fail_msg("h5ls -r failed (status %d; is hdf5-tools installed?): %s", st, txt);
    const char *want[] = {"/model/bert.encoder.layer.0.attention.self.query.weight",
                          "/optim/m/classifier.bias", "/optim/v/bert.embeddings.word_embeddings.weight",
                          "/tokenizer/vocab", "/state/metrics"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(txt, want[i])) fail_msg("h5ls -r lacks %s:\n%s", want[i], txt);
    snprintf(cmd, sizeof cmd, "h5dump -H -p '%s'", p);
    run_capture(cmd, out, &st, &txt);
    if (st != 0) fail_msg("h5dump -H failed (status %d): %s", st, txt);
    const char *want2[] = {"format_version", "config_json", "state_xxh64", "FLETCHER32", "H5T_IEEE_F32LE",
                           "word_embeddings"};
    for (size_t i = 0; i < sizeof want2 / sizeof want2[0]; i++)
        if (!strstr(txt, want2[i])) fail_msg("h5dump -H -p lacks %s", want2[i]);
    /* A value h5dump prints: the step attribute. */
    snprintf(cmd, sizeof cmd, "h5dump -a /state/step '%s'", p);
    run_capture(cmd, out, &st, &txt);
    if (st != 0 || !strstr(txt, "1234")) fail_msg("h5dump -a /state/step: %s", txt);
}

static void test_truncated(void **state)
{
    (void)state;
    char p[300], q[300], err[IO_ERRLEN];
    pathf(p, sizeof p, "full.h5");
    pathf(q, sizeof q, "cut.h5");
    write_good(p, 1);
    off_t s = file_size(p);
    const off_t lens[] = {0, 1, 8, 100, 512, 4096, s / 4, s / 2, (3 * s) / 4, s - 4096, s - 100, s - 1};
    float *buf = malloc(NFLOATS * 4);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        copy_prefix(p, q, lens[i]);
        err[0] = '\0';
        int rc = ckpt_read(q, T, NT, buf, NULL, NULL, NULL, err);
        expect_error(rc, err, q, NULL);
        err[0] = '\0';
        expect_error(ckpt_verify(q, 0, err), err, q, NULL);
    }
    free(buf);
    err[0] = '\0';
    pathf(q, sizeof q, "does-not-exist.h5");
    expect_error(ckpt_verify(q, 1, err), err, q, "cannot open");
}

/* File address of chunk 0 of `dset`. */
static void chunk0(const char *p, const char *dset, haddr_t *addr, hsize_t *size)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    assert_true(d >= 0);
    hsize_t off[CKPT_MAX_DIMS];
    unsigned mask;
    hid_t sp = H5Dget_space(d);
    assert_true(H5Dget_chunk_info(d, sp, 0, off, &mask, addr, size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

static void flip_byte(const char *p, off_t at)
{
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void test_flipped_byte(void **state)
{
    (void)state;
    const char *dsets[] = {"/model/bert.embeddings.word_embeddings.weight", "/model/classifier.bias",
                           "/optim/v/bert.encoder.layer.0.attention.self.query.weight"};
    float *a = malloc(NFLOATS * 4), *b = malloc(NFLOATS * 4), *c = malloc(NFLOATS * 4);
    for (size_t k = 0; k < 3; k++) {
        char p[300], err[IO_ERRLEN] = "";
        pathf(p, sizeof p, "flip.h5");
        write_good(p, 1);
        haddr_t addr;
        hsize_t size;
        chunk0(p, dsets[k], &addr, &size);
        assert_true(size > 4);
        flip_byte(p, (off_t)(addr + size / 2));
        int rc = ckpt_read(p, T, NT, a, b, c, NULL, err);
        expect_error(rc, err, p, "corrupt");
        if (!strstr(err, strchr(dsets[k] + 1, '/') + 1)) fail_msg("error does not name the tensor: %s", err);
        err[0] = '\0';
        expect_error(ckpt_verify(p, 1, err), err, p, "corrupt");
        /* The cheap level reads no tensor data: it does not see this. */
        if (ckpt_verify(p, 0, err)) fail_msg("verify 0 should not read data: %s", err);
    }
    free(a);
    free(b);
    free(c);
}

static void set_attr_i64(const char *p, const char *obj, const char *name, int64_t v)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    /* Delete and recreate: what an editing tool (h5py attrs[...] = ...) does. */
    assert_true(H5Adelete_by_name(f, obj, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f, obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static void set_attr_u64(const char *p, const char *obj, const char *name, uint64_t v)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    /* Delete and recreate: what an editing tool (h5py attrs[...] = ...) does. */
    assert_true(H5Adelete_by_name(f, obj, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f, obj, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_UINT64, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static void test_unknown_version(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "v2.h5");
    write_good(p, 1);
    set_attr_i64(p, "/state", "format_version", CKPT_FORMAT_VERSION + 1);
    float *a = malloc(NFLOATS * 4);
    expect_error(ckpt_read(p, T, NT, a, NULL, NULL, NULL, err), err, p, "format version 2 is not supported");
    ckpt_state r;
    expect_error(ckpt_read_state(p, &r, err), err, p, "format version");
    expect_error(ckpt_verify(p, 0, err), err, p, "format version");
    free(a);
}

static void test_other_config(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "cfg.h5");
    write_good(p, 1);
    float *a = malloc(NFLOATS * 4 + 4096);
    ckpt_tensor t2[NT + 1];
    /* A different hidden size for one tensor. */
    memcpy(t2, T, sizeof T);
    t2[2].shape[0] = 8;
    t2[2].shape[1] = 32;
    expect_error(ckpt_read(p, t2, NT, a, NULL, NULL, NULL, err), err, p, "has shape [16,16], expected [8,32]");
    /* One more tensor (e.g. another layer) than the file. */
    memcpy(t2, T, sizeof T);
    t2[NT].name = "bert.encoder.layer.1.attention.self.query.bias";
    t2[NT].ndim = 1;
    t2[NT].shape[0] = 16;
    t2[NT].numel = 16;
    t2[NT].offset = NFLOATS;
    expect_error(ckpt_read(p, t2, NT + 1, a, NULL, NULL, NULL, err), err, p, "different model config");
    /* Same count, one name differs. */
    memcpy(t2, T, sizeof T);
    t2[3].name = "bert.encoder.layer.0.attention.self.key.bias";
    expect_error(ckpt_read(p, t2, NT, a, NULL, NULL, NULL, err), err, p, "missing tensor");
    /* One fewer. */
    expect_error(ckpt_read(p, T, NT - 1, a, NULL, NULL, NULL, err), err, p, "holds 6 tensors, expected 5");
    free(a);
}

static int same_file_bytes(const char *a, const char *b)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void test_unwritable(void **state)
{
    (void)state;
    char p[300], tmp[310], err[IO_ERRLEN] = "";
    ckpt_state s = base_state();
    /* A directory that does not exist. */
    pathf(p, sizeof p, "no/such/dir/x.h5");
    expect_error(ckpt_write(p, T, NT, MODEL, M, V, &s, err), err, p, "cannot create");
    /* A read-only directory (root ignores the mode: then only the checks below). */
    char ro[300];
    pathf(ro, sizeof ro, "ro");
    assert_int_equal(mkdir(ro, 0500), 0);
    char rp[400], rtmp[420];
    snprintf(rp, sizeof rp, "%s/x.h5", ro);
    int rc = ckpt_write(rp, T, NT, MODEL, M, V, &s, err);
    if (geteuid() != 0) {
        expect_error(rc, err, rp, "Permission denied");
        assert_false(exists(rp));
    }
    snprintf(rtmp, sizeof rtmp, "%s.tmp", rp);
    assert_false(exists(rtmp));
    chmod(ro, 0700);

    /* PATH.tmp cannot be created (a directory is in the way). */
    pathf(p, sizeof p, "blocked.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_equal(mkdir(tmp, 0700), 0);
    expect_error(ckpt_write(p, T, NT, MODEL, M, V, &s, err), err, p, NULL);
    assert_false(exists(p));
    rmdir(tmp);

    /* Failure after the file is written: the rename onto a non-empty directory. */
    pathf(p, sizeof p, "isdir.h5");
    snprintf(tmp, sizeof tmp, "%s/keep", p);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(mkdir(tmp, 0700), 0);
    expect_error(ckpt_write(p, T, NT, MODEL, M, V, &s, err), err, p, "rename");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_false(exists(tmp));

    /* A failing write (duplicate tensor name, found by HDF5 mid-file) leaves an
     * existing checkpoint byte for byte as it was. */
    char good[300], copy[300];
    pathf(good, sizeof good, "keep.h5");
    pathf(copy, sizeof copy, "keep.copy");
    write_good(good, 1);
    copy_prefix(good, copy, file_size(good));
    ckpt_tensor dup[NT];
    memcpy(dup, T, sizeof T);
    dup[5].name = dup[4].name;
    dup[5].shape[0] = dup[4].shape[0];
    dup[5].shape[1] = dup[4].shape[1];
    dup[5].ndim = dup[4].ndim;
    dup[5].numel = dup[4].numel;
    dup[5].offset = dup[4].offset;
    expect_error(ckpt_write(good, dup, NT, MODEL, M, V, &s, err), err, good, "classifier.weight");
    snprintf(tmp, sizeof tmp, "%s.tmp", good);
    assert_false(exists(tmp));
    assert_true(same_file_bytes(good, copy));
    if (ckpt_verify(good, 1, err)) fail_msg("%s", err);

    /* A stale PATH.tmp (crash mid-save, other mode) is replaced; result is 0600. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
    chmod(tmp, 0644);
    write_good(good, 1);
    assert_false(exists(tmp));
    struct stat sb;
    assert_int_equal(stat(good, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
}

static void test_attr_limit(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "big.h5");
    char *big = malloc(CKPT_ATTR_MAX + 1);
    memset(big, 'x', CKPT_ATTR_MAX);
    big[CKPT_ATTR_MAX - 1] = '\0'; /* the largest accepted */
    ckpt_state s = base_state();
    s.config_json = big;
    s.data_json = big;
    int rc = ckpt_write(p, T, NT, MODEL, NULL, NULL, &s, err);
    if (rc) fail_msg("%s", err);
    ckpt_state r;
    rc = ckpt_read_state(p, &r, err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(r.config_json, big);
    assert_string_equal(r.data_json, big);
    ckpt_state_free(&r);
    big[CKPT_ATTR_MAX - 1] = 'x';
    big[CKPT_ATTR_MAX] = '\0'; /* one too many */
    pathf(p, sizeof p, "toobig.h5");
    expect_error(ckpt_write(p, T, NT, MODEL, NULL, NULL, &s, err), err, p, "config_json");
    assert_false(exists(p));
    free(big);
}

/* Negative control: edits made through the HDF5 API recompute Fletcher32, so a
 * reader relying on Fletcher32 alone would accept them; each checksum layer has to
 * catch what the one below lets through. */
static void test_negative_control_tamper(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "tamper.h5");
    write_good(p, 1);
    const char *ds = "/model/classifier.weight";
    float w[32], back[32];
    for (int i = 0; i < 32; i++) w[i] = (float)i * 0.25f;

    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(d);
    H5Fclose(f);

    /* Fletcher32 is satisfied: plain HDF5 reads the tampered values back. */
    f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    d = H5Dopen2(f, ds, H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    assert_memory_equal(back, w, sizeof w);

    float *a = malloc(NFLOATS * 4);
    /* Layer 1: the dataset's own xxh64. */
    expect_error(ckpt_read(p, T, NT, a, NULL, NULL, NULL, err), err, p, "classifier.weight fails its checksum");
    expect_error(ckpt_verify(p, 1, err), err, p, "fails its checksum");
    /* Layer 2: fix the dataset attribute too -> the /state buffer checksum. */
    set_attr_u64(p, ds, "xxh64", ckpt_xxh64(w, sizeof w, 0));
    expect_error(ckpt_read(p, T, NT, a, NULL, NULL, NULL, err), err, p, "buffer checksum");
    expect_error(ckpt_verify(p, 0, err), err, p, "buffer checksum");
    /* Layer 3: fix model_xxh64 as well -> state_xxh64 covers it. */
    float *tam = malloc(NFLOATS * 4);
    memcpy(tam, MODEL, NFLOATS * 4);
    memcpy(tam + T[4].offset, w, sizeof w);
    uint64_t h;
    assert_int_equal(ckpt_buffer_checksum(T, NT, tam, &h, err), 0);
    set_attr_u64(p, "/state", "model_xxh64", h);
    expect_error(ckpt_read(p, T, NT, a, NULL, NULL, NULL, err), err, p, "state_xxh64");
    free(tam);

    /* A scalar edit (the step) is caught by state_xxh64 too. */
    write_good(p, 1);
    set_attr_i64(p, "/state", "step", 999999);
    expect_error(ckpt_read(p, T, NT, a, NULL, NULL, NULL, err), err, p, "state_xxh64");
    expect_error(ckpt_verify(p, 0, err), err, p, "state_xxh64");
    free(a);
}

static void test_bad_args(void **state)
{
    (void)state;
    char p[300], err[IO_ERRLEN] = "";
    pathf(p, sizeof p, "args.h5");
    ckpt_state s = base_state();
    ckpt_tensor t2[NT];
    memcpy(t2, T, sizeof T);
    t2[0].name = "bad/name";
    expect_error(ckpt_write(p, t2, NT, MODEL, NULL, NULL, &s, err), err, p, "invalid name");
    memcpy(t2, T, sizeof T);
    t2[1].numel = 17;
    expect_error(ckpt_write(p, t2, NT, MODEL, NULL, NULL, &s, err), err, p, "numel");
    assert_false(exists(p));
    /* An empty file and a non-HDF5 file. */
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, "not hdf5 at all\n", 16), 16);
    close(fd);
    expect_error(ckpt_verify(p, 1, err), err, p, "not a readable HDF5 checkpoint");
}

/* Every 17th byte of a small checkpoint flipped in turn (metadata included): each
 * read must fail cleanly or return exactly the original contents; never crash or
 * hang (a child process per flip, with an alarm).
 *
 * Under AddressSanitizer the sweep covers every byte of the datasets' data chunks
 * only. HDF5 1.10.8 itself reads freed memory while parsing some damaged object
 * headers (seen: heap-use-after-free in H5Aexists): silent without ASan, fatal with
 * it, and not something a caller can validate away before HDF5 parses them. */
static void test_byte_flip_sweep(void **state)
{
    (void)state;
    char p[300], q[300], err[IO_ERRLEN];
    pathf(p, sizeof p, "small.h5");
    pathf(q, sizeof q, "small-flip.h5");
    float model[41], mm[41], vv[41];
    for (int i = 0; i < 41; i++) {
        model[i] = (float)i * 0.5f;
        mm[i] = -(float)i;
        vv[i] = (float)(i * i);
    }
    ckpt_tensor t[3] = {{"classifier.weight", 0, 32, 2, {2, 16}}, {"classifier.bias", 32, 2, 1, {2}},
                        {"bert.pooler.dense.bias", 34, 7, 1, {7}}};
    ckpt_state s = base_state();
    if (ckpt_write(p, t, 3, model, mm, vv, &s, err)) fail_msg("%s", err);
    off_t n = file_size(p);
    unsigned char *orig = malloc((size_t)n);
    int fd = open(p, O_RDONLY);
    assert_int_equal(read(fd, orig, (size_t)n), n);
    close(fd);
    int detected = 0, harmless = 0;
    off_t *where = malloc((size_t)n * sizeof *where);
    size_t nwhere = 0;
#if defined(__SANITIZE_ADDRESS__)
    static const char *const dsets[] = {"/model/classifier.weight", "/model/classifier.bias",
                                        "/model/bert.pooler.dense.bias", "/optim/m/classifier.weight",
                                        "/optim/v/classifier.weight", "/tokenizer/vocab", "/state/metrics"};
    for (size_t k = 0; k < sizeof dsets / sizeof *dsets; k++) {
        haddr_t addr;
        hsize_t size;
        chunk0(p, dsets[k], &addr, &size);
        for (hsize_t b = 0; b < size && (off_t)(addr + b) < n; b++) where[nwhere++] = (off_t)(addr + b);
    }
    assert_true(nwhere > 400);
#else
    for (off_t at = 0; at < n; at += 17) where[nwhere++] = at;
#endif
    for (size_t w = 0; w < nwhere; w++) {
        off_t at = where[w];
        fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        orig[at] ^= 0x5a;
        assert_int_equal(write(fd, orig, (size_t)n), n);
        orig[at] ^= 0x5a;
        close(fd);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(20);
            float a[41], b[41], c[41];
            ckpt_state r;
            char e[IO_ERRLEN];
            if (ckpt_read(q, t, 3, a, b, c, &r, e)) {
                if (!strstr(e, q) || strchr(e, '\n')) _exit(3);
                _exit(1);
            }
            int same = !memcmp(a, model, sizeof a) && !memcmp(b, mm, sizeof b) && !memcmp(c, vv, sizeof c) &&
                       r.step == s.step && r.vocab_n == NVOCAB && r.metrics_len == s.metrics_len &&
                       !memcmp(r.metrics, s.metrics, s.metrics_len) && !strcmp(r.config_json, s.config_json);
            for (size_t i = 0; same && i < NVOCAB; i++) same = !strcmp(r.vocab[i], VOCAB[i]);
            ckpt_state_free(&r);
            _exit(same ? 0 : 2);
        }
        int st = 0;
        assert_true(waitpid(pid, &st, 0) == pid);
        if (WIFSIGNALED(st))
            fail_msg("byte %lld flipped: reader killed by signal %d%s", (long long)at, WTERMSIG(st),
                     WTERMSIG(st) == SIGALRM ? " (hang)" : "");
        int code = WEXITSTATUS(st);
        if (code == 2) fail_msg("byte %lld flipped: read succeeded with different contents", (long long)at);
        if (code == 3) fail_msg("byte %lld flipped: error line does not name the file", (long long)at);
        if (code == 1) detected++;
        else harmless++;
    }
    free(orig);
    free(where);
    printf("  sweep: %zu of %lld bytes flipped in turn (%s), %d detected, %d harmless\n", nwhere, (long long)n,
#if defined(__SANITIZE_ADDRESS__)
           "data chunks only under ASan",
#else
           "every 17th byte, metadata included",
#endif
           detected, harmless);
    assert_true(detected > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxh64_vectors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_no_optim),
        cmocka_unit_test(test_empty_state),
        cmocka_unit_test(test_h5_tools),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_unknown_version),
        cmocka_unit_test(test_other_config),
        cmocka_unit_test(test_unwritable),
        cmocka_unit_test(test_attr_limit),
        cmocka_unit_test(test_negative_control_tamper),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_byte_flip_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
#endif
