/* io: bytes <-> meaning. Corpus readers and views, seeded splits with leakage
 * accounting, the BERT WordPiece tokenizer, evaluation metrics and metrics.jsonl,
 * model config (config.json and presets, parsed into nn/config.h's nn_config),
 * the safetensors reader/writer and the restricted pytorch_model.bin (torchbin)
 * reader. HDF5 checkpoints and HF folders have their own headers (io/checkpoint.h,
 * io/hf.h).
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

#include "nn/config.h"

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

/* The test fraction of every split adebert makes: 80/20, as the study's
 * train_test_split(test_size=0.2). */
#define IO_TEST_FRACTION 0.2

/* test_fraction of all rows go to test (IO_TEST_FRACTION for 80/20); then
 * val_fraction of the remaining train rows go to validation, same strategy. */
int io_split_make(const io_corpus *c, io_split_kind kind, uint64_t seed, double test_fraction,
                  double val_fraction, io_split *out, char err[IO_ERRLEN]);
void io_split_free(io_split *s);

/* Quick runs (--limit N): keep a seeded random max_train of the train rows and
 * max_eval of the val and of the test rows (lists stay ascending; memory is kept). */
void io_split_limit(io_split *s, size_t max_train, size_t max_eval, uint64_t seed);

int io_split_parse(const char *s, io_split_kind *out);
const char *io_split_name(io_split_kind k);

/* Exact-text leakage: rows of a part whose text also occurs in train. */
typedef struct {
    size_t leaked_test_rows, leaked_test_positives;
    size_t leaked_val_rows, leaked_val_positives;
    size_t test_positives, val_positives, train_positives;
} io_leakage;

int io_split_leakage(const io_corpus *c, const io_split *s, io_leakage *out, char err[IO_ERRLEN]);

/* ----------------------------------------------------------- split folders */

/* `adebert data split` folders: train.jsonl, val.jsonl, test.jsonl (one object per
 * row: "id" = row index in the view, "text", "label", "group" = PubMed id or -1;
 * files 0600) and manifest.json (the options, and per file its rows, positives and
 * sha256). Train, eval and the baselines read the same rows from it. */
#define IO_SPLITDIR_MANIFEST "manifest.json"

/* 1 when path is a directory holding manifest.json. */
int io_splitdir_is(const char *path);
/* Verifies every file against the manifest's sha256, then loads train, val and test,
 * in that order, as one corpus (io_corpus_load does this for such a folder). */
int io_splitdir_load(const char *dir, io_corpus *out, char err[IO_ERRLEN]);
/* The folder's split of a corpus io_splitdir_load made (n_rows rows): consecutive
 * ranges, train then val then test. */
int io_splitdir_split(const char *dir, size_t n_rows, io_split *out, char err[IO_ERRLEN]);
/* {"manifest": sha256 of manifest.json, "train": ..., "val": ..., "test": ...} as
 * a malloc'd JSON text, to record with a run. */
int io_splitdir_hashes(const char *dir, char **json, char err[IO_ERRLEN]);
/* Writes the folder: a temporary sibling, fsync'd files, renamed into place; dir
 * must not exist. options_json (an object) is copied into the manifest. */
int io_splitdir_write(const char *dir, const io_corpus *c, const io_split *s, const char *options_json,
                      char err[IO_ERRLEN]);
/* sha256 of a file as 64 lowercase hex digits. */
int io_sha256_file(const char *path, char hex[65], char err[IO_ERRLEN]);

/* ------------------------------------------------------------ augmentation */

/* `adebert train --augment FILE`: extra (e.g. synthetic) rows that join the TRAIN
 * split only. FILE is JSON Lines, one object per line:
 *   "text"      non-empty string, valid UTF-8, no \u0000           (required)
 *   "label"     "Adverse_Event" | "Not_AE" | 1 | 0                  (required)
 *   "source"    string                                             (optional)
 *   "prompt_id" string or integer                                  (optional)
 * Other keys are ignored; blank lines are skipped but counted. The last line may
 * lack its newline if it parses. Errors read "FILE: line N: reason" and never quote
 * the line (the rows may hold patient data). */
typedef struct {
    io_corpus rows;  /* the file's rows in file order (pmid -1) */
    uint32_t *line;  /* 1-based line number of each row */
    char sha256[65]; /* of the bytes that were parsed */
} io_augment;

int io_augment_load(const char *path, io_augment *out, char err[IO_ERRLEN]);
void io_augment_free(io_augment *a);

