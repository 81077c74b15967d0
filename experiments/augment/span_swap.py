#!/usr/bin/python3
"""Synthetic positives by span swap: a training positive with the drug and/or the
adverse effect of one of its DRUG-AE relations replaced by another drug / effect of
the training relations' lexicon.

  experiments/augment/span_swap.py --split SPLIT_DIR --out OUT.jsonl
      [--count 1000] [--seed 1] [--mode drug|effect|both] [filter options]

Templates and lexicon come from the split's train.jsonl only (its positives joined
to DRUG-AE.rel by PubMed id and sentence); validation and test are read by the
filter alone (experiments/augment/filter.py: duplicates and near-duplicates of them
are dropped). Spans are located in the sentence (DRUG-AE.rel's offsets count from
the start of the abstract); every word-bounded mention of the swapped entity in the
sentence is replaced. A replacement has the same plural-ness (a heuristic on its
last word) as what it replaces, takes a capital at the start of a sentence, keeps
acronyms as they are, and a preceding 'a'/'an' is fixed. Rows:
{"text", "label": "Adverse_Event", "source": "span_swap", "prompt_id":
"swap:<mode>:t<train row id>:r<relation>:d<drug>:e<effect>"} (lexicon indices, -1
when kept). Same split, seed and options: the same file. Written atomically, 0600;
counts to stdout and OUT.filter.json. Never prints corpus text. Exit 0; 1 on an
error (one line); 3 when --max-tries draws gave fewer than --count rows (those are
written).
"""
import argparse
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augcommon as ac  # noqa: E402
import filter as flt  # noqa: E402


