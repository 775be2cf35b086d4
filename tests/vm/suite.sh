#!/usr/bin/env bash
# tests/vm/suite.sh [--systemd-cgroup] [ARG...]: runs berth's whole test
# suite, every test binary of `cargo test --workspace`, inside the systemd
# machine of tests/vm/run.sh (systemd as pid 1, pure cgroup v2). As root on
# the host.
#
#   tests/vm/suite.sh                  # everything, cgroupfs driver
#   tests/vm/suite.sh --systemd-cgroup # everything, berth --systemd-cgroup
#   tests/vm/suite.sh cgroups          # ARGs go to each test binary: a filter
#
# --systemd-cgroup sets BERTH_TEST_CGROUP_DRIVER=systemd for the tests,
# which then pass --systemd-cgroup to every berth they run (common::Berth).
# BERTH_VM_SUITE_ONLY="cgroups lifecycle ..." runs only the test binaries of
# those names (tests/<name>.rs; a crate's unit tests are named after it).
#
# The binaries are built here (cargo is not in the guest) and run there
# from the shared tree, each in its package's directory as cargo runs
# them; doc tests are left out (they need rustdoc); a binary still running
# after 10 minutes is killed and counts as failed. Each binary's output
# streams here; a summary follows: tests passed, failed, ignored, and the
# tests that said why they skip (common::runs_here). Exit status: 0 when
# every binary passed, 1 otherwise, run.sh's 124/125 when the machine
# failed. BERTH_VM_* variables pass on to run.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

if [ "${1-}" = --in-guest ]; then
  list=$2
  export BERTH_TEST_CGROUP_DRIVER=$3
  shift 3
  binary_timeout=600
  passed=0 failed=0 ignored=0 broken=()
  log=$(mktemp /tmp/berth-suite.XXXXXX)
  : >"$log.skipped"
  count() {
    local n
    n=$(sed -n "s/.* \([0-9]\{1,\}\) $1.*/\1/p" <<<"$summary")
    echo "${n:-0}"
  }
  # The list on its own descriptor: the tests get the guest's stdin.
  while read -r -u 3 dir binary; do
    name=${binary#"$repo"/}
    echo "=== $name"
    status=0
    # A hung test must not take the rest of the suite with it.
    (cd "$dir" && RUST_BACKTRACE=1 timeout -k 10 "$binary_timeout" "$binary" "$@") 2>&1 | tee "$log" || status=$?
    [ "$status" = 124 ] && echo "=== $name: killed after $binary_timeout s"
    summary=$(grep '^test result:' "$log" | tail -n1 || true)
    if [ -z "$summary" ] || [ "$status" != 0 ]; then
      broken+=("$name (exit $status)")
    fi
    passed=$((passed + $(count passed)))
    failed=$((failed + $(count failed)))
    ignored=$((ignored + $(count ignored)))
    grep '^SKIPPED ' "$log" >>"$log.skipped" || true
  done 3<"$list"
  echo
  echo "=== summary ($BERTH_TEST_CGROUP_DRIVER driver; guest: kernel $(uname -r), $(stat -f -c %T /sys/fs/cgroup) at /sys/fs/cgroup, pid 1 $(ps -p 1 -o comm=))"
  echo "passed $passed, failed $failed, ignored $ignored, skipped with a reason $(wc -l <"$log.skipped")"
  sed 's/^/  /' "$log.skipped"
  rm -f "$log" "$log.skipped"
  if [ ${#broken[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${broken[@]}"
    exit 1
  fi
  exit 0
fi

driver=cgroupfs
if [ "${1-}" = --systemd-cgroup ]; then
  driver=systemd
  shift
fi
cd "$repo"
# Beside the binaries (CARGO_TARGET_DIR, if set, must lie inside the tree),
# one list per driver: a run in the guest reads its list as it goes.
target=$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd -P)
case $target/ in "$repo"/*) ;; *) echo "suite: CARGO_TARGET_DIR=$target is outside $repo, which is all the guest sees" >&2; exit 1 ;; esac
out=$target/vm-suite
mkdir -p "$out"
# One line per test binary: the directory cargo runs it in (its
# package's) and its path, from cargo's own account of what it built.
cargo test --workspace --locked --no-run --message-format=json 2>"$out/build.log" |
  grep '"executable":"/' | grep '"test":true},"features"' |
  sed -n 's/.*"manifest_path":"\([^"]*\)\/Cargo.toml".*"executable":"\([^"]*\)".*/\1 \2/p' \
    >"$out/binaries-$driver" || { cat "$out/build.log" >&2; exit 1; }
if [ -n "${BERTH_VM_SUITE_ONLY:-}" ]; then
  # cargo names a test binary <target name>-<hash>.
  only=$(tr ' ' '|' <<<"$BERTH_VM_SUITE_ONLY")
  grep -E "/($only)-[0-9a-f]+\$" "$out/binaries-$driver" >"$out/binaries-$driver.only" || true
  mv "$out/binaries-$driver.only" "$out/binaries-$driver"
fi
[ -s "$out/binaries-$driver" ] || { cat "$out/build.log" >&2; echo "suite: cargo built no test binaries" >&2; exit 1; }
exec "$here/run.sh" -- "$here/suite.sh" --in-guest "$out/binaries-$driver" "$driver" "$@"
