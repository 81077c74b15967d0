/* libFuzzer target: srq_parse (adebert serve's request parser) on arbitrary bytes,
 * with small limits so that every limit is reachable; an accepted request must hold
 * 1..max_inputs texts of valid UTF-8 within max_text_bytes, and its response and
 * error bodies must format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "launch/serve_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srq_limits lim = {8, 64, 6};
    srq_request r;
    char err[SRQ_ERRLEN];
    srq_code c = srq_parse((const char *)data, size, &lim, &r, err);
    if (c != SRQ_OK) {
        if (r.n || r.text || !err[0] || srq_http_status(c) < 400)
            abort();
        size_t n = 0;
        free(srq_format_error(srq_http_status(c), err, &n));
        return 0;
    }
    if (r.n < 1 || r.n > lim.max_inputs)
        abort();
    if (r.has_threshold && !(r.threshold >= 0.0 && r.threshold <= 1.0))
        abort();
    double *p = malloc(r.n * sizeof *p);
    for (size_t i = 0; i < r.n; i++) {
        if (r.len[i] > lim.max_text_bytes || strlen(r.text[i]) != r.len[i] || !srq_utf8_valid(r.text[i], r.len[i], NULL))
            abort();
        p[i] = (double)r.len[i] / (double)(lim.max_text_bytes + 1);
    }
    size_t n = 0;
    free(srq_format_results(r.n, p, r.has_threshold ? r.threshold : 0.5, &n));
    free(p);
    srq_free(&r);
    return 0;
}
