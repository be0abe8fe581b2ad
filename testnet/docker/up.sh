#!/usr/bin/env bash
# Starts the container testnet: 4 validators (compose project govledger-testnet) on a
# private network, one volume each, the APIs published on 127.0.0.1:29201-29204.
#
#   testnet/docker/up.sh [--fast]
#
# Builds the image if needed (build.sh), generates a fresh testnet in testnet/docker/net/
# with `govledger testnet init` (removing a previous one and its volumes), starts the
# containers and waits for blocks. --fast: 1 s consensus timeouts, an idle block a second.
# Stop with testnet/docker/down.sh.
set -euo pipefail
GL_WHO="docker/up.sh"
# shellcheck source=testnet/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=testnet/docker/lib.sh
. "$(dirname "$0")/lib.sh"

START_TIMEOUT_SECS=90
gen=(govledger-docker)
case "${1:-}" in
  --fast) gen+=(fast) ;;
  "") ;;
  *) gl_die "usage: testnet/docker/up.sh [--fast]" ;;
esac

gl_need_tools docker curl jq
dk_available || gl_die "no Docker engine answers (docker info) or no compose tool is installed"
"$DK_DIR/build.sh"
if [ -n "$(dk_compose ps -q 2>/dev/null || true)" ]; then
  gl_say "removing the previous container testnet (containers and volumes)"
fi
dk_compose down -v --remove-orphans >/dev/null 2>&1 || true
dk_generate "${gen[@]}"
dk_compose up -d >&2
gl_say "waiting for the first blocks (up to ${START_TIMEOUT_SECS}s)"
for ((i = 1; i <= DK_NODES; i++)); do
  if ! gl_wait_height "$(dk_api_url "$i")" 1 "$START_TIMEOUT_SECS" "node-$i"; then
    dk_compose logs --tail 20 "node-$i" >&2 || true
    gl_die "the container testnet did not commit a block (logs: docker-compose -p $DK_PROJECT logs)"
  fi
done
echo "container testnet up: $DK_NODES validators, compose project $DK_PROJECT"
echo "genesis $DK_NET_DIR/genesis.json"
printf '%-8s %-14s %-8s %-24s %s\n' node container height api p2p
for ((i = 1; i <= DK_NODES; i++)); do
  printf '%-8s %-14s %-8s %-24s %s\n' "node-$i" "$(dk_container "$i" | cut -c1-12)" \
    "$(gl_height "$(dk_api_url "$i")")" "$(dk_api_url "$i")" "/ip4/$(dk_ledger_ip "$i")/tcp/$DK_P2P_PORT"
done
echo
echo "client keys:"
for k in "$DK_NET_DIR"/clients/*.key; do
  echo "  $(basename "$k" .key)  $k"
done
echo
echo "try:"
echo "  export PATH=\"$GL_BIN:\$PATH\""
echo "  export GOVLEDGER_NODE=$(dk_api_url 1) GOVLEDGER_KEY=$DK_NET_DIR/clients/dept-1.key"
echo "  govledger anchor README.md --label readme --wait"
echo "  govledger audit --genesis $DK_NET_DIR/genesis.json"
echo "logs: docker-compose -p $DK_PROJECT -f $DK_COMPOSE_FILE logs -f node-1"
echo "stop with: testnet/docker/down.sh"
