"""Cache of the book pipeline: where a profile's files go, cache keys, stage records, and the plan.

A stage is up to date, and skipped, when its record ``results/<profile>/_stages/<stage>.json`` holds
the current cache key, its executed notebook exists with the recorded SHA-256, and the stages it
depends on still have the outputs it was run on (their record ``run_id``). The key is the SHA-256 of
the template's cells (type, source, tags: not outputs, so running a template by hand in Jupyter does not
invalidate it), the canonical JSON of the parameters, the keys of the stages it depends on, and a hash
of the ``sepnet_core`` sources (without the driver itself). A stage that runs makes everything
downstream of it run. A stage whose uncommitted products (:attr:`Stage.products`: phantom volumes,
checkpoints) are missing is *restored* (re-run keeping its ``run_id``, so its dependents stay up to
date) when a dependent that reads them (:attr:`Stage.uses_products`) has to run, e.g. after editing the
ensemble page on a fresh clone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sepnet_core.fileio import sha256_file
from sepnet_core.pipeline.stage import Stage, topological_order

__all__ = [
    "Layout",
    "PlannedStage",
    "find_repo_root",
    "plan_pipeline",
    "read_record",
    "read_stage_records",
    "sha256_file",
    "source_hash",
    "stage_key",
    "template_fingerprint",
]

log = logging.getLogger(__name__)

_DRIVER_FOLDER = "pipeline"  # the driver is not part of the code hash: it does not change results


def find_repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The repository root: the first folder at or above ``start`` (default: cwd) holding ``_toc.yml``
    and ``sepnet_core/``. Notebooks run by hand from ``notebooks/`` use it to resolve their paths.

    Raises:
        FileNotFoundError: no such folder above ``start``.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "sepnet_core").is_dir():
            return folder
    raise FileNotFoundError(f"{here}: not inside the SepNet-Book repository "
                            f"(no folder above holds _toc.yml and sepnet_core/)")


@dataclass(frozen=True)
class Layout:
    """Where a profile's files go. Paths given to notebooks are POSIX strings relative to ``root``;
    the driver's own files are absolute :class:`~pathlib.Path` objects.

    Attributes:
        root: Repository root.
        profile: Profile name.
    """

    root: Path
    profile: str

    def results_dir(self, stage: str) -> str:
        return f"results/{self.profile}/{stage}"

    def figures_dir(self, stage: str) -> str:
        return f"figures/{self.profile}/{stage}"

    @property
    def work_dir(self) -> str:
        return f"work/{self.profile}"

    @property
    def records_dir(self) -> Path:
        return self.root / "results" / self.profile / "_stages"

    def record_path(self, stage: str) -> Path:
        return self.records_dir / f"{stage}.json"

    def log_path(self, stage: str) -> Path:
        return self.root / self.work_dir / "_logs" / f"{stage}.log"

    def partial_path(self, stage: str) -> Path:
        return self.root / self.work_dir / "_partial" / f"{stage}.ipynb"

    @property
    def jupyter_dir(self) -> Path:
        return self.root / self.work_dir / "_jupyter"

    def parameters(self, stage: Stage) -> dict[str, Any]:
        """The parameters papermill injects: the driver's four (paths relative to root), then the stage's."""
        return {
            "profile": self.profile,
            "results_dir": self.results_dir(stage.name),
            "figures_dir": self.figures_dir(stage.name),
            "work_dir": self.work_dir,
            **stage.parameters,
        }


# ---------------------------------------------------------------------------------------------- keys


def _sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def template_fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a notebook's cells (type, source, tags), ignoring outputs and other metadata.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a notebook (JSON with a ``cells`` list).
    """
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        content = []
        for cell in cells:
            source = cell.get("source", "")
            content.append([cell["cell_type"], "".join(source) if isinstance(source, list) else source,
                            sorted(cell.get("metadata", {}).get("tags", []))])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a readable notebook ({exc})") from None
    return _sha256_json(content)


