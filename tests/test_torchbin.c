/* io: the pytorch_model.bin reader (io_torchbin_*) against files torch.save wrote
 * (tests/reference/torchbin/, made by gen_torchbin_fixtures.py), compared element by
 * element with the values torch held; and against hostile pickles and archives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "io/io.h"

static char *fixture(const char *name)
{
    const char *src = getenv("ADEBERT_SOURCE_DIR");
    if (!src) src = ".";
    size_t n = strlen(src) + strlen(name) + 64;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/tests/reference/torchbin/%s", src, name);
    return p;
}

static uint8_t *slurp(const char *name, size_t *len)
{
    char *p = fixture(name);
    FILE *f = fopen(p, "rb");
    if (!f) fprintf(stderr, "cannot open %s (set ADEBERT_SOURCE_DIR to the repository root)\n", p);
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(p);
    *len = (size_t)n;
    return b;
}

static int open_fixture(const char *name, io_torchbin *b, char err[IO_ERRLEN])
{
    char *p = fixture(name);
    int rc = io_torchbin_open(p, b, err);
    free(p);
    return rc;
}

static int is_zeroed(const io_torchbin *b)
{
    static const io_torchbin z;
    return memcmp(b, &z, sizeof z) == 0;
}

#define QW "bert.encoder.layer.0.attention.self.query.weight"
#define QB "bert.encoder.layer.0.attention.self.query.bias"
#define KB "bert.encoder.layer.0.attention.self.key.bias"
#define WE "bert.embeddings.word_embeddings.weight"
#define DEC "cls.predictions.decoder.weight"

/* Every tensor of `name` equals expected.safetensors bit for bit. */
static void check_against_expected(const char *name, int legacy)
{
    io_torchbin b;
    io_safetensors ex;
    char err[IO_ERRLEN];
    if (open_fixture(name, &b, err)) fail_msg("%s", err);
    char *ep = fixture("expected.safetensors");
    if (io_safetensors_open(ep, &ex, err)) fail_msg("%s", err);
    free(ep);
    assert_int_equal(b.legacy, legacy);
    assert_int_equal(b.n, ex.n);
    assert_int_equal(b.n, 29);
    size_t compared = 0;
    for (size_t i = 0; i < ex.n; i++) {
        const io_st_tensor *e = &ex.tensors[i];
        long k = io_torchbin_find(&b, e->name);
        if (k < 0) fail_msg("%s: tensor %s missing", name, e->name);
        const io_tb_tensor *t = &b.tensors[k];
        assert_int_equal(t->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++) assert_int_equal(t->shape[d], e->shape[d]);
        assert_int_equal(t->numel, e->numel);
        float *got = malloc((size_t)e->numel * sizeof *got + 1), *want = malloc((size_t)e->numel * sizeof *want + 1);
        assert_non_null(got);
        assert_non_null(want);
        if (e->dtype == IO_DT_I64) {
            assert_int_equal(t->dtype, IO_DT_I64);
            assert_int_not_equal(io_torchbin_read_f32(&b, (size_t)k, got, (size_t)t->numel, err), 0);
            assert_non_null(strstr(err, "not Float/Half/BFloat16"));
        } else {
            assert_int_equal(io_safetensors_read_f32(&ex, e, want, (size_t)e->numel, err), 0);
            if (io_torchbin_read_f32(&b, (size_t)k, got, (size_t)t->numel, err)) fail_msg("%s", err);
            if (memcmp(got, want, (size_t)e->numel * sizeof *got) != 0) fail_msg("%s: %s differs", name, e->name);
            compared++;
        }
        free(got);
        free(want);
    }
    assert_int_equal(compared, 28);
    /* what the fixture is made of */
    long pe = io_torchbin_find(&b, "bert.embeddings.position_embeddings.weight"),
         tt = io_torchbin_find(&b, "bert.embeddings.token_type_embeddings.weight"), qw = io_torchbin_find(&b, QW),
         qb = io_torchbin_find(&b, QB), kb = io_torchbin_find(&b, KB), we = io_torchbin_find(&b, WE),
         dec = io_torchbin_find(&b, DEC);
    assert_true(pe >= 0 && tt >= 0 && qw >= 0 && qb >= 0 && kb >= 0 && we >= 0 && dec >= 0);
    assert_int_equal(b.tensors[pe].dtype, IO_DT_F16);
    assert_int_equal(b.tensors[tt].dtype, IO_DT_BF16);
    assert_int_equal(b.tensors[qw].stride[0], 1);
    assert_int_equal(b.tensors[qw].stride[1], 4);
    assert_int_equal(b.tensors[qb].offset, 3);
    assert_int_equal(b.storages[b.tensors[qb].storage].numel, 10);
    assert_int_equal(b.tensors[kb].offset, 1);
    assert_int_equal(b.tensors[kb].stride[0], 2);
    assert_int_equal(b.tensors[we].storage, b.tensors[dec].storage); /* tied: one storage */
    assert_int_equal(b.n_storages, 28);
    assert_true(io_torchbin_find(&b, "bert.embeddings.LayerNorm.gamma") >= 0);
    assert_int_equal(io_torchbin_find(&b, "no.such.tensor"), -1);
    /* read_f32 argument checks */
    float x[64];
    assert_int_not_equal(io_torchbin_read_f32(&b, (size_t)we, x, 3, err), 0);
    assert_non_null(strstr(err, "expected 3"));
    assert_int_not_equal(io_torchbin_read_f32(&b, b.n, x, 1, err), 0);
    io_safetensors_free(&ex);
    io_torchbin_free(&b);
    assert_true(is_zeroed(&b));
    io_torchbin_free(&b); /* twice is fine */
}

