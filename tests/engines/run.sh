#!/usr/bin/env bash
# tests/engines/run.sh [podman] [docker] [containerd]: drives each engine
# with berth as its runtime through everyday scenarios and prints one
# PASS/FAIL line per scenario. As root. It installs the engines (Debian's
# podman 4, docker.io 20.10, containerd 1.6) if they are missing, starts
# private instances (own sockets, data roots, no host networking), builds
# the images locally (busybox-static, and Debian minbase with debootstrap),
# and removes all it made, the daemons' mounts included.
#
#   BERTH=path/to/berth   the runtime under test (default target/debug/berth)
#   DEBIAN_IMAGE=0        skip the debootstrap image
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
BERTH=${BERTH:-$repo/target/debug/berth}
BERTH=$(readlink -f "$BERTH")
engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=(podman docker containerd)

if [ "$(id -u)" != 0 ]; then
  echo "engines: run as root" >&2
  exit 1
fi
[ -x "$BERTH" ] || { echo "engines: no berth at $BERTH (cargo build first)" >&2; exit 1; }

need=()
for pkg in podman docker.io containerd catatonit debootstrap busybox-static; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    { echo "engines: could not install ${need[*]}" >&2; exit 1; }
fi

work=$(mktemp -d /tmp/berth-engines.XXXXXX)
pids=()
# Cgroup directories before the run: the engines name parents (docker's
# /docker, ctr's /<namespace>, podman's libpod_parent) that berth, like
# runc, leaves when another container made them; the run removes the ones
# it brought.
cgroups_before=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d | sort)
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  # What a daemon left mounted under the work dir, deepest first.
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
  comm -13 <(echo "$cgroups_before") <(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d | sort) |
    sort -r | xargs -r rmdir 2>/dev/null
}
trap cleanup EXIT

passed=0
failed=0
failures=()
# check ENGINE SCENARIO COMMAND...: runs the command; PASS when it exits 0.
check() {
  local engine=$1 scenario=$2
  shift 2
  local out
  if out=$("$@" 2>&1); then
    echo "PASS $engine $scenario"
    passed=$((passed + 1))
  else
    echo "FAIL $engine $scenario"
    printf '%s\n' "$out" | tail -5 | sed 's/^/    /'
    failed=$((failed + 1))
    failures+=("$engine $scenario")
  fi
}

# Images: a busybox rootfs, and a Debian minbase one.
"$repo/scripts/mkrootfs.sh" "$work/busybox" >/dev/null
tar -C "$work/busybox" -cf "$work/busybox.tar" .
debian=0
if [ "${DEBIAN_IMAGE:-1}" = 1 ] &&
  debootstrap --variant=minbase bookworm "$work/debian" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1; then
  tar -C "$work/debian" -cf "$work/debian.tar" . && debian=1
  rm -rf "$work/debian"
else
  echo "engines: no Debian image (debootstrap failed or DEBIAN_IMAGE=0); its scenarios are skipped"
fi
rm -rf "$work/busybox"

# Processes of berth (inits are forks of it) and state it left.
no_leftovers() {
  local state=$1
  if pgrep -f "^$BERTH " >/dev/null; then echo "berth processes left: $(pgrep -af "^$BERTH ")"; return 1; fi
  if [ -d "$state" ] && [ -n "$(ls -A "$state" 2>/dev/null)" ]; then echo "state left in $state: $(ls "$state")"; return 1; fi
  return 0
}

# in_container FILE PATTERN COMMAND...: COMMAND's output matches PATTERN.
matches() {
  local pattern=$1
  shift
  local out
  out=$("$@" 2>&1)
  if grep -qE -- "$pattern" <<<"$out"; then return 0; fi
  echo "wanted /$pattern/, got: $out"
  return 1
}

exits_with() {
  local want=$1
  shift
  "$@" >/dev/null 2>&1
  local got=$?
  [ "$got" = "$want" ] || { echo "exit status $got, wanted $want"; return 1; }
}

