#!/bin/bash
# bench/run.sh [--quick] [--out DIR]: times berth beside runc, crun and
# youki (those installed) and the floor program, in one run, and prints a
# table of medians and ratios (bench/report.py).
#
# What is timed, each with hyperfine:
#   run      the full lifecycle of /bin/true from a busybox bundle whose
#            config is `runc spec`'s (berth spec's without runc)
#   create, start, delete   the same lifecycle one verb at a time
#   parallel 50 `run`s started at once (containers per second)
# and, once per runtime, the peak RSS of the runtime process (`run`) and
# the size of its binary.
#
# Two host layouts: this host's own, and a private mount namespace whose
# /sys/fs/cgroup is the cgroup2 hierarchy alone (a pure cgroup v2 view).
# crun 1.8 refuses a hybrid host, so on one it only runs in the v2 view,
# and there with --cgroup-manager=disabled when its cgroup setup fails
# (the report says which). berth always manages its cgroups.
#
# BERTH (default target/release/berth) picks the binary; BERTH_STATIC, if
# set, adds a second one (scripts/build-static.sh) timed as berth-static.
# --quick makes a few runs only, to prove the harness works (CI). As root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

quick=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --v2-view) exec_v2_view=1 ;;
    *) echo "usage: bench/run.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: containers need root" >&2
  exit 1
fi
for tool in hyperfine python3 cc unshare /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is missing" >&2; exit 1; }
done

if [ $quick = 1 ]; then
  runs=3 lifecycle_runs=3 parallel_runs=1 parallel_n=5 rss_runs=2
else
  runs=100 lifecycle_runs=50 parallel_runs=10 parallel_n=50 rss_runs=10
fi
berth=$(realpath "${BERTH:-$repo/target/release/berth}")
[ -x "$berth" ] || { echo "bench/run.sh: no berth at $berth (cargo build --release)" >&2; exit 1; }
berth_static=${BERTH_STATIC:+$(realpath "$BERTH_STATIC")}

work=${out:-$(mktemp -d /tmp/berth-bench.XXXXXX)}
mkdir -p "$work"
# Every runtime keeps its state in one private tmpfs, as in /run on real
# hosts (here /run may be a disk: removing a directory there can cost more
# than a container's whole setup).
state=$(mktemp -d /tmp/berth-bench-state.XXXXXX)
mount -t tmpfs -o mode=700 berth-bench "$state"
cleanup() {
  for rt_root in "$state"/*/*; do
    [ -d "$rt_root" ] || continue
    for id in $(ls "$rt_root" 2>/dev/null); do
      runtime_cmd "$(basename "$(dirname "$rt_root")")" "$(basename "$rt_root")" delete -f "$id" >/dev/null 2>&1 || true
    done
  done
  umount "$state"
  rmdir "$state"
}
trap cleanup EXIT

# The floor and the bundle, built once.
cc -O2 -static -o "$work/floor" "$here/floor.c" 2>/dev/null || cc -O2 -o "$work/floor" "$here/floor.c"
bundle=$work/bundle
if [ ! -x "$bundle/rootfs/bin/busybox" ]; then
  rm -rf "$bundle"
  mkdir -p "$bundle"
  "$repo/scripts/mkrootfs.sh" "$bundle/rootfs"
fi
if command -v runc >/dev/null; then
  (cd "$bundle" && rm -f config.json && runc spec)
  config_from="runc spec"
else
  "$berth" spec --bundle "$bundle"
  config_from="berth spec"
fi
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(path, "w"), indent=1)
EOF

# runtime_cmd NAME LAYOUT VERB ARGS...: the runtime's command line.
crun_flags=""
runtime_cmd() {
  local name=$1 layout=$2
  shift 2
  case "$name" in
    berth) echo "$berth --root $state/berth/$layout $*" ;;
    berth-static) echo "$berth_static --root $state/berth-static/$layout $*" ;;
    runc) echo "runc --root $state/runc/$layout $*" ;;
    crun) echo "crun $crun_flags --root $state/crun/$layout $*" ;;
    youki) echo "youki --root $state/youki/$layout $*" ;;
  esac
}

# works NAME LAYOUT: whether a `run` succeeds, so a runtime that cannot run
# on this layout is reported, not timed.
works() {
  local log=$work/$1-$2.probe
  [ -e "$log" ] && mv "$log" "$log.1"
  # shellcheck disable=SC2046
  $(runtime_cmd "$1" "$2" run -b "$bundle" "probe-$1") >"$log" 2>&1 && return
  # A runtime that refuses the layout may leave its cgroup behind (crun
  # 1.8 on a hybrid host does, on cgroup2).
  rmdir /sys/fs/cgroup/probe-$1 /sys/fs/cgroup/*/probe-$1 2>/dev/null || true
  return 1
}

