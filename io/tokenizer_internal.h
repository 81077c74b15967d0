/* Shared between io/vocab.c and io/tokenizer.c only; not part of the io contract. */
#ifndef ADEBERT_IO_TOKENIZER_INTERNAL_H
#define ADEBERT_IO_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t hash;
    int32_t id; /* -1: empty */
} io_vocab_slot;

struct io_vocab {
    size_t n;
    char *arena;   /* the file's bytes, each token NUL-terminated in place */
    uint32_t *off; /* token id -> byte offset in arena */
    uint32_t *len; /* token id -> byte length */
    /* Two tables so WordPiece never builds "##" + piece strings: `full` keys every
     * token by its text, `cont` keys "##x" tokens by "x". */
    io_vocab_slot *full, *cont;
    size_t full_mask, cont_mask;
    size_t max_full, max_cont; /* longest key in bytes: bounds the greedy search */
    int32_t unk, cls, sep, pad, mask;
    int cased;
};

/* FNV-1a, byte at a time so that WordPiece can hash all prefixes in one pass. */
uint32_t io_tok_hash_init(void);
static inline uint32_t io_tok_hash_step(uint32_t h, unsigned char c) { return (h ^ c) * 16777619u; }
/* Mix the high bits down: the table index takes the low bits. */
static inline uint32_t io_tok_hash_final(uint32_t h) { return h ^ (h >> 15); }

int32_t io_vocab_lookup_hashed(const struct io_vocab *v, int cont, const char *s, size_t n, uint32_t h);

/* Offset of the first invalid UTF-8 sequence (Python's strict decoder rules), or
 * (size_t)-1 when all of s[0..len) is valid. */
size_t io_utf8_invalid_at(const unsigned char *s, size_t len);

/* Rust char::is_whitespace (Unicode White_Space), unchanged since Unicode 6.3. */
static inline int io_tok_is_rust_ws(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

#endif
