/* WordPiece vocabulary: vocab.txt -> id table with open-addressing lookup.
 *
 * Loading follows tokenizers' WordPiece::read_file: lines split on "\n" (a final
 * newline adds no empty token), each line's trailing Unicode whitespace trimmed
 * (Rust str::trim_end, so "\r", " ", NBSP ... go), leading whitespace kept, an
 * empty line is the token "". Where tokenizers silently lets a later duplicate
 * win, we refuse the file: a duplicate means the ids no longer match the model. */
#include "io/io.h"
#include "io/tokenizer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t io_utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* Corpus text is nearly all ASCII: skip 8 bytes at a time. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= len)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            min = 0x10000;
        } else {
            return i;
        }
        if (i + n > len)
            return i;
        uint32_t cp = c & (0x7F >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Overlongs, UTF-16 surrogates and > U+10FFFF are what Python's strict
         * decoder (the only way text reaches tokenizers) rejects as well. */
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return (size_t)-1;
}

uint32_t io_tok_hash_init(void) { return 2166136261u; }

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = io_tok_hash_init();
    for (size_t i = 0; i < n; i++)
        h = io_tok_hash_step(h, (unsigned char)s[i]);
    return io_tok_hash_final(h);
}

static size_t table_size_for(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap <<= 1;
    return cap;
}

int32_t io_vocab_lookup_hashed(const io_vocab *v, int cont, const char *s, size_t n, uint32_t h)
{
    const io_vocab_slot *tab = cont ? v->cont : v->full;
    size_t mask = cont ? v->cont_mask : v->full_mask;
    size_t skip = cont ? 2 : 0;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const io_vocab_slot *sl = &tab[i];
        if (sl->id < 0)
            return -1;
        if (sl->hash == h && v->len[sl->id] == n + skip &&
            memcmp(v->arena + v->off[sl->id] + skip, s, n) == 0)
            return sl->id;
    }
}

int32_t io_vocab_find(const io_vocab *v, const char *tok, size_t len)
{
    if (!v || !tok)
        return -1;
    return io_vocab_lookup_hashed(v, 0, tok, len, hash_bytes(tok, len));
}

static void slot_insert(io_vocab_slot *tab, size_t mask, uint32_t h, int32_t id)
{
    size_t i = h & mask;
    while (tab[i].id >= 0)
        i = (i + 1) & mask;
    tab[i].hash = h;
    tab[i].id = id;
}

/* Length of `s[0..n)` without trailing Rust-whitespace characters (White_Space). */
static size_t trim_end_len(const unsigned char *s, size_t n)
{
    for (;;) {
        if (n == 0)
            return 0;
        unsigned char c = s[n - 1];
        if (c == ' ' || (c >= 0x09 && c <= 0x0D)) {
            n--;
            continue;
        }
        if (n >= 2 && s[n - 2] == 0xC2 && (c == 0x85 || c == 0xA0)) {
            n -= 2;
            continue;
        }
        if (n >= 3) {
            uint32_t cp = ((uint32_t)(s[n - 3] & 0x0F) << 12) | ((uint32_t)(s[n - 2] & 0x3F) << 6) |
                          (c & 0x3F);
            if ((s[n - 3] & 0xF0) == 0xE0 && io_tok_is_rust_ws(cp)) {
                n -= 3;
                continue;
            }
        }
        return n;
    }
}

static int read_file(const char *path, unsigned char **buf, size_t *n, char err[IO_ERRLEN])
{
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, IO_ERRLEN, "vocab %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 18, len = 0;
    unsigned char *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            snprintf(err, IO_ERRLEN, "vocab %s: out of memory", path);
            return -1;
        }
        len += fread(b + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        unsigned char *nb = realloc(b, cap);
        if (!nb)
            free(b);
        b = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        snprintf(err, IO_ERRLEN, "vocab %s: read error", path);
        return -1;
    }
    *buf = b;
    *n = len;
    return 0;
}

