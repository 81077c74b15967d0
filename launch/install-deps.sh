#!/usr/bin/env bash
# Installs what adebert builds and tests with, from Debian packages (Debian 12).
# The CUDA toolkit is not a Debian package here: install NVIDIA's CUDA 12.x/13 if you
# want the GPU backend (the build finds nvcc by itself; without it, CPU only).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config git python3 ca-certificates curl
  libutf8proc-dev libcjson-dev zlib1g-dev libcmocka-dev nettle-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libmicrohttpd-dev libgnutls28-dev openssl  # adebert serve (HTTPS); tests/cli/serve.sh makes a test CA
  gnuplot-nox
  clang libclang-rt-dev  # tests/run.sh's fuzz stage: libFuzzer (its runtime is only a Recommends of clang)
  valgrind  # bench/faults/valgrind.sh
  libdnnl-dev libblis-openmp-dev libopenblas-dev
  slurm-wlm munge  # tests/slurm: a single-node Slurm 22.05 cluster (srun --mpi=pmix)
  python3-torch python3-venv  # tests/cli/hf_reload.sh (+ the venv below): ~190 MB download
  python3-sklearn python3-optuna python3-matplotlib  # experiments/: baselines, HPO, report plots
  python3-numpy python3-scipy  # experiments/augment: MinHash filter; experiments/report --baseline: t-tests
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

# tests/cli/hf_reload.sh loads adebert's exports with Hugging Face Transformers: Debian's
# PyTorch plus pinned pip packages in a venv that sees it (~150 MB, ~30 s). The test
# looks here (or at $ADEBERT_REF_PYTHON). /usr/bin/python3 on purpose: the venv must
# see Debian's dist-packages, which another python3 on PATH (pyenv, conda) does not.
VENV="${ADEBERT_VENV:-${HOME:-/tmp}/.cache/adebert-venv}"
if "$VENV/bin/python" -c "import torch, transformers, safetensors, tokenizers, accelerate" >/dev/null 2>&1; then
  echo "install-deps: $VENV ready"
else
  echo "install-deps: making $VENV (transformers 4.36.2, safetensors 0.4.1, tokenizers 0.15.2, accelerate 0.25.0)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check transformers==4.36.2 safetensors==0.4.1 tokenizers==0.15.2 \
    accelerate==0.25.0  # accelerate: HF Trainer (experiments/baselines/hf_peer.py)
  "$VENV/bin/python" -c "import torch, transformers, safetensors, tokenizers, accelerate"
fi
# The serving benchmark's peers (bench/serve/run.sh), only when asked: not needed by the
# tests. ADEBERT_SERVE_PEERS=1 launch/install-deps.sh
if [ "${ADEBERT_SERVE_PEERS:-0}" = 1 ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check fastapi==0.165.0 uvicorn==0.55.0 onnxruntime==1.32.0
  "$VENV/bin/python" -c "import fastapi, uvicorn, onnxruntime"
fi
# A current PyTorch from PyPI for the CPU training benchmark's peer rows
# (bench/run_cpu_bf16_bench.sh, TORCH_PY), only when asked: PyPI's Linux wheel is the
# CUDA build and pulls ~5 GB of CUDA libraries, which it needs even to import on a CPU.
# ADEBERT_TORCH_PEER=1 launch/install-deps.sh
if [ "${ADEBERT_TORCH_PEER:-0}" = 1 ]; then
  TVENV="${HOME:-/tmp}/.cache/adebert-torch-venv"
  [ -x "$TVENV/bin/python" ] || /usr/bin/python3 -m venv "$TVENV"
  "$TVENV/bin/pip" install -q --disable-pip-version-check torch==2.15.0 transformers==5.25.0
  "$TVENV/bin/python" -c "import torch, transformers"
fi
