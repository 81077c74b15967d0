/* Augmentation rows (`adebert train --augment FILE.jsonl`): a strict JSON Lines
 * reader, the normalised-text leakage check against validation and test, the
 * seeded choice of rows, and the join into the train split.
 *
 * The reader is stricter than the corpus's JSONL reader: these files are
 * generated (by a model, a script), so a label spelled otherwise, a wrong type or a
 * half-written last line is a bug upstream, never something to guess around. Like
 * every io reader, an error names the file and the line, never the line's text. */
#include "io/io.h"
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Paths are cut in messages so that the line number and reason always fit. */
#define P "%.160s"

/* ------------------------------------------------------------ rows */

typedef struct {
    size_t n, cap;
    size_t *off; /* text offsets into arena until the arena stops moving */
    uint32_t *len, *line;
    uint8_t *label;
    char *arena;
    size_t arena_size, arena_cap;
} rows_builder;

static void rows_free(rows_builder *b)
{
    free(b->off);
    free(b->len);
    free(b->line);
    free(b->label);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

static int grow(void **p, size_t count, size_t elem)
{
    void *q = realloc(*p, count * elem);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

static int rows_add(rows_builder *b, const char *text, size_t len, int label, size_t line)
{
    if (len > UINT32_MAX - 1 || b->n >= UINT32_MAX / 2 || line > UINT32_MAX)
        return -1;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        if (grow((void **)&b->off, nc, sizeof *b->off) || grow((void **)&b->len, nc, sizeof *b->len) ||
            grow((void **)&b->line, nc, sizeof *b->line) || grow((void **)&b->label, nc, sizeof *b->label))
            return -1;
        b->cap = nc;
    }
    if (b->arena_size + len + 1 > b->arena_cap) {
        size_t nc = b->arena_cap ? b->arena_cap : 1 << 16;
        while (nc < b->arena_size + len + 1)
            nc *= 2;
        if (grow((void **)&b->arena, nc, 1))
            return -1;
        b->arena_cap = nc;
    }
    memcpy(b->arena + b->arena_size, text, len);
    b->arena[b->arena_size + len] = '\0';
    b->off[b->n] = b->arena_size;
    b->len[b->n] = (uint32_t)len;
    b->line[b->n] = (uint32_t)line;
    b->label[b->n] = (uint8_t)label;
    b->n++;
    b->arena_size += len + 1;
    return 0;
}

void io_augment_free(io_augment *a)
{
    if (!a)
        return;
    io_corpus_free(&a->rows);
    free(a->line);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------ normalisation */

/* White space as the comparison sees it: Python's str.isspace() set (ASCII
 * \t\n\v\f\r, \x1c-\x1f, space, U+0085) and the Unicode separators Zs, Zl, Zp. */
static int is_space(utf8proc_int32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85)
        return 1;
    if (c < 0x80)
        return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

int io_text_normalise(const char *text, char **out, size_t *out_len, char err[IO_ERRLEN])
{
    *out = NULL;
    *out_len = 0;
    size_t len = strlen(text);
    if (io_utf8_text_invalid_at((const unsigned char *)text, len) != len)
        return io_fail(err, "invalid UTF-8");
    utf8proc_uint8_t *f = utf8proc_NFKC_Casefold((const utf8proc_uint8_t *)text);
    if (!f)
        return io_fail(err, "out of memory normalising a text");
    /* collapse in place: a run of white space (>= 1 byte) becomes one byte */
    size_t n = strlen((const char *)f), r = 0, w = 0;
    int pending = 0;
    while (r < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(f + r, (utf8proc_ssize_t)(n - r), &c);
        if (k <= 0) {
            free(f);
            return io_fail(err, "invalid UTF-8");
        }
        if (is_space(c)) {
            pending = w > 0;
        } else {
            if (pending)
                f[w++] = ' ';
            pending = 0;
            memmove(f + w, f + r, (size_t)k);
            w += (size_t)k;
        }
        r += (size_t)k;
    }
    f[w] = '\0';
    *out = (char *)f;
    *out_len = w;
    return 0;
}

/* ------------------------------------------------------------ the reader */

static int parse_label(const cJSON *l, int *label)
{
    if (cJSON_IsString(l) && l->valuestring) {
        if (!strcmp(l->valuestring, "Adverse_Event"))
            *label = 1;
        else if (!strcmp(l->valuestring, "Not_AE"))
            *label = 0;
        else
            return -1;
        return 0;
    }
    if (cJSON_IsNumber(l) && (l->valuedouble == 0.0 || l->valuedouble == 1.0)) {
        *label = (int)l->valuedouble;
        return 0;
    }
    return -1;
}

static int is_integer(const cJSON *x)
{
    return cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && fabs(x->valuedouble) < 9e15;
}

/* One non-blank line (NUL-terminated in place, `len` bytes) into b; 0 ok, else err. */
static int parse_line(const char *path, size_t line, char *s, size_t len, int last_unterminated, rows_builder *b,
                      char err[IO_ERRLEN])
{
    if (io_json_has_nul_escape(s, len))
        return io_fail(err, P ": line %zu: \\u0000 (NUL) in a string is not supported", path, line);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(s, &end, 1);
    if (!o)
        return io_fail(err, P ": line %zu: not valid JSON%s", path, line,
                       last_unterminated ? " (the last line, without a newline: truncated?)" : "");
    int rc = 0, label = -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "label");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "prompt_id");
    char *norm = NULL;
    size_t nlen = 0;
    if (!cJSON_IsObject(o))
        rc = io_fail(err, P ": line %zu: not a JSON object", path, line);
    else if (!t)
        rc = io_fail(err, P ": line %zu: no \"text\"", path, line);
    else if (!cJSON_IsString(t) || !t->valuestring)
        rc = io_fail(err, P ": line %zu: \"text\" is not a string", path, line);
    else if (!l)
        rc = io_fail(err, P ": line %zu: no \"label\"", path, line);
    else if (parse_label(l, &label))
        rc = io_fail(err, P ": line %zu: unknown \"label\" (want \"Adverse_Event\", \"Not_AE\", 1 or 0)", path,
                     line);
    else if (src && !cJSON_IsString(src))
        rc = io_fail(err, P ": line %zu: \"source\" is not a string", path, line);
    else if (pid && !cJSON_IsString(pid) && !is_integer(pid))
        rc = io_fail(err, P ": line %zu: \"prompt_id\" is neither a string nor an integer", path, line);
    else if (!t->valuestring[0])
        rc = io_fail(err, P ": line %zu: \"text\" is empty", path, line);
    else if (io_text_normalise(t->valuestring, &norm, &nlen, NULL)) /* \u escapes can spell a lone surrogate */
        rc = io_fail(err, P ": line %zu: \"text\" is not valid UTF-8", path, line);
    else if (nlen == 0)
        rc = io_fail(err, P ": line %zu: \"text\" is only white space", path, line);
    else if (rows_add(b, t->valuestring, strlen(t->valuestring), label, line))
        rc = io_fail(err, P ": line %zu: out of memory or too many rows", path, line);
    free(norm);
    cJSON_Delete(o);
    return rc;
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

int io_augment_load(const char *path, io_augment *out, char err[IO_ERRLEN])
{
    if (!out)
        return io_fail(err, "io_augment_load: null output");
    memset(out, 0, sizeof *out);
    if (!path)
        return io_fail(err, "io_augment_load: null path");
    char *data;
    size_t size;
    if (io_read_file(path, &data, &size, err))
        return -1;
    /* the hash of exactly the bytes parsed: no window for the file to change between */
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, size, (const uint8_t *)data);
    sha256_digest(&ctx, sizeof digest, digest);
    io_hex32(digest, out->sha256);

    int rc = 0;
    size_t bad = io_utf8_text_invalid_at((const unsigned char *)data, size);
    if (bad != size) {
        size_t line = 1;
        for (size_t i = 0; i < bad; i++)
            line += data[i] == '\n';
        rc = io_fail(err, P ": line %zu: %s", path, line, data[bad] ? "invalid UTF-8" : "NUL byte");
    }
    rows_builder b = {0};
    size_t pos = size >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0, line = 0;
    while (rc == 0 && pos < size) {
        char *s = data + pos;
        char *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + (nl ? 1 : 0);
        line++;
        if (len > 0 && s[len - 1] == '\r')
            len--;
        if (is_blank(s, len))
            continue;
        s[len] = '\0'; /* the buffer is ours: cJSON sees this line only */
        rc = parse_line(path, line, s, len, !nl, &b, err);
    }
    free(data);
    if (rc == 0 && b.n == 0)
        rc = io_fail(err, P ": no rows (an empty file)", path);
    if (rc == 0) {
        out->rows.text = malloc(b.n * sizeof *out->rows.text);
        out->rows.pmid = malloc(b.n * sizeof *out->rows.pmid);
        if (!out->rows.text || !out->rows.pmid) {
            free((void *)out->rows.text);
            free(out->rows.pmid);
            memset(&out->rows, 0, sizeof out->rows);
            rc = io_fail(err, P ": out of memory", path);
        }
    }
    if (rc) {
        rows_free(&b);
        memset(out, 0, sizeof *out);
        return -1;
    }
    for (size_t i = 0; i < b.n; i++) {
        out->rows.text[i] = b.arena + b.off[i];
        out->rows.pmid[i] = -1;
    }
    out->rows.n = b.n;
    out->rows.len = b.len;
    out->rows.label = b.label;
    out->rows.arena = b.arena;
    out->rows.arena_size = b.arena_size;
    out->line = b.line;
    free(b.off);
    return 0;
}

