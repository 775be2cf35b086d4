#!/usr/bin/env bash
# tests/vm/bench.sh [RUNS]: times `run` of /bin/true in the systemd machine
# of tests/vm/run.sh (systemd as pid 1, pure cgroup v2), in one hyperfine
# run: berth --systemd-cgroup, runc --systemd-cgroup (Debian's), and berth
# with its cgroupfs driver. As root on the host, after `cargo build
# --release`. Prints hyperfine's markdown table (for BENCHMARKS.md) and
# leaves it in target/vm-bench/run.md. RUNS defaults to 100. The guest is
# emulated unless KVM works here, so compare the rows, not the absolute
# times, with numbers taken on a real host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

if [ "${1-}" != --in-guest ]; then
  berth=$repo/target/release/berth
  [ -x "$berth" ] || { echo "bench: no $berth (cargo build --release first)" >&2; exit 1; }
  mkdir -p "$repo/target/vm-bench"
  exec "$here/run.sh" -- "$here/bench.sh" --in-guest "$berth" "${1:-100}" "$repo/target/vm-bench"
fi

runs=$3 out=$4
# A copy on the guest's own disk, as runc is: run from the 9p share, every
# exec of berth (and its sealed copy of itself) reads the binary over 9p.
install -m 755 "$2" /usr/local/bin/berth
berth=/usr/local/bin/berth
# State and bundle on a tmpfs of their own, as /run is on real hosts
# (the guest's /run itself is noexec).
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
mount -t tmpfs tmpfs "$work"
"$repo/scripts/mkrootfs.sh" "$work/rootfs" >/dev/null
(cd "$work" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' "$work/config.json"
grep -q '"/bin/true"' "$work/config.json" || { echo "bench: could not make the bundle run /bin/true" >&2; exit 1; }

# No cgroupsPath: each runtime's default, system.slice/<runtime>-<id>.scope
# under systemd, /<id> with berth's cgroupfs driver.
hyperfine -N --warmup 5 --runs "$runs" --export-markdown "$out/run.md" \
  -n "berth --systemd-cgroup" "$berth --root $work/berth --systemd-cgroup run -b $work bench-sd" \
  -n "runc --systemd-cgroup" "runc --root $work/runc --systemd-cgroup run -b $work bench-runc" \
  -n "berth (cgroupfs)" "$berth --root $work/berth run -b $work bench-fs"
echo
echo "guest: $(nproc) CPUs, kernel $(uname -r), $(systemctl --version | head -n1), $(runc --version | head -n1)"
cat "$out/run.md"
umount "$work"
rmdir "$work"
