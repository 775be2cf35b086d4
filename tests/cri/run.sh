#!/usr/bin/env bash
# tests/cri/run.sh: drives berth as Kubernetes does, through containerd's
# CRI plugin and the runc v2 shim, with a small CRI client
# (tests/cri/cri_test.py) in kubelet's place. As root. It installs what it
# needs from Debian (containerd 1.6, python3-grpcio, python3-protobuf,
# protoc, busybox-static), starts a private containerd (own root, state,
# socket and shim root under a temp dir) whose runtime handler `berth` is
# the runc v2 shim with BinaryName = berth, builds the busybox and pause
# images as OCI archives and imports them, runs the pod scenarios (one
# PASS/FAIL line each, then `N passed, N failed`) and removes all it made,
# on failure too. Pods use the host's network, so no CNI is needed.
#
#   BERTH=path/to/runtime   the runtime under test (default target/debug/berth;
#                           /usr/sbin/runc gives the reference)
#   CRI_SYSTEMD=1           containerd's SystemdCgroup = true (on a systemd host):
#                           the runtime gets --systemd-cgroup, pods sit in slices
#   CRI_GENERATED=DIR       cri_pb2.py generated beforehand (protoc --python_out)
#                           for a machine that lacks protoc and a network
#   CRI_SHOW_LOG=N          print the last N errors and warnings of containerd's
#                           log (the last 20 are printed on any failure)
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
BERTH=$(readlink -f "${BERTH:-$repo/target/debug/berth}")

if [ "$(id -u)" != 0 ]; then
  echo "cri: run as root" >&2
  exit 1
fi
[ -x "$BERTH" ] || { echo "cri: no runtime at $BERTH (cargo build first)" >&2; exit 1; }

need=()
packages=(containerd python3-grpcio python3-protobuf busybox-static)
[ -z "${CRI_GENERATED:-}" ] && packages+=(protobuf-compiler)
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    { echo "cri: could not install ${need[*]}" >&2; exit 1; }
fi
# Debian's python, which the packages above are installed for.
python=/usr/bin/python3

work=$(mktemp -d /tmp/berth-cri.XXXXXX)
containerd_pid=
# containerd keeps its shims' sockets in /run/containerd/s whatever its
# state dir; a shim killed below leaves its socket there.
shim_sockets_before=$(ls /run/containerd/s 2>/dev/null)
had_run_containerd=0
[ -e /run/containerd ] && had_run_containerd=1
cgroups_before=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d | sort)
cleanup() {
  if [ -n "$containerd_pid" ]; then
    kill "$containerd_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$containerd_pid" 2>/dev/null
  fi
  # Shims of this containerd (their command line names its socket), then
  # what they left to the runtime.
  for pid in $(pgrep -f -- "-address $work/containerd.sock"); do kill -9 "$pid" 2>/dev/null; done
  local root=$work/runtime-root/k8s.io
  if [ -d "$root" ]; then
    for id in $(ls "$root"); do "$BERTH" --root "$root" delete --force "$id" >/dev/null 2>&1; done
  fi
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
  # The cgroups this run brought, and what a runtime left running in them
  # (a container of the host's pid namespace outlives its state).
  local cgroups
  cgroups=$(comm -13 <(echo "$cgroups_before") <(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d | sort) | sort -r)
  for dir in $cgroups; do
    for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for dir in $cgroups; do
    for _ in $(seq 50); do rmdir "$dir" 2>/dev/null && break; [ -d "$dir" ] || break; sleep 0.1; done
  done
  for socket in $(comm -13 <(echo "$shim_sockets_before") <(ls /run/containerd/s 2>/dev/null)); do
    rm -f "/run/containerd/s/$socket"
  done
  [ "$had_run_containerd" = 0 ] && [ -d /run/containerd ] &&
    find /run/containerd -depth -type d -empty -delete 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The images: busybox, and a pause image (busybox's sleep) for the sandboxes.
"$repo/scripts/mkrootfs.sh" "$work/busybox" >/dev/null || exit 1
tar -C "$work/busybox" -cf "$work/layer.tar" . && rm -rf "$work/busybox"
$python "$repo/tests/cri/oci_archive.py" "$work/layer.tar" "$work/busybox.tar" localhost/busybox:cri &&
  $python "$repo/tests/cri/oci_archive.py" "$work/layer.tar" "$work/pause.tar" localhost/pause:cri /bin/sleep infinity ||
  exit 1
rm -f "$work/layer.tar"

# The CRI client's messages, generated from the test's own .proto.
generated=${CRI_GENERATED:-$work/gen}
if [ -z "${CRI_GENERATED:-}" ]; then
  mkdir -p "$generated"
  protoc -I "$repo/tests/cri" --python_out="$generated" "$repo/tests/cri/cri.proto" || exit 1
fi
systemd_cgroup=false
[ -n "${CRI_SYSTEMD:-}" ] && systemd_cgroup=true

mkdir -p "$work/cni"
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:cri"
  # The sandbox asks for oom_score_adj -998; without CAP_SYS_RESOURCE it
  # cannot be lowered below containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$work/cni"
    conf_dir = "$work/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "berth"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        BinaryName = "$BERTH"
        Root = "$work/runtime-root"
        SystemdCgroup = $systemd_cgroup
EOF
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
C="ctr --address $work/containerd.sock -n k8s.io"
for _ in $(seq 100); do $C version >/dev/null 2>&1 && break; sleep 0.2; done
$C version >/dev/null 2>&1 || { echo "cri: containerd did not start:"; tail -20 "$work/containerd.log"; exit 1; }
for image in busybox pause; do
  $C images import "$work/$image.tar" >/dev/null || { echo "cri: could not import the $image image"; exit 1; }
done

start=$(date +%s)
PYTHONPATH="$generated" CRI_SYSTEMD="$systemd_cgroup" CRI_SOCKET="$work/containerd.sock" CRI_HANDLER=berth CRI_WORK="$work" \
  CRI_RUNTIME="$BERTH" CRI_RUNTIME_ROOT="$work/runtime-root/k8s.io" \
  $python "$repo/tests/cri/cri_test.py"
status=$?
echo "cri: $(($(date +%s) - start))s with $BERTH"
if [ "$status" != 0 ] || [ -n "${CRI_SHOW_LOG:-}" ]; then
  echo "cri: containerd's errors and warnings:"
  grep -E 'level=(error|warning)' "$work/containerd.log" | tail -"${CRI_SHOW_LOG:-20}" | sed 's/^/    /'
fi
exit "$status"
