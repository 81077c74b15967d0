/* Hugging Face model directories as files and names (see hf.h). */
#include "io/hf.h"
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_MAX_JSON ((size_t)16 << 20) /* tokenizer_config.json is a few hundred bytes */

static int join(char *out, size_t cap, const char *dir, const char *file)
{
    int k = snprintf(out, cap, "%s/%s", dir, file);
    return k < 0 || (size_t)k >= cap;
}

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int io_hf_find_weights(const char *dir, char *path, size_t cap, char err[IO_ERRLEN])
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return io_fail(err, "%.200s: cannot open (%s)", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return io_fail(err, "%.200s: not a directory (want a Hugging Face model directory)", dir);
    static const char *const files[] = {IO_HF_SAFETENSORS, IO_HF_TORCHBIN};
    for (size_t i = 0; i < 2; i++) {
        if (join(path, cap, dir, files[i]))
            return io_fail(err, "%.200s: path too long", dir);
        if (is_file(path))
            return 0;
    }
    static const char *const sharded[] = {"model.safetensors.index.json", "pytorch_model.bin.index.json"};
    char tmp[1200];
    for (size_t i = 0; i < 2; i++)
        if (!join(tmp, sizeof tmp, dir, sharded[i]) && is_file(tmp))
            return io_fail(err, "%.200s: sharded weights (%s) are not supported; save the model unsharded "
                                "(save_pretrained(..., max_shard_size=\"100GB\"))",
                           dir, sharded[i]);
    snprintf(path, cap, "%s", dir);
    return 1;
}

static int open_as(const char *path, int torchbin, io_hf_weights *w, char err[IO_ERRLEN])
{
    memset(w, 0, sizeof *w);
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path)
        return io_fail(err, "%.200s...: path too long", path);
    w->is_torchbin = torchbin;
    int rc = torchbin ? io_torchbin_open(path, &w->tb, err) : io_safetensors_open(path, &w->st, err);
    if (rc) {
        memset(w, 0, sizeof *w);
        return -1;
    }
    return 0;
}

int io_hf_weights_open_file(const char *path, io_hf_weights *w, char err[IO_ERRLEN])
{
    memset(w, 0, sizeof *w);
    /* A safetensors file starts with its header length (8 bytes LE, the high ones
     * zero) and then '{'; torch.save files with a zip local header ("PK\3\4") or, in
     * the legacy format, a pickle PROTO opcode (0x80), neither followed by '{' at
     * byte 8. Anything else goes to the safetensors reader for its error. */
    unsigned char head[9] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return io_fail(err, "%.200s: cannot open (%s)", path, strerror(errno));
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    int st = got == 9 && head[8] == '{' && head[5] == 0 && head[6] == 0 && head[7] == 0;
    int tb = !st && got >= 2 && ((head[0] == 'P' && head[1] == 'K') || head[0] == 0x80);
    return open_as(path, tb, w, err);
}

int io_hf_weights_open(const char *dir, io_hf_weights *w, char err[IO_ERRLEN])
{
    memset(w, 0, sizeof *w);
    char path[1100];
    int r = io_hf_find_weights(dir, path, sizeof path, err);
    if (r < 0)
        return -1;
    if (r > 0)
        return io_fail(err, "%.200s: no %s or %s (TensorFlow and Flax weights are not supported)", dir,
                       IO_HF_SAFETENSORS, IO_HF_TORCHBIN);
    size_t n = strlen(path), k = strlen(IO_HF_TORCHBIN);
    return open_as(path, n >= k && strcmp(path + n - k, IO_HF_TORCHBIN) == 0, w, err);
}

void io_hf_weights_free(io_hf_weights *w)
{
    if (!w)
        return;
    io_safetensors_free(&w->st);
    io_torchbin_free(&w->tb);
    memset(w, 0, sizeof *w);
}

size_t io_hf_weights_count(const io_hf_weights *w)
{
    return w->is_torchbin ? w->tb.n : w->st.n;
}

const char *io_hf_weights_name(const io_hf_weights *w, size_t i)
{
    return w->is_torchbin ? w->tb.tensors[i].name : w->st.tensors[i].name;
}

