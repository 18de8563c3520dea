import re
from pathlib import Path

from spmamba.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_info_reports_paper_comparison(capsys):
    assert main(["info", "--config", "paper"]) == 0
    out = capsys.readouterr().out
    total = float(re.search(r"total params\s+([\d.]+) M", out).group(1))
    assert abs(total - 25.8) / 25.8 < 0.02
    dense = float(re.search(r"dense ([\d.]+)", out).group(1))
    assert abs(dense - 8.3) / 8.3 < 0.05
    assert "paper: 25.8 M" in out and "numba CPU" in out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command in readme


def test_train_records_modalities_from_the_command_line():
    from spmamba.cli import build_parser

    args = build_parser().parse_args(["train", "data", "--out", "m.safetensors", "--modality", "CR", "DX"])
    assert args.modality == ["CR", "DX"]
    assert build_parser().parse_args(["train", "data", "--out", "m.safetensors"]).modality == []