def _mentions(text, entity):
    """(start, end) of every word-bounded, case-insensitive mention of entity."""
    pat = re.compile(r"(?<!\w)" + re.escape(entity) + r"(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pat.finditer(text)]


def _overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


def _fit(rep, text, start):
    """The replacement as it should read at text[start]."""
    if ac.is_initial(text[:start]) and rep[:1].islower():
        return rep[0].upper() + rep[1:]
    return rep


class Swapper:
    def __init__(self, templates, lex, mode, rng):
        self.templates, self.mode, self.rng = templates, mode, rng
        # sorted: the draw depends on the seed only, never on set/dict order
        self.pool = {}
        for kind in ("drug", "effect"):
            items = sorted(lex[kind].items())
            self.pool[kind] = {pl: [(i, k, s) for i, (k, s) in enumerate(items) if ac.is_plural(s) == pl]
                               for pl in (False, True)}

    def _pick(self, kind, old):
        cands = self.pool[kind][ac.is_plural(old)]
        if not cands or (len(cands) == 1 and cands[0][1] == ac.normalize(old)):
            return None
        while True:
            i, key, surface = cands[self.rng.randrange(len(cands))]
            if key != ac.normalize(old):
                return i, surface

    def one(self):
        """(text, prompt_id) of one candidate, or None when this draw cannot swap."""
        t = self.templates[self.rng.randrange(len(self.templates))]
        ri = self.rng.randrange(len(t.rels))
        drug, ds, effect, es = t.rels[ri]
        dspan, espan = (ds, ds + len(drug)), (es, es + len(effect))
        if _overlaps(dspan, espan):
            return None  # 'methotrexate toxicity' holds its drug: no clean swap
        kinds = {"drug": ["drug"], "effect": ["effect"], "both": ["drug", "effect"]}[self.mode]
        # every located entity span of the sentence: a mention inside another entity is left alone
        others = set()
        for d2, ds2, e2, es2 in t.rels:
            others.add((ds2, ds2 + len(d2)))
            others.add((es2, es2 + len(e2)))
        edits, idx = [], {"drug": -1, "effect": -1}
        for kind in kinds:
            old, span = (drug, dspan) if kind == "drug" else (effect, espan)
            got = self._pick(kind, old)
            if got is None:
                return None
            idx[kind], rep = got
            for m in _mentions(t.text, old):
                if m == span or not any(_overlaps(m, o) and m != o for o in others):
                    edits.append((m, rep))
        edits.sort()
        for a, b in zip(edits, edits[1:]):
            if _overlaps(a[0], b[0]):
                return None
        out, at = [], 0
        for (s, e), rep in edits:
            seg = t.text[at:s]
            # 'a'/'an' right before the span follows the replacement's first letter
            m = re.search(r"(?<!\w)(an?|An?)(\s+)$", seg)
            if m:
                art = "an" if rep[:1].lower() in "aeiou" else "a"
                seg = seg[:m.start()] + (art.capitalize() if m.group(1)[0] == "A" else art) + m.group(2)
            out.append(seg)
            prefix = "".join(out)
            out.append(_fit(rep, prefix, len(prefix)))
            at = e
        out.append(t.text[at:])
        text = "".join(out)
        if ac.normalize(text) == ac.normalize(t.text):
            return None
        return text, f"swap:{self.mode}:t{t.id}:r{ri}:d{idx['drug']}:e{idx['effect']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", required=True, help="an `adebert data split` folder (its train.jsonl is used)")
    ap.add_argument("--out", required=True, help="output JSONL")
    ap.add_argument("--count", type=int, default=1000, help="rows to write [1000]")
    ap.add_argument("--seed", type=int, default=1, help="random seed [1]")
    ap.add_argument("--mode", choices=("drug", "effect", "both"), default="both", help="what is swapped [both]")
    ap.add_argument("--max-tries", type=int, help="candidates drawn at most [50 x count + 1000]")
    flt.add_args(ap)
    a = ap.parse_args()
    try:
        if a.count < 1:
            raise ac.AugError("--count must be >= 1")
        flt.check_args(a)
        # Generation reads train only; the filter reads val and test on its own.
        train, man = ac.load_split(a.split, parts=("train",))
        corpus = ac.find_corpus(man, a.split, a.corpus)
        rels, _ = ac.load_relations(corpus)
        templates, unmatched = ac.train_templates(train["train"], rels)
        ac.check_templates(templates, unmatched, corpus)
        lex = ac.lexicon(templates)
        f = None if a.no_filter else flt.make(a, a.split)
        rng = random.Random(a.seed)
        sw = Swapper(templates, lex, a.mode, rng)
        tries, unswappable, seen, rows = a.max_tries or 50 * a.count + 1000, 0, set(), []
        drawn = 0
        while len(rows) < a.count and drawn < tries:
            drawn += 1
            c = sw.one()
            if c is None:
                unswappable += 1
                continue
            text, pid = c
            if f is not None:
                if f.check(text, ac.POS, drawn) is not None:
                    continue
            elif ac.normalize(text) in seen:
                continue
            seen.add(ac.normalize(text))
            rows.append({"text": text, "label": ac.POS, "source": "span_swap", "prompt_id": pid})
        ac.write_jsonl(a.out, rows)
        extra = {"generator": "span_swap", "mode": a.mode, "seed": a.seed, "count": a.count, "drawn": drawn,
                 "unswappable_draws": unswappable, "templates": len(templates), "corpus": os.path.abspath(corpus),
                 "lexicon": {k: len(v) for k, v in lex.items()}, "complete": len(rows) == a.count}
        print(f"span_swap: {len(templates)} training templates, lexicon {len(lex['drug'])} drugs / "
              f"{len(lex['effect'])} effects; {drawn} candidates drawn ({unswappable} not swappable), "
              f"{len(rows)} rows written", flush=True)
        flt.finish(f, a, a.out, rows, extra)
        if len(rows) < a.count:
            print(f"span_swap: only {len(rows)} of {a.count} rows after {drawn} draws (--max-tries)",
                  file=sys.stderr)
            sys.exit(3)
    except ac.AugError as e:
        ac.die(str(e))


if __name__ == "__main__":
    main()
