#!/usr/bin/env bash
# Builds the libFuzzer targets under fuzz/ with stable Rust (no cargo-fuzz, no nightly) and runs
# each one for a bounded time over its committed corpus. See fuzz/README.md.
#
#   fuzz/run.sh [--seconds N] [--jobs J] [--merge] [--build-only] [TARGET...]
#
#   --seconds N   fuzz each target for N seconds (default 5); 0 replays the corpus only
#   --jobs J      parallel libFuzzer workers per target (default 1)
#   --merge       afterwards, minimise the inputs that found new coverage into fuzz/corpus/
#   --build-only  build the targets and stop
#
# New inputs go to fuzz/corpus-work/TARGET (git-ignored); a crash or failed invariant leaves its
# input in fuzz/artifacts/TARGET/ and makes this script exit 1. The last line reads
# "fuzz: N passed, N failed".
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds=5
jobs=1
merge=0
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --merge) merge=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$here"/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# The flags cargo-fuzz passes for `-s none` (sanitizer coverage for libFuzzer, --cfg fuzzing), all
# stable. `--target` keeps them off build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing ${FUZZ_RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
started=$(date +%s)
# Not --locked: fuzz/Cargo.lock pins the fuzz-only crates, and cargo adds to it whatever a new
# dependency of the root crate needs instead of failing the run.
cargo build --manifest-path "$here/Cargo.toml" --release --target "$triple" \
  $(printf -- '--bin %s ' "${targets[@]}")
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - started ))s"
[ "$build_only" = 1 ] && exit 0
bin_dir="$CARGO_TARGET_DIR/$triple/release"

passed=0
failed=()
for t in "${targets[@]}"; do
  seeds="$here/corpus/$t"
  work="$here/corpus-work/$t"
  artifacts="$here/artifacts/$t"
  mkdir -p "$seeds" "$work" "$artifacts"
  log="$(mktemp)"
  echo "=== fuzz $t: ${seconds}s, corpus $(ls "$seeds" | wc -l) seeds + $(ls "$work" | wc -l) found"
  # -runs=0 with --seconds 0: execute every corpus input once and stop.
  limit=(-max_total_time="$seconds")
  [ "$seconds" = 0 ] && limit=(-runs=0)
  args=("${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/")
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs" -ignore_crashes=0)
  fi
  if "$bin_dir/$t" "${args[@]}" "$work" "$seeds" >"$log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^stat::number_of_executed_units|^Done|INFO: .*inputs|cov: ' "$log" | tail -n 3 | sed 's/^/    /'
  else
    failed+=("$t")
    # The panic (assertion) message, then libFuzzer's report of the input.
    grep -A8 -m1 'panicked at' "$log" | grep -v '^stack backtrace' || true
    grep -E 'ERROR: libFuzzer|SUMMARY|Test unit written|^Base64' "$log" || tail -n 20 "$log"
    echo "=== fuzz $t: FAILED; input saved under $artifacts/ (replay: $bin_dir/$t FILE)"
  fi
  rm -f "$log"
  if [ "$merge" = 1 ]; then
    # Adds to the committed seeds only the found inputs that reach new coverage.
    before=$(ls "$seeds" | wc -l)
    "$bin_dir/$t" -merge=1 -max_len=4096 "$seeds" "$work" >/dev/null 2>&1
    added=$(( $(ls "$seeds" | wc -l) - before ))
    echo "    merged $added new inputs into fuzz/corpus/$t"
  fi
done
echo "fuzz: ${passed} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[ ${#failed[@]} -eq 0 ]
