/* Hugging Face import/export (io/hf.c, launch/hf_io.c) against the fixtures of
 * tests/reference/hf, made by tests/reference/gen_hf_models.py with PyTorch +
 * Transformers: every weight format and name variant is imported and adebert's
 * logits on fixed sequences are compared with HF's float64 logits of the same
 * (rounded) weights: ||a - ref|| / ||ref|| <= 1e-4 and max|a - ref| <= 1e-4 max|ref|.
 * A missing pooler/classifier must equal adebert's own HF init from the seed; it is
 * then replaced by the reference values so the logits check the rest. Also: name
 * mapping, tokenizer_config.json, the bad fixtures, and the exported directory
 * (safetensors metadata, bit-exact tensors, config, vocab, casing, reload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/hf.h"
#include "io/io.h"
#include "launch/cli.h"
#include "launch/hf_io.h"
#include "nn/nn.h"
#include "nn_test_util.h"

static char FIX[1024];
static cJSON *EXP;
static nn_backend *BE;
#define SEED 42

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("ADEBERT_SOURCE_DIR");
    snprintf(FIX, sizeof FIX, "%s/tests/reference/hf", src ? src : ".");
    char path[1200];
    snprintf(path, sizeof path, "%s/expected.json", FIX);
    char *t = slurp(path, NULL);
    if (!t) {
        fprintf(stderr, "%s missing (set ADEBERT_SOURCE_DIR to the repository root)\n", path);
        return -1;
    }
    EXP = cJSON_Parse(t);
    free(t);
    BE = test_backend();
    return EXP && BE ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(EXP);
    nn_backend_destroy(BE);
    return 0;
}

static void fix_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", FIX, name);
}

static nn_model *make_model(const nn_config *mc)
{
    nn_model *m = NULL;
    char err[NN_ERRLEN];
    int64_t L = mc->max_position_embeddings;
    if (nn_model_create(&m, mc, BE, 8 * L, 8, L, err)) fail_msg("%s", err);
    return m;
}

/* inspect + model + weights; NULL (err filled) when loading fails; the reports of
 * the last call are in NOTES */
static char NOTES[4096];
static nn_model *load_dir(const char *dir, int flag, nn_config *mc, io_vocab **v, int *lc, char *err)
{
    NOTES[0] = 0;
    if (hfio_inspect("test", dir, flag, mc, v, lc, NOTES, sizeof NOTES, err)) return NULL;
    nn_model *m = make_model(mc);
    if (hfio_load_weights("test", dir, m, SEED, NOTES, sizeof NOTES, err)) {
        nn_model_free(m);
        io_vocab_free(*v);
        *v = NULL;
        return NULL;
    }
    return m;
}

static float *params_of(nn_model *m)
{
    size_t n = nn_model_num_params(m);
    float *p = malloc(n * sizeof *p);
    char err[NN_ERRLEN];
    assert_int_equal(nn_model_get_params(m, p, n, err), 0);
    return p;
}

/* logits of EXP.seqs (nseq x num_labels, malloc'd) */
static float *run_logits(nn_model *m, int64_t *nseq_out)
{
    const cJSON *seqs = cJSON_GetObjectItem(EXP, "seqs");
    int64_t ns = cJSON_GetArraySize(seqs), nt = 0;
    for (int64_t s = 0; s < ns; s++) nt += cJSON_GetArraySize(cJSON_GetArrayItem(seqs, (int)s));
    int32_t *ids = malloc((size_t)nt * sizeof *ids), *off = malloc((size_t)(ns + 1) * sizeof *off);
    off[0] = 0;
    int64_t k = 0;
    for (int64_t s = 0; s < ns; s++) {
        const cJSON *q = cJSON_GetArrayItem(seqs, (int)s);
        for (int i = 0; i < cJSON_GetArraySize(q); i++) ids[k++] = (int32_t)cJSON_GetArrayItem(q, i)->valuedouble;
        off[s + 1] = (int32_t)k;
    }
    nn_batch b;
    memset(&b, 0, sizeof b);
    b.nseq = ns;
    b.ids = ids;
    b.offsets = off;
    b.loss_denominator = 1.0;
    float *lg = malloc((size_t)ns * (size_t)nn_model_config(m)->num_labels * sizeof *lg);
    float loss;
    char err[NN_ERRLEN];
    if (nn_model_forward(m, &b, &loss, lg, err)) fail_msg("forward: %s", err);
    free(ids);
    free(off);
    *nseq_out = ns;
    return lg;
}

