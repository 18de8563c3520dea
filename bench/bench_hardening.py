"""Hardening table: malformed inputs answered clearly, server still serving, concurrent sessions, peak memory.

    python bench/bench_hardening.py [--clients 8]

Starts ``python app.py`` as its own process, so the peak RSS is the server's alone (VmHWM), then drives
it with gradio_client: every case of tests/malformed.py through /analyze and through the Analyse tab's
handler, each followed by a valid request; ZIP archives through the batch scorer; and N concurrent
sessions that analyse their own image and move β.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import free_port, start_server  # noqa: E402
from demo import batch, handlers  # noqa: E402
from spmamba.zoo import list_checkpoints  # noqa: E402
from tests import malformed  # noqa: E402


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    from gradio_client import Client

    label, checkpoint = next(iter(list_checkpoints().items()))
    port = free_port()
    proc, _ = start_server(
        [sys.executable, "app.py", "--port", str(port)], port, ROOT, dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            cases = malformed.build(tmp / "corpus")
            valid = next(c.path for c in cases if c.name == "16-bit PNG")
            rows = malformed.drive_corpus(Client(url, verbose=False), cases, label, valid)
            bad = [r for r in rows if r["expect"] is not None]
            print("| inputs | cases tried | answered clearly | server still serving after each |")
            print("|---|---|---|---|")
            for kind, name in (("api", "/analyze"), ("ui", "Analyse tab handler")):
                print(
                    f"| malformed files via {name} | {len(bad)} | {sum(r[f'{kind}_clear'] for r in bad)} | "
                    f"{sum(r['still_serving'] for r in bad)} |"
                )
                good = [r for r in rows if r["expect"] is None]
                print(
                    f"| awkward but valid files via {name} (analysed) | {len(good)} | "
                    f"{sum(r[f'{kind}_clear'] for r in good)} | {sum(r['still_serving'] for r in good)} |"
                )
            zips = malformed.zip_cases(tmp / "zips", valid)
            tried = clear = 0
            for archive, expected in zips.values():
                got, _ = batch.score_files([str(archive)], checkpoint)
                for (fragment, message), row in zip(expected, got, strict=True):
                    tried += 1
                    clear += row[0].endswith(fragment) and (
                        (message is None and row[2] != "error") or (message is not None and message in row[5])
                    )
            print(f"| ZIP members via the batch scorer ({len(zips)} archives) | {tried} | {clear} | – |")

            images = malformed.session_images(tmp / "sessions", args.clients)
            before = _peak_rss_mib(proc.pid)
            t = time.perf_counter()
            results = malformed.concurrent_sessions(url, images, label, beta=0.15)
            wall = time.perf_counter() - t
            own = 0
            for r, p in zip(sorted(results, key=lambda r: r["image"]), sorted(images), strict=True):
                a = handlers.analyze(str(p), checkpoint)
                own += abs(r["total"] - handlers.render(a, a.weights).scores["total"]) < 1e-4 * abs(r["total"])
            print()
            print(
                "| concurrent sessions | completed | own scores (no leakage) | wall s | server peak RSS MiB "
                "(before → after) |"
            )
            print("|---|---|---|---|---|")
            print(
                f"| {args.clients} | {len(results)} | {own} | {wall:.1f} | {before:.0f} → "
                f"{_peak_rss_mib(proc.pid):.0f} |"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
