#!/usr/bin/env bash
# tests/vm/image.sh: builds, once, the Debian 12 disk image that
# tests/vm/run.sh boots, and prints the cache directory holding it. As root.
#
#   BERTH_VM_CACHE=DIR   where the image lives (default /var/cache/berth-vm)
#
# The image is a systemd host the way engines meet one: systemd as pid 1,
# pure cgroup v2 (the kernel command line picks), Debian's kernel 6.1, and
# the engines, runc and the tools the tests use. DIR ends up with rootfs.img
# (ext4), vmlinuz and initrd.img beside it, and a stamp: the hash of this
# file. A changed file (package list, guest setup) rebuilds; otherwise the
# image is reused. Debian's mirror is read from the host's apt sources.
set -euo pipefail

cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}
self=$(readlink -f "$0")

# debootstrap --variant=minbase resolves dependencies but neither virtual
# packages nor recommendations, so everything needed is named here.
packages=(
  # the machine: systemd as pid 1, logind and user managers, the bus
  systemd systemd-sysv systemd-container udev kmod dbus dbus-user-session
  libpam-systemd linux-image-amd64 initramfs-tools zstd
  # what containers are made of and run with
  busybox-static libseccomp2 uidmap criu apparmor iproute2 procps
  # the engines and the runtime to compare with
  podman containernetworking-plugins conmon slirp4netns fuse-overlayfs
  catatonit docker.io containerd runc
  # benchmarks and the CRI tests
  hyperfine python3 python3-grpcio python3-protobuf
)

log() { echo "vm image: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (debootstrap and mkfs need it)"
  exit 1
fi

stamp=$(sha256sum "$self" | cut -d' ' -f1)
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] &&
   [ -f "$cache/rootfs.img" ] && [ -f "$cache/vmlinuz" ] && [ -f "$cache/initrd.img" ]; then
  echo "$cache"
  exit 0
fi

# The first Debian mirror in apt's sources that serves bookworm: deb822
# files (sources.list.d/*.sources) and one-line ones (sources.list, *.list).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() { if (deb && suite && uri != "") { print uri; exit } deb = suite = 0; uri = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && $3 == "bookworm" { print $2 }'
  done
}
mirror=$(debian_mirror | head -n1)
if [ -z "$mirror" ]; then
  log "no Debian bookworm mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/"
  exit 1
fi

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

