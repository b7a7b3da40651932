#!/usr/bin/env bash
# servers.sh — starts and stops the servers the s3dbfs test suite talks to.
#
#   tests/servers/servers.sh start    start every server (idempotent), write RUNDIR/env
#   tests/servers/servers.sh stop     stop them (by pid, waiting until they are gone)
#   tests/servers/servers.sh status   one line per server; exit 1 unless all run
#   tests/servers/servers.sh env      print RUNDIR/env (eval "$(servers.sh env)")
#
# RUNDIR is tests/servers/.run unless S3DB_TEST_RUNDIR says otherwise.  It
# holds, per server NAME: NAME.pid, NAME.port, NAME.log; s3rver's data
# directory (wiped at every start); front-requests.jsonl, the strict front's
# request log; and env, the export lines tests read:
#   S3DB_TEST_S3_URL        http://127.0.0.1:PORT of the strict front (s3front.js)
#   S3DB_TEST_S3_BUCKET     s3db-test (created by s3rver at start)
#   S3DB_TEST_ACCESS_KEY    AKIDS3DBTEST
#   S3DB_TEST_SECRET_KEY    s3db/test+secret=key ('/', '+', '=' on purpose)
#   S3DB_TEST_FRONT_LOG     the front's JSON-lines request log
#   S3DB_TEST_UPSTREAM_URL  s3rver itself (unsigned requests, bypasses the front)
#   S3DB_TEST_RUNDIR        RUNDIR
#   S3DB_TEST_WEBHOOK_URL   http://127.0.0.1:PORT/hook of the webhook receiver (webhook.js)
#   S3DB_TEST_WEBHOOK_CONTROL  its control API, http://127.0.0.1:PORT/__control
#   S3DB_TEST_WEBHOOK_LOG   the JSON-lines log of what it received
#
# Servers listen on 127.0.0.1 only, on ports the kernel picks (port 0), so
# two runs never collide.  Only bash, node and curl are needed; no tty.
#
# Adding a server: write NAME_start (spawn it with `spawn`, wait with
# `wait_until`, record its port with `set_port`, export variables with
# `env_add`), optionally NAME_stop when a plain SIGTERM to its pid is not the
# way to stop it, and append NAME to SERVERS.  Servers start in SERVERS
# order and stop in reverse.  NAME_start runs where `set -e` does not apply
# (bash suspends it in functions called from `if`): end every step that can
# fail with `|| return 1` (or `|| fail MESSAGE`); on failure everything
# started so far is stopped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNDIR=${S3DB_TEST_RUNDIR:-$here/.run}
NODE=${NODE:-node}
BUCKET=s3db-test
ACCESS_KEY=AKIDS3DBTEST
SECRET_KEY='s3db/test+secret=key'
START_TIMEOUT=${S3DB_TEST_START_TIMEOUT:-30}   # seconds per server

SERVERS=(s3rver s3front webhook)

die() { echo "servers.sh: $*" >&2; exit 1; }
fail() { echo "servers.sh: $*" >&2; return 1; }

# ---- helpers ----------------------------------------------------------

# spawn NAME CMD...: runs CMD in the background, detached from the terminal,
# output in RUNDIR/NAME.log, pid in RUNDIR/NAME.pid.  CMD must exec the
# server itself (no wrapper process) so that the pid is the server's.
spawn() {
  local name=$1; shift
  : >"$RUNDIR/$name.log"
  nohup "$@" </dev/null >>"$RUNDIR/$name.log" 2>&1 &
  echo $! >"$RUNDIR/$name.pid"
}

pid_of() { cat "$RUNDIR/$1.pid" 2>/dev/null || true; }
port_of() { cat "$RUNDIR/$1.port" 2>/dev/null || true; }
set_port() { echo "$2" >"$RUNDIR/$1.port"; }
# running PID: the process exists and is not a zombie (a server whose
# parent has exited waits for init to reap it, which can take seconds).
running() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && running "$p"; }

# wait_until NAME CMD...: polls CMD every 0.1 s until it succeeds; fails
# (showing the server's log) when NAME's process dies or START_TIMEOUT passes.
wait_until() {
  local name=$1; shift
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      echo "servers.sh: $name exited during start-up; its log:" >&2
      tail -n 30 "$RUNDIR/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "servers.sh: $name did not answer within ${START_TIMEOUT}s; its log:" >&2
      tail -n 30 "$RUNDIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

# http_ok URL: the URL answers with a 2xx status.
http_ok() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1") || return 1
  [ "${code:0:1}" = 2 ]
}

