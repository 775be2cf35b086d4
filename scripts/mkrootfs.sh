#!/bin/sh
# mkrootfs.sh DIR: builds a minimal busybox rootfs in DIR from Debian's
# busybox-static: one static binary, a symlink per applet, /etc/passwd and
# /etc/group, and the empty directories a container expects.
set -eu
dir=${1:?usage: mkrootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1 ||
   ! LC_ALL=C ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable'; then
  echo "mkrootfs.sh: $busybox is not a static busybox (install Debian's busybox-static)" >&2
  exit 1
fi
mkdir -p "$dir/bin" "$dir/etc" "$dir/dev" "$dir/proc" "$dir/sys" "$dir/tmp" "$dir/root"
chmod 1777 "$dir/tmp"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
ln -sfn bin "$dir/sbin"
mkdir -p "$dir/usr"
ln -sfn ../bin "$dir/usr/bin"
cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$dir/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