void io_hf_weights_info(const io_hf_weights *w, size_t i, io_dtype *dtype, int *ndim, int64_t shape[IO_ST_MAX_DIMS])
{
    int nd = w->is_torchbin ? w->tb.tensors[i].ndim : w->st.tensors[i].ndim;
    const int64_t *sh = w->is_torchbin ? w->tb.tensors[i].shape : w->st.tensors[i].shape;
    *dtype = w->is_torchbin ? w->tb.tensors[i].dtype : w->st.tensors[i].dtype;
    *ndim = nd;
    for (int d = 0; d < IO_ST_MAX_DIMS; d++)
        shape[d] = d < nd ? sh[d] : 0;
}

int io_hf_weights_read_f32(const io_hf_weights *w, size_t i, float *dst, size_t n, char err[IO_ERRLEN])
{
    char inner[IO_ERRLEN];
    int rc = w->is_torchbin ? io_torchbin_read_f32(&w->tb, i, dst, n, inner)
                            : io_safetensors_read_f32(&w->st, &w->st.tensors[i], dst, n, inner);
    if (rc)
        return io_fail(err, "%.100s: %.140s", w->path, inner);
    return 0;
}

/* ------------------------------------------------------------------ names */

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends(const char *s, const char *p)
{
    size_t a = strlen(s), b = strlen(p);
    return a >= b && strcmp(s + a - b, p) == 0;
}

io_hf_name_kind io_hf_canonical_name(const char *name, char *out, size_t cap)
{
    if (starts(name, "cls."))
        return IO_HF_NAME_IGNORED;
    int prefixed = starts(name, "bert.");
    const char *rest = prefixed ? name + 5 : name;
    /* buffers some versions save with the weights */
    if (strcmp(rest, "embeddings.position_ids") == 0 || strcmp(rest, "embeddings.token_type_ids") == 0)
        return IO_HF_NAME_IGNORED;
    int k;
    if (starts(rest, "embeddings.") || starts(rest, "encoder.") || starts(rest, "pooler."))
        k = snprintf(out, cap, "bert.%s", rest);
    else if (!prefixed && starts(name, "classifier."))
        k = snprintf(out, cap, "%s", name);
    else
        return IO_HF_NAME_UNKNOWN;
    if (k < 0 || (size_t)k >= cap)
        return IO_HF_NAME_UNKNOWN;
    /* TF-converted checkpoints (and Transformers before 2.x) name LayerNorm's
     * parameters gamma/beta; Transformers renames them on load. */
    size_t len = (size_t)k;
    if (ends(out, ".gamma") && len + 1 < cap)
        memcpy(out + len - 5, "weight", 7);
    else if (ends(out, ".beta"))
        memcpy(out + len - 4, "bias", 5);
    return IO_HF_NAME_PARAM;
}

void io_hf_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n && names; i++)
        free(names[i]);
    free(names);
}

