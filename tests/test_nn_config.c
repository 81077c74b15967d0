/* io: config.json parsing, presets, validation; the safetensors reader against
 * well-formed and hostile files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"

static int parse(const char *json, nn_config *c, char err[IO_ERRLEN])
{
    return io_config_parse(json, strlen(json), c, err);
}

static void test_presets(void **state)
{
    (void)state;
    nn_config c;
    char err[IO_ERRLEN];
    assert_int_equal(io_config_preset("base", &c, err), 0);
    assert_int_equal(c.hidden_size, 768);
    assert_int_equal(c.num_hidden_layers, 12);
    assert_int_equal(c.num_attention_heads, 12);
    assert_int_equal(c.intermediate_size, 3072);
    assert_int_equal(nn_config_param_count(&c), 109483778); /* BertForSequenceClassification, 2 labels */
    assert_int_equal(io_config_preset("minilm", &c, err), 0);
    assert_int_equal(c.hidden_size, 384);
    assert_int_equal(c.num_hidden_layers, 6);
    assert_int_equal(c.num_attention_heads, 12);
    assert_int_equal(c.intermediate_size, 1536);
    assert_int_equal(nn_config_validate(&c, err), 0);
    assert_int_equal(io_config_preset("tiny", &c, err), 0);
    assert_int_equal(nn_config_validate(&c, err), 0);
    assert_int_not_equal(io_config_preset("huge", &c, err), 0);
    assert_non_null(strstr(err, "huge"));
}

static void test_parse(void **state)
{
    (void)state;
    nn_config c;
    char err[IO_ERRLEN];
    const char *biobert = "{\"architectures\":[\"BertForMaskedLM\"],\"attention_probs_dropout_prob\":0.1,"
                          "\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,\"hidden_size\":768,"
                          "\"initializer_range\":0.02,\"intermediate_size\":3072,\"layer_norm_eps\":1e-12,"
                          "\"max_position_embeddings\":512,\"model_type\":\"bert\",\"num_attention_heads\":12,"
                          "\"num_hidden_layers\":12,\"pad_token_id\":0,\"position_embedding_type\":\"absolute\","
                          "\"type_vocab_size\":2,\"vocab_size\":28996,\"classifier_dropout\":null}";
    assert_int_equal(parse(biobert, &c, err), 0);
    assert_int_equal(c.vocab_size, 28996);
    assert_true(c.classifier_dropout < 0);
    assert_int_equal(c.num_labels, 2);
    assert_true(c.layer_norm_eps == 1e-12);
    /* id2label decides num_labels */
    assert_int_equal(parse("{\"id2label\":{\"0\":\"a\",\"1\":\"b\",\"2\":\"c\"},\"classifier_dropout\":0.3}", &c, err), 0);
    assert_int_equal(c.num_labels, 3);
    assert_true(c.classifier_dropout == 0.3);
    /* defaults = BertConfig() */
    assert_int_equal(parse("{}", &c, err), 0);
    assert_int_equal(c.hidden_size, 768);
    /* round trip through the writer */
    c.hidden_size = 64;
    c.num_attention_heads = 4;
    c.intermediate_size = 37;
    char *js = io_config_to_json(&c);
    assert_non_null(js);
    nn_config d;
    assert_int_equal(parse(js, &d, err), 0);
    assert_memory_equal(&c, &d, sizeof c);
    free(js);
}

static void test_reject(void **state)
{
    (void)state;
    nn_config c;
    char err[IO_ERRLEN];
    const char *bad[] = {
        "{\"hidden_act\":\"gelu_new\"}",
        "{\"hidden_act\":\"relu\"}",
        "{\"position_embedding_type\":\"relative_key\"}",
        "{\"model_type\":\"roberta\"}",
        "{\"hidden_size\":768,\"num_attention_heads\":7}",
        "{\"num_hidden_layers\":0}",
        "{\"num_hidden_layers\":-3}",
        "{\"hidden_size\":\"768\"}",
        "{\"hidden_size\":768.5}",
        "{\"vocab_size\":1e300}",
        "{\"vocab_size\":16777216,\"hidden_size\":65536,\"num_attention_heads\":1}", /* ~1e12 parameters */
        "{\"num_hidden_layers\":1000,\"hidden_size\":8192,\"num_attention_heads\":8}",
        "{\"hidden_dropout_prob\":1.0}",
        "{\"layer_norm_eps\":0}",
        "{\"pad_token_id\":30522}",
        "{\"num_labels\":1}",
        "{\"classifier_dropout\":-0.5}",
        "[1,2]",
        "{\"hidden_size\":",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = parse(bad[i], &c, err);
        if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
        assert_int_not_equal(rc, 0);
        assert_true(strlen(err) > 0);
        assert_int_equal(c.hidden_size, 0); /* output zeroed */
    }
    const char *why[] = {"gelu", "absolute", "multiple", "parameters"};
    assert_int_not_equal(parse(bad[0], &c, err), 0);
    assert_non_null(strstr(err, why[0]));
    assert_int_not_equal(parse(bad[2], &c, err), 0);
    assert_non_null(strstr(err, why[1]));
    assert_int_not_equal(parse(bad[4], &c, err), 0);
    assert_non_null(strstr(err, why[2]));
    assert_int_not_equal(parse(bad[10], &c, err), 0);
    assert_non_null(strstr(err, why[3]));
    assert_int_not_equal(io_config_load("/nonexistent/config.json", &c, err), 0);
}

/* --------------------------------------------------------------- safetensors */