/* The form the leakage check compares: NFKC_Casefold (utf8proc: compatibility
 * composition, case folding, default-ignorable code points removed), every run of
 * whitespace one space, no leading or trailing space. *out is malloc'd,
 * NUL-terminated, *out_len bytes. Invalid UTF-8 is an error. */
int io_text_normalise(const char *text, char **out, size_t *out_len, char err[IO_ERRLEN]);

/* The first augment row (in file order) whose normalised text equals the normalised
 * text of one of the n rows of c listed in `rows` (e.g. validation and test):
 * *found = 1 and *row = its index in a->rows; *found = 0 when none does. */
int io_augment_find_normalised(const io_augment *a, const io_corpus *c, const uint32_t *rows, size_t n,
                               int *found, size_t *row, char err[IO_ERRLEN]);

/* How many of the augment rows listed in `use` have, byte for byte, the text of one
 * of the n rows of c listed in `rows`. */
int io_augment_count_exact(const io_augment *a, const uint32_t *use, size_t n_use, const io_corpus *c,
                           const uint32_t *rows, size_t n, size_t *count, char err[IO_ERRLEN]);

/* n_use of n_rows row indices, by a seeded permutation: a Fisher-Yates shuffle of
 * 0..n_rows-1 driven by a counter-based generator keyed by `seed` (no rand()), of
 * which the first n_use are taken, returned ascending in use[0..n_use). The same
 * seed gives the same rows on every machine, and a smaller n_use a subset of a
 * larger one's rows. */
int io_augment_choose(size_t n_rows, size_t n_use, uint64_t seed, uint32_t *use, char err[IO_ERRLEN]);

/* Appends the augment rows listed in `use` to the corpus (after all its rows, in
 * the order given) and their new row indices to s->train, which stays ascending if
 * it was; s->val and s->test are untouched. On failure c and s are unchanged. */
int io_augment_join(io_corpus *c, io_split *s, const io_augment *a, const uint32_t *use, size_t n_use,
                    char err[IO_ERRLEN]);

/* --------------------------------------------------------------- tokenizer */

/* A WordPiece vocabulary: token id = 0-based line number. Loading fails when
 * [UNK], [CLS] or [SEP] is missing, on a duplicate token or invalid UTF-8. */
typedef struct io_vocab io_vocab;

int io_vocab_load(const char *path, io_vocab **out, char err[IO_ERRLEN]);
/* The same from a token list (token id = index), e.g. a checkpoint's /tokenizer/vocab;
 * `name` stands for the file in errors. */
int io_vocab_from_tokens(const char *const *tokens, size_t n, const char *name, io_vocab **out,
                         char err[IO_ERRLEN]);
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

/* ----------------------------------------------------------------- metrics */
/* Binary classification metrics, positive class = ADE (label 1), and the
 * metrics.jsonl log (DESIGN.md "Metrics").
 *
 * Rules, fixed here so every caller agrees:
 *  - a row is predicted positive when its score p(ADE) >= threshold (so p == 0.5
 *    is positive at the default threshold);
 *  - precision, recall and F1 with a zero denominator are 0 (scikit-learn's
 *    zero_division=0); accuracy of zero rows is 0;
 *  - ROC-AUC is the Mann-Whitney statistic with ties counted one half (= average
 *    ranks = the trapezoidal ROC area); undefined when a class is absent;
 *  - PR-AUC is scikit-learn's average_precision_score: sum over distinct scores,
 *    highest first, of (recall step) x (precision at that score), all rows sharing a
 *    score taken together; undefined when there is no positive (scikit-learn then
 *    returns 0 with a warning), 1 when every row is positive;
 *  - scores must not be NaN (an error: NaN cannot be ranked), labels must be 0/1.
 *
 * Distributed evaluation: io_confusion is four int64 sums (reducible as 4 x
 * MPI_INT64_T in field order), loss sums are plain sums; the AUCs need every score
 * of the split, gathered to one rank, then io_metrics_auc_*. Everything is
 * O(n log n) and independent of row order. */

#define IO_METRICS_THRESHOLD 0.5
#define IO_METRICS_SCHEMA_VERSION 1
#define IO_METRICS_FILE "metrics.jsonl"

typedef struct {
    int64_t tp, fp, tn, fn;
} io_confusion;

typedef struct {
    io_confusion cm;
    double precision, recall, f1, accuracy;
    double roc_auc, pr_auc;           /* NaN when undefined */
    int roc_auc_defined, pr_auc_defined;
} io_metrics;

/* Add n rows to *cm (which the caller zeroes first; partial sums add up). */
int io_confusion_add_f32(io_confusion *cm, const float *score, const uint8_t *label, size_t n,
                         double threshold, char err[IO_ERRLEN]);
