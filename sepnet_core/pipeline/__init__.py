"""The book pipeline: run the stage notebooks with papermill in dependency order, cache, build the book.

``make book`` runs ``python -m sepnet_core.pipeline --profile $(PROFILE)``. The modules follow the flow:

- :mod:`~sepnet_core.pipeline.stage`: :class:`Stage` (template, output page, parameters, dependencies)
  and the parameters every stage receives;
- :mod:`~sepnet_core.pipeline.table`: the profiles ("smoke", "cpu", "paper") and the stage table as
  data (:func:`stages_for_profile`);
- :mod:`~sepnet_core.pipeline.cache`: file layout, cache keys, stage records, the plan (what runs);
- :mod:`~sepnet_core.pipeline.runner`: executing the plan, one process and kernel per stage;
- :mod:`~sepnet_core.pipeline.times`: run time of the recorded stages, resumed stages flagged;
- :mod:`~sepnet_core.pipeline.cli`: the command line and ``jupyter-book build``.

Importing the package has no side effects and does not import papermill or torch.
"""

from __future__ import annotations

from sepnet_core.pipeline.cache import (
    Layout,
    PlannedStage,
    find_repo_root,
    plan_pipeline,
    read_stage_records,
    source_hash,
    stage_key,
    template_fingerprint,
)
from sepnet_core.pipeline.cli import BOOK_BUILD_ARGS, build_book, main
from sepnet_core.pipeline.runner import PipelineReport, run_pipeline
from sepnet_core.pipeline.stage import INJECTED_PARAMETERS, Stage, topological_order
from sepnet_core.pipeline.table import (
    ABLATIONS,
    BASELINE_RUN,
    CLAIM_RUNS,
    ENSEMBLE_ARMS,
    ENSEMBLE_MEMBERS,
    PROFILES,
    STUDY_RUNS,
    TEMPLATES,
    TRAIN_RUNS,
    Profile,
    TrainRun,
    get_profile,
    seeds_of,
    stages_for_profile,
)
from sepnet_core.pipeline.times import StageTime, stage_times, wall_seconds

__all__ = [
    "ABLATIONS",
    "BASELINE_RUN",
    "CLAIM_RUNS",
    "ENSEMBLE_ARMS",
    "BOOK_BUILD_ARGS",
    "ENSEMBLE_MEMBERS",
    "STUDY_RUNS",
    "INJECTED_PARAMETERS",
    "PROFILES",
    "TEMPLATES",
    "TRAIN_RUNS",
    "Layout",
    "PipelineReport",
    "PlannedStage",
    "Profile",
    "Stage",
    "StageTime",
    "TrainRun",
    "build_book",
    "find_repo_root",
    "get_profile",
    "seeds_of",
    "main",
    "plan_pipeline",
    "read_stage_records",
    "run_pipeline",
    "source_hash",
    "stage_key",
    "stage_times",
    "stages_for_profile",
    "template_fingerprint",
    "topological_order",
    "wall_seconds",
]