# pick_runtimes LAYOUT: sets `runtimes` to those that can run here, and
# `crun_flags`; notes what was left out or changed.
pick_runtimes() {
  local layout=$1 rt
  runtimes=(berth)
  [ -n "$berth_static" ] && runtimes+=(berth-static)
  crun_flags=""
  for rt in runc crun youki; do
    command -v "$rt" >/dev/null || continue
    if ! works "$rt" "$layout"; then
      if [ "$rt" = crun ]; then
        crun_flags="--cgroup-manager=disabled"
        if works crun "$layout"; then
          echo "crun on $layout: --cgroup-manager=disabled; with cgroups it fails: $(tail -1 "$work/crun-$layout.probe.1")" >>"$work/notes"
          runtimes+=(crun)
          continue
        fi
      fi
      echo "$rt cannot run on $layout: $(tail -1 "$work/$rt-$layout.probe")" >>"$work/notes"
      continue
    fi
    runtimes+=("$rt")
  done
}

bench_layout() {
  local layout=$1 rt verb
  pick_runtimes "$layout"
  local cmds=(-n floor "$work/floor $bundle/rootfs")
  for rt in "${runtimes[@]}"; do
    cmds+=(-n "$rt" "$(runtime_cmd "$rt" "$layout" run -b "$bundle" "r-$rt")")
  done
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$layout-run.json" "${cmds[@]}"

  for verb in create start delete; do
    local args=()
    for rt in "${runtimes[@]}"; do
      local id="l-$rt"
      local del create start
      del="$(runtime_cmd "$rt" "$layout" delete -f "$id")"
      create="$(runtime_cmd "$rt" "$layout" create -b "$bundle" "$id")"
      start="$(runtime_cmd "$rt" "$layout" start "$id")"
      case "$verb" in
        create) args+=(--prepare "sh -c '$del >/dev/null 2>&1; true'" -n "$rt" "$create") ;;
        start) args+=(--prepare "sh -c '$del >/dev/null 2>&1; $create'" -n "$rt" "$start") ;;
        delete) args+=(--prepare "sh -c '$del >/dev/null 2>&1; $create && $start && $here/until-stopped.sh $(runtime_cmd "$rt" "$layout" state "$id")'" -n "$rt" "$(runtime_cmd "$rt" "$layout" delete "$id")") ;;
      esac
    done
    hyperfine -N --warmup 2 --runs "$lifecycle_runs" --export-json "$work/$layout-$verb.json" "${args[@]}"
    for rt in "${runtimes[@]}"; do
      $(runtime_cmd "$rt" "$layout" delete -f "l-$rt") >/dev/null 2>&1 || true
    done
  done

  local par=()
  for rt in "${runtimes[@]}"; do
    par+=(-n "$rt" "$here/parallel.sh $parallel_n $bundle p-$rt $(runtime_cmd "$rt" "$layout")")
  done
  hyperfine -N --warmup 1 --runs "$parallel_runs" --export-json "$work/$layout-parallel.json" "${par[@]}"

  for rt in "${runtimes[@]}"; do
    # shellcheck disable=SC2046
    python3 "$here/rss.py" "$rss_runs" $(runtime_cmd "$rt" "$layout" run -b "$bundle" "m-$rt") >"$work/$layout-rss-$rt"
  done
  echo "$layout ${runtimes[*]}" >>"$work/layouts"
}

if [ "${exec_v2_view:-0}" = 1 ]; then
  # Inside the private mount namespace: cgroup2 alone at /sys/fs/cgroup.
  umount -l /sys/fs/cgroup
  mount -t cgroup2 none /sys/fs/cgroup
  bench_layout v2view
  exit 0
fi

: >"$work/notes"
: >"$work/layouts"
: >"$work/sizes"
echo "$parallel_n" >"$work/parallel_n"
layout=$(stat -f -c %T /sys/fs/cgroup)
if [ "$layout" = cgroup2fs ]; then
  bench_layout host
else
  bench_layout host
  args=(--v2-view --out "$work")
  [ $quick = 1 ] && args+=(--quick)
  BERTH="$berth" BERTH_STATIC="$berth_static" unshare -m --propagation private "$0" "${args[@]}"
fi

for rt in berth berth-static runc crun youki; do
  case "$rt" in
    berth) bin=$berth ;;
    berth-static) bin=$berth_static ;;
    *) bin=$(command -v "$rt" || true) ;;
  esac
  [ -n "$bin" ] || continue
  kind=$(file -bL "$bin" | grep -oE 'static(-pie)? linked|statically linked|dynamically linked' || echo "?")
  echo "$rt $(stat -Lc %s "$bin") $kind" >>"$work/sizes"
done
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
  if [ "$layout" = cgroup2fs ]; then
    echo "host cgroups: pure v2"
  elif [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    echo "host cgroups: hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)"
  else
    echo "host cgroups: v1"
  fi
  echo "config: $config_from, args [/bin/true], terminal false"
  echo "versions: berth $("$berth" --version | head -1 | awk '{print $NF}')$(command -v runc >/dev/null && echo ", runc $(runc --version | head -1 | awk '{print $3}')")$(command -v crun >/dev/null && echo ", crun $(crun --version | head -1 | awk '{print $3}')")$(command -v youki >/dev/null && echo ", youki $(youki --version | head -1 | awk '{print $NF}')")"
  echo "runs: run $runs, create/start/delete $lifecycle_runs, parallel $parallel_runs x $parallel_n containers"
} >"$work/meta"
python3 "$here/report.py" "$work"
echo "(raw results in $work)"
