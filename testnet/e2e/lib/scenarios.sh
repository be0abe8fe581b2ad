# shellcheck shell=bash
# shellcheck disable=SC2034 # variables read by run.sh, which sources this file
# The fault scenarios. Each runs on a fresh 4-validator testnet (dept-1..4) that is
# already committing blocks, while the load generator writes records of every kind; the
# runner then stops the load and runs the checker and the audits. A scenario's own
# assertions (no block during a 2|2 split, progress of the majority, catch-up) call `fail`.
#
# Phase lengths (seconds) come from run.sh: T_WARMUP, T_DOWN, T_PARTITION, T_PAUSE, T_TAIL.

# Scenario → what it needs and roughly how long it takes (for --budget), in seconds, with
# the normal phases on the docker backend (measured: 50-76 s); run.sh scales it for --fast
# and the local backend (measured: 25-31 s with --fast).
declare -A SCENARIO_NEEDS=([partition-2-2]=partition [partition-1-3]=partition)
declare -A SCENARIO_COST=([rolling-restart]=90 [partition-2-2]=85)
SCENARIO_COST_DEFAULT=75
ALL_SCENARIOS=(kill-restart partition-2-2 partition-1-3 pause rolling-restart byzantine wipe-disk)
declare -A SCENARIO_TITLE=(
  [kill-restart]="SIGKILL one validator, restart it: it catches up"
  [partition-2-2]="split 2|2: no block on either side; heal: the chain resumes"
  [partition-1-3]="cut one node off: the other 3 commit; heal: it catches up"
  [pause]="freeze one node longer than the timeouts, then resume it"
  [rolling-restart]="restart every node in turn (SIGTERM) under load"
  [byzantine]="dept-4's validator double-signs prevotes: committed evidence names dept-4"
  [wipe-disk]="wipe one node's data: it rejoins from its peers"
  [quorum-loss]="freeze 2 of 4 nodes: nothing commits; resume: the chain resumes"
)

scenario_kill_restart() {
  sleep "$T_WARMUP"
  act "SIGKILL node-2" be_kill 2 || return
  expect_progress "1 3 4" 3 30 "without node-2"
  sleep "$T_DOWN"
  act "restart node-2" be_start 2 || return
  wait_caught_up 2 90
  sleep "$T_TAIL"
}

scenario_partition_2_2() {
  sleep "$T_WARMUP"
  act "split {node-1,node-2} | {node-3,node-4}" be_split "1 2" "3 4" || return
  note "$BE_PARTITION_DESC"
  # A block whose precommits were already on their way may still land; then nothing.
  sleep 3
  expect_frozen "1 2 3 4" "$T_PARTITION" "during the 2|2 split"
  act "heal the split" be_heal || return
  expect_progress "1 2 3 4" 3 60 "after healing the 2|2 split"
  sleep "$T_TAIL"
}

scenario_partition_1_3() {
  sleep "$T_WARMUP"
  act "cut node-4 off" be_isolate 4 || return
  note "$BE_PARTITION_DESC"
  sleep 3
  local before
  before="$(node_height 4)"
  expect_progress "1 2 3" 3 30 "majority while node-4 is cut off"
  sleep "$T_PARTITION"
  local after
  after="$(node_height 4)"
  if [ -n "$before" ] && [ -n "$after" ] && [ "$after" != "$before" ]; then
    fail "node-4 committed alone while cut off (height $before -> $after)"
  fi
  act "reconnect node-4" be_heal || return
  wait_caught_up 4 90
  sleep "$T_TAIL"
}

scenario_pause() {
  sleep "$T_WARMUP"
  act "freeze node-3" be_pause 3 || return
  expect_progress "1 2 4" 3 30 "while node-3 is frozen"
  sleep "$T_PAUSE"
  act "resume node-3" be_resume 3 || return
  wait_caught_up 3 90
  sleep "$T_TAIL"
}

scenario_rolling_restart() {
  sleep "$T_WARMUP"
  local i others
  for i in 1 2 3 4; do
    others="$(echo 1 2 3 4 | tr ' ' '\n' | grep -vx "$i" | tr '\n' ' ')"
    act "stop node-$i (SIGTERM)" be_stop "$i" || return
    expect_progress "$others" 2 30 "while node-$i restarts"
    act "start node-$i" be_start "$i" || return
    wait_caught_up "$i" 90
  done
  sleep "$T_TAIL"
}

scenario_byzantine() {
  # The testnet was created with `[testing] equivocate = true` for node-4 (dept-4).
  sleep "$T_WARMUP"
  expect_progress "1 2 3 4" 5 60 "with an equivocating validator"
  sleep "$T_PARTITION"
}

scenario_wipe_disk() {
  sleep "$T_WARMUP"
  act "stop node-3 (SIGTERM)" be_stop 3 || return
  act "wipe node-3's data" be_wipe 3 || return
  expect_progress "1 2 4" 3 30 "while node-3 is down"
  sleep "$T_DOWN"
  act "start node-3 on an empty disk" be_start 3 || return
  wait_caught_up 3 120
  sleep "$T_TAIL"
}

# The closest local equivalent of a 2|2 split without network namespaces: two nodes
# frozen, so neither half has a quorum.
scenario_quorum_loss() {
  sleep "$T_WARMUP"
  act "freeze node-3" be_pause 3 || return
  act "freeze node-4" be_pause 4 || return
  sleep 3
  expect_frozen "1 2" "$T_PARTITION" "with 2 of 4 validators frozen"
  act "resume node-3" be_resume 3 || return
  act "resume node-4" be_resume 4 || return
  expect_progress "1 2 3 4" 3 60 "after resuming"
  sleep "$T_TAIL"
}
