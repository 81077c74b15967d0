/* --augment rows (io/augment.c): the strict JSONL reader (good files, and one test
 * per kind of bad input: the error names file and line, never the text), the
 * normalisation the leakage check compares, the check itself, the exact-duplicate
 * count, the seeded choice and the join into the train split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"

/* Planted in every bad row: error messages must never quote it. */
#define SECRET "SECRETWORD"

static char tmp_dir[256];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/adebert_augment_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* tmp_dir/name holding len bytes of data; the path into buf. */
static void write_file(const char *name, const char *data, size_t len, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
    FILE *f = fopen(buf, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void assert_zeroed(const io_augment *a)
{
    assert_int_equal(a->rows.n, 0);
    assert_null(a->rows.text);
    assert_null(a->rows.arena);
    assert_null(a->line);
}

/* ---------------------------------------------------------------- the reader */

static void test_load_good(void **state)
{
    (void)state;
    /* a BOM, CRLF, a blank line (counted), extra keys, every label spelling, and a
     * last line without its newline */
    const char data[] = "\xEF\xBB\xBF{\"text\": \"Drug X caused a rash.\", \"label\": \"Adverse_Event\", "
                        "\"source\": \"gen-v1\", \"prompt_id\": 7}\r\n"
                        "\n"
                        "{\"text\": \"No problems with drug Y.\", \"label\": \"Not_AE\", \"prompt_id\": \"p-2\", "
                        "\"extra\": [1, 2]}\n"
                        "   \n"
                        "{\"label\": 1, \"text\": \"Caf\\u00e9 headache \\u2014 drug Z.\"}\n"
                        "{\"text\": \"Nothing.\", \"label\": 0}";
    char path[512], err[IO_ERRLEN] = "", hex[65];
    write_file("good.jsonl", data, sizeof data - 1, path, sizeof path);
    io_augment a;
    if (io_augment_load(path, &a, err))
        fail_msg("%s", err);
    assert_int_equal(a.rows.n, 4);
    const char *want[4] = {"Drug X caused a rash.", "No problems with drug Y.",
                           "Caf\xC3\xA9 headache \xE2\x80\x94 drug Z.", "Nothing."};
    const uint8_t labels[4] = {1, 0, 1, 0};
    const uint32_t lines[4] = {1, 3, 5, 6};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(a.rows.text[i], want[i]);
        assert_int_equal(a.rows.len[i], strlen(want[i]));
        assert_int_equal(a.rows.label[i], labels[i]);
        assert_int_equal(a.line[i], lines[i]);
        assert_int_equal(a.rows.pmid[i], -1);
    }
    /* the sha256 of the file's bytes */
    assert_int_equal(io_sha256_file(path, hex, err), 0);
    assert_string_equal(a.sha256, hex);
    io_augment_free(&a);
    assert_zeroed(&a);
    io_augment_free(&a); /* twice is fine */
}

typedef struct {
    const char *why;
    const char *data;
    size_t len; /* 0: strlen(data) */
    int line;   /* the line the error must name; 0: none */
    const char *what;
} bad_case;

static void test_bad_inputs(void **state)
{
    (void)state;
    const char ok[] = "{\"text\": \"fine " SECRET "\", \"label\": 1}\n";
    const bad_case cases[] = {
        {"not JSON", "%s{\"text\": \"" SECRET "\" \"label\": 1}\n", 0, 2, "not valid JSON"},
        {"not an object", "%s[\"" SECRET "\", 1]\n", 0, 2, "not a JSON object"},
        {"a bare string", "%s\"" SECRET "\"\n", 0, 2, "not a JSON object"},
        {"no text", "%s{\"txt\": \"" SECRET "\", \"label\": 1}\n", 0, 2, "no \"text\""},
        {"text a number", "%s{\"text\": 12345, \"label\": 1, \"source\": \"" SECRET "\"}\n", 0, 2, "not a string"},
        {"text null", "%s{\"text\": null, \"label\": \"" SECRET "\"}\n", 0, 2, "not a string"},
        {"empty text", "%s{\"text\": \"\", \"label\": 1, \"source\": \"" SECRET "\"}\n", 0, 2, "empty"},
        {"white space text", "%s{\"text\": \" \\t\\u00a0\\u3000 \", \"label\": 1, \"s\": \"" SECRET "\"}\n", 0, 2,
         "white space"},
        {"no label", "%s{\"text\": \"" SECRET "\"}\n", 0, 2, "no \"label\""},
        {"label lowercase", "%s{\"text\": \"" SECRET "\", \"label\": \"adverse_event\"}\n", 0, 2, "unknown \"label\""},
        {"label Related", "%s{\"text\": \"" SECRET "\", \"label\": \"Related\"}\n", 0, 2, "unknown \"label\""},
        {"label 2", "%s{\"text\": \"" SECRET "\", \"label\": 2}\n", 0, 2, "unknown \"label\""},
        {"label \"1\"", "%s{\"text\": \"" SECRET "\", \"label\": \"1\"}\n", 0, 2, "unknown \"label\""},
        {"label true", "%s{\"text\": \"" SECRET "\", \"label\": true}\n", 0, 2, "unknown \"label\""},
        {"source a number", "%s{\"text\": \"" SECRET "\", \"label\": 1, \"source\": 3}\n", 0, 2, "\"source\""},
        {"prompt_id a float", "%s{\"text\": \"" SECRET "\", \"label\": 1, \"prompt_id\": 1.5}\n", 0, 2,
         "\"prompt_id\""},
        {"prompt_id an object", "%s{\"text\": \"" SECRET "\", \"label\": 1, \"prompt_id\": {}}\n", 0, 2,
         "\"prompt_id\""},
        {"invalid UTF-8 byte", "%s{\"text\": \"" SECRET " \xff\", \"label\": 1}\n", 0, 2, "invalid UTF-8"},
        {"overlong UTF-8", "%s{\"text\": \"" SECRET " \xC0\xAF\", \"label\": 1}\n", 0, 2, "invalid UTF-8"},
        {"lone surrogate escape", "%s{\"text\": \"" SECRET " \\ud800\", \"label\": 1}\n", 0, 2, NULL},
        {"NUL escape", "%s{\"text\": \"" SECRET "\\u0000tail\", \"label\": 1}\n", 0, 2, "NUL"},
        {"truncated last line", "%s{\"text\": \"" SECRET " and then", 0, 2, "truncated"},
        {"truncated with newline", "%s{\"text\": \"" SECRET "\", \"lab\n", 0, 2, "not valid JSON"},
        {"trailing garbage", "%s{\"text\": \"" SECRET "\", \"label\": 1} x\n", 0, 2, "not valid JSON"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char data[512], path[512], err[IO_ERRLEN] = "";
        snprintf(data, sizeof data, cases[k].data, ok);
        write_file("bad.jsonl", data, strlen(data), path, sizeof path);
        io_augment a;
        memset(&a, 0x5A, sizeof a);
        if (io_augment_load(path, &a, err) == 0)
            fail_msg("%s: loading should have failed", cases[k].why);
        assert_zeroed(&a);
        char tag[32];
        snprintf(tag, sizeof tag, ": line %d:", cases[k].line);
        if (!strstr(err, path) || !strstr(err, tag))
            fail_msg("%s: error '%s' does not name the file and line %d", cases[k].why, err, cases[k].line);
        if (cases[k].what && !strstr(err, cases[k].what))
            fail_msg("%s: error '%s' does not say '%s'", cases[k].why, err, cases[k].what);
        if (strstr(err, SECRET) || strchr(err, '\n'))
            fail_msg("%s: error quotes the text or spans lines: '%s'", cases[k].why, err);
    }
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    const char *const empties[] = {"", "\n\n  \n", "\xEF\xBB\xBF"};
    for (size_t k = 0; k < 3; k++) {
        char path[512], err[IO_ERRLEN] = "";
        write_file("empty.jsonl", empties[k], strlen(empties[k]), path, sizeof path);
        io_augment a;
        assert_int_not_equal(io_augment_load(path, &a, err), 0);
        assert_zeroed(&a);
        assert_non_null(strstr(err, "no rows"));
        assert_non_null(strstr(err, path));
    }
    char path[512], err[IO_ERRLEN] = "";
    snprintf(path, sizeof path, "%s/absent.jsonl", tmp_dir);
    io_augment a;
    assert_int_not_equal(io_augment_load(path, &a, err), 0);
    assert_non_null(strstr(err, "absent.jsonl"));
    assert_int_not_equal(io_augment_load(tmp_dir, &a, err), 0); /* a directory */
    /* a NUL byte in the file */
    const char nul[] = "{\"text\": \"ok\", \"label\": 1}\n{\"text\": \"a\0b\", \"label\": 1}\n";
    write_file("nul.jsonl", nul, sizeof nul - 1, path, sizeof path);
    assert_int_not_equal(io_augment_load(path, &a, err), 0);
    assert_non_null(strstr(err, ": line 2: NUL byte"));
}

/* ---------------------------------------------------------------- normalisation */

static void expect_norm(const char *in, const char *want)
{
    char *out = NULL, err[IO_ERRLEN] = "";
    size_t len = 0;
    if (io_text_normalise(in, &out, &len, err))
        fail_msg("normalising '%s': %s", in, err);
    if (strcmp(out, want) || len != strlen(want))
        fail_msg("normalise('%s') = '%s', want '%s'", in, out, want);
    free(out);
}

static void test_normalise(void **state)
{
    (void)state;
    expect_norm("Drug X caused a rash.", "drug x caused a rash.");
    expect_norm("  Drug\tX \n\n caused  a rash.  ", "drug x caused a rash.");
    /* fullwidth letters, NBSP, ideographic space, a ligature, sharp s, a soft hyphen */
    expect_norm("\xEF\xBC\xA4rug\xC2\xA0X\xE3\x80\x80" "\xEF\xAC\x81ne", "drug x fine");
    expect_norm("Stra\xC3\x9F" "e", "strasse");
    expect_norm("ra\xC2\xADsh", "rash");
    /* composed and decomposed e-acute agree */
    expect_norm("Cafe\xCC\x81", "caf\xC3\xA9");
    expect_norm("CAF\xC3\x89", "caf\xC3\xA9");
    expect_norm(" \t\xE2\x80\xA8 ", "");
    char *out = NULL, err[IO_ERRLEN] = "";
    size_t len = 0;
    assert_int_not_equal(io_text_normalise("bad \xff", &out, &len, err), 0);
    assert_null(out);
}

/* ---------------------------------------------------------------- check, count, choose, join */

/* A small corpus: rows 0..5; "val" = {1, 2}, "test" = {4}. */
static const char CORPUS[] = "{\"text\": \"Train sentence one.\", \"label\": 1}\n"
                             "{\"text\": \"A validation sentence about drug A.\", \"label\": 0}\n"
                             "{\"text\": \"Another validation row.\", \"label\": 1}\n"
                             "{\"text\": \"Train sentence two.\", \"label\": 0}\n"
                             "{\"text\": \"The TEST sentence: hepatitis after drug B.\", \"label\": 1}\n"
                             "{\"text\": \"Train sentence three.\", \"label\": 1}\n";

static void load_pair(const char *aug, io_corpus *c, io_augment *a)
{
    char path[512], err[IO_ERRLEN] = "";
    write_file("corpus.jsonl", CORPUS, strlen(CORPUS), path, sizeof path);
    if (io_corpus_load_file(path, IO_VIEW_HF, c, err))
        fail_msg("%s", err);
    write_file("aug.jsonl", aug, strlen(aug), path, sizeof path);
    if (io_augment_load(path, a, err))
        fail_msg("%s", err);
}

static void test_find_normalised(void **state)
{
    (void)state;
    const uint32_t valtest[3] = {1, 2, 4};
    const uint32_t train[3] = {0, 3, 5};
    /* the test row again, differing in case, white space and a compatibility form */
    const char aug[] = "{\"text\": \"Synthetic one.\", \"label\": 1}\n"
                       "{\"text\": \"Train sentence two.\", \"label\": 0}\n"
                       "\n"
                       "{\"text\": \"  the test  sentence:\\thepatitis after drug \\uff22. \", \"label\": 1}\n"
                       "{\"text\": \"another VALIDATION row.\", \"label\": 1}\n";
    io_corpus c;
    io_augment a;
    load_pair(aug, &c, &a);
    char err[IO_ERRLEN] = "";
    int found = -1;
    size_t row = 99;
    assert_int_equal(io_augment_find_normalised(&a, &c, valtest, 3, &found, &row, err), 0);
    assert_int_equal(found, 1);
    assert_int_equal(row, 2); /* the first offending row in file order */
    assert_int_equal(a.line[row], 4);
    /* against train rows only: nothing (row 1 duplicates train exactly, which is no leak) */
    assert_int_equal(io_augment_find_normalised(&a, &c, valtest, 0, &found, &row, err), 0);
    assert_int_equal(found, 0);
    /* exact duplicates of train rows among the rows used */
    const uint32_t all[4] = {0, 1, 2, 3}, some[2] = {0, 2};
    size_t dups = 99;
    assert_int_equal(io_augment_count_exact(&a, all, 4, &c, train, 3, &dups, err), 0);
    assert_int_equal(dups, 1);
    assert_int_equal(io_augment_count_exact(&a, some, 2, &c, train, 3, &dups, err), 0);
    assert_int_equal(dups, 0);
    /* exact, not normalised: a case change is not an exact duplicate */
    assert_int_equal(io_augment_count_exact(&a, all, 4, &c, valtest, 3, &dups, err), 0);
    assert_int_equal(dups, 0);
    io_augment_free(&a);
    io_corpus_free(&c);
}

static void test_choose(void **state)
{
    (void)state;
    char err[IO_ERRLEN] = "";
    enum { N = 200 };
    uint32_t a[N], b[N], c[N], big[N];
    assert_int_equal(io_augment_choose(N, 50, 42, a, err), 0);
    assert_int_equal(io_augment_choose(N, 50, 42, b, err), 0);
    assert_memory_equal(a, b, sizeof(uint32_t) * 50);
    for (size_t i = 1; i < 50; i++)
        assert_true(a[i - 1] < a[i]); /* ascending, distinct */
    assert_true(a[49] < N);
    assert_int_equal(io_augment_choose(N, 50, 43, c, err), 0);
    assert_memory_not_equal(a, c, sizeof(uint32_t) * 50);
    /* a larger count under the same seed holds the smaller one's rows */
    assert_int_equal(io_augment_choose(N, 120, 42, big, err), 0);
    for (size_t i = 0, j = 0; i < 50; i++) {
        while (j < 120 && big[j] < a[i])
            j++;
        assert_true(j < 120 && big[j] == a[i]);
    }
    /* all rows: 0..N-1 */
    assert_int_equal(io_augment_choose(N, N, 42, big, err), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(big[i], i);
    /* more than the file has */
    assert_int_not_equal(io_augment_choose(N, N + 1, 42, big, err), 0);
    assert_non_null(strstr(err, "asks for 201 rows, the file has 200"));
    /* a fixed value, so that the choice cannot drift between versions unnoticed */
    uint32_t three[3];
    assert_int_equal(io_augment_choose(10, 3, 42, three, err), 0);
    const uint32_t want[3] = {3, 5, 9};
    assert_memory_equal(three, want, sizeof three);
}

static void test_join(void **state)
{
    (void)state;
    const char aug[] = "{\"text\": \"Synthetic positive one.\", \"label\": \"Adverse_Event\"}\n"
                       "{\"text\": \"Synthetic negative.\", \"label\": \"Not_AE\"}\n"
                       "{\"text\": \"Synthetic positive two.\", \"label\": 1}\n";
    io_corpus c;
    io_augment a;
    load_pair(aug, &c, &a);
    io_split s = {0};
    s.n_train = 3;
    s.n_val = 2;
    s.n_test = 1;
    s.train = malloc(3 * sizeof *s.train);
    s.val = malloc(2 * sizeof *s.val);
    s.test = malloc(sizeof *s.test);
    assert_non_null(s.train);
    assert_non_null(s.val);
    assert_non_null(s.test);
    s.train[0] = 0, s.train[1] = 3, s.train[2] = 5;
    s.val[0] = 1, s.val[1] = 2;
    s.test[0] = 4;
    char *before[6];
    for (size_t i = 0; i < 6; i++)
        before[i] = strdup(c.text[i]);
    const uint32_t use[2] = {0, 2};
    char err[IO_ERRLEN] = "";
    assert_int_equal(io_augment_join(&c, &s, &a, use, 2, err), 0);
    assert_int_equal(c.n, 8);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(c.text[i], before[i]);
        assert_true(c.text[i] >= c.arena && c.text[i] < c.arena + c.arena_size);
        free(before[i]);
    }
    assert_string_equal(c.text[6], "Synthetic positive one.");
    assert_string_equal(c.text[7], "Synthetic positive two.");
    assert_int_equal(c.len[7], strlen("Synthetic positive two."));
    assert_int_equal(c.label[6], 1);
    assert_int_equal(c.label[7], 1);
    assert_int_equal(c.pmid[7], -1);
    assert_int_equal(s.n_train, 5);
    const uint32_t want_train[5] = {0, 3, 5, 6, 7};
    assert_memory_equal(s.train, want_train, sizeof want_train);
    assert_int_equal(s.n_val, 2);
    assert_int_equal(s.n_test, 1);
    assert_int_equal(s.test[0], 4);
    /* an out-of-range row changes nothing */
    const uint32_t bad[1] = {3};
    assert_int_not_equal(io_augment_join(&c, &s, &a, bad, 1, err), 0);
    assert_int_equal(c.n, 8);
    assert_int_equal(s.n_train, 5);
    io_split_free(&s);
    io_augment_free(&a);
    io_corpus_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good),     cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_empty_and_missing), cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_find_normalised), cmocka_unit_test(test_choose),
        cmocka_unit_test(test_join),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
