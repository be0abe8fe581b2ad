# shellcheck shell=bash
# shellcheck disable=SC2034 # variables read by run.sh, which sources this file
# e2e backend "docker": the container testnet of testnet/docker/ (compose project
# govledger-e2e, its own subnets and host ports, so it runs beside `docker/up.sh`).
#
# Faults: kill = `docker kill -s KILL` then `docker start`; stop = `docker stop` (SIGTERM);
# pause = `docker pause` (cgroup freezer); wipe = remove the container and its volume, then
# recreate both; a node cut off = `docker network disconnect` from the p2p network (its API
# network stays, so the host still sees it); a 2|2 split = blackhole routes inside the
# containers' network namespaces (nsenter, as root), because disconnecting can only take a
# node off the network entirely. Without nsenter/root, the 2|2 split disconnects both
# nodes of one side (2|1|1), which the summary says.

BE_NAME=docker
DK_PROJECT="${E2E_DOCKER_PROJECT:-govledger-e2e}"
DK_LEDGER_NET="${E2E_DOCKER_LEDGER_NET:-10.231.2}"
DK_API_NET="${E2E_DOCKER_API_NET:-10.231.3}"
DK_API_PORT_BASE="${E2E_DOCKER_API_PORT_BASE:-29300}"
# shellcheck source=testnet/docker/lib.sh
. "$GL_REPO/testnet/docker/lib.sh"
DC_CREATED=0
DC_BLOCKED=()
DC_DISCONNECTED=()

be_setup_once() {
  "$DK_DIR/build.sh" || gl_die "cannot build the node image"
  # Leftovers of an interrupted run.
  dk_compose down -v --remove-orphans >/dev/null 2>&1 || true
  BE_DESC="docker containers (compose project $DK_PROJECT, image ${GOVLEDGER_IMAGE:-govledger-node:local})"
}

be_teardown_once() { :; }

be_partition_unsupported() { :; }

dc_can_nsenter() {
  [ "$(id -u)" = 0 ] && command -v nsenter >/dev/null 2>&1 && command -v ip >/dev/null 2>&1
}

be_url() { dk_api_url "$1"; }

#   be_create DIR CHAIN_ID [equivocate NODE]
be_create() {
  DK_NET_DIR="$1"
  local gen=("$2" fast)
  [ "${3:-}" = equivocate ] && gen+=(equivocate "$4")
  dk_generate "${gen[@]}"
  DC_CREATED=1
}

be_start_all() { dk_compose up -d >/dev/null 2>&1 || dk_compose up -d; }

be_start() {
  local cid
  cid="$(dk_container "$1")"
  if [ -n "$cid" ]; then
    docker start "$cid" >/dev/null
  else
    # Removed (wiped): compose recreates the container and a fresh volume.
    dk_compose up -d --no-deps "node-$1" >/dev/null 2>&1
  fi
}

be_kill() { docker kill -s KILL "$(dk_container "$1")" >/dev/null; }
be_stop() { docker stop -t 30 "$(dk_container "$1")" >/dev/null; }
be_pause() { docker pause "$(dk_container "$1")" >/dev/null; }
be_resume() { docker unpause "$(dk_container "$1")" >/dev/null; }

be_wipe() {
  # The container goes with the volume: keep its log.
  docker logs "$(dk_container "$1")" >"$SCEN_DIR/logs/node-$1.before-wipe.log" 2>&1 || true
  dk_compose rm -f -s "node-$1" >/dev/null 2>&1
  docker volume rm "${DK_PROJECT}_node-$1-data" >/dev/null
}

be_isolate() {
  docker network disconnect "$(dk_ledger_network)" "$(dk_container "$1")"
  DC_DISCONNECTED+=("$1")
  BE_PARTITION_DESC="docker network disconnect node-$1"
}

dc_pid() { docker inspect -f '{{ .State.Pid }}' "$(dk_container "$1")"; }

be_split() {
  local a b
  if dc_can_nsenter; then
    for a in $1; do
      for b in $2; do
        nsenter -t "$(dc_pid "$a")" -n ip route add blackhole "$(dk_ledger_ip "$b")/32"
        nsenter -t "$(dc_pid "$b")" -n ip route add blackhole "$(dk_ledger_ip "$a")/32"
        DC_BLOCKED+=("$a:$b")
      done
    done
    BE_PARTITION_DESC="blackhole routes in the containers' namespaces between {$1} and {$2}"
  else
    for b in $2; do
      docker network disconnect "$(dk_ledger_network)" "$(dk_container "$b")"
      DC_DISCONNECTED+=("$b")
    done
    BE_PARTITION_DESC="docker network disconnect of {$2} (2|1|1: nsenter needs root)"
  fi
}

be_heal() {
  local pair i
  for pair in "${DC_BLOCKED[@]}"; do
    nsenter -t "$(dc_pid "${pair%%:*}")" -n ip route del blackhole "$(dk_ledger_ip "${pair##*:}")/32" 2>/dev/null || true
    nsenter -t "$(dc_pid "${pair##*:}")" -n ip route del blackhole "$(dk_ledger_ip "${pair%%:*}")/32" 2>/dev/null || true
  done
  DC_BLOCKED=()
  for i in "${DC_DISCONNECTED[@]}"; do
    docker network connect --ip "$(dk_ledger_ip "$i")" "$(dk_ledger_network)" "$(dk_container "$i")" || true
  done
  DC_DISCONNECTED=()
}

#   be_destroy LOG_DIR
be_destroy() {
  [ "$DC_CREATED" = 1 ] || return 0
  local i cid
  mkdir -p "$1"
  for i in 1 2 3 4; do
    cid="$(dk_container "$i")"
    if [ -n "$cid" ]; then
      docker unpause "$cid" >/dev/null 2>&1 || true
      docker logs "$cid" >"$1/node-$i.log" 2>&1 || true
    fi
  done
  DC_BLOCKED=()
  DC_DISCONNECTED=()
  dk_compose down -v --remove-orphans --timeout 30 >/dev/null 2>&1 || true
  DC_CREATED=0
}

be_discard_data() { :; }