static void shape_str(char *buf, size_t cap, int nd, const int64_t *sh)
{
    size_t o = 0;
    buf[0] = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int d = 0; d < nd && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", d ? ", " : "", (long long)sh[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

int io_hf_weights_load(const io_hf_weights *w, const io_hf_target *targets, size_t n, float *buf, size_t buf_n,
                       unsigned char *found, char ***unexpected, size_t *n_unexpected, char err[IO_ERRLEN])
{
    *unexpected = NULL;
    *n_unexpected = 0;
    size_t nf = io_hf_weights_count(w);
    /* which file tensor feeds each target (SIZE_MAX: none) */
    size_t *src = malloc((n ? n : 1) * sizeof *src);
    char **unx = calloc(nf ? nf : 1, sizeof *unx);
    size_t nu = 0;
    if (!src || !unx) {
        free(src);
        free(unx);
        return io_fail(err, "%.200s: out of memory", w->path);
    }
    for (size_t t = 0; t < n; t++) {
        src[t] = (size_t)-1;
        found[t] = 0;
        if (targets[t].offset > buf_n || targets[t].numel > buf_n - targets[t].offset) {
            free(src);
            free(unx);
            return io_fail(err, "hf: target %.100s lies outside the buffer", targets[t].name);
        }
    }
    int rc = 0;
    char canon[512];
    for (size_t i = 0; i < nf && !rc; i++) {
        const char *name = io_hf_weights_name(w, i);
        io_hf_name_kind kind = io_hf_canonical_name(name, canon, sizeof canon);
        if (kind == IO_HF_NAME_IGNORED)
            continue;
        size_t t = n;
        if (kind == IO_HF_NAME_PARAM)
            for (t = 0; t < n && strcmp(targets[t].name, canon) != 0; t++)
                ;
        if (t == n) {
            if (!(unx[nu] = strdup(name))) {
                rc = io_fail(err, "%.200s: out of memory", w->path);
                break;
            }
            nu++;
            continue;
        }
        if (src[t] != (size_t)-1) {
            rc = io_fail(err, "%.100s: tensors %.60s and %.60s are both %.60s", w->path,
                         io_hf_weights_name(w, src[t]), name, canon);
            break;
        }
        io_dtype dt;
        int nd;
        int64_t sh[IO_ST_MAX_DIMS];
        io_hf_weights_info(w, i, &dt, &nd, sh);
        int same = nd == targets[t].ndim;
        for (int d = 0; same && d < nd; d++)
            same = sh[d] == targets[t].shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, nd, sh);
            shape_str(b, sizeof b, targets[t].ndim, targets[t].shape);
            rc = io_fail(err, "%.100s: tensor %.80s has shape %s, config.json implies %s", w->path, name, a, b);
            break;
        }
        if (dt != IO_DT_F32 && dt != IO_DT_F16 && dt != IO_DT_BF16) {
            rc = io_fail(err, "%.100s: tensor %.80s is not F32/F16/BF16", w->path, name);
            break;
        }
        src[t] = i;
    }
    for (size_t t = 0; t < n && !rc; t++) {
        if (src[t] == (size_t)-1)
            continue;
        if (io_hf_weights_read_f32(w, src[t], buf + targets[t].offset, targets[t].numel, err))
            rc = -1;
        else
            found[t] = 1;
    }
    free(src);
    if (rc) {
        io_hf_free_names(unx, nu);
        for (size_t t = 0; t < n; t++)
            found[t] = 0;
        return -1;
    }
    *unexpected = unx;
    *n_unexpected = nu;
    return 0;
}

/* ------------------------------------------------------- tokenizer config */

static int read_small(const char *path, char **out, size_t *len, char err[IO_ERRLEN])
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_fail(err, "%.200s: cannot open (%s)", path, strerror(errno));
    char *b = malloc(HF_MAX_JSON + 1);
    if (!b) {
        fclose(f);
        return io_fail(err, "%.200s: out of memory", path);
    }
    size_t n = fread(b, 1, HF_MAX_JSON + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > HF_MAX_JSON) {
        free(b);
        return io_fail(err, "%.200s: %s", path, bad ? "read error" : "larger than 16 MiB");
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return 0;
}

int io_hf_tokenizer_config(const char *dir, int *present, int *do_lower_case, char *notes, size_t notes_cap,
                           char err[IO_ERRLEN])
{
    *present = 0;
    *do_lower_case = 1;
    if (notes_cap)
        notes[0] = 0;
    char path[1100];
    if (join(path, sizeof path, dir, IO_HF_TOKENIZER_CONFIG))
        return io_fail(err, "%.200s: path too long", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return 0;
        return io_fail(err, "%.200s: cannot open (%s)", path, strerror(errno));
    }
    char *text = NULL;
    size_t len = 0;
    if (read_small(path, &text, &len, err))
        return -1;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return io_fail(err, "%.200s: not a JSON object", path);
    }
    int rc = 0;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "do_lower_case");
    if (x && !cJSON_IsBool(x))
        rc = io_fail(err, "%.200s: do_lower_case is not true/false", path);
    else if (x)
        *do_lower_case = cJSON_IsTrue(x);
    if (!rc) {
        *present = 1;
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(o, "strip_accents");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(o, "tokenize_chinese_chars");
        size_t k = 0;
        if (cJSON_IsBool(sa) && cJSON_IsTrue(sa) != *do_lower_case && notes_cap)
            k += (size_t)snprintf(notes + k, notes_cap - k,
                                  "strip_accents=%s is not followed: adebert strips accents exactly when it "
                                  "lowercases",
                                  cJSON_IsTrue(sa) ? "true" : "false");
        if (cJSON_IsFalse(cc) && k < notes_cap)
            snprintf(notes + k, notes_cap - k, "%stokenize_chinese_chars=false is not followed", k ? "; " : "");
    }
    cJSON_Delete(o);
    return rc;
}