static size_t build_st(uint8_t *buf, size_t cap, const char *header, const uint8_t *data, size_t dlen)
{
    size_t hl = strlen(header);
    assert_true(8 + hl + dlen <= cap);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (dlen) memcpy(buf + 8 + hl, data, dlen);
    return 8 + hl + dlen;
}

static void test_safetensors_dtypes(void **state)
{
    (void)state;
    uint8_t data[4 * 3 + 2 * 3 + 2 * 3 + 8];
    float f[3] = {1.5f, -2.25f, 3.0e-3f};
    memcpy(data, f, 12); /* little-endian host assumed by the test (x86/arm64) */
    const uint16_t h[3] = {0x3E00 /* 1.5 */, 0xC080 /* -2.25 */, 0x0001 /* 2^-24 */};
    memcpy(data + 12, h, 6);
    const uint16_t bf[3] = {0x3FC0 /* 1.5 */, 0xC010 /* -2.25 */, 0x7F80 /* inf */};
    memcpy(data + 18, bf, 6);
    int64_t pos = 7;
    memcpy(data + 24, &pos, 8);
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F16\",\"shape\":[1,3],\"data_offsets\":[12,18]},"
                      "\"c\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[18,24]},"
                      "\"p\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]}}";
    uint8_t buf[1024];
    size_t len = build_st(buf, sizeof buf, hdr, data, sizeof data);
    io_safetensors st;
    char err[IO_ERRLEN];
    assert_int_equal(io_safetensors_parse(buf, len, &st, err), 0);
    assert_int_equal(st.n, 4);
    float out[3];
    const io_st_tensor *t = io_safetensors_find(&st, "a");
    assert_int_equal(io_safetensors_read_f32(&st, t, out, 3, err), 0);
    assert_memory_equal(out, f, 12);
    t = io_safetensors_find(&st, "b");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(io_safetensors_read_f32(&st, t, out, 3, err), 0);
    assert_true(out[0] == 1.5f && out[1] == -2.25f && out[2] == 5.9604644775390625e-8f);
    t = io_safetensors_find(&st, "c");
    assert_int_equal(io_safetensors_read_f32(&st, t, out, 3, err), 0);
    assert_true(out[0] == 1.5f && out[1] == -2.25f && out[2] > 3e38f);
    assert_int_not_equal(io_safetensors_read_f32(&st, t, out, 2, err), 0); /* wrong count */
    t = io_safetensors_find(&st, "p");
    assert_int_not_equal(io_safetensors_read_f32(&st, t, out, 1, err), 0); /* I64 is listed, not read as f32 */
    assert_null(io_safetensors_find(&st, "__metadata__"));
    io_safetensors_free(&st);
    io_safetensors_free(&st); /* idempotent */
}

static void test_safetensors_hostile(void **state)
{
    (void)state;
    uint8_t data[64] = {0};
    uint8_t buf[2048];
    io_safetensors st;
    char err[IO_ERRLEN];
    const char *bad[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,20]}}",      /* size != shape */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}",   /* beyond the file */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",       /* end < begin */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",       /* overlap */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", /* overflow */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",       /* duplicate name */
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e30,4]}}",
        "{\"a\":5}",
        "[]",
        "{not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = build_st(buf, sizeof buf, bad[i], data, sizeof data);
        int rc = io_safetensors_parse(buf, len, &st, err);
        if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
        assert_int_not_equal(rc, 0);
        assert_null(st.tensors);
    }
    /* header length beyond the file, and a truncated file */
    size_t len = build_st(buf, sizeof buf, "{}", NULL, 0);
    buf[0] = 0xff;
    buf[5] = 0x7f;
    assert_int_not_equal(io_safetensors_parse(buf, len, &st, err), 0);
    assert_int_not_equal(io_safetensors_parse(buf, 5, &st, err), 0);
    /* a well-formed empty file is fine */
    len = build_st(buf, sizeof buf, "{}", NULL, 0);
    assert_int_equal(io_safetensors_parse(buf, len, &st, err), 0);
    assert_int_equal(st.n, 0);
    io_safetensors_free(&st);
}

static void test_safetensors_file_roundtrip(void **state)
{
    (void)state;
    char path[] = "/tmp/adebert_st_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[1] = {-0.5f};
    const char *names[2] = {"w", "bias"};
    const float *data[2] = {a, b};
    int nd[2] = {2, 1};
    int64_t shapes[2][IO_ST_MAX_DIMS] = {{2, 3}, {1}};
    char err[IO_ERRLEN];
    assert_int_equal(io_safetensors_write_f32(path, 2, names, data, nd, (const int64_t(*)[IO_ST_MAX_DIMS])shapes, err), 0);
    io_safetensors st;
    assert_int_equal(io_safetensors_open(path, &st, err), 0);
    const io_st_tensor *t = io_safetensors_find(&st, "w");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float out[6];
    assert_int_equal(io_safetensors_read_f32(&st, t, out, 6, err), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(io_safetensors_read_f32(&st, io_safetensors_find(&st, "bias"), out, 1, err), 0);
    assert_true(out[0] == -0.5f);
    io_safetensors_free(&st);
    /* truncate the file: the reader must refuse it */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 40), 0);
    fclose(f);
    assert_int_not_equal(io_safetensors_open(path, &st, err), 0);
    unlink(path);
    assert_int_not_equal(io_safetensors_open(path, &st, err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),           cmocka_unit_test(test_parse),
        cmocka_unit_test(test_reject),            cmocka_unit_test(test_safetensors_dtypes),
        cmocka_unit_test(test_safetensors_hostile), cmocka_unit_test(test_safetensors_file_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
