"""Helpers of the book's notebooks (``sepnet_core.book``): formatting, paths, run results, spreads,
commands, the run-folder marker, the phantom folder and the single-network evaluation loop."""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sepnet_core import book
from sepnet_core.data.geometry import Geometry
from sepnet_core.data.io import write_image
from sepnet_core.intensity import get_intensity
from sepnet_core.models import ModelConfig
from sepnet_core.organs import NUM_CLASSES, ORGANS
from sepnet_core.training import LoadedModel, preset

# ------------------------------------------------------------------------------------------ helpers


def make_repo(root: Path) -> Path:
    """A folder that find_repo_root accepts (``_toc.yml`` and ``sepnet_core/``)."""
    (root / "sepnet_core").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: intro\n")
    return root


def write_run(folder: Path, run: str, seed: int, dice: float | list[float], cases: tuple[str, ...] = ("c1",),
              hd95: float = 2.0) -> Path:
    """Results of a fake training stage: every organ of every case has Dice ``dice`` (or one per case)."""
    folder.mkdir(parents=True)
    per_case = dice if isinstance(dice, list) else [dice] * len(cases)
    rows = [{"case": case, "label": o.label, "organ": o.key, "dice": d, "hd95": hd95, "volume_ref_ml": 1.0,
             "volume_pred_ml": 1.0} for case, d in zip(cases, per_case, strict=True) for o in ORGANS]
    pd.DataFrame(rows).to_csv(folder / "test_metrics.csv", index=False)
    pd.DataFrame({"epoch": [1], "step": [2], "seconds": [3.0]}).to_csv(folder / "log.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"seed": seed, "model": {"name": "sepnet"}}))
    (folder / "timing.json").write_text(json.dumps({"run": run, "seed": seed, "train_seconds": 3.0,
                                                    "inference_seconds": {c: 1.0 for c in cases}}))
    return folder


# --------------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (0.81234, ".3f", "0.812"),
        (float("nan"), ".3f", "n/a"),
        (float("inf"), ".2f", "n/a"),
        (None, ".2f", "n/a"),
        ("ok", "", "ok"),
        (12345, ",", "12,345"),
        (np.float64(0.25), ".1%", "25.0%"),
        (np.int64(3), "", "3"),
        (-0.0123, "+.2f", "-0.01"),
    ],
)
def test_format_value(value, fmt, expected):
    assert book.format_value(value, fmt) == expected


