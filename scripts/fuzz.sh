#!/bin/sh
# fuzz.sh [SECONDS]: runs each fuzz target (fuzz/fuzz_targets: config.json
# parsing and validation with seccomp compilation; ids, signals and sysctl
# keys; mount options, cgroupsPath and mountinfo) for SECONDS (default 60)
# with cargo fuzz (libFuzzer), starting from fuzz/seeds. A crash leaves its
# input in fuzz/artifacts and fails the script.
set -eu
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds=${1:-60}
# cargo fuzz passes unstable flags to rustc; this stable toolchain takes
# them when bootstrapping is allowed.
export RUSTC_BOOTSTRAP=1
for target in config names mounts; do
  mkdir -p "corpus/$target"
  cp seeds/"$target"/* "corpus/$target/"
  echo "fuzz $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|thread .* panicked)' || true
  if ls artifacts/"$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed; inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
