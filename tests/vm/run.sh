#!/usr/bin/env bash
# tests/vm/run.sh [--] COMMAND [ARG...]: runs one command as root inside a
# booted Debian 12 machine with systemd as pid 1 and pure cgroup v2, and
# exits with the command's status. As root on the host.
#
#   tests/vm/run.sh -- sh -c 'systemctl status; cat /sys/fs/cgroup/cgroup.controllers'
#   tests/vm/run.sh -- target/release/berth --version
#
# The first run builds the image (tests/vm/image.sh, a few minutes) and
# caches it outside the tree; later runs boot it in about 20 s without
# KVM. The repository is shared over 9p and mounted in the guest at the
# same absolute path, so binaries built here (cargo's test binaries with
# their baked-in paths included) run there unchanged. The command runs
# once systemd reports the system up, in the caller's directory when that
# lies inside the repository (its root otherwise), with a clean PATH and
# HOME=/root, its stdout and stderr streamed here; then the guest powers
# off. Writes go to a throwaway snapshot: every run boots the same image.
#
# Inside: docker, containerd and podman are installed but stopped (start
# them with systemctl); runc, criu, hyperfine, busybox-static; user
# `tester` (uid 1000, subordinate ids 100000-165535) has a user manager
# running (lingering). No network.
#
#   BERTH_VM_CACHE=DIR      image, kernel, console log (default /var/cache/berth-vm)
#   BERTH_VM_CGROUP=v2      v2 (pure cgroup v2, the default), hybrid (or v1:
#                           systemd.unified_cgroup_hierarchy=0), legacy
#   BERTH_VM_TIMEOUT=3600   seconds before a hung guest is killed (exit 124)
#   BERTH_VM_BOOT_TIMEOUT=300  the same, for the boot up to the command
#   BERTH_VM_ACCEL=auto     kvm, tcg, or auto: KVM when a probe shows that it
#                           works (the verdict is cached in the cache dir)
#   BERTH_VM_SHARE=DIR:DIR  more host directories to mount at the same path
#   BERTH_VM_MEMORY=3072 BERTH_VM_CPUS=2 BERTH_VM_APPEND='kernel args'
#
# Exit status: the command's; 124 when the guest timed out; 125 when the
# machine itself failed (then the console log's path is printed).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
[ "${1-}" = -- ] && shift
[ $# -gt 0 ] || usage
case $1 in -h | --help) usage ;; esac

fail() { echo "vm: $*" >&2; exit 125; }
[ "$(id -u)" = 0 ] || fail "run as root (9p passthrough and the image build need it)"

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
timeout=${BERTH_VM_TIMEOUT:-3600}
boot_timeout=${BERTH_VM_BOOT_TIMEOUT:-300}

case ${BERTH_VM_CGROUP:-v2} in
  v2 | unified) cgroup_args="systemd.unified_cgroup_hierarchy=1" ;;
  v1 | hybrid) cgroup_args="systemd.unified_cgroup_hierarchy=0" ;;
  legacy) cgroup_args="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
  *) fail "BERTH_VM_CGROUP=${BERTH_VM_CGROUP}: want v2, hybrid (v1) or legacy" ;;
esac

cache=$("$here/image.sh")

if ! command -v qemu-system-x86_64 >/dev/null; then
  # Alone: asked together with qemu-utils, apt fails on hosts that carry
  # a newer qemu-utils than Debian's qemu-system-x86.
  echo "vm: installing qemu-system-x86" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 >/dev/null
fi

# One machine at a time on this host: the guests are CPU-bound.
exec 8>"$cache/run.lock"
if ! flock -n 8; then
  echo "vm: waiting for another run to finish ($cache/run.lock)" >&2
  flock 8
fi

work=$(mktemp -d /tmp/berth-vm.XXXXXX)
qemu_pid=""
copy_pids=()
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  exec 6>&- 7>&-
  [ ${#copy_pids[@]} -gt 0 ] && wait "${copy_pids[@]}" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# KVM only where a guest really runs under it: on some hosts (nested
# virtualisation) /dev/kvm is there but qemu aborts setting up the CPU or
# the guest stops right after the kernel is decompressed. A kernel with no
# root to mount panics within a second or two under KVM; the verdict is
# kept per host kernel and qemu version.
kvm_works() {
  [ -c /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local key verdict
  key="$(uname -r) $(qemu-system-x86_64 --version | head -n1)"
  if [ -f "$cache/kvm-probe" ] && [ "$(sed -n 2p "$cache/kvm-probe")" = "$key" ]; then
    verdict=$(sed -n 1p "$cache/kvm-probe")
  else
    (timeout 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -no-user-config \
      -display none -nic none -no-reboot -serial "file:$work/probe.log" \
      -kernel "$cache/vmlinuz" -append "console=ttyS0 panic=-1") >/dev/null 2>&1 || true
    if grep -q 'Kernel panic' "$work/probe.log" 2>/dev/null; then verdict=kvm; else verdict=tcg; fi
    printf '%s\n%s\n' "$verdict" "$key" >"$cache/kvm-probe"
  fi
  [ "$verdict" = kvm ]
}
case ${BERTH_VM_ACCEL:-auto} in
  kvm) accel=(-accel kvm -cpu host) ;;
  tcg) accel=(-accel tcg -cpu max) ;;
  auto) if kvm_works; then accel=(-accel kvm -cpu host); else accel=(-accel tcg -cpu max); fi ;;
  *) fail "BERTH_VM_ACCEL=${BERTH_VM_ACCEL}: want kvm, tcg or auto" ;;