/* ------------------------------------------------------------ text sets */

/* Open addressing over texts (pointers, not copies; `owned` ones are freed). */
typedef struct {
    size_t cap, n;      /* cap: a power of two, >= 2 x the most keys */
    size_t *slot;       /* key index + 1; 0 = empty */
    const char **key;
    size_t *klen;
    int owned;
} text_set;

static int set_init(text_set *s, size_t max_keys, int owned)
{
    memset(s, 0, sizeof *s);
    s->cap = 16;
    while (s->cap < 2 * max_keys)
        s->cap *= 2;
    s->slot = calloc(s->cap, sizeof *s->slot);
    s->key = malloc((max_keys ? max_keys : 1) * sizeof *s->key);
    s->klen = malloc((max_keys ? max_keys : 1) * sizeof *s->klen);
    s->owned = owned;
    return s->slot && s->key && s->klen ? 0 : -1;
}

static void set_free(text_set *s)
{
    if (s->owned && s->key)
        for (size_t i = 0; i < s->n; i++)
            free((void *)s->key[i]);
    free(s->slot);
    free(s->key);
    free(s->klen);
    memset(s, 0, sizeof *s);
}

/* The slot holding `k`, or the empty slot where it would go. */
static size_t set_probe(const text_set *s, const char *k, size_t len)
{
    size_t h = (size_t)io_hash_bytes(k, len) & (s->cap - 1);
    for (;;) {
        size_t e = s->slot[h];
        if (!e || (s->klen[e - 1] == len && !memcmp(s->key[e - 1], k, len)))
            return h;
        h = (h + 1) & (s->cap - 1);
    }
}