static void test_zip_matches_torch(void **state)
{
    (void)state;
    check_against_expected("state_zip.bin", 0);
}

static void test_legacy_matches_torch(void **state)
{
    (void)state;
    check_against_expected("state_legacy.bin", 1);
}

static void test_zip_and_legacy_same_order(void **state)
{
    (void)state;
    io_torchbin z, l;
    char err[IO_ERRLEN];
    assert_int_equal(open_fixture("state_zip.bin", &z, err), 0);
    assert_int_equal(open_fixture("state_legacy.bin", &l, err), 0);
    assert_int_equal(z.n, l.n);
    for (size_t i = 0; i < z.n; i++) assert_string_equal(z.tensors[i].name, l.tensors[i].name);
    assert_string_equal(z.tensors[0].name, WE); /* state dict order */
    io_torchbin_free(&z);
    io_torchbin_free(&l);
}

/* Negative control: a reader that ignored storage offsets and strides (reading
 * numel contiguous values from the start of the storage) would fail the comparison
 * above for the transposed and sliced tensors, so the fixture does exercise them. */
static void test_negative_control_offsets_matter(void **state)
{
    (void)state;
    io_torchbin b;
    char err[IO_ERRLEN];
    assert_int_equal(open_fixture("state_zip.bin", &b, err), 0);
    const char *names[] = {QW, QB, KB};
    for (int k = 0; k < 3; k++) {
        long i = io_torchbin_find(&b, names[k]);
        assert_true(i >= 0);
        const io_tb_tensor *t = &b.tensors[i];
        assert_int_equal(t->dtype, IO_DT_F32);
        float good[16], naive[16];
        assert_true(t->numel <= 16);
        assert_int_equal(io_torchbin_read_f32(&b, (size_t)i, good, (size_t)t->numel, err), 0);
        memcpy(naive, (const uint8_t *)b.map + b.storages[t->storage].begin, (size_t)t->numel * 4); /* little-endian host */
        assert_memory_not_equal(good, naive, (size_t)t->numel * 4);
    }
    /* and a contiguous tensor reads the same either way (the naive read is sound) */
    long i = io_torchbin_find(&b, "bert.encoder.layer.0.attention.self.value.weight");
    float good[16], naive[16];
    assert_int_equal(io_torchbin_read_f32(&b, (size_t)i, good, 16, err), 0);
    memcpy(naive, (const uint8_t *)b.map + b.storages[b.tensors[i].storage].begin, 64);
    assert_memory_equal(good, naive, 64);
    io_torchbin_free(&b);
}

