"""Execution of the book pipeline: one process and one papermill kernel per stage, up to ``jobs`` at once.

Each stage to run is executed in its own process (``python -m sepnet_core.pipeline --run-one SPEC``,
see :func:`run_one`) with its own papermill kernel; when GPUs are visible each stage gets
:attr:`Stage.gpus` of them through ``CUDA_VISIBLE_DEVICES`` (on CPU with ``jobs`` > 1 the cores are
split with ``OMP_NUM_THREADS``). Before a stage runs, its record, executed notebook, ``results_dir`` and
``figures_dir`` are removed; the notebook is executed into ``work/<profile>/_partial/`` and moved onto
its ``book/pages`` path only on success, then the record is written. An interrupted or failed stage
therefore leaves no record and no page, and the next run redoes exactly the unfinished stages. A
failure does not stop independent stages; the stages that depend on it are reported as blocked. The
output of each stage goes to ``work/<profile>/_logs/<stage>.log``.

The kernel is ``python3`` resolved through a kernel spec written to ``work/<profile>/_jupyter`` (put
first on ``JUPYTER_PATH`` for the stage processes only) whose command is this interpreter, so the
notebooks run in the driver's virtual environment whatever kernels the user has installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepnet_core import __version__
from sepnet_core.fileio import write_json_atomic
from sepnet_core.pipeline.cache import (
    Layout,
    PlannedStage,
    git_info,
    host_info,
    plan_pipeline,
    read_record,
    sha256_file,
    source_hash,
    utc_now,
)
from sepnet_core.pipeline.stage import Stage
from sepnet_core.pipeline.tags import tag_notebook

__all__ = ["KERNEL_NAME", "PipelineReport", "run_one", "run_pipeline"]

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
"""Kernel the stages run on (resolved to this interpreter, see the module docstring)."""
_POLL_S = 0.1


@dataclass
class _Running:
    planned: PlannedStage
    process: subprocess.Popen[bytes]
    log_handle: Any
    started: str
    t0: float
    gpus: list[str]


@dataclass
class PipelineReport:
    """What one driver run did: per stage "skipped", "ran", "restored", "failed" or "blocked"."""

    status: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s in ("skipped", "ran", "restored") for s in self.status.values())

    @property
    def executed(self) -> list[str]:
        return [n for n, s in self.status.items() if s in ("ran", "restored")]


def _write_kernel_spec(layout: Layout) -> None:
    """Kernel spec ``python3`` -> this interpreter, in a private Jupyter data folder."""
    folder = layout.jupyter_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (SepNet-Book)", "language": "python",
            "metadata": {"debugger": True}}
    write_json_atomic(folder / "kernel.json", spec, overwrite=True)


def _stage_env(layout: Layout, gpus: list[str], jobs: int, have_gpus: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(layout.jupyter_dir), env.get("JUPYTER_PATH")) if p)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if have_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    elif jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _start(planned: PlannedStage, layout: Layout, gpus: list[str], jobs: int, have_gpus: bool) -> _Running:
    stage, root = planned.stage, layout.root
    layout.record_path(stage.name).unlink(missing_ok=True)
    (root / stage.output).unlink(missing_ok=True)
    for folder in (layout.results_dir(stage.name), layout.figures_dir(stage.name)):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir(parents=True)
    partial = layout.partial_path(stage.name)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    spec_path = partial.with_suffix(".json")
    spec = {"template": stage.template, "partial": str(partial), "output": stage.output,
            "parameters": layout.parameters(stage), "kernel_name": KERNEL_NAME, "cwd": str(root)}
    write_json_atomic(spec_path, spec, overwrite=True)
    log_path = layout.log_path(stage.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "wb")  # closed in _finish or on interruption
    process = subprocess.Popen(
        [sys.executable, "-m", "sepnet_core.pipeline", "--run-one", str(spec_path)],
        cwd=root, env=_stage_env(layout, gpus, jobs, have_gpus), stdout=handle, stderr=subprocess.STDOUT)
    return _Running(planned, process, handle, utc_now(), time.monotonic(), gpus)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _finish(job: _Running, layout: Layout, context: dict[str, Any],
            records: dict[str, dict[str, Any] | None]) -> bool:
    """Publish a finished stage (notebook + record); return whether it succeeded."""
    job.log_handle.close()
    stage, root = job.planned.stage, layout.root
    partial = layout.partial_path(stage.name)
    if job.process.returncode != 0 or not partial.is_file():
        return False
    import nbformat

    notebook = nbformat.read(partial, as_version=nbformat.NO_CONVERT)
    if isinstance(notebook.metadata.get("papermill"), dict):  # papermill recorded the temporary path
        notebook.metadata.papermill["output_path"] = stage.output
    tag_notebook(notebook)  # the page's display tags, including papermill's injected-parameters cell
    nbformat.write(notebook, partial)
    output = root / stage.output
    output.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, output)
    partial.with_suffix(".json").unlink(missing_ok=True)
    previous = records.get(stage.name) or {}
    restoring = job.planned.action == "restore" and previous.get("run_id")
    record = {
        "stage": stage.name,
        "profile": layout.profile,
        "key": job.planned.key,
        "run_id": previous["run_id"] if restoring else uuid.uuid4().hex,
        "dependencies": {d: (records.get(d) or {}).get("run_id") for d in stage.depends_on},
        "template": stage.template,
        "output": stage.output,
        "output_sha256": sha256_file(output),
        "parameters": layout.parameters(stage),
        "started": job.started,
        "finished": utc_now(),
        "duration_s": round(time.monotonic() - job.t0, 3),
        "mode": job.planned.action,
        "gpus": job.gpus,
        **context,
    }
    write_json_atomic(layout.record_path(stage.name), record, overwrite=True)
    records[stage.name] = record
    return True


def _visible_gpus() -> list[str]:
    """GPU ids to hand out: CUDA_VISIBLE_DEVICES if set, else torch's device count (no torch: none)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def run_pipeline(
    stages: Sequence[Stage],
    root: str | os.PathLike[str],
    profile: str,
    *,
    jobs: int = 1,
    force: Iterable[str] = (),
    force_all: bool = False,
    only: Iterable[str] | None = None,
    gpus: Sequence[str] | None = None,
    code_hash: str | None = None,
) -> PipelineReport:
    """Plan, then execute the stages that are not up to date (no book build).

    Args:
        stages: The stage table.
        root: Repository root (the kernels' working directory; stage paths are relative to it).
        profile: Profile name (``results/<profile>/``, ``work/<profile>/``).
        jobs: Stages run at the same time (>= 1); each needs ``Stage.gpus`` free GPUs when GPUs exist.
        force, force_all, only, code_hash: As in :func:`plan_pipeline`.
        gpus: GPU ids to hand out; default: visible GPUs (``CUDA_VISIBLE_DEVICES``, else torch).
            An empty sequence runs on CPU (with ``jobs`` > 1, ``OMP_NUM_THREADS`` is split between jobs).

    Returns:
        A :class:`PipelineReport`; ``results/<profile>/_stages/run.json`` is written when a stage ran.

    Raises:
        ValueError: ``jobs`` < 1 or bad stage names; FileNotFoundError: a missing template.
        KeyboardInterrupt: after stopping the running stages (they leave no record).
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    root = Path(root).resolve()
    layout = Layout(root, profile)
    plan = plan_pipeline(stages, root, profile, force, force_all, only, code_hash)
    gpu_pool = list(_visible_gpus() if gpus is None else gpus)
    gpu_order, n_gpus = list(gpu_pool), len(gpu_pool)
    have_gpus = n_gpus > 0
    report = PipelineReport()
    records = {p.stage.name: read_record(layout.record_path(p.stage.name)) for p in plan}
    pending = [p for p in plan if p.action != "skip"]
    for planned in plan:
        if planned.action == "skip":
            report.status[planned.stage.name] = "skipped"
    if not pending:
        log.info("all %d stages up to date", len(plan))
        return report
    started, t0 = utc_now(), time.monotonic()
    context = {"host": host_info(), "git": git_info(root), "code_hash": code_hash or source_hash(),
               "package_version": __version__}
    _write_kernel_spec(layout)
    layout.records_dir.mkdir(parents=True, exist_ok=True)
    running: dict[str, _Running] = {}
    done_ok = ("skipped", "ran", "restored")
    total = len(pending)
    try:
        while pending or running:
            for planned in list(pending):
                deps = [report.status.get(d) for d in planned.stage.depends_on]
                if any(s in ("failed", "blocked") for s in deps):
                    report.status[planned.stage.name] = "blocked"
                    pending.remove(planned)
                    log.error("%s: not run, a stage it depends on failed", planned.stage.name)
                    continue
                if len(running) >= jobs or not all(s in done_ok for s in deps):
                    continue
                need = min(planned.stage.gpus, n_gpus)
                if need > len(gpu_pool):
                    continue
                taken, gpu_pool[:] = gpu_pool[:need], gpu_pool[need:]
                pending.remove(planned)
                n = total - len(pending)
                log.info("[%d/%d] %s: %s (%s)%s", n, total, planned.stage.name, planned.action,
                         planned.reason, f" on GPU {','.join(taken)}" if taken else "")
                running[planned.stage.name] = _start(planned, layout, taken, jobs, have_gpus)
            finished = [name for name, job in running.items() if job.process.poll() is not None]
            if not finished:
                time.sleep(_POLL_S)
                continue
            for name in finished:
                job = running.pop(name)
                gpu_pool.extend(job.gpus)
                gpu_pool.sort(key=gpu_order.index)
                seconds = time.monotonic() - job.t0
                report.seconds[name] = round(seconds, 3)
                if _finish(job, layout, context, records):
                    report.status[name] = "restored" if job.planned.action == "restore" else "ran"
                    log.info("%s: done in %.1f s", name, seconds)
                else:
                    report.status[name] = "failed"
                    log.error("%s: FAILED after %.1f s (exit %s); log %s, partial notebook %s\n%s", name,
                              seconds, job.process.returncode, layout.log_path(name),
                              layout.partial_path(name), _tail(layout.log_path(name)))
    finally:
        for job in running.values():  # interrupted: stop the stages still running; they leave no record
            job.process.terminate()
        for job in running.values():
            try:
                job.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
            job.log_handle.close()
    summary = {
        "profile": profile, "started": started, "finished": utc_now(),
        "duration_s": round(time.monotonic() - t0, 3), **context,
        "stages": [{"stage": p.stage.name, "status": report.status.get(p.stage.name, "not run"),
                    "reason": p.reason, "seconds_this_run": report.seconds.get(p.stage.name),
                    "recorded_duration_s": (records.get(p.stage.name) or {}).get("duration_s")}
                   for p in plan],
    }
    write_json_atomic(layout.records_dir / "run.json", summary, overwrite=True)
    return report


def run_one(spec_path: str) -> int:
    """Child process of one stage: execute the template into the partial path with papermill.

    On POSIX the kernel talks over IPC sockets in a private temporary folder: concurrent stages
    started over TCP can pick the same free port (jupyter_client chooses ports per process) and a
    kernel then dies on start.

    Returns:
        0 on success, 1 when a cell raised (the partial notebook shows it), 130 when interrupted.
    """
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(message)s")
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    import papermill
    from traitlets.config import Config

    sockets = tempfile.mkdtemp(prefix="sepnet-kernel-")
    engine_kwargs = {}
    if os.name == "posix":
        engine_kwargs["config"] = Config({"KernelManager": {"transport": "ipc",
                                                            "ip": os.path.join(sockets, "k")}})
    try:
        papermill.execute_notebook(spec["template"], spec["partial"], parameters=spec["parameters"],
                                   kernel_name=spec["kernel_name"], cwd=spec["cwd"], progress_bar=False,
                                   log_output=True, **engine_kwargs)
    except papermill.PapermillExecutionError as exc:
        print(f"stage failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("stage interrupted", flush=True)
        return 130
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return 0
