#!/usr/bin/env bash
# Fault-injection end-to-end runs: a fresh 4-validator testnet per scenario, a load
# generator writing records of every kind (remembering each one acknowledged as committed),
# a fault, then the checker (same header hash at every common height on every node; every
# acknowledged transaction in every node's ledger exactly once; no id twice; evidence only
# against the byzantine validator) and `govledger audit --genesis` against every node.
#
#   testnet/e2e/run.sh [--backend auto|docker|local] [--fast] [--budget SECS] [SCENARIO...]
#
# SCENARIO: kill-restart partition-2-2 partition-1-3 pause rolling-restart byzantine
#           wipe-disk quorum-loss, or `all` (the first seven; the default), or `ci`
#           (kill-restart and partition-2-2; quorum-loss where partitions cannot run).
#           A scenario may be named more than once (its folders get -2, -3, …).
# --backend auto: the container testnet when a Docker engine answers, else local processes.
# --fast: shorter phases (CI). --budget: scenarios that would not finish within SECS of
# the start are skipped (and say so).
#
# A summary table (scenario, backend, duration, blocks, transactions, result) is printed and
# written to testnet/e2e/results/<time>-<backend>/summary.txt (also results/latest.txt), with
# each scenario's logs, acknowledgements, load statistics, check and audit reports beside it.
# Exit code 0 only if no scenario failed (skipped ones say why). Environment:
# E2E_LOAD_PAUSE_MS (pause between a load worker's batches, default 100), E2E_NETNS=0
# (local backend on loopback even as root), GOVLEDGER_BUILD=always (rebuild first),
# E2E_LOADER=bench (use `govledger bench --acks-out` as the load generator instead of
# govledger-e2e; it runs for E2E_BENCH_SECS at E2E_BENCH_RATE tx/s and covers fewer kinds).
set -euo pipefail
GL_WHO="e2e"
E2E_DIR="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=testnet/lib/common.sh
. "$E2E_DIR/../lib/common.sh"
# shellcheck source=testnet/e2e/lib/scenarios.sh
. "$E2E_DIR/lib/scenarios.sh"

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 1
}

BACKEND=auto
FAST=0
BUDGET=0
REQUESTED=()
while [ $# -gt 0 ]; do
  case "$1" in
    --backend)
      BACKEND="${2:-}"
      shift
      ;;
    --backend=*) BACKEND="${1#*=}" ;;
    --fast) FAST=1 ;;
    --budget)
      BUDGET="${2:-}"
      shift
      ;;
    --budget=*) BUDGET="${1#*=}" ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) REQUESTED+=("$1") ;;
  esac
  shift
done
case "$BACKEND" in auto | docker | local) ;; *) usage ;; esac
case "$BUDGET" in '' | *[!0-9]*) usage ;; esac
[ ${#REQUESTED[@]} -gt 0 ] || REQUESTED=(all)

if [ "$FAST" = 1 ]; then
  T_WARMUP=5 T_DOWN=6 T_PARTITION=8 T_PAUSE=8 T_TAIL=3
else
  T_WARMUP=10 T_DOWN=12 T_PARTITION=15 T_PAUSE=15 T_TAIL=6
fi
LOAD_PAUSE_MS="${E2E_LOAD_PAUSE_MS:-100}"
LOADER="${E2E_LOADER:-e2e}"
case "$LOADER" in e2e | bench) ;; *) gl_die "E2E_LOADER must be e2e or bench" ;; esac
if [ "$FAST" = 1 ]; then BENCH_SECS="${E2E_BENCH_SECS:-30}"; else BENCH_SECS="${E2E_BENCH_SECS:-45}"; fi
BENCH_RATE="${E2E_BENCH_RATE:-200}"

gl_need_tools curl jq setsid
RESULTS="$E2E_DIR/results"
mkdir -p "$RESULTS"
# One run at a time: the runs share namespaces, compose project and ports.
exec 9>"$RESULTS/.lock"
flock -n 9 || gl_die "another e2e run holds $RESULTS/.lock"

