#!/bin/sh
# test.sh: installs what the tests need and runs them all: the unit and
# integration tests (which start real containers), then podman, Docker
# and containerd driving berth (tests/engines/run.sh, which installs the
# engines), then Kubernetes' path, pods through containerd's CRI plugin
# (tests/cri/run.sh, which installs what it needs), then the benchmark
# harness in its short mode, only to prove it works (the numbers are in
# BENCHMARKS.md), and last the cgroup tests again inside a booted Debian 12
# machine with systemd as pid 1 and pure cgroup v2 (tests/vm/suite.sh; its
# image is built once, a few minutes, and kept in /var/cache/berth-vm),
# with the cgroupfs driver and then with berth's systemd driver.
# As root.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the tests create real containers; run as root" >&2
  exit 1
fi
scripts/deps.sh
cargo test --workspace --locked
BERTH="$PWD/target/debug/berth" tests/engines/run.sh
BERTH="$PWD/target/debug/berth" tests/cri/run.sh
bench_out=$(mktemp -d /tmp/berth-bench-ci.XXXXXX)
BERTH="$PWD/target/debug/berth" bench/run.sh --quick --out "$bench_out" >/dev/null
rm -rf "$bench_out"
# The test binaries whose tests make cgroups, in the systemd guest, with
# each driver (the whole suite, 48 minutes in an emulated guest, does not
# fit CI's time beside the rest; `tests/vm/suite.sh` runs it by hand).
vm_binaries="cgroups systemd lifecycle exec errors berth_cgroups"
BERTH_VM_SUITE_ONLY="$vm_binaries" tests/vm/suite.sh
BERTH_VM_SUITE_ONLY="$vm_binaries" tests/vm/suite.sh --systemd-cgroup
