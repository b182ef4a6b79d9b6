"""Run time of a profile's stages, told straight when a chain was interrupted and resumed.

A stage record's ``duration_s`` is the wall time of the stage's last run. A training stage interrupted
(end of a session, kill) and resumed from its checkpoint therefore records only its last leg, while its
``timing.json`` keeps the training loop's seconds summed over every epoch of ``log.csv``, whichever leg ran
it. :func:`stage_times` puts both side by side and flags the resumed stages; :func:`wall_seconds` is the
wall time the recorded stage runs cover (their intervals merged, so overlapping stages of ``--jobs N``
count once).

Reading records never imports torch or pandas; the reproducibility page builds its table from the rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["StageTime", "stage_times", "wall_seconds"]


@dataclass(frozen=True)
class StageTime:
    """Time of one stage, in seconds.

    Attributes:
        stage: Stage name.
        mode: "run" or "restore" (from the record).
        recorded_s: ``duration_s`` of the record: wall time of the stage's last run.
        loop_s: For a training stage, training-loop seconds over all epochs (all legs) plus the test-case
            inference seconds, from its ``timing.json``; ``None`` for other stages.
        finished: End of the last run (ISO 8601, UTC), as recorded.
    """

    stage: str
    mode: str | None
    recorded_s: float
    loop_s: float | None
    finished: str | None

    @property
    def resumed(self) -> bool:
        """True when the record covers less than the stage's own training and inference: the stage was
        interrupted and its record holds only the leg that finished it."""
        return self.loop_s is not None and self.loop_s > self.recorded_s

    @property
    def stage_s(self) -> float:
        """Best measured time of the whole stage: the record, or for a resumed stage its training loop and
        inference from ``timing.json`` (the earlier legs' notebook overhead is not measured)."""
        return max(self.recorded_s, self.loop_s) if self.loop_s is not None else self.recorded_s


def _loop_seconds(timing_path: Path) -> float | None:
    try:
        timing = json.loads(timing_path.read_text(encoding="utf-8"))
        inference = timing.get("inference_seconds") or {}
        return float(timing["train_seconds"]) + sum(float(v) for v in inference.values())
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def stage_times(records: Iterable[Mapping[str, Any]], root: str | os.PathLike[str]) -> list[StageTime]:
    """One :class:`StageTime` per record, in the records' order.

    Args:
        records: Stage records (:func:`~sepnet_core.pipeline.cache.read_stage_records`).
        root: Repository root; a record's ``parameters.results_dir`` is relative to it. A stage whose
            results folder holds a readable ``timing.json`` (``train_seconds``, ``inference_seconds``)
            is a training stage.
    """
    rows = []
    for record in records:
        results_dir = (record.get("parameters") or {}).get("results_dir")
        loop = _loop_seconds(Path(root) / results_dir / "timing.json") if results_dir else None
        rows.append(StageTime(stage=str(record["stage"]), mode=record.get("mode"),
                              recorded_s=float(record.get("duration_s") or 0.0), loop_s=loop,
                              finished=record.get("finished")))
    return rows


def wall_seconds(records: Iterable[Mapping[str, Any]]) -> float:
    """Wall time covered by the records' ``[started, finished]`` intervals, merged where they overlap.

    Gaps between runs (a chain stopped and resumed later) are not counted, nor the earlier legs of a
    resumed stage (their interval was never recorded). Records without both times are skipped.
    """
    intervals = []
    for record in records:
        try:
            start = datetime.fromisoformat(str(record["started"]))
            end = datetime.fromisoformat(str(record["finished"]))
        except (KeyError, ValueError):
            continue
        if end > start:
            intervals.append((start, end))
    total, covered_until = 0.0, None
    for start, end in sorted(intervals):
        if covered_until is not None:
            start = max(start, covered_until)  # count only the part not covered by earlier intervals
            end = max(end, covered_until)
        total += (end - start).total_seconds()
        covered_until = end
    return total