started=$SECONDS
log "building the Debian 12 image in $cache from $mirror (a few minutes, once)"
work=$(mktemp -d "$cache/build.XXXXXX")
root=$work/root
# debootstrap mounts /proc and /sys inside the root while it configures; a
# failure can leave them, so unmount whatever lies under the root before
# removing it, and never let rm cross into another file system.
cleanup() {
  local mnt
  for mnt in $(awk -v root="$root" 'index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$mnt" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

include=$(IFS=,; echo "${packages[*]}")
# The downloaded packages are kept: a rebuild does not fetch them again.
mkdir -p "$cache/debs"
if ! debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$include" \
    bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
  cp "$work/debootstrap.log" "$cache/debootstrap.log"
  tail -n 20 "$cache/debootstrap.log" >&2
  log "debootstrap failed; its log: $cache/debootstrap.log"
  exit 1
fi

# --- the guest's configuration ---------------------------------------------

echo berth-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-vm\n::1 localhost\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 0' >"$root/etc/fstab"
# A fixed machine id: an empty one makes every boot a "first boot".
rm -f "$root/etc/machine-id"
systemd-machine-id-setup --root="$root" >/dev/null 2>&1

# 9p for the shared tree, overlay for the engines, fw_cfg for the job.
printf '%s\n' 9p 9pnet_virtio overlay qemu_fw_cfg >"$root/etc/modules-load.d/berth-vm.conf"

# The unprivileged user of the rootless tests, with a user manager that
# starts at boot (lingering) and id ranges for its user namespaces.
chroot "$root" useradd --create-home --uid 1000 --shell /bin/bash tester
echo 'tester:100000:65536' >"$root/etc/subuid"
echo 'tester:100000:65536' >"$root/etc/subgid"
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/tester"

# A fast, quiet boot: nothing periodic, no login prompts, no AppArmor
# profiles loaded at boot (15 s without KVM; Docker loads its own), and
# the engines' daemons left for the tests to start.
systemctl --root="$root" set-default --quiet multi-user.target
systemctl --root="$root" mask --quiet \
  apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer logrotate.timer dpkg-db-backup.timer \
  systemd-tmpfiles-clean.timer getty.target serial-getty@.service getty@.service \
  console-getty.service systemd-timesyncd.service apparmor.service systemd-pstore.service
for unit in docker.service docker.socket containerd.service podman.service podman.socket \
  podman-auto-update.service podman-auto-update.timer podman-restart.service \
  podman-clean-transient.service; do
  if [ -e "$root/lib/systemd/system/$unit" ]; then
    systemctl --root="$root" disable --quiet "$unit"
  fi
done
# Modules udev would load for the emulated CPU and board: their crypto
# self-tests cost seconds without KVM, and no test needs them.
cat >"$root/etc/modprobe.d/berth-vm.conf" <<'BLACKLIST'
blacklist pcspkr
blacklist kvm
blacklist kvm_amd
blacklist kvm_intel
blacklist aesni_intel
blacklist ghash_clmulni_intel
blacklist polyval_clmulni
blacklist sha1_ssse3
blacklist sha256_ssse3
blacklist sha512_ssse3
blacklist crc32_pclmul
blacklist crct10dif_pclmul
BLACKLIST
# An initramfs with only what mounts the root: a third of the size, and
# seconds less to unpack.
echo 'MODULES=list' >"$root/etc/initramfs-tools/conf.d/berth-vm.conf"
printf '%s\n' virtio_pci virtio_blk ext4 >>"$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1 ||
  { cat "$work/initramfs.log" >&2; log "update-initramfs failed"; exit 1; }

# The runner: once the system is up, it runs the job run.sh handed over
# through fw_cfg with stdout and stderr on two virtio consoles, reports
# the exit status on a third and powers off.
cat >"$root/usr/local/sbin/berth-vm-run" <<'RUNNER'
#!/bin/bash
# Started by berth-vm-run.service; see tests/vm/run.sh.
job=/sys/firmware/qemu_fw_cfg/by_name/opt/berth/job/raw
if ! exec 3>/dev/hvc0 4>/dev/hvc1 5>/dev/hvc2; then
  echo "berth-vm: no consoles to report on; powering off" >&2
  systemctl poweroff --force
fi
for fd in 3 4 5; do stty raw -echo <&$fd; done
state=$(systemctl is-system-running --wait)
echo "started $state" >&5
if [ "$state" != running ] && [ "$state" != degraded ]; then
  echo "berth-vm: the guest did not boot cleanly (systemd: $state)" >&4
  systemctl --failed --no-pager >&4
  rc=125
elif [ ! -r "$job" ]; then
  echo "berth-vm: no job from the host at $job" >&4
  rc=125
else
  # Pipes, not the consoles, so that the job sees what it would see under
  # a caller's pipe; a clean environment, and a session of its own.
  mkdir -p /run/berth-vm
  cp "$job" /run/berth-vm/job
  mkfifo /run/berth-vm/stdout /run/berth-vm/stderr
  cat </run/berth-vm/stdout >&3 &
  copy_out=$!
  cat </run/berth-vm/stderr >&4 &
  copy_err=$!
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb \
    setsid --wait bash /run/berth-vm/job </dev/null >/run/berth-vm/stdout 2>/run/berth-vm/stderr \
    3>&- 4>&- 5>&-
  rc=$?
  # A daemon the job left behind may hold its output open: give the
  # copies a moment to drain, then stop waiting for them.
  for _ in $(seq 50); do
    kill -0 $copy_out 2>/dev/null || kill -0 $copy_err 2>/dev/null || break
    sleep 0.1
  done
  kill $copy_out $copy_err 2>/dev/null
  wait $copy_out $copy_err 2>/dev/null
fi
echo "exit $rc" >&5
systemctl poweroff --force
RUNNER
chmod 755 "$root/usr/local/sbin/berth-vm-run"
cat >"$root/etc/systemd/system/berth-vm-run.service" <<'UNIT'
[Unit]
Description=Run the job tests/vm/run.sh gave this guest
After=multi-user.target

[Service]
# simple, not oneshot: the boot must finish before the job starts.
Type=simple
ExecStart=/usr/local/sbin/berth-vm-run
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$root" enable --quiet berth-vm-run.service

# Kernel and initramfs beside the image; the image has headroom for
# bundles, engine images and test output (writes go to qemu's snapshot).
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
used_mib=$(du -sm --one-file-system "$root" | cut -f1)
truncate -s "$((used_mib + 6144))M" "$work/rootfs.img"
mkfs.ext4 -q -F -L berth-vm -d "$root" "$work/rootfs.img"

mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$cache/"
echo "$stamp" >"$cache/stamp"
log "built in $((SECONDS - started)) s: $cache/rootfs.img ($(du -h --apparent-size "$cache/rootfs.img" | cut -f1), ${used_mib} MiB used)"
echo "$cache"
