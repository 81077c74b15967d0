#!/usr/bin/env python3
"""Golden fixtures for adebert's WordPiece tokenizer (tests/test_tokenizer.c).

The reference is Hugging Face `tokenizers` (the FAST tokenizer), pinned:
    pip install tokenizers==0.20.3
built as tokenizers.BertWordPieceTokenizer(vocab, lowercase=X, clean_text=True,
handle_chinese_chars=True, strip_accents=None), which is BertNormalizer +
BertPreTokenizer + WordPiece(unk [UNK], prefix ##, max_input_chars_per_word 100)
+ BertProcessing ([CLS] $A [SEP]) and registers [UNK] [SEP] [CLS] [PAD] [MASK]
as special added tokens (matched literally in the raw text).

Four configurations, in this order everywhere:
    0 cased   vocab, cased        (bert-base-cased, monologg/biobert_v1.1_pubmed)
    1 cased   vocab, lowercased   (what HF does for dmis-lab BioBERT repos that
                                   ship no tokenizer_config.json)
    2 uncased vocab, lowercased   (bert-base-uncased)
    3 uncased vocab, cased
Writes, under tests/reference/golden/ (gzip text, no corpus text inside):
    tokenizer_ade_hf.txt.gz     every row of the `hf` view: row, FNV-1a 64 of the
                                text's UTF-8 bytes, full ids per config; plus an
                                aggregate hash of the ids truncated to TRUNC_LEN
    tokenizer_torture.txt.gz    the TORTURE strings below (hex UTF-8) + ids
    tokenizer_codepoints.txt.gz for EVERY code point c (surrogates excepted) the
                                pre-tokens of "a" + c + "a", cased and lowercased
With --tables it instead prints io/tokenizer_tables.h: where the Unicode tables
tokenizers was built with (the `unicode_categories` crate for Cc/Cf/Cn/Co/Cs, P*
and Mn; Rust std for lowercase) disagree with utf8proc's.

Where the slow Python tokenizer (transformers.BertTokenizer, BasicTokenizer +
WordpieceTokenizer) is known to differ from this reference -- adebert follows the
fast one -- (stated from its source, transformers 4.x, not run here):
  * its categories come from Python's unicodedata (Unicode 14 on Python 3.11), so
    characters assigned after the crate's Unicode version (e.g. emoji 11.0+) are
    kept by the slow tokenizer (-> [UNK] or pieces) but removed by the fast one;
  * _is_whitespace uses str.isspace-like rules plus category Zs: U+001C..U+001F
    are whitespace for Python (split) but controls (removed) for the fast one;
  * lowercasing is str.lower() on the whole text: final sigma becomes 'ς' in the
    slow tokenizer, 'σ' in the fast one; str.lower() also runs BEFORE accent
    stripping there (İ -> 'i̇' -> 'i' in both, same result);
  * the slow tokenizer strips accents only when lowercasing too, but with
    strip_accents=None it does so after lower();
  * BasicTokenizer's CJK ranges use 0x2B820 where tokenizers uses 0x2B920.
Usage:
    python3 gen_tokenizer_golden.py --data $ADEBERT_TEST_DATA [--out DIR]
    python3 gen_tokenizer_golden.py --tables > io/tokenizer_tables.h
"""
import argparse
import ctypes
import ctypes.util
import gzip
import os
import sys

import tokenizers
from tokenizers import BertWordPieceTokenizer
from tokenizers import normalizers
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

PINNED = "0.20.3"
TRUNC_LEN = 24
CONFIGS = [("bert-base-cased-vocab.txt", False), ("bert-base-cased-vocab.txt", True),
           ("bert-base-uncased-vocab.txt", True), ("bert-base-uncased-vocab.txt", False)]