static void expect_fixture_error(const char *name, const char *needle)
{
    io_torchbin b;
    char err[IO_ERRLEN] = "";
    memset(&b, 0x5a, sizeof b);
    int rc = open_fixture(name, &b, err);
    if (rc == 0) fail_msg("%s was accepted", name);
    assert_true(is_zeroed(&b));
    if (!strstr(err, needle)) fail_msg("%s: error '%s' lacks '%s'", name, err, needle);
    assert_non_null(strstr(err, name)); /* names the file */
    assert_null(strchr(err, '\n'));
}

static void test_malicious_fixtures(void **state)
{
    (void)state;
    expect_fixture_error("bad_os_system.bin", "os.system");
    expect_fixture_error("bad_eval.bin", "builtins.eval");
    expect_fixture_error("bad_missing_storage.bin", "has no entry");
    expect_fixture_error("bad_short_storage.bin", "holds 12 FloatStorage elements but its entry has only 44 bytes");
    expect_fixture_error("bad_deflated.bin", "compressed (method 8)");
    expect_fixture_error("bad_truncated.bin", "end-of-central-directory");
    expect_fixture_error("bad_cdir_offset.bin", "central directory");
    expect_fixture_error("no_such_file.bin", "cannot open");
    expect_fixture_error("", "not a regular file"); /* the directory */
}

/* ------------------------------------------------- hand-made archives */

typedef struct {
    uint8_t b[8192];
    size_t n;
} buf;

static void put(buf *o, const void *p, size_t n)
{
    assert_true(o->n + n <= sizeof o->b);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put_le(buf *o, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) { uint8_t c = (uint8_t)(v >> (8 * i)); put(o, &c, 1); }
}
static void op(buf *o, uint8_t c) { put(o, &c, 1); }
static void ustr(buf *o, const char *s)
{
    op(o, 'X');
    put_le(o, strlen(s), 4);
    put(o, s, strlen(s));
}
static void glob(buf *o, const char *mod, const char *name)
{
    op(o, 'c');
    put(o, mod, strlen(mod));
    op(o, '\n');
    put(o, name, strlen(name));
    op(o, '\n');
}
static void int1(buf *o, int v)
{
    op(o, 'K');
    op(o, (uint8_t)v);
}

/* A stored zip of entries archive/<names[i]>; zip64: sizes, offsets and counts
 * only in zip64 records (as a > 4 GiB file would have them). */
static void make_zip_ex(buf *z, int n, const char **names, const buf **data, int zip64)
{
    size_t lho[8];
    z->n = 0;
    for (int i = 0; i < n; i++) {
        lho[i] = z->n;
        size_t nl = strlen("archive/") + strlen(names[i]);
        put_le(z, 0x04034b50, 4);
        put_le(z, 20, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4);
        put_le(z, crc32(0, data[i]->b, (uInt)data[i]->n), 4);
        put_le(z, data[i]->n, 4), put_le(z, data[i]->n, 4), put_le(z, nl, 2), put_le(z, 0, 2);
        put(z, "archive/", 8), put(z, names[i], strlen(names[i]));
        put(z, data[i]->b, data[i]->n);
    }
    size_t cd = z->n;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen("archive/") + strlen(names[i]);
        put_le(z, 0x02014b50, 4);
        put_le(z, 20, 2), put_le(z, 20, 2), put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4);
        put_le(z, crc32(0, data[i]->b, (uInt)data[i]->n), 4);
        uint64_t big = 0xffffffffu;
        put_le(z, zip64 ? big : data[i]->n, 4), put_le(z, zip64 ? big : data[i]->n, 4), put_le(z, nl, 2);
        put_le(z, zip64 ? 4 + 24 : 0, 2), put_le(z, 0, 2);
        put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, 0, 4), put_le(z, zip64 ? big : lho[i], 4);
        put(z, "archive/", 8), put(z, names[i], strlen(names[i]));
        if (zip64) { /* extra 0x0001: uncompressed, compressed size, local header offset */
            put_le(z, 1, 2), put_le(z, 24, 2);
            put_le(z, data[i]->n, 8), put_le(z, data[i]->n, 8), put_le(z, lho[i], 8);
        }
    }
    size_t cdsize = z->n - cd;
    if (zip64) {
        size_t rec = z->n;
        put_le(z, 0x06064b50, 4), put_le(z, 44, 8), put_le(z, 45, 2), put_le(z, 45, 2), put_le(z, 0, 4);
        put_le(z, 0, 4), put_le(z, (uint64_t)n, 8), put_le(z, (uint64_t)n, 8), put_le(z, cdsize, 8), put_le(z, cd, 8);
        put_le(z, 0x07064b50, 4), put_le(z, 0, 4), put_le(z, rec, 8), put_le(z, 1, 4);
    }
    put_le(z, 0x06054b50, 4);
    put_le(z, 0, 2), put_le(z, 0, 2), put_le(z, zip64 ? 0xffff : (uint64_t)n, 2), put_le(z, zip64 ? 0xffff : (uint64_t)n, 2);
    put_le(z, zip64 ? 0xffffffffu : cdsize, 4), put_le(z, zip64 ? 0xffffffffu : cd, 4), put_le(z, 0, 2);
}

