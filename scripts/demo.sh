#!/bin/sh
# demo.sh: builds berth and runs a real container from the default bundle:
# a busybox rootfs this project builds itself and the config `berth spec`
# writes. The container shows that it is isolated: its own hostname, its
# own pid 1, its own mounts. Run as root.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
bundle=target/demo-bundle
rm -rf "$bundle"
mkdir -p "$bundle"
scripts/mkrootfs.sh "$bundle/rootfs"
./target/release/berth spec --bundle "$bundle"
# The default process is an interactive shell; the demo runs a script.
script='echo hostname: $(hostname); echo my pid: $$; echo processes:; ps; echo mounts:; cat /proc/self/mounts'
sed -i -e 's/"terminal": true/"terminal": false/' \
  -e "s|^\( *\)\"sh\"\$|\1\"sh\", \"-c\", \"$script\"|" "$bundle/config.json"
exec ./target/release/berth --root target/demo-state run --bundle "$bundle" "demo-$$"