LONG100 = "a" * 100
LONG101 = "b" * 101
TORTURE = [
    "", " ", "   \t\n  ", "\n", "\r\n", "\t",
    "Hello, World!", "HELLO world", "The the THE tHe",
    # accents and combining marks
    "café naïve résumé Ångström", "cafe\u0301 nai\u0308ve", "Çà et là, ÉCOLE, Œuvre, Æsir",
    "a\u0316\u0301b", "a\u0301\u0316b", "x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308y",
    "\u0301leading mark", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324"
    "\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330"
    "\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b"
    "\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333!",
    "x\U0001D16D\U0001D165y \U0001D15E\U0001D160 \U0001D165\U0001D16D\U0001D165 a\U0001D16D\u0301\U0001D165",
    "\u0f73\u0f75\u0f81 \u0344 \u1e9b\u0323",
    # CJK, Hangul, Japanese
    "中文字符测试", "漢字とかなカナ", "한국어 텍스트", "\uf900\uf901豈", "\U00020000\U0002A6DF\U0002B820\U0002B920\U0002CEAF",
    "mixed中English文", "\u3400\u4dbf\u9fff\ufaff\U0002F800",
    # emoji old and new, ZWJ sequences, variation selectors
    "I \u2764 U \u263a \U0001F600 \U0001F4A9", "new emoji \U0001F970 \U0001F9A0 \U0001FAE0 \U0001FAF8",
    "family \U0001F468\u200d\U0001F469\u200d\U0001F467 flag \U0001F1FA\U0001F1F8 \u2764\ufe0f",
    "skin \U0001F44D\U0001F3FD",
    # zero-width and control characters
    "zero\u200bwidth\u200cjoin\u200dx\u2060y\ufeffz", "soft\u00adhyphen", "bidi\u200e\u200f\u202a\u202e\u2066x",
    "ctl\x00a\x01b\x07c\x08d\x0be\x0cf\x1bg\x1ch\x1di\x1ej\x1fk\x7fl\x80m\x85n\x9fo",
    "repl\ufffdchar", "private\ue000use\U000F0000x", "nonchar\ufdd0\uffff\U0010FFFFx",
    "unassigned\u0378\u0380\U000E0000\U000E0001tag", "mongolian\u180evowel",
    # Unicode spaces
    "nbsp\u00a0space", "ogham\u1680space", "en\u2000em\u2001thin\u2009hair\u200aend",
    "line\u2028para\u2029sep", "narrow\u202fmath\u205fideo\u3000end", "\u00a0\u2003\u3000",
    # casing
    "İstanbul İİ i̇", "ISTANBUL ıi Iİ", "ΣΊΣΥΦΟΣ σίσυφος ΟΔΟΣ", "ς Σ σ", "ΑΒΓ αβγ ΆΈΉ",
    "МОСКВА Москва ЁЖИК ёжик", "ǅ ǈ ǋ ǲ Dž", "ẞ ß ﬁ ﬀ ŉ", "Ωmega \u2126 \u212a \u212b",
    "Ⓐ ⓐ 𝐀 𝐚 Ａ ａ", "\U00010400\U00010428 \U0001E900\U0001E922", "Ⅻ ⅻ",
    # long words
    LONG100, LONG101, "x " + LONG100 + " y", "x " + LONG101 + " y",
    "é" * 100, "é" * 101, "中" * 150, "a" * 99 + "é", "a" * 99 + "\u0301" + "b",
    "A" * 101, "antidisestablishmentarianism" * 4, "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    # punctuation from several categories and symbols
    "a-b_c(d)e[f]g{h}i", "dash\u2010\u2011\u2012\u2013\u2014\u2015x", "«quote» “curly” ‘single’ „low‟",
    "¡Hola! ¿Qué? ‽ ※ § ¶ † ‡ • … ‰ ′ ″", "、。「」『』【】〜・", "$+<=>^`|~ # % & * / \\ @",
    "¢£¤¥¦¨©®¯°±´µ·¸×÷", "€₹₿ ™ ℃ ∑ √ ∞ ≈ ≠ ≤ ≥", "︵︶﹏＿＂＃％＆＇（）＊，－．／：；？＠［＼］｛｝",
    "\u061f\u060c\u06d4 \u0964\u0965 \u0f04 \u1362 \u2e3a\u2e3b \u2e50\u2e52 \U00011944",
    "a.b,c;d:e!f?g", "3.14 1,000 10-20 50% $5 1/2 2^3 a<b>c",
    # special tokens inside text
    "[CLS] hello [SEP] world [MASK] [PAD] [UNK]", "x[SEP]y[MASK]z", "[cls] [sep] [Mask]",
    "[CLS][CLS]", "[[SEP]]", "[SE P]", "[UNK ]", "[unused1] [unused99]",
    # WordPiece edge cases
    "##ing ##", "unaffable", "electroencephalographically", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Ibuprofen-induced hepatotoxicity in a 45-year-old man", "5-FU/LV 2.5mg/kg q.i.d.",
    # non-Latin scripts
    "हिन्दी भाषा", "العربية لغة", "עברית", "ไทยภาษา", "ქართული", "Ελληνικά", "Tiếng Việt",
    "\u0d15\u0d4d\u200d \u0915\u094d\u0937", "\u1100\u1161\u11a8",
    # lengths measured after normalisation; long runs of marks
    "a" * 50 + "\u200b" * 10 + "a" * 50, "a" * 50 + "\u200b" * 10 + "a" * 51,
    "e\u0301" * 100, "e\u0301" * 50, "e" + "\u0301" * 300 + "x", "q" + "\U0001D16D\U0001D165" * 40,
    "\U00011938 \U00011935\U00011930", "\u0130" * 60, "[SEP]" * 30, "a" * 30 + "[MASK]" + "b" * 30,
    "word " * 40, "x" * 3000,
]


