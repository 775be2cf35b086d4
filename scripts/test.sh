#!/bin/sh
# test.sh: installs what the tests need and runs them all. The integration
# tests start real containers, so this runs as root.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the tests create real containers; run as root" >&2
  exit 1
fi
scripts/deps.sh
cargo test --workspace --locked
