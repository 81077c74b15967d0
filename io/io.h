/* io: bytes <-> meaning. Corpus readers and views, seeded splits with leakage
 * accounting, the BERT WordPiece tokenizer.
 *
 * Contract for every function here:
 *  - returns 0 on success, non-zero on failure; on failure `err` (IO_ERRLEN bytes)
 *    holds one line naming the file and line (never the line's text: the corpus
 *    may hold patient data) and every output is left freed/zeroed;
 *  - the caller owns what it passes in; each init or load function has a matching free that
 *    accepts a zeroed or already-freed object;
 *  - no global mutable state; nothing here knows about ranks or backends. */
#ifndef ADEBERT_IO_H
#define ADEBERT_IO_H

#include <stddef.h>
#include <stdint.h>

#define IO_ERRLEN 256

/* ------------------------------------------------------------------ corpus */

typedef enum {
    IO_VIEW_HF = 0,   /* Hugging Face Ade_corpus_v2_classification rows, exactly */
    IO_VIEW_DEDUP = 1 /* first row of each distinct text */
} io_view;

/* Rows in file order. Label 1 = Adverse_Event (positive), 0 = Not_AE. */
typedef struct {
    size_t n;
    const char **text;  /* NUL-terminated UTF-8, point into `arena` */
    uint32_t *len;      /* byte length of each text */
    uint8_t *label;     /* 0/1 */
    int64_t *pmid;      /* PubMed id, or -1 when the source has none (TSV/CSV/JSONL) */
    char *arena;        /* owns all text bytes */
    size_t arena_size;
} io_corpus;

/* The original distribution in `dir`: DRUG-AE.rel then ADE-NEG.txt, file order.
 *   DRUG-AE.rel line: PMID|sentence|effect|b|e|drug|b|e  -> text = field 2 stripped
 *   ADE-NEG.txt line: PMID NEG sentence                  -> text = all after "PMID NEG "
 * The hf view has 23,516 rows (6,821 + 16,695); dedup 20,896 (4,271 + 16,625). */
int io_corpus_load_ade(const char *dir, io_view view, io_corpus *out, char err[IO_ERRLEN]);

/* A two-column file chosen by extension: .tsv (text<TAB>label, optional header),
 * .csv (RFC 4180 quoting, header with `text` and `label` columns), .jsonl
 * (objects with "text" and "label"). Labels: 1/0, Adverse_Event/Not_AE,
 * Related/Not-Related. The view is applied after reading. */
int io_corpus_load_file(const char *path, io_view view, io_corpus *out, char err[IO_ERRLEN]);

/* A directory => io_corpus_load_ade, a file => io_corpus_load_file. */
int io_corpus_load(const char *path, io_view view, io_corpus *out, char err[IO_ERRLEN]);

void io_corpus_free(io_corpus *c);

size_t io_corpus_positives(const io_corpus *c);

/* Exact-text classes: first[i] = the lowest row index whose text equals row i's
 * (first[i] == i marks a first occurrence). `first` holds c->n entries. Hashing,
 * expected O(total bytes). Used by the dedup view, grouped splits and leakage. */
int io_corpus_text_classes(const io_corpus *c, uint32_t *first, char err[IO_ERRLEN]);

/* Parse "hf" / "dedup" (0 ok). */
int io_view_parse(const char *s, io_view *out);
const char *io_view_name(io_view v);

/* ------------------------------------------------------------------ splits */

typedef enum {
    IO_SPLIT_RANDOM = 0,     /* unstratified shuffle */
    IO_SPLIT_STRATIFIED = 1, /* per class, same proportions */
    IO_SPLIT_GROUPED = 2     /* connected components of the PMID/text graph */
} io_split_kind;

/* Row indices (into the corpus) of each part, each list in ascending order.
 * Identical on every machine for the same corpus, kind, seed and fractions:
 * randomness comes from a counter-based generator keyed by the seed, never rand(). */
typedef struct {
    size_t n_train, n_val, n_test;
    uint32_t *train, *val, *test;
} io_split;

