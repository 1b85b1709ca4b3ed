#!/usr/bin/env bash
# Runs every built libFuzzer target BUILD_DIR/tests/fuzz/fuzz_<name> over a copy of its seed corpus
# tests/fuzz/corpus/<name>/ (and dictionary tests/fuzz/<name>.dict if present), for SECONDS, or for
# the number in tests/fuzz/<name>.seconds when the target declares its own duration (the data
# readers run 30 s). Environment: FUZZ_FORCE_SECONDS=N runs every target N s regardless (a quick
# local pass); FUZZ_ONLY="listops aan" runs only those targets.
# Usage: scripts/run_fuzzers.sh [BUILD_DIR=build-fuzz] [SECONDS=60]. Exits non-zero if any target
# crashes or trips a sanitizer; the crashing input is kept under BUILD_DIR/fuzz-work/<name>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-build-fuzz}
seconds=${2:-60}
shopt -s nullglob
targets=()
for candidate in "$build_dir"/tests/fuzz/fuzz_*; do
  if [ -f "$candidate" ] && [ -x "$candidate" ]; then
    short=$(basename "$candidate"); short=${short#fuzz_}
    if [ -n "${FUZZ_ONLY:-}" ] && [[ " $FUZZ_ONLY " != *" $short "* ]]; then continue; fi
    targets+=("$candidate")
  fi
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "run_fuzzers: no fuzz targets in $build_dir/tests/fuzz (build them with \`make fuzz\`)" >&2
  exit 1
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for target in "${targets[@]}"; do
  name=$(basename "$target")
  short=${name#fuzz_}
  work="$build_dir/fuzz-work/$short"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  # A copy, so the inputs libFuzzer adds never touch the committed seeds.
  if [ -d "$root/tests/fuzz/corpus/$short" ]; then cp -r "$root/tests/fuzz/corpus/$short/." "$work/corpus/"; fi
  duration=$seconds
  if [ -f "$root/tests/fuzz/$short.seconds" ]; then duration=$(tr -dc '0-9' <"$root/tests/fuzz/$short.seconds"); fi
  if [ -n "${FUZZ_FORCE_SECONDS:-}" ]; then duration=$FUZZ_FORCE_SECONDS; fi
  if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -eq 0 ]; then
    echo "run_fuzzers: bad duration '$duration' for $name (tests/fuzz/$short.seconds or FUZZ_FORCE_SECONDS)" >&2
    exit 2
  fi
  args=(-max_total_time="$duration" -print_final_stats=1 -timeout=30 -rss_limit_mb=4096
        -artifact_prefix="$work/artifacts/")
  if [ -f "$root/tests/fuzz/$short.dict" ]; then args+=(-dict="$root/tests/fuzz/$short.dict"); fi
  echo "== $name: ${duration}s, seeds $(ls "$work/corpus" | wc -l)"
  rc=0
  "$target" "${args[@]}" "$work/corpus" >"$work/log.txt" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done [0-9]+ runs" "$work/log.txt" || true
  echo "   corpus grew to $(ls "$work/corpus" | wc -l) inputs; log $work/log.txt"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $name exited with status $rc; crashing input(s): $(ls "$work/artifacts")" >&2
    grep -E "ERROR|SUMMARY|runtime error|^fuzz_[a-z0-9_]+:|terminate|Test unit written" "$work/log.txt" | head -20 >&2 || true
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_fuzzers: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "run_fuzzers: all ${#targets[@]} target(s) ran their time (default ${seconds}s) without a crash"
