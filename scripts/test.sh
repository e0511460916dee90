#!/usr/bin/env bash
# Install Interlog into .venv and run the whole suite: ruff, mypy, an install without extras
# (scripts/check_install.sh), pytest on SQLite and PostgreSQL.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"

# PostgreSQL must answer on 127.0.0.1:5432 (or INTERLOG_TEST_POSTGRES_URL); start a local
# Debian cluster if one is installed but stopped.
if ! .venv/bin/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=3).close()" 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        for version in /etc/postgresql/*; do
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
        done
    fi
fi

# The dashboard's browser test drives Debian's chromium through its chromedriver; install them
# when missing (only where apt-get exists and we are root, e.g. CI containers).
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# `pip install .` without extras, in a virtualenv of its own: --help, a chat completion, an import.
bash scripts/check_install.sh
.venv/bin/python -m pytest "$@"
