#!/usr/bin/env bash
# A local multi-process testnet on loopback.
#
#   testnet/local.sh up [N] [--fast]   fresh N-validator testnet (default 4), started in the
#                                      background; waits for blocks; prints URLs and keys
#   testnet/local.sh status            pid, height, peers of every node
#   testnet/local.sh down              SIGTERM every node (SIGKILL after 20 s)
#
# Files: testnet/local/ (genesis.json, node-i/{config.toml,node.key,data,node.log,node.pid},
# clients/dept-i.key). `up` deletes and recreates it; `down` keeps it for inspection.
# Ports: p2p 29000+i-1, API 29100+i-1 on 127.0.0.1 (GOVLEDGER_LOCAL_P2P_BASE,
# GOVLEDGER_LOCAL_API_BASE). Binaries: $CARGO_TARGET_DIR/release, built if missing.
# --fast: 1 s consensus timeouts and an idle block every second (the tests' parameters)
# instead of the defaults (3 s propose timeout, an idle block every 5 s).
set -euo pipefail
GL_WHO="local.sh"
# shellcheck source=testnet/lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DIR="${GOVLEDGER_LOCAL_DIR:-$GL_TESTNET/local}"
P2P_BASE="${GOVLEDGER_LOCAL_P2P_BASE:-29000}"
API_BASE="${GOVLEDGER_LOCAL_API_BASE:-29100}"
STOP_GRACE_SECS=20
START_TIMEOUT_SECS=90

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

nodes() {
  local d
  for d in "$DIR"/node-*; do
    [ -f "$d/config.toml" ] && echo "$d"
  done | sort -V
}

api_url() { sed -n 's/^api_listen = "\(.*\)"/http:\/\/\1/p' "$1/config.toml"; }

running_count() {
  local d n=0
  for d in $(nodes); do
    [ -n "$(gl_node_pid "$d")" ] && n=$((n + 1))
  done
  echo "$n"
}

port_in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

cmd_up() {
  local n=4 fast=0 arg
  for arg in "$@"; do
    case "$arg" in
      --fast) fast=1 ;;
      '' | *[!0-9]*) usage ;;
      *) n="$arg" ;;
    esac
  done
  [ "$n" -ge 1 ] || gl_die "N must be at least 1"
  gl_need_tools curl jq setsid
  if [ -d "$DIR" ] && [ "$(running_count)" -gt 0 ]; then
    gl_die "a local testnet is already running in $DIR: run 'testnet/local.sh down' first"
  fi
  local i
  for ((i = 0; i < n; i++)); do
    for p in $((P2P_BASE + i)) $((API_BASE + i)); do
      port_in_use "$p" && gl_die "port $p is in use (set GOVLEDGER_LOCAL_P2P_BASE / GOVLEDGER_LOCAL_API_BASE)"
    done
  done
  gl_ensure_binaries nodes
  rm -rf "$DIR"
  "$GL_BIN/govledger" testnet init --validators "$n" --out "$DIR" --chain-id govledger-local \
    --base-port "$P2P_BASE" --api-base-port "$API_BASE" --host 127.0.0.1 >/dev/null
  if [ "$fast" = 1 ]; then
    gl_set_fast_params "$DIR/genesis.json"
  fi
  local d
  for d in $(nodes); do
    gl_start_node "$d" || {
      cmd_down
      gl_die "$(basename "$d") did not start"
    }
  done
  gl_say "started $n nodes; waiting for the first blocks (up to ${START_TIMEOUT_SECS}s)"
  for d in $(nodes); do
    if ! gl_wait_height "$(api_url "$d")" 1 "$START_TIMEOUT_SECS" "$(basename "$d")"; then
      tail -n 20 "$d/node.log" >&2 || true
      cmd_down
      gl_die "the testnet did not commit a block; logs are in $DIR/node-*/node.log"
    fi
  done
  local genesis_hash
  genesis_hash="$(gl_get "$(api_url "$(nodes | head -n 1)")" /v1/status | jq -r .genesis_hash)"
  echo "local testnet up: $n validators, chain govledger-local, genesis $DIR/genesis.json"
  echo "genesis hash $genesis_hash"
  echo
  printf '%-8s %-8s %-8s %-24s %s\n' node pid height api log
  for d in $(nodes); do
    printf '%-8s %-8s %-8s %-24s %s\n' "$(basename "$d")" "$(gl_node_pid "$d")" \
      "$(gl_height "$(api_url "$d")")" "$(api_url "$d")" "$d/node.log"
  done
  echo
  echo "client keys (every writing role of their department):"
  for k in "$DIR"/clients/*.key; do
    echo "  $(basename "$k" .key)  $k"
  done
  echo
  echo "try:"
  echo "  export PATH=\"$GL_BIN:\$PATH\""
  echo "  export GOVLEDGER_NODE=$(api_url "$(nodes | head -n 1)") GOVLEDGER_KEY=$DIR/clients/dept-1.key"
  echo "  govledger anchor README.md --label readme --wait"
  echo "  govledger audit --genesis $DIR/genesis.json"
  echo "stop with: testnet/local.sh down"
}

cmd_down() {
  [ -d "$DIR" ] || {
    gl_say "no local testnet in $DIR"
    return 0
  }
  local d pid stopped=0
  for d in $(nodes); do
    pid="$(gl_node_pid "$d")"
    if [ -n "$pid" ]; then
      gl_stop_pid "$pid" "$STOP_GRACE_SECS" "$(basename "$d")" &
      stopped=$((stopped + 1))
    fi
  done
  wait
  rm -f "$DIR"/node-*/node.pid
  gl_say "stopped $stopped nodes (data and logs kept in $DIR)"
}

cmd_status() {
  [ -d "$DIR" ] || gl_die "no local testnet in $DIR: run 'testnet/local.sh up'"
  gl_need_tools curl jq
  local d pid status url
  printf '%-8s %-8s %-9s %-7s %-6s %-8s %s\n' node pid state height peers syncing api
  for d in $(nodes); do
    pid="$(gl_node_pid "$d")"
    url="$(api_url "$d")"
    status="$(gl_get "$url" /v1/status || true)"
    if [ -n "$status" ]; then
      printf '%-8s %-8s %-9s %-7s %-6s %-8s %s\n' "$(basename "$d")" "$pid" running \
        "$(jq -r .height <<<"$status")" "$(jq -r '.peers | length' <<<"$status")" \
        "$(jq -r .syncing <<<"$status")" "$url"
    else
      printf '%-8s %-8s %-9s %-7s %-6s %-8s %s\n' "$(basename "$d")" "${pid:--}" \
        "$([ -n "$pid" ] && echo no-answer || echo stopped)" - - - "$url"
    fi
  done
}

case "${1:-}" in
  up)
    shift
    cmd_up "$@"
    ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
