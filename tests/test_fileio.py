"""Tests of the atomic, no-clobber writers in sepnet_core.fileio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepnet_core.fileio import (
    atomic_write,
    is_temporary,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_publishes_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scan.nii.gz"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.endswith(".nii.gz") and tmp.name != target.name
        assert not target.exists()  # nothing visible under the final name while writing
        tmp.write_bytes(b"complete")
    assert target.read_bytes() == b"complete"
    assert _names(tmp_path) == ["scan.nii.gz"]


def test_writer_failing_midway_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as tmp:
            tmp.write_text("half a ta")
            raise RuntimeError("disk full")
    assert _names(tmp_path) == []


def test_writer_failing_midway_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, overwrite=True) as tmp:
            tmp.write_text("new but incomplete")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["table.csv"]


def test_refuses_to_overwrite_and_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="result.json"):
        with atomic_write(target) as tmp:
            tmp.write_text("replacement")
    assert target.read_text() == "keep me"
    assert _names(tmp_path) == ["result.json"]


def test_overwrite_true_replaces(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    write_text_atomic(target, "new", overwrite=True)
    assert target.read_text() == "new"
    assert _names(tmp_path) == ["result.txt"]


def test_file_appearing_while_writing_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(FileExistsError, match="out.txt"):
        with atomic_write(target) as tmp:
            tmp.write_text("mine")
            target.write_text("someone else's")  # another process finished first
    assert target.read_text() == "someone else's"
    assert _names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize(
    ("make_target", "error", "fragment"),
    [
        (lambda root: root / "missing_folder" / "a.txt", FileNotFoundError, "missing_folder"),
        (lambda root: root, IsADirectoryError, "is a folder"),
    ],
)
def test_bad_destinations(tmp_path: Path, make_target, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        with atomic_write(make_target(tmp_path)) as tmp:
            tmp.write_text("x")


def test_body_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no file"):
        with atomic_write(tmp_path / "a.txt"):
            pass
    assert _names(tmp_path) == []


def test_json_round_trip_with_numpy_and_paths(tmp_path: Path) -> None:
    obj = {"dice": np.float32(0.5), "ids": np.arange(3), "where": Path("runs/a"), "hd95": math.inf}
    path = write_json_atomic(tmp_path / "m.json", obj)
    expected = {"dice": 0.5, "ids": [0, 1, 2], "where": "runs/a", "hd95": math.inf}
    assert json.loads(path.read_text()) == expected
    assert path.read_text().endswith("\n")


def test_json_unencodable_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(tmp_path / "m.json", {"bad": object()})
    assert _names(tmp_path) == []


def test_json_refuses_overwrite(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    with pytest.raises(FileExistsError, match="m.json"):
        write_json_atomic(tmp_path / "m.json", {"a": 2})
    write_json_atomic(tmp_path / "m.json", {"a": 3}, overwrite=True)
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 3}


def test_csv_round_trip_and_refusal(tmp_path: Path) -> None:
    table = pd.DataFrame({"case": ["c1", "c2"], "dice": [0.25, 0.75]})
    path = write_csv_atomic(tmp_path / "t.csv", table)
    pd.testing.assert_frame_equal(pd.read_csv(path), table)
    with pytest.raises(FileExistsError, match="t.csv"):
        write_csv_atomic(path, table)
    with pytest.raises(TypeError, match="DataFrame"):
        write_csv_atomic(tmp_path / "u.csv", [1, 2])
    assert _names(tmp_path) == ["t.csv"]


def test_is_temporary(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "x.csv") as tmp:
        assert is_temporary(tmp)
        tmp.write_text("1")
    assert not is_temporary(tmp_path / "x.csv")