/* test_fraction of all rows go to test (0.2 for 80/20); then val_fraction of the
 * remaining train rows go to validation, with the same strategy. */
int io_split_make(const io_corpus *c, io_split_kind kind, uint64_t seed, double test_fraction,
                  double val_fraction, io_split *out, char err[IO_ERRLEN]);
void io_split_free(io_split *s);

int io_split_parse(const char *s, io_split_kind *out);
const char *io_split_name(io_split_kind k);

/* Exact-text leakage: rows of a part whose text also occurs in train. */
typedef struct {
    size_t leaked_test_rows, leaked_test_positives;
    size_t leaked_val_rows, leaked_val_positives;
    size_t test_positives, val_positives, train_positives;
} io_leakage;

int io_split_leakage(const io_corpus *c, const io_split *s, io_leakage *out, char err[IO_ERRLEN]);

/* --------------------------------------------------------------- tokenizer */

/* A WordPiece vocabulary: token id = 0-based line number. Loading fails when
 * [UNK], [CLS] or [SEP] is missing, on a duplicate token or invalid UTF-8. */
typedef struct io_vocab io_vocab;

int io_vocab_load(const char *path, io_vocab **out, char err[IO_ERRLEN]);
void io_vocab_free(io_vocab *v);
size_t io_vocab_size(const io_vocab *v);
int32_t io_vocab_find(const io_vocab *v, const char *tok, size_t len); /* -1 if absent */
const char *io_vocab_token(const io_vocab *v, int32_t id);             /* NULL if out of range */
int32_t io_vocab_unk(const io_vocab *v);
int32_t io_vocab_cls(const io_vocab *v);
int32_t io_vocab_sep(const io_vocab *v);
int32_t io_vocab_pad(const io_vocab *v); /* -1 if the vocab has no [PAD] */
/* Heuristic for a default casing: 1 when the vocab holds tokens with uppercase
 * letters (bert-base-cased, BioBERT), 0 otherwise. */
int io_vocab_is_cased(const io_vocab *v);

/* BERT BasicTokenizer + greedy longest-match WordPiece, identical to Hugging
 * Face's fast tokenizer (BertNormalizer + BertPreTokenizer + WordPiece +
 * [CLS]/[SEP] template). Holds scratch space: one per thread. */
typedef struct io_tokenizer io_tokenizer;

int io_tokenizer_init(io_tokenizer **out, const io_vocab *vocab, int lowercase, char err[IO_ERRLEN]);
void io_tokenizer_free(io_tokenizer *t);

/* Encode one text of `len` bytes. Writes [CLS] ids... [SEP] into ids[0..*n_out),
 * truncated to max_len tokens in all (max_len >= 2; HF's truncation keeps the
 * first max_len-2 word pieces). `cap` must be >= max_len. Invalid UTF-8 is an
 * error ("invalid UTF-8 at byte N"), as it cannot reach HF's tokenizer either. */
int io_tokenizer_encode(io_tokenizer *t, const char *text, size_t len, size_t max_len,
                        int32_t *ids, size_t cap, size_t *n_out, char err[IO_ERRLEN]);

/* The normalised pre-tokens WordPiece would see (tests, debugging), each followed
 * by '\n', NUL-terminated in buf[0..cap); special tokens appear as written, a word
 * over 100 chars as "[UNK]". *n_out = bytes written. */
int io_tokenizer_pretokens(io_tokenizer *t, const char *text, size_t len, char *buf, size_t cap,
                           size_t *n_out, char err[IO_ERRLEN]);

/* Token ids of a whole corpus in CSR form: row i is ids[offsets[i] .. offsets[i+1]).
 * max_len 0 means no truncation (lengths statistics). */
typedef struct {
    size_t n;          /* rows */
    int32_t *ids;
    uint64_t *offsets; /* n + 1 entries */
} io_tokens;

int io_tokenize_corpus(io_tokenizer *t, const io_corpus *c, size_t max_len, io_tokens *out,
                       char err[IO_ERRLEN]);
void io_tokens_free(io_tokens *tk);

#endif
