"""Load on the real server: ``llm2rec serve RUN_DIR`` started in its own process on a free loopback port,
then C concurrent clients × R requests each to ``POST /api/recommend``, mixing catalogue histories (item
ids as numbers and ``id:N``, titles) with each client's own new titles. Prints and saves the latency p50 /
p99, requests per second, errors and the server's resident memory before and after the timed part (after a
warm-up round in which every client sends each of its requests once).

    python benchmarks/serve_load.py runs/demo --clients 8 --requests 500
    python benchmarks/serve_load.py RUN_DIR --seconds 120     # a soak: stop after 120 s

Writes benchmarks/results/serve_load.json. ``tests/serve/test_load.py`` runs the same machinery briefly and
checks every answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def rss(self) -> int:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_server(run_dir, log: Path, *, startup_s: float = 120.0, extra_env: dict | None = None):
    """``llm2rec serve run_dir`` on 127.0.0.1 in a child process, until it answers; always stopped after."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "llm2rec.cli", "serve", str(run_dir), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra_env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the server did not answer in {startup_s:.0f} s:\n{log.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/api/rows", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def new_titles_of(client: int, count: int) -> list[str]:
    """Client ``client``'s own new titles: a marker no other client's title contains."""
    return [f"Client{client:02d} Private Prototype No{j} Zq{client * 7919 + j}" for j in range(count)]


def make_plan(users: list[dict], encoders: list[str], clients: int, per_client: int, new_per_client: int,
              seed: int = 0) -> list[list[dict]]:  # fmt: skip
    """Per client, ``per_client`` request bodies: a test user's history in mixed forms, half of them with
    one or two of the client's new titles inserted, k 5 or 10, all encoders or the first one."""
    rng = random.Random(seed)
    plan = []
    for c in range(clients):
        own = new_titles_of(c, new_per_client)
        bodies = []
        for b in range(per_client):
            user = rng.choice(users)
            forms = [rng.choice((i, f"id:{i}", t)) for i, t in zip(user["history"], user["history_titles"])]
            if b % 2:
                for title in rng.sample(own, min(len(own), rng.choice((1, 2)))):
                    forms.insert(rng.randrange(len(forms) + 1), title)
            body = {"history": forms, "k": rng.choice((5, 10)), "exclude_history": rng.random() < 0.3}
            if rng.random() < 0.5:
                body["encoders"] = [rng.choice(encoders)]
            bodies.append(body)
        plan.append(bodies)
    return plan


@dataclass
class Record:
    client: int
    body: int  # index into the client's bodies
    status: int
    answer: dict | None
    seconds: float


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # transport errors (no answer at all)
    wall_s: float = 0.0


def run_clients(url: str, plan: list[list[dict]], requests: int, seconds: float | None = None) -> LoadResult:
    """Each client (a thread with its own connection) sends ``requests`` bodies of its plan in turn, or stops
    at ``seconds``; every answer is recorded."""
    import httpx

    out = LoadResult()
    lock = threading.Lock()
    stop = time.monotonic() + seconds if seconds else float("inf")

    def client(c: int) -> None:
        records = []
        with httpx.Client(base_url=url, timeout=60) as http:
            for r in range(requests):
                if time.monotonic() > stop:
                    break
                b = r % len(plan[c])
                start = time.perf_counter()
                try:
                    resp = http.post("/api/recommend", json=plan[c][b])
                except httpx.HTTPError as exc:
                    with lock:
                        out.failures.append(f"client {c} request {r}: {exc!r}")
                    continue
                elapsed = time.perf_counter() - start
                try:
                    answer = resp.json()
                except ValueError:  # e.g. a 500's plain-text body: counted as a non-200, kept as text
                    answer = {"text": resp.text}
                records.append(Record(c, b, resp.status_code, answer, elapsed))
        with lock:
            out.records.extend(records)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(len(plan))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.wall_s = time.perf_counter() - start
    return out


