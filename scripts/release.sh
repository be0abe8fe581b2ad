#!/usr/bin/env bash
# Builds the release binaries an operator deploys: `govledger-node` and `govledger`, without
# the test-only fault switches (the `fault-injection` feature that the workspace build of the
# test suite turns on), into DIR (default ./dist), and checks that the node refuses the
# test suite's `[testing]` section.
#
#   scripts/release.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
out="${1:-dist}"
# Only these two packages: no workspace member asks for `fault-injection`, so the node is
# built without it (cargo keeps this build's artifacts beside the test build's).
cargo build --release --locked -p govledger-node -p govledger
mkdir -p "$out"
for b in govledger-node govledger; do
  cp "$CARGO_TARGET_DIR/release/$b" "$out/$b.tmp"
  mv "$out/$b.tmp" "$out/$b"
done

# The check that the switches are not in it: a config with `[testing]` is refused.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '[testing]\nequivocate = true\n' >"$tmp/config.toml"
if msg="$("$out/govledger-node" --config "$tmp/config.toml" 2>&1)"; then
  echo "release.sh: $out/govledger-node accepted a [testing] section" >&2
  exit 1
fi
case "$msg" in
  *"unknown field \`testing\`"*) ;;
  *)
    echo "release.sh: $out/govledger-node did not refuse [testing] as an unknown field:" >&2
    echo "$msg" >&2
    exit 1
    ;;
esac
echo "release.sh: $out/govledger-node and $out/govledger built (no fault-injection switches)"
