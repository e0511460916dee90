"""Load generators: wrk (POST via a Lua script) or, without wrk, a closed-loop aiohttp client.

Both return a LoadResult: requests/s, p50/p99 latency (ms), non-2xx/socket errors, responses
completed, and requests sent. `sent` counts every request written to a socket, including the
ones still in flight when the time was up (wrk cuts those off), so a gateway that logs every
request it received should have logged exactly `sent` interactions.
`time_to_first_token` measures streaming: from sending the request to the first content chunk.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson


@dataclass
class LoadResult:
    rps: float
    p50: float
    p99: float
    errors: int
    completed: int
    sent: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_wrk() -> None:
    """Install wrk (Debian package) when it is missing and apt-get can; else say why not."""
    if shutil.which("wrk"):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("wrk is not installed (apt-get install wrk); using the aiohttp load generator")
        return
    print("installing wrk (apt-get install wrk) ...", flush=True)
    for command in ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode == 0 and shutil.which("wrk"):
            return
    print("could not install wrk; using the aiohttp load generator")


def tool_name() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp load generator"


def run_load(
    url: str, body: dict[str, Any], key: str | None, clients: int, seconds: float
) -> LoadResult:
    """Drive URL with CLIENTS concurrent connections for SECONDS (wrk when installed)."""
    if shutil.which("wrk"):
        return run_wrk(url, body, key, clients, seconds)
    return run_aiohttp(url, body, key, clients, seconds)


def _millis(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60_000}[unit]


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
local threads = {{}}
local prepared = nil
setup = function(thread) table.insert(threads, thread) end
init = function(args) sent = 0; prepared = wrk.format() end
request = function() sent = sent + 1; return prepared end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("sent") end
  -- wrk calls request() once more in the first thread to check the request it builds
  io.write(string.format("SENT %d\\n", total - 1))
  io.write(string.format("ERRORS %d\\n", summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
"""


def run_wrk(
    url: str, body: dict[str, Any], key: str | None, clients: int, seconds: float
) -> LoadResult:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script_text = _WRK_SCRIPT.format(body=json.dumps(json.dumps(body)), auth=auth)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    try:
        threads = min(clients, 2)
        command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s"]
        command += ["--latency", "--timeout", "30s", "-s", script.name, url]
        output = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)

    def find(pattern: str) -> str:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match.group(1)

    return LoadResult(
        rps=float(find(r"Requests/sec:\s+([0-9.]+)")),
        p50=_millis(find(r"\s50%\s+(\S+)")),
        p99=_millis(find(r"\s99%\s+(\S+)")),
        errors=int(find(r"ERRORS (\d+)")),
        completed=int(find(r"(\d+) requests in")),
        sent=int(find(r"SENT (\d+)")),
    )


def run_aiohttp(
    url: str, body: dict[str, Any], key: str | None, clients: int, seconds: float
) -> LoadResult:
    """A bounded closed-loop load generator: CLIENTS workers, each one request at a time."""
    import aiohttp

    async def main() -> LoadResult:
        latencies: list[float] = []
        errors = sent = 0
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = orjson.dumps(body)
        deadline = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal errors, sent
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    sent += 1
                    try:
                        async with session.post(url, data=payload, headers=headers) as response:
                            await response.read()
                            errors += response.status >= 300
                    except aiohttp.ClientError:
                        errors += 1
                    latencies.append((time.perf_counter() - start) * 1000)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return LoadResult(
            rps=len(latencies) / elapsed,
            p50=latencies[len(latencies) // 2],
            p99=latencies[int(len(latencies) * 0.99)],
            errors=errors,
            completed=len(latencies),
            sent=sent,
        )

    return asyncio.run(main())


def time_to_first_token(
    url: str, body: dict[str, Any], key: str | None, requests: int
) -> dict[str, float]:
    """Streamed requests one at a time: median and p99 ms to the first content chunk, and total."""
    import aiohttp

    async def main() -> dict[str, float]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = orjson.dumps({**body, "stream": True})
        firsts: list[float] = []
        totals: list[float] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(requests):
                start = time.perf_counter()
                first = None
                async with session.post(url, data=payload, headers=headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")
                    async for line in response.content:
                        if first is None and line.startswith(b"data: {") and b'"content"' in line:
                            chunk = orjson.loads(line[6:])
                            if any((c.get("delta") or {}).get("content") for c in chunk["choices"]):
                                first = time.perf_counter()
                totals.append((time.perf_counter() - start) * 1000)
                if first is None:
                    raise RuntimeError(f"{url}: the stream carried no content")
                firsts.append((first - start) * 1000)
        firsts.sort()
        return {
            "ttft_p50": statistics.median(firsts),
            "ttft_p99": firsts[int(len(firsts) * 0.99)],
            "total_p50": statistics.median(totals),
        }

    return asyncio.run(main())