# Runs an interactive session in a pseudo-terminal (script(1)), typing
# INPUT; passes when the output matches PATTERN.
interactive() {
  local input=$1 pattern=$2
  shift 2
  local out
  out=$(printf '%s' "$input" | script -qec "$*" /dev/null 2>&1 | tr -d '\r')
  grep -qE -- "$pattern" <<<"$out" || { echo "wanted /$pattern/, got: $out"; return 1; }
}

takes_seconds() {
  local min=$1 max=$2
  shift 2
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || return 1
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v lo="$min" -v hi="$max" 'BEGIN { d = e - s; if (d < lo || d > hi) { print "took " d "s"; exit 1 } }'
}

# The host's bounding set: with capabilities missing, --privileged cannot
# work under any runtime (runc fails the same way).
full_bounding_set() {
  local bnd last
  bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
  last=$(cat /proc/sys/kernel/cap_last_cap)
  [ "$((16#$bnd))" = "$(((1 << (last + 1)) - 1))" ]
}

# The scenarios podman and docker share; $E is the engine command,
# $RUN its run command with berth as the runtime, $IMG the busybox image.
common_scenarios() {
  local name=$1 state=$2
  check "$name" "run: output and exit status" matches '^hello$' $RUN --rm "$IMG" echo hello
  check "$name" "run: exit status 3" exits_with 3 $RUN --rm "$IMG" sh -c 'exit 3'
  check "$name" "run: missing command is 127 with berth's message" \
    matches 'executable file not found' $RUN --rm "$IMG" no-such-command
  check "$name" "run: missing command exit status" exits_with 127 $RUN --rm "$IMG" no-such-command
  check "$name" "detached run" $RUN -d --name bg "$IMG" sh -c 'echo started; sleep 300'
  check "$name" "exec: output and status" exits_with 4 $E exec bg sh -c 'exit 4'
  check "$name" "exec: joins the container" matches '^bg-pid-[0-9]+$' $E exec bg sh -c 'echo bg-pid-$$'
  check "$name" "logs" matches '^started$' $E logs bg
  check "$name" "pause" matches 'paused' sh -c "$E pause bg >/dev/null && $E inspect -f '{{.State.Status}}' bg"
  check "$name" "unpause" matches 'running' sh -c "$E unpause bg >/dev/null && $E inspect -f '{{.State.Status}}' bg"
  check "$name" "top (ps)" matches 'sleep 300' $E top bg
  check "$name" "stats" matches 'bg' $E stats --no-stream bg
  check "$name" "inspect" matches 'running' $E inspect -f '{{.State.Status}}' bg
  check "$name" "update memory" matches '^100663296$' sh -c \
    "$E update --memory 96m --memory-swap 192m bg >/dev/null && $E exec bg cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
  check "$name" "stop: KILL after the timeout" takes_seconds 1.5 15 $E stop -t 2 bg
  check "$name" "rm" $E rm bg
  check "$name" "stop: a process that takes SIGTERM exits at once" takes_seconds 0 3 sh -c \
    "$RUN -d --name term $IMG sh -c 'trap \"exit 0\" TERM; while true; do sleep 0.1; done' >/dev/null && sleep 1 && $E stop -t 20 term && $E rm term"
  check "$name" "kill" sh -c "$RUN -d --name kk $IMG sleep 300 >/dev/null && $E kill kk >/dev/null && $E rm kk"
  check "$name" "memory, pids and cpu limits" matches '^67108864 50 50000$' $RUN --rm --memory 64m --pids-limit 50 --cpus 0.5 "$IMG" \
    sh -c 'echo $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us)'
  check "$name" "read-only rootfs" matches 'Read-only file system' $RUN --rm --read-only "$IMG" touch /x
  check "$name" "bind mount" matches '^from-host$' $RUN --rm -v "$work/vol:/data" "$IMG" cat /data/file
  check "$name" "named volume keeps data" matches '^kept$' sh -c \
    "$E volume create vol1 >/dev/null && $RUN --rm -v vol1:/v $IMG sh -c 'echo kept > /v/f' && $RUN --rm -v vol1:/v $IMG cat /v/f && $E volume rm vol1 >/dev/null"
  check "$name" "tmpfs" matches 'tmpfs' $RUN --rm --tmpfs /scratch "$IMG" sh -c 'grep " /scratch " /proc/self/mounts'
  check "$name" "--user" matches '^uid=1000[^ ]* gid=1000' $RUN --rm --user 1000:1000 "$IMG" id
  check "$name" "cap-drop all, cap-add one" matches 'CapEff:\s+0000000000001000' $RUN --rm --cap-drop all --cap-add NET_ADMIN "$IMG" grep CapEff /proc/self/status
  if [ "$name" = podman ] || full_bounding_set; then
    check "$name" "--privileged" matches 'CapEff:\s+000001f' $RUN --rm --privileged "$IMG" grep CapEff /proc/self/status
  else
    echo "SKIP $name --privileged: this host's bounding set lacks capabilities docker asks for (runc fails too)"
  fi
  check "$name" "no-new-privileges" matches 'NoNewPrivs:\s+1' $RUN --rm --security-opt no-new-privileges "$IMG" grep NoNewPrivs /proc/self/status
  check "$name" "env and workdir" matches '^bar /tmp$' $RUN --rm -e FOO=bar -w /tmp "$IMG" sh -c 'echo $FOO $(pwd)'
  check "$name" "-it: interactive terminal" interactive $'tty; echo typed-$((6*7)); exit 5\n' 'typed-42' $RUN --rm -it "$IMG" sh
  $RUN -d --name tty "$IMG" sleep 300 >/dev/null 2>&1
  check "$name" "exec -it" interactive $'tty; exit\n' '/dev/pts/' $E exec -it tty sh
  $E rm -f tty >/dev/null 2>&1
  check "$name" "restart on failure" matches '^2$' sh -c \
    "$RUN -d --name rs --restart on-failure:2 $IMG sh -c 'exit 1' >/dev/null; sleep 5; $E inspect -f '{{.RestartCount}}' rs; $E rm -f rs >/dev/null"
  check "$name" "many containers at once" matches '^10$' sh -c \
    "for i in \$(seq 10); do $RUN -d --name many\$i $IMG sleep 300 >/dev/null & done; wait; $E ps --format '{{.Names}}' | grep -c '^many'; for i in \$(seq 10); do $E rm -f many\$i >/dev/null & done; wait"
  if [ "$debian" = 1 ]; then
    check "$name" "Debian minbase image" matches '^debian 12' $RUN --rm "$DEBIAN_IMG" sh -c '. /etc/os-release; echo $ID $VERSION_ID; apt-get --version | head -1'
  fi
  check "$name" "rm leaves nothing" no_leftovers "$state"
}