static void make_zip(buf *z, int n, const char **names, const buf **data)
{
    make_zip_ex(z, n, names, data, 0);
}

/* {"w": _rebuild_tensor_v2(storage('0', Float, numel), off, shape, stride, False, {})} */
static void tensor_pickle(buf *p, int numel, int off, int nd, const int *shape, const int *stride)
{
    p->n = 0;
    op(p, 0x80), op(p, 2), op(p, '}'), op(p, '(');
    ustr(p, "w");
    glob(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '('), op(p, '(');
    ustr(p, "storage"), glob(p, "torch", "FloatStorage"), ustr(p, "0"), ustr(p, "cpu"), int1(p, numel);
    op(p, 't'), op(p, 'Q');
    int1(p, off);
    op(p, '(');
    for (int d = 0; d < nd; d++) int1(p, shape[d]);
    op(p, 't'), op(p, '(');
    for (int d = 0; d < nd; d++) int1(p, stride[d]);
    op(p, 't'), op(p, 0x89), op(p, '}'), op(p, 't'), op(p, 'R'), op(p, 'u'), op(p, '.');
}

static int parse_tensor_zip(const buf *pkl, size_t storage_bytes, io_torchbin *b, char err[IO_ERRLEN])
{
    static buf z, data;
    data.n = storage_bytes;
    for (size_t i = 0; i < storage_bytes; i++) data.b[i] = (uint8_t)i;
    const char *names[] = {"data.pkl", "data/0"};
    const buf *d[] = {pkl, &data};
    make_zip(&z, 2, names, d);
    return io_torchbin_parse(z.b, z.n, b, err);
}

static void expect_pickle_error(const buf *pkl, const char *needle)
{
    io_torchbin b;
    char err[IO_ERRLEN] = "";
    int rc = parse_tensor_zip(pkl, 64, &b, err);
    if (rc == 0) fail_msg("pickle accepted (wanted '%s')", needle);
    assert_true(is_zeroed(&b));
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_handmade_tensor_bounds(void **state)
{
    (void)state;
    buf p;
    io_torchbin b;
    char err[IO_ERRLEN];
    int sh[2] = {2, 2}, st[2] = {2, 1};
    /* well-formed: 2x2 over 4 floats */
    tensor_pickle(&p, 4, 0, 2, sh, st);
    if (parse_tensor_zip(&p, 16, &b, err)) fail_msg("%s", err);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.tensors[0].name, "w");
    assert_int_equal(b.legacy, 0);
    io_torchbin_free(&b);
    /* offset 1 reaches element 4 of 4 */
    tensor_pickle(&p, 4, 1, 2, sh, st);
    expect_pickle_error(&p, "addresses element 4 of a storage of 4");
    /* strides past the storage */
    int st2[2] = {3, 1};
    tensor_pickle(&p, 4, 0, 2, sh, st2);
    expect_pickle_error(&p, "addresses element 4");
    int big[2] = {200, 1};
    tensor_pickle(&p, 4, 0, 2, sh, big);
    expect_pickle_error(&p, "strides reach past its storage");
    /* offset past the storage */
    tensor_pickle(&p, 4, 9, 2, sh, st);
    expect_pickle_error(&p, "storage offset 9 past");
    /* the storage claims more elements than its entry holds */
    tensor_pickle(&p, 5, 0, 2, sh, st);
    if (parse_tensor_zip(&p, 16, &b, err) == 0) fail_msg("short storage accepted");
    assert_non_null(strstr(err, "holds 5 FloatStorage elements but its entry has only 16 bytes"));
    /* an empty tensor is fine, at the very end of its storage too */
    int sh0[2] = {0, 3};
    tensor_pickle(&p, 4, 4, 2, sh0, st);
    if (parse_tensor_zip(&p, 16, &b, err)) fail_msg("%s", err);
    assert_int_equal(b.tensors[0].numel, 0);
    assert_int_equal(io_torchbin_read_f32(&b, 0, NULL, 0, err), 0);
    io_torchbin_free(&b);
    /* shape and stride of different lengths */
    p.n = 0;
    tensor_pickle(&p, 4, 0, 2, sh, st);
    /* 9 dims */
    int s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    tensor_pickle(&p, 4, 0, 9, s9, s9);
    expect_pickle_error(&p, "9 dims");
}

