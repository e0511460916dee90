"""How fast the `interlog` command starts: the median of N runs of `interlog --help` and of two
admin commands on a fresh SQLite store, against `python -c pass` and a bare Typer app with two
commands rendering its help, measured in the same run (issue 22: at most 15x `python -c pass`).

    python -m bench cli [--runs 10]

Prints one line per command: median wall seconds and the ratio to `python -c pass`; RSS is not
reported (each command is a short-lived process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def one() -> None: ...
@app.command()
def two() -> None: ...
app()
"""


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> float:
    """The median wall time of RUNS runs of COMMAND (output discarded; it must succeed)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "INTERLOG_DATABASE_URL": f"sqlite:///{workdir}/cli.db"}
        interlog = [sys.executable, "-m", "ingest"]
        subprocess.run([*interlog, "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "bare Typer app --help (2 commands)": [sys.executable, "-c", BARE_TYPER, "--help"],
            "interlog --help": [*interlog, "--help"],
            "interlog projects list": [*interlog, "projects", "list"],
            "interlog keys list": [*interlog, "keys", "list"],
        }
        results = {name: median_seconds(cmd, args.runs, env) for name, cmd in commands.items()}
    base = results["python -c pass"]
    print(f"\nCLI start-up, median of {args.runs} runs\n")
    for name, seconds in results.items():
        print(f"{name:<38}{seconds * 1000:>8.0f} ms{seconds / base:>8.1f}x python -c pass")
    return results


if __name__ == "__main__":
    main()