static int set_has(const text_set *s, const char *k, size_t len)
{
    return s->slot[set_probe(s, k, len)] != 0;
}

/* Adds k unless present; returns 1 when it was added (an owned k is then the set's). */
static int set_add(text_set *s, const char *k, size_t len)
{
    size_t h = set_probe(s, k, len);
    if (s->slot[h])
        return 0;
    s->key[s->n] = k;
    s->klen[s->n] = len;
    s->slot[h] = ++s->n;
    return 1;
}

int io_augment_find_normalised(const io_augment *a, const io_corpus *c, const uint32_t *rows, size_t n,
                               int *found, size_t *row, char err[IO_ERRLEN])
{
    *found = 0;
    *row = 0;
    text_set s;
    if (set_init(&s, n, 1)) {
        set_free(&s);
        return io_fail(err, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *norm;
        size_t len;
        if (rows[i] >= c->n)
            rc = io_fail(err, "io_augment_find_normalised: row %u out of range", rows[i]);
        else if (io_text_normalise(c->text[rows[i]], &norm, &len, err))
            rc = -1;
        else if (!set_add(&s, norm, len))
            free(norm);
    }
    for (size_t i = 0; i < a->rows.n && rc == 0 && !*found; i++) {
        char *norm;
        size_t len;
        if (io_text_normalise(a->rows.text[i], &norm, &len, err)) {
            rc = -1;
            break;
        }
        if (set_has(&s, norm, len)) {
            *found = 1;
            *row = i;
        }
        free(norm);
    }
    set_free(&s);
    return rc;
}

int io_augment_count_exact(const io_augment *a, const uint32_t *use, size_t n_use, const io_corpus *c,
                           const uint32_t *rows, size_t n, size_t *count, char err[IO_ERRLEN])
{
    *count = 0;
    text_set s;
    if (set_init(&s, n, 0)) {
        set_free(&s);
        return io_fail(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i] >= c->n) {
            set_free(&s);
            return io_fail(err, "io_augment_count_exact: row %u out of range", rows[i]);
        }
        set_add(&s, c->text[rows[i]], c->len[rows[i]]);
    }
    for (size_t i = 0; i < n_use; i++) {
        if (use[i] >= a->rows.n) {
            set_free(&s);
            return io_fail(err, "io_augment_count_exact: augment row %u out of range", use[i]);
        }
        *count += (size_t)set_has(&s, a->rows.text[use[i]], a->rows.len[use[i]]);
    }
    set_free(&s);
    return 0;
}