mkdir -p "$work/vol" && echo from-host >"$work/vol/file"

run_podman() {
  local root=$work/podman
  mkdir -p "$root"
  cat >"$root/containers.conf" <<EOF
[containers]
default_ulimits = []
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF=$root/containers.conf
  E="podman --root $root/storage --runroot $root/run --tmpdir $root/tmp --runtime $BERTH"
  RUN="$E run"
  IMG=localhost/busybox:berth
  DEBIAN_IMG=localhost/debian:berth
  $E import "$work/busybox.tar" "$IMG" >/dev/null || { echo "FAIL podman image import"; failed=$((failed + 1)); return; }
  [ "$debian" = 1 ] && $E import "$work/debian.tar" "$DEBIAN_IMG" >/dev/null
  common_scenarios podman /run/berth
  check podman "pod with an infra container" sh -c \
    "$E pod create --name p --infra-image $IMG --infra-command 'sleep 300' >/dev/null && $RUN --rm --pod p $IMG true && $E pod rm -f p >/dev/null"
  $E rm -af >/dev/null 2>&1
  $E system reset -f >/dev/null 2>&1
  unset CONTAINERS_CONF
}

run_docker() {
  local root=$work/docker
  mkdir -p "$root/data" "$root/exec"
  dockerd --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
    -H "unix://$root/docker.sock" --add-runtime "berth=$BERTH" \
    --bridge=none --iptables=false --ip-masq=false --ip6tables=false >"$root/dockerd.log" 2>&1 &
  pids+=($!)
  local client=docker
  [ -x /usr/bin/docker ] && client=/usr/bin/docker
  E="$client -H unix://$root/docker.sock"
  for _ in $(seq 60); do $E version >/dev/null 2>&1 && break; sleep 0.5; done
  check docker "dockerd runs berth (docker info)" matches 'berth' $E info --format '{{json .Runtimes}}'
  RUN="$E run --runtime berth"
  IMG=busybox:berth
  DEBIAN_IMG=debian:berth
  $E import "$work/busybox.tar" "$IMG" >/dev/null || { echo "FAIL docker image import"; failed=$((failed + 1)); return; }
  [ "$debian" = 1 ] && $E import "$work/debian.tar" "$DEBIAN_IMG" >/dev/null
  common_scenarios docker "$root/exec/runtime-berth/moby"
  $E rm -f $($E ps -aq) >/dev/null 2>&1
}

