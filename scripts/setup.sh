#!/usr/bin/env bash
# One-time machine set-up for building govledger. Idempotent: installs only what is missing.
#
# RocksDB's Rust binding generates its bindings with libclang at build time, and compiles
# RocksDB's C++ with the system compiler. A fresh Debian/Ubuntu machine has the compiler but
# not libclang; this installs it (apt, as root or through sudo).
set -euo pipefail

need=()
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libclang\.so'; then
  need+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# The power-loss test (tests/tests/powerloss.rs) mounts a FUSE file system: as root it
# mounts directly, otherwise through fusermount3 (Debian's fuse3). Without /dev/fuse the
# test skips (fails with GOVLEDGER_POWERLOSS_STRICT=1).
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (needed to build RocksDB and run the tests)" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root (or sudo) to install: ${need[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: cargo-nextest missing; installing it with cargo (one-time)" >&2
  cargo install --locked cargo-nextest >/dev/null
fi
