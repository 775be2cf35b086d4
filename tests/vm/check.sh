#!/usr/bin/env bash
# tests/vm/check.sh: proves the test machine is what the tests expect. Run
# it inside the guest, after `cargo build --release` on the host:
#
#   tests/vm/run.sh -- tests/vm/check.sh
#
# One PASS/FAIL line per property; the exit status counts the failures.
# BERTH=path picks the berth to run a container with (default
# target/release/berth).
set -uo pipefail

cd "$(dirname "$0")/../.."
berth=${BERTH:-target/release/berth}
failures=0
check() {
  local name=$1
  shift
  local output
  if output=$("$@" 2>&1); then
    echo "PASS $name"
  else
    echo "FAIL $name"
    printf '%s\n' "$output" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

pid1_is_systemd() { [ "$(ps -p 1 -o comm=)" = systemd ]; }
cgroup2_has_the_controllers() {
  local available controller
  available=$(cat /sys/fs/cgroup/cgroup.controllers) || return 1
  for controller in cpuset cpu io memory pids; do
    [[ " $available " == *" $controller "* ]] || { echo "no $controller in: $available"; return 1; }
  done
}
system_is_up() {
  local state
  state=$(systemctl is-system-running)
  [ "$state" = running ] || [ "$state" = degraded ] || { echo "$state"; return 1; }
}
testers_manager_runs() { [ "$(systemctl --user -M tester@ is-system-running)" = running ]; }
tester_has_subordinate_ids() { grep -q '^tester:' /etc/subuid && grep -q '^tester:' /etc/subgid; }
modules_are_loaded() { lsmod | grep -q '^9p ' && lsmod | grep -q '^9pnet_virtio ' && lsmod | grep -q '^overlay '; }

# A busybox container made here with the host-built berth, a memory limit
# set and read back from inside.
berth_runs_a_container_with_a_memory_limit() {
  local bundle output status
  bundle=$(mktemp -d /tmp/vm-check.XXXXXX)
  scripts/mkrootfs.sh "$bundle/rootfs" &&
    "$berth" spec --bundle "$bundle" &&
    python3 - "$bundle/config.json" <<'EDIT' &&
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["cat", "/sys/fs/cgroup/memory.max"]
config["linux"].setdefault("resources", {})["memory"] = {"limit": 67108864}
json.dump(config, open(path, "w"))
EDIT
    output=$("$berth" --root "$bundle/state" run --bundle "$bundle" "vm-check-$$")
  status=$?
  rm -rf "$bundle"
  [ "$status" = 0 ] && [ "$output" = 67108864 ] || { echo "status $status, memory.max: $output"; return 1; }
}

check "systemd is pid 1" pid1_is_systemd
check "cgroup v2 offers cpuset cpu io memory pids" cgroup2_has_the_controllers
check "the system is up" system_is_up
check "tester's user manager runs" testers_manager_runs
check "tester has subordinate ids" tester_has_subordinate_ids
check "9p, 9pnet_virtio and overlay are loaded" modules_are_loaded
check "berth runs a container with a memory limit" berth_runs_a_container_with_a_memory_limit
check "podman starts" podman info
check "containerd starts" containerd --version
check "dockerd starts" dockerd --version
check "runc starts" runc --version
check "criu check passes" criu check
check "hyperfine starts" hyperfine --version
check "python has grpc and protobuf" python3 -c 'import grpc, google.protobuf'
exit "$failures"
