"""Soak: N clients for M minutes sending a mix of valid and malformed files to /analyze, /segment and
/analyze_volume (each request picks one at random).

    python bench/soak.py [--clients 12] [--minutes 5] [--valid-share 0.5]

Starts ``python app.py`` as its own process and reports per endpoint: requests, answers (results or a
user-facing refusal), drops (anything else: a connection failure or an error that is not one of our
messages), p50/p95 latency of the valid requests; and the server's RSS before and after and its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import free_port, proc_mib, start_server  # noqa: E402
from tests import malformed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--valid-share", type=float, default=0.5)
    args = ap.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        cases = malformed.build(Path(tmp) / "corpus")
        images = malformed.session_images(Path(tmp) / "valid", 6)
        valid = {"/analyze": images, "/segment": images, "/analyze_volume": malformed.session_volumes(Path(tmp), 3)}
        port = free_port()
        proc, ready = start_server(
            [sys.executable, "app.py", "--port", str(port)], port, ROOT, {**os.environ, "GRADIO_ANALYTICS_ENABLED": "0"}
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            for endpoint in malformed.ENDPOINTS:  # warm: each endpoint's checkpoints loaded once
                malformed.call_endpoint(Client(url, verbose=False), endpoint, valid[endpoint][0])
            rss_before = proc_mib(proc.pid, "VmRSS")
            lock = threading.Lock()
            stats = {e: {"requests": 0, "answered": 0, "refused": 0, "dropped": 0, "latency": []} for e in valid}
            drops: list[str] = []
            stop = time.monotonic() + 60 * args.minutes

            def client(seed: int) -> None:
                rng = random.Random(seed)
                c = Client(url, verbose=False)
                while time.monotonic() < stop:
                    endpoint = rng.choice(malformed.ENDPOINTS)
                    good = rng.random() < args.valid_share
                    path = rng.choice(valid[endpoint]) if good else rng.choice(cases).path
                    t = time.perf_counter()
                    try:
                        malformed.call_endpoint(c, endpoint, path)
                        outcome = "answered"
                    except Exception as err:  # our refusals arrive as AppError with the user's sentence
                        outcome = "refused" if type(err).__name__ == "AppError" else "dropped"
                        if outcome == "dropped":
                            with lock:
                                drops.append(f"{endpoint} {path.name}: {type(err).__name__}")
                    with lock:
                        row = stats[endpoint]
                        row["requests"] += 1
                        row[outcome] += 1
                        if good and outcome == "answered":
                            row["latency"].append(time.perf_counter() - t)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            rss_after, peak = proc_mib(proc.pid, "VmRSS"), proc_mib(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"server ready in {ready:.1f} s; {args.clients} clients for {args.minutes:g} min, all three endpoints")
    columns = ["endpoint", "requests", "answered", "refused with a reason", "dropped", "valid p50 (s)"]
    columns += ["valid p95 (s)"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for endpoint, row in stats.items():
        lat = np.array(row["latency"]) if row["latency"] else np.array([np.nan])
        cells = [f"`{endpoint}`", row["requests"], row["answered"], row["refused"], row["dropped"]]
        cells += [f"{np.percentile(lat, 50):.2f}", f"{np.percentile(lat, 95):.2f}"]
        print("| " + " | ".join(map(str, cells)) + " |")
    print(f"\nserver RSS {rss_before:.0f} → {rss_after:.0f} MiB before → after, peak {peak:.0f} MiB")
    for d in drops[:10]:
        print("dropped:", d)


if __name__ == "__main__":
    main()