gl_ensure_binaries e2e
if [ "$LOADER" = bench ] && ! "$GL_BIN/govledger" bench --help 2>/dev/null | grep -q -- --acks-out; then
  gl_die "E2E_LOADER=bench: this govledger has no 'bench --acks-out'"
fi

docker_answers() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
    { command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; }
}
if [ "$BACKEND" = auto ]; then
  if docker_answers; then BACKEND=docker; else
    gl_say "no Docker engine answers: using local processes"
    BACKEND=local
  fi
fi
[ "$BACKEND" != docker ] || docker_answers || gl_die "--backend docker: no Docker engine answers (docker info) or no compose tool"
# shellcheck source=testnet/e2e/lib/backend-local.sh
. "$E2E_DIR/lib/backend-$BACKEND.sh"

# The scenario list.
SCENARIOS=()
for s in "${REQUESTED[@]}"; do
  case "$s" in
    all) SCENARIOS+=("${ALL_SCENARIOS[@]}") ;;
    ci) SCENARIOS+=(kill-restart ci-partition) ;;
    *)
      [ -n "${SCENARIO_TITLE[$s]:-}" ] || gl_die "unknown scenario $s (known: ${ALL_SCENARIOS[*]} quorum-loss, all, ci)"
      SCENARIOS+=("$s")
      ;;
  esac
done

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-$BACKEND"
if [ "$FAST" = 1 ]; then RUN_ID+=-fast; fi
RUN_DIR="$RESULTS/$RUN_ID"
[ ! -e "$RUN_DIR" ] || RUN_DIR+="-$$"
mkdir -p "$RUN_DIR"
RUN_START=$SECONDS
ROWS=()
ANY_FAILED=0
LOAD_PID=""
SCEN_DIR=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ "$rc" = 0 ] || [ "$rc" = 1 ] || gl_say "stopped with exit code $rc; cleaning up"
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; fi
  if [ -n "$SCEN_DIR" ]; then be_destroy "$SCEN_DIR/logs" 2>/dev/null || true; fi
  be_teardown_once 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'gl_say "interrupted"; exit 130' INT TERM

be_setup_once
if [ "$BACKEND" = local ]; then
  for i in 1 2 3 4; do
    if curl -fsS --max-time 1 "$(be_url "$i")/healthz" >/dev/null 2>&1; then
      gl_die "something already answers at $(be_url "$i"): a previous run still running?"
    fi
  done
fi
# `ci`: the real 2|2 split where partitions can run, else its closest local equivalent.
for k in "${!SCENARIOS[@]}"; do
  if [ "${SCENARIOS[k]}" = ci-partition ]; then
    if [ -z "$(be_partition_unsupported)" ]; then SCENARIOS[k]=partition-2-2; else SCENARIOS[k]=quorum-loss; fi
  fi
done
gl_say "backend: $BE_DESC"
gl_say "load generator: $([ "$LOADER" = bench ] && echo "govledger bench (${BENCH_RATE} tx/s for ${BENCH_SECS}s)" || echo "govledger-e2e load (every record kind)")"
if [ "$BUDGET" -gt 0 ]; then
  gl_say "scenarios: ${SCENARIOS[*]} (time budget ${BUDGET}s)"
else
  gl_say "scenarios: ${SCENARIOS[*]}"
fi
gl_say "results: $RUN_DIR"

# --- helpers for the scenarios --------------------------------------------------------

FAILS=()
NOTES=()
fail() {
  FAILS+=("$*")
  gl_say "  FAIL: $*"
}
note() { NOTES+=("$*"); }

# Runs a fault action; a failure is the scenario's failure.
act() {
  local what="$1"
  shift
  gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) $what"
  if ! "$@" >>"$SCEN_DIR/actions.log" 2>&1; then
    fail "$what: the action failed (see actions.log)"
    return 1
  fi
}

node_height() { gl_height "$(be_url "$1")"; }