def fnv64(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def hf_rows(data):
    """The `hf` view of ADE corpus v2, rows in order, as Python strings."""
    d = os.path.join(data, "ade-corpus-v2")
    rows = []
    with open(os.path.join(d, "DRUG-AE.rel"), "rb") as f:
        for raw in f.read().decode("utf-8").split("\n")[:-1]:
            rows.append(raw.split("|")[1].strip())
    with open(os.path.join(d, "ADE-NEG.txt"), "rb") as f:
        for raw in f.read().decode("utf-8").split("\n")[:-1]:
            rows.append(raw.split(" ", 2)[2])
    assert len(rows) == 23516, len(rows)
    return rows


def make_tokenizers(data, trunc=None):
    out = []
    for vocab, lower in CONFIGS:
        t = BertWordPieceTokenizer(os.path.join(data, "vocab", vocab), lowercase=lower, clean_text=True,
                                   handle_chinese_chars=True, strip_accents=None)
        if trunc:
            t.enable_truncation(trunc)
        out.append(t)
    return out


def ids_str(ids):
    return " ".join(str(i) for i in ids)


def write_rows(path, header, keyed_texts, toks, ttoks):
    """Lines "<row> <key> | ids | ids | ids | ids"; a header line "#trunc" holds,
    per config, FNV-1a 64 over all rows' truncated ids, each row prefixed by its
    count (int32 LE): HF's truncation is checked in aggregate (the generator also
    asserts it keeps the first TRUNC_LEN-2 pieces), keeping the fixture small."""
    agg = [b""] * len(toks)
    lines = []
    for i, (key, text) in enumerate(keyed_texts):
        parts = ["%d %s" % (i, key)]
        for c, (t, tt) in enumerate(zip(toks, ttoks)):
            full = t.encode(text).ids
            trunc = tt.encode(text).ids
            assert trunc == (full if len(full) <= TRUNC_LEN else full[:TRUNC_LEN - 1] + full[-1:])
            agg[c] += len(trunc).to_bytes(4, "little") + b"".join(
                x.to_bytes(4, "little", signed=True) for x in trunc)
            parts.append(ids_str(full))
        lines.append(" | ".join(parts) + "\n")
    # gzip mtime 0: regenerating gives byte-identical fixtures.
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header.encode())
        f.write(("#trunc %d %s\n" % (TRUNC_LEN, " ".join("%016x" % fnv64(a) for a in agg))).encode())
        f.write("".join(lines).encode())


