/* Corpus readers and views.
 *
 * Every reader slurps the whole file (the ADE corpus is 3.7 MB), validates it as
 * UTF-8 once up front, then cuts rows out of the buffer into one text arena.
 * Validating the whole file rather than each text field mirrors Hugging Face's
 * loader, which decodes the files as UTF-8 and so fails on any bad byte, and lets
 * an error name the exact line. Errors name file and line but never quote the
 * line: the corpus may hold patient data. */
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ file slurping */

typedef struct {
    char *data; /* size + 1 bytes, NUL-terminated so cJSON and strtol stop there */
    size_t size;
} file_buf;

static int read_file(const char *path, file_buf *fb, char err[IO_ERRLEN]) {
    fb->data = NULL;
    fb->size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return io_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return io_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return io_fail(err, "%s: not a regular file", path);
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return io_fail(err, "%s: out of memory reading %zu bytes", path, cap);
    }
    size_t got = fread(buf, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != cap) {
        free(buf);
        return io_fail(err, "%s: read error", path);
    }
    buf[got] = '\0';
    fb->data = buf;
    fb->size = got;
    return 0;
}

int io_read_file(const char *path, char **data, size_t *size, char err[IO_ERRLEN]) {
    file_buf fb;
    *data = NULL;
    *size = 0;
    if (read_file(path, &fb, err)) return -1;
    *data = fb.data;
    *size = fb.size;
    return 0;
}

/* 1-based line number of byte `off`, for error messages only. */
static size_t line_of(const char *data, size_t off) {
    size_t line = 1;
    for (size_t i = 0; i < off; i++) line += data[i] == '\n';
    return line;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). NUL is refused too:
 * texts are handed on as C strings. Returns the offset of the first bad byte, or
 * `len` when all is well. */
