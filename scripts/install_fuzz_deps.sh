#!/usr/bin/env bash
# Installs what `make fuzz` needs on Debian 12 on top of install_deps.sh, only what is missing:
# clang, libFuzzer's runtime (libclang_rt.fuzzer-*.a ships in libclang-rt-14-dev, which the
# libclang-rt-dev metapackage pulls in) and clang's OpenMP runtime (libomp-dev). Safe to rerun.
set -euo pipefail
bash "$(dirname "$0")/install_deps.sh"
pkgs=(clang libclang-rt-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "luna: installing Debian packages for fuzzing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The runtime must be where clang looks for it, or linking with -fsanitize=fuzzer fails obscurely.
found=0
for dir in "$(clang -print-runtime-dir 2>/dev/null || true)" "$(clang -print-resource-dir)/lib/linux"; do
  if compgen -G "$dir/libclang_rt.fuzzer*.a" >/dev/null; then found=1; fi
done
if [ "$found" -eq 0 ]; then
  echo "luna: clang $(clang -dumpversion) has no libFuzzer runtime (libclang_rt.fuzzer);" \
       "install libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev" >&2
  exit 1
fi
