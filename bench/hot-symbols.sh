#!/bin/bash
# bench/hot-symbols.sh [BERTH]: rewrites bench/hot-symbols.txt, the
# functions a static berth (default: scripts/build-static.sh's) executes
# for `run` of /bin/true and for create, start, state, exec, kill and
# delete, in the order first executed. scripts/build-static.sh hands the
# list to the linker, which puts those functions first and together in
# .text: the kernel maps code into a process 64 KiB around each page it
# faults, so scattered hot code makes nearly all of berth's text resident
# (BENCHMARKS.md, "Peak RSS"). Run it again when the symbol check of
# build-static.sh says the list has gone stale. Takes minutes: every
# instruction is single-stepped (bench/steptrace.c). As root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
berth=$(realpath "${1:-$("$repo/scripts/build-static.sh")}")

work=$(mktemp -d /tmp/berth-hot.XXXXXX)
root=$work/state
cleanup() {
  for id in $(ls "$root" 2>/dev/null); do
    "$berth" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

cc -O2 -Wall -o "$work/steptrace" "$here/steptrace.c"
bundle=$work/bundle
mkdir -p "$bundle" "$work/sleeper"
"$repo/scripts/mkrootfs.sh" "$bundle/rootfs" >/dev/null
# The config the benchmark uses (bench/run.sh).
if command -v runc >/dev/null; then
  (cd "$bundle" && runc spec)
else
  "$berth" spec --bundle "$bundle"
fi
python3 - "$bundle" "$work/sleeper" <<'EOF'
import json, sys
bundle, sleeper = sys.argv[1], sys.argv[2]
with open(f"{bundle}/config.json") as f:
    config = json.load(f)
config["process"]["terminal"] = False
config["process"]["args"] = ["/bin/true"]
with open(f"{bundle}/config.json", "w") as f:
    json.dump(config, f)
config["process"]["args"] = ["/bin/sleep", "60"]
config["root"]["path"] = f"{bundle}/rootfs"
with open(f"{sleeper}/config.json", "w") as f:
    json.dump(config, f)
EOF

# What the benchmark and the engines do most.
b="$berth --root $root"
cat >"$work/scenario.sh" <<SCENARIO
set -e
$b run -b $bundle hot-run
$b create --bundle $work/sleeper hot-life
$b start hot-life
$b state hot-life >/dev/null
$b exec hot-life /bin/true
$b kill hot-life KILL
while $b state hot-life | grep -q '"running"'; do sleep 0.1; done
$b delete hot-life
SCENARIO
# On this host's cgroup layout and, unless it is pure cgroup v2, on a
# cgroup v2 view of it (a private mount namespace whose /sys/fs/cgroup is
# the cgroup2 hierarchy alone), as the benchmark does.
"$work/steptrace" "$work/addresses" "$berth" sh "$work/scenario.sh"
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
  "$work/steptrace" "$work/addresses.v2" "$berth" unshare -m --propagation private sh -ec \
    "umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; sh $work/scenario.sh"
  cat "$work/addresses.v2" >>"$work/addresses"
fi

python3 - "$berth" "$work/addresses" "$here/hot-symbols.txt" <<'EOF'
import bisect, subprocess, sys
berth, addresses, out = sys.argv[1:]
functions = []
nm = subprocess.run(["nm", "--defined-only", "-n", "-S", berth],
                    capture_output=True, text=True, check=True).stdout
for line in nm.splitlines():
    fields = line.split()
    # Assembly functions (glibc's string functions) may have no size: they
    # reach to the next symbol.
    if len(fields) == 4 and fields[2] in "tTwW":
        functions.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    elif len(fields) == 3 and fields[1] in "tTwW":
        functions.append((int(fields[0], 16), 0, fields[2]))
functions.sort()
functions = [
    (start, length or (functions[i + 1][0] - start if i + 1 < len(functions) else 1), name)
    for i, (start, length, name) in enumerate(functions)
]
starts = [start for start, _, _ in functions]
order, listed, size = [], set(), 0
with open(addresses) as f:
    for line in f:
        address = int(line, 16)
        i = bisect.bisect_right(starts, address) - 1
        if i < 0:
            continue
        start, length, name = functions[i]
        if address < start + length and name not in listed:
            listed.add(name)
            order.append(name)
            size += length
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print(f"hot-symbols: {len(order)} functions, {size // 1024} KiB of code -> {out}")
EOF
