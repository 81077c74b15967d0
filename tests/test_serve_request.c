/* launch/serve_request.c (adebert serve's JSON): accepted shapes, every error class
 * with the field it names, limits at their edges, UTF-8 validation, and that no
 * error message quotes the request's text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "launch/serve_request.h"

static const srq_limits LIM = {4, 32, 4};

static srq_code parse(const char *body, srq_request *r, char err[SRQ_ERRLEN])
{
    return srq_parse(body, strlen(body), &LIM, r, err);
}

static void test_accepts(void **state)
{
    (void)state;
    srq_request r;
    char err[SRQ_ERRLEN];
    assert_int_equal(parse("{\"inputs\": \"one text\"}", &r, err), SRQ_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "one text");
    assert_int_equal(r.has_threshold, 0);
    srq_free(&r);
    assert_int_equal(parse(" {\"inputs\": [\"a\", \"\", \"\\u00e9\\ud83d\\ude00\"], \"parameters\": {\"threshold\": 0.6, "
                           "\"truncation\": true}, \"options\": {}} \n",
                           &r, err),
                     SRQ_OK);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[1], "");
    assert_int_equal(r.len[2], 2 + 4);
    assert_int_equal(r.has_threshold, 1);
    assert_true(r.threshold == 0.6);
    srq_free(&r);
    /* limits are inclusive */
    assert_int_equal(parse("{\"inputs\": [\"a\", \"b\", \"c\", \"d\"], \"parameters\": {\"threshold\": 1}}", &r, err),
                     SRQ_OK);
    srq_free(&r);
    assert_int_equal(parse("{\"inputs\": \"12345678901234567890123456789012\"}", &r, err), SRQ_OK);
    srq_free(&r);
    assert_int_equal(parse("{\"inputs\": [\"x\"], \"parameters\": null}", &r, err), SRQ_OK);
    srq_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        srq_code code;
        int status;
        const char *field;
    } cases[] = {
        {"", SRQ_MALFORMED, 400, "body"},
        {"{\"inputs\": [\"PHI-TEXT\"", SRQ_MALFORMED, 400, "body"},
        {"{\"inputs\": \"PHI-TEXT\"} {}", SRQ_MALFORMED, 400, "body"},
        {"{\"inputs\": [\"\\ud800\"]}", SRQ_MALFORMED, 400, "body"},
        {"[\"PHI-TEXT\"]", SRQ_TYPE, 400, "body"},
        {"{\"input\": \"PHI-TEXT\"}", SRQ_TYPE, 400, "inputs"},
        {"{\"inputs\": [\"PHI-TEXT\", \"b\", 3]}", SRQ_TYPE, 400, "inputs[2]"},
        {"{\"inputs\": null}", SRQ_TYPE, 400, "inputs"},
        {"{\"inputs\": []}", SRQ_TYPE, 400, "inputs"},
        {"{\"inputs\": \"a\", \"parameters\": [0.5]}", SRQ_TYPE, 400, "parameters"},
        {"{\"inputs\": \"a\", \"parameters\": {\"threshold\": \"0.5\"}}", SRQ_TYPE, 400, "parameters.threshold"},
        {"{\"inputs\": \"a\", \"parameters\": {\"threshold\": -0.01}}", SRQ_RANGE, 400, "parameters.threshold"},
        {"{\"inputs\": \"a\", \"parameters\": {\"threshold\": 1e400}}", SRQ_RANGE, 400, "parameters.threshold"},
        {"{\"inputs\": [[[[\"a\"]]]]}", SRQ_DEPTH, 400, "body"},
        {"{\"inputs\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", SRQ_TOO_MANY, 413, "inputs"},
        {"{\"inputs\": [\"a\", \"PHI-TEXT 4567890123456789012345678\"]}", SRQ_TOO_LONG, 413, "inputs[1]"},
        {"{\"inputs\": [\"a\", \"PHI-TEXT \xc3\x28\"]}", SRQ_UTF8, 400, "inputs[1]"},
        {"{\"inputs\": \"PHI-TEXT \xed\xa0\x80\"}", SRQ_UTF8, 400, "inputs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srq_request r;
        char err[SRQ_ERRLEN];
        srq_code c = parse(cases[i].body, &r, err);
        if (c != cases[i].code)
            fail_msg("case %zu: code %d (%s), want %d", i, c, err, cases[i].code);
        assert_int_equal(srq_http_status(c), cases[i].status);
        if (strncmp(err, cases[i].field, strlen(cases[i].field)) || err[strlen(cases[i].field)] != ':')
            fail_msg("case %zu: '%s' does not start with '%s:'", i, err, cases[i].field);
        assert_null(strstr(err, "PHI"));
        assert_int_equal(r.n, 0);
        assert_null(r.text);
        size_t n = 0;
        char *e = srq_format_error(srq_http_status(c), err, &n);
        cJSON *j = cJSON_Parse(e);
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valueint, cases[i].status);
        cJSON_Delete(j);
        free(e);
    }
}

static void test_utf8(void **state)
{
    (void)state;
    size_t at = 99;
    assert_true(srq_utf8_valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, NULL));
    assert_false(srq_utf8_valid("ab\xc0\x80", 4, &at)); /* overlong NUL */
    assert_int_equal(at, 2);
    assert_false(srq_utf8_valid("\xe0\x80\xaf", 3, NULL));     /* overlong */
    assert_false(srq_utf8_valid("\xf4\x90\x80\x80", 4, NULL)); /* > U+10FFFF */
    assert_false(srq_utf8_valid("\xe2\x82", 2, NULL));         /* truncated */
    assert_false(srq_utf8_valid("\x80", 1, NULL));
}

static void test_results(void **state)
{
    (void)state;
    double p[3] = {0.25, 0.5, 0.9123456789012345};
    size_t n = 0;
    char *s = srq_format_results(3, p, 0.5, &n);
    assert_int_equal(strlen(s), n);
    cJSON *j = cJSON_Parse(s);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    const char *want[3] = {"Not_AE", "Adverse_Event", "Adverse_Event"};
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_GetArrayItem(j, i);
        assert_string_equal(cJSON_GetObjectItem(o, "label")->valuestring, want[i]);
        assert_true(cJSON_GetObjectItem(o, "p_adverse_event")->valuedouble == p[i]);
        double score = cJSON_GetObjectItem(o, "score")->valuedouble;
        assert_true(score == (i ? p[i] : 1 - p[i]));
        assert_true(cJSON_GetObjectItem(o, "threshold")->valuedouble == 0.5);
    }
    cJSON_Delete(j);
    free(s);
    /* a short threshold prints short */
    s = srq_format_results(1, p, 0.1, &n);
    assert_non_null(strstr(s, "\"threshold\": 0.1}"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
