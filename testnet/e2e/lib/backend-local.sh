# shellcheck shell=bash
# shellcheck disable=SC2034 # variables read by run.sh, which sources this file
# e2e backend "local": govledger-node processes on this machine.
#
# As root, each node runs in its own network namespace (gle2e-n1..4, address
# 10.231.9.i/24) plugged into a bridge that lives in a namespace of its own (gle2e-sw), so
# nothing touches the host's firewall; the host reaches the APIs through a veth at
# 10.231.9.254. Partitions are blackhole routes inside the nodes' namespaces (packets
# between the two sides are dropped silently, in both directions; the host still reaches
# every API). Without root (or without `ip netns`), the nodes run on loopback and partition
# scenarios are skipped.
#
# Faults: kill = SIGKILL, stop = SIGTERM, pause = SIGSTOP/SIGCONT, wipe = delete data/.

BE_NAME=local
LC_NS_PREFIX="gle2e"
LC_SUBNET="10.231.9"
LC_HOST_IP="$LC_SUBNET.254"
LC_P2P_PORT=29000
LC_API_PORT=29100
# Loopback mode: ports of their own, beside testnet/local.sh's 29000/29100.
LC_LO_P2P_BASE=29020
LC_LO_API_BASE=29120
LC_NETNS=0
LC_NET=""
LC_BLOCKED=()

lc_netns_usable() {
  [ "${E2E_NETNS:-1}" != 0 ] || return 1
  [ "$(id -u)" = 0 ] || return 1
  command -v ip >/dev/null 2>&1 || return 1
  local probe="${LC_NS_PREFIX}-probe"
  ip netns add "$probe" 2>/dev/null || return 1
  ip netns del "$probe"
}

be_setup_once() {
  if lc_netns_usable; then
    LC_NETNS=1
    be_teardown_once 2>/dev/null || true
    local sw="${LC_NS_PREFIX}-sw"
    ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    ip link add "${LC_NS_PREFIX}-h" type veth peer name "${LC_NS_PREFIX}-hp"
    ip link set "${LC_NS_PREFIX}-hp" netns "$sw"
    ip -n "$sw" link set "${LC_NS_PREFIX}-hp" master br0 up
    ip addr add "$LC_HOST_IP/24" dev "${LC_NS_PREFIX}-h"
    ip link set "${LC_NS_PREFIX}-h" up
    local i
    for i in 1 2 3 4; do
      local ns="${LC_NS_PREFIX}-n$i"
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip link add "${LC_NS_PREFIX}-a$i" type veth peer name "${LC_NS_PREFIX}-b$i"
      ip link set "${LC_NS_PREFIX}-a$i" netns "$ns"
      ip link set "${LC_NS_PREFIX}-b$i" netns "$sw"
      ip -n "$ns" link set "${LC_NS_PREFIX}-a$i" name eth0
      ip -n "$ns" addr add "$LC_SUBNET.$i/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$sw" link set "${LC_NS_PREFIX}-b$i" master br0 up
    done
    BE_DESC="local processes, one network namespace each ($LC_SUBNET.0/24)"
  else
    LC_NETNS=0
    BE_DESC="local processes on loopback (no network namespaces: not root, or E2E_NETNS=0)"
  fi
}

be_teardown_once() {
  [ "$LC_NETNS" = 1 ] || return 0
  local ns
  for ns in "${LC_NS_PREFIX}-n1" "${LC_NS_PREFIX}-n2" "${LC_NS_PREFIX}-n3" "${LC_NS_PREFIX}-n4" "${LC_NS_PREFIX}-sw"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "${LC_NS_PREFIX}-h" 2>/dev/null || true
}

# Why partitions cannot run, or nothing if they can.
be_partition_unsupported() {
  [ "$LC_NETNS" = 1 ] || echo "partitions need network namespaces (run as root with iproute2; E2E_NETNS not 0)"
}

be_url() {
  if [ "$LC_NETNS" = 1 ]; then
    echo "http://$LC_SUBNET.$1:$LC_API_PORT"
  else
    echo "http://127.0.0.1:$((LC_LO_API_BASE + $1 - 1))"
  fi
}

