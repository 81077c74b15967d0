/* Corpus readers and views: the real ADE corpus (counts that must hold exactly),
 * the small made-up fixtures in tests/data/, and one test per kind of bad input.
 * The real corpus comes from $ADEBERT_TEST_DATA/ade-corpus-v2; its absence is a
 * failure, not a skip. Bad-input files are written to a fresh temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"

/* A marker planted in every bad line: error messages must never quote it. */
#define SECRET "SECRETWORD"

static void corpus_dir(char *buf, size_t cap) {
    const char *d = getenv("ADEBERT_TEST_DATA");
    if (!d || !*d) fail_msg("ADEBERT_TEST_DATA is not set: the corpus tests need the ADE corpus");
    snprintf(buf, cap, "%s/ade-corpus-v2", d);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) fail_msg("corpus directory %s is missing", buf);
}

static void fixture(char *buf, size_t cap, const char *name) {
    const char *src = getenv("ADEBERT_SOURCE_DIR");
    snprintf(buf, cap, "%s/tests/data/%s", src && *src ? src : ".", name);
}

static void assert_zeroed(const io_corpus *c) {
    assert_int_equal(c->n, 0);
    assert_null(c->text);
    assert_null(c->len);
    assert_null(c->label);
    assert_null(c->pmid);
    assert_null(c->arena);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- temp files */

typedef struct {
    char dir[256];
} tmpdir;

static void tmp_make(tmpdir *t) {
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/adebert_corpus_XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
}

static void tmp_path(const tmpdir *t, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", t->dir, name);
}

static void tmp_write(const tmpdir *t, const char *name, const char *data, size_t len) {
    char p[512];
    tmp_path(t, name, p, sizeof p);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void tmp_writes(const tmpdir *t, const char *name, const char *data) {
    tmp_write(t, name, data, strlen(data));
}

static void tmp_rm(tmpdir *t) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* Expect `load` of `path` to fail with an error naming `name` and, when line > 0,
 * ":line:", containing `what`, never the secret marker, and a zeroed corpus;
 * `why` names the case in a failure. */
static void expect_fail(const char *why, const char *path, int is_dir, const char *name, int line, const char *what) {
    io_corpus c;
    char err[IO_ERRLEN] = "";
    memset(&c, 0x5A, sizeof c);
    int rc = is_dir ? io_corpus_load_ade(path, IO_VIEW_HF, &c, err) : io_corpus_load_file(path, IO_VIEW_HF, &c, err);
    if (rc == 0) fail_msg("%s: loading %s should have failed", why, path);
    assert_zeroed(&c);
    if (!strstr(err, name)) fail_msg("%s: error '%s' does not name %s", why, err, name);
    if (line > 0) {
        char tag[32];
        snprintf(tag, sizeof tag, ":%d:", line);
        if (!strstr(err, tag)) fail_msg("%s: error '%s' does not name line %d", why, err, line);
    }
    if (what && !strstr(err, what)) fail_msg("%s: error '%s' does not say '%s'", why, err, what);
    if (strstr(err, SECRET)) fail_msg("%s: error quotes the line's text: '%s'", why, err);
    assert_null(strchr(err, '\n'));
    io_corpus_free(&c);
}

/* An ADE directory holding the two files. */
static void ade_dir(const tmpdir *t, const char *rel, size_t rel_len, const char *neg, size_t neg_len) {
    tmp_write(t, "DRUG-AE.rel", rel, rel_len);
    tmp_write(t, "ADE-NEG.txt", neg, neg_len);
}

#define GOOD_REL "101|A made-up sentence about drug X and a rash.|rash|40|44|drug X|27|33\n"
#define GOOD_NEG "202 NEG A made-up sentence with nothing adverse in it.\n"

/* ---------------------------------------------------------------- real corpus */

static void test_hf_counts(void **state) {
    (void)state;
    char dir[512], err[IO_ERRLEN] = "";
    corpus_dir(dir, sizeof dir);
    io_corpus c;
    if (io_corpus_load_ade(dir, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 23516);
    assert_int_equal(io_corpus_positives(&c), 6821);
    /* File order: all DRUG-AE rows, then all ADE-NEG rows. */
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.label[i], i < 6821 ? 1 : 0);
        assert_true(c.pmid[i] > 0);
        assert_int_equal(strlen(c.text[i]), c.len[i]);
        assert_true(c.text[i] >= c.arena && c.text[i] + c.len[i] < c.arena + c.arena_size);
    }
    /* DRUG-AE sentences are stripped; internal runs of spaces are kept (some
     * ADE-NEG sentences hold a double space). */
    size_t doubles = 0;
    for (size_t i = 0; i < c.n; i++) {
        const char *t = c.text[i];
        size_t l = c.len[i];
        if (i < 6821) {
            assert_true(t[0] != ' ' && t[0] != '\t');
            assert_true(t[l - 1] != ' ' && t[l - 1] != '\t' && t[l - 1] != '\r');
        }
        assert_null(memchr(t, '\n', l));
        doubles += strstr(t, "  ") != NULL;
    }
    assert_true(doubles >= 1);
    io_corpus_free(&c);
    assert_zeroed(&c);
    io_corpus_free(&c); /* twice is fine */
}

static void test_dedup_counts(void **state) {
    (void)state;
    char dir[512], err[IO_ERRLEN] = "";
    corpus_dir(dir, sizeof dir);
    io_corpus hf, dd;
    if (io_corpus_load_ade(dir, IO_VIEW_HF, &hf, err)) fail_msg("%s", err);
    if (io_corpus_load_ade(dir, IO_VIEW_DEDUP, &dd, err)) fail_msg("%s", err);
    assert_int_equal(dd.n, 20896);
    assert_int_equal(io_corpus_positives(&dd), 4271);
    assert_int_equal(dd.n - io_corpus_positives(&dd), 16625);
    /* dedup = the first occurrences of hf, in order, with their labels and PMIDs. */
    uint32_t *first = malloc(hf.n * sizeof *first);
    assert_non_null(first);
    assert_int_equal(io_corpus_text_classes(&hf, first, err), 0);
    size_t k = 0;
    for (size_t i = 0; i < hf.n; i++) {
        assert_true(first[i] <= i);
        assert_int_equal(strcmp(hf.text[first[i]], hf.text[i]), 0);
        if (first[i] != i) continue;
        assert_true(k < dd.n);
        assert_int_equal(strcmp(dd.text[k], hf.text[i]), 0);
        assert_int_equal(dd.label[k], hf.label[i]);
        assert_int_equal(dd.pmid[k], hf.pmid[i]);
        k++;
    }
    assert_int_equal(k, dd.n);
    /* dedup texts are pairwise distinct */
    uint32_t *f2 = malloc(dd.n * sizeof *f2);
    assert_non_null(f2);
    assert_int_equal(io_corpus_text_classes(&dd, f2, err), 0);
    for (size_t i = 0; i < dd.n; i++) assert_int_equal(f2[i], i);
    free(first);
    free(f2);
    io_corpus_free(&hf);
    io_corpus_free(&dd);
}

static void test_load_time(void **state) {
    (void)state;
    char dir[512], err[IO_ERRLEN] = "";
    corpus_dir(dir, sizeof dir);
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        io_corpus c;
        double t0 = now_ms();
        if (io_corpus_load_ade(dir, IO_VIEW_DEDUP, &c, err)) fail_msg("%s", err);
        double dt = now_ms() - t0;
        if (dt < best) best = dt;
        io_corpus_free(&c);
    }
    print_message("corpus load (dedup view, best of 3): %.2f ms\n", best);
#if defined(__SANITIZE_ADDRESS__)
    assert_true(best < 1000.0);
#else
    assert_true(best < 100.0);
#endif
}

