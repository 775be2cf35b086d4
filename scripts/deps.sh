#!/bin/sh
# deps.sh: installs the Debian packages berth builds and tests with, when
# they are missing: libseccomp (linked by berth), busybox-static (the
# rootfs of the demo and the tests), pkg-config, uidmap (newuidmap and
# newgidmap, for rootless containers with several id ranges), and what
# bench/run.sh uses (hyperfine, GNU time, file), dbus-daemon (the
# systemd driver's D-Bus client is tested against one), and strace (it
# stops berth's init inside a mount's race window in security.rs).
set -eu
missing=""
for pkg in libseccomp-dev pkg-config busybox-static uidmap hyperfine time file dbus-daemon strace; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: need root to install:$missing" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
