"""MinHash over character n-grams, in numpy.

Debian 12 packages no MinHash library for Python (datasketch is on PyPI only;
`apt-cache search minhash` finds Go packages and the genome tool mash), and the
method is a few lines:

  * shingles: the character n-grams (default 5) of the normalised text, each hashed
    to 64 bits (a polynomial hash of its code points, then the splitmix64 finaliser);
    a text shorter than n is one shingle;
  * K hash functions (default 128): h_k(x) = splitmix64(x XOR seed_k), seeds fixed;
  * signature: for each k the minimum of h_k over the text's shingles;
  * estimate: the fraction of the K positions where two signatures agree. For a
    random hash function P(min h(A) == min h(B)) = |A n B| / |A u B| (Jaccard), so
    the estimate is unbiased with standard deviation sqrt(J (1 - J) / K): 0.035 at
    J = 0.8 with K = 128. tests/experiments/augment_filter_test.py checks it against
    the exact Jaccard of the shingle sets.

uint64 arithmetic wraps in numpy arrays, which is what the hashes want.
"""
import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so the polynomial hash is injective-ish
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z):
    z = z ^ (z >> _S30)
    z = z * _M1
    z = z ^ (z >> _S27)
    z = z * _M2
    return z ^ (z >> _S31)


def seeds(num_perm, seed=0x5EED):
    x = np.arange(1, num_perm + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    return _mix(x)


def shingles(text, n=5):
    """The distinct 64-bit hashes of the character n-grams of text."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cp) == 0:
        return np.zeros(0, dtype=np.uint64)
    m = max(1, len(cp) - n + 1)
    w = min(n, len(cp))
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(w):
            h = h * _P + cp[j:j + m] + np.uint64(1)
        return np.unique(_mix(h ^ np.uint64(w)))


def signature(sh, sd):
    """MinHash signature (K,) of a shingle-hash array; all-ones for an empty text."""
    if len(sh) == 0:
        return np.full(len(sd), np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix(sh[:, None] ^ sd[None, :]).min(axis=0)


class Index:
    """Signatures of a set of texts; max_jaccard(sig) = the best estimate and its row."""

    def __init__(self, texts, n=5, num_perm=128):
        self.n, self.sd = n, seeds(num_perm)
        self.sigs = np.stack([signature(shingles(t, n), self.sd) for t in texts]) if texts else \
            np.zeros((0, num_perm), dtype=np.uint64)

    def sig(self, text):
        return signature(shingles(text, self.n), self.sd)

    def max_jaccard(self, sig):
        if len(self.sigs) == 0:
            return 0.0, -1
        est = (self.sigs == sig[None, :]).mean(axis=1)
        i = int(est.argmax())
        return float(est[i]), i


def estimate(a, b, n=5, num_perm=128):
    sd = seeds(num_perm)
    return float((signature(shingles(a, n), sd) == signature(shingles(b, n), sd)).mean())


def exact_jaccard(a, b, n=5):
    """Exact Jaccard of the character n-gram sets (strings, not hashes): the reference
    the estimate is tested against."""
    def grams(t):
        return {t[i:i + n] for i in range(max(1, len(t) - n + 1))} if t else set()
    A, B = grams(a), grams(b)
    return len(A & B) / len(A | B) if A | B else 1.0