static void check_logits(const float *lg, int64_t ns, int64_t nl, const char *ref_key, const char *what)
{
    const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(EXP, "logits"), ref_key);
    assert_int_equal(cJSON_GetArraySize(ref), ns);
    double d2 = 0, r2 = 0, dmax = 0, rmax = 0;
    for (int64_t s = 0; s < ns; s++)
        for (int64_t j = 0; j < nl; j++) {
            double r = cJSON_GetArrayItem(cJSON_GetArrayItem(ref, (int)s), (int)j)->valuedouble;
            double d = (double)lg[s * nl + j] - r;
            d2 += d * d;
            r2 += r * r;
            if (fabs(d) > dmax) dmax = fabs(d);
            if (fabs(r) > rmax) rmax = fabs(r);
        }
    double rel = sqrt(d2 / r2);
    if (!(rel <= 1e-4 && dmax <= 1e-4 * rmax))
        fail_msg("%s: logits differ from HF (%s): relative L2 %.3g, max %.3g of %.3g", what, ref_key, rel, dmax, rmax);
}

/* ------------------------------------------------------------------ names */

static void test_canonical_names(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        io_hf_name_kind kind;
        const char *out;
    } cases[] = {
        {"bert.embeddings.word_embeddings.weight", IO_HF_NAME_PARAM, "bert.embeddings.word_embeddings.weight"},
        {"embeddings.word_embeddings.weight", IO_HF_NAME_PARAM, "bert.embeddings.word_embeddings.weight"},
        {"encoder.layer.3.output.LayerNorm.gamma", IO_HF_NAME_PARAM, "bert.encoder.layer.3.output.LayerNorm.weight"},
        {"bert.embeddings.LayerNorm.beta", IO_HF_NAME_PARAM, "bert.embeddings.LayerNorm.bias"},
        {"pooler.dense.bias", IO_HF_NAME_PARAM, "bert.pooler.dense.bias"},
        {"classifier.weight", IO_HF_NAME_PARAM, "classifier.weight"},
        {"cls.predictions.decoder.weight", IO_HF_NAME_IGNORED, NULL},
        {"cls.seq_relationship.bias", IO_HF_NAME_IGNORED, NULL},
        {"bert.embeddings.position_ids", IO_HF_NAME_IGNORED, NULL},
        {"embeddings.position_ids", IO_HF_NAME_IGNORED, NULL},
        {"bert.embeddings.token_type_ids", IO_HF_NAME_IGNORED, NULL},
        {"bert.classifier.weight", IO_HF_NAME_UNKNOWN, NULL},
        {"lm_head.bias", IO_HF_NAME_UNKNOWN, NULL},
        {"roberta.embeddings.word_embeddings.weight", IO_HF_NAME_UNKNOWN, NULL},
        {"", IO_HF_NAME_UNKNOWN, NULL},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        io_hf_name_kind k = io_hf_canonical_name(cases[i].in, out, sizeof out);
        if (k != cases[i].kind) fail_msg("%s: kind %d, want %d", cases[i].in, (int)k, (int)cases[i].kind);
        if (cases[i].out) assert_string_equal(out, cases[i].out);
    }
    /* too small an output buffer is never overrun */
    char tiny[8];
    assert_int_equal(io_hf_canonical_name("embeddings.LayerNorm.gamma", tiny, sizeof tiny), IO_HF_NAME_UNKNOWN);
}

