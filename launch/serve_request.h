/* launch/serve_request: the JSON of `adebert serve`, as pure functions (no I/O, no
 * model), so that the parser can be unit-tested and fuzzed on its own.
 *
 * Request (Hugging Face inference style, also SageMaker's /invocations body):
 *   {"inputs": "text" | ["t1", "t2", ...], "parameters": {"threshold": 0.6}}
 * Unknown members (top level and in "parameters") are ignored, as HF's endpoints do.
 * Response: one object per input, in input order:
 *   [{"label": "Adverse_Event"|"Not_AE", "score": p_of_label, "p_adverse_event": p,
 *     "threshold": t}, ...]
 *
 * Limits are checked before any work that grows with them: the nesting depth on the
 * raw bytes before parsing; the number of texts and each text's size before anything
 * is tokenized. Error messages name the field ("inputs[3]: ...") and never quote the
 * request's text: requests carry PHI. */
#ifndef ADEBERT_SERVE_REQUEST_H
#define ADEBERT_SERVE_REQUEST_H

#include <stddef.h>

#define SRQ_ERRLEN 256

typedef struct {
    size_t max_inputs;     /* texts per request */
    size_t max_text_bytes; /* bytes of one text, after JSON unescaping */
    int max_depth;         /* JSON nesting ({"inputs": [...]} is 2) */
} srq_limits;

/* Error classes: each is one HTTP status and one metrics label. */
typedef enum {
    SRQ_OK = 0,
    SRQ_MALFORMED,   /* not JSON (400) */
    SRQ_DEPTH,       /* nested deeper than max_depth (400) */
    SRQ_TYPE,        /* a member of the wrong type or missing (400) */
    SRQ_UTF8,        /* invalid UTF-8 (400) */
    SRQ_RANGE,       /* a number outside its range (400) */
    SRQ_TOO_MANY,    /* more than max_inputs texts (413) */
    SRQ_TOO_LONG,    /* a text over max_text_bytes (413) */
    SRQ_NOMEM,       /* (500) */
    SRQ_NCODES
} srq_code;

typedef struct {
    size_t n;           /* texts, >= 1 */
    const char **text;  /* n pointers into the parsed tree (valid UTF-8) */
    size_t *len;        /* their lengths in bytes */
    int has_threshold;  /* parameters.threshold was given */
    double threshold;   /* in [0, 1] when has_threshold */
    void *tree_;        /* the parsed document (owns the texts) */
} srq_request;

/* Parses body[0..len) (need not be NUL-terminated). On success fills *out (free it
 * with srq_free); otherwise *out is empty, err names the field and the return value
 * says which class of error it is. */
srq_code srq_parse(const char *body, size_t len, const srq_limits *lim, srq_request *out, char err[SRQ_ERRLEN]);
void srq_free(srq_request *r);

int srq_http_status(srq_code c);     /* 400, 413 or 500 */
const char *srq_code_name(srq_code c); /* metrics label: "malformed_json", ... */

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * beyond U+10FFFF); else 0 and *bad_at (may be NULL) = offset of the first bad byte. */
int srq_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* The response body for n scores (malloc'd, NUL-terminated; NULL when out of
 * memory). label = Adverse_Event when p >= threshold; score = p or 1 - p. */
char *srq_format_results(size_t n, const double *p, double threshold, size_t *len);

/* {"error": {"code": status, "message": msg}} (malloc'd; NULL when out of memory).
 * msg must hold no request text (the callers' messages name fields only). */
char *srq_format_error(int status, const char *msg, size_t *len);

#endif