size_t io_utf8_text_invalid_at(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c >= 0xE1 && c <= 0xEC) n = 2;
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xEE && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else return i;
        if (len - i <= n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

static int check_utf8(const char *path, const file_buf *fb, char err[IO_ERRLEN]) {
    size_t bad = io_utf8_text_invalid_at((const unsigned char *)fb->data, fb->size);
    if (bad == fb->size) return 0;
    return io_fail(err, "%s:%zu: %s", path, line_of(fb->data, bad),
                fb->data[bad] == '\0' ? "NUL byte" : "invalid UTF-8");
}

/* A UTF-8 byte order mark is not part of the first line's text. */
static size_t skip_bom(const file_buf *fb) {
    return fb->size >= 3 && memcmp(fb->data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* ------------------------------------------------------------ row builder */

typedef struct {
    size_t n, cap;
    size_t *off; /* offset of each text in arena (pointers only once it stops moving) */
    uint32_t *len;
    uint8_t *label;
    int64_t *pmid;
    char *arena;
    size_t arena_size, arena_cap;
} builder;

static void builder_free(builder *b) {
    free(b->off);
    free(b->len);
    free(b->label);
    free(b->pmid);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

static int grow(void **p, size_t count, size_t elem) {
    void *q = realloc(*p, count * elem);
    if (!q) return -1;
    *p = q;
    return 0;
}

static int builder_add(builder *b, const char *text, size_t len, int label, int64_t pmid,
                       const char *path, size_t line, char err[IO_ERRLEN]) {
    if (len == 0) return io_fail(err, "%s:%zu: empty text", path, line);
    if (len > UINT32_MAX - 1) return io_fail(err, "%s:%zu: text too long", path, line);
    if (b->n >= UINT32_MAX - 1) return io_fail(err, "%s:%zu: too many rows", path, line);
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        if (grow((void **)&b->off, nc, sizeof *b->off) || grow((void **)&b->len, nc, sizeof *b->len) ||
            grow((void **)&b->label, nc, sizeof *b->label) || grow((void **)&b->pmid, nc, sizeof *b->pmid))
            return io_fail(err, "%s:%zu: out of memory", path, line);
        b->cap = nc;
    }
    if (b->arena_size + len + 1 > b->arena_cap) {
        size_t nc = b->arena_cap ? b->arena_cap : 1 << 16;
        while (nc < b->arena_size + len + 1) nc *= 2;
        if (grow((void **)&b->arena, nc, 1)) return io_fail(err, "%s:%zu: out of memory", path, line);
        b->arena_cap = nc;
    }
    memcpy(b->arena + b->arena_size, text, len);
    b->arena[b->arena_size + len] = '\0';
    b->off[b->n] = b->arena_size;
    b->len[b->n] = (uint32_t)len;
    b->label[b->n] = (uint8_t)label;
    b->pmid[b->n] = pmid;
    b->n++;
    b->arena_size += len + 1;
    return 0;
}

/* Hands the builder's storage to `out`; the builder is left empty. */
static int builder_finish(builder *b, const char *what, io_corpus *out, char err[IO_ERRLEN]) {
    if (b->n == 0) {
        builder_free(b);
        return io_fail(err, "%s: empty corpus (no rows)", what);
    }
    const char **text = malloc(b->n * sizeof *text);
    if (!text) {
        builder_free(b);
        return io_fail(err, "%s: out of memory", what);
    }
    for (size_t i = 0; i < b->n; i++) text[i] = b->arena + b->off[i];
    out->n = b->n;
    out->text = text;
    out->len = b->len;
    out->label = b->label;
    out->pmid = b->pmid;
    out->arena = b->arena;
    out->arena_size = b->arena_size;
    free(b->off);
    memset(b, 0, sizeof *b);
    return 0;
}

/* ------------------------------------------------------------ line walking */

/* Next line of [*pos, size): sets *start and *len, without the '\n' and a trailing
 * '\r' (CRLF tolerated). Returns 0 at end of buffer. */
static int next_line(const file_buf *fb, size_t *pos, const char **start, size_t *len) {
    if (*pos >= fb->size) return 0;
    const char *s = fb->data + *pos;
    const char *nl = memchr(s, '\n', fb->size - *pos);
    size_t l = nl ? (size_t)(nl - s) : fb->size - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l > 0 && s[l - 1] == '\r') l--;
    *start = s;
    *len = l;
    return 1;
}

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* A PubMed id: 1..18 decimal digits (fits int64 with room). */
static int parse_pmid(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Length of the whitespace code point at s[0] as Python's str.isspace() sees it
 * (ASCII \t\n\v\f\r, \x1c-\x1f, space, plus Unicode White_Space), 0 if none.
 * Hugging Face strips DRUG-AE sentences with str.strip(), so we strip the same set. */
static size_t py_space_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c == 0xC2 && avail >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (avail >= 3) {
        if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; /* U+1680 */
        if (c == 0xE2 && s[1] == 0x80 &&
            ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
            return 3;                                              /* U+2000-200A, 2028, 2029, 202F */
        if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
        if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    }
    return 0;
}

static void py_strip(const char **s, size_t *len) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t b = 0, e = *len, k;
    while (b < e && (k = py_space_len(p + b, e - b)) > 0) b += k;
    while (e > b) {
        size_t start = e - 1; /* back up to the start of the last code point (input is valid UTF-8) */
        while (start > b && (p[start] & 0xC0) == 0x80) start--;
        if (py_space_len(p + start, e - start) != e - start) break;
        e = start;
    }
    *s += b;
    *len = e - b;
}

/* ------------------------------------------------------------ reading a file of rows */

/* One format's rows out of a file that read_rows has read and checked: valid
 * UTF-8, NUL-terminated (a parser may cut lines in place), `pos` past any BOM. */
typedef int (*row_parser)(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]);

/* The one preamble of every reader: slurp, check UTF-8, skip the BOM, parse, free. */
static int read_rows(const char *path, row_parser parse, builder *b, char err[IO_ERRLEN]) {
    file_buf fb;
    if (read_file(path, &fb, err)) return -1;
    int rc = check_utf8(path, &fb, err);
    if (rc == 0) rc = parse(&fb, skip_bom(&fb), path, b, err);
    free(fb.data);
    return rc;
}

/* ------------------------------------------------------------ original distribution */

static int parse_drug_ae(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]) {
    int rc = 0;
    size_t line = 0;
    const char *s;
    size_t len;
    while (rc == 0 && next_line(fb, &pos, &s, &len)) {
        line++;
        if (len == 0) continue; /* a final empty line, or a stray blank one */
        const char *field[9];
        size_t flen[9], nf = 0;
        const char *p = s, *end = s + len;
        while (nf < 9) {
            const char *bar = memchr(p, '|', (size_t)(end - p));
            field[nf] = p;
            flen[nf] = bar ? (size_t)(bar - p) : (size_t)(end - p);
            nf++;
            if (!bar) break;
            p = bar + 1;
        }
        if (nf != 8) {
            rc = io_fail(err, "%s:%zu: expected 8 '|'-separated fields (PMID|sentence|effect|b|e|drug|b|e), got %s%zu",
                      path, line, nf > 8 ? "more than " : "", nf > 8 ? (size_t)8 : nf);
            break;
        }
        int64_t pmid;
        if (parse_pmid(field[0], flen[0], &pmid)) {
            rc = io_fail(err, "%s:%zu: PMID is not a number", path, line);
            break;
        }
        const char *t = field[1];
        size_t tl = flen[1];
        py_strip(&t, &tl);
        rc = builder_add(b, t, tl, 1, pmid, path, line, err);
    }
    return rc;
}

