#!/usr/bin/env bash
# Write requirements.lock: the exact version of every package a `.[dev]` install resolves to
# today, from a new virtualenv. scripts/_venv.sh and scripts/check_install.sh install with it as
# pip constraints (-c), so two installs a week apart are the same. Update it after changing the
# dependencies in pyproject.toml (or to move to newer releases): bash scripts/lock.sh, run the
# suite, commit both files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 \
    | grep -v "^WARNING: Location" || true
{
    echo "# Written by scripts/lock.sh from a new .[dev] install with $("$PYTHON" --version); used as pip"
    echo "# constraints by scripts/_venv.sh and scripts/check_install.sh. Do not edit by hand."
    "$work/venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check \
        | grep -v " @ " | LC_ALL=C sort -f
} >requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