run_containerd() {
  local root=$work/containerd
  mkdir -p "$root"
  cat >"$root/config.toml" <<EOF
version = 2
root = "$root/root"
state = "$root/state"
[grpc]
  address = "$root/containerd.sock"
EOF
  containerd --config "$root/config.toml" >"$root/containerd.log" 2>&1 &
  pids+=($!)
  local C="ctr --address $root/containerd.sock -n berth"
  for _ in $(seq 60); do $C version >/dev/null 2>&1 && break; sleep 0.5; done
  # An OCI archive of the busybox image, as ctr imports images.
  export CONTAINERS_CONF=/dev/null
  local p="podman --root $work/oci/storage --runroot $work/oci/run"
  $p import -q "$work/busybox.tar" localhost/busybox:berth >/dev/null 2>&1 &&
    $p save -q --format oci-archive -o "$work/busybox-oci.tar" localhost/busybox:berth >/dev/null 2>&1
  $p system reset -f >/dev/null 2>&1
  unset CONTAINERS_CONF
  $C images import --base-name localhost/busybox "$work/busybox-oci.tar" >/dev/null ||
    { echo "FAIL containerd image import"; failed=$((failed + 1)); return; }
  local img=localhost/busybox:berth run="$C run --runc-binary $BERTH"
  check containerd "run: output" matches '^hello$' $run --rm "$img" c1 echo hello
  check containerd "run: exit status 3" exits_with 3 $run --rm "$img" c2 sh -c 'exit 3'
  check containerd "detached run" $run -d "$img" bg sleep 300
  check containerd "exec" exits_with 4 $C task exec --exec-id e1 bg sh -c 'exit 4'
  check containerd "pause" matches 'PAUSED' sh -c "$C task pause bg && $C task ls"
  check containerd "resume" matches 'RUNNING' sh -c "$C task resume bg && $C task ls"
  check containerd "ps" matches '[0-9]' $C task ps bg
  check containerd "memory limit in cgroupsPath /<namespace>/<id>" matches '^67108864$' sh -c \
    "$run -d --memory-limit 67108864 $img lim sleep 300 >/dev/null && cat /sys/fs/cgroup/memory/berth/lim/memory.limit_in_bytes"
  check containerd "kill --all and delete (ctr task rm -f)" sh -c "$C task rm -f bg >/dev/null && $C task rm -f lim >/dev/null && $C container rm bg lim"
  check containerd "-t: interactive terminal" interactive $'tty; exit 7\n' '/dev/pts/' $run --rm -t "$img" c3 sh
  check containerd "rm leaves nothing" no_leftovers "$root/state/io.containerd.runtime.v2.task/berth"
}

for engine in "${engines[@]}"; do
  case $engine in
    podman) run_podman ;;
    docker) run_docker ;;
    containerd) run_containerd ;;
    *) echo "engines: unknown engine $engine" >&2; exit 2 ;;
  esac
done

echo "engines: $passed passed, $failed failed"
for f in "${failures[@]}"; do echo "  failed: $f"; done
[ "$failed" = 0 ]
