"""Fresh-machine smoke check: the README's first command, then two real /analyze calls and spmamba predict.

    python bench/smoke.py [--timeout 900]

Runs ``python app.py`` exactly as the README says (the port comes from GRADIO_SERVER_PORT, a free
one), waits until the page answers, sends a PNG and a DICOM through ``gradio_client`` as the README's
example does, checks that finite scores and a verdict come back, and stops the server; then runs the
``spmamba`` command the same install put beside this Python on the same two files from a temporary folder.
It imports nothing beyond requirements.txt and the project, so ``.ci/run`` runs it in a virtual environment
built by the README's first command alone. Exit status 0 means the front door works.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"smoke: python app.py exited with status {proc.returncode} before serving")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return time.perf_counter() - t
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"smoke: python app.py did not answer within {timeout:.0f} s")


def inputs(folder: Path) -> list[Path]:
    """A textured grey PNG, and pydicom's bundled CT slice."""
    from pydicom.data import get_testdata_file

    yy, xx = np.mgrid[:300, :260]
    png = folder / "smoke.png"
    Image.fromarray((127 + 100 * np.sin(xx / 17) * np.cos(yy / 23)).astype(np.uint8)).save(png)
    return [png, Path(get_testdata_file("CT_small.dcm"))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the page")
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    log = tempfile.NamedTemporaryFile("w+", prefix="smoke-app-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        print(f"smoke: python app.py ready in {wait_ready(url, proc, args.timeout):.1f} s")
        client = Client(url, verbose=False)
        with tempfile.TemporaryDirectory() as tmp:
            for path in inputs(Path(tmp)):
                t = time.perf_counter()
                result, overlay = client.predict(handle_file(str(path)), api_name="/analyze")
                total = result["scores"]["total"]
                if not (math.isfinite(total) and overlay and result["checkpoint"] and result["verdict"]):
                    raise SystemExit(f"smoke: /analyze on {path.name} returned {result!r}")
                print(
                    f"smoke: /analyze {path.name}: score {total:.4g}, {result['verdict']} "
                    f"[{result['checkpoint']}] in {time.perf_counter() - t:.2f} s"
                )
            cli = Path(sys.executable).with_name("spmamba")  # installed by the same command, run from elsewhere
            done = subprocess.run(
                [str(cli), "predict", *map(str, inputs(Path(tmp)))],
                cwd=tmp,
                text=True,
                capture_output=True,
                timeout=args.timeout,
            )
            if done.returncode != 0:
                raise SystemExit(f"smoke: spmamba predict from {tmp} failed:\n{done.stderr[-3000:]}")
            print("smoke: spmamba predict from another folder:\n" + done.stdout.strip())
        print("smoke: passed")
        return 0
    except BaseException:
        log.seek(0)
        print("smoke: app output follows\n" + log.read()[-5000:], file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(main())
