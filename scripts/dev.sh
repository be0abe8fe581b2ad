#!/usr/bin/env bash
# Builds govledger and runs a single-validator dev chain in ./devnet (created on first run,
# reused afterwards). Extra arguments go to `govledger-node dev` (e.g. --api 127.0.0.1:9090).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --release --locked -p govledger-node -p govledger
echo "binaries: $CARGO_TARGET_DIR/release/{govledger-node,govledger}"
exec "$CARGO_TARGET_DIR/release/govledger-node" dev "$@"