static int parse_ade_neg(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]) {
    int rc = 0;
    size_t line = 0;
    const char *s;
    size_t len;
    while (rc == 0 && next_line(fb, &pos, &s, &len)) {
        line++;
        if (len == 0) continue;
        const char *sp = memchr(s, ' ', len);
        int64_t pmid;
        if (parse_pmid(s, sp ? (size_t)(sp - s) : len, &pmid)) {
            rc = io_fail(err, "%s:%zu: PMID is not a number", path, line);
            break;
        }
        size_t after = sp ? (size_t)(sp - s) + 1 : len;
        if (len - after < 4 || memcmp(s + after, "NEG ", 4) != 0) {
            rc = io_fail(err, "%s:%zu: expected 'PMID NEG sentence'", path, line);
            break;
        }
        /* Everything after "PMID NEG ", unstripped: that is what HF keeps. */
        rc = builder_add(b, s + after + 4, len - after - 4, 0, pmid, path, line, err);
    }
    return rc;
}

/* ------------------------------------------------------------ labels */

static int parse_label(const char *s, size_t len, int *out) {
    while (len > 0 && (*s == ' ' || *s == '\t')) s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    static const struct {
        const char *name;
        int label;
    } names[] = {{"1", 1}, {"0", 0}, {"Adverse_Event", 1}, {"Not_AE", 0}, {"Related", 1}, {"Not-Related", 0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0) {
            *out = names[i].label;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ TSV */

static int parse_tsv(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]) {
    int rc = 0;
    size_t line = 0;
    const char *s;
    size_t len;
    int seen_content = 0;
    while (rc == 0 && next_line(fb, &pos, &s, &len)) {
        line++;
        if (is_blank(s, len)) continue;
        const char *tab = memchr(s, '\t', len);
        if (!tab || memchr(tab + 1, '\t', len - (size_t)(tab + 1 - s))) {
            rc = io_fail(err, "%s:%zu: expected 2 tab-separated fields (text, label)", path, line);
            break;
        }
        size_t tl = (size_t)(tab - s);
        const char *lab = tab + 1;
        size_t ll = len - tl - 1;
        int label;
        if (parse_label(lab, ll, &label)) {
            /* The first line may be a header naming the label column. */
            if (!seen_content && ll == 5 && strncasecmp(lab, "label", 5) == 0) {
                seen_content = 1;
                continue;
            }
            rc = io_fail(err, "%s:%zu: unknown label (want 1/0, Adverse_Event/Not_AE, Related/Not-Related)",
                      path, line);
            break;
        }
        seen_content = 1;
        rc = builder_add(b, s, tl, label, -1, path, line, err);
    }
    return rc;
}

/* ------------------------------------------------------------ CSV (RFC 4180) */

typedef struct {
    char *buf; /* unquoted field bytes, fields back to back */
    size_t size, cap;
    size_t *start, *flen; /* per field */
    size_t nf, fcap;
} csv_record;

static void csv_record_free(csv_record *r) {
    free(r->buf);
    free(r->start);
    free(r->flen);
    memset(r, 0, sizeof *r);
}

static int csv_putc(csv_record *r, char c) {
    if (r->size == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        if (grow((void **)&r->buf, nc, 1)) return -1;
        r->cap = nc;
    }
    r->buf[r->size++] = c;
    return 0;
}

static int csv_new_field(csv_record *r) {
    if (r->nf == r->fcap) {
        size_t nc = r->fcap ? r->fcap * 2 : 8;
        if (grow((void **)&r->start, nc, sizeof *r->start) || grow((void **)&r->flen, nc, sizeof *r->flen))
            return -1;
        r->fcap = nc;
    }
    r->start[r->nf] = r->size;
    r->flen[r->nf] = 0;
    r->nf++;
    return 0;
}

/* Parses one record starting at *pos; *line is the physical line it starts on and
 * is advanced past the newlines it consumes. Returns 1 with a record, 0 at end,
 * -1 on error. A quote inside an unquoted field is kept literally (as Python's
 * csv module does); anything but a separator after a closing quote is an error. */
static int csv_next(const file_buf *fb, size_t *pos, size_t *line, csv_record *r, const char *path,
                    char err[IO_ERRLEN]) {
    const char *d = fb->data;
    size_t n = fb->size, i = *pos;
    if (i >= n) return 0;
    r->size = 0;
    r->nf = 0;
    size_t start_line = *line;
    /* a buffer even for a record of empty fields: r->buf + start must never be NULL + 0
     * (undefined; found by tests/fuzz/fuzz_corpus on the input ",") */
    if (!r->buf) {
        if (grow((void **)&r->buf, 256, 1)) return io_fail(err, "%s:%zu: out of memory", path, start_line);
        r->cap = 256;
    }
    if (csv_new_field(r)) return io_fail(err, "%s:%zu: out of memory", path, start_line);
    int quoted_field_start = 1;
    for (;;) {
        if (i >= n) break;
        char c = d[i];
        if (quoted_field_start && c == '"') {
            size_t qline = *line;
            i++;
            for (;;) {
                if (i >= n) return io_fail(err, "%s:%zu: unterminated quoted field", path, qline);
                if (d[i] == '"') {
                    if (i + 1 < n && d[i + 1] == '"') {
                        if (csv_putc(r, '"')) return io_fail(err, "%s:%zu: out of memory", path, qline);
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (d[i] == '\n') (*line)++;
                if (csv_putc(r, d[i])) return io_fail(err, "%s:%zu: out of memory", path, qline);
                i++;
            }
            r->flen[r->nf - 1] = r->size - r->start[r->nf - 1];
            if (i < n && d[i] != ',' && d[i] != '\n' && d[i] != '\r')
                return io_fail(err, "%s:%zu: unexpected character after a closing quote", path, *line);
            quoted_field_start = 0;
            continue;
        }
        quoted_field_start = 0;
        if (c == ',') {
            if (csv_new_field(r)) return io_fail(err, "%s:%zu: out of memory", path, start_line);
            quoted_field_start = 1;
            i++;
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < n && d[i + 1] == '\n') i++;
            i++;
            (*line)++;
            break;
        }
        if (csv_putc(r, c)) return io_fail(err, "%s:%zu: out of memory", path, start_line);
        r->flen[r->nf - 1]++;
        i++;
    }
    *pos = i;
    return 1;
}

static int csv_is_blank(const csv_record *r) {
    return r->nf == 1 && r->flen[0] == 0;
}

static int header_is(const csv_record *r, size_t k, const char *name) {
    const char *s = r->buf + r->start[k];
    size_t len = r->flen[k];
    while (len > 0 && *s == ' ') s++, len--;
    while (len > 0 && s[len - 1] == ' ') len--;
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

static int parse_csv(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]) {
    int rc = 0;
    csv_record r = {0};
    size_t line = 1;
    size_t text_col = SIZE_MAX, label_col = SIZE_MAX;
    while (rc == 0) {
        size_t rec_line = line;
        int got = csv_next(fb, &pos, &line, &r, path, err);
        if (got < 0) rc = -1;
        if (got <= 0) break;
        if (csv_is_blank(&r)) continue;
        if (text_col == SIZE_MAX) {
            for (size_t k = 0; k < r.nf; k++) {
                if (header_is(&r, k, "text") && text_col == SIZE_MAX) text_col = k;
                else if (header_is(&r, k, "label") && label_col == SIZE_MAX) label_col = k;
            }
            if (text_col == SIZE_MAX || label_col == SIZE_MAX) {
                rc = io_fail(err, "%s:%zu: CSV header must name a 'text' and a 'label' column", path, rec_line);
                break;
            }
            continue;
        }
        if (r.nf <= text_col || r.nf <= label_col) {
            rc = io_fail(err, "%s:%zu: record has %zu fields, fewer than the header", path, rec_line, r.nf);
            break;
        }
        int label;
        if (parse_label(r.buf + r.start[label_col], r.flen[label_col], &label)) {
            rc = io_fail(err, "%s:%zu: unknown label (want 1/0, Adverse_Event/Not_AE, Related/Not-Related)",
                      path, rec_line);
            break;
        }
        rc = builder_add(b, r.buf + r.start[text_col], r.flen[text_col], label, -1, path, rec_line, err);
    }
    if (rc == 0 && text_col == SIZE_MAX) rc = io_fail(err, "%s: empty corpus (no header, no rows)", path);
    csv_record_free(&r);
    return rc;
}

/* ------------------------------------------------------------ JSONL */

/* cJSON ends a string at an escaped NUL (\u0000), which would silently cut the
 * text short; such lines are refused. An escape starts at an odd run of
 * backslashes. */
int io_json_has_nul_escape(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') continue;
        size_t run = 0;
        while (i < len && s[i] == '\\') run++, i++;
        if (run % 2 == 1 && len - i >= 5 && s[i] == 'u' && memcmp(s + i + 1, "0000", 4) == 0) return 1;
    }
    return 0;
}

static int parse_jsonl(const file_buf *fb, size_t pos, const char *path, builder *b, char err[IO_ERRLEN]) {
    int rc = 0;
    size_t line = 0;
    const char *s;
    size_t len;
    while (rc == 0 && next_line(fb, &pos, &s, &len)) {
        line++;
        if (is_blank(s, len)) continue;
        if (io_json_has_nul_escape(s, len)) {
            rc = io_fail(err, "%s:%zu: \\u0000 (NUL) in a string is not supported", path, line);
            break;
        }
        /* The buffer is ours: terminate the line in place so cJSON sees only it. */
        ((char *)s)[len] = '\0';
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithOpts(s, &end, 1);
        if (!obj || !cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            rc = io_fail(err, "%s:%zu: not a JSON object", path, line);
            break;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, "label");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(obj, "group");
        int64_t group = cJSON_IsNumber(g) && g->valuedouble >= 0 && g->valuedouble < 9e15 ? (int64_t)g->valuedouble : -1;
        int label = -1;
        if (!cJSON_IsString(t) || !t->valuestring) {
            rc = io_fail(err, "%s:%zu: missing string field \"text\"", path, line);
        } else if (cJSON_IsNumber(l)) {
            if (l->valuedouble == 0.0 || l->valuedouble == 1.0) label = (int)l->valuedouble;
            else rc = io_fail(err, "%s:%zu: unknown label (want 0 or 1)", path, line);
        } else if (cJSON_IsString(l) && l->valuestring) {
            if (parse_label(l->valuestring, strlen(l->valuestring), &label))
                rc = io_fail(err, "%s:%zu: unknown label (want 1/0, Adverse_Event/Not_AE, Related/Not-Related)",
                          path, line);
        } else {
            rc = io_fail(err, "%s:%zu: missing field \"label\" (number or string)", path, line);
        }
        if (rc == 0) {
            /* \u escapes can still spell a lone surrogate or a NUL. */
            size_t tl = strlen(t->valuestring);
            if (io_utf8_text_invalid_at((const unsigned char *)t->valuestring, tl) != tl)
                rc = io_fail(err, "%s:%zu: invalid UTF-8 in \"text\"", path, line);
            else
                rc = builder_add(b, t->valuestring, tl, label, group, path, line, err);
        }
        cJSON_Delete(obj);
    }
    return rc;
}

/* ------------------------------------------------------------ hashing and views */

uint64_t io_hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finaliser so low bits mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int io_corpus_text_classes(const io_corpus *c, uint32_t *first, char err[IO_ERRLEN]) {
    if (!c || !first) return io_fail(err, "io_corpus_text_classes: null argument");
    if (c->n == 0) return 0;
    if (c->n > UINT32_MAX / 2) return io_fail(err, "io_corpus_text_classes: too many rows");
    size_t cap = 16;
    while (cap < 2 * c->n) cap *= 2;
    uint32_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return io_fail(err, "io_corpus_text_classes: out of memory");
    memset(slot, 0xFF, cap * sizeof *slot); /* UINT32_MAX = empty */
    size_t mask = cap - 1;
    for (size_t i = 0; i < c->n; i++) {
        size_t h = (size_t)io_hash_bytes(c->text[i], c->len[i]) & mask;
        for (;;) {
            uint32_t j = slot[h];
            if (j == UINT32_MAX) {
                slot[h] = (uint32_t)i;
                first[i] = (uint32_t)i;
                break;
            }
            if (c->len[j] == c->len[i] && memcmp(c->text[j], c->text[i], c->len[i]) == 0) {
                first[i] = j;
                break;
            }
            h = (h + 1) & mask;
        }
    }
    free(slot);
    return 0;
}

/* Keeps the first row of each distinct text, in order. The arena keeps the bytes
 * of dropped rows: compacting it would save ~10% of 3.7 MB and move every pointer. */
static int apply_view(io_corpus *c, io_view view, char err[IO_ERRLEN]) {
    if (view == IO_VIEW_HF) return 0;
    if (view != IO_VIEW_DEDUP) return io_fail(err, "unknown corpus view %d", (int)view);
    uint32_t *first = malloc(c->n * sizeof *first);
    if (!first) return io_fail(err, "dedup: out of memory");
    if (io_corpus_text_classes(c, first, err)) {
        free(first);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (first[i] != i) continue;
        c->text[k] = c->text[i];
        c->len[k] = c->len[i];
        c->label[k] = c->label[i];
        c->pmid[k] = c->pmid[i];
        k++;
    }
    c->n = k;
    free(first);
    return 0;
}

/* ------------------------------------------------------------ public entry points */

void io_corpus_free(io_corpus *c) {
    if (!c) return;
    free((void *)c->text);
    free(c->len);
    free(c->label);
    free(c->pmid);
    free(c->arena);
    memset(c, 0, sizeof *c);
}

static int finish(builder *b, const char *what, io_view view, io_corpus *out, char err[IO_ERRLEN]) {
    if (builder_finish(b, what, out, err)) return -1;
    if (apply_view(out, view, err)) {
        io_corpus_free(out);
        return -1;
    }
    return 0;
}

static int check_view(io_view view, char err[IO_ERRLEN]) {
    if (view != IO_VIEW_HF && view != IO_VIEW_DEDUP) return io_fail(err, "unknown corpus view %d", (int)view);
    return 0;
}

int io_corpus_load_ade(const char *dir, io_view view, io_corpus *out, char err[IO_ERRLEN]) {
    if (!out) return io_fail(err, "io_corpus_load_ade: null output");
    memset(out, 0, sizeof *out);
    if (!dir) return io_fail(err, "io_corpus_load_ade: null directory");
    if (check_view(view, err)) return -1;
    struct stat st;
    if (stat(dir, &st) != 0) return io_fail(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return io_fail(err, "%s: not a directory", dir);
    size_t dl = strlen(dir);
    char *path = malloc(dl + 32);
    if (!path) return io_fail(err, "%s: out of memory", dir);
    builder b = {0};
    const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
    snprintf(path, dl + 32, "%s%sDRUG-AE.rel", dir, sep);
    int rc = read_rows(path, parse_drug_ae, &b, err);
    if (rc == 0) {
        snprintf(path, dl + 32, "%s%sADE-NEG.txt", dir, sep);
        rc = read_rows(path, parse_ade_neg, &b, err);
    }
    free(path);
    if (rc) {
        builder_free(&b);
        return -1;
    }
    return finish(&b, dir, view, out, err);
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

int io_corpus_load_file(const char *path, io_view view, io_corpus *out, char err[IO_ERRLEN]) {
    if (!out) return io_fail(err, "io_corpus_load_file: null output");
    memset(out, 0, sizeof *out);
    if (!path) return io_fail(err, "io_corpus_load_file: null path");
    if (check_view(view, err)) return -1;
    row_parser parse;
    if (has_suffix(path, ".tsv")) parse = parse_tsv;
    else if (has_suffix(path, ".csv")) parse = parse_csv;
    else if (has_suffix(path, ".jsonl")) parse = parse_jsonl;
    else return io_fail(err, "%s: unknown corpus format (want .tsv, .csv or .jsonl)", path);
    builder b = {0};
    if (read_rows(path, parse, &b, err)) {
        builder_free(&b);
        return -1;
    }
    return finish(&b, path, view, out, err);
}

int io_corpus_load(const char *path, io_view view, io_corpus *out, char err[IO_ERRLEN]) {
    if (!out) return io_fail(err, "io_corpus_load: null output");
    memset(out, 0, sizeof *out);
    if (!path) return io_fail(err, "io_corpus_load: null path");
    struct stat st;
    if (stat(path, &st) != 0) return io_fail(err, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return io_splitdir_is(path) ? io_splitdir_load(path, out, err) : io_corpus_load_ade(path, view, out, err);
    return io_corpus_load_file(path, view, out, err);
}

size_t io_corpus_positives(const io_corpus *c) {
    size_t p = 0;
    if (!c) return 0;
    for (size_t i = 0; i < c->n; i++) p += c->label[i] != 0;
    return p;
}

int io_view_parse(const char *s, io_view *out) {
    if (!s || !out) return -1;
    if (strcmp(s, "hf") == 0) *out = IO_VIEW_HF;
    else if (strcmp(s, "dedup") == 0) *out = IO_VIEW_DEDUP;
    else return -1;
    return 0;
}

const char *io_view_name(io_view v) {
    switch (v) {
    case IO_VIEW_HF: return "hf";
    case IO_VIEW_DEDUP: return "dedup";
    }
    return "unknown";
}