# Waits until every node of NODES is N blocks past the highest of them now.
#   expect_progress "1 3 4" N WITHIN_SECS WHAT
expect_progress() {
  local nodes="$1" n="$2" within="$3" what="$4" i h top=0
  for i in $nodes; do
    h="$(node_height "$i")"
    if [ -n "$h" ] && [ "$h" -gt "$top" ]; then top="$h"; fi
  done
  local deadline=$((SECONDS + within))
  for i in $nodes; do
    if ! gl_wait_height "$(be_url "$i")" $((top + n)) $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)) "node-$i" 2>/dev/null; then
      fail "$what: node-$i did not get from height $top to $((top + n)) within ${within}s (at $(node_height "$i"))"
      return 1
    fi
  done
  gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) progress $what: nodes $nodes passed height $((top + n))"
}

# Asserts that no node of NODES commits a block for SECS seconds.
#   expect_frozen "1 2 3 4" SECS WHAT
expect_frozen() {
  local nodes="$1" secs="$2" what="$3" i before=() after=() k=0
  for i in $nodes; do before+=("$(node_height "$i")"); done
  sleep "$secs"
  for i in $nodes; do after+=("$(node_height "$i")"); done
  for i in $nodes; do
    if [ -z "${before[k]}" ] || [ -z "${after[k]}" ]; then
      fail "$what: node-$i did not answer /v1/status"
    elif [ "${before[k]}" != "${after[k]}" ]; then
      fail "$what: node-$i committed blocks (height ${before[k]} -> ${after[k]} in ${secs}s)"
    fi
    k=$((k + 1))
  done
  gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) no block committed $what for ${secs}s (heights ${before[*]})"
}

# Waits until node I has the height the highest other node has now.
wait_caught_up() {
  local i="$1" within="$2" j h top=0 start=$SECONDS
  for j in 1 2 3 4; do
    [ "$j" = "$i" ] && continue
    h="$(node_height "$j")"
    if [ -n "$h" ] && [ "$h" -gt "$top" ]; then top="$h"; fi
  done
  if gl_wait_height "$(be_url "$i")" "$top" "$within" "node-$i" 2>/dev/null; then
    gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) node-$i caught up to height $top in $((SECONDS - start))s"
  else
    fail "node-$i did not catch up to height $top within ${within}s (at $(node_height "$i"))"
  fi
}

# --- one scenario ---------------------------------------------------------------------

load_start() {
  local urls keys
  urls="$(for i in 1 2 3 4; do be_url "$i"; done | paste -sd, -)"
  if [ "$LOADER" = bench ]; then
    # Every kind bench knows; it stops by itself after its duration.
    "$GL_BIN/govledger" bench --nodes "$urls" --keys "$NET/clients" --rate "$BENCH_RATE" \
      --duration "${BENCH_SECS}s" --warmup 2s --mix 1:1:1:1:1:1 \
      --acks-out "$SCEN_DIR/acks.txt" --json --quiet >"$SCEN_DIR/load.json" 2>"$SCEN_DIR/load.log" &
    LOAD_PID=$!
    return
  fi
  keys="$(printf '%s\n' "$NET"/clients/dept-*.key | sort -V | paste -sd, -)"
  "$GL_BIN/govledger-e2e" load --nodes "$urls" --key "$keys" \
    --acks-out "$SCEN_DIR/acks.txt" --stats-out "$SCEN_DIR/load.json" \
    --stop-file "$SCEN_DIR/load.stop" --pause-ms "$LOAD_PAUSE_MS" \
    --stall-secs 60 --drain-secs 30 --tag "$1" >"$SCEN_DIR/load.log" 2>&1 &
  LOAD_PID=$!
}