/* The same archive in zip64 form reads the same; a zip64 record pointing
 * outside the file is refused. */
static void test_handmade_zip64(void **state)
{
    (void)state;
    static buf p, z, data;
    int sh[2] = {2, 2}, st[2] = {2, 1};
    tensor_pickle(&p, 4, 0, 2, sh, st);
    data.n = 16;
    float v[4] = {1.5f, -2.0f, 3.25f, 0.0f};
    memcpy(data.b, v, 16); /* little-endian host */
    const char *names[] = {"data.pkl", "data/0"};
    const buf *d[] = {&p, &data};
    make_zip_ex(&z, 2, names, d, 1);
    io_torchbin b;
    char err[IO_ERRLEN];
    if (io_torchbin_parse(z.b, z.n, &b, err)) fail_msg("%s", err);
    float got[4];
    assert_int_equal(io_torchbin_read_f32(&b, 0, got, 4, err), 0);
    assert_memory_equal(got, v, 16);
    io_torchbin_free(&b);
    /* the locator's record offset (8 bytes at EOCD - 20 + 8) points past the end */
    size_t loc = z.n - 22 - 20;
    for (int i = 0; i < 8; i++) z.b[loc + 8 + i] = 0x7f;
    assert_int_not_equal(io_torchbin_parse(z.b, z.n, &b, err), 0);
    assert_non_null(strstr(err, "zip64 end-of-central-directory record outside the file"));
}

static void pkl_begin(buf *p)
{
    p->n = 0;
    op(p, 0x80), op(p, 2);
}

