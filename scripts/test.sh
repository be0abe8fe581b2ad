#!/usr/bin/env bash
# Runs every test of the workspace (unit, property, simulator, store crash, multi-node
# integration), in the release profile shared with the build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --release --locked --workspace --bins
cargo nextest run --release --locked --workspace --no-fail-fast "$@"
