#!/usr/bin/env bash
# Installs what aipe needs to build and test, idempotently, from Debian packages.
# The CUDA toolkit (nvcc, cudart, cuBLAS, CUB) is expected to be installed already.
set -euo pipefail

# libpcre2-dev: the tokenizer's split regex; libxxhash-dev: the KV cache's prefix-cache page hashes (both via pkg-config).
# libcpp-httplib-dev: the HTTP server of `aipe serve` and the client of `aipe bench serve` (pkg-config cpp-httplib).
need_pkgs=(cmake ninja-build g++ libgtest-dev nlohmann-json3-dev libcli11-dev ccache git pkg-config libpcre2-dev libxxhash-dev
           libcpp-httplib-dev)
# Opt-in (large): headless Chromium for the test that renders `aipe report`'s HTML (skipped without it).
if [ "${AIPE_WITH_CHROMIUM:-0}" = 1 ]; then need_pkgs+=(chromium zlib1g-dev); fi
# Opt-in: clang with its sanitizer and libFuzzer runtimes, for the 'asan' preset and scripts/fuzz.sh.
if [ "${AIPE_WITH_SANITIZERS:-0}" = 1 ]; then need_pkgs+=(clang libclang-rt-dev); fi
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc: on PATH, or in the default toolkit location (then CMake is told through CUDACXX).
if ! command -v nvcc >/dev/null 2>&1; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "setup: nvcc is not on PATH; using /usr/local/cuda/bin/nvcc (add /usr/local/cuda/bin to PATH to silence this)"
  else
    cat >&2 <<'MSG'
setup: no CUDA compiler found (nvcc not on PATH and not in /usr/local/cuda/bin).
       aipe needs the CUDA toolkit 12.4 or newer (13.x recommended): install it from NVIDIA's packages,
       then put its bin/ directory on PATH.
MSG
    exit 1
  fi
fi
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
ver=$("$nvcc_bin" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
read -r major minor <<<"$ver"
if [ -z "${major:-}" ] || [ "$major" -lt 12 ] || { [ "$major" -eq 12 ] && [ "$minor" -lt 4 ]; }; then
  echo "setup: nvcc ${major:-?}.${minor:-?} is too old: aipe needs CUDA 12.4 or newer" >&2
  exit 1
fi
echo "setup: ok (CUDA $major.$minor, $(cmake --version | head -1))"
