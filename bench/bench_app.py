"""Cold start to ready, the first /analyze against warm ones, and /analyze through gradio_client vs the
same work in-process.

    python bench/bench_app.py [--threads 2] [--repeat 5]

Cold start: ``python app.py`` until its page answers, beside a bare Gradio app with one Markdown block
(the framework's own start-up floor). First request: the first /analyze sent the moment the page
answers, beside the median of the next ``repeat`` (the app warms its model in the background at
launch, so the first should cost at most 1.5x a warm one). /analyze per file: a client round trip
(upload, queue, network, encoding) beside calling the handlers directly on the same file. Budgets on a
2-core laptop-class CPU: cold start <= 30 s, /analyze <= 1 s per image for the shipped checkpoint.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import free_port, parser, start, start_server, timeit  # noqa: E402

BARE = "import gradio as gr\nwith gr.Blocks() as d:\n    gr.Markdown('hello')\nd.launch(server_port={port})\n"


def cold_start(cmd: list[str], port: int, env: dict) -> float:
    """Seconds from process start until the page answers HTTP 200."""
    proc, seconds = start_server(cmd, port, ROOT, env)
    proc.terminate()
    proc.wait()
    return seconds


def first_and_warm(path: str, env: dict, repeat: int) -> tuple[float, float, float]:
    """Start ``python app.py``; (seconds to ready, ms of the first /analyze right then, median ms of the next)."""
    import statistics
    import time

    from gradio_client import Client, handle_file

    port = free_port()
    proc, ready = start_server([sys.executable, "app.py"], port, ROOT, dict(env, GRADIO_SERVER_PORT=str(port)))
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        times = []
        for _ in range(repeat + 1):
            t = time.perf_counter()
            client.predict(handle_file(path), api_name="/analyze")
            times.append(1e3 * (time.perf_counter() - t))
        return ready, times[0], statistics.median(times[1:])
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    args = parser(__doc__, repeat=5).parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GRADIO_ANALYTICS_ENABLED="False")
    start(args.threads, ["measure", "ours", "reference", "ratio", "budget"])
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        port = free_port()
        bare.write_text(BARE.format(port=port))
        ref = min(cold_start([sys.executable, str(bare)], port, env) for _ in range(2))
        port = free_port()
        ours = min(cold_start([sys.executable, "app.py", "--port", str(port)], port, env) for _ in range(2))
        print(f"| cold start to ready (s) | {ours:.1f} | {ref:.1f} (bare Gradio app) | {ours / ref:.1f}× | 30 |")
        png = Path(tmp) / "first.png"
        _texture_png(png)
        ready, first, warm = first_and_warm(str(png), env, args.repeat)
        print(
            f"| first /analyze the moment the page answers (ms; ready in {ready:.1f} s) | {first:.0f} | "
            f"{warm:.0f} (median of the next {args.repeat}) | {first / warm:.2f}× | 1.5× |"
        )

    from gradio_client import Client, handle_file
    from pydicom.data import get_testdata_file

    from spmamba.demo import handlers
    from spmamba.demo.app import allowed_paths, build_demo
    from spmamba.demo.examples import build_examples
    from spmamba.zoo import list_checkpoints

    examples = build_examples()
    demo = build_demo(examples)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, allowed_paths=allowed_paths(examples))
    client = Client(demo.local_url, verbose=False)
    checkpoint = next(iter(list_checkpoints().values()))
    by_caption = {e.caption: str(e.path) for e in examples}
    files = [(c, p) for c, p in by_caption.items() if c.startswith("Chest X-ray, normal")]
    files += [
        ("CT slice, DICOM 128×128", get_testdata_file("CT_small.dcm")),
        ("MR volume, 4-D NIfTI", by_caption["Synthetic MR volume with a bright focus (4-D NIfTI)"]),
        ("synthetic 16-bit PNG 384×384", by_caption["Synthetic chest phantom with a round opacity (16-bit PNG)"]),
    ]
    try:
        for name, path in files:
            remote = timeit(
                lambda p=path: client.predict(handle_file(p), api_name="/analyze"), repeat=args.repeat, warmup=1
            )
            local = timeit(
                lambda p=path: handlers.render(a := handlers.analyse(p, checkpoint), a.weights),
                repeat=args.repeat,
                warmup=1,
            )
            print(
                f"| /analyze {name} (ms) | {remote:.0f} | {local:.0f} (handlers in-process) | "
                f"{remote / local:.1f}× | 1000 |"
            )
    finally:
        demo.close()


def _texture_png(path: Path) -> None:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[:300, :260]
    Image.fromarray((127 + 100 * np.sin(xx / 17) * np.cos(yy / 23)).astype(np.uint8)).save(path)


if __name__ == "__main__":
    main()