/* Builds the vocab from `buf` (n bytes of vocab.txt, malloc'd; taken over whatever
 * happens); `path` names it in errors. */
static int vocab_parse(const char *path, unsigned char *buf, size_t n, io_vocab **out, char err[IO_ERRLEN])
{
    if (n == 0) {
        free(buf);
        snprintf(err, IO_ERRLEN, "vocab %s: empty file", path);
        return -1;
    }
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    if (buf[n - 1] != '\n')
        lines++;
    if (lines > INT32_MAX / 2) {
        free(buf);
        snprintf(err, IO_ERRLEN, "vocab %s: too many lines", path);
        return -1;
    }

    io_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        free(buf);
        snprintf(err, IO_ERRLEN, "vocab %s: out of memory", path);
        return -1;
    }
    v->n = lines;
    v->arena = (char *)buf; /* tokens are NUL-terminated in place */
    v->off = malloc(lines * sizeof *v->off);
    v->len = malloc(lines * sizeof *v->len);
    v->full_mask = table_size_for(lines) - 1;
    v->full = malloc((v->full_mask + 1) * sizeof *v->full);
    if (!v->off || !v->len || !v->full) {
        io_vocab_free(v);
        snprintf(err, IO_ERRLEN, "vocab %s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i <= v->full_mask; i++)
        v->full[i].id = -1;

    /* The NUL written over each "\n" needs one spare byte when the file lacks a
     * final newline. */
    if (buf[n - 1] != '\n') {
        unsigned char *nb = realloc(buf, n + 1);
        if (!nb) {
            io_vocab_free(v);
            snprintf(err, IO_ERRLEN, "vocab %s: out of memory", path);
            return -1;
        }
        buf = nb;
        v->arena = (char *)buf;
        buf[n] = '\n';
    }

    size_t ncont = 0, pos = 0;
    for (size_t id = 0; id < lines; id++) {
        size_t e = pos;
        while (buf[e] != '\n')
            e++;
        size_t bad = io_utf8_invalid_at(buf + pos, e - pos);
        if (bad != (size_t)-1) {
            io_vocab_free(v);
            snprintf(err, IO_ERRLEN, "vocab %s: line %zu: invalid UTF-8 at byte %zu of the line", path,
                     id + 1, bad);
            return -1;
        }
        /* a NUL would end the token early wherever it is used as a C string (lookups
         * by length would still see all of it; a checkpoint's vocab would not) */
        const unsigned char *nul = memchr(buf + pos, 0, e - pos);
        if (nul) {
            io_vocab_free(v);
            snprintf(err, IO_ERRLEN, "vocab %s: line %zu: NUL byte at byte %zu of the line", path, id + 1,
                     (size_t)(nul - (buf + pos)));
            return -1;
        }
        size_t tl = trim_end_len(buf + pos, e - pos);
        buf[pos + tl] = '\0';
        v->off[id] = (uint32_t)pos;
        v->len[id] = (uint32_t)tl;
        uint32_t h = hash_bytes((const char *)buf + pos, tl);
        int32_t prev = io_vocab_lookup_hashed(v, 0, (const char *)buf + pos, tl, h);
        if (prev >= 0) {
            io_vocab_free(v);
            snprintf(err, IO_ERRLEN, "vocab %s: line %zu: duplicate token (first on line %d)", path,
                     id + 1, prev + 1);
            return -1;
        }
        slot_insert(v->full, v->full_mask, h, (int32_t)id);
        if (tl > v->max_full)
            v->max_full = tl;
        if (tl > 2 && buf[pos] == '#' && buf[pos + 1] == '#')
            ncont++;
        pos = e + 1;
    }

    v->cont_mask = table_size_for(ncont) - 1;
    v->cont = malloc((v->cont_mask + 1) * sizeof *v->cont);
    if (!v->cont) {
        io_vocab_free(v);
        snprintf(err, IO_ERRLEN, "vocab %s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i <= v->cont_mask; i++)
        v->cont[i].id = -1;
    for (size_t id = 0; id < lines; id++) {
        const char *t = v->arena + v->off[id];
        size_t tl = v->len[id];
        if (tl > 2 && t[0] == '#' && t[1] == '#') {
            slot_insert(v->cont, v->cont_mask, hash_bytes(t + 2, tl - 2), (int32_t)id);
            if (tl - 2 > v->max_cont)
                v->max_cont = tl - 2;
        }
    }

    v->unk = io_vocab_find(v, "[UNK]", 5);
    v->cls = io_vocab_find(v, "[CLS]", 5);
    v->sep = io_vocab_find(v, "[SEP]", 5);
    v->pad = io_vocab_find(v, "[PAD]", 5);
    v->mask = io_vocab_find(v, "[MASK]", 6);
    const char *missing = v->unk < 0 ? "[UNK]" : v->cls < 0 ? "[CLS]" : v->sep < 0 ? "[SEP]" : NULL;
    if (missing) {
        io_vocab_free(v);
        snprintf(err, IO_ERRLEN, "vocab %s: line %zu: end of file without the token %s", path, lines,
                 missing);
        return -1;
    }

    /* Bracketed tokens ([UNK], [unused1] ...) are markup, not evidence of casing. */
    for (size_t id = 0; id < lines && !v->cased; id++) {
        const char *t = v->arena + v->off[id];
        size_t tl = v->len[id];
        if (tl >= 2 && t[0] == '[' && t[tl - 1] == ']')
            continue;
        for (size_t k = 0; k < tl; k++)
            if (t[k] >= 'A' && t[k] <= 'Z') {
                v->cased = 1;
                break;
            }
    }
    *out = v;
    return 0;
}

int io_vocab_load(const char *path, io_vocab **out, char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (!out) {
        snprintf(err, IO_ERRLEN, "vocab: no output");
        return -1;
    }
    *out = NULL;
    if (!path) {
        snprintf(err, IO_ERRLEN, "vocab: no path");
        return -1;
    }
    unsigned char *buf;
    size_t n;
    if (read_file(path, &buf, &n, err))
        return -1;
    return vocab_parse(path, buf, n, out, err);
}

int io_vocab_from_tokens(const char *const *tokens, size_t n, const char *name, io_vocab **out,
                         char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (!out) {
        snprintf(err, IO_ERRLEN, "vocab: no output");
        return -1;
    }
    *out = NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tokens[i] || strchr(tokens[i], '\n')) {
            snprintf(err, IO_ERRLEN, "vocab %s: token %zu is missing or holds a newline", name, i);
            return -1;
        }
        len += strlen(tokens[i]) + 1;
    }
    unsigned char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(err, IO_ERRLEN, "vocab %s: out of memory", name);
        return -1;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(tokens[i]);
        memcpy(buf + pos, tokens[i], k);
        pos += k;
        buf[pos++] = '\n';
    }
    return vocab_parse(name, buf, pos, out, err);
}

void io_vocab_free(io_vocab *v)
{
    if (!v)
        return;
    free(v->arena);
    free(v->off);
    free(v->len);
    free(v->full);
    free(v->cont);
    free(v);
}

size_t io_vocab_size(const io_vocab *v) { return v ? v->n : 0; }

const char *io_vocab_token(const io_vocab *v, int32_t id)
{
    if (!v || id < 0 || (size_t)id >= v->n)
        return NULL;
    return v->arena + v->off[id];
}

int32_t io_vocab_unk(const io_vocab *v) { return v ? v->unk : -1; }
int32_t io_vocab_cls(const io_vocab *v) { return v ? v->cls : -1; }
int32_t io_vocab_sep(const io_vocab *v) { return v ? v->sep : -1; }
int32_t io_vocab_pad(const io_vocab *v) { return v ? v->pad : -1; }
int io_vocab_is_cased(const io_vocab *v) { return v ? v->cased : 0; }
