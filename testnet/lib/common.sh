# shellcheck shell=bash
# Shared by testnet/local.sh, testnet/docker/*.sh and testnet/e2e/*.sh: where the binaries
# are, messages, HTTP helpers, waiting for heights, writing node configs.
#
# Sourced, never run. Callers set `set -euo pipefail` themselves.

GL_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
GL_TESTNET="$GL_REPO/testnet"
# One build directory and the release profile for everything (scripts/env.sh).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/govledger-target}"
GL_BIN="$CARGO_TARGET_DIR/release"
# The name scripts print in front of their messages.
GL_WHO="${GL_WHO:-testnet}"

gl_say() { printf '%s: %s\n' "$GL_WHO" "$*" >&2; }
gl_die() {
  printf '%s: error: %s\n' "$GL_WHO" "$*" >&2
  exit 1
}

# Tools the scripts use.
gl_need_tools() {
  local t missing=()
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    gl_die "missing tools: ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})"
  fi
}

# Builds what is missing (release profile, shared target dir). GOVLEDGER_BUILD=always runs
# cargo every time (a no-op when nothing changed), =never only checks.
#   gl_ensure_binaries nodes|e2e   — govledger-node and govledger (and govledger-e2e)
gl_ensure_binaries() {
  local bins=(govledger-node govledger) missing=() b
  [ "$1" = e2e ] && bins+=(govledger-e2e)
  for b in "${bins[@]}"; do
    [ -x "$GL_BIN/$b" ] || missing+=("$b")
  done
  local mode="${GOVLEDGER_BUILD:-missing}"
  if [ "$mode" = never ]; then
    [ ${#missing[@]} -eq 0 ] || gl_die "not built: ${missing[*]} in $GL_BIN (GOVLEDGER_BUILD=never)"
    return 0
  fi
  if [ ${#missing[@]} -eq 0 ] && [ "$mode" != always ]; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || gl_die "cargo is not installed and $GL_BIN lacks: ${missing[*]}"
  gl_say "building ${missing[*]:-the binaries} into $GL_BIN (release; a clean build takes 15-20 minutes)"
  "$GL_REPO/scripts/setup.sh"
  (cd "$GL_REPO" && cargo build --release --locked -p govledger-node -p govledger) >&2
  if [ "$1" = e2e ]; then
    (cd "$GL_REPO" && cargo build --release --locked -p govledger-tests --bin govledger-e2e) >&2
  fi
}

# GET a JSON document (3 s limit); prints nothing and fails if the node does not answer.
gl_get() { curl -fsS --max-time "${GL_HTTP_TIMEOUT:-3}" "$1$2" 2>/dev/null; }

# The committed height of the node at URL, or nothing if it does not answer.
gl_height() { gl_get "$1" /v1/status | jq -r '.height // empty' 2>/dev/null || true; }

# Waits until the node at URL has committed at least HEIGHT; fails after TIMEOUT seconds.
#   gl_wait_height URL HEIGHT TIMEOUT [NAME]
gl_wait_height() {
  local url="$1" want="$2" timeout="$3" name="${4:-$1}" h deadline=$((SECONDS + $3))
  while :; do
    h="$(gl_height "$url")"
    if [ -n "$h" ] && [ "$h" -ge "$want" ]; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      gl_say "$name did not reach height $want within ${timeout}s (at ${h:-no answer})"
      return 1
    fi
    sleep 0.5
  done
}

# Whether PID is a running govledger-node (guards against a recycled pid).
gl_is_node_pid() {
  local pid="$1"
  # (The process may exit between the test and the read: no message then.)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'govledger-node'
}

# Stops a node process: SIGTERM (clean shutdown), SIGKILL after GRACE seconds.
#   gl_stop_pid PID GRACE NAME
gl_stop_pid() {
  local pid="$1" grace="$2" name="$3" deadline
  gl_is_node_pid "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  # A stopped (SIGSTOP) process does not act on SIGTERM until it continues.
  kill -CONT "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while gl_is_node_pid "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      gl_say "$name (pid $pid) still running after ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.2
  done
}

# Writes a node config (the fields of node/src/config.rs).
#   gl_write_config FILE P2P_LISTEN API_LISTEN DATA_DIR BOOTSTRAP... [-- EXTRA_TOML]
# The API rate limits are raised: every request of a test run comes from one address.
gl_write_config() {
  local file="$1" p2p="$2" api="$3" data="$4" boot="" extra=""
  shift 4
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then
      shift
      extra="$*"
      break
    fi
    boot+="    \"$1\","$'\n'
    shift
  done
  cat >"$file" <<EOF
# govledger-node config written by testnet/ (fields: node/src/config.rs).
data_dir = "$data"
genesis = "../genesis.json"
node_key = "node.key"
p2p_listen = "$p2p"
bootstrap = [
$boot]
api_listen = "$api"
log_format = "human"
log_level = "info"

[api]
rate_limit_per_sec = 100000
rate_limit_burst = 100000
$extra
EOF
}

# Rewrites the validators' address hints in a genesis file (one per node, in order).
#   gl_set_genesis_addresses GENESIS ADDR...
gl_set_genesis_addresses() {
  local g="$1" tmp
  shift
  tmp="$(mktemp "$g.XXXXXX")"
  jq --args '.validators |= [to_entries[] | .value.address = $ARGS.positional[.key] | .value]' \
    "$@" <"$g" >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$g"
}

# Short consensus timeouts and an idle block every second, as in the multi-node tests
# (tests/src/lib.rs): fault scenarios then take seconds instead of minutes.
gl_set_fast_params() {
  local g="$1" tmp
  tmp="$(mktemp "$g.XXXXXX")"
  jq '.params.timeout_propose_ms = 1000 | .params.timeout_propose_delta_ms = 500
      | .params.timeout_prevote_ms = 500 | .params.timeout_prevote_delta_ms = 250
      | .params.timeout_precommit_ms = 500 | .params.timeout_precommit_delta_ms = 250
      | .params.idle_block_interval_ms = 1000' <"$g" >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$g"
}

# Starts a node in the background, detached from the terminal (its own session), with its
# log in NODE_DIR/node.log and its pid in NODE_DIR/node.pid.
#   gl_start_node NODE_DIR [WRAPPER...]   (e.g. `ip netns exec NS` to run it in a namespace)
gl_start_node() {
  local dir="$1" pid
  shift
  # `exec` keeps the pid: setsid and `ip netns exec` both exec the next program.
  setsid "$@" "$GL_BIN/govledger-node" --config "$dir/config.toml" \
    >>"$dir/node.log" 2>&1 </dev/null &
  pid=$!
  # Not a job of the calling shell: no "Killed" notices when a test kills it.
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$dir/node.pid"
  sleep 0.3
  if ! gl_is_node_pid "$pid"; then
    gl_say "$(basename "$dir") exited at start; last lines of $dir/node.log:"
    tail -n 15 "$dir/node.log" >&2 || true
    return 1
  fi
}

# The pid recorded for a node, if that process still runs.
gl_node_pid() {
  local pid
  pid="$(cat "$1/node.pid" 2>/dev/null || true)"
  if gl_is_node_pid "$pid"; then echo "$pid"; fi
}
