#!/usr/bin/env bash
# Install Interlog into .venv and bring it up on the SQLite default: gateway + dashboard.
set -euo pipefail
INTERLOG_EXTRAS=dev source "$(dirname "$0")/_venv.sh"
exec .venv/bin/interlog up "$@"