# Creates a fresh 4-validator testnet in DIR with `govledger testnet init`.
#   be_create DIR CHAIN_ID [equivocate NODE]
be_create() {
  LC_NET="$1"
  local chain="$2" byz=0 i j
  [ "${3:-}" = equivocate ] && byz="$4"
  rm -rf "$LC_NET"
  local host=127.0.0.1 p2p_base=$LC_LO_P2P_BASE api_base=$LC_LO_API_BASE
  if [ "$LC_NETNS" = 1 ]; then
    host="$LC_SUBNET.1" p2p_base=$LC_P2P_PORT api_base=$LC_API_PORT
  fi
  "$GL_BIN/govledger" testnet init --validators 4 --out "$LC_NET" --chain-id "$chain" \
    --host "$host" --base-port "$p2p_base" --api-base-port "$api_base" >/dev/null || return 1
  local addrs=() listen=() apis=()
  for i in 1 2 3 4; do
    if [ "$LC_NETNS" = 1 ]; then
      addrs+=("/ip4/$LC_SUBNET.$i/tcp/$LC_P2P_PORT")
      listen+=("/ip4/0.0.0.0/tcp/$LC_P2P_PORT")
      apis+=("0.0.0.0:$LC_API_PORT")
    else
      addrs+=("/ip4/127.0.0.1/tcp/$((LC_LO_P2P_BASE + i - 1))")
      listen+=("${addrs[i - 1]}")
      apis+=("127.0.0.1:$((LC_LO_API_BASE + i - 1))")
    fi
  done
  gl_set_genesis_addresses "$LC_NET/genesis.json" "${addrs[@]}" || return 1
  gl_set_fast_params "$LC_NET/genesis.json" || return 1
  for i in 1 2 3 4; do
    local boot=() extra=""
    for j in 1 2 3 4; do
      [ "$j" != "$i" ] && boot+=("${addrs[j - 1]}")
    done
    [ "$byz" = "$i" ] && extra=$'\n[testing]\nequivocate = true'
    gl_write_config "$LC_NET/node-$i/config.toml" "${listen[i - 1]}" "${apis[i - 1]}" data \
      "${boot[@]}" -- "$extra"
  done
}

be_start() {
  local wrap=()
  [ "$LC_NETNS" = 1 ] && wrap=(ip netns exec "${LC_NS_PREFIX}-n$1")
  gl_start_node "$LC_NET/node-$1" "${wrap[@]}"
}

be_start_all() {
  local i
  for i in 1 2 3 4; do
    be_start "$i" || return 1
  done
}

be_pid() { gl_node_pid "$LC_NET/node-$1"; }

be_kill() {
  local pid
  pid="$(be_pid "$1")"
  [ -n "$pid" ] || return 0
  kill -KILL "$pid"
  while gl_is_node_pid "$pid"; do sleep 0.1; done
}

be_stop() {
  local pid
  pid="$(be_pid "$1")"
  [ -n "$pid" ] && gl_stop_pid "$pid" 30 "node-$1"
  return 0
}

be_pause() { kill -STOP "$(be_pid "$1")"; }
be_resume() { kill -CONT "$(be_pid "$1")"; }
be_wipe() { rm -rf "$LC_NET/node-$1/data"; }

lc_block() {
  # Drops traffic between nodes $1 and $2, both ways.
  ip -n "${LC_NS_PREFIX}-n$1" route add blackhole "$LC_SUBNET.$2/32"
  ip -n "${LC_NS_PREFIX}-n$2" route add blackhole "$LC_SUBNET.$1/32"
  LC_BLOCKED+=("$1:$2")
}

# Cuts node I off from every other node (its API stays reachable).
be_isolate() {
  local j
  for j in 1 2 3 4; do
    [ "$j" != "$1" ] && lc_block "$1" "$j"
  done
  BE_PARTITION_DESC="blackhole routes between node-$1 and the others"
}

# Splits the nodes into two sides that cannot reach each other.
#   be_split "1 2" "3 4"
be_split() {
  local a b
  for a in $1; do
    for b in $2; do
      lc_block "$a" "$b"
    done
  done
  BE_PARTITION_DESC="blackhole routes between {$1} and {$2}"
}

be_heal() {
  local pair
  for pair in "${LC_BLOCKED[@]}"; do
    ip -n "${LC_NS_PREFIX}-n${pair%%:*}" route del blackhole "$LC_SUBNET.${pair##*:}/32" 2>/dev/null || true
    ip -n "${LC_NS_PREFIX}-n${pair##*:}" route del blackhole "$LC_SUBNET.${pair%%:*}/32" 2>/dev/null || true
  done
  LC_BLOCKED=()
}

# Stops every node; their logs are already in DIR/node-i/node.log.
#   be_destroy LOG_DIR
be_destroy() {
  [ -n "$LC_NET" ] || return 0
  be_heal
  local i
  for i in 1 2 3 4; do
    local pid
    pid="$(be_pid "$i")"
    [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
    [ -n "$pid" ] && gl_stop_pid "$pid" 20 "node-$i" &
  done
  wait
  mkdir -p "$1"
  for i in 1 2 3 4; do
    cp "$LC_NET/node-$i/node.log" "$1/node-$i.log" 2>/dev/null || true
  done
  LC_NET=""
}

# Deletes the databases of a finished scenario (logs and configs stay).
be_discard_data() {
  rm -rf "$1"/node-*/data
}