static void test_handmade_refusals(void **state)
{
    (void)state;
    buf p;
    /* any other global, however spelled */
    pkl_begin(&p), glob(&p, "builtins", "exec"), ustr(&p, "x"), op(&p, 0x85), op(&p, 'R'), op(&p, '.');
    expect_pickle_error(&p, "builtins.exec");
    pkl_begin(&p), glob(&p, "torch", "load"), op(&p, '.');
    expect_pickle_error(&p, "torch.load");
    pkl_begin(&p), glob(&p, "torch._utils", "_rebuild_tensor_v3"), op(&p, '.');
    expect_pickle_error(&p, "_rebuild_tensor_v3");
    pkl_begin(&p), glob(&p, "torch", "ComplexFloatStorage"), op(&p, '.');
    expect_pickle_error(&p, "ComplexFloatStorage");
    /* protocol-4 STACK_GLOBAL gets the same allow-list */
    pkl_begin(&p), ustr(&p, "posix"), ustr(&p, "system"), op(&p, 0x93), op(&p, '.');
    expect_pickle_error(&p, "posix.system");
    /* object-building opcodes: INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1, PERSID (text) */
    const uint8_t bad_ops[] = {'i', 'o', 0x81, 0x92, 0x82, 'P', 'I', 'S', 'V', 'L'};
    for (size_t k = 0; k < sizeof bad_ops; k++) {
        pkl_begin(&p), op(&p, '('), op(&p, bad_ops[k]), op(&p, '.');
        expect_pickle_error(&p, "refused");
    }
    /* a storage class called, OrderedDict with arguments */
    pkl_begin(&p), glob(&p, "torch", "FloatStorage"), op(&p, ')'), op(&p, 'R'), op(&p, '.');
    expect_pickle_error(&p, "FloatStorage called directly");
    pkl_begin(&p), glob(&p, "collections", "OrderedDict"), ustr(&p, "x"), op(&p, 0x85), op(&p, 'R'), op(&p, '.');
    expect_pickle_error(&p, "OrderedDict called with arguments");
    /* BUILD on anything but a dict */
    pkl_begin(&p), op(&p, ']'), op(&p, '}'), op(&p, 'b'), op(&p, '.');
    expect_pickle_error(&p, "BUILD");
    /* persistent ids that are not storages */
    pkl_begin(&p), ustr(&p, "module"), op(&p, 0x85), op(&p, 'Q'), op(&p, '.');
    expect_pickle_error(&p, "not a ('storage', ...) tuple");
    /* not a dict at the top; a dict holding a non-tensor */
    pkl_begin(&p), op(&p, ']'), op(&p, '.');
    expect_pickle_error(&p, "not a dict of tensors");
    pkl_begin(&p), op(&p, '}'), ustr(&p, "x"), int1(&p, 3), op(&p, 's'), op(&p, '.');
    expect_pickle_error(&p, "entry x is not a tensor");
    /* memo misuse, stack misuse, no STOP, unknown protocol */
    pkl_begin(&p), op(&p, 'h'), op(&p, 7), op(&p, '.');
    expect_pickle_error(&p, "memo index 7 read before it was set");
    pkl_begin(&p), op(&p, 'N'), op(&p, 'r'), put_le(&p, 0xffffffffu, 4), op(&p, '.');
    expect_pickle_error(&p, "memo index 4294967295 too large");
    pkl_begin(&p), op(&p, 's'), op(&p, '.');
    expect_pickle_error(&p, "stack underflow");
    pkl_begin(&p), op(&p, '}');
    expect_pickle_error(&p, "ends without STOP");
    p.n = 0, op(&p, 0x80), op(&p, 9), op(&p, '.');
    expect_pickle_error(&p, "protocol 9");
    pkl_begin(&p), op(&p, 'X'), put_le(&p, 0x7fffffff, 4), op(&p, '.');
    expect_pickle_error(&p, "truncated string");
    /* a string running past the pickle into the following zip bytes */
    pkl_begin(&p), op(&p, 'X'), put_le(&p, 40, 4), op(&p, '.');
    expect_pickle_error(&p, "truncated string");
    /* deep MARK nesting and a huge stack are capped, not recursed into */
    pkl_begin(&p);
    for (int k = 0; k < 5000; k++) op(&p, '(');
    op(&p, '.');
    expect_pickle_error(&p, "nested MARKs");
}

static void test_handmade_stack_cap(void **state)
{
    (void)state;
    /* 70000 NONEs through memo gets: one byte each would exceed buf; use a malloc'd pickle */
    size_t n = 70000;
    uint8_t *pkl = malloc(n + 8);
    assert_non_null(pkl);
    size_t k = 0;
    pkl[k++] = 0x80, pkl[k++] = 2;
    for (size_t i = 0; i < n; i++) pkl[k++] = 'N';
    pkl[k++] = '.';
    /* zip it by hand: only data.pkl */
    size_t zl = k + 200;
    uint8_t *z = malloc(zl);
    assert_non_null(z);
    size_t o = 0;
#define LE(v, w) do { for (int i_ = 0; i_ < (w); i_++) z[o++] = (uint8_t)((uint64_t)(v) >> (8 * i_)); } while (0)
    uint32_t crc = (uint32_t)crc32(0, pkl, (uInt)k);
    LE(0x04034b50, 4); LE(20, 2); LE(0, 2); LE(0, 2); LE(0, 4); LE(crc, 4); LE(k, 4); LE(k, 4); LE(16, 2); LE(0, 2);
    memcpy(z + o, "archive/data.pkl", 16), o += 16;
    memcpy(z + o, pkl, k), o += k;
    size_t cd = o;
    LE(0x02014b50, 4); LE(20, 2); LE(20, 2); LE(0, 2); LE(0, 2); LE(0, 4); LE(crc, 4); LE(k, 4); LE(k, 4); LE(16, 2);
    LE(0, 2); LE(0, 2); LE(0, 2); LE(0, 2); LE(0, 4); LE(0, 4);
    memcpy(z + o, "archive/data.pkl", 16), o += 16;
    size_t cds = o - cd;
    LE(0x06054b50, 4); LE(0, 2); LE(0, 2); LE(1, 2); LE(1, 2); LE(cds, 4); LE(cd, 4); LE(0, 2);
#undef LE
    io_torchbin b;
    char err[IO_ERRLEN];
    assert_int_not_equal(io_torchbin_parse(z, o, &b, err), 0);
    assert_non_null(strstr(err, "stack deeper than"));
    free(z);
    free(pkl);
}

