"""Stage run times: resumed training stages are flagged, wall time merges overlapping stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sepnet_core.pipeline import stage_times, wall_seconds


def _record(stage: str, started: str, finished: str, duration: float, results_dir: str | None = None) -> dict:
    record = {"stage": stage, "mode": "run", "started": started, "finished": finished, "duration_s": duration}
    if results_dir is not None:
        record["parameters"] = {"results_dir": results_dir}
    return record


def _timing(root: Path, results_dir: str, train: float, inference: dict[str, float]) -> None:
    folder = root / results_dir
    folder.mkdir(parents=True)
    (folder / "timing.json").write_text(json.dumps({"train_seconds": train, "inference_seconds": inference}))


def test_stage_times_flags_a_resumed_training_stage_and_keeps_its_loop_time(tmp_path: Path) -> None:
    _timing(tmp_path, "results/p/train_whole", 900.0, {"a": 3.0, "b": 2.0})
    _timing(tmp_path, "results/p/train_resumed", 880.0, {"a": 2.5, "b": 2.5})
    records = [
        _record("data", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", 60.0, "results/p/data"),
        _record("train_whole", "2026-01-01T00:01:00+00:00", "2026-01-01T00:17:00+00:00", 960.0,
                "results/p/train_whole"),
        _record("train_resumed", "2026-01-01T00:01:00+00:00", "2026-01-01T00:03:00+00:00", 120.0,
                "results/p/train_resumed"),
    ]
    data, whole, resumed = stage_times(records, tmp_path)
    assert (data.loop_s, data.resumed, data.stage_s) == (None, False, 60.0)
    assert whole.loop_s == pytest.approx(905.0)
    assert not whole.resumed and whole.stage_s == 960.0  # one leg: the record includes the loop and overhead
    assert resumed.loop_s == pytest.approx(885.0)
    assert resumed.resumed and resumed.stage_s == pytest.approx(885.0)  # the record has its last leg only


def test_stage_times_ignores_an_unreadable_timing_file(tmp_path: Path) -> None:
    folder = tmp_path / "results/p/train_x"
    folder.mkdir(parents=True)
    (folder / "timing.json").write_text("{not json")
    (row,) = stage_times([_record("train_x", "", "", 50.0, "results/p/train_x")], tmp_path)
    assert row.loop_s is None and not row.resumed and row.stage_s == 50.0


def test_wall_seconds_merges_overlaps_and_skips_gaps() -> None:
    records = [
        _record("a", "2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00", 600),
        _record("b", "2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", 900),  # overlaps a
        _record("c", "2026-01-01T00:12:00+00:00", "2026-01-01T00:14:00+00:00", 120),  # inside b
        _record("d", "2026-01-01T01:00:00+00:00", "2026-01-01T01:30:00+00:00", 1800),  # after a gap
        {"stage": "e", "duration_s": 5},  # no times: skipped
    ]
    assert wall_seconds(records) == pytest.approx(20 * 60 + 30 * 60)
    assert wall_seconds([]) == 0.0