load_stop() {
  touch "$SCEN_DIR/load.stop"
  local deadline=$((SECONDS + 60)) rc=0
  # bench has no stop signal: it runs its duration, then drains (at most 30 s).
  [ "$LOADER" = bench ] && deadline=$((SECONDS + BENCH_SECS + 90))
  while kill -0 "$LOAD_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.3; done
  if kill -0 "$LOAD_PID" 2>/dev/null; then
    fail "the load generator did not stop within 60s; killed"
    kill "$LOAD_PID" 2>/dev/null || true
  fi
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  if [ "$rc" != 0 ]; then
    fail "the load generator failed (exit $rc): $(tail -n 1 "$SCEN_DIR/load.log")"
  fi
  if [ "$LOADER" = bench ] && [ -s "$SCEN_DIR/load.json" ]; then
    gl_say "  load (bench): $(jq -r '"\(.acked) acknowledged of \(.submitted_total) submitted, \(.refused | add // 0) refused, \(.timed_out) timed out, \(.send_errors) send errors"' "$SCEN_DIR/load.json")"
  elif [ -s "$SCEN_DIR/load.json" ]; then
    local missing
    missing="$(jq -r '.kinds_missing | join(" ")' "$SCEN_DIR/load.json")"
    [ -z "$missing" ] || fail "no acknowledged record of kind: $missing"
    gl_say "  load: $(jq -r '"\(.acked) acknowledged of \(.signed) signed, \(.refused | add // 0) refused, \(.abandoned) abandoned, \(.request_errors) request errors"' "$SCEN_DIR/load.json")"
  else
    fail "the load generator wrote no statistics"
  fi
}

check_and_audit() {
  local byz=() urls i
  [ "$1" = byzantine ] && byz=(--byzantine dept-4)
  urls="$(for i in 1 2 3 4; do be_url "$i"; done | paste -sd, -)"
  if ! "$GL_BIN/govledger-e2e" check --nodes "$urls" --genesis "$NET/genesis.json" \
    --acks "$SCEN_DIR/acks.txt" --converge-secs 90 --out "$SCEN_DIR/check.json" "${byz[@]}" \
    >/dev/null 2>"$SCEN_DIR/check.log"; then
    local first
    first="$(grep -m1 'FAILED:' "$SCEN_DIR/check.log" | sed 's/^check: FAILED: //' || true)"
    fail "checker: ${first:-$(tail -n 1 "$SCEN_DIR/check.log")}"
  fi
  grep -E '^check: [0-9]+ nodes' "$SCEN_DIR/check.log" | sed "s/^check:/$GL_WHO:   check:/" >&2 || true
  local ev
  ev="$(grep -c '^check: evidence' "$SCEN_DIR/check.log" || true)"
  if [ "$ev" -gt 0 ]; then
    grep -m2 '^check: evidence' "$SCEN_DIR/check.log" | sed "s/^check:/$GL_WHO:   check:/" >&2
    [ "$ev" -le 2 ] || gl_say "    … $((ev - 2)) more (check.json)"
  fi
  local passed=0 heights=()
  for i in 1 2 3 4; do
    if "$GL_BIN/govledger" audit --genesis "$NET/genesis.json" --node "$(be_url "$i")" --json \
      >"$SCEN_DIR/audit-node-$i.json" 2>"$SCEN_DIR/audit-node-$i.log"; then
      passed=$((passed + 1))
      heights+=("$(jq -r '.tip_height' "$SCEN_DIR/audit-node-$i.json" 2>/dev/null || echo '?')")
    else
      fail "govledger audit against node-$i: $(jq -r '(.check // "") + " " + (.reason // .message // "")' "$SCEN_DIR/audit-node-$i.json" 2>/dev/null || tail -n 1 "$SCEN_DIR/audit-node-$i.log")"
    fi
  done
  gl_say "  govledger audit --genesis passed against $passed of 4 nodes (to heights ${heights[*]})"
}

add_row() {
  # scenario backend duration blocks txs result notes
  ROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$@")")
}

run_scenario() {
  local name="$1" fn="scenario_${1//-/_}"
  SCEN_DIR="$RUN_DIR/$name"
  # A scenario named twice (hunting a flake) gets -2, -3, …
  local n=1
  while [ -e "$SCEN_DIR" ]; do
    n=$((n + 1))
    SCEN_DIR="$RUN_DIR/$name-$n"
  done
  NET="$SCEN_DIR/net"
  FAILS=()
  NOTES=()
  mkdir -p "$SCEN_DIR/logs"
  gl_say ""
  gl_say "== $name: ${SCENARIO_TITLE[$name]}"
  local why=""
  if [ "${SCENARIO_NEEDS[$name]:-}" = partition ]; then why="$(be_partition_unsupported)"; fi
  local cost="${SCENARIO_COST[$name]:-$SCENARIO_COST_DEFAULT}"
  [ "$FAST" = 1 ] && cost=$((cost * 2 / 3))
  [ "$BACKEND" = local ] && cost=$((cost * 2 / 3))
  if [ -z "$why" ] && [ "$BUDGET" -gt 0 ] && [ $((SECONDS - RUN_START + cost)) -gt "$BUDGET" ]; then
    why="time budget: $((SECONDS - RUN_START))s used of ${BUDGET}s, this scenario needs about ${cost}s"
  fi
  if [ -n "$why" ]; then
    gl_say "  skipped: $why"
    add_row "$name" "$BACKEND" - - - skipped "$why"
    SCEN_DIR=""
    return 0
  fi
  SCEN_START=$SECONDS
  local create=("$NET" "e2e-$name")
  [ "$name" = byzantine ] && create+=(equivocate 4)
  if ! be_create "${create[@]}" >"$SCEN_DIR/actions.log" 2>&1; then
    fail "cannot create the testnet (see actions.log)"
  elif ! be_start_all >>"$SCEN_DIR/actions.log" 2>&1; then
    fail "cannot start the testnet (see actions.log)"
  else
    local i ok=1
    for i in 1 2 3 4; do
      gl_wait_height "$(be_url "$i")" 2 90 "node-$i" || ok=0
    done
    if [ "$ok" = 0 ]; then
      fail "the fresh testnet did not commit blocks"
    else
      gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) testnet up, load starts"
      load_start "$name"
      "$fn" || true
      if [ "$LOADER" = bench ]; then
    gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) waiting for govledger bench to finish its ${BENCH_SECS}s"
  else
    gl_say "  $(printf '%5ss' $((SECONDS - SCEN_START))) stopping the load"
  fi
      load_stop
      check_and_audit "$name"
    fi
  fi
  be_destroy "$SCEN_DIR/logs" >>"$SCEN_DIR/actions.log" 2>&1 || true
  local dur=$((SECONDS - SCEN_START))
  local blocks=- txs=-
  if [ -s "$SCEN_DIR/check.json" ]; then
    blocks="$(jq -r .common_height "$SCEN_DIR/check.json")"
    txs="$(jq -r '"\(.acked) acked / \(.txs_in_chain)"' "$SCEN_DIR/check.json")"
  fi
  local result=passed notes
  [ ${#FAILS[@]} -eq 0 ] || {
    result=FAILED
    ANY_FAILED=1
  }
  notes="$(printf '%s; ' "${FAILS[@]}" "${NOTES[@]}" | sed 's/; $//; s/^; //')"
  if [ "$name" = byzantine ] && [ -s "$SCEN_DIR/check.json" ]; then
    local ev
    ev="$(jq -r '[.evidence[] | select(.against == "dept-4")] | length' "$SCEN_DIR/check.json")"
    notes="${notes:+$notes; }$ev evidence naming dept-4 committed"
  fi
  printf '%s\n' "${FAILS[@]}" >"$SCEN_DIR/failures.txt"
  [ "$result" = passed ] && be_discard_data "$NET"
  gl_say "  $name: $result in ${dur}s ($blocks blocks, $txs transactions)"
  add_row "$name" "$BACKEND" "${dur}s" "$blocks" "$txs" "$result" "${notes:--}"
  SCEN_DIR=""
}

for s in "${SCENARIOS[@]}"; do
  run_scenario "$s"
done

# --- summary --------------------------------------------------------------------------

summary() {
  echo "govledger e2e run $RUN_ID: backend $BACKEND ($BE_DESC), loader $LOADER, $((SECONDS - RUN_START))s"
  {
    printf 'scenario\tbackend\tduration\tblocks\ttransactions\tresult\tnotes\n'
    printf '%s\n' "${ROWS[@]}"
  } | column -t -s $'\t'
}
summary | tee "$RUN_DIR/summary.txt"
cp "$RUN_DIR/summary.txt" "$RESULTS/latest.txt"
printf '%s\n' "${ROWS[@]}" >"$RUN_DIR/summary.tsv"
if [ "$ANY_FAILED" = 1 ]; then
  gl_say "some scenarios FAILED: details in $RUN_DIR/<scenario>/"
  exit 1
fi