/* --------------------------------------------------------------- variants */

static int in_list(const cJSON *list, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, list) if (cJSON_IsString(x) && !strcmp(x->valuestring, name)) return 1;
    return 0;
}

static void test_variants(void **state)
{
    (void)state;
    char f32dir[1200];
    fix_dir(f32dir, sizeof f32dir, "st_f32");
    io_hf_weights ref;
    char err[HFIO_ERRLEN];
    if (io_hf_weights_open(f32dir, &ref, err)) fail_msg("%s", err);
    const cJSON *vars = cJSON_GetObjectItem(EXP, "variants"), *v;
    int n_good = 0, n_bad = 0;
    cJSON_ArrayForEach(v, vars)
    {
        char dir[1200];
        fix_dir(dir, sizeof dir, v->string);
        const cJSON *error = cJSON_GetObjectItem(v, "error");
        nn_config mc;
        io_vocab *vocab = NULL;
        int lc = -1;
        nn_model *m = load_dir(dir, -1, &mc, &vocab, &lc, err);
        if (cJSON_IsString(error)) {
            if (m) fail_msg("%s: imported, want an error", v->string);
            if (!strstr(err, error->valuestring)) fail_msg("%s: error '%s' lacks '%s'", v->string, err, error->valuestring);
            assert_null(strchr(err, '\n'));
            n_bad++;
            continue;
        }
        if (!m) fail_msg("%s: %s", v->string, err);
        assert_int_equal(lc, cJSON_IsTrue(cJSON_GetObjectItem(v, "lowercase")));
        /* reports: each missing and each unexpected tensor named, nothing else */
        const cJSON *x;
        int n_named = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(v, "missing")) n_named++;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(v, "unexpected")) n_named++;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(v, "missing")) if (!strstr(NOTES, x->valuestring))
            fail_msg("%s: %s not reported: %s", v->string, x->valuestring, NOTES);
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(v, "unexpected")) if (!strstr(NOTES, x->valuestring))
            fail_msg("%s: %s not reported: %s", v->string, x->valuestring, NOTES);
        if (!n_named && strstr(NOTES, "tensor")) fail_msg("%s: unexpected report: %s", v->string, NOTES);
        if (strstr(NOTES, "cls.") || strstr(NOTES, "position_ids")) fail_msg("%s: reports ignored tensors: %s", v->string, NOTES);
        /* missing tensors hold adebert's init from the seed: compare with a fresh one */
        const cJSON *missing = cJSON_GetObjectItem(v, "missing");
        nn_model *fresh = make_model(&mc);
        assert_int_equal(nn_model_init_weights(fresh, SEED, err), 0);
        float *p = params_of(m), *q = params_of(fresh);
        size_t np;
        const nn_param *tab = nn_model_params(m, &np);
        for (size_t i = 0; i < np; i++) {
            int same = !memcmp(p + tab[i].offset, q + tab[i].offset, tab[i].numel * sizeof *p);
            if (in_list(missing, tab[i].name)) {
                if (!same) fail_msg("%s: %s was not initialised from the seed", v->string, tab[i].name);
                /* replace it with the reference value */
                size_t k;
                for (k = 0; k < io_hf_weights_count(&ref) && strcmp(io_hf_weights_name(&ref, k), tab[i].name); k++)
                    ;
                assert_true(k < io_hf_weights_count(&ref));
                assert_int_equal(io_hf_weights_read_f32(&ref, k, p + tab[i].offset, tab[i].numel, err), 0);
            } else if (same && tab[i].numel > 1) {
                fail_msg("%s: %s still holds the init values", v->string, tab[i].name);
            }
        }
        assert_int_equal(nn_model_set_params(m, p, nn_model_num_params(m), err), 0);
        int64_t ns;
        float *lg = run_logits(m, &ns);
        check_logits(lg, ns, mc.num_labels, cJSON_GetObjectItem(v, "ref")->valuestring, v->string);
        free(lg);
        free(p);
        free(q);
        nn_model_free(fresh);
        nn_model_free(m);
        io_vocab_free(vocab);
        n_good++;
    }
    io_hf_weights_free(&ref);
    assert_true(n_good >= 9);
    assert_true(n_bad >= 3);
}

