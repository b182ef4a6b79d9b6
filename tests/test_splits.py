"""``sepnet split`` and the up-front split check: counts, determinism, idempotence, no clobbering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sepnet_core.cli import main as sepnet
from sepnet_core.data.io import Geometry, InputNotFoundError, list_cases, read_case, write_image
from sepnet_core.data.splits import (
    SPLITS_FILE,
    default_counts,
    make_splits,
    parse_counts,
    plan_splits,
    require_splits,
)
from sepnet_core.errors import SepNetInputError
from sepnet_core.pipeline import main as pipeline

SHAPE = (2, 4, 4)


def flat_root(root: Path, n: int) -> Path:
    """``n`` tiny patient folders ``patient_<i>`` (CT + label) directly under ``root``."""
    geometry = Geometry(shape=SHAPE, spacing_mm=(3.0, 1.0, 1.0))
    for i in range(1, n + 1):
        folder = root / f"patient_{i}"
        folder.mkdir(parents=True)
        image = np.full(SHAPE, -1000, np.int16)
        image[1] = 10 * i
        write_image(folder / "data.nii.gz", image, geometry)
        write_image(folder / "label.nii.gz", np.full(SHAPE, i % 23, np.uint8), geometry)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Bytes of every real file under ``root`` (links not followed)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not any(q.is_symlink() for q in [p, *p.parents])}


@pytest.fixture(scope="module")
def fifty(tmp_path_factory) -> Path:
    return flat_root(tmp_path_factory.mktemp("flat"), 50)


def test_default_counts_and_parsing():
    assert default_counts(50) == {"train": 35, "valid": 5, "test": 10}
    assert default_counts(10) == {"train": 7, "valid": 1, "test": 2}
    assert default_counts(3) == {"train": 1, "valid": 1, "test": 1}
    with pytest.raises(ValueError, match="at least 3"):
        default_counts(2)
    expected = {"train": 40, "valid": 5, "test": 5}
    assert parse_counts("40,5,5") == parse_counts("test=5,train=40,valid=5") == expected
    for bad in ("40,5", "a,b,c", "train=40,valid=5,tst=5", "0,5,5", "40,-1,11"):
        with pytest.raises(ValueError, match="counts"):
            parse_counts(bad)


def test_plan_is_deterministic_disjoint_and_complete(fifty):
    plan = plan_splits(fifty, seed=0)
    assert {k: len(v) for k, v in plan.splits.items()} == {"train": 35, "valid": 5, "test": 10}
    everyone = [p for names in plan.splits.values() for p in names]
    assert sorted(everyone) == sorted(f"patient_{i}" for i in range(1, 51)) and len(set(everyone)) == 50
    assert plan_splits(fifty, seed=0).splits == plan.splits
    assert plan_splits(fifty, seed=1).splits["test"] != plan.splits["test"]
    custom = plan_splits(fifty, seed=0, counts={"train": 40, "valid": 5, "test": 5})
    assert [len(v) for v in custom.splits.values()] == [40, 5, 5]
    with pytest.raises(SepNetInputError, match="50 patient folders, but the counts"):
        plan_splits(fifty, counts={"train": 40, "valid": 5, "test": 10})


def test_make_splits_links_records_and_is_idempotent(tmp_path):
    root = flat_root(tmp_path / "data", 10)
    before = snapshot(root)
    plan = plan_splits(root, seed=3)
    assert make_splits(plan) is True
    record = json.loads((root / SPLITS_FILE).read_text())
    assert record["seed"] == 3 and record["splits"] == plan.splits
    assert record["counts"] == {"train": 7, "valid": 1, "test": 2}
    for split, names in plan.splits.items():
        cases = list_cases(root, split)
        assert [c.name for c in cases] == names
        assert all(c.is_symlink() and os.readlink(c) == os.path.join("..", c.name) for c in cases)
    case = read_case(root / "test" / plan.splits["test"][0], require_label=True)  # readable through the link
    assert int(case.image.max()) == 10 * int(case.case_id.split("_")[1])
    assert snapshot(root) == {**before, SPLITS_FILE: (root / SPLITS_FILE).read_bytes()}  # nothing moved

    mtime = (root / SPLITS_FILE).stat().st_mtime_ns
    assert make_splits(plan_splits(root, seed=3)) is False  # same split again: nothing written
    assert (root / SPLITS_FILE).stat().st_mtime_ns == mtime
    assert require_splits(root, ["train", "valid", "test"]) == {"train": 7, "valid": 1, "test": 2}


def test_make_splits_refuses_to_clobber_and_force_removes_links_only(tmp_path):
    root = flat_root(tmp_path / "data", 10)
    make_splits(plan_splits(root, seed=0))
    before = snapshot(root)
    other = plan_splits(root, seed=1)
    with pytest.raises(FileExistsError, match="a different split exists.*--force"):
        make_splits(other)
    assert snapshot(root) == before and json.loads((root / SPLITS_FILE).read_text())["seed"] == 0
    assert make_splits(other, force=True) is True
    assert {p.name for p in (root / "test").iterdir()} == set(other.splits["test"])
    assert {k: v for k, v in snapshot(root).items() if k != SPLITS_FILE} == \
        {k: v for k, v in before.items() if k != SPLITS_FILE}  # every patient file intact

    # a split folder holding real data is never touched, even with --force
    real = root / "valid" / "mine"
    real.mkdir()
    (real / "notes.txt").write_text("keep")
    with pytest.raises(SepNetInputError, match="not a link made by sepnet split"):
        make_splits(plan_splits(root, seed=2), force=True)
    assert (real / "notes.txt").read_text() == "keep"


def test_require_splits_names_the_missing_folder(tmp_path):
    root = flat_root(tmp_path / "data", 5)
    with pytest.raises(InputNotFoundError, match=r"data/train: split folder does not exist .*sepnet split"):
        require_splits(root, ["train"])
    make_splits(plan_splits(root, seed=0, counts={"train": 3, "valid": 2, "test": 0}))
    assert require_splits(root, ["train", "valid"]) == {"train": 3, "valid": 2}
    with pytest.raises(InputNotFoundError, match=r"data/test: split folder does not exist") as info:
        require_splits(root, ["train", "valid", "test"])
    assert "\n" not in str(info.value)
    # a case without its label is caught up front too
    case = tmp_path / "other" / "test" / "case_1"
    case.mkdir(parents=True)
    (case / "data.nii.gz").write_bytes((root / "patient_1" / "data.nii.gz").read_bytes())
    with pytest.raises(SepNetInputError, match="case_1: no label.nii.gz"):
        require_splits(tmp_path / "other", ["test"])
    assert require_splits(tmp_path / "other", ["test"], labels=False) == {"test": 1}


def test_cli_dry_run_write_rerun_and_errors(tmp_path, capsys):
    root = flat_root(tmp_path / "data", 6)
    before = snapshot(root)
    assert sepnet(["split", str(root), "--dry-run", "--counts", "4,1,1"]) == 0
    out = capsys.readouterr().out
    assert "train (4): " in out and "dry run: nothing written" in out and snapshot(root) == before
    assert not (root / "train").exists()
    assert sepnet(["split", str(root), "--counts", "4,1,1"]) == 0
    assert "wrote" in capsys.readouterr().out and len(list_cases(root, "train")) == 4
    assert sepnet(["split", str(root), "--counts", "4,1,1"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert sepnet(["split", str(root), "--counts", "4,1,1", "--seed", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sepnet split: error: ") and "--force" in err and "\n" not in err
    assert sepnet(["split", str(root), "--counts", "3,1,1"]) == 2
    assert "6 patient folders, but the counts" in capsys.readouterr().err
    assert sepnet(["split", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: data folder does not exist" in capsys.readouterr().err


def test_pipeline_checks_splits_before_running_any_stage(tmp_path, capsys):
    root = flat_root(tmp_path / "data", 5)
    repo = tmp_path / "repo"
    repo.mkdir()
    code = pipeline(["--root", str(repo), "--profile", "paper", "--data-root", str(root), "--no-build"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith(f"pipeline: error: {root}/train: split folder does not exist")
    assert "sepnet split" in err
    assert sorted(p.name for p in repo.iterdir()) == []  # nothing ran, nothing written
