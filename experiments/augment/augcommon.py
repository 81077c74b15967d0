"""What the augmentation tools share: the training rows of a split folder, the
DRUG-AE relations of those rows (spans located in the sentence), the training
lexicon, text normalisation and atomic writes.

Privacy: the corpus may hold patient data. Nothing here prints corpus or generated
text; errors name files, line numbers and counts only.
"""
import collections
import hashlib
import json
import os
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ("train", "val", "test")
POS, NEG = "Adverse_Event", "Not_AE"
LABEL_NAMES = {1: POS, 0: NEG}


class AugError(Exception):
    """One line for the user; never holds corpus text."""


def die(msg, code=1):
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr)
    sys.exit(code)


def normalize(text):
    """NFKC casefold with whitespace collapsed: the key of every duplicate check (the
    same as `adebert train --augment` uses against validation and test)."""
    t = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(t.split())


def valid_text(text):
    """Encodable as UTF-8 (no lone surrogates from a \\ud800 escape) and free of NUL,
    which adebert's JSONL reader refuses."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# ------------------------------------------------------------------ split folders

def load_split(d, parts=PARTS):
    """({part: [row]}, manifest) for the requested parts of an `adebert data split`
    folder, each file's sha256 checked against manifest.json. A row is the file's
    object: {"id", "text", "label" (0/1), "group" (PubMed id)}."""
    mpath = os.path.join(d, "manifest.json")
    try:
        with open(mpath, encoding="utf-8") as f:
            man = json.load(f)
    except OSError as e:
        raise AugError(f"{d}: not a split folder ({mpath}: {e.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AugError(f"{mpath}: not JSON")
    if not isinstance(man, dict) or man.get("format") != "adebert-split" or not isinstance(man.get("files"), dict):
        raise AugError(f"{mpath}: not an adebert split manifest")
    out = {}
    for p in parts:
        entry = man["files"].get(p)
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise AugError(f"{mpath}: files.{p} missing")
        path = os.path.join(d, entry.get("file", f"{p}.jsonl"))
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise AugError(f"{path}: {e.strerror}")
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise AugError(f"{path}: sha256 does not match manifest.json (the file was changed)")
        rows = []
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line.decode("utf-8"))
                assert isinstance(r, dict) and isinstance(r["text"], str) and r["label"] in (0, 1)
            except (ValueError, KeyError, AssertionError, TypeError):
                raise AugError(f"{path}:{n}: not a split row")
            rows.append(r)
        out[p] = rows
    return out, man


def split_hashes(man):
    return {p: man["files"][p]["sha256"] for p in PARTS if p in man["files"]}


# ------------------------------------------------------------------ relations

Relation = collections.namedtuple("Relation", "pmid sentence effect es drug ds line")


def _occurrences(s, sub):
    out, i = [], s.find(sub)
    while i >= 0:
        out.append(i)
        i = s.find(sub, i + 1)
    return out


def locate(sentence, effect, eb, drug, db):
    """Sentence positions (es, ds) of a relation's effect and drug, or None.

    DRUG-AE.rel's offsets count from the start of the abstract, not of the sentence,
    so the sentence's own offset is unknown: it is the base b with
    sentence[eb - b:] starting with the effect and sentence[db - b:] with the drug.
    Both entities must agree on b (an entity that occurs twice is told apart by its
    distance to the other one). On the corpus every relation locates (6,821 of 6,821)."""
    bases = {eb - p for p in _occurrences(sentence, effect)} & {db - p for p in _occurrences(sentence, drug)}
    if not bases:
        return None
    b = max(bases)  # 6 relations have two candidates; either spells the same strings
    return eb - b, db - b


def find_corpus(man, split_dir, override=None):
    """The folder with DRUG-AE.rel: --corpus, else the split's recorded data folder
    (as recorded, or relative to the split folder / the repository), else
    $ADEBERT_DATA, else ../shared/data/ade-corpus-v2 from the repository."""
    if override:
        cands = [override]
    else:
        rec = man.get("data") if isinstance(man.get("data"), str) else None
        cands = []
        if rec:
            cands += [rec, os.path.join(split_dir, rec), os.path.join(ROOT, rec)]
        if os.environ.get("ADEBERT_DATA"):
            cands.append(os.environ["ADEBERT_DATA"])
        cands.append(os.path.join(ROOT, "..", "shared", "data", "ade-corpus-v2"))
    for c in cands:
        if os.path.isfile(os.path.join(c, "DRUG-AE.rel")):
            return c
    raise AugError(f"no DRUG-AE.rel found (tried {', '.join(cands)}): give --corpus DIR")


def load_relations(corpus_dir):
    """Every relation of DRUG-AE.rel with its spans located in the (stripped)
    sentence; relations that do not locate are left out (counted)."""
    path = os.path.join(corpus_dir, "DRUG-AE.rel")
    rels, unlocated = [], 0
    try:
        f = open(path, encoding="utf-8", newline="")
        with f:
            lines = f.read().split("\n")
    except OSError as e:
        raise AugError(f"{path}: {e.strerror}")
    except UnicodeDecodeError:
        raise AugError(f"{path}: invalid UTF-8")
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line:
            continue
        fld = line.split("|")
        if len(fld) != 8:
            raise AugError(f"{path}:{n}: expected 8 '|'-separated fields")
        try:
            pmid, eb, db = int(fld[0]), int(fld[3]), int(fld[6])
        except ValueError:
            raise AugError(f"{path}:{n}: a PMID or an offset is not a number")
        sent, effect, drug = fld[1].strip(), fld[2], fld[5]
        loc = locate(sent, effect, eb, drug, db) if effect and drug else None
        if loc is None:
            unlocated += 1
            continue
        rels.append(Relation(pmid, sent, effect, loc[0], drug, loc[1], n))
    return rels, unlocated


Template = collections.namedtuple("Template", "id text group rels")


def train_templates(train_rows, rels):
    """The training positives that carry DRUG-AE relations, one per distinct
    (PubMed id, sentence), each with all its relations. Only train rows are looked at:
    a sentence of validation or test is never a template, and its entities join the
    lexicon only if the same sentence is also a training row."""
    by_key = collections.defaultdict(list)
    for r in rels:
        by_key[(r.pmid, r.sentence)].append(r)
    seen, out, unmatched = set(), [], 0
    for row in train_rows:
        if row["label"] != 1:
            continue
        key = (row.get("group"), row["text"])
        if key in seen:
            continue
        seen.add(key)
        rs = by_key.get(key)
        if not rs:
            unmatched += 1
            continue
        uniq = sorted({(r.drug, r.ds, r.effect, r.es) for r in rs}, key=lambda x: (x[1], x[3], x[0], x[2]))
        out.append(Template(row["id"], row["text"], row.get("group"), uniq))
    return out, unmatched


def check_templates(templates, unmatched, corpus):
    if not templates or unmatched > 0.1 * (len(templates) + unmatched):
        raise AugError(f"{corpus}/DRUG-AE.rel: {unmatched} of {len(templates) + unmatched} training positives "
                       "have no relation there (another corpus than the split's? give --corpus)")


# ------------------------------------------------------------------ lexicon

_INITIAL = re.compile(r"(?:^|[.:!?]\s+)[\W_]*$")


def is_initial(prefix):
    """Does a word after `prefix` start a sentence (or a heading like 'METHODS: ')?"""
    return bool(_INITIAL.search(prefix))


def _lower_initial(s):
    """'Naproxen' -> 'naproxen' (a capital only because it started the sentence);
    acronyms and mixed case ('INH', 'Ara-C', 'TMP-SMX') stay as they are."""
    first = s.split()[0] if s.split() else s
    if s[:1].isupper() and first[1:] == first[1:].lower() and any(c.isalpha() for c in first[1:]):
        return s[0].lower() + s[1:]
    return s


def lexicon(templates):
    """{"drug": {key: surface}, "effect": {key: surface}} from the templates'
    relations; key = normalize(surface). The surface is the most common spelling seen
    mid-sentence; an entity only ever seen sentence-initially loses its capital
    unless it is an acronym or mixed case."""
    seen = {"drug": collections.defaultdict(collections.Counter),
            "effect": collections.defaultdict(collections.Counter)}
    for t in templates:
        for drug, ds, effect, es in t.rels:
            for kind, s, pos in (("drug", drug, ds), ("effect", effect, es)):
                initial = is_initial(t.text[:pos])
                seen[kind][normalize(s)][(s if not initial else _lower_initial(s), initial)] += 1
    out = {}
    for kind, d in seen.items():
        out[kind] = {}
        for key, c in d.items():
            mid = [(n, s) for (s, init), n in c.items() if not init]
            pool = mid or [(n, s) for (s, init), n in c.items()]
            out[kind][key] = max(pool, key=lambda x: (x[0], x[1]))[1]
    return out


_SINGULAR_WORDS = {"diabetes", "herpes", "ascites", "rabies", "scabies", "measles", "mumps", "caries", "lues",
                   "pes", "tabes", "series", "species", "facies", "syphilis", "virus", "news", "physics"}


def is_plural(phrase):
    """A heuristic: the phrase's last word looks plural ('seizures', 'NSAIDs'), not a
    singular in -s ('psoriasis', 'diabetes insipidus', 'herpes', 'pancreas')."""
    words = re.findall(r"[A-Za-z]+", phrase)
    if not words:
        return False
    w = words[-1]
    if len(w) < 3 or not w.endswith("s"):
        return False
    if w[:-1].isupper():  # ADRs, NSAIDs
        return True
    lw = w.lower()
    return lw not in _SINGULAR_WORDS and not lw.endswith(("ss", "is", "us", "as", "os", "ys"))


# ------------------------------------------------------------------ files

def write_atomic(path, data, mode=0o600):
    """Writes bytes to path.tmp<pid>, fsyncs and renames: readers see the old file or
    the new one, never half of one. Mode 0600: the rows may hold patient data."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except OSError as e:
        raise AugError(f"{path}: cannot write: {e.strerror}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise AugError(f"{path}: cannot write: {e.strerror}")
        raise


def write_jsonl(path, rows):
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))


def write_json(path, obj):
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8"), mode=0o644)


def read_rows(path):
    """Rows of an augmentation JSONL we wrote ourselves (resume); [] if absent."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line.decode("utf-8"))
                assert isinstance(r, dict) and isinstance(r.get("text"), str)
            except (ValueError, AssertionError):
                raise AugError(f"{path}:{n}: not an augmentation row (not written by this tool?)")
            rows.append(r)
    return rows


def side_path(out, suffix):
    """OUT.jsonl -> OUT<suffix> next to the output."""
    return (out[:-len(".jsonl")] if out.endswith(".jsonl") else out) + suffix


def report_path(out):
    return side_path(out, ".filter.json")
