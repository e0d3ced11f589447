#!/usr/bin/env bash
# Start one Prefect process worker on the `gpu` work pool; extra arguments go to `prefect worker start`
# (e.g. --name gpu-1 --limit 1).
#
# Settings come from the environment, optionally loaded from $CRYPTORL_ENV_FILE (default
# ~/.config/cryptorl/worker.env, see worker.env.example): PREFECT_API_URL, CRYPTORL_STORAGE, CRYPTORL_PROFILE
# (the profile of runs that leave `profile` null, the deployments' default; unset: smoke), AWS_*.
# They stay in this process's environment: nothing is stored in Prefect blocks or printed.
#
# Signals: the worker replaces this shell (exec), so a supervisor's signal reaches it directly, and it
# starts with default signal handlers. That matters because a job started with `&` from a
# non-interactive shell inherits SIGINT *ignored*; Prefect's worker turns SIGTERM into a SIGINT to
# itself, so it would then need a second SIGTERM (its SIGKILL fallback) to stop. Bash cannot un-ignore
# an inherited ignored signal, so a tiny Python step restores the defaults before exec'ing the worker.
# One SIGTERM (or Ctrl-C) stops it; flow runs in progress are left to finish as Prefect decides.
set -euo pipefail

CRYPTORL_HOME="${CRYPTORL_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export CRYPTORL_HOME  # prefect.yaml's pull step runs every flow in this directory

ENV_FILE="${CRYPTORL_ENV_FILE:-$HOME/.config/cryptorl/worker.env}"
if [[ -f "$ENV_FILE" ]]; then
  set -a
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  set +a
fi
: "${PREFECT_API_URL:?set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), see deployments/README.md}"

PYTHON="${CRYPTORL_PYTHON:-$CRYPTORL_HOME/.venv/bin/python}"
POOL="${CRYPTORL_POOL:-gpu}"
cd "$CRYPTORL_HOME"
exec "$PYTHON" -c '
import os, signal, sys
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
    signal.signal(number, signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "prefect", "worker", "start", *sys.argv[1:]])
' --pool "$POOL" --type process "$@"
