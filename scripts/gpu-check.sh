#!/usr/bin/env bash
# GPU check: builds luna with the CUDA backend (LUNA_CUDA=ON), runs the CUDA tests (ctest -L cuda)
# and the CUDA benchmarks, and writes one log. Made for a GPU machine that has CUDA, CMake and a
# C++ compiler but no package registry: the Debian packages luna builds against travel with the
# tree as .deb files and are unpacked with dpkg -x into a folder of the tree, never into /.
#
#   scripts/gpu-check.sh fetch   on a machine with apt: downloads the .deb files into .gpu-deps/debs
#                                (and keeps .gpu-deps out of git through .git/info/exclude)
#   scripts/gpu-check.sh [run]   on the GPU machine: unpack, configure, build, test, benchmark
#   scripts/gpu-check.sh configure   unpack and configure only (checks the carried packages)
#
# With this workplace's device tool: run `scripts/gpu-check.sh fetch` here once, then on the GPU
# machine `GPU_CHECK_LOG_DIR=$OUT scripts/gpu-check.sh` with .gpu-deps carried; commit the log it
# brings back under docs/gpu/.
#
# Environment (run): GPU_CHECK_LOG_DIR (default docs/gpu) receives gpu-check-<date>.log;
# GPU_CHECK_BUILD (default build-gpu) is the build folder; GPU_CHECK_ALL_TESTS=1 also runs the
# whole CPU suite; JOBS (default nproc) parallel compile jobs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.gpu-deps"
# What luna's CMake needs beyond a compiler and CMake: scripts/install_deps.sh's build packages and
# the shared libraries they pull in that a non-Debian GPU image may lack (OpenBLAS's Fortran
# runtime). The C library and libstdc++ are the machine's own and are never brought.
PACKAGES=(libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
          catch2 libstb-dev libstb0 zlib1g-dev zlib1g nlohmann-json3-dev libcli11-dev)

fetch() {
  mkdir -p "$DEPS/debs"
  local exclude
  if exclude="$(git -C "$ROOT" rev-parse --git-path info/exclude 2>/dev/null)"; then
    [[ "$exclude" = /* ]] || exclude="$ROOT/$exclude"
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >> "$exclude"
  fi
  # An unpacked root from a local 'configure' would be carried along too (the device tool carries
  # at most 64 MiB); the GPU machine unpacks its own.
  rm -rf "$DEPS/root"
  (cd "$DEPS/debs" && rm -f ./*.deb && apt-get download "${PACKAGES[@]}")
  echo "gpu-check: $(ls "$DEPS/debs" | wc -l) packages in $DEPS/debs ($(du -sh "$DEPS/debs" | cut -f1))"
}

# The first file under the unpacked root matching a path pattern, or nothing.
find_in_root() { find "$DEPS/root" -path "$1" 2>/dev/null | sort | head -n 1; }

run() {
  local mode="$1"
  local log_dir="${GPU_CHECK_LOG_DIR:-$ROOT/docs/gpu}"
  local build="${GPU_CHECK_BUILD:-$ROOT/build-gpu}"
  local jobs="${JOBS:-$(nproc)}"
  mkdir -p "$log_dir"
  local log="$log_dir/gpu-check-$(date -u +%Y%m%d-%H%M%S).log"
  exec > >(tee "$log") 2>&1
  echo "== luna gpu-check $(date -u +%FT%TZ) on $(uname -n)"
  echo "== commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  command -v nvcc > /dev/null && nvcc --version | tail -n 2
  cmake --version | head -n 1
  "${CXX:-c++}" --version | head -n 1

  local cmake_args=(-DCMAKE_BUILD_TYPE=Release -DLUNA_CUDA=ON)
  local lib_dirs=""
  if compgen -G "$DEPS/debs/*.deb" > /dev/null; then
    echo "== unpacking $(ls "$DEPS"/debs/*.deb | wc -l) Debian packages into $DEPS/root"
    rm -rf "$DEPS/root"
    mkdir -p "$DEPS/root"
    for deb in "$DEPS"/debs/*.deb; do dpkg -x "$deb" "$DEPS/root"; done
    local usr="$DEPS/root/usr"
    # dpkg -x runs no maintainer scripts, so OpenBLAS's alternatives symlinks do not exist:
    # point CMake at the pthread flavour's files directly.
    local cblas openblas
    cblas="$(find_in_root '*/openblas-pthread/cblas.h')"
    openblas="$(find_in_root '*/openblas-pthread/libopenblas.so')"
    [ -n "$cblas" ] && cmake_args+=(-DOPENBLAS_INCLUDE_DIR="$(dirname "$cblas")")
    [ -n "$openblas" ] && cmake_args+=(-DOPENBLAS_LIBRARY="$openblas")
    lib_dirs="$usr/lib/x86_64-linux-gnu:$usr/lib/x86_64-linux-gnu/openblas-pthread"
    # Headers the machine lacks (CLI11, nlohmann-json) are searched after its own (-idirafter);
    # the linker resolves libopenblas's own dependencies (libgfortran) in the unpacked folders.
    cmake_args+=(-DCMAKE_PREFIX_PATH="$usr"
                 -DCMAKE_CXX_FLAGS="-idirafter $usr/include"
                 -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$usr/lib/x86_64-linux-gnu -Wl,-rpath-link,$usr/lib/x86_64-linux-gnu/openblas-pthread")
  else
    echo "== no .deb files in $DEPS/debs: using the machine's own packages (run '$0 fetch' where apt works)"
  fi

  local status=0
  echo "== configure: cmake ${cmake_args[*]}"
  cmake -S "$ROOT" -B "$build" "${cmake_args[@]}"
  if [ "$mode" = configure ]; then
    echo "== configured $build (configure only)"
    return 0
  fi
  echo "== build ($jobs jobs)"
  local start=$SECONDS
  cmake --build "$build" -j "$jobs"
  echo "== build took $((SECONDS - start)) s"

  # Programs find the unpacked shared libraries (and their dependencies) at run time.
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$lib_dirs"
  export OMP_WAIT_POLICY=passive
  echo "== ctest -L cuda"
  (cd "$build" && ctest -L cuda --output-on-failure -V) || status=1
  if [ "${GPU_CHECK_ALL_TESTS:-0}" = 1 ]; then
    echo "== ctest (everything)"
    (cd "$build" && ctest -j "$jobs" --output-on-failure) || status=1
  fi

  echo "== benchmarks"
  local ran=0
  for bench in "$build"/bench/bench_cuda*; do
    [ -x "$bench" ] || continue
    ran=1
    echo "-- $(basename "$bench")"
    "$bench" || status=1
  done
  [ "$ran" = 1 ] || echo "no CUDA benchmarks were built (bench/bench_cuda*.cpp)"

  echo "== gpu-check finished with status $status; log: $log"
  return "$status"
}

case "${1:-run}" in
  fetch) fetch ;;
  run | configure) run "${1:-run}" ;;
  *) echo "usage: $0 [fetch|run|configure]" >&2; exit 2 ;;
esac