/* the three encodings of one model agree to their rounding */
static void test_f32_formats_identical(void **state)
{
    (void)state;
    static const char *const same[] = {"bin_zip", "bin_legacy", "noprefix", "gammabeta"};
    char dir[1200], err[HFIO_ERRLEN];
    nn_config mc;
    io_vocab *v = NULL;
    int lc;
    fix_dir(dir, sizeof dir, "st_f32");
    nn_model *a = load_dir(dir, -1, &mc, &v, &lc, err);
    assert_non_null(a);
    io_vocab_free(v);
    float *pa = params_of(a);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        fix_dir(dir, sizeof dir, same[i]);
        nn_model *b = load_dir(dir, -1, &mc, &v, &lc, err);
        if (!b) fail_msg("%s: %s", same[i], err);
        io_vocab_free(v);
        float *pb = params_of(b);
        if (memcmp(pa, pb, nn_model_num_params(a) * sizeof *pa)) fail_msg("%s: parameters differ from st_f32", same[i]);
        free(pb);
        nn_model_free(b);
    }
    free(pa);
    nn_model_free(a);
}

/* ------------------------------------------------------- scratch directories */

static void tmp_dir(char *out, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/adebert_test_hf_XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(out));
}

static void rm_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[1400], err[IO_ERRLEN];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    assert_int_equal(io_hf_write_text(p, text, err), 0);
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    size_t n;
    char *t = slurp(a, &n);
    assert_non_null(t);
    FILE *f = fopen(b, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(t, 1, n, f), n);
    fclose(f);
    free(t);
}

static void test_tokenizer_config(void **state)
{
    (void)state;
    char d[1024], notes[256], err[IO_ERRLEN];
    int present, dlc;
    tmp_dir(d, sizeof d);
    assert_int_equal(io_hf_tokenizer_config(d, &present, &dlc, notes, sizeof notes, err), 0);
    assert_int_equal(present, 0);
    assert_int_equal(dlc, 1);
    put(d, IO_HF_TOKENIZER_CONFIG, "{\"tokenizer_class\": \"BertTokenizer\"}");
    assert_int_equal(io_hf_tokenizer_config(d, &present, &dlc, notes, sizeof notes, err), 0);
    assert_int_equal(present, 1);
    assert_int_equal(dlc, 1);
    assert_string_equal(notes, "");
    put(d, IO_HF_TOKENIZER_CONFIG, "{\"do_lower_case\": false, \"strip_accents\": true}");
    assert_int_equal(io_hf_tokenizer_config(d, &present, &dlc, notes, sizeof notes, err), 0);
    assert_int_equal(dlc, 0);
    assert_non_null(strstr(notes, "strip_accents"));
    put(d, IO_HF_TOKENIZER_CONFIG, "{\"do_lower_case\": \"yes\"}");
    assert_int_not_equal(io_hf_tokenizer_config(d, &present, &dlc, notes, sizeof notes, err), 0);
    assert_non_null(strstr(err, "do_lower_case"));
    put(d, IO_HF_TOKENIZER_CONFIG, "[1, 2");
    assert_int_not_equal(io_hf_tokenizer_config(d, &present, &dlc, notes, sizeof notes, err), 0);
    assert_non_null(strstr(err, "not a JSON object"));
    rm_flat(d);
}

