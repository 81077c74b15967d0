/* launch/serve_request: request parsing and response text of `adebert serve`
 * (see serve_request.h). */
#include "launch/serve_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int srq_http_status(srq_code c)
{
    switch (c) {
    case SRQ_OK: return 200;
    case SRQ_TOO_MANY:
    case SRQ_TOO_LONG: return 413;
    case SRQ_NOMEM: return 500;
    default: return 400;
    }
}

const char *srq_code_name(srq_code c)
{
    static const char *const names[SRQ_NCODES] = {"ok",        "malformed_json", "nesting_depth",  "wrong_type", "invalid_utf8",
                                                  "out_of_range", "too_many_inputs", "text_too_long", "out_of_memory"};
    return (unsigned)c < SRQ_NCODES ? names[c] : "unknown";
}

int srq_utf8_valid(const char *s, size_t n, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (n - i <= k)
            goto bad;
        for (size_t j = 1; j <= k; j++) {
            if ((u[i + j] & 0xC0) != 0x80)
                goto bad;
            cp = (cp << 6) | (u[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += k + 1;
    }
    return 1;
bad:
    if (bad_at)
        *bad_at = i;
    return 0;
}

/* Deepest nesting of arrays/objects in the raw text, stopping early once over max:
 * cJSON recurses per level, so depth is bounded before it runs. */
static int depth_exceeds(const char *s, size_t n, int max)
{
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

static srq_code fail(srq_request *r, srq_code c, char err[SRQ_ERRLEN], const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static srq_code fail(srq_request *r, srq_code c, char err[SRQ_ERRLEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SRQ_ERRLEN, fmt, ap);
    va_end(ap);
    srq_free(r);
    return c;
}

/* One text: a JSON string of valid UTF-8 and at most max_text_bytes bytes. */
static srq_code take_text(srq_request *r, const cJSON *it, size_t i, int listed, const srq_limits *lim,
                          char err[SRQ_ERRLEN])
{
    char field[48];
    if (listed)
        snprintf(field, sizeof field, "inputs[%zu]", i);
    else
        snprintf(field, sizeof field, "inputs");
    if (!cJSON_IsString(it) || !it->valuestring)
        return fail(r, SRQ_TYPE, err, "%s: expected a string", field);
    size_t n = strlen(it->valuestring);
    if (n > lim->max_text_bytes)
        return fail(r, SRQ_TOO_LONG, err, "%s: text of %zu bytes exceeds the limit of %zu bytes", field, n,
                    lim->max_text_bytes);
    size_t bad = 0;
    if (!srq_utf8_valid(it->valuestring, n, &bad))
        return fail(r, SRQ_UTF8, err, "%s: invalid UTF-8 at byte %zu", field, bad);
    r->text[i] = it->valuestring;
    r->len[i] = n;
    return SRQ_OK;
}

srq_code srq_parse(const char *body, size_t len, const srq_limits *lim, srq_request *out, char err[SRQ_ERRLEN])
{
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    if (len == 0)
        return fail(out, SRQ_MALFORMED, err, "body: empty (expected a JSON object with \"inputs\")");
    if (depth_exceeds(body, len, lim->max_depth))
        return fail(out, SRQ_DEPTH, err, "body: JSON nested deeper than %d levels", lim->max_depth);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        /* cJSON cannot say whether it failed on bad syntax or on memory; a body
         * within the limits is small, so syntax it is */
        return fail(out, SRQ_MALFORMED, err, "body: malformed JSON near byte %zu", at);
    }
    out->tree_ = root;
    /* trailing bytes after the document (other than whitespace) are malformed too */
    for (const char *q = end; q && q < body + len; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
            return fail(out, SRQ_MALFORMED, err, "body: malformed JSON near byte %zu", (size_t)(q - body));
    if (!cJSON_IsObject(root))
        return fail(out, SRQ_TYPE, err, "body: expected a JSON object with \"inputs\"");

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params))
            return fail(out, SRQ_TYPE, err, "parameters: expected an object");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "threshold");
        if (t && !cJSON_IsNull(t)) {
            if (!cJSON_IsNumber(t))
                return fail(out, SRQ_TYPE, err, "parameters.threshold: expected a number");
            if (!(t->valuedouble >= 0.0 && t->valuedouble <= 1.0))
                return fail(out, SRQ_RANGE, err, "parameters.threshold: must be in [0, 1]");
            out->has_threshold = 1;
            out->threshold = t->valuedouble;
        }
    }

    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!in)
        return fail(out, SRQ_TYPE, err, "inputs: missing (expected a string or a list of strings)");
    int listed = cJSON_IsArray(in);
    if (!listed && !cJSON_IsString(in))
        return fail(out, SRQ_TYPE, err, "inputs: expected a string or a list of strings");
    size_t n = listed ? (size_t)cJSON_GetArraySize(in) : 1;
    if (n == 0)
        return fail(out, SRQ_TYPE, err, "inputs: empty list (expected at least one string)");
    if (n > lim->max_inputs)
        return fail(out, SRQ_TOO_MANY, err, "inputs: %zu texts exceed the limit of %zu per request", n,
                    lim->max_inputs);
    out->text = malloc(n * sizeof *out->text);
    out->len = malloc(n * sizeof *out->len);
    if (!out->text || !out->len)
        return fail(out, SRQ_NOMEM, err, "out of memory");
    out->n = n;
    if (!listed) {
        srq_code c = take_text(out, in, 0, 0, lim, err);
        if (c)
            return c;
    } else {
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, in)
        {
            srq_code c = take_text(out, it, i, 1, lim, err);
            if (c)
                return c;
            i++;
        }
    }
    return SRQ_OK;
}

void srq_free(srq_request *r)
{
    if (!r)
        return;
    cJSON_Delete(r->tree_);
    free(r->text);
    free(r->len);
    memset(r, 0, sizeof *r);
}

/* The shortest %.Ng (N = 15..17) that reads back as the same double. */
static void fmt_double(char out[32], double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

char *srq_format_results(size_t n, const double *p, double threshold, size_t *len)
{
    /* one entry is at most ~150 bytes: two %.17g numbers, one %.17g threshold */
    size_t cap = 16 + n * 192;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t k = 0;
    s[k++] = '[';
    for (size_t i = 0; i < n; i++) {
        int ae = p[i] >= threshold;
        double score = ae ? p[i] : 1.0 - p[i];
        char fs[32], fp[32], ft[32];
        fmt_double(fs, score);
        fmt_double(fp, p[i]);
        fmt_double(ft, threshold);
        int w = snprintf(s + k, cap - k, "%s{\"label\": \"%s\", \"score\": %s, \"p_adverse_event\": %s, \"threshold\": %s}",
                         i ? ", " : "", ae ? "Adverse_Event" : "Not_AE", fs, fp, ft);
        if (w < 0 || (size_t)w >= cap - k) {
            free(s);
            return NULL;
        }
        k += (size_t)w;
    }
    s[k++] = ']';
    s[k++] = '\n';
    s[k] = '\0';
    if (len)
        *len = k;
    return s;
}

char *srq_format_error(int status, const char *msg, size_t *len)
{
    cJSON *o = cJSON_CreateObject(), *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
    char *s = NULL;
    if (e && cJSON_AddNumberToObject(e, "code", status) && cJSON_AddStringToObject(e, "message", msg))
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s && len)
        *len = strlen(s);
    return s;
}