def _latency_ms(seconds: list[float]) -> dict:
    latencies = sorted(seconds)
    if not latencies:
        return {}

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))]

    return {"requests": len(latencies), "p50": round(1000 * quantile(0.5), 2),
            "p99": round(1000 * quantile(0.99), 2), "max": round(1000 * latencies[-1], 2),
            "mean": round(1000 * sum(latencies) / len(latencies), 2)}  # fmt: skip


def _has_new_title(record: Record) -> bool:
    return any(h.get("kind") == "new" for h in (record.answer or {}).get("history", []))


def summarise(result: LoadResult) -> dict:
    """Counts, requests per second and latency quantiles: all requests, and split by whether the history
    held a new title (embedded by the server's LLM) or only catalogue items."""
    if not result.records:
        return {"requests": 0, "failures": len(result.failures)}
    return {
        "requests": len(result.records),
        "non_200": sum(r.status != 200 for r in result.records),
        "failures": len(result.failures),
        "wall_s": round(result.wall_s, 3),
        "requests_per_s": round(len(result.records) / result.wall_s, 2),
        "latency_ms": _latency_ms([r.seconds for r in result.records]),
        "latency_ms_catalogue_only": _latency_ms(
            [r.seconds for r in result.records if not _has_new_title(r)]
        ),
        "latency_ms_with_new_titles": _latency_ms([r.seconds for r in result.records if _has_new_title(r)]),
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def fetch_catalogue(url: str, count: int = 200) -> tuple[dict, list[dict]]:
    """The server's ``/api/rows`` and up to ``count`` of its test users."""
    import httpx

    rows = httpx.get(f"{url}/api/rows", timeout=10).json()
    return rows, httpx.get(f"{url}/api/users", params={"limit": count}, timeout=30).json()


def load(run_dir, clients: int, requests: int, seconds: float | None, log: Path, new_per_client: int = 3):
    """Start the server, warm it up, measure memory, run the load, measure memory again."""
    with start_server(run_dir, log) as server:
        rows, users = fetch_catalogue(server.url)
        plan = make_plan(users, rows["encoders"], clients, per_client=12, new_per_client=new_per_client)
        warm = run_clients(server.url, plan, requests=len(plan[0]))
        before = server.rss()
        result = run_clients(server.url, plan, requests, seconds)
        after = server.rss()
    return {"plan": plan, "warm_up": warm, "result": result, "rss_before": before, "rss_after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo", help="a finished run (default runs/demo)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per client")
    parser.add_argument("--seconds", type=float, default=None, help="stop the timed part after this long")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--log", type=Path, default=Path("serve_load.log"), help="the server's output")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    run = load(args.run_dir, args.clients, args.requests, args.seconds, args.log)
    summary = summarise(run["result"])
    mib = 2**20
    result = {
        "benchmark": "serve_load",
        "run_dir": str(args.run_dir),
        "clients": args.clients,
        "requests_per_client": args.requests,
        "new_titles_per_client": 3,
        **summary,
        "server_rss_mib": {"before": round(run["rss_before"] / mib, 1), "after": round(run["rss_after"] / mib, 1)},
        "machine": {"platform": platform.platform(), "processor": cpu_model(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "device": "cpu (the server loads every model on the CPU)"},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "note": "server and clients share the machine; a shared machine adds noise",
    }  # fmt: skip
    print(f"{summary['requests']} requests from {args.clients} clients in {summary.get('wall_s')} s: "
          f"{summary.get('requests_per_s')} req/s; non-200 {summary.get('non_200')}, failures "
          f"{summary['failures']}; server RSS {result['server_rss_mib']['before']} → "
          f"{result['server_rss_mib']['after']} MiB")  # fmt: skip
    for key in ("latency_ms", "latency_ms_catalogue_only", "latency_ms_with_new_titles"):
        lat = summary.get(key, {})
        print(f"  {key}: {lat.get('requests')} requests, p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    from llm2rec.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