static void test_directory_errors(void **state)
{
    (void)state;
    char d[1024], src[1200], err[HFIO_ERRLEN], path[1400];
    nn_config mc;
    io_vocab *v = NULL;
    int lc;
    fix_dir(src, sizeof src, "st_f32");
    tmp_dir(d, sizeof d);
    /* no config.json */
    assert_int_not_equal(hfio_inspect("test", d, -1, &mc, &v, &lc, NULL, 0, err), 0);
    assert_non_null(strstr(err, "config.json"));
    assert_int_equal(hfio_is_model_dir(d), 0);
    copy_file(src, d, IO_HF_CONFIG);
    assert_int_equal(hfio_is_model_dir(d), 1);
    /* no vocab.txt */
    assert_int_not_equal(hfio_inspect("test", d, -1, &mc, &v, &lc, NULL, 0, err), 0);
    assert_non_null(strstr(err, "vocab.txt"));
    assert_null(v);
    copy_file(src, d, IO_HF_VOCAB);
    assert_int_equal(hfio_inspect("test", d, 1, &mc, &v, &lc, NULL, 0, err), 0);
    assert_int_equal(lc, 1); /* the flag wins */
    io_vocab_free(v);
    v = NULL;
    /* no weights */
    assert_int_equal(hfio_has_weights(d), 0);
    nn_model *m = make_model(&mc);
    assert_int_not_equal(hfio_load_weights("test", d, m, SEED, NULL, 0, err), 0);
    assert_non_null(strstr(err, "model.safetensors"));
    /* sharded */
    put(d, "model.safetensors.index.json", "{}");
    assert_int_not_equal(hfio_load_weights("test", d, m, SEED, NULL, 0, err), 0);
    assert_non_null(strstr(err, "sharded"));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
    unlink(path);
    /* weights whose shapes do not match config.json */
    copy_file(src, d, IO_HF_SAFETENSORS);
    assert_int_equal(hfio_has_weights(d), 1);
    nn_model_free(m);
    nn_config wide = mc;
    wide.intermediate_size = 40;
    m = make_model(&wide);
    assert_int_not_equal(hfio_load_weights("test", d, m, SEED, NULL, 0, err), 0);
    if (!strstr(err, "has shape [32") || !strstr(err, "config.json implies [40")) fail_msg("%s", err);
    nn_model_free(m);
    /* a vocab larger than vocab_size */
    snprintf(path, sizeof path, "%s/%s", d, IO_HF_CONFIG);
    size_t n;
    char *cfg = slurp(path, &n);
    char *at = strstr(cfg, "\"vocab_size\": 160");
    assert_non_null(at);
    memcpy(at, "\"vocab_size\": 150", 17);
    put(d, IO_HF_CONFIG, cfg);
    free(cfg);
    assert_int_not_equal(hfio_inspect("test", d, -1, &mc, &v, &lc, NULL, 0, err), 0);
    assert_non_null(strstr(err, "vocab_size"));
    /* not a directory */
    assert_int_not_equal(hfio_inspect("test", path, -1, &mc, &v, &lc, NULL, 0, err), 0);
    assert_non_null(strstr(err, "not a directory"));
    rm_flat(d);
}

/* ----------------------------------------------------------------- export */

