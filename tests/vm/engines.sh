#!/usr/bin/env bash
# tests/vm/engines.sh: the engines with their systemd cgroup drivers, as on
# the hosts most containers run on, each driving berth. As root on the host,
# after `cargo build --release`; it boots the machine of tests/vm/run.sh.
#
#   tests/vm/engines.sh                 # podman, docker, rootless podman, CRI,
#                                       # checkpoint (podman's and ctr's, with CRIU)
#   tests/vm/engines.sh podman docker   # some of them
#
# podman runs with --cgroup-manager=systemd, dockerd with
# native.cgroupdriver=systemd, containerd's CRI plugin with SystemdCgroup =
# true and BinaryName berth (tests/cri/run.sh with CRI_SYSTEMD=1), and
# podman as the unprivileged user `tester` through its user manager. Each
# runs a container with memory, pids and cpu limits, reads them back from
# the unit (systemctl show) and from the cgroup, execs into it, and removes
# it, leaving no unit and no cgroup. One PASS/FAIL line per scenario; the
# exit status is the number of failures. BERTH=path picks the berth
# (default target/release/berth).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

if [ "${1-}" != --in-guest ]; then
  berth=$(readlink -f "${BERTH:-$repo/target/release/berth}")
  [ -x "$berth" ] || { echo "engines: no berth at $berth (cargo build --release first)" >&2; exit 1; }
  case $berth in "$repo"/*) ;; *) echo "engines: BERTH must lie inside $repo (the guest sees only the tree)" >&2; exit 1 ;; esac
  # The guest has no protoc: the CRI client's messages are generated here.
  generated=$repo/target/vm-engines/cri
  mkdir -p "$generated"
  protoc -I "$repo/tests/cri" --python_out="$generated" "$repo/tests/cri/cri.proto" ||
    { echo "engines: protoc failed (install protobuf-compiler)" >&2; exit 1; }
  exec "$here/run.sh" -- "$here/engines.sh" --in-guest "$berth" "$generated" "$@"
fi

# --- in the guest ------------------------------------------------------------
# A copy outside the share: the daemons and the unprivileged user run it.
install -m 755 "$2" /usr/local/bin/berth
BERTH=/usr/local/bin/berth
generated=$3
shift 3
engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=(podman docker rootless cri checkpoint)

work=$(mktemp -d /tmp/berth-engines.XXXXXX)
chmod 755 "$work"
failed=0
check() {
  local name=$1
  shift
  local output
  if output=$("$@" 2>&1); then
    echo "PASS $name"
  else
    echo "FAIL $name"
    printf '%s\n' "$output" | tail -n 8 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

# equals WANT COMMAND...: the command's output, trimmed, is WANT.
equals() {
  local want=$1 got
  shift
  got=$("$@" 2>&1) || { echo "exit $?: $got"; return 1; }
  got=$(printf '%s' "$got" | tr -d '\r' | paste -sd' ')
  [ "$got" = "$want" ] || { echo "wanted \"$want\", got \"$got\""; return 1; }
}

unit_property() { systemctl show --value -p "$2" "$1"; }

# gone UNIT CGROUP_DIR: no unit of that name is loaded, no such cgroup.
gone() {
  local unit=$1 dir=$2
  for _ in $(seq 50); do
    if [ "$(systemctl show --value -p LoadState "$unit")" = not-found ] && [ ! -d "$dir" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "left: unit $unit ($(systemctl show --value -p ActiveState "$unit")), cgroup $dir ($([ -d "$dir" ] && echo exists || echo gone))"
  return 1
}

# removed CONTAINER UNIT CGROUP_DIR: $E rm -f, then neither unit nor cgroup.
removed() { $E rm -f "$1" >/dev/null && gone "$2" "$3"; }

# The limits every scenario sets, and what they read as from inside.
limits=(--memory 64m --pids-limit 42 --cpus 0.5)
inside='cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max'
inside_want='67108864 42 50000 100000'

"$repo/scripts/mkrootfs.sh" "$work/busybox" >/dev/null
tar -C "$work/busybox" -cf "$work/busybox.tar" .
chmod 644 "$work/busybox.tar"

# One engine's scenarios. E is the engine command; its units are
# <unit_prefix>-<container id>.scope in slice.
engine_scenarios() {
  local name=$1 slice=$2 unit_prefix=$3
  check "$name: run with limits, read from inside" \
    equals "$inside_want" $E run --rm --network none "${limits[@]}" busybox sh -c "$inside"
  local id
  id=$($E run -d --network none "${limits[@]}" --name "$name-sleeper" busybox sleep 600 </dev/null 2>"$work/$name.err" | tail -n1)
  if [ -z "$id" ]; then
    echo "FAIL $name: run -d"
    sed 's/^/    /' "$work/$name.err"
    failed=$((failed + 1))
    return
  fi
  local unit=$unit_prefix-$id.scope
  local dir=/sys/fs/cgroup/$slice/$unit
  check "$name: the container is $unit, active" equals active unit_property "$unit" ActiveState
  check "$name: MemoryMax and TasksMax of the unit" \
    equals "67108864 42" sh -c "systemctl show --value -p MemoryMax $unit; systemctl show --value -p TasksMax $unit"
  check "$name: CPUQuotaPerSecUSec of the unit" equals 500ms unit_property "$unit" CPUQuotaPerSecUSec
  check "$name: Delegate of the unit" equals yes unit_property "$unit" Delegate
  check "$name: the limits in the unit's cgroup" \
    equals "$inside_want" sh -c "cd $dir && cat memory.max pids.max cpu.max"
  check "$name: exec runs in the unit's cgroup" \
    equals "0::/" $E exec "$name-sleeper" cat /proc/self/cgroup
  check "$name: update sets the unit and the cgroup" \
    equals "100663296 100663296" sh -c "$E update --memory 96m $name-sleeper >/dev/null &&
      systemctl show --value -p MemoryMax $unit && cat $dir/memory.max"
  check "$name: rm -f leaves no unit and no cgroup" removed "$name-sleeper" "$unit" "$dir"
}

run_podman() {
  E="podman --runtime $BERTH --cgroup-manager systemd"
  podman import "$work/busybox.tar" busybox >/dev/null || { echo "FAIL podman: import"; failed=$((failed + 1)); return; }
  check "podman: info says systemd and berth" \
    equals "systemd $BERTH" $E info --format '{{.Host.CgroupManager}} {{.Host.OCIRuntime.Path}}'
  engine_scenarios podman machine.slice libpod
  podman rmi -f busybox >/dev/null 2>&1
}

run_docker() {
  mkdir -p /etc/docker
  cat >/etc/docker/daemon.json <<EOF
{"exec-opts": ["native.cgroupdriver=systemd"], "runtimes": {"berth": {"path": "$BERTH"}},
 "default-runtime": "berth", "iptables": false, "ip-masq": false, "bridge": "none"}
EOF
  systemctl start containerd docker || { echo "FAIL docker: start"; journalctl -u docker -n 20 --no-pager | sed 's/^/    /'; failed=$((failed + 1)); return; }
  E=docker
  check "docker: info says systemd and berth" \
    equals "systemd berth" docker info --format '{{.CgroupDriver}} {{.DefaultRuntime}}'
  docker import "$work/busybox.tar" busybox >/dev/null || { echo "FAIL docker: import"; failed=$((failed + 1)); return; }
  # docker names the container by its full id in run -d's output.
  engine_scenarios docker system.slice docker
  systemctl stop docker docker.socket containerd
}

run_rootless() {
  local user=tester uid=1000
  local as=(runuser -u "$user" -- env -C /home/$user HOME=/home/$user XDG_RUNTIME_DIR=/run/user/$uid
    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus)
  E="${as[*]} podman --runtime $BERTH --cgroup-manager systemd"
  $E import "$work/busybox.tar" busybox >/dev/null || { echo "FAIL rootless podman: import"; failed=$((failed + 1)); return; }
  # The user manager delegates memory and pids (not cpu) to its children.
  check "rootless podman: memory and pids limits apply" \
    equals "67108864 42" $E run --rm --network none --memory 64m --pids-limit 42 busybox \
    sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max'
  check "rootless podman: berth keeps its state under XDG_RUNTIME_DIR" \
    sh -c "$E run -d --network none --name rl busybox sleep 600 >/dev/null && ls /run/user/$uid/berth | grep -q ."
  check "rootless podman: the container's scope is in the user's manager" \
    sh -c "systemctl --user -M $user@ list-units --no-legend 'libpod-*.scope' | grep -q running"
  check "rootless podman: rm -f leaves no unit" \
    sh -c "$E rm -f rl >/dev/null && ! systemctl --user -M $user@ list-units --all --no-legend 'libpod-*.scope' | grep -v conmon | grep -q ."
  check "rootless podman: features says systemd and systemdUser" \
    equals "true true" sh -c "${as[*]} $BERTH features | python3 -c 'import json,sys; c=json.load(sys.stdin)[\"linux\"][\"cgroup\"]; print(str(c[\"systemd\"]).lower(), str(c[\"systemdUser\"]).lower())'"
}

# A container that counts seconds into /tmp/n: restored, it counts on from
# where it was; started afresh, it would count from 1.
counter='i=0; while :; do i=$((i + 1)); echo $i >/tmp/n; sleep 1; done'

# counts_on BEFORE COMMAND...: the count the command reads is at least BEFORE.
counts_on() {
  local before=$1 after
  shift
  after=$("$@") || { echo "could not read the count: $after"; return 1; }
  [ "$after" -ge "$before" ] || { echo "count $before before, $after after: started afresh"; return 1; }
}

podman_checkpoint_restore() {
  local before
  before=$($E exec cr cat /tmp/n) &&
    $E container checkpoint cr >/dev/null &&
    equals exited $E inspect -f '{{.State.Status}}' cr &&
    $E container restore cr >/dev/null &&
    counts_on "$before" $E exec cr cat /tmp/n
}

podman_export_import() {
  local before
  before=$($E exec cr cat /tmp/n) &&
    $E container checkpoint --export "$work/cr.tar.gz" cr >/dev/null &&
    $E rm -f cr >/dev/null &&
    $E container restore --import "$work/cr.tar.gz" --name cr2 >/dev/null &&
    counts_on "$before" $E exec cr2 cat /tmp/n
}

ctr_checkpoint_restore() {
  local before
  before=$($C task exec --exec-id read1 cr cat /tmp/n) &&
    $C container checkpoint --task cr localhost/cr:1 >/dev/null &&
    $C task kill -s KILL cr && sleep 1 && $C task rm cr >/dev/null && $C container rm cr &&
    $C container restore --live cr localhost/cr:1 &&
    counts_on "$before" $C task exec --exec-id read2 cr cat /tmp/n
}

# Checkpoint and restore through the engines (issue 18), with CRIU.
run_checkpoint() {
  E="podman --runtime $BERTH --cgroup-manager systemd"
  podman import "$work/busybox.tar" busybox >/dev/null || { echo "FAIL podman: import"; failed=$((failed + 1)); return; }
  $E run -d --network none --name cr busybox sh -c "$counter" >/dev/null </dev/null
  sleep 5
  check "podman: container checkpoint, then restore, counts on" podman_checkpoint_restore
  check "podman: checkpoint --export, rm, restore --import as another container counts on" podman_export_import
  $E rm -f cr cr2 >/dev/null 2>&1
  podman rmi -f busybox >/dev/null 2>&1
  check "podman: no libpod unit left" sh -c "! systemctl list-units --all --no-legend 'libpod-*.scope' | grep -v conmon | grep -q ."

  systemctl start containerd || { echo "FAIL ctr: start containerd"; failed=$((failed + 1)); return; }
  C="ctr -n berth-checkpoint"
  python3 "$repo/tests/cri/oci_archive.py" "$work/busybox.tar" "$work/busybox-oci.tar" localhost/busybox:ctr &&
    $C images import "$work/busybox-oci.tar" >/dev/null &&
    $C run -d --runc-binary "$BERTH" localhost/busybox:ctr cr sh -c "$counter" ||
    { echo "FAIL ctr: run"; failed=$((failed + 1)); return; }
  sleep 5
  check "ctr: container checkpoint --task, then restore --live, counts on" ctr_checkpoint_restore
  # Bounded: a shim a failed restore left behind may not answer.
  timeout 20 $C task kill -s KILL cr >/dev/null 2>&1; sleep 1
  timeout 20 $C task rm -f cr >/dev/null 2>&1
  timeout 20 $C container rm cr >/dev/null 2>&1
  timeout 20 $C images rm localhost/cr:1 localhost/busybox:ctr >/dev/null 2>&1
  timeout 60 systemctl stop containerd
}

run_cri() {
  local out
  out=$(CRI_SYSTEMD=1 CRI_GENERATED=$generated BERTH=$BERTH "$repo/tests/cri/run.sh" 2>&1)
  local status=$?
  sed 's/^\(PASS\|FAIL\) /\1 cri (SystemdCgroup = true): /' <<<"$out"
  [ "$status" = 0 ] || failed=$((failed + 1))
}

for engine in "${engines[@]}"; do
  case $engine in
    podman) run_podman ;;
    docker) run_docker ;;
    rootless) run_rootless ;;
    cri) run_cri ;;
    checkpoint) run_checkpoint ;;
    *) echo "engines: unknown engine $engine (podman, docker, rootless, cri, checkpoint)" >&2; failed=$((failed + 1)) ;;
  esac
done
rm -rf "$work"
echo "engines: $failed failed"
exit "$failed"