static void test_load_dispatch(void **state) {
    (void)state;
    char dir[512], path[512], err[IO_ERRLEN] = "";
    corpus_dir(dir, sizeof dir);
    io_corpus a, b;
    if (io_corpus_load(dir, IO_VIEW_HF, &a, err)) fail_msg("%s", err);
    assert_int_equal(a.n, 23516);
    io_corpus_free(&a);
    fixture(path, sizeof path, "corpus_small.tsv");
    if (io_corpus_load(path, IO_VIEW_HF, &b, err)) fail_msg("%s", err);
    assert_int_equal(b.n, 7);
    io_corpus_free(&b);
}

/* ---------------------------------------------------------------- two-column fixtures */

static void test_fixtures_agree(void **state) {
    (void)state;
    static const char *names[] = {"corpus_small.tsv", "corpus_small.csv", "corpus_small.jsonl"};
    static const uint8_t labels[] = {1, 0, 0, 1, 0, 1, 0};
    io_corpus c[3];
    char path[512], err[IO_ERRLEN] = "";
    for (int k = 0; k < 3; k++) {
        fixture(path, sizeof path, names[k]);
        if (io_corpus_load_file(path, IO_VIEW_HF, &c[k], err)) fail_msg("%s", err);
        assert_int_equal(c[k].n, 7);
        for (size_t i = 0; i < 7; i++) {
            assert_int_equal(c[k].label[i], labels[i]);
            assert_int_equal(c[k].pmid[i], -1);
            assert_int_equal(strlen(c[k].text[i]), c[k].len[i]);
        }
    }
    assert_string_equal(c[0].text[2], "\"Quoted\" words, commas, and spaces  inside stay as written.");
    for (int k = 1; k < 3; k++)
        for (size_t i = 0; i < 7; i++) assert_string_equal(c[k].text[i], c[0].text[i]);
    for (int k = 0; k < 3; k++) io_corpus_free(&c[k]);

    /* dedup drops the repeated row 7 */
    io_corpus d;
    fixture(path, sizeof path, "corpus_small.csv");
    if (io_corpus_load_file(path, IO_VIEW_DEDUP, &d, err)) fail_msg("%s", err);
    assert_int_equal(d.n, 6);
    assert_int_equal(io_corpus_positives(&d), 3);
    io_corpus_free(&d);
}

