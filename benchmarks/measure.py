"""How the benchmarks measure: per-call timings of interleaved cases, child processes' wall time and
peak RSS, and a throwaway `redis-server`.

Every call is timed on its own with `time.perf_counter_ns`, so a row has a median and a p99. Cases
that are compared run interleaved: each round gives every case a batch of the same length in time, so
drift (frequency scaling, a noisy neighbour, a background thread) hits all of them alike. The garbage
collector stays on for every case (it is part of what a call costs), and a full collection runs before
each batch, so no case inherits another's garbage.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

Case = Callable[[], object] | Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Stats:
    median_us: float
    p99_us: float
    samples: int


def summarize(samples_ns: Sequence[int]) -> Stats:
    ordered = sorted(samples_ns)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return Stats(statistics.median(ordered) / 1000, p99 / 1000, len(ordered))


def timer_overhead_ns() -> float:
    """What one `perf_counter_ns` pair costs, included in every sample (not subtracted)."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        t0 = clock()
        samples.append(clock() - t0)
    return float(statistics.median(samples))


def _batch(fn: Callable[[], object], seconds: float, out: list[int]) -> None:
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        out.append(t1 - t0)
        if t1 >= end:
            return


async def _abatch(fn: Callable[[], Awaitable[object]], seconds: float, out: list[int]) -> None:
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        await fn()
        t1 = clock()
        out.append(t1 - t0)
        if t1 >= end:
            return


def interleaved(
    cases: Mapping[str, Case],
    *,
    rounds: int,
    batch_seconds: float,
    warmup_seconds: float,
    loop: asyncio.AbstractEventLoop | None = None,
) -> dict[str, Stats]:
    """Time every case, `rounds` batches of `batch_seconds` each, interleaved. Async cases (coroutine
    functions) run on `loop`, each call awaited in turn."""
    if any(inspect.iscoroutinefunction(fn) for fn in cases.values()) and loop is None:
        raise ValueError("async cases need an event loop")
    samples: dict[str, list[int]] = {name: [] for name in cases}

    def run(fn: Case, seconds: float, out: list[int]) -> None:
        if inspect.iscoroutinefunction(fn):
            assert loop is not None
            loop.run_until_complete(_abatch(fn, seconds, out))
        else:
            _batch(fn, seconds, out)  # type: ignore[arg-type]

    for fn in cases.values():
        run(fn, warmup_seconds, [])
    for _ in range(rounds):
        for name, fn in cases.items():
            gc.collect()
            run(fn, batch_seconds, samples[name])
    return {name: summarize(values) for name, values in samples.items()}


def repeat(fn: Callable[[], object], times: int) -> Stats:
    """Time `times` calls of a slow function (one sample each), after a full collection each. What the
    call returns is freed after the timer stops: a config is built to be kept, and freeing 10,000
    routes' worth of objects is not part of building them."""
    samples = []
    for _ in range(times):
        gc.collect()
        t0 = time.perf_counter_ns()
        result = fn()
        samples.append(time.perf_counter_ns() - t0)
        del result
    return summarize(samples)


# -- child processes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Child:
    wall_s: float
    peak_rss_mib: float
    returncode: int
    stderr: str
    output: str = ""


# Starts the command, waits for it with `wait4` and prints its wall time and peak RSS. The command is
# started from this small process rather than from the harness because Linux carries the RSS high-water
# mark of the process that forks over into the child's `ru_maxrss` (`exec` keeps it): started from a
# harness that holds litellm, every child would report at least the harness's ~250 MiB. This launcher
# holds about as much as `python -c pass`, the smallest command measured.
_LAUNCHER = """
import json, os, sys, time
argv = json.loads(sys.argv[1])
actions = [(os.POSIX_SPAWN_OPEN, 1, sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "maxrss_kib": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}))
"""


def launcher_rss_mib() -> float | None:
    """The launcher's own peak RSS (VmHWM: its `ru_maxrss` would include the harness's), the floor
    below which a child's peak cannot be told apart. None where /proc is missing."""
    code = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    try:
        out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
        return int(out.stdout) / 1024
    except (subprocess.CalledProcessError, ValueError):
        return None


def run_child(argv: Sequence[str], *, env: Mapping[str, str], cwd: str) -> Child:
    """Run a command to its end, through the launcher: its wall time (from spawn to exit) and its own
    peak RSS (`wait4`'s rusage of that one child). Its stdout goes to a temporary file (a pipe could
    fill while the launcher waits) and comes back in `output`; its stderr in `stderr`."""
    with tempfile.TemporaryDirectory() as tmp:
        stdout_path = os.path.join(tmp, "stdout")
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(list(argv)), stdout_path]
        done = subprocess.run(launcher, env=dict(env), cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"the launcher failed for {argv}: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        with open(stdout_path, encoding="utf-8", errors="replace") as f:
            output = f.read()
    return Child(result["wall_s"], result["maxrss_kib"] / 1024, result["returncode"], done.stderr, output)


# -- redis ----------------------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway `redis-server` on a free loopback port, no persistence; None if it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