/* ------------------------------------------------------------------ export */

char *io_hf_config_json(const nn_config *c)
{
    char *base = io_config_to_json(c);
    if (!base)
        return NULL;
    cJSON *r = cJSON_Parse(base);
    free(base);
    if (!r)
        return NULL;
    if (c->num_labels == 2) {
        cJSON *id2 = cJSON_CreateObject(), *l2id = cJSON_CreateObject();
        if (!id2 || !l2id) {
            cJSON_Delete(id2);
            cJSON_Delete(l2id);
            cJSON_Delete(r);
            return NULL;
        }
        cJSON_AddStringToObject(id2, "0", "Not_AE");
        cJSON_AddStringToObject(id2, "1", "Adverse_Event");
        cJSON_AddNumberToObject(l2id, "Not_AE", 0);
        cJSON_AddNumberToObject(l2id, "Adverse_Event", 1);
        cJSON_DeleteItemFromObjectCaseSensitive(r, "id2label");
        cJSON_DeleteItemFromObjectCaseSensitive(r, "label2id");
        cJSON_AddItemToObject(r, "id2label", id2);
        cJSON_AddItemToObject(r, "label2id", l2id);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(r, "torch_dtype");
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

char *io_hf_tokenizer_config_json(int lowercase, int64_t model_max_length)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddBoolToObject(r, "do_lower_case", lowercase);
    /* null: strip accents exactly when lowercasing, which is what adebert does */
    cJSON_AddNullToObject(r, "strip_accents");
    cJSON_AddBoolToObject(r, "tokenize_chinese_chars", 1);
    cJSON_AddStringToObject(r, "tokenizer_class", "BertTokenizer");
    cJSON_AddNumberToObject(r, "model_max_length", (double)model_max_length);
    cJSON_AddStringToObject(r, "unk_token", "[UNK]");
    cJSON_AddStringToObject(r, "sep_token", "[SEP]");
    cJSON_AddStringToObject(r, "pad_token", "[PAD]");
    cJSON_AddStringToObject(r, "cls_token", "[CLS]");
    cJSON_AddStringToObject(r, "mask_token", "[MASK]");
    cJSON_AddBoolToObject(r, "clean_up_tokenization_spaces", 1);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

static int write_all(const char *path, const char *const *parts, size_t nparts, const char *sep, char err[IO_ERRLEN])
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return io_fail(err, "%.200s: cannot create (%s)", path, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        return io_fail(err, "%.200s: cannot create (%s)", path, strerror(errno));
    }
    int ok = 1;
    for (size_t i = 0; i < nparts && ok; i++)
        ok = fputs(parts[i], f) >= 0 && (!sep || fputs(sep, f) >= 0);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return io_fail(err, "%.200s: write failed (%s)", path, strerror(e ? e : errno));
    return 0;
}

int io_hf_write_text(const char *path, const char *text, char err[IO_ERRLEN])
{
    return write_all(path, &text, 1, NULL, err);
}

int io_hf_write_vocab(const char *path, const io_vocab *v, char err[IO_ERRLEN])
{
    size_t n = io_vocab_size(v);
    const char **toks = malloc((n ? n : 1) * sizeof *toks);
    if (!toks)
        return io_fail(err, "%.200s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        toks[i] = io_vocab_token(v, (int32_t)i);
    int rc = write_all(path, toks, n, "\n", err);
    free(toks);
    return rc;
}
