"""Coverage-guided fuzzing of the image loader with atheris: only ImageLoadError may escape.

python tests/fuzz_loader.py -runs=3000      (tests/test_hardening.py runs it bounded)
"""

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
with atheris.instrument_imports():
    from spmamba.imaging import ImageLoadError, load_image

NAMES = ("x.png", "x.jpg", "x.dcm", "x.nii", "x.nii.gz", "x.tif", "noext")
TMP = Path(tempfile.mkdtemp(prefix="spmamba-fuzz-"))


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    path = TMP / name
    path.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    try:
        load_image(path)
    except ImageLoadError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
