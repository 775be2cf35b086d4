#!/usr/bin/env bash
# tests/runc-suite/run.sh RUNC_CHECKOUT [FILE.bats...]: runs runc's own
# integration tests (RUNC_CHECKOUT/tests/integration, bats) against berth,
# one file at a time under /tmp/berth-test.lock, and prints a line per file
# with its passes. It fetches nothing: give it a checkout of runc.
#
# What the suite needs and this host may lack is made here, in the checkout:
#  - testdata/busybox-<arch>.tar.xz, from scripts/mkrootfs.sh (Debian's
#    busybox-static) instead of the image the suite would download; the
#    Debian image is stood in for by the same busybox (tests that need Debian
#    fail with runc too);
#  - tests/cmd/_bin/{recvtty,pidfd-kill,remap-rootfs}: the stand-ins in bin/
#    when they were not built from runc's sources (which need a newer Go).
# bats, jq, gawk and script (util-linux) must be installed. The tests run
# under `script`, so that a foreground container has a terminal, as in
# runc's CI.
#
# Environment: BERTH (default target/release/berth), RUNC_SUITE_OUT (where
# the TAP files go; default target/runc-suite), RUNC_SUITE_TIMEOUT (seconds
# a file may take; default 300).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
checkout=$(cd "${1:?usage: run.sh RUNC_CHECKOUT [FILE.bats...]}" && pwd)
shift
suite=$checkout/tests/integration
[ -f "$suite/helpers.bash" ] || { echo "run.sh: $suite/helpers.bash is missing: not a runc checkout" >&2; exit 1; }
for tool in bats jq gawk script; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 1; }
done
berth=$(realpath "${BERTH:-$repo/target/release/berth}")
[ -x "$berth" ] || { echo "run.sh: no berth at $berth (cargo build --release)" >&2; exit 1; }
out=${RUNC_SUITE_OUT:-$repo/target/runc-suite}
mkdir -p "$out"

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
busybox_image=$suite/testdata/busybox-$arch.tar.xz
if [ ! -e "$busybox_image" ]; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  "$repo/scripts/mkrootfs.sh" "$rootfs"
  chmod 755 "$rootfs" # mktemp made it 0700, and the image's / is entered by non-root users too
  tar -C "$rootfs" -cJf "$busybox_image" .
fi
[ -e "$suite/testdata/debian-$arch.tar.xz" ] || cp "$busybox_image" "$suite/testdata/debian-$arch.tar.xz"
mkdir -p "$checkout/tests/cmd/_bin"
for helper in recvtty pidfd-kill remap-rootfs; do
  [ -x "$checkout/tests/cmd/_bin/$helper" ] || cp "$here/bin/$helper" "$checkout/tests/cmd/_bin/"
done

cd "$suite"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(*.bats)
for file in "${files[@]}"; do
  name=$(basename "$file" .bats)
  tap=$out/$name.tap
  RUNC=$berth flock /tmp/berth-test.lock \
    timeout -k 10 "${RUNC_SUITE_TIMEOUT:-300}" \
    script -qefc "bats -T --tap $name.bats" /dev/null </dev/null | tr -d '\r' >"$tap" || true
  passed=$(grep '^ok' "$tap" | grep -vc '# skip' || true)
  failed=$(grep -c '^not ok' "$tap" || true)
  skipped=$(grep -c '^ok.*# skip' "$tap" || true)
  echo "$name: $passed passed, $failed failed, $skipped skipped"
done