def write_golden(data, outdir):
    assert tokenizers.__version__ == PINNED, tokenizers.__version__
    os.makedirs(outdir, exist_ok=True)
    toks = make_tokenizers(data)
    ttoks = make_tokenizers(data, TRUNC_LEN)
    header = "# tokenizers %s; configs: %s\n" % (
        tokenizers.__version__, ", ".join("%s lowercase=%d" % (v, l) for v, l in CONFIGS))
    write_rows(os.path.join(outdir, "tokenizer_ade_hf.txt.gz"), header,
               [("%016x" % fnv64(t.encode()), t) for t in hf_rows(data)], toks, ttoks)
    write_rows(os.path.join(outdir, "tokenizer_torture.txt.gz"), header,
               [(t.encode().hex() or "-", t) for t in TORTURE], toks, ttoks)
    write_codepoints(outdir, header)


def pretok(norm, s):
    return [w for w, _ in BertPreTokenizer().pre_tokenize_str(norm.normalize_str(s))]


def all_codepoints():
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def cp_class(c, toks):
    """K: kept as is, R: removed, W: split like whitespace, I: isolated; else explicit."""
    ch = chr(c)
    if toks == ["a" + ch + "a"]:
        return "K"
    if toks == ["aa"]:
        return "R"
    if toks == ["a", "a"]:
        return "W"
    if toks == ["a", ch, "a"]:
        return "I"
    return "=" + "/".join(".".join("%x" % ord(x) for x in t) for t in toks)


def write_codepoints(outdir, header):
    """Run-length lines "lo hi cased lower"; explicit classes are single code points."""
    nc = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False)
    nl = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    with gzip.GzipFile(os.path.join(outdir, "tokenizer_codepoints.txt.gz"), "wb", mtime=0) as f:
        f.write(header.encode())
        run = None
        for c in all_codepoints():
            s = "a" + chr(c) + "a"
            k = (cp_class(c, pretok(nc, s)), cp_class(c, pretok(nl, s)))
            simple = not k[0].startswith("=") and not k[1].startswith("=")
            if run and simple and run[2] == k and run[1] + 1 == c:
                run[1] = c
                continue
            if run:
                f.write(("%x %x %s %s\n" % (run[0], run[1], run[2][0], run[2][1])).encode())
            run = [c, c, k] if simple else None
            if not simple:
                f.write(("%x %x %s %s\n" % (c, c, k[0], k[1])).encode())
        if run:
            f.write(("%x %x %s %s\n" % (run[0], run[1], run[2][0], run[2][1])).encode())


# ------------------------------------------------------------------ --tables