static void test_tsv_header_optional_crlf(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char p[512], err[IO_ERRLEN] = "";
    io_corpus c;
    tmp_writes(&t, "a.tsv", "Some tired feeling after a pill.\t1\r\nA walk in the park.\t0\r\n");
    tmp_path(&t, "a.tsv", p, sizeof p);
    if (io_corpus_load_file(p, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[0], "Some tired feeling after a pill.");
    assert_string_equal(c.text[1], "A walk in the park.");
    assert_int_equal(c.label[0], 1);
    io_corpus_free(&c);

    /* Header, BOM, a blank line, no final newline, label case and padding. */
    tmp_writes(&t, "b.TSV", "\xEF\xBB\xBFsentence\tLabel\r\nOne.\tadverse_event \n\nTwo.\tNOT_AE");
    tmp_path(&t, "b.TSV", p, sizeof p);
    if (io_corpus_load_file(p, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[0], "One.");
    assert_string_equal(c.text[1], "Two.");
    assert_int_equal(c.label[0], 1);
    assert_int_equal(c.label[1], 0);
    io_corpus_free(&c);
    tmp_rm(&t);
}

static void test_csv_quoting(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char p[512], err[IO_ERRLEN] = "";
    io_corpus c;
    /* Columns in any order, extra columns, quoted comma / quote / CRLF and LF inside. */
    tmp_writes(&t, "q.csv",
               "note,Label,TEXT\r\n"
               "x,1,\"Itching, then \"\"hives\"\" after the cream.\"\r\n"
               "\"multi\nline note\",0,\"Line one\r\nline two\nline three\"\r\n"
               "\r\n"
               "z,Related,plain text\n"
               ",Not_AE,\"\"");
    tmp_path(&t, "q.csv", p, sizeof p);
    int rc = io_corpus_load_file(p, IO_VIEW_HF, &c, err);
    /* The last record has an empty text: an error on line 9 (the quoted newlines
     * of record 3 and the blank line count as lines). */
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, ":9:"));
    tmp_writes(&t, "q.csv",
               "note,Label,TEXT\r\n"
               "x,1,\"Itching, then \"\"hives\"\" after the cream.\"\r\n"
               "\"multi\nline note\",0,\"Line one\r\nline two\nline three\"\r\n"
               "\r\n"
               "z,Related,plain text\n"
               "w,Not_AE,\"last, no newline\"");
    if (io_corpus_load_file(p, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.text[0], "Itching, then \"hives\" after the cream.");
    assert_string_equal(c.text[1], "Line one\r\nline two\nline three");
    assert_string_equal(c.text[2], "plain text");
    assert_string_equal(c.text[3], "last, no newline");
    assert_int_equal(c.label[0], 1);
    assert_int_equal(c.label[1], 0);
    assert_int_equal(c.label[2], 1);
    assert_int_equal(c.label[3], 0);
    io_corpus_free(&c);
    tmp_rm(&t);
}

static void test_jsonl_labels(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char p[512], err[IO_ERRLEN] = "";
    io_corpus c;
    tmp_writes(&t, "j.jsonl",
               "{\"text\": \"caf\\u00e9 \\\"au\\\" lait\", \"label\": 1.0}\r\n"
               "\n"
               "  {\"label\": \"not-related\", \"text\": \"Tab\\there.\", \"extra\": [1, 2]}  \n"
               "{\"text\": \"Z\", \"label\": \"1\"}");
    tmp_path(&t, "j.jsonl", p, sizeof p);
    if (io_corpus_load_file(p, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.text[0], "caf\xC3\xA9 \"au\" lait");
    assert_string_equal(c.text[1], "Tab\there.");
    assert_int_equal(c.label[0], 1);
    assert_int_equal(c.label[1], 0);
    assert_int_equal(c.label[2], 1);
    io_corpus_free(&c);
    tmp_rm(&t);
}

static void test_ade_crlf_and_strip(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char err[IO_ERRLEN] = "";
    io_corpus c;
    const char rel[] = "101|  Padded\tsentence.\t |rash|1|2|x|3|4\r\n"
                       "102|\xC2\xA0Unicode padded.\xE3\x80\x80|rash|1|2|x|3|4\r\n";
    const char neg[] = "202 NEG  Leading space kept, trailing too. \r\n"
                       "203 NEG Plain.";
    ade_dir(&t, rel, sizeof rel - 1, neg, sizeof neg - 1);
    if (io_corpus_load_ade(t.dir, IO_VIEW_HF, &c, err)) fail_msg("%s", err);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.text[0], "Padded\tsentence.");
    assert_string_equal(c.text[1], "Unicode padded."); /* Python's str.strip() */
    assert_string_equal(c.text[2], " Leading space kept, trailing too. ");
    assert_string_equal(c.text[3], "Plain.");
    assert_int_equal(c.pmid[0], 101);
    assert_int_equal(c.pmid[3], 203);
    assert_int_equal(io_corpus_positives(&c), 2);
    io_corpus_free(&c);
    tmp_rm(&t);
}

/* ---------------------------------------------------------------- bad input */

static void test_missing_paths(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char p[512], err[IO_ERRLEN];
    io_corpus c;
    tmp_path(&t, "nowhere", p, sizeof p);
    expect_fail("no such directory", p, 1, "nowhere", 0, NULL);
    tmp_path(&t, "nothing.tsv", p, sizeof p);
    expect_fail("no such file", p, 0, "nothing.tsv", 0, "cannot open");
    assert_int_not_equal(io_corpus_load(p, IO_VIEW_HF, &c, err), 0);
    assert_zeroed(&c);
    assert_non_null(strstr(err, "nothing.tsv"));
    /* A directory with DRUG-AE.rel but no ADE-NEG.txt. */
    tmp_writes(&t, "DRUG-AE.rel", GOOD_REL);
    expect_fail("no ADE-NEG.txt", t.dir, 1, "ADE-NEG.txt", 0, "cannot open");
    /* A file where a directory is expected, and a directory named like a file. */
    tmp_path(&t, "DRUG-AE.rel", p, sizeof p);
    expect_fail("a file for a directory", p, 1, "DRUG-AE.rel", 0, "not a directory");
    tmp_path(&t, "folder.csv", p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0);
    expect_fail("a directory for a file", p, 0, "folder.csv", 0, "not a regular file");
    /* Unreadable file (root reads anything, so only checked as a normal user). */
    tmp_writes(&t, "locked.tsv", "x\t1\n");
    tmp_path(&t, "locked.tsv", p, sizeof p);
    assert_int_equal(chmod(p, 0), 0);
    if (geteuid() != 0) expect_fail("unreadable file", p, 0, "locked.tsv", 0, "cannot open");
    /* Unknown view. */
    tmp_path(&t, "locked.tsv", p, sizeof p);
    assert_int_not_equal(io_corpus_load_file(p, (io_view)7, &c, err), 0);
    assert_zeroed(&c);
    tmp_rm(&t);
}

/* ---------------------------------------------------------------- bad inputs */

/* One bad input: `file` holding `data` (`len` bytes, for data with a NUL; 0 means
 * strlen), or, with file NULL, an ADE directory holding DRUG-AE.rel = data and
 * ADE-NEG.txt = neg. Loading it must fail as expect_fail checks: the error names
 * `names` (NULL: the file, or the directory), line `line` when > 0, and says
 * `what`. */
typedef struct {
    const char *why;
    const char *file, *data;
    size_t len;
    const char *neg, *names;
    int line;
    const char *what;
} bad_input;

#define WITH_NUL(s) s, sizeof s - 1
/* a JSONL file whose line 3 (after a good line and a blank one) is `l` */
#define JSONL3(l) "{\"text\":\"fine\",\"label\":1}\n\n" l "\n"
/* TSV whose line 3 holds the invalid UTF-8 sequence `u` */
#define TSV_UTF8(u) "ok\t1\nok too\t0\n" SECRET " " u " here\t1\n"

static const bad_input BAD_INPUTS[] = {
    /* original distribution */
    {"DRUG-AE.rel: 7 fields", NULL, GOOD_REL "102|" SECRET " too few fields|rash|1|2|x|3\n", 0, GOOD_NEG,
     "DRUG-AE.rel", 2, "8"},
    {"DRUG-AE.rel: 9 fields", NULL, GOOD_REL GOOD_REL "102|" SECRET " a|b|rash|1|2|x|3|4\n", 0, GOOD_NEG,
     "DRUG-AE.rel", 3, "8"},
    {"DRUG-AE.rel: PMID not a number", NULL, GOOD_REL "1x2|" SECRET " sentence.|rash|1|2|x|3|4\n", 0, GOOD_NEG,
     "DRUG-AE.rel", 2, "PMID"},
    {"DRUG-AE.rel: empty PMID", NULL, "|" SECRET " sentence.|rash|1|2|x|3|4\n", 0, GOOD_NEG, "DRUG-AE.rel", 1,
     "PMID"},
    {"ADE-NEG.txt: POS for NEG", NULL, GOOD_REL, 0, GOOD_NEG "203 POS " SECRET " sentence.\n", "ADE-NEG.txt", 2,
     "NEG"},
    {"ADE-NEG.txt: PMID alone", NULL, GOOD_REL, 0, GOOD_NEG GOOD_NEG "203\n", "ADE-NEG.txt", 3, "NEG"},
    {"ADE-NEG.txt: PMID not a number", NULL, GOOD_REL, 0, "abc NEG " SECRET " sentence.\n", "ADE-NEG.txt", 1,
     "PMID"},
    {"ADE-NEG.txt: empty text", NULL, GOOD_REL, 0, GOOD_NEG "204 NEG \n", "ADE-NEG.txt", 2, "empty text"},
    {"DRUG-AE.rel: invalid UTF-8", NULL, GOOD_REL "103|" SECRET " \xFF sentence.|rash|1|2|x|3|4\n", 0, GOOD_NEG,
     "DRUG-AE.rel", 2, "UTF-8"},
    {"ADE-NEG.txt: invalid UTF-8", NULL, GOOD_REL, 0, "204 NEG " SECRET " \xC3\x28.\n", "ADE-NEG.txt", 1, "UTF-8"},
    {"ADE directory without rows", NULL, "", 0, "\n", NULL, 0, "empty corpus"},
    /* labels */
    {"TSV: label is a word", "l.tsv", "fine\t1\n" SECRET " text\t" SECRET "\n", 0, NULL, NULL, 2, "unknown label"},
    {"TSV: label 2", "l2.tsv", "fine\t1\n" SECRET " text\t2\n", 0, NULL, NULL, 2, "unknown label"},
    {"CSV: label yes (record starts on line 3)", "l.csv", "text,label\nfine,0\n\"" SECRET "\nspans\",yes\n", 0, NULL,
     NULL, 3, "unknown label"},
    {"JSONL: label 2", "l.jsonl", "{\"text\":\"fine\",\"label\":0}\n{\"text\":\"" SECRET "\",\"label\":2}\n", 0, NULL,
     NULL, 2, "unknown label"},
    {"JSONL: label maybe", "l2.jsonl", "{\"text\":\"" SECRET "\",\"label\":\"maybe\"}\n", 0, NULL, NULL, 1,
     "unknown label"},
    {"JSONL: label true", "l3.jsonl", "{\"text\":\"" SECRET "\",\"label\":true}\n", 0, NULL, NULL, 1, "label"},
    {"JSONL: no label", "l4.jsonl", "{\"text\":\"" SECRET "\"}\n", 0, NULL, NULL, 1, "label"},
    /* encoding */
    {"lone continuation byte", "u.tsv", TSV_UTF8("\x80"), 0, NULL, NULL, 3, "UTF-8"},
    {"overlong '/'", "u.tsv", TSV_UTF8("\xC0\xAF"), 0, NULL, NULL, 3, "UTF-8"},
    {"surrogate", "u.tsv", TSV_UTF8("\xED\xA0\x80"), 0, NULL, NULL, 3, "UTF-8"},
    {"truncated sequence", "u.tsv", TSV_UTF8("\xE2\x82"), 0, NULL, NULL, 3, "UTF-8"},
    {"truncated at the end of the file", "e.tsv", "ok\t1\n" SECRET "\t1\xC3", 0, NULL, NULL, 2, "UTF-8"},
    {"NUL byte (would cut a C string)", "z.tsv", WITH_NUL("ok\t1\n" SECRET "\0x\t1\n"), NULL, NULL, 2, "NUL"},
    {"JSON \\u0000 in mid-string (cJSON would cut the text)", "u2.jsonl",
     "{\"text\":\"ok\",\"label\":1}\n{\"text\":\"abc\\u0000" SECRET "\",\"label\":1}\n", 0, NULL, NULL, 2, "NUL"},
    /* no rows */
    {"empty TSV", "e.tsv", "", 0, NULL, NULL, 0, "empty corpus"},
    {"TSV header only", "h.tsv", "text\tlabel\n\n", 0, NULL, NULL, 0, "empty corpus"},
    {"CSV of blank lines", "e.csv", "\n\n", 0, NULL, NULL, 0, "empty corpus"},
    {"CSV header only", "h.csv", "label,text\r\n", 0, NULL, NULL, 0, "empty corpus"},
    {"JSONL of blank lines", "e.jsonl", "\n  \n", 0, NULL, NULL, 0, "empty corpus"},
    /* CSV */
    {"CSV: unterminated quote", "u.csv", "text,label\nfine,1\n\"" SECRET " never closed,0\nmore,1\n", 0, NULL, NULL, 3,
     "unterminated"},
    {"CSV: text after a closing quote", "a.csv", "text,label\n\"" SECRET "\"x,0\n", 0, NULL, NULL, 2,
     "closing quote"},
    {"CSV: no text column", "n.csv", "sentence,label\n" SECRET ",1\n", 0, NULL, NULL, 1, "header"},
    /* found by tests/fuzz/fuzz_corpus: a header of empty fields read through a NULL buffer */
    {"CSV: header of empty fields", "z.csv", ",\n" SECRET ",1\n", 0, NULL, NULL, 1, "header"},
    {"CSV: fewer fields than the header", "f.csv", "label,extra,text\n1,x,fine\n0," SECRET "\n", 0, NULL, NULL, 3,
     "fields"},
    /* TSV */
    {"TSV: no tab", "f.tsv", "fine\t1\n" SECRET " no tab\n", 0, NULL, NULL, 2, "tab"},
    {"TSV: two tabs", "g.tsv", "fine\t1\n" SECRET "\tx\t1\n", 0, NULL, NULL, 2, "tab"},
    {"TSV: header after the first line", "h.tsv", "fine\t1\ntext\tlabel\n", 0, NULL, NULL, 2, "unknown label"},
    {"TSV: empty text", "i.tsv", "fine\t1\n\t0\n", 0, NULL, NULL, 2, "empty text"},
    /* JSONL */
    {"JSONL: array", "b.jsonl", JSONL3("[\"" SECRET "\", 1]"), 0, NULL, NULL, 3, "object"},
    {"JSONL: string", "b.jsonl", JSONL3("\"" SECRET "\""), 0, NULL, NULL, 3, "object"},
    {"JSONL: number", "b.jsonl", JSONL3("42"), 0, NULL, NULL, 3, "object"},
    {"JSONL: unclosed object", "b.jsonl", JSONL3("{\"text\": \"" SECRET "\", \"label\": 1"), 0, NULL, NULL, 3,
     "object"},
    {"JSONL: trailing text", "b.jsonl", JSONL3("{\"text\": \"" SECRET "\", \"label\": 1} trailing"), 0, NULL, NULL, 3,
     "object"},
    {"JSONL: no text", "b.jsonl", JSONL3("{\"label\": 1, \"note\": \"" SECRET "\"}"), 0, NULL, NULL, 3, "text"},
    {"JSONL: text a number", "b.jsonl", JSONL3("{\"text\": 17, \"label\": 1}"), 0, NULL, NULL, 3, "text"},
    {"JSONL: text null", "b.jsonl", JSONL3("{\"text\": null, \"label\": 1}"), 0, NULL, NULL, 3, "text"},
    {"JSONL: not JSON", "b.jsonl", JSONL3("not json " SECRET), 0, NULL, NULL, 3, "object"},
    /* format */
    {"unknown extension", "data.txt", "x\t1\n", 0, NULL, NULL, 0, "unknown corpus format"},
};

static void test_bad_inputs(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    for (size_t k = 0; k < sizeof BAD_INPUTS / sizeof BAD_INPUTS[0]; k++) {
        const bad_input *b = &BAD_INPUTS[k];
        size_t len = b->len ? b->len : strlen(b->data);
        char p[512];
        if (b->file) {
            tmp_write(&t, b->file, b->data, len);
            tmp_path(&t, b->file, p, sizeof p);
        } else {
            ade_dir(&t, b->data, len, b->neg, strlen(b->neg));
            snprintf(p, sizeof p, "%s", t.dir);
        }
        expect_fail(b->why, p, !b->file, b->names ? b->names : b->file ? b->file : t.dir, b->line, b->what);
    }
    tmp_rm(&t);
}

/* A JSON \u0000 is refused wherever it stands; an escaped backslash before u0000
 * is ordinary text. */
static void test_jsonl_nul_escape(void **state) {
    (void)state;
    tmpdir t;
    tmp_make(&t);
    char p[512];
    io_corpus c;
    char err[IO_ERRLEN] = "";
    tmp_writes(&t, "u.jsonl", "{\"text\":\"ok\",\"label\":1}\n{\"text\":\"\\u0000" SECRET "\",\"label\":1}\n");
    tmp_path(&t, "u.jsonl", p, sizeof p);
    /* cJSON stops the string at the NUL, leaving an empty text: still an error. */
    assert_int_not_equal(io_corpus_load_file(p, IO_VIEW_HF, &c, err), 0);
    assert_null(strstr(err, SECRET));
    assert_non_null(strstr(err, ":2:"));
    tmp_writes(&t, "u3.jsonl", "{\"text\":\"abc\\\\u0000\",\"label\":1}\n");
    tmp_path(&t, "u3.jsonl", p, sizeof p);
    assert_int_equal(io_corpus_load_file(p, IO_VIEW_HF, &c, err), 0);
    assert_string_equal(c.text[0], "abc\\u0000");
    io_corpus_free(&c);
    tmp_rm(&t);
}

static void test_parse_names(void **state) {
    (void)state;
    io_view v;
    assert_int_equal(io_view_parse("hf", &v), 0);
    assert_int_equal(v, IO_VIEW_HF);
    assert_int_equal(io_view_parse("dedup", &v), 0);
    assert_int_equal(v, IO_VIEW_DEDUP);
    assert_int_not_equal(io_view_parse("HF ", &v), 0);
    assert_int_not_equal(io_view_parse(NULL, &v), 0);
    assert_string_equal(io_view_name(IO_VIEW_HF), "hf");
    assert_string_equal(io_view_name(IO_VIEW_DEDUP), "dedup");
    io_corpus z;
    memset(&z, 0, sizeof z);
    io_corpus_free(&z);
    io_corpus_free(NULL);
    assert_int_equal(io_corpus_positives(&z), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_counts),
        cmocka_unit_test(test_dedup_counts),
        cmocka_unit_test(test_load_time),
        cmocka_unit_test(test_load_dispatch),
        cmocka_unit_test(test_fixtures_agree),
        cmocka_unit_test(test_tsv_header_optional_crlf),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_jsonl_labels),
        cmocka_unit_test(test_ade_crlf_and_strip),
        cmocka_unit_test(test_missing_paths),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_jsonl_nul_escape),
        cmocka_unit_test(test_parse_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
