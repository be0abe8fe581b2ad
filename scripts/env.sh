# Sourced by the scripts: one build directory and one profile (release) for everything,
# so RocksDB's C++ is compiled once. Override CARGO_TARGET_DIR to build elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/govledger-target}"
