#!/bin/sh
# build-static.sh: a statically linked release berth (glibc and libseccomp
# linked in), for hosts without libseccomp (the lent cgroup v2 machine) and
# for the benchmark (it starts ~0.5 ms sooner: no dynamic loader, no
# relocations of shared libraries). Prints the binary's path.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
LIBSECCOMP_LINK_TYPE=static \
LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" --target-dir target/static -p berth >&2
echo "$PWD/target/static/$target/release/berth"
