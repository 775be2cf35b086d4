#!/bin/sh
# build-static.sh: the release berth to install and to benchmark, statically
# linked (glibc and libseccomp linked in, so it also runs on hosts without
# libseccomp, such as the lent cgroup v2 machine). Prints the binary's path.
#
# Three link choices make it start faster and smaller than
# `cargo build --release` (measured in BENCHMARKS.md):
# - static: no dynamic loader, no shared libraries to map and relocate;
# - not position-independent: nothing to relocate at start-up and
#   .data.rel.ro stays clean, shared page cache instead of a private copy
#   in every berth process. The price is that berth's own code and data sit
#   at a fixed address (its heap, stack and mmaps are still randomised);
#   BERTH_PIE=1 builds a static-pie instead;
# - the functions berth runs on its hot paths (bench/hot-symbols.txt) are
#   linked first and together, so few of berth's code pages get mapped.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
flags="-C target-feature=+crt-static"
[ "${BERTH_PIE:-0}" = 1 ] || flags="$flags -C relocation-model=static"

# The symbol ordering file is an LLD option; LLD is rustc's own linker for
# this target from Rust 1.90 on. Older toolchains link without the order.
hot=$PWD/bench/hot-symbols.txt
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "$rustc_minor" -ge 90 ]; then
  export BERTH_HOT_SYMBOLS="$hot"  # crates/berth/build.rs
else
  echo "build-static.sh: rustc 1.$rustc_minor does not link with LLD; hot functions not ordered" >&2
  hot=""
fi

LIBSECCOMP_LINK_TYPE=static \
LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
RUSTFLAGS="$flags" \
  cargo build --release --locked --target "$target" --target-dir target/static -p berth >&2
berth=$PWD/target/static/$target/release/berth

# Symbol names carry hashes that change with the compiler and with some
# code changes: say when the order no longer matches the binary.
if [ -n "$hot" ]; then
  defined=$(mktemp)
  nm --defined-only "$berth" | awk '{print $NF}' | sort -u >"$defined"
  listed=$(sort -u "$hot" | wc -l)
  found=$(sort -u "$hot" | comm -12 "$defined" - | wc -l)
  rm -f "$defined"
  if [ "$found" -lt $((listed * 9 / 10)) ]; then
    echo "build-static.sh: only $found of the $listed functions in bench/hot-symbols.txt are in this build; bench/hot-symbols.sh renews the list" >&2
  fi
fi
echo "$berth"
