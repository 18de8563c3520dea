import re
from pathlib import Path

from spmamba.cli import main
from tests.conftest import SHIPPED, needs_checkpoint

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


def test_train_options_come_from_train_options():
    """Every TrainOptions field is a `spmamba train` option with the same default, so defaults live in one place."""
    import dataclasses

    from spmamba.cli import build_parser
    from spmamba.train import TrainOptions

    args = build_parser().parse_args(["train", "data", "--out", "m.safetensors"])
    for f in dataclasses.fields(TrainOptions):
        if f.name not in ("data", "out"):
            want = list(f.default) if isinstance(f.default, tuple) else f.default
            assert getattr(args, f.name) == want, f.name
    args = build_parser().parse_args(
        [
            "train",
            "d",
            "--out",
            "m",
            "--weight-decay",
            "0.01",
            "--val-every",
            "3",
            "--modality",
            "CR",
            "DX",
            "--no-feature-cache",
            "--val-list",
            "v.csv",
        ]
    )
    assert (args.weight_decay, args.val_every, args.modalities, args.feature_cache, args.val_list) == (
        0.01,
        3,
        ["CR", "DX"],
        False,
        "v.csv",
    )


@needs_checkpoint
def test_model_card_states_the_checkpoints_own_figures_and_keeps_notes(tmp_path):
    import shlex

    import yaml

    from spmamba.card import GENERATED_END, command
    from spmamba.checkpoint import read_metadata

    meta = read_metadata(SHIPPED)
    card = tmp_path / "card.md"
    card.write_text("old generated text\n" + GENERATED_END + "\n## Notes by people\nkept\n")
    assert main(["card", str(SHIPPED), "--out", str(card)]) == 0
    text = card.read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["license"] == "cc-by-4.0" and header["datasets"] == ["zhanglab"]
    from huggingface_hub import ModelCard

    hub = ModelCard.load(card)  # as the Hub reads it: the metadata parses into its model-index
    assert hub.data.license == "cc-by-4.0" and hub.data.eval_results[0].metric_value == results_value(header)
    results = header["model-index"][0]["results"][0]["metrics"]
    assert results[0]["value"] == round(100 * meta["metrics"]["validation"]["auroc"], 1)
    assert f"{meta['calibration']['threshold']:.4f}" in text and "Kermany" in text
    assert text.endswith("## Notes by people\nkept\n") and "old generated text" not in text
    argv = shlex.split(command(meta["training"], "x.safetensors").replace("$SPMAMBA_DATA", str(tmp_path)))
    from spmamba.cli import build_parser

    args = build_parser().parse_args(argv[1:])
    options = meta["training"]["options"]
    assert (args.config, args.epochs, list(args.modalities)) == (
        options["config"],
        options["epochs"],
        options["modalities"],
    )


def results_value(header: dict) -> float:
    return header["model-index"][0]["results"][0]["metrics"][0]["value"]


def test_readme_data_section_names_every_dataset_a_checkpoint_was_trained_on():
    from spmamba.checkpoint import read_raw_metadata
    from spmamba.datasets import DATASETS

    readme = (ROOT / "README.md").read_text()
    data = readme[readme.index("## Data") :]
    for info in DATASETS.values():
        assert f"`{info.folder}/`" in data and info.source.split(";")[0] in data, info.folder
    for ckpt in sorted((ROOT / "weights").glob("*.safetensors")):
        trained_on = read_raw_metadata(ckpt).get("training", {}).get("data_path_name")
        assert trained_on in DATASETS, f"{ckpt.name} was trained on {trained_on!r}, which the Data section lacks"
