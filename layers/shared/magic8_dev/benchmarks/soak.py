"""Soak: `make run` for a while, watched from outside (`make soak`, SOAK_MINUTES=30).

Starts `magic8 run` as a child process (its own process group, free ports, its console
captured), waits for GET /health, then samples every `sample_every_s`:
- RSS of every process of the run (the runner and its children: the moto process, ...),
  from /proc;
- the producer backlog and the Kinesis lag, parsed from the console's status lines;
and measures GET /health p50 and a cached batch of 100 p50 (keep-alive HTTP, 20 calls
each) at minute 2 and at the end (10 calls at every sample between: `latency_trend`, a slope
rather than two points of a shared machine). Per process role (the runner: API, handlers,
replay; moto), the RSS slope after warm-up and the CPU used per minute early and late:
`per_process`. Then it sends SIGINT, times the exit, and checks that
no port the run listened on is still listening. The console's tracebacks are counted
(and the function log's, for the record). Writes bench/results/soak.json with the
acceptance checks of issue 17 (RSS growth after warm-up <= 50 MB, /health and the cached
batch at the end within 20% of minute 2, no traceback, exit <= 5 s, no port left).

Latencies are wall times on whatever machine runs it: a shared machine's load shows up
in them (the load average is recorded beside them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from magic8.settings import REPO_ROOT

KEY = "soak-key"
WARM_UP_S = 120.0  # "minute 2"
STATUS = re.compile(r"backlog ([\d,]+), kinesis lag ([\d,]+)")
TRACEBACK = "Traceback (most recent call last)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- /proc ----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def process_tree(root: int) -> list[int]:
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds the process has used (/proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role(cmd: str, is_root: bool) -> str:
    """What a process of the run is: the runner (API, handlers, replay), moto, other."""
    if is_root:
        return "runner"
    if "moto_process" in cmd:
        return "moto"
    return "other"


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t_s, value) in value per minute (None under 2 points)."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mt) * (v - mv) for t, v in points)
    return cov / var * 60.0


def per_role(samples: list[dict[str, Any]], from_t_s: float) -> dict[str, dict[str, Any]]:
    """Per role (summed over its processes): RSS at the first sample from `from_t_s` and at
    the last, the RSS slope (MB/min, least squares over those samples) and the CPU it used
    per minute in the first and in the last third of that span."""
    rows: dict[str, list[tuple[float, float, float | None]]] = {}
    for smp in samples:
        if smp["t_s"] < from_t_s:
            continue
        tot: dict[str, list[float | None]] = {}
        for proc in smp["processes"].values():
            acc = tot.setdefault(proc["role"], [0.0, 0.0])
            acc[0] = (acc[0] or 0.0) + proc["rss_mb"]
            cpu = proc.get("cpu_s")
            acc[1] = None if cpu is None or acc[1] is None else acc[1] + cpu
        for name, (rss, cpu) in tot.items():
            rows.setdefault(name, []).append((smp["t_s"], rss or 0.0, cpu))
    out: dict[str, dict[str, Any]] = {}
    for name, pts in rows.items():
        slope = slope_per_min([(t, v) for t, v, _ in pts])

        def cpu_rate(part: list[tuple[float, float, float | None]]) -> float | None:
            if len(part) < 2 or part[0][2] is None or part[-1][2] is None:
                return None
            dt = part[-1][0] - part[0][0]
            return round((part[-1][2] - part[0][2]) / dt * 60.0, 2) if dt > 0 else None

        third = max(2, len(pts) // 3)
        out[name] = {
            "rss_first_mb": round(pts[0][1], 1),
            "rss_last_mb": round(pts[-1][1], 1),
            "rss_slope_mb_per_min": None if slope is None else round(slope, 2),
            "cpu_s_per_min_first_third": cpu_rate(pts[:third]),
            "cpu_s_per_min_last_third": cpu_rate(pts[-third:]),
        }
    return out


def trend(samples: list[dict[str, Any]], key: str, from_t_s: float) -> dict[str, Any]:
    """A latency over the run from `from_t_s` on: least-squares slope (ms/min) and the
    median of the first three and of the last three probes."""
    pts = [(s["t_s"], float(s[key])) for s in samples if s["t_s"] >= from_t_s and key in s]
    slope = slope_per_min(pts)
    return {
        "probes": len(pts),
        "slope_ms_per_min": None if slope is None else round(slope, 3),
        "first_3_median_ms": round(statistics.median(v for _, v in pts[:3]), 2) if pts else None,
        "last_3_median_ms": round(statistics.median(v for _, v in pts[-3:]), 2) if pts else None,
    }


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    return raw.strip()[:120]


def _socket_inodes(pid: int) -> set[str]:
    out: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def listening_ports(pids: list[int] | None = None) -> set[int]:
    """TCP ports in LISTEN state (of these processes' sockets, or of anyone)."""
    inodes: set[str] | None = None
    if pids is not None:
        inodes = set().union(*(_socket_inodes(p) for p in pids)) if pids else set()
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                continue
            if inodes is not None and parts[9] not in inodes:
                continue
            ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


# --- the run --------------------------------------------------------------------------


class Console:
    """The run's console (stdout + stderr), kept in a file and scanned for status lines."""

    def __init__(self, proc: subprocess.Popen[bytes], path: Path) -> None:
        self.path = path
        self.backlog: int | None = None
        self.lag: int | None = None
        self.max_backlog = 0
        self.max_lag = 0
        self.tracebacks = 0
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with self.path.open("wb") as out:
            for raw in proc.stdout:
                out.write(raw)
                out.flush()
                line = raw.decode(errors="replace")
                if TRACEBACK in line:
                    self.tracebacks += 1
                m = STATUS.search(line)
                if m:
                    self.backlog = int(m.group(1).replace(",", ""))
                    self.lag = int(m.group(2).replace(",", ""))
                    self.max_backlog = max(self.max_backlog, self.backlog)
                    self.max_lag = max(self.max_lag, self.lag)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _batch(n: int = 100) -> dict[str, Any]:
    from magic8_dev.benchmarks.predict import make_trades

    return {"requests": make_trades({"SPX": 5850.0, "SPY": 585.0, "NDX": 20500.0}, n)}


def reference_ms() -> float:
    """A fixed piece of pure-Python CPU work, timed in the soak's own process: how fast the
    machine is for a process at this moment (a shared machine's load moves it)."""
    t = time.perf_counter()
    sum(i * i for i in range(20_000))
    return (time.perf_counter() - t) * 1000.0


def latencies(url: str, n: int = 20) -> dict[str, float]:
    """/health p50 and a cached batch of 100 p50 (the first batch call warms the cache),
    with the service's own time of the batch (its batch_metrics.elapsed_ms), the misses
    among the probe's answers (0: all cached) and the machine reference beside them."""
    body = _batch()
    with httpx.Client(base_url=url, timeout=60, headers={"x-api-key": KEY}) as http:
        health, batch, service, ref = [], [], [], []
        misses = 0
        for _ in range(n):
            t = time.perf_counter()
            http.get("/health").raise_for_status()
            health.append(time.perf_counter() - t)
            ref.append(reference_ms())
        http.post("/predict/batch", json=body).raise_for_status()
        for _ in range(n):
            t = time.perf_counter()
            r = http.post("/predict/batch", json=body)
            batch.append(time.perf_counter() - t)
            r.raise_for_status()
            metrics = r.json().get("batch_metrics") or {}
            service.append(float(metrics.get("elapsed_ms") or 0.0))
            misses += int(metrics.get("prediction_misses") or 0)
    return {
        "health_p50_ms": round(statistics.median(health) * 1000, 2),
        "cached_batch_100_p50_ms": round(statistics.median(batch) * 1000, 2),
        "cached_batch_service_p50_ms": round(statistics.median(service), 2),
        "cached_batch_misses": misses,
        "machine_reference_p50_ms": round(statistics.median(ref), 3),
    }


def sample(root: int, console: Console, started: float) -> dict[str, Any]:
    procs: dict[str, dict[str, Any]] = {}
    for pid in process_tree(root):
        rss = rss_mb(pid)
        if rss is not None:
            cmd = cmdline(pid)
            cpu = cpu_s(pid)
            procs[str(pid)] = {
                "rss_mb": round(rss, 1),
                "cpu_s": None if cpu is None else round(cpu, 2),
                "role": role(cmd, pid == root),
                "cmd": cmd,
            }
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mb_total": round(sum(p["rss_mb"] for p in procs.values()), 1),
        "processes": procs,
        "backlog": console.backlog,
        "kinesis_lag": console.lag,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"magic8 run exited with {proc.returncode} before healthy")
        try:
            if httpx.get(url + "/health", timeout=10).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("magic8 run not healthy in time")


