#!/usr/bin/env bash
# Stops the container testnet and removes its containers, network and volumes.
#
#   testnet/docker/down.sh [--keep-volumes]
#
# The generated configs and keys in testnet/docker/net/ stay (up.sh replaces them).
set -euo pipefail
GL_WHO="docker/down.sh"
# shellcheck source=testnet/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=testnet/docker/lib.sh
. "$(dirname "$0")/lib.sh"

args=(down --remove-orphans --timeout 30)
case "${1:-}" in
  --keep-volumes) ;;
  "") args+=(-v) ;;
  *) gl_die "usage: testnet/docker/down.sh [--keep-volumes]" ;;
esac
dk_available || gl_die "no Docker engine answers (docker info) or no compose tool is installed"
dk_compose "${args[@]}" >&2
gl_say "container testnet $DK_PROJECT stopped$([ "${1:-}" = --keep-volumes ] && echo ' (volumes kept)' || echo ' and its volumes removed')"
