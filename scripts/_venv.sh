# Sourced by run.sh and test.sh: create .venv with Python >= 3.11 and install Interlog into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock \
    -e ".[${INTERLOG_EXTRAS:-dev}]"  # the versions of requirements.lock (scripts/lock.sh)
