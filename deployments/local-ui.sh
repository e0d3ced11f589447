#!/usr/bin/env bash
# `make ui` / `make ui-stop`: a local Prefect server (SQLite, 127.0.0.1), the `gpu` pool, the deployments of
# prefect.yaml and one worker, all started in the background with their PIDs and logs in $UI_DIR (.ui/).
#
#   deployments/local-ui.sh start    # prints the UI URL when everything is up
#   deployments/local-ui.sh stop     # stops the worker, then the server, by PID
#
# Each process runs in its own session (setsid), so `stop` can end the server together with its uvicorn
# child; the worker gets a single SIGTERM (start-worker.sh gives it default signal handlers).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UI_DIR="${UI_DIR:-$ROOT/.ui}"
UI_PORT="${UI_PORT:-4200}"
VENV_BIN="$ROOT/.venv/bin"
export PREFECT_HOME="$UI_DIR/prefect-home"  # its own SQLite database, never ~/.prefect
export PREFECT_API_URL="http://127.0.0.1:$UI_PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false  # telemetry cannot leave this machine anyway
export CRYPTORL_HOME="$ROOT"
export CRYPTORL_STORAGE="${CRYPTORL_STORAGE:-file://$ROOT/artifacts}"
export CRYPTORL_PROFILE="${CRYPTORL_PROFILE:-smoke}"  # the deployments' default profile (prefect.yaml: spec.profile default)
HEALTH_TIMEOUT_S=180  # 11-22 s measured on 2 cores; first start also builds the UI

running() { [[ -f "$UI_DIR/$1.pid" ]] && kill -0 "$(cat "$UI_DIR/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$UI_DIR"
  if running server; then
    echo "already running: http://127.0.0.1:$UI_PORT (make ui-stop to stop)"
    return 0
  fi
  setsid "$VENV_BIN/prefect" server start --host 127.0.0.1 --port "$UI_PORT" >"$UI_DIR/server.log" 2>&1 &
  echo $! >"$UI_DIR/server.pid"
  wait_for_health
  # Idempotent: an existing pool (and any edit made to it in the UI) is kept.
  "$VENV_BIN/prefect" work-pool inspect gpu >/dev/null 2>&1 ||
    "$VENV_BIN/prefect" work-pool create gpu --type process >"$UI_DIR/pool.log"
  (cd "$ROOT" && "$VENV_BIN/prefect" --no-prompt deploy --all >"$UI_DIR/deploy.log" 2>&1) ||
    { echo "deploy failed, see $UI_DIR/deploy.log" >&2; stop; exit 1; }
  CRYPTORL_ENV_FILE="${CRYPTORL_ENV_FILE:-/dev/null}" setsid "$ROOT/deployments/start-worker.sh" --name local-worker \
    >"$UI_DIR/worker.log" 2>&1 &
  echo $! >"$UI_DIR/worker.pid"
  echo "Prefect UI: http://127.0.0.1:$UI_PORT  (work pool gpu, 1 worker, profile $CRYPTORL_PROFILE, store $CRYPTORL_STORAGE;" \
    "make ui-stop to stop)"
}

wait_for_health() {
  for _ in $(seq "$HEALTH_TIMEOUT_S"); do
    if "$VENV_BIN/python" -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" \
      2>/dev/null; then
      return 0
    fi
    running server || { echo "the Prefect server exited, see $UI_DIR/server.log" >&2; exit 1; }
    sleep 1
  done
  echo "no answer from $PREFECT_API_URL/health after ${HEALTH_TIMEOUT_S} s, see $UI_DIR/server.log" >&2
  stop
  exit 1
}

stop() {
  for name in worker server; do  # the worker first: it reports to the server while it stops
    if running "$name"; then
      local pid
      pid="$(cat "$UI_DIR/$name.pid")"
      # The worker alone (its flow runs finish as Prefect decides); the server with its uvicorn child.
      if [[ $name == worker ]]; then kill -TERM "$pid"; else kill -TERM -- "-$pid"; fi
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid"; fi
      echo "stopped $name (PID $pid)"
    fi
    rm -f "$UI_DIR/$name.pid"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
