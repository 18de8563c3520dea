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
from bench.common import free_port, proc_mib, reset_peak, start_server  # noqa: E402
from spmamba import imaging  # noqa: E402
from spmamba.demo import batch, handlers  # noqa: E402
from spmamba.pipeline import Pipeline  # noqa: E402
from spmamba.zoo import list_checkpoints  # noqa: E402
from tests import malformed  # noqa: E402


def family_rows(client, pid: int, cases: list, valid: Path, endpoints=malformed.ENDPOINTS) -> list[dict]:
    """Each family case through each endpoint with the server's peak RSS reset before it, so the peak read
    after is that request's; then a valid request to show the server still serves."""
    rows = []
    for case in cases:
        declared = imaging.declared_bytes(case.path)
        for endpoint in endpoints:
            reset_peak(pid)
            ok, out = malformed.answer(lambda c=case, e=endpoint: malformed.call_endpoint(client, e, c.path))
            peak = proc_mib(pid)
            served, again = malformed.answer(lambda: malformed.call_endpoint(client, "/analyze", valid))
            rows.append(
                {
                    "family": case.family,
                    "endpoint": endpoint,
                    "case": case.name,
                    "clear": malformed.answered_clearly(case, endpoint, None if ok else out),
                    "analysed": case.expect is None,
                    "peak": peak,
                    "ratio": None if declared is None else declared / imaging.MAX_DECODED_BYTES,
                    "serving": served and again[0]["scores"]["total"] > 0,
                    "answer": "analysed" if ok else out,
                }
            )
    return rows


def print_families(rows: list[dict]) -> None:
    print(
        "| family | endpoint | cases | answered clearly | decoded bytes vs limit: analysed / refused | worst "
        "request's server peak RSS MiB (case) | still serving |"
    )
    print("|---|---|---|---|---|---|---|")
    for family, endpoint in dict.fromkeys((r["family"], r["endpoint"]) for r in rows):
        mine = [r for r in rows if r["family"] == family and r["endpoint"] == endpoint]

        def span(rs):
            ratios = [r["ratio"] for r in rs if r["ratio"] is not None]
            return f"{min(ratios):.2g}–{max(ratios):.2g}" if ratios else "–"

        worst = max(mine, key=lambda r: r["peak"])
        analysed, refused = span([r for r in mine if r["analysed"]]), span([r for r in mine if not r["analysed"]])
        print(
            f"| {family} | `{endpoint}` | {len(mine)} | {sum(r['clear'] for r in mine)} | {analysed} / {refused} | "
            f"{worst['peak']:.0f} ({worst['case']}) | "
            f"{sum(r['serving'] for r in mine)} |"
        )
    for endpoint in dict.fromkeys(r["endpoint"] for r in rows):
        peak = max((r for r in rows if r["endpoint"] == endpoint), key=lambda r: r["peak"])
        print(f"\n`{endpoint}`: highest server peak RSS {peak['peak']:.0f} MiB ({peak['case']})", end="")
    print()
    unclear = [r for r in rows if not r["clear"]]
    for r in unclear:
        print(f"not answered as expected: {r['case']} via {r['endpoint']}: {r['answer'][:200]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--families-only", action="store_true", help="only the families table (tests/malformed.py)")
    ap.add_argument("--endpoint", action="append", default=None, help="only these endpoints' families (repeatable)")
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
            if not args.families_only:
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
                print()
            family_cases = malformed.families(tmp / "families")
            endpoints = args.endpoint or malformed.ENDPOINTS
            print_families(family_rows(Client(url, verbose=False), proc.pid, family_cases, valid, endpoints))
            if args.families_only:
                return
            print()
            zips = malformed.zip_cases(tmp / "zips", valid)
            tried = clear = 0
            for archive, expected in zips.values():
                got, _ = batch.score_files([str(archive)], Pipeline({"x": checkpoint}, {}), checkpoint)
                for (fragment, message), row in zip(expected, got, strict=True):
                    tried += 1
                    clear += row[0].endswith(fragment) and (
                        (message is None and row[2] != "error") or (message is not None and message in row[5])
                    )
            print(f"| ZIP members via the batch scorer ({len(zips)} archives) | {tried} | {clear} | – |")

            images = malformed.session_images(tmp / "sessions", args.clients)
            before = proc_mib(proc.pid)
            t = time.perf_counter()
            results = malformed.concurrent_sessions(url, images, label, beta=0.15)
            wall = time.perf_counter() - t
            own = 0
            for r, p in zip(sorted(results, key=lambda r: r["image"]), sorted(images), strict=True):
                a = handlers.analyse(str(p), checkpoint)
                own += abs(r["total"] - handlers.render(a, a.weights).scores["total"]) < 1e-4 * abs(r["total"])
            print()
            print(
                "| concurrent sessions | completed | own scores (no leakage) | wall s | server peak RSS MiB "
                "(before → after) |"
            )
            print("|---|---|---|---|---|")
            print(f"| {args.clients} | {len(results)} | {own} | {wall:.1f} | {before:.0f} → {proc_mib(proc.pid):.0f} |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
