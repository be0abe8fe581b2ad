#!/usr/bin/env bash
# Runs every test of the workspace (unit, property, simulator, store crash, multi-node
# integration), in the release profile shared with the build, then the fault-injection
# end-to-end runs of testnet/e2e: the local-process pair (kill/restart, 2|2 partition) always,
# and every container scenario (a Docker engine must answer unless GOVLEDGER_E2E_DOCKER=0).
#
#   scripts/test.sh [NEXTEST ARGS...]     everything
#   GOVLEDGER_E2E=0 scripts/test.sh       the cargo tests only
#   GOVLEDGER_E2E_DOCKER=0 scripts/test.sh   skip the container scenarios (without it, a
#                                           machine with no Docker engine fails)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --release --locked --workspace --bins
cargo nextest run --release --locked --workspace --no-fail-fast "$@"

if [ "${GOVLEDGER_E2E:-1}" != "0" ]; then
  testnet/e2e/run.sh --backend local --fast ci
  if [ "${GOVLEDGER_E2E_DOCKER:-1}" = "0" ]; then
    echo "test.sh: GOVLEDGER_E2E_DOCKER=0: the container scenarios are skipped, as asked"
  elif docker info >/dev/null 2>&1; then
    testnet/e2e/run.sh --backend docker --fast --budget 900 all
  else
    # Never skip silently: a run without the container scenarios must be asked for.
    echo "test.sh: no Docker engine answers ('docker info' failed), so the container scenarios cannot run." >&2
    echo "test.sh: start the engine, or skip them explicitly with GOVLEDGER_E2E_DOCKER=0." >&2
    exit 1
  fi
fi