def write_tables():
    """Per-code-point properties as tokenizers sees them vs. as utf8proc does."""
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc"))
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_version.restype = ctypes.c_char_p
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    CN, MN = 0, 6
    # Cn is left out on purpose: tokenizers removes no unassigned code point (its
    # crate's Cn table matches nothing), so io/tokenizer.c keeps Cn by rule.
    OTHER = {26, 27, 28, 29}  # Cc Cf Cs Co
    PUNCT = {12, 13, 14, 15, 16, 17, 18}
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    nfd = normalizers.NFD()
    pre = BertPreTokenizer()
    ws = {0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | set(range(0x2000, 0x200B))
    lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    dbuf = (ctypes.c_int32 * 32)()
    bound = ctypes.c_int()
    DECOMPOSE = 1 << 3

    def u_nfd(c):
        n = lib.utf8proc_decompose_char(c, dbuf, 32, DECOMPOSE, ctypes.byref(bound))
        return "".join(chr(dbuf[i]) for i in range(n))

    fixes, lfix, notes, nfd_keep = [], [], [], []
    for c in all_codepoints():
        if c < 0x80:
            continue
        ch = chr(c)
        cat = lib.utf8proc_category(c)
        u = (1 if cat in OTHER else 0) | (2 if cat in PUNCT else 0) | (4 if cat == MN else 0)
        h = 0
        if c != 0xFFFD and clean.normalize_str(ch) == "" and c not in ws:
            h |= 1
        if not h & 1 and c not in ws and len(pre.pre_tokenize_str("a" + ch + "a")) == 3:
            h |= 2
        if nfd.normalize_str(ch) != ch:
            h |= u & 4  # only decomposed output is ever tested for Mn
        elif not h & 1 and strip.normalize_str(ch) == "":
            h |= 4
        if c in ws or c == 0xFFFD:
            h = u  # decided before any category lookup
        if h != u:
            fixes.append((c, h))
        hn, un = nfd.normalize_str(ch), u_nfd(c)
        if hn != un:
            if hn == ch:
                nfd_keep.append(c)
            else:
                notes.append("NFD of U+%04X differs beyond a missing decomposition" % c)
        lo = lower.normalize_str(ch)
        if len(lo) == 1 and ord(lo) != lib.utf8proc_tolower(c):
            lfix.append((c, ord(lo)))
        elif len(lo) != 1 and c != 0x130:
            notes.append("lowercase of U+%04X is %d chars" % (c, len(lo)))
    # ranges of equal props
    ranges = []
    for c, h in fixes:
        if ranges and ranges[-1][1] + 1 == c and ranges[-1][2] == h:
            ranges[-1][1] = c
        else:
            ranges.append([c, c, h])
    p = print
    p("/* Generated by tests/reference/gen_tokenizer_golden.py --tables: do not edit.")
    p(" * tokenizers %s vs utf8proc %s (Unicode %s). props: 1 other (removed),"
      % (tokenizers.__version__, lib.utf8proc_version().decode(), lib.utf8proc_unicode_version().decode()))
    p(" * 2 punctuation, 4 Mn (stripped when lowercasing). %d ranges, %d code points;"
      % (len(ranges), len(fixes)))
    p(" * %d lowercase fixes, %d NFD fixes. */" % (len(lfix), len(nfd_keep)))
    for n in notes:
        p("/* note: %s */" % n)
    p("#ifndef ADEBERT_IO_TOKENIZER_TABLES_H\n#define ADEBERT_IO_TOKENIZER_TABLES_H")
    p("#include <stddef.h>\n#include <stdint.h>")
    p("typedef struct { uint32_t lo, hi; uint8_t props; } io_tok_prop_range;")
    p("typedef struct { uint32_t cp, lower; } io_tok_lower_fix;")
    p("static const io_tok_prop_range io_tok_prop_fixes[] = {")
    for lo, hi, h in ranges:
        p("    {0x%04X, 0x%04X, %d}," % (lo, hi, h))
    if not ranges:
        p("    {0xFFFFFFFFu, 0xFFFFFFFFu, 0},")
    p("};\nstatic const size_t io_tok_n_prop_fixes = %d;" % len(ranges))
    p("static const io_tok_lower_fix io_tok_lower_fixes[] = {")
    for c, lo in lfix:
        p("    {0x%04X, 0x%04X}," % (c, lo))
    if not lfix:
        p("    {0xFFFFFFFFu, 0},")
    p("};\nstatic const size_t io_tok_n_lower_fixes = %d;" % len(lfix))
    p("/* Decomposed by utf8proc but left whole by tokenizers' NFD (a newer canonical")
    p(" * decomposition than its unicode-normalization tables know). */")
    p("static const uint32_t io_tok_nfd_keep[] = {%s};" % (", ".join("0x%04X" % c for c in nfd_keep) or "0xFFFFFFFFu"))
    p("static const size_t io_tok_n_nfd_keep = %d;" % len(nfd_keep))
    p("#endif")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("ADEBERT_TEST_DATA"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
    ap.add_argument("--tables", action="store_true")
    a = ap.parse_args()
    if a.tables:
        write_tables()
        return
    if not a.data:
        sys.exit("need --data or ADEBERT_TEST_DATA")
    write_golden(a.data, a.out)


if __name__ == "__main__":
    main()