/* ------------------------------------------------------------ the choice */

/* splitmix64's finaliser as a counter-based generator (the same construction as
 * the splits', on a stream of its own): draw k under seed x is
 * mix64(key(x) + k * golden), identical on every machine and compiler. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define AUGMENT_STREAM 0x61756774ull /* "augt": apart from the split's streams */

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

int io_augment_choose(size_t n_rows, size_t n_use, uint64_t seed, uint32_t *use, char err[IO_ERRLEN])
{
    if (n_use > n_rows)
        return io_fail(err, "asks for %zu rows, the file has %zu", n_use, n_rows);
    if (n_rows > UINT32_MAX)
        return io_fail(err, "too many rows");
    uint32_t *perm = malloc((n_rows ? n_rows : 1) * sizeof *perm);
    if (!perm)
        return io_fail(err, "out of memory");
    for (size_t i = 0; i < n_rows; i++)
        perm[i] = (uint32_t)i;
    uint64_t key = mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (AUGMENT_STREAM * 0xD1B54A32D192ED03ull)), ctr = 0;
    /* forward Fisher-Yates: position i is drawn from i..n_rows-1 by the i-th draws
     * alone, so the first k positions do not depend on how many are taken */
    for (size_t i = 0; i < n_use; i++) {
        uint64_t k = n_rows - i, threshold = (0 - k) % k, x; /* rejection: no modulo bias */
        do
            x = mix64(key + ++ctr * 0x9E3779B97F4A7C15ull);
        while (x < threshold);
        size_t j = i + (size_t)(x % k);
        uint32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    memcpy(use, perm, n_use * sizeof *use);
    free(perm);
    qsort(use, n_use, sizeof *use, cmp_u32);
    return 0;
}

/* ------------------------------------------------------------ the join */

int io_augment_join(io_corpus *c, io_split *s, const io_augment *a, const uint32_t *use, size_t n_use,
                    char err[IO_ERRLEN])
{
    if (n_use == 0)
        return 0;
    if (c->n + n_use >= UINT32_MAX / 2 || s->n_train + n_use >= UINT32_MAX / 2)
        return io_fail(err, "too many rows with the augment rows");
    size_t bytes = 0;
    for (size_t i = 0; i < n_use; i++) {
        if (use[i] >= a->rows.n)
            return io_fail(err, "io_augment_join: augment row %u out of range", use[i]);
        bytes += (size_t)a->rows.len[use[i]] + 1;
    }
    size_t n = c->n + n_use;
    /* everything allocated first: a failure leaves c and s as they were */
    char *arena = malloc(c->arena_size + bytes);
    const char **text = malloc(n * sizeof *text);
    uint32_t *len = malloc(n * sizeof *len);
    uint8_t *label = malloc(n);
    int64_t *pmid = malloc(n * sizeof *pmid);
    uint32_t *train = malloc((s->n_train + n_use) * sizeof *train);
    if (!arena || !text || !len || !label || !pmid || !train) {
        free(arena);
        free((void *)text);
        free(len);
        free(label);
        free(pmid);
        free(train);
        return io_fail(err, "out of memory joining the augment rows");
    }
    if (c->arena_size)
        memcpy(arena, c->arena, c->arena_size);
    for (size_t i = 0; i < c->n; i++) {
        text[i] = arena + (c->text[i] - c->arena);
        len[i] = c->len[i];
        label[i] = c->label[i];
        pmid[i] = c->pmid[i];
    }
    size_t at = c->arena_size;
    for (size_t k = 0; k < n_use; k++) {
        size_t i = c->n + k, r = use[k];
        memcpy(arena + at, a->rows.text[r], (size_t)a->rows.len[r] + 1);
        text[i] = arena + at;
        len[i] = a->rows.len[r];
        label[i] = a->rows.label[r];
        pmid[i] = -1;
        at += (size_t)a->rows.len[r] + 1;
    }
    if (s->n_train)
        memcpy(train, s->train, s->n_train * sizeof *train);
    for (size_t k = 0; k < n_use; k++)
        train[s->n_train + k] = (uint32_t)(c->n + k);
    io_corpus_free(c);
    c->n = n;
    c->text = text;
    c->len = len;
    c->label = label;
    c->pmid = pmid;
    c->arena = arena;
    c->arena_size = at;
    free(s->train);
    s->train = train;
    s->n_train += n_use;
    return 0;
}