int io_confusion_add_f64(io_confusion *cm, const double *score, const uint8_t *label, size_t n,
                         double threshold, char err[IO_ERRLEN]);
/* 0 when tp+fp+tn+fn == expected_rows and no count is negative (a lost or doubled
 * shard shows up here). */
int io_confusion_check(const io_confusion *cm, int64_t expected_rows, char err[IO_ERRLEN]);

/* Sets m->cm and the threshold metrics from a (reduced) confusion matrix; the AUC
 * fields are left as they are. */
void io_metrics_from_confusion(const io_confusion *cm, io_metrics *m);
/* Sets only the AUC fields (and their flags) from the full score vector. */
int io_metrics_auc_f32(const float *score, const uint8_t *label, size_t n, io_metrics *m,
                       char err[IO_ERRLEN]);
int io_metrics_auc_f64(const double *score, const uint8_t *label, size_t n, io_metrics *m,
                       char err[IO_ERRLEN]);
/* All of it from one score vector (one rank, or after the gather). */
int io_metrics_compute_f32(const float *score, const uint8_t *label, size_t n, double threshold,
                           io_metrics *m, char err[IO_ERRLEN]);
int io_metrics_compute_f64(const double *score, const uint8_t *label, size_t n, double threshold,
                           io_metrics *m, char err[IO_ERRLEN]);

/* Caller-chosen keys appended after the schema's (e.g. resumed_from_step,
 * selected_on). A number that is not finite is written as null. */
typedef struct {
    const char *key;
    int is_string; /* 1: str, 0: num */
    const char *str;
    double num;
} io_metrics_extra;

/* One evaluation = one line of metrics.jsonl, keys in exactly this order:
 * schema_version, split, epoch, step, lr, train_loss, eval_loss, precision, recall,
 * f1, accuracy, roc_auc, pr_auc, tp, fp, tn, fn, grad_norm, loss_scale, seconds,
 * tokens_per_s, then the extras. Doubles that are not finite (an undefined AUC, no
 * train loss yet) are written as null and read back as NaN. */
typedef struct {
    int schema_version;       /* IO_METRICS_SCHEMA_VERSION when writing */
    char split[8];            /* "val" or "test" */
    int64_t epoch, step;
    double lr, train_loss, eval_loss;
    io_metrics m;
    double grad_norm, loss_scale;
    double seconds, tokens_per_s; /* timing: non-deterministic (as are the trainer's
                                   * extras rss_bytes, peak_rss_bytes) */
    size_t n_extra;
    const io_metrics_extra *extra; /* read back: owned by the log, one block per record */
} io_metrics_record;

/* The JSON text of one record, no newline (malloc'd into *line). Each double is
 * printed with the fewest significant digits (1..17, "%.*g" in the C locale) that
 * read back to the same bits, so equal values give equal bytes on every run and
 * the reader recovers them exactly. Rejects an unknown split, duplicate or
 * reserved extra keys. */
int io_metrics_format(const io_metrics_record *r, char **line, char err[IO_ERRLEN]);

/* Append one line to `path` (RUN_DIR/IO_METRICS_FILE): O_APPEND, created 0600,
 * the whole line in one write(), then fsync. If the file does not end in a newline
 * (a torn write from a crash), a newline is written first so the new record stays
 * one line. */
int io_metrics_append(const char *path, const io_metrics_record *r, char err[IO_ERRLEN]);

typedef struct {
    size_t n;
    io_metrics_record *rec; /* in file order */
} io_metrics_log;

/* Parse a metrics.jsonl text / file. Blank lines are skipped; any other line that
 * is not a record of a schema_version <= ours is an error naming the line number.
 * Unknown keys become extras (numbers, null as NaN, or strings; anything else is an
 * error). */
int io_metrics_parse(const char *text, size_t len, io_metrics_log *out, char err[IO_ERRLEN]);
int io_metrics_read(const char *path, io_metrics_log *out, char err[IO_ERRLEN]);
void io_metrics_log_free(io_metrics_log *log);

/* ------------------------------------------- model config and safetensors */
/* (declared by the model issue: config.json parsing, presets, safetensors reader) */

/* The architecture is nn_config (nn/config.h: plain data and its validator, the one
 * nn header io includes); io reads it from config.json and presets. */

/* Presets: "tiny" (2x64, 2 heads, 37 FFN; for tests), "minilm" (6x384, 12 heads,
 * 1536), "base" (12x768, 12 heads, 3072). vocab_size 30522, 512 positions, 2 token
 * types, 2 labels, dropout 0.1; the caller sets vocab_size from its vocab. */