static void test_export(void **state)
{
    (void)state;
    char src[1200], d[1024], err[HFIO_ERRLEN], path[1400];
    nn_config mc, mc2;
    io_vocab *v = NULL, *v2 = NULL;
    int lc, lc2;
    fix_dir(src, sizeof src, "st_f32");
    nn_model *m = load_dir(src, -1, &mc, &v, &lc, err);
    assert_non_null(m);
    assert_int_equal(lc, 0);
    tmp_dir(d, sizeof d);
    assert_int_equal(hfio_write_dir(d, m, &mc, v, lc, 20, err), 0);

    /* model.safetensors: metadata, F32, every tensor bit-equal to the source file */
    snprintf(path, sizeof path, "%s/%s", d, IO_HF_SAFETENSORS);
    size_t n;
    char *blob = slurp(path, &n);
    assert_non_null(blob);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)blob[i];
    cJSON *hdr = cJSON_ParseWithLength(blob + 8, hl);
    assert_non_null(hdr);
    const cJSON *md = cJSON_GetObjectItem(hdr, "__metadata__");
    assert_non_null(md);
    assert_string_equal(cJSON_GetObjectItem(md, "format")->valuestring, "pt");
    assert_int_equal((8 + hl) % 8, 0);
    cJSON_Delete(hdr);
    free(blob);
    io_safetensors out, in;
    assert_int_equal(io_safetensors_open(path, &out, err), 0);
    snprintf(path, sizeof path, "%s/%s", src, IO_HF_SAFETENSORS);
    assert_int_equal(io_safetensors_open(path, &in, err), 0);
    size_t np;
    nn_model_params(m, &np);
    assert_int_equal(out.n, np);
    assert_int_equal(in.n, np);
    for (size_t i = 0; i < out.n; i++) {
        const io_st_tensor *a = &out.tensors[i], *b = io_safetensors_find(&in, a->name);
        assert_non_null(b);
        assert_int_equal(a->dtype, IO_DT_F32);
        assert_int_equal(a->ndim, b->ndim);
        for (int k = 0; k < a->ndim; k++) assert_int_equal(a->shape[k], b->shape[k]);
        assert_memory_equal(out.data + a->begin, in.data + b->begin, a->end - a->begin);
    }
    io_safetensors_free(&out);
    io_safetensors_free(&in);

    /* config.json: the same architecture, ADE labels */
    snprintf(path, sizeof path, "%s/%s", d, IO_HF_CONFIG);
    assert_int_equal(io_config_load(path, &mc2, err), 0);
    assert_memory_equal(&mc, &mc2, sizeof mc);
    char *cj = slurp(path, NULL);
    cJSON *c = cJSON_Parse(cj);
    free(cj);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "architectures"), 0)->valuestring,
                        "BertForSequenceClassification");
    assert_string_equal(cJSON_GetObjectItem(c, "model_type")->valuestring, "bert");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "id2label"), "0")->valuestring, "Not_AE");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "id2label"), "1")->valuestring, "Adverse_Event");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "label2id"), "Adverse_Event")->valuedouble, 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "classifier_dropout")));
    cJSON_Delete(c);

    /* tokenizer_config.json: the casing and the length */
    snprintf(path, sizeof path, "%s/%s", d, IO_HF_TOKENIZER_CONFIG);
    char *tj = slurp(path, NULL);
    cJSON *t = cJSON_Parse(tj);
    free(tj);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(t, "do_lower_case")));
    assert_int_equal(cJSON_GetObjectItem(t, "model_max_length")->valuedouble, 20);
    assert_string_equal(cJSON_GetObjectItem(t, "tokenizer_class")->valuestring, "BertTokenizer");
    cJSON_Delete(t);

    /* vocab.txt: byte-identical to the source's */
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s", d, IO_HF_VOCAB);
    snprintf(b, sizeof b, "%s/%s", src, IO_HF_VOCAB);
    size_t na, nb;
    char *va = slurp(a, &na), *vb = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(va, vb, na);
    free(va);
    free(vb);

    /* the export imports back to the same parameters, casing and config */
    nn_model *m2 = load_dir(d, -1, &mc2, &v2, &lc2, err);
    if (!m2) fail_msg("%s", err);
    assert_int_equal(lc2, lc);
    assert_int_equal(io_vocab_size(v2), io_vocab_size(v));
    float *p1 = params_of(m), *p2 = params_of(m2);
    assert_memory_equal(p1, p2, nn_model_num_params(m) * sizeof *p1);
    free(p1);
    free(p2);
    nn_model_free(m2);
    io_vocab_free(v2);

    /* lowercase export */
    rm_flat(d);
    tmp_dir(d, sizeof d);
    assert_int_equal(hfio_write_dir(d, m, &mc, v, 1, 128, err), 0);
    m2 = load_dir(d, -1, &mc2, &v2, &lc2, err);
    assert_non_null(m2);
    assert_int_equal(lc2, 1);
    nn_model_free(m2);
    io_vocab_free(v2);
    rm_flat(d);
    nn_model_free(m);
    io_vocab_free(v);
}