def test_glue_text_glues_the_formatted_string(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert book.glue_text("score", 0.81234, ".3f") is None
    assert book.glue_text("missing", float("nan"), ".3f") is None
    assert calls == [(("score", "0.812"), {"display": False}), (("missing", "n/a"), {"display": False})]


def test_quiet_notebook_sets_env_and_one_handler(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    logger = logging.getLogger("sepnet_core")
    before = list(logger.handlers), logger.level, logger.propagate
    try:
        book.quiet_notebook()
        book.quiet_notebook()
        assert os.environ["TQDM_DISABLE"] == "1"
        ours = [h for h in logger.handlers if getattr(h, "_sepnet_book", False)]
        assert len(ours) == 1 and logger.level == logging.WARNING
    finally:
        logger.handlers[:] = before[0]
        logger.setLevel(before[1])
        logger.propagate = before[2]


# -------------------------------------------------------------------------------------------- paths


def test_repo_path_resolves_against_the_repository_root(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo")
    (root / "notebooks").mkdir()
    monkeypatch.chdir(root / "notebooks")  # as Jupyter started by hand
    assert book.repo_path("results/cpu/data") == root.resolve() / "results/cpu/data"
    assert book.repo_path("/abs/data") == Path("/abs/data")
    assert book.repo_path("x", root=tmp_path) == tmp_path / "x"
    made = book.output_dir("figures/cpu/x")
    assert made.is_dir() and made == root.resolve() / "figures/cpu/x"


def test_repo_path_outside_a_repository_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not inside the SepNet-Book repository"):
        book.repo_path("results")


# ------------------------------------------------------------------------------------------ results


def test_write_and_read_json_and_csv_replace_older_files(tmp_path):
    book.write_json({"a": float("nan"), "b": [1, 2]}, tmp_path, "x.json")
    book.write_json({"a": 1.5}, tmp_path, "x.json")
    assert book.read_json(tmp_path / "x.json") == {"a": 1.5}
    book.write_json({"a": float("nan")}, tmp_path, "nan.json")
    assert math.isnan(book.read_json(tmp_path / "nan.json")["a"])
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["p", "q"], name="k"))
    book.write_csv(frame, tmp_path, "t.csv", index=True)
    book.write_csv(frame * 2, tmp_path, "t.csv", index=True)
    assert pd.read_csv(tmp_path / "t.csv", index_col="k")["v"].tolist() == [2, 4]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_read_run_and_evaluation_table(tmp_path):
    a0 = write_run(tmp_path / "train_a_s0", "a_s0", 0, 0.5, cases=("c1", "c2"))
    a1 = write_run(tmp_path / "train_a_s1", "a_s1", 1, 0.7, cases=("c1", "c2"))
    b0 = write_run(tmp_path / "train_b_s0", "b_s0", 0, 0.6, cases=("c1", "c2"))
    result = book.read_run(a1)
    assert (result.run, result.seed, len(result.metrics)) == ("a_s1", 1, 44)
    table = book.evaluation_table({"A": [a0, a1], "B": [b0]})
    assert list(table.columns[:3]) == ["config", "seed", "run"]
    assert len(table) == 3 * 44
    assert table.groupby(["config", "seed"])["dice"].mean().to_dict() == pytest.approx(
        {("A", 0): 0.5, ("A", 1): 0.7, ("B", 0): 0.6})
    assert table["case"].map(type).eq(str).all()


def test_read_run_and_evaluation_table_errors(tmp_path):
    folder = write_run(tmp_path / "train_a_s0", "a_s0", 0, 0.5)
    (folder / "timing.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"timing\.json.*--only train_a_s0"):
        book.read_run(folder)
    other = write_run(tmp_path / "train_b_s0", "b_s0", 0, 0.5)
    again = write_run(tmp_path / "train_c_s0", "c_s0", 0, 0.5)
    with pytest.raises(ValueError, match="two runs with seed 0"):
        book.evaluation_table({"B": [other, again]})
    with pytest.raises(ValueError, match="no results folder"):
        book.evaluation_table({"B": []})


def test_seed_spread_is_the_sample_std_over_seeds(tmp_path):
    # Every organ of the single case has Dice 0.5 (seed 0) or 0.7 (seed 1): each run's mean and weighted
    # Dice equal that value, so the std over the two seeds is |0.7 - 0.5| / sqrt(2).
    s0 = write_run(tmp_path / "s0", "a_s0", 0, 0.5, hd95=2.0)
    s1 = write_run(tmp_path / "s1", "a_s1", 1, 0.7, hd95=4.0)
    spread = book.seed_spread([s0, s1])
    assert spread["n_seeds"] == 2
    assert spread["weighted_dice"] == pytest.approx(0.2 / math.sqrt(2))
    assert spread["mean_dice"] == pytest.approx(0.2 / math.sqrt(2))
    assert spread["weighted_hd95"] == pytest.approx(2.0 / math.sqrt(2))
    single = book.seed_spread([s0])
    assert single["n_seeds"] == 1 and math.isnan(single["weighted_dice"])


@pytest.mark.parametrize(("value", "expected"), [(0.1, 0.1), (0, 0.0), (float("nan"), None), (None, None),
                                                 (float("inf"), None)])
def test_spread_or_none(value, expected):
    assert book.spread_or_none(value) == expected


# ----------------------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("sepnet", "slf1", "ath", 1.0, 0, ()), ["model.name=sepnet", "intensity=slf1", "loss=ath", "seed=0",
                                                 "alpha=1"]),
        (("unet", "slf2", "ath", 0.5, 2, ()), ["model.name=unet", "intensity=slf2", "loss=ath", "seed=2",
                                               "alpha=0.5"]),
        (("sepnet", "brain", "dice", None, 1, ("epochs=3",)), ["model.name=sepnet", "intensity=brain",
                                                               "loss=dice", "seed=1", "epochs=3"]),
    ],
)
def test_train_overrides(args, expected):
    assert book.train_overrides(*args) == expected


def test_train_overrides_build_the_intended_config():
    from sepnet_core.training import apply_overrides

    cfg = apply_overrides(preset("smoke"), book.train_overrides("unet", "slf3", "ath", 0.5, 4, ["epochs=1"]))
    assert (cfg.model.name, cfg.intensity, cfg.loss, cfg.alpha, cfg.seed, cfg.epochs) == \
        ("unet", "slf3", "ath", 0.5, 4, 1)


