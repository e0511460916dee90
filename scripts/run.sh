#!/usr/bin/env bash
# Install Interlog into .venv and bring it up on the SQLite default: gateway + dashboard (and, for
# the demo dataset seeded on first start, the demo models), until Ctrl-C.
set -euo pipefail
INTERLOG_EXTRAS=dev source "$(dirname "$0")/_venv.sh"
exec .venv/bin/interlog up "$@"
