#!/usr/bin/env bash
# What `pip install .` alone (no extras) gives must work: install Interlog into a new virtualenv
# in a temporary directory, then `interlog --help`, and a chat completion through `interlog
# serve` in front of `interlog demo-model`, on a new SQLite store. Every dependency Interlog
# imports must be declared for this to pass (tests run in .venv, with the dev extra).
# Usage: bash scripts/check_install.sh   (scripts/test.sh runs it; about a minute)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements.lock . 2>&1 \
    | grep -v "^WARNING: Location" || true
interlog="$work/venv/bin/interlog"
"$interlog" --help >/dev/null

free_port() { "$work/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
    for _ in $(seq 1 150); do
        if curl -sf "$1" >/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "check_install: $1 did not answer" >&2
    return 1
}

export INTERLOG_DATABASE_URL="sqlite:///$work/interlog.db"
export INTERLOG_JOURNAL_DIR="$work/journal"
model_port="$(free_port)"
gateway_port="$(free_port)"
"$interlog" demo-model --port "$model_port" >"$work/model.log" 2>&1 &
pids+=($!)
"$interlog" db upgrade >/dev/null
"$interlog" projects create demo >/dev/null
"$interlog" models add echo --upstream "http://127.0.0.1:$model_port/v1" >/dev/null
"$interlog" models attach demo echo --default >/dev/null
key="$("$interlog" keys create --project demo | tail -n 1)"
"$interlog" serve --port "$gateway_port" --no-migrate >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$model_port/v1/models"
wait_for "http://127.0.0.1:$gateway_port/healthz"
answer="$(curl -sf "http://127.0.0.1:$gateway_port/api/v1/chat/completions" \
    -H "Authorization: Bearer $key" \
    -d '{"model": "demo", "messages": [{"role": "user", "content": "installed?"}]}')" || {
    echo "check_install: the chat completion failed" >&2
    tail -n 30 "$work/gateway.log" >&2
    exit 1
}
case "$answer" in
    *'"content":"echo: installed?"'*) ;;
    *) echo "check_install: unexpected answer: $answer" >&2; exit 1 ;;
esac
# Logging made elsewhere, through the gateway (the importer's HTTP client must be installed).
echo '{"model_service": "echo", "project": "demo", "messages": [{"role": "user", "content": "q"}], "completion": "a"}' \
    >"$work/import.jsonl"
"$interlog" import "$work/import.jsonl" --url "http://127.0.0.1:$gateway_port" --api-key "$key" \
    >"$work/import.log" 2>&1 || {
    echo "check_install: interlog import --url failed" >&2
    tail -n 20 "$work/import.log" >&2
    exit 1
}
echo "check_install: pip install . (no extras) works: interlog --help, a chat completion, interlog import --url"
