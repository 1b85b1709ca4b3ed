#!/usr/bin/env bash
# Installs the Debian packages luna builds against, only those that are missing.
# Called by `make demo` / `make test`; safe to run repeatedly. dataset-fashion-mnist is data, not a
# build dependency: the Fashion-MNIST task and its reader test use /usr/share/datasets/fashion-mnist.
set -euo pipefail
pkgs=(cmake g++ make libopenblas-dev catch2 libstb-dev zlib1g-dev nlohmann-json3-dev libcli11-dev libbenchmark-dev
      dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "luna: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
