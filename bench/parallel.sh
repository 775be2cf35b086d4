#!/bin/bash
# parallel.sh N BUNDLE PREFIX RUNTIME...: starts N `RUNTIME run` of BUNDLE
# at once (ids PREFIX-1..N) and waits for all; fails if any failed.
set -u
n=$1 bundle=$2 prefix=$3
shift 3
pids=()
for i in $(seq "$n"); do
  "$@" run -b "$bundle" "$prefix-$i" >/dev/null 2>&1 &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=$((failed + 1))
done
if [ $failed -gt 0 ]; then
  echo "parallel.sh: $failed of $n runs failed" >&2
  exit 1
fi