# env_add VAR VALUE: one export line for RUNDIR/env (single-quoted).
env_add() {
  local v=${2//\'/\'\\\'\'}
  printf "export %s='%s'\n" "$1" "$v" >>"$RUNDIR/env.tmp"
}

# ---- s3rver: the object store ------------------------------------------

s3rver_start() {
  local js="$here/node_modules/s3rver/bin/s3rver.js" port
  [ -f "$js" ] || fail "s3rver is not installed: run scripts/install-deps.sh" || return 1
  rm -rf "$RUNDIR/s3rver-data"
  mkdir -p "$RUNDIR/s3rver-data" || return 1
  # --openssl-legacy-provider: s3rver's continuation tokens use DES.
  NODE_OPTIONS=--openssl-legacy-provider spawn s3rver "$NODE" "$js" \
    -d "$RUNDIR/s3rver-data" -a 127.0.0.1 -p 0 --configure-bucket "$BUCKET" || return 1
  wait_until s3rver grep -q 'S3rver listening on' "$RUNDIR/s3rver.log" || return 1
  port=$(sed -n 's/.*S3rver listening on [^:]*:\([0-9]*\).*/\1/p' "$RUNDIR/s3rver.log" | head -n 1)
  [ -n "$port" ] || fail "cannot read s3rver's port from $RUNDIR/s3rver.log" || return 1
  set_port s3rver "$port"
  wait_until s3rver http_ok "http://127.0.0.1:$port/" || return 1
  env_add S3DB_TEST_UPSTREAM_URL "http://127.0.0.1:$port"
}

# ---- s3front: the strict SigV4 / metadata / fault-injecting front -------

s3front_start() {
  local up
  up=$(port_of s3rver)
  [ -n "$up" ] || fail "s3front needs s3rver" || return 1
  rm -f "$RUNDIR/s3front.port"
  : >"$RUNDIR/front-requests.jsonl"
  # keys through the environment, not argv, to keep the secret out of ps
  S3FRONT_KEYS="$ACCESS_KEY:$SECRET_KEY" spawn s3front "$NODE" "$here/s3front.js" \
    --host 127.0.0.1 --port 0 --port-file "$RUNDIR/s3front.port" --upstream "$up" \
    --keys-env S3FRONT_KEYS --log "$RUNDIR/front-requests.jsonl" || return 1
  wait_until s3front test -s "$RUNDIR/s3front.port" || return 1
  wait_until s3front http_ok "http://127.0.0.1:$(port_of s3front)/__control/health" || return 1
  env_add S3DB_TEST_S3_URL "http://127.0.0.1:$(port_of s3front)"
  env_add S3DB_TEST_S3_BUCKET "$BUCKET"
  env_add S3DB_TEST_ACCESS_KEY "$ACCESS_KEY"
  env_add S3DB_TEST_SECRET_KEY "$SECRET_KEY"
  env_add S3DB_TEST_FRONT_LOG "$RUNDIR/front-requests.jsonl"
}

# ---- webhook: a receiver for the webhook plugin's tests ------------------

webhook_start() {
  rm -f "$RUNDIR/webhook.port"
  spawn webhook "$NODE" "$here/webhook.js" --host 127.0.0.1 --port 0 \
    --port-file "$RUNDIR/webhook.port" --log "$RUNDIR/webhook-received.jsonl" || return 1
  wait_until webhook test -s "$RUNDIR/webhook.port" || return 1
  wait_until webhook http_ok "http://127.0.0.1:$(port_of webhook)/__control/health" || return 1
  env_add S3DB_TEST_WEBHOOK_URL "http://127.0.0.1:$(port_of webhook)/hook"
  env_add S3DB_TEST_WEBHOOK_CONTROL "http://127.0.0.1:$(port_of webhook)/__control"
  env_add S3DB_TEST_WEBHOOK_LOG "$RUNDIR/webhook-received.jsonl"
}

# ---- generic start / stop ------------------------------------------------

# stop_one NAME: NAME_stop when defined, else SIGTERM, then SIGKILL after
# 10 s; waits until the process is gone.
stop_one() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if declare -F "${name}_stop" >/dev/null; then
    "${name}_stop" || true
  elif [ -n "$pid" ] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    for ((i = 0; i < 200; i++)); do
      running "$pid" || break
      sleep 0.05
    done
    if running "$pid"; then
      echo "servers.sh: $name (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do running "$pid" || break; sleep 0.05; done
    fi
  fi
  rm -f "$RUNDIR/$name.pid" "$RUNDIR/$name.port"
}

cmd_stop() {
  local i
  for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do
    stop_one "${SERVERS[$i]}"
  done
  rm -f "$RUNDIR/env" "$RUNDIR/env.tmp"
}

all_running() {
  local s
  [ -f "$RUNDIR/env" ] || return 1
  for s in "${SERVERS[@]}"; do alive "$s" || return 1; done
}

cmd_start() {
  local s
  mkdir -p "$RUNDIR"
  command -v "$NODE" >/dev/null || die "node not found"
  command -v curl >/dev/null || die "curl not found"
  if all_running; then
    echo "servers.sh: already running (env in $RUNDIR/env)"
    return 0
  fi
  cmd_stop   # leftovers of a half-started or crashed run
  : >"$RUNDIR/env.tmp"
  env_add S3DB_TEST_RUNDIR "$RUNDIR"
  for s in "${SERVERS[@]}"; do
    if ! "${s}_start"; then
      echo "servers.sh: $s failed to start; stopping the others" >&2
      cmd_stop
      return 1
    fi
  done
  mv "$RUNDIR/env.tmp" "$RUNDIR/env"
  echo "servers.sh: started ${SERVERS[*]} (env in $RUNDIR/env)"
}

cmd_status() {
  local s rc=0
  for s in "${SERVERS[@]}"; do
    if alive "$s"; then
      echo "$s running pid $(pid_of "$s") port $(port_of "$s")"
    else
      echo "$s not running"
      rc=1
    fi
  done
  return $rc
}

cmd_env() {
  [ -f "$RUNDIR/env" ] || die "not running (no $RUNDIR/env): run servers.sh start"
  cat "$RUNDIR/env"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