/* two spellings of one tensor, a non-float parameter, format sniffing */
static void test_load_conflicts(void **state)
{
    (void)state;
    char d[1024], path[1200], err[IO_ERRLEN];
    tmp_dir(d, sizeof d);
    snprintf(path, sizeof path, "%s/w.safetensors", d);
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    const char *names[2] = {"bert.pooler.dense.bias", "pooler.dense.bias"};
    const float *data[2] = {a, b};
    int nd[2] = {1, 1};
    int64_t shapes[2][IO_ST_MAX_DIMS] = {{4}, {4}};
    assert_int_equal(io_safetensors_write_f32(path, 2, names, data, nd, (const int64_t(*)[IO_ST_MAX_DIMS])shapes, err), 0);
    io_hf_weights w;
    assert_int_equal(io_hf_weights_open_file(path, &w, err), 0);
    assert_int_equal(w.is_torchbin, 0);
    io_hf_target t = {"bert.pooler.dense.bias", 2, 4, 1, {4}};
    float buf[8] = {0};
    unsigned char found = 9;
    char **unx = NULL;
    size_t nunx = 0;
    assert_int_not_equal(io_hf_weights_load(&w, &t, 1, buf, 8, &found, &unx, &nunx, err), 0);
    assert_non_null(strstr(err, "are both bert.pooler.dense.bias"));
    assert_int_equal(found, 0);
    assert_null(unx);
    /* a target outside the buffer */
    t.offset = 6;
    assert_int_not_equal(io_hf_weights_load(&w, &t, 1, buf, 8, &found, &unx, &nunx, err), 0);
    io_hf_weights_free(&w);
    /* one spelling: loads at the offset, nothing else touched */
    assert_int_equal(io_safetensors_write_f32(path, 1, names + 1, data + 1, nd, (const int64_t(*)[IO_ST_MAX_DIMS])shapes, err), 0);
    assert_int_equal(io_hf_weights_open_file(path, &w, err), 0);
    t.offset = 2;
    assert_int_equal(io_hf_weights_load(&w, &t, 1, buf, 8, &found, &unx, &nunx, err), 0);
    assert_int_equal(found, 1);
    assert_int_equal(nunx, 0);
    float want[8] = {0, 0, 5, 6, 7, 8, 0, 0};
    assert_memory_equal(buf, want, sizeof want);
    io_hf_free_names(unx, nunx);
    io_hf_weights_free(&w);
    unlink(path);
    rm_flat(d);
    /* torch.save files, zip and legacy, are recognised by content */
    static const char *const bins[] = {"bin_zip", "bin_legacy"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/pytorch_model.bin", FIX, bins[i]);
        assert_int_equal(io_hf_weights_open_file(path, &w, err), 0);
        assert_int_equal(w.is_torchbin, 1);
        assert_int_equal(w.tb.legacy, i);
        io_hf_weights_free(&w);
    }
}

static void test_config_json_labels(void **state)
{
    (void)state;
    nn_config c;
    char err[IO_ERRLEN];
    assert_int_equal(io_config_preset("tiny", &c, err), 0);
    c.num_labels = 3;
    char *s = io_hf_config_json(&c);
    assert_non_null(strstr(s, "LABEL_2"));
    assert_null(strstr(s, "Adverse_Event"));
    nn_config back;
    assert_int_equal(io_config_parse(s, strlen(s), &back, err), 0);
    assert_int_equal(back.num_labels, 3);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_names),      cmocka_unit_test(test_variants),
        cmocka_unit_test(test_f32_formats_identical), cmocka_unit_test(test_tokenizer_config),
        cmocka_unit_test(test_directory_errors),     cmocka_unit_test(test_export),
        cmocka_unit_test(test_config_json_labels),  cmocka_unit_test(test_load_conflicts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
