# shellcheck shell=bash
# Container testnet helpers, shared by testnet/docker/{up,down}.sh and the e2e runner.
# Sourced after testnet/lib/common.sh.
#
# A deployment is named by DK_PROJECT (the compose project) and lives in DK_NET_DIR
# (genesis, node configs and keys, client keys). Defaults: the operator's testnet; the e2e
# runner sets its own project, subnets and ports so both can run side by side.

DK_DIR="$GL_REPO/testnet/docker"
DK_COMPOSE_FILE="$DK_DIR/docker-compose.yml"
DK_PROJECT="${DK_PROJECT:-govledger-testnet}"
DK_NET_DIR="${DK_NET_DIR:-$DK_DIR/net}"
DK_LEDGER_NET="${DK_LEDGER_NET:-10.231.0}"
DK_API_NET="${DK_API_NET:-10.231.1}"
DK_API_PORT_BASE="${DK_API_PORT_BASE:-29200}"
DK_NODES=4
DK_P2P_PORT=26656
DK_API_PORT=8080

# The compose tool: docker-compose (v1, Debian) or the `docker compose` plugin.
dk_compose() {
  GOVLEDGER_UID="$(id -u)"
  GOVLEDGER_GID="$(id -g)"
  export GOVLEDGER_UID GOVLEDGER_GID GOVLEDGER_NET_DIR="$DK_NET_DIR" \
    GOVLEDGER_LEDGER_NET="$DK_LEDGER_NET" GOVLEDGER_API_NET="$DK_API_NET" \
    GOVLEDGER_API_PORT_1=$((DK_API_PORT_BASE + 1)) GOVLEDGER_API_PORT_2=$((DK_API_PORT_BASE + 2)) \
    GOVLEDGER_API_PORT_3=$((DK_API_PORT_BASE + 3)) GOVLEDGER_API_PORT_4=$((DK_API_PORT_BASE + 4))
  if command -v docker-compose >/dev/null 2>&1; then
    docker-compose --log-level ERROR -f "$DK_COMPOSE_FILE" -p "$DK_PROJECT" "$@"
  elif docker compose version >/dev/null 2>&1; then
    docker compose -f "$DK_COMPOSE_FILE" -p "$DK_PROJECT" "$@"
  else
    gl_die "neither docker-compose nor the docker compose plugin is installed"
  fi
}

# Fails unless a Docker engine answers and a compose tool exists.
dk_available() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
    { command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; }
}

# The container of node I (its id; the name differs between compose v1 and v2).
dk_container() { dk_compose ps -q "node-$1"; }
dk_ledger_network() { echo "${DK_PROJECT}_ledger"; }
dk_ledger_ip() { echo "$DK_LEDGER_NET.$((10 + $1))"; }
# The API as the host reaches it (published port on loopback).
dk_api_url() { echo "http://127.0.0.1:$((DK_API_PORT_BASE + $1))"; }

# Generates a fresh 4-validator testnet in DK_NET_DIR with `govledger testnet init`, then
# points every validator at its container's static address (init takes a single host):
# genesis address hints /ip4/LEDGER_NET.1i/tcp/26656, nodes listening on 0.0.0.0, the API
# on 0.0.0.0:8080, the database in the volume at /data.
#   dk_generate CHAIN_ID [fast] [equivocate NODE_INDEX]
dk_generate() {
  local chain="$1" fast=0 byz=0 i j
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      fast) fast=1 ;;
      equivocate)
        byz="$2"
        shift
        ;;
    esac
    shift
  done
  rm -rf "$DK_NET_DIR"
  "$GL_BIN/govledger" testnet init --validators "$DK_NODES" --out "$DK_NET_DIR" \
    --chain-id "$chain" --host "$(dk_ledger_ip 1)" --base-port "$DK_P2P_PORT" \
    --api-base-port "$DK_API_PORT" >/dev/null || return 1
  local addrs=()
  for ((i = 1; i <= DK_NODES; i++)); do
    addrs+=("/ip4/$(dk_ledger_ip "$i")/tcp/$DK_P2P_PORT")
  done
  gl_set_genesis_addresses "$DK_NET_DIR/genesis.json" "${addrs[@]}" || return 1
  if [ "$fast" = 1 ]; then gl_set_fast_params "$DK_NET_DIR/genesis.json" || return 1; fi
  for ((i = 1; i <= DK_NODES; i++)); do
    local boot=() extra=""
    for ((j = 1; j <= DK_NODES; j++)); do
      [ "$j" != "$i" ] && boot+=("${addrs[j - 1]}")
    done
    if [ "$byz" = "$i" ]; then
      extra=$'\n[testing]\n# Byzantine on purpose (e2e): double-signs every prevote.\nequivocate = true'
    fi
    gl_write_config "$DK_NET_DIR/node-$i/config.toml" "/ip4/0.0.0.0/tcp/$DK_P2P_PORT" \
      "0.0.0.0:$DK_API_PORT" /data "${boot[@]}" -- "$extra"
  done
  # init's summary names the addresses it was given; this one is accurate.
  {
    echo "govledger container testnet \"$chain\" (compose project $DK_PROJECT)"
    echo "genesis $DK_NET_DIR/genesis.json"
    for ((i = 1; i <= DK_NODES; i++)); do
      echo "  node-$i  service node-$i  p2p ${addrs[i - 1]}  api $(dk_api_url "$i")"
    done
    echo "client keys: $DK_NET_DIR/clients/dept-{1..$DK_NODES}.key"
  } >"$DK_NET_DIR/README.txt"
}
