/* Model config: Hugging Face config.json (BertConfig subset) and presets. */
#include "io/io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_defaults(nn_config *c)
{
    /* BertConfig's own defaults (bert-base-uncased shapes). */
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->intermediate_size = 3072;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->num_labels = 2;
    c->pad_token_id = 0;
    c->layer_norm_eps = 1e-12;
    c->hidden_dropout_prob = 0.1;
    c->attention_probs_dropout_prob = 0.1;
    c->classifier_dropout = -1.0;
}

int io_config_preset(const char *name, nn_config *out, char err[IO_ERRLEN])
{
    set_defaults(out);
    if (name && strcmp(name, "tiny") == 0) {
        out->hidden_size = 64;
        out->num_hidden_layers = 2;
        out->num_attention_heads = 2;
        out->intermediate_size = 37;
    } else if (name && strcmp(name, "minilm") == 0) {
        out->hidden_size = 384;
        out->num_hidden_layers = 6;
        out->num_attention_heads = 12;
        out->intermediate_size = 1536;
    } else if (name && strcmp(name, "base") == 0) {
        /* defaults */
    } else {
        snprintf(err, IO_ERRLEN, "unknown model preset '%s' (tiny, minilm, base)", name ? name : "(null)");
        memset(out, 0, sizeof *out);
        return 1;
    }
    return 0;
}

static int get_int(const cJSON *root, const char *key, int64_t *dst, char err[IO_ERRLEN])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 9.0e15) {
        snprintf(err, IO_ERRLEN, "config.json: %s must be an integer", key);
        return 1;
    }
    *dst = (int64_t)it->valuedouble;
    return 0;
}

static int get_dbl(const cJSON *root, const char *key, double *dst, int null_value_ok, double null_value,
                   char err[IO_ERRLEN])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return 0;
    if (cJSON_IsNull(it) && null_value_ok) {
        *dst = null_value;
        return 0;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        snprintf(err, IO_ERRLEN, "config.json: %s must be a number", key);
        return 1;
    }
    *dst = it->valuedouble;
    return 0;
}

static int check_str(const cJSON *root, const char *key, const char *want, char err[IO_ERRLEN])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsString(it) || strcmp(it->valuestring, want) != 0) {
        snprintf(err, IO_ERRLEN, "config.json: %s must be \"%s\" (adebert implements only that)", key, want);
        return 1;
    }
    return 0;
}

int io_config_parse(const char *json, size_t len, nn_config *out, char err[IO_ERRLEN])
{
    set_defaults(out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, IO_ERRLEN, "config.json: not a JSON object");
        cJSON_Delete(root);
        memset(out, 0, sizeof *out);
        return 1;
    }
    int rc = 0;
    rc = rc || check_str(root, "hidden_act", "gelu", err);
    rc = rc || check_str(root, "position_embedding_type", "absolute", err);
    rc = rc || check_str(root, "model_type", "bert", err);
    rc = rc || get_int(root, "vocab_size", &out->vocab_size, err);
    rc = rc || get_int(root, "hidden_size", &out->hidden_size, err);
    rc = rc || get_int(root, "num_hidden_layers", &out->num_hidden_layers, err);
    rc = rc || get_int(root, "num_attention_heads", &out->num_attention_heads, err);
    rc = rc || get_int(root, "intermediate_size", &out->intermediate_size, err);
    rc = rc || get_int(root, "max_position_embeddings", &out->max_position_embeddings, err);
    rc = rc || get_int(root, "type_vocab_size", &out->type_vocab_size, err);
    rc = rc || get_int(root, "pad_token_id", &out->pad_token_id, err);
    rc = rc || get_dbl(root, "layer_norm_eps", &out->layer_norm_eps, 0, 0, err);
    rc = rc || get_dbl(root, "hidden_dropout_prob", &out->hidden_dropout_prob, 0, 0, err);
    rc = rc || get_dbl(root, "attention_probs_dropout_prob", &out->attention_probs_dropout_prob, 0, 0, err);
    rc = rc || get_dbl(root, "classifier_dropout", &out->classifier_dropout, 1, -1.0, err);
    if (!rc) {
        /* HF derives num_labels from id2label when it is present. */
        const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(root, "id2label");
        if (id2 && cJSON_IsObject(id2) && cJSON_GetArraySize(id2) > 0) out->num_labels = cJSON_GetArraySize(id2);
        rc = get_int(root, "num_labels", &out->num_labels, err);
    }
    if (!rc && out->classifier_dropout < 0 && out->classifier_dropout != -1.0) {
        snprintf(err, IO_ERRLEN, "config.json: classifier_dropout must be null or in [0, 1)");
        rc = 1;
    }
    cJSON_Delete(root);
    if (!rc) rc = nn_config_validate(out, err);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

int io_config_load(const char *path, nn_config *out, char err[IO_ERRLEN])
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, IO_ERRLEN, "%s: cannot open", path);
        return 1;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= ((size_t)1 << 24)) { /* a config.json is a few KiB */
                snprintf(err, IO_ERRLEN, "%s: larger than 16 MiB, not a config.json", path);
                free(buf);
                fclose(f);
                return 1;
            }
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (!nb) {
                snprintf(err, IO_ERRLEN, "%s: out of memory", path);
                free(buf);
                fclose(f);
                return 1;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, IO_ERRLEN, "%s: read error", path);
        free(buf);
        return 1;
    }
    char inner[IO_ERRLEN];
    int rc = io_config_parse(buf, n, out, inner);
    if (rc) snprintf(err, IO_ERRLEN, "%.100s: %.150s", path, inner);
    free(buf);
    return rc;
}

char *io_config_to_json(const nn_config *c)
{
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("BertForSequenceClassification"));
    cJSON_AddStringToObject(r, "model_type", "bert");
    cJSON_AddNumberToObject(r, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", (double)c->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", (double)c->num_attention_heads);
    cJSON_AddNumberToObject(r, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddStringToObject(r, "hidden_act", "gelu");
    cJSON_AddNumberToObject(r, "hidden_dropout_prob", c->hidden_dropout_prob);
    cJSON_AddNumberToObject(r, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    if (c->classifier_dropout < 0) cJSON_AddNullToObject(r, "classifier_dropout");
    else cJSON_AddNumberToObject(r, "classifier_dropout", c->classifier_dropout);
    cJSON_AddNumberToObject(r, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddNumberToObject(r, "type_vocab_size", (double)c->type_vocab_size);
    cJSON_AddNumberToObject(r, "layer_norm_eps", c->layer_norm_eps);
    cJSON_AddNumberToObject(r, "pad_token_id", (double)c->pad_token_id);
    cJSON_AddStringToObject(r, "position_embedding_type", "absolute");
    cJSON *id2 = cJSON_AddObjectToObject(r, "id2label");
    cJSON *l2id = cJSON_AddObjectToObject(r, "label2id");
    for (int64_t i = 0; i < c->num_labels && id2 && l2id; i++) {
        char k[32], v[40];
        snprintf(k, sizeof k, "%lld", (long long)i);
        snprintf(v, sizeof v, "LABEL_%lld", (long long)i);
        cJSON_AddStringToObject(id2, k, v);
        cJSON_AddNumberToObject(l2id, v, (double)i);
    }
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}