/* Every truncation of both real files fails cleanly; every single-byte corruption
 * either fails cleanly or yields a table whose tensors all read (ASan checks). */
static void sweep(const char *name)
{
    size_t len;
    uint8_t *f = slurp(name, &len);
    io_torchbin b;
    char err[IO_ERRLEN];
    for (size_t cut = 0; cut < len; cut++) {
        if (io_torchbin_parse(f, cut, &b, err) == 0) fail_msg("%s cut at %zu accepted", name, cut);
        assert_true(is_zeroed(&b));
    }
    size_t accepted = 0;
    float *x = malloc(64 * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 2; v++) {
            uint8_t keep = f[i];
            f[i] = v ? (uint8_t)(keep ^ 0xff) : (uint8_t)(keep + 1);
            if (io_torchbin_parse(f, len, &b, err) == 0) {
                accepted++;
                for (size_t t = 0; t < b.n; t++) {
                    size_t n = (size_t)b.tensors[t].numel;
                    if (n > 64) {
                        float *y = realloc(x, n * sizeof *x);
                        assert_non_null(y);
                        x = y;
                    }
                    (void)io_torchbin_read_f32(&b, t, x, n, err);
                }
                io_torchbin_free(&b);
            }
            f[i] = keep;
        }
    }
    assert_int_equal(io_torchbin_parse(f, len, &b, err), 0);
    io_torchbin_free(&b);
    print_message("%s: %zu truncations refused, %zu of %zu one-byte corruptions parse (bytes no check covers)\n", name, len,
                  accepted, 2 * len);
    free(x);
    free(f);
}

/* A flipped bit in the weights of a zip file is caught by the entry's CRC-32. */
static void test_zip_crc(void **state)
{
    (void)state;
    size_t len;
    uint8_t *f = slurp("state_zip.bin", &len);
    io_torchbin b;
    char err[IO_ERRLEN];
    assert_int_equal(io_torchbin_parse(f, len, &b, err), 0);
    size_t at = (size_t)b.storages[b.tensors[0].storage].begin + 5;
    io_torchbin_free(&b);
    f[at] ^= 0x01;
    assert_int_not_equal(io_torchbin_parse(f, len, &b, err), 0);
    assert_non_null(strstr(err, "data/0 fails its CRC-32 check"));
    free(f);
}

static void test_sweep_zip(void **state)
{
    (void)state;
    sweep("state_zip.bin");
}

static void test_sweep_legacy(void **state)
{
    (void)state;
    sweep("state_legacy.bin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zip_matches_torch),
        cmocka_unit_test(test_legacy_matches_torch),
        cmocka_unit_test(test_zip_and_legacy_same_order),
        cmocka_unit_test(test_negative_control_offsets_matter),
        cmocka_unit_test(test_malicious_fixtures),
        cmocka_unit_test(test_handmade_tensor_bounds),
        cmocka_unit_test(test_handmade_refusals),
        cmocka_unit_test(test_handmade_zip64),
        cmocka_unit_test(test_handmade_stack_cap),
        cmocka_unit_test(test_zip_crc),
        cmocka_unit_test(test_sweep_zip),
        cmocka_unit_test(test_sweep_legacy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
