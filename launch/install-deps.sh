#!/usr/bin/env bash
# Installs what adebert builds and tests with, from Debian packages (Debian 12).
# The CUDA toolkit is not a Debian package here: install NVIDIA's CUDA 12.x/13 if you
# want the GPU backend (the build finds nvcc by itself; without it, CPU only).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config git python3 ca-certificates curl
  libutf8proc-dev libcjson-dev zlib1g-dev libcmocka-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  gnuplot-nox
  libdnnl-dev libblis-openmp-dev libopenblas-dev
  slurm-wlm munge  # tests/slurm: a single-node Slurm 22.05 cluster (srun --mpi=pmix)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