def run(minutes: float, results_dir: Path, sample_every_s: float = 30.0) -> dict[str, Any]:
    port, aws_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="magic8-soak-"))
    log_file = work / "functions.log"
    env = {
        **os.environ,
        "MAGIC8_THROTTLE": "off",  # the probe calls more than 20 batches a minute
        "MAGIC8_DASHBOARD_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        str(Path(sys.executable).parent / "magic8"),
        "run",
        "--port", str(port),
        "--aws-port", str(aws_port),
        "--api-key", KEY,
        "--log-file", str(log_file),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    console = Console(proc, work / "console.log")
    out: dict[str, Any] = {
        "benchmark": "soak",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": minutes,
        "command": " ".join(cmd),
        "machine": {"cpus": os.cpu_count()},
    }
    try:
        out["healthy_after_s"] = round(wait_healthy(url, proc), 1)
        t_healthy = time.monotonic()
        samples: list[dict[str, Any]] = []
        early: dict[str, Any] | None = None
        end_at = t_healthy + minutes * 60.0
        next_sample = t_healthy
        while time.monotonic() < end_at:
            if proc.poll() is not None:
                raise RuntimeError(f"magic8 run exited with {proc.returncode} during the soak")
            now = time.monotonic()
            if early is None and now - t_healthy >= min(WARM_UP_S, minutes * 60.0 / 2):
                early = {**sample(proc.pid, console, t_healthy), **latencies(url)}
                samples.append(early)
                next_sample = time.monotonic() + sample_every_s
            elif now >= next_sample:
                # a smaller probe at every sample: a trend, not two points of a noisy machine
                samples.append({**sample(proc.pid, console, t_healthy), **latencies(url, 10)})
                next_sample = now + sample_every_s
            time.sleep(1.0)
        final = {**sample(proc.pid, console, t_healthy), **latencies(url)}
        samples.append(final)
        pids = process_tree(proc.pid)
        ports = sorted(listening_ports(pids))
        # SIGINT, as Ctrl-C: the runner's own handler stops every component
        t_int = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        exit_s = time.monotonic() - t_int
        exited = proc.poll() is not None
        time.sleep(0.5)  # a child's socket may linger a moment
        left = sorted(set(ports) & listening_ports())
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and rss_mb(p) is not None]
        console.join(5)
        log_tracebacks = (
            log_file.read_text(errors="replace").count(TRACEBACK) if log_file.exists() else 0
        )
        assert early is not None
        growth = final["rss_mb_total"] - early["rss_mb_total"]

        def within(a: float, b: float) -> bool:
            return b <= a * 1.2

        out.update(
            {
                "minute_2": early,
                "end": final,
                "samples": samples,
                "max_backlog": console.max_backlog,
                "max_kinesis_lag": console.max_lag,
                "console_tracebacks": console.tracebacks,
                "log_tracebacks": log_tracebacks,
                "listening_ports_before_sigint": ports,
                "sigint_exit_s": round(exit_s, 2),
                "exited": exited,
                "exit_code": proc.returncode,
                "ports_left_listening": left,
                "processes_left": alive,
                "rss_growth_after_warm_up_mb": round(growth, 1),
                # per process role, from minute 2 on: the robust figure on a shared machine
                "per_process": per_role(samples, early["t_s"]),
                "latency_trend": {
                    key: trend(samples, key, early["t_s"])
                    for key in (
                        "health_p50_ms",
                        "cached_batch_100_p50_ms",
                        "cached_batch_service_p50_ms",
                        "machine_reference_p50_ms",
                    )
                },
                "console_log": str(console.path),
                "checks": {
                    "rss_growth_le_50_mb": growth <= 50.0,
                    "health_p50_within_20pct": within(
                        early["health_p50_ms"], final["health_p50_ms"]
                    ),
                    "cached_batch_p50_within_20pct": within(
                        early["cached_batch_100_p50_ms"], final["cached_batch_100_p50_ms"]
                    ),
                    "no_traceback_in_console": console.tracebacks == 0,
                    "sigint_exit_le_5_s": exited and exit_s <= 5.0,
                    "no_listening_port_left": not left,
                    "no_process_left": not alive,
                },
            }
        )
    finally:
        if proc.poll() is None:  # never leave the run behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "soak.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30"))
    )
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--results", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    out = run(args.minutes, Path(args.results), args.sample_every)
    top = (
        "healthy_after_s", "rss_growth_after_warm_up_mb", "max_backlog", "max_kinesis_lag",
        "console_tracebacks", "sigint_exit_s", "ports_left_listening", "checks",
    )  # fmt: skip
    per = (
        "health_p50_ms", "cached_batch_100_p50_ms", "cached_batch_service_p50_ms",
        "cached_batch_misses", "machine_reference_p50_ms", "rss_mb_total", "backlog",
        "kinesis_lag",
    )  # fmt: skip
    summary = {k: out.get(k) for k in top}
    summary["per_process"] = out.get("per_process")
    summary["latency_trend"] = out.get("latency_trend")
    for key in ("minute_2", "end"):
        part = out.get(key) or {}
        summary[key] = {k: part.get(k) for k in per}
    print(json.dumps(summary, indent=2))
    return 0 if all((out.get("checks") or {"ok": False}).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