def source_hash(package_dir: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 over the ``.py`` files of ``sepnet_core`` (relative names and bytes), without the driver.

    Args:
        package_dir: The package folder; default the imported ``sepnet_core``.
    """
    package = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.split("/")[0] == _DRIVER_FOLDER or "__pycache__" in path.parts:
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_key(template_fp: str, parameters: Mapping[str, Any], dependency_keys: Mapping[str, str],
              code_hash: str) -> str:
    """Cache key of a stage: SHA-256 of its template fingerprint, parameters, dependency keys and code."""
    return _sha256_json({"template": template_fp, "parameters": dict(parameters),
                         "dependencies": dict(sorted(dependency_keys.items())), "code": code_hash})


# ------------------------------------------------------------------------------------------- records


def read_record(path: Path) -> dict[str, Any] | None:
    """The stage record at ``path``; ``None`` if missing or unreadable (then the stage runs again)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable stage record (%s); the stage will run again", path, exc)
        return None
    return record if isinstance(record, dict) else None


def read_stage_records(root: str | os.PathLike[str], profile: str) -> list[dict[str, Any]]:
    """The stage records of ``profile`` (one dict per finished stage, sorted by end time).

    Each record holds ``stage, profile, key, run_id, dependencies {stage: run_id}, template, output,
    output_sha256, parameters, started, finished`` (ISO 8601, UTC) ``, duration_s, mode`` ("run" |
    "restore") ``, gpus, host {platform, machine, python, cpus, torch}, git {commit, dirty}, code_hash,
    package_version``. Used by the reproducibility page.
    """
    folder = Layout(Path(root), profile).records_dir
    records = [r for p in sorted(folder.glob("*.json")) if p.name != "run.json"
               if (r := read_record(p)) is not None and "stage" in r]
    return sorted(records, key=lambda r: str(r.get("finished", "")))


def git_info(root: Path) -> dict[str, Any]:
    """Commit of ``root`` and whether the code or the templates differ from it (None without git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "sepnet_core", "notebooks") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def host_info() -> dict[str, Any]:
    """Platform, machine, Python, CPU count and torch version of this machine (no host name)."""
    try:
        torch_version: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {"platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch_version}


def utc_now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedStage:
    """A stage with its cache key and what the driver will do: "skip", "run", "restore" or "missing"
    (template not found; only with ``plan_pipeline(strict=False)``)."""

    stage: Stage
    key: str
    action: str
    reason: str


def _select(ordered: list[Stage], only: Iterable[str] | None) -> list[Stage]:
    """``only`` and every stage they depend on (all stages when ``only`` is None), in order."""
    if only is None:
        return ordered
    by_name = {s.name: s for s in ordered}
    wanted: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].depends_on)
    return [s for s in ordered if s.name in wanted]


def _check_names(names: Iterable[str], stages: Sequence[Stage], option: str) -> None:
    valid = [s.name for s in stages]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"{option}: unknown stage {unknown[0]!r}; valid stages: {', '.join(valid)}")


def plan_pipeline(
    stages: Sequence[Stage],
    root: str | os.PathLike[str],
    profile: str,
    force: Iterable[str] = (),
    force_all: bool = False,
    only: Iterable[str] | None = None,
    code_hash: str | None = None,
    strict: bool = True,
) -> list[PlannedStage]:
    """Decide which stages run (see the module docstring for the rules).

    Args:
        stages: The stage table (any order).
        root: Repository root; all stage paths are relative to it.
        profile: Profile name (folder of the records).
        force: Stages to run even if up to date (their dependents run too).
        force_all: Run every selected stage.
        only: Restrict to these stages and the stages they depend on.
        code_hash: Hash of the library code; default :func:`source_hash` of ``sepnet_core``.
        strict: Raise if a template is missing; with ``False`` such stages get the action "missing"
            (for ``--list`` while the notebooks are being written).

    Returns:
        The selected stages in dependency order with key, action ("skip", "run", "restore", "missing")
        and a human-readable reason.

    Raises:
        ValueError: unknown stage names in ``force``/``only``, or a bad stage table.
        FileNotFoundError: the template of a selected stage is missing.
    """
    root = Path(root)
    ordered = topological_order(list(stages))
    force, only = list(force), (None if only is None else list(only))
    _check_names(force, ordered, "--force")
    _check_names(only or (), ordered, "--only")
    selected = _select(ordered, only)
    layout = Layout(root, profile)
    code_hash = source_hash() if code_hash is None else code_hash
    missing: dict[str, list[str]] = {}
    for stage in selected:
        if not (root / stage.template).is_file():
            missing.setdefault(stage.template, []).append(stage.name)
    if missing and strict:
        listed = [f"{t} ({', '.join(n) if len(n) < 3 else f'{len(n)} stages'})" for t, n in missing.items()]
        raise FileNotFoundError(f"template notebooks not found: {'; '.join(listed)}")

    keys: dict[str, str] = {}
    records: dict[str, dict[str, Any] | None] = {}
    fresh: dict[str, str] = {}  # stage -> reason it runs
    fingerprints: dict[str, str] = {}
    for stage in selected:
        if stage.template in missing:
            fingerprints[stage.template] = "missing"
        elif stage.template not in fingerprints:
            fingerprints[stage.template] = template_fingerprint(root / stage.template)
        keys[stage.name] = stage_key(fingerprints[stage.template], layout.parameters(stage),
                                     {d: keys[d] for d in stage.depends_on}, code_hash)
        record = records[stage.name] = read_record(layout.record_path(stage.name))
        output = root / stage.output
        ran = [d for d in stage.depends_on if d in fresh]
        if force_all or stage.name in force:
            fresh[stage.name] = "forced"
        elif record is None:
            fresh[stage.name] = "never finished"
        elif record.get("key") != keys[stage.name]:
            fresh[stage.name] = "template, parameters or code changed"
        elif not output.is_file():
            fresh[stage.name] = f"{stage.output} missing"
        elif record.get("output_sha256") != sha256_file(output):
            fresh[stage.name] = f"{stage.output} differs from the recorded run"
        elif ran:
            fresh[stage.name] = f"{', '.join(ran)} will run"
        elif record.get("dependencies") != {d: (records[d] or {}).get("run_id") for d in stage.depends_on}:
            fresh[stage.name] = "a dependency ran since"

    restore: dict[str, str] = {}
    by_name = {s.name: s for s in selected}
    for stage in reversed(selected):
        if not stage.uses_products or (stage.name not in fresh and stage.name not in restore):
            continue
        for dep in stage.depends_on:
            if dep in fresh or dep in restore:
                continue
            lost = [p for p in by_name[dep].products if not (root / p).exists()]
            if lost:
                restore[dep] = f"{lost[0]} missing (needed by {stage.name})"

    plan = []
    for stage in selected:
        if stage.template in missing:
            plan.append(PlannedStage(stage, keys[stage.name], "missing", f"{stage.template} not found"))
        elif stage.name in fresh:
            plan.append(PlannedStage(stage, keys[stage.name], "run", fresh[stage.name]))
        elif stage.name in restore:
            plan.append(PlannedStage(stage, keys[stage.name], "restore", restore[stage.name]))
        else:
            plan.append(PlannedStage(stage, keys[stage.name], "skip", "up to date"))
    return plan