esac

# The directories to share, each mounted at its own path in the guest.
shares=("$repo")
IFS=: read -r -a extra <<<"${BERTH_VM_SHARE:-}"
for dir in "${extra[@]}"; do
  [ -n "$dir" ] || continue
  [ -d "$dir" ] || fail "BERTH_VM_SHARE: $dir is not a directory"
  shares+=("$(cd "$dir" && pwd -P)")
done
cwd=$repo
for dir in "${shares[@]}"; do
  case $(pwd -P)/ in "$dir"/*) cwd=$(pwd -P) ;; esac
done

# The job: mount the shares, enter the directory, run the command.
share_args=()
{
  for i in "${!shares[@]}"; do
    # qemu reads "," in an option value as ",,".
    share_args+=(-fsdev "local,id=share$i,path=${shares[$i]//,/,,},security_model=passthrough"
      -device "virtio-9p-pci,fsdev=share$i,mount_tag=berth$i")
    printf 'mkdir -p %q && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap berth%d %q ||\n' \
      "${shares[$i]}" "$i" "${shares[$i]}"
    printf '  { echo "vm: could not mount the host directory %q in the guest" >&2; exit 125; }\n' "${shares[$i]}"
  done
  printf 'cd %q || exit 125\n' "$cwd"
  printf 'exec'
  printf ' %q' "$@"
  echo
} >"$work/job"

# The command's output comes back on two virtio consoles, each written
# into a FIFO that a copy drains to our stdout or stderr. This script
# holds each FIFO open too, so that no open blocks and each copy ends
# when we let go after qemu has exited.
mkfifo "$work/stdout" "$work/stderr"
exec 6<>"$work/stdout" 7<>"$work/stderr"
cat <"$work/stdout" 6>&- 7>&- 8>&- &
copy_pids+=($!)
cat <"$work/stderr" >&2 6>&- 7>&- 8>&- &
copy_pids+=($!)

console=$cache/console.log
: >"$work/status"
started=$SECONDS
qemu-system-x86_64 -name berth-vm "${accel[@]}" \
  -m "${BERTH_VM_MEMORY:-3072}" -smp "${BERTH_VM_CPUS:-2}" \
  -nodefaults -no-user-config -display none -nic none -no-reboot \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.getty_auto=0 $cgroup_args ${BERTH_VM_APPEND:-}" \
  -drive "file=$cache/rootfs.img,format=raw,if=virtio,snapshot=on" \
  -serial "file:$console" \
  -device virtio-serial-pci \
  -chardev "file,id=stdout,path=$work/stdout" -device virtconsole,chardev=stdout \
  -chardev "file,id=stderr,path=$work/stderr" -device virtconsole,chardev=stderr \
  -chardev "file,id=status,path=$work/status" -device virtconsole,chardev=status \
  "${share_args[@]}" \
  -fw_cfg "name=opt/berth/job,file=$work/job" \
  </dev/null >"$work/qemu.log" 2>&1 6>&- 7>&- 8>&- &
qemu_pid=$!

verdict=""
while kill -0 "$qemu_pid" 2>/dev/null; do
  sleep 0.5
  elapsed=$((SECONDS - started))
  if [ "$elapsed" -ge "$timeout" ]; then
    verdict="the guest ran past BERTH_VM_TIMEOUT=$timeout s; killed it"
    break
  fi
  if [ "$elapsed" -ge "$boot_timeout" ] && ! grep -q '^started' "$work/status"; then
    verdict="the guest did not come up within $boot_timeout s; killed it"
    break
  fi
done
if [ -n "$verdict" ]; then
  kill "$qemu_pid" 2>/dev/null
fi
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=""
exec 6>&- 7>&-
wait "${copy_pids[@]}" 2>/dev/null || true
copy_pids=()

if [ -n "$verdict" ]; then
  echo "vm: $verdict; console log: $console" >&2
  exit 124
fi
rc=$(sed -n 's/^exit \([0-9]\{1,\}\)$/\1/p' "$work/status")
if [ -z "$rc" ]; then
  cat "$work/qemu.log" >&2
  echo "vm: the guest gave no exit status (qemu exited $qemu_status); console log: $console" >&2
  exit 125
fi
if [ "$rc" != 0 ]; then
  echo "vm: the command exited $rc; console log: $console" >&2
fi
exit "$rc"
