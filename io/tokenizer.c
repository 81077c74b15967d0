/* BERT WordPiece tokenizer, bit-compatible with Hugging Face `tokenizers`
 * (BertWordPieceTokenizer: special-token split, BertNormalizer, BertPreTokenizer,
 * WordPiece, [CLS] $A [SEP]).
 *
 * One streaming pass per text: bytes -> normalised characters -> pre-token ("word")
 * buffer -> greedy WordPiece -> ids. The order of HF's steps matters and is kept:
 *   1. the special tokens present in the vocab ([UNK] [SEP] [CLS] [PAD] [MASK]) are
 *      matched literally in the RAW text (HF's added vocabulary, normalized=false);
 *   2. clean: drop U+0000, U+FFFD and "other" (Cc Cf Cn Co Cs, except \t \n \r);
 *      White_Space -> ' ';
 *   3. CJK ideographs get spaces around them;
 *   4. lowercase mode only: NFD, drop Mn, then per-char Rust to_lowercase (no
 *      final-sigma context);
 *   5. split on White_Space, isolate each punctuation char (ASCII punct or P*);
 *   6. WordPiece per pre-token: > 100 chars or unmatchable -> [UNK].
 * Character properties come from utf8proc (Unicode 15) corrected by
 * io/tokenizer_tables.h to the older tables tokenizers was built with; the
 * exhaustive per-code-point test (tests/test_tokenizer.c) keeps them in step. */
#include "io/io.h"
#include "io/tokenizer_internal.h"
#include "io/tokenizer_tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100 /* WordPiece max_input_chars_per_word */
#define WORD_BYTES (4 * (MAX_WORD_CHARS + 1))
#define N_SPECIAL 5

enum { P_OTHER = 1, P_PUNCT = 2, P_MN = 4 };
enum { A_NORMAL = 0, A_DROP = 1, A_SPACE = 2, A_PUNCT = 3 };

/* ASCII classes after BertNormalizer + BertPreTokenizer: controls other than
 * \t \n \r are removed (not split on), \t \n \r and ' ' split, and every
 * char::is_ascii_punctuation char (symbols like $+<=>^`|~ included) is isolated. */