int io_config_preset(const char *name, nn_config *out, char err[IO_ERRLEN]);

/* Parse a config.json text / file. Absent keys take BertConfig's defaults. Rejects
 * hidden_act other than "gelu", position_embedding_type other than "absolute",
 * wrong JSON types, and anything nn_config_validate rejects. */
int io_config_parse(const char *json, size_t len, nn_config *out, char err[IO_ERRLEN]);
int io_config_load(const char *path, nn_config *out, char err[IO_ERRLEN]);

/* A config.json text BertForSequenceClassification loads (malloc'd; NULL on OOM). */
char *io_config_to_json(const nn_config *c);

/* Safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, data.
 * The reader never trusts the header: N, every offset and every size are checked
 * against the file size and against dtype x shape, and tensors may not overlap. */
typedef enum {
    IO_DT_F32 = 0, IO_DT_F16, IO_DT_BF16, IO_DT_F64, IO_DT_I64, IO_DT_I32, IO_DT_I16,
    IO_DT_I8, IO_DT_U8, IO_DT_BOOL
} io_dtype;

#define IO_ST_MAX_DIMS 8

typedef struct {
    char *name;
    io_dtype dtype;
    int ndim;
    int64_t shape[IO_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* byte range inside the data section */
} io_st_tensor;

typedef struct {
    size_t n;
    io_st_tensor *tensors;  /* in header order */
    const uint8_t *data;    /* the data section (inside `map`) */
    uint64_t data_size;
    void *map;              /* whole file (mmap, or a malloc'd copy) */
    size_t map_size;
    int mapped;             /* 1: munmap on free, 0: free() */
} io_safetensors;

int io_safetensors_open(const char *path, io_safetensors *out, char err[IO_ERRLEN]);
/* Same checks on a buffer in memory (copied); used by tests and fuzzing. */
int io_safetensors_parse(const void *buf, size_t len, io_safetensors *out, char err[IO_ERRLEN]);
void io_safetensors_free(io_safetensors *st);
const io_st_tensor *io_safetensors_find(const io_safetensors *st, const char *name);
/* Convert F32/F16/BF16 to fp32 into dst[n]; n must equal numel. */
int io_safetensors_read_f32(const io_safetensors *st, const io_st_tensor *t, float *dst, size_t n,
                            char err[IO_ERRLEN]);

/* Write F32 tensors (names[i], data[i] of shape shapes[i][0..ndims[i])) to `path`,
 * via a temporary file renamed into place. */
int io_safetensors_write_f32(const char *path, size_t n, const char *const *names,
                             const float *const *data, const int *ndims,
                             const int64_t (*shapes)[IO_ST_MAX_DIMS], char err[IO_ERRLEN]);
/* The same with a "__metadata__" object of n_meta string pairs (e.g. {"format": "pt"},
 * which Transformers wants before it loads a file). */
int io_safetensors_write_f32_meta(const char *path, size_t n, const char *const *names,
                                  const float *const *data, const int *ndims,
                                  const int64_t (*shapes)[IO_ST_MAX_DIMS], size_t n_meta,
                                  const char *const *meta_keys, const char *const *meta_values,
                                  char err[IO_ERRLEN]);

/* ------------------------------------------------------- pytorch_model.bin */
/* A state dict of tensors written by torch.save, in either format:
 *  - zip (torch >= 1.6): PREFIX/data.pkl, a pickle, and one raw storage per
 *    PREFIX/data/<key>. Entries must be stored uncompressed (method 0, as torch.save
 *    writes them); a compressed or encrypted entry is refused by name. Zip64 is
 *    understood; a PREFIX/byteorder other than "little" is refused.
 *  - legacy (torch < 1.6, or _use_new_zipfile_serialization=False): the magic
 *    number, protocol version and system-info pickles, the state dict pickle, the
 *    list of storage keys, then each storage as an int64 element count and its bytes.
 *    Big-endian files and the pre-0.4 tar format are refused.
 * The pickle is read by a restricted unpickler that executes nothing. It knows the
 * opcodes torch.save emits (protocol 2; also 4's FRAME/MEMOIZE/STACK_GLOBAL) and
 * only these globals: collections.OrderedDict, torch._utils._rebuild_tensor,
 * _rebuild_tensor_v2, _rebuild_parameter(_with_state) and the torch.<T>Storage
 * classes of the dtypes below; any other global (os.system, builtins.eval, ...),
 * object construction (INST/OBJ/NEWOBJ) or unknown opcode is an error. BUILD is
 * accepted on a dict only, and its state (OrderedDict's `_metadata`) is dropped.
 * The top-level object must be a dict of name -> tensor.
 * Nothing is trusted: every storage is checked against the file, and every tensor's
 * offset, shape and strides against its storage, before the table is returned;
 * pickle size, stack, memo and object counts are capped. Tensors may share a storage
 * (a tied cls.predictions.decoder.weight) and be non-contiguous. */

typedef struct {
    char *name;                       /* the state dict key, NUL-free */
    io_dtype dtype;
    int ndim;                         /* 0 for a scalar */
    int64_t shape[IO_ST_MAX_DIMS];
    int64_t numel;
    int64_t stride[IO_ST_MAX_DIMS];   /* in elements */
    int64_t offset;                   /* first element inside the storage */
    size_t storage;                   /* index into io_torchbin.storages */
} io_tb_tensor;

typedef struct {
    char *key;      /* the storage key (zip entry data/<key>, or the legacy id) */
    io_dtype dtype;
    int64_t numel;  /* elements */
    uint64_t begin; /* byte offset of its first element in the file */
} io_tb_storage;

typedef struct {
    size_t n;
    io_tb_tensor *tensors;   /* in state dict order */
    size_t n_storages;
    io_tb_storage *storages; /* one per distinct storage key */
    int legacy;              /* 1: legacy format, 0: zip */
    void *map;               /* whole file (mmap, or a malloc'd copy) */
    size_t map_size;
    int mapped;              /* 1: munmap on free, 0: free() */
} io_torchbin;

int io_torchbin_open(const char *path, io_torchbin *out, char err[IO_ERRLEN]);
/* Same checks on a buffer in memory (copied); used by tests and fuzzing. */
int io_torchbin_parse(const void *buf, size_t len, io_torchbin *out, char err[IO_ERRLEN]);
void io_torchbin_free(io_torchbin *b);
/* Index of the tensor named `name`, or -1. */
long io_torchbin_find(const io_torchbin *b, const char *name);
/* Tensor `index` as a contiguous (row-major) fp32 copy in dst[n]; n must equal its
 * numel. F32/F16/BF16 only: other dtypes are listed but refused here. */
int io_torchbin_read_f32(const io_torchbin *b, size_t index, float *dst, size_t n, char err[IO_ERRLEN]);

/* ------------------------------------------------ temporaries of atomic writes */

/* Every write-then-rename in adebert (the command-line outputs, --dump-params, run
 * files, metrics, split folders, exports, safetensors) builds its output under
 *   TARGET.tmp.HOST.PID.XXXXXX
 * next to TARGET: HOST is this machine's name (at most IO_TMP_HOSTLEN characters,
 * those outside [A-Za-z0-9-] written '_'), PID the writer's process id, XXXXXX
 * mkstemp/mkdtemp's random part. A writer killed mid-write (SIGKILL, the OOM killer)
 * leaves its temporary behind; the next write to the same TARGET removes it:
 * io_tmp_sweep removes every temporary of TARGET (a file, or a folder of files) whose
 * HOST is this one and whose PID names no process. Never removed: temporaries of
 * live processes (kill(PID, 0) does not fail with ESRCH), of other hosts (a shared
 * file system: their processes cannot be asked), of other targets, or names that are
 * not exactly of this form. A dead writer whose pid was reused keeps its temporary
 * until that process ends too, so litter is bounded, never growing.
 * (O_TMPFILE + linkat was the alternative: not on every file system, never for folders,
 * and linkat cannot replace an existing TARGET, so a named step would remain.) */
#define IO_TMP_HOSTLEN 40
/* TARGET.tmp.HOST.PID.XXXXXX into buf (a template for mkstemp/mkdtemp). 0, or -1
 * when it does not fit. */
int io_tmp_template(const char *target, char *buf, size_t len);
/* Sweeps TARGET's stale temporaries, then creates a new one (mkstemp: a file, mode
 * 0600) named in tmp[len]. Returns its descriptor, or -1 with err set. */
int io_tmp_create_file(const char *target, char *tmp, size_t len, char err[IO_ERRLEN]);
/* The same for a folder (mkdtemp: mode 0700). 0 ok, -1 with err set. */
int io_tmp_create_dir(const char *target, char *tmp, size_t len, char err[IO_ERRLEN]);
/* Removes TARGET's stale temporaries (above); returns how many. A stale folder is
 * removed with the plain files in it; one holding a subfolder is left as it is. */
size_t io_tmp_sweep(const char *target);

#endif