def test_torchrun_command():
    cmd = book.torchrun_command("paper", "/data", "work/paper/runs/x", ["seed=1", "alpha=0.5"], 2,
                                python="py")
    assert cmd[:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[cmd.index("--preset") + 1] == "paper" and cmd[cmd.index("--out") + 1] == "work/paper/runs/x"
    assert "--resume" in cmd and "--force" not in cmd
    assert cmd[-4:] == ["--set", "seed=1", "--set", "alpha=0.5"]
    assert "--force" in book.torchrun_command("paper", "/d", "r", [], 1, resume=False)
    with pytest.raises(ValueError, match="nproc"):
        book.torchrun_command("paper", "/d", "r", [], 0)


def test_papermill_command_round_trips_the_parameters():
    params = {"profile": "paper", "runs": {"A": ["results/paper/x"]}, "alpha": None, "seed": 0}
    cmd = book.papermill_command("notebooks/03_train.ipynb", "book/pages/03_train/x.ipynb", params,
                                 executable="papermill")
    words = shlex.split(cmd)
    assert words[:3] == ["papermill", "notebooks/03_train.ipynb", "book/pages/03_train/x.ipynb"]
    assert words[words.index("-k") + 1] == "python3" and words[words.index("--cwd") + 1] == "."
    assert json.loads(words[words.index("-y") + 1]) == params


def test_package_versions():
    versions = book.package_versions(["pytest", "surely-not-installed-package-xyz"])
    assert versions["pytest"] == pytest.__version__
    assert versions["surely-not-installed-package-xyz"] is None


# --------------------------------------------------------------------------------- run-folder marker


def test_prepare_run_dir_resumes_only_the_same_code_and_config(tmp_path):
    run = tmp_path / "run"
    cfg = preset("smoke", data_root="/a")
    assert book.prepare_run_dir(run, cfg, code_hash="h1") is False  # nothing there: start
    assert book.prepare_run_dir(run, cfg, code_hash="h1") is True  # interrupted: resume
    assert book.prepare_run_dir(run, preset("smoke", data_root="/elsewhere"), code_hash="h1") is True
    assert book.prepare_run_dir(run, cfg, code_hash="h2") is False  # other code: start over
    assert book.prepare_run_dir(run, preset("smoke", data_root="/a", seed=3), code_hash="h2") is False
    assert book.read_json(run / "stage.json")["config"]["seed"] == 3


# --------------------------------------------------------------------------------------------- data


def test_generate_phantom_replaces_only_a_generated_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not a generated phantom"):
        book.generate_phantom(foreign, "smoke", {"train": 1}, seed=0)
    assert (foreign / "keep.txt").exists()
    generated = tmp_path / "data"
    generated.mkdir()
    (generated / "dataset.json").write_text("{}")
    (generated / "stale.txt").write_text("old")
    folders = book.generate_phantom(generated, "smoke", {"train": 1}, seed=0, workers=1)
    assert [f.relative_to(generated).parts[0] for f in folders] == ["train"]
    assert not (generated / "stale.txt").exists() and (folders[0] / "data.nii.gz").is_file()


class _Constant(nn.Module):
    """Logits favouring one class everywhere (a stand-in network)."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros((x.shape[0], NUM_CLASSES, *x.shape[2:]), dtype=x.dtype, device=x.device)
        logits[:, self.label] = 10.0 * self.scale
        return logits


def test_evaluate_split_scores_every_case(tmp_path):
    geometry = Geometry(shape=(8, 16, 16), spacing_mm=(3.0, 1.0, 1.0))
    for name in ("a", "b"):
        case = tmp_path / "test" / name
        case.mkdir(parents=True)
        label = np.zeros(geometry.shape, np.uint8)
        label[2:6, 4:12, 4:12] = 1  # brain stem everywhere the fake network predicts it, and more
        image = np.random.default_rng(0).integers(-1000, 400, geometry.shape).astype(np.int16)
        write_image(case / "data.nii.gz", image, geometry)
        write_image(case / "label.nii.gz", label, geometry)
    member = LoadedModel(model=_Constant(1).eval(), model_config=ModelConfig(),
                         intensity=get_intensity("slf1"), crop_yx=None,
                         meta={"config": {"patch_size": [8, 16, 16]}})
    table, seconds = book.evaluate_split([member], tmp_path, "test", mode="gaussian")
    assert sorted(seconds) == ["a", "b"] and all(s >= 0 for s in seconds.values())
    assert len(table) == 2 * len(ORGANS) and set(table["case"]) == {"a", "b"}
    stem = table[table["label"] == 1]
    # Predicted: the whole volume (2048 voxels); reference: 4 x 8 x 8 = 256 -> Dice 2*256 / (2048 + 256).
    assert stem["dice"].tolist() == pytest.approx([512 / 2304] * 2)
    assert table[table["label"] == 2]["dice"].isna().all()  # absent on both sides