static const uint8_t ascii_class[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 2, 1, 1, /* 00-0F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 10-1F */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* space ! " # $ % & ' ( ) * + , - . / */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, /* 0-9 : ; < = > ? */
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* @ A-O */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, /* P-Z [ \ ] ^ _ */
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* ` a-o */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 1, /* p-z { | } ~ DEL */
};

typedef struct {
    int32_t id;
    uint8_t len;
    char text[7];
} special_tok;

struct io_tokenizer {
    const io_vocab *v;
    int lower;
    special_tok special[N_SPECIAL];
    int n_special;

    /* current pre-token: its first MAX_WORD_CHARS+1 chars, and its full char count */
    char word[WORD_BYTES + 8];
    size_t wlen, wchars;

    /* NFD needs canonical reordering of each starter's trailing marks, so in
     * lowercase mode decomposed chars wait here until the next starter. */
    int32_t *pend;
    size_t npend, pend_cap;
    int pend_oom;

    /* sink: ids (encode) or text (pretokens) */
    int32_t *ids;
    size_t nids, room; /* room: word pieces allowed between [CLS] and [SEP] */
    int full;
    char *tbuf;
    size_t tcap, tlen;
    int toverflow;
};

/* ---------------------------------------------------------------- properties */

static int hf_cjk(uint32_t c)
{
    /* tokenizers' is_chinese_char (note 0x2B920, not BERT's 0x2B820). */
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static unsigned hf_props(uint32_t c)
{
    unsigned p = 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    /* Not UTF8PROC_CATEGORY_CN: tokenizers' is_other() says false for every
     * unassigned code point (measured: all 825,345 of them are kept). */
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        p = P_OTHER;
        break;
    case UTF8PROC_CATEGORY_MN:
        p = P_MN;
        break;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        p = P_PUNCT;
        break;
    default:
        break;
    }
    /* Where the Unicode tables tokenizers was built with disagree with utf8proc's. */
    size_t lo = 0, hi = io_tok_n_prop_fixes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (io_tok_prop_fixes[mid].hi < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < io_tok_n_prop_fixes && io_tok_prop_fixes[lo].lo <= c)
        p = io_tok_prop_fixes[lo].props;
    return p;
}

static uint32_t hf_lower(uint32_t c)
{
    size_t lo = 0, hi = io_tok_n_lower_fixes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (io_tok_lower_fixes[mid].cp < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < io_tok_n_lower_fixes && io_tok_lower_fixes[lo].cp == c)
        return io_tok_lower_fixes[lo].lower;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* ---------------------------------------------------------------- sinks */

static void emit_id(io_tokenizer *t, int32_t id)
{
    if (t->nids < t->room)
        t->ids[1 + t->nids++] = id;
    if (t->nids >= t->room)
        t->full = 1; /* HF truncates after tokenizing; nothing later can survive */
}

static void emit_text(io_tokenizer *t, const char *s, size_t n)
{
    if (t->tlen + n + 2 > t->tcap) {
        t->toverflow = 1;
        t->full = 1;
        return;
    }
    memcpy(t->tbuf + t->tlen, s, n);
    t->tlen += n;
    t->tbuf[t->tlen++] = '\n';
    t->tbuf[t->tlen] = '\0';
}

/* Greedy longest-match-first over the current word; pieces go to `out`.
 * Returns the piece count, or -1 when some position matches nothing. */
static int wordpiece(const io_tokenizer *t, const char *w, size_t n, int32_t *out)
{
    const io_vocab *v = t->v;
    uint32_t hp[WORD_BYTES + 1];
    int np = 0;
    size_t start = 0;
    while (start < n) {
        int cont = start > 0;
        size_t maxk = cont ? v->max_cont : v->max_full;
        size_t end = n - start < maxk ? n : start + maxk;
        /* FNV-1a is prefix-incremental: hash every candidate in one pass. */
        uint32_t h = io_tok_hash_init();
        for (size_t k = start; k < end; k++) {
            h = io_tok_hash_step(h, (unsigned char)w[k]);
            hp[k - start + 1] = h;
        }
        int32_t id = -1;
        for (; end > start; end--) {
            if (end < n && ((unsigned char)w[end] & 0xC0) == 0x80)
                continue; /* not a char boundary */
            id = io_vocab_lookup_hashed(v, cont, w + start, end - start,
                                        io_tok_hash_final(hp[end - start]));
            if (id >= 0)
                break;
        }
        if (id < 0)
            return -1;
        out[np++] = id;
        start = end;
    }
    return np;
}

static void word_flush(io_tokenizer *t)
{
    if (t->wchars == 0)
        return;
    if (t->tbuf) {
        if (t->wchars > MAX_WORD_CHARS)
            emit_text(t, "[UNK]", 5);
        else
            emit_text(t, t->word, t->wlen);
    } else if (t->wchars > MAX_WORD_CHARS) {
        emit_id(t, t->v->unk);
    } else {
        int32_t pieces[MAX_WORD_CHARS];
        int np = wordpiece(t, t->word, t->wlen, pieces);
        if (np < 0) {
            emit_id(t, t->v->unk);
        } else {
            for (int i = 0; i < np && !t->full; i++)
                emit_id(t, pieces[i]);
        }
    }
    t->wlen = 0;
    t->wchars = 0;
}

static inline void word_push_byte(io_tokenizer *t, char b)
{
    if (t->wchars <= MAX_WORD_CHARS)
        t->word[t->wlen++] = b;
    t->wchars++;
}

static void word_push_cp(io_tokenizer *t, uint32_t c)
{
    if (t->wchars <= MAX_WORD_CHARS)
        t->wlen += (size_t)utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)t->word + t->wlen);
    t->wchars++;
}

/* A character of the normalised text, as the pre-tokenizer sees it. */
static void out_char(io_tokenizer *t, uint32_t c)
{
    if (c < 0x80) {
        switch (ascii_class[c]) {
        case A_NORMAL:
            word_push_byte(t, (char)c);
            return;
        case A_PUNCT:
            word_flush(t);
            word_push_byte(t, (char)c);
            word_flush(t);
            return;
        default: /* spaces and controls cannot come out of NFD/lowercase */
            word_flush(t);
            return;
        }
    }
    if (io_tok_is_rust_ws(c)) {
        word_flush(t);
    } else if (hf_props(c) & P_PUNCT) {
        word_flush(t);
        word_push_cp(t, c);
        word_flush(t);
    } else {
        word_push_cp(t, c);
    }
}

static void pend_flush(io_tokenizer *t)
{
    size_t n = t->npend;
    if (!n)
        return;
    int32_t *p = t->pend;
    /* Canonical ordering: stable sort of the non-starters by combining class. */
    for (size_t i = 1; i < n; i++) {
        int32_t c = p[i];
        int cc = utf8proc_get_property(c)->combining_class;
        if (cc == 0)
            continue;
        size_t j = i;
        while (j > 0) {
            int pc = utf8proc_get_property(p[j - 1])->combining_class;
            if (pc <= cc || pc == 0)
                break;
            p[j] = p[j - 1];
            j--;
        }
        p[j] = c;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)p[i];
        if (c >= 0x80 && (hf_props(c) & P_MN))
            continue;
        out_char(t, c >= 0x80 ? hf_lower(c) : (uint32_t)((c >= 'A' && c <= 'Z') ? c + 32 : c));
    }
    t->npend = 0;
}

static void pend_push(io_tokenizer *t, int32_t c, int starter)
{
    if (starter)
        pend_flush(t);
    if (t->npend == t->pend_cap) {
        size_t nc = t->pend_cap ? 2 * t->pend_cap : 32;
        int32_t *np = realloc(t->pend, nc * sizeof *np);
        if (!np) {
            t->pend_oom = 1;
            t->full = 1;
            return;
        }
        t->pend = np;
        t->pend_cap = nc;
    }
    t->pend[t->npend++] = c;
}

/* Steps 4-5 for one raw (already cleaned) character. */
static void normalize_char(io_tokenizer *t, uint32_t c)
{
    if (!t->lower) {
        out_char(t, c);
        return;
    }
    utf8proc_int32_t d[32];
    int bound = 0;
    utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE, &bound);
    for (size_t k = 0; k < io_tok_n_nfd_keep && nd > 1; k++)
        if (io_tok_nfd_keep[k] == c)
            nd = 0;
    if (nd < 1 || nd > 32) {
        d[0] = (utf8proc_int32_t)c;
        nd = 1;
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++)
        pend_push(t, d[i], utf8proc_get_property(d[i])->combining_class == 0);
}

static size_t match_special(const io_tokenizer *t, const char *s, size_t left, int32_t *id)
{
    for (int k = 0; k < t->n_special; k++) {
        const special_tok *sp = &t->special[k];
        if (sp->len <= left && memcmp(s, sp->text, sp->len) == 0) {
            *id = sp->id;
            return sp->len;
        }
    }
    return 0;
}

/* The whole pipeline over valid UTF-8; output goes to the active sink. */
static void run(io_tokenizer *t, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    const int lower = t->lower;
    size_t i = 0;
    t->wlen = t->wchars = 0;
    t->npend = 0;
    while (i < len && !t->full) {
        unsigned char b = s[i];
        if (b < 0x80) {
            if (t->npend)
                pend_flush(t);
            switch (ascii_class[b]) {
            case A_NORMAL:
                /* The hot loop: a run of ASCII letters and digits. */
                do {
                    char ch = (char)((lower && b >= 'A' && b <= 'Z') ? b + 32 : b);
                    word_push_byte(t, ch);
                    if (++i >= len)
                        break;
                    b = s[i];
                } while (b < 0x80 && ascii_class[b] == A_NORMAL);
                break;
            case A_DROP:
                i++;
                break;
            case A_SPACE:
                word_flush(t);
                i++;
                break;
            default: { /* A_PUNCT */
                int32_t sid;
                size_t sl = b == '[' ? match_special(t, text + i, len - i, &sid) : 0;
                word_flush(t);
                if (sl) {
                    if (t->tbuf)
                        emit_text(t, text + i, sl);
                    else
                        emit_id(t, sid);
                    i += sl;
                } else {
                    word_push_byte(t, (char)b);
                    word_flush(t);
                    i++;
                }
                break;
            }
            }
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
        i += (size_t)n; /* valid: checked before run() */
        uint32_t u = (uint32_t)c;
        if (u == 0xFFFD)
            continue;
        if (io_tok_is_rust_ws(u)) {
            /* U+0085 is Cc: removed before the whitespace mapping would see it. */
            if (hf_props(u) & P_OTHER)
                continue;
            pend_flush(t);
            word_flush(t);
            continue;
        }
        if (hf_props(u) & P_OTHER)
            continue;
        if (hf_cjk(u)) {
            pend_flush(t);
            word_flush(t);
            normalize_char(t, u);
            pend_flush(t);
            word_flush(t);
            continue;
        }
        normalize_char(t, u);
    }
    if (!t->full) {
        pend_flush(t);
        word_flush(t);
    }
}

/* ---------------------------------------------------------------- public */

int io_tokenizer_init(io_tokenizer **out, const io_vocab *vocab, int lowercase, char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (!out) {
        snprintf(err, IO_ERRLEN, "tokenizer: no output");
        return -1;
    }
    *out = NULL;
    if (!vocab || vocab->unk < 0 || vocab->cls < 0 || vocab->sep < 0) {
        snprintf(err, IO_ERRLEN, "tokenizer: no vocabulary");
        return -1;
    }
    io_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, IO_ERRLEN, "tokenizer: out of memory");
        return -1;
    }
    t->v = vocab;
    t->lower = lowercase != 0;
    /* BertWordPieceTokenizer registers these (when in the vocab) as special
     * added tokens, in this order. */
    static const char *const names[N_SPECIAL] = {"[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"};
    for (int k = 0; k < N_SPECIAL; k++) {
        size_t l = strlen(names[k]);
        int32_t id = io_vocab_find(vocab, names[k], l);
        if (id < 0)
            continue;
        special_tok *sp = &t->special[t->n_special++];
        sp->id = id;
        sp->len = (uint8_t)l;
        memcpy(sp->text, names[k], l);
    }
    *out = t;
    return 0;
}

void io_tokenizer_free(io_tokenizer *t)
{
    if (!t)
        return;
    free(t->pend);
    free(t);
}

static int check_text(const char *text, size_t len, const char *what, size_t row, char err[IO_ERRLEN])
{
    if (!text && len) {
        snprintf(err, IO_ERRLEN, "tokenizer: no text");
        return -1;
    }
    size_t bad = len ? io_utf8_invalid_at((const unsigned char *)text, len) : (size_t)-1;
    if (bad != (size_t)-1) {
        if (what)
            snprintf(err, IO_ERRLEN, "tokenizer: %s %zu: invalid UTF-8 at byte %zu", what, row, bad);
        else
            snprintf(err, IO_ERRLEN, "tokenizer: invalid UTF-8 at byte %zu", bad);
        return -1;
    }
    return 0;
}

/* Encode into ids[0 .. 2 + room) without argument checks. */
static int encode_raw(io_tokenizer *t, const char *text, size_t len, size_t room, int32_t *ids,
                      size_t *n_out, char err[IO_ERRLEN])
{
    t->ids = ids;
    t->nids = 0;
    t->room = room;
    t->full = room == 0;
    t->tbuf = NULL;
    t->pend_oom = 0;
    ids[0] = t->v->cls;
    run(t, text, len);
    t->ids = NULL;
    if (t->pend_oom) {
        *n_out = 0;
        snprintf(err, IO_ERRLEN, "tokenizer: out of memory");
        return -1;
    }
    ids[1 + t->nids] = t->v->sep;
    *n_out = t->nids + 2;
    return 0;
}

int io_tokenizer_encode(io_tokenizer *t, const char *text, size_t len, size_t max_len,
                        int32_t *ids, size_t cap, size_t *n_out, char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (n_out)
        *n_out = 0;
    if (!t || !ids || !n_out) {
        snprintf(err, IO_ERRLEN, "tokenizer: missing argument");
        return -1;
    }
    if (max_len < 2) {
        snprintf(err, IO_ERRLEN, "tokenizer: max_len %zu < 2 leaves no room for [CLS] and [SEP]", max_len);
        return -1;
    }
    if (cap < max_len) {
        snprintf(err, IO_ERRLEN, "tokenizer: output capacity %zu < max_len %zu", cap, max_len);
        return -1;
    }
    if (check_text(text, len, NULL, 0, err))
        return -1;
    return encode_raw(t, text, len, max_len - 2, ids, n_out, err);
}

int io_tokenizer_pretokens(io_tokenizer *t, const char *text, size_t len, char *buf, size_t cap,
                           size_t *n_out, char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (n_out)
        *n_out = 0;
    if (!t || !buf || !n_out || cap < 1) {
        snprintf(err, IO_ERRLEN, "tokenizer: missing argument");
        return -1;
    }
    buf[0] = '\0';
    if (check_text(text, len, NULL, 0, err))
        return -1;
    t->tbuf = buf;
    t->tcap = cap;
    t->tlen = 0;
    t->toverflow = 0;
    t->full = 0;
    t->pend_oom = 0;
    run(t, text, len);
    t->tbuf = NULL;
    if (t->toverflow || t->pend_oom) {
        buf[0] = '\0';
        snprintf(err, IO_ERRLEN, t->pend_oom ? "tokenizer: out of memory"
                                             : "tokenizer: pre-token buffer of %zu bytes too small",
                 cap);
        return -1;
    }
    *n_out = t->tlen;
    return 0;
}

int io_tokenize_corpus(io_tokenizer *t, const io_corpus *c, size_t max_len, io_tokens *out,
                       char err[IO_ERRLEN])
{
    err[0] = '\0';
    if (!out) {
        snprintf(err, IO_ERRLEN, "tokenizer: no output");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!t || !c) {
        snprintf(err, IO_ERRLEN, "tokenizer: missing argument");
        return -1;
    }
    if (max_len == 1) {
        snprintf(err, IO_ERRLEN, "tokenizer: max_len 1 leaves no room for [CLS] and [SEP]");
        return -1;
    }
    uint64_t *off = malloc((c->n + 1) * sizeof *off);
    size_t cap = 1024;
    for (size_t i = 0; i < c->n; i++)
        cap += c->len[i] / 3 + 2;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!off || !ids) {
        free(off);
        free(ids);
        snprintf(err, IO_ERRLEN, "tokenizer: out of memory");
        return -1;
    }
    size_t pos = 0;
    off[0] = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *text = c->text[i];
        size_t len = c->len[i];
        if (check_text(text, len, "row", i, err))
            goto fail;
        /* Every piece takes at least one normalised char and NFD yields at most two
         * non-Mn chars per input byte, so 2 + 2*len ids always suffice. */
        size_t need = max_len ? max_len : SIZE_MAX; /* 0: no truncation */
        if (len < (SIZE_MAX - 2) / 2 && 2 + 2 * len < need)
            need = 2 + 2 * len;
        if (pos + need > cap) {
            size_t nc = cap * 2 > pos + need ? cap * 2 : pos + need;
            int32_t *ni = realloc(ids, nc * sizeof *ni);
            if (!ni) {
                snprintf(err, IO_ERRLEN, "tokenizer: out of memory");
                goto fail;
            }
            ids = ni;
            cap = nc;
        }
        size_t n;
        if (encode_raw(t, text, len, need - 2, ids + pos, &n, err))
            goto fail;
        pos += n;
        off[i + 1] = pos;
    }
    out->n = c->n;
    out->ids = ids;
    out->offsets = off;
    return 0;
fail:
    free(off);
    free(ids);
    return -1;
}

void io_tokens_free(io_tokens *tk)
{
    if (!tk)
        return;
    free(tk->ids);
    free(tk->offsets);
    memset(tk, 0, sizeof *tk);
}
