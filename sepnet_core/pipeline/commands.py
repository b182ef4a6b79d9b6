"""The commands a stage runs or prints: ``torchrun`` for multi-GPU training, papermill for one stage by
hand (the reproducibility page), and the ``key=value`` overrides of a training stage.

No command string is built for a shell: :func:`torchrun_command` returns an argument list and
:func:`papermill_command` a ``shlex``-quoted line for people to copy.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["papermill_command", "torchrun_command", "train_overrides"]


def train_overrides(model: str, intensity: str, loss: str, alpha: float | None, seed: int,
                    extra: Sequence[str] = ()) -> list[str]:
    """``key=value`` overrides (:func:`sepnet_core.training.apply_overrides`) of one training stage.

    ``alpha`` is set only when given (the ATH temperature; other losses ignore it).

    Example:
        >>> train_overrides("unet", "slf1", "ath", 0.5, 2)
        ['model.name=unet', 'intensity=slf1', 'loss=ath', 'seed=2', 'alpha=0.5']
    """
    items = [f"model.name={model}", f"intensity={intensity}", f"loss={loss}", f"seed={int(seed)}"]
    if alpha is not None:
        items.append(f"alpha={float(alpha):g}")
    return [*items, *extra]


def torchrun_command(preset: str, data_root: str | os.PathLike[str], run_dir: str | os.PathLike[str],
                     overrides: Sequence[str], nproc: int, resume: bool = True,
                     python: str | None = None) -> list[str]:
    """The ``torchrun`` command of a multi-GPU training stage (``sepnet train`` under torchrun).

    Args:
        preset: Training preset.
        data_root: Data set folder.
        run_dir: Run folder.
        overrides: ``key=value`` overrides, passed as ``--set``.
        nproc: Processes (GPUs), >= 1.
        resume: ``--resume`` (continue ``run_dir``) if true, else ``--force`` (start over).
        python: Interpreter (default: this one).

    Raises:
        ValueError: ``nproc`` < 1.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
    command = [python or sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "sepnet_core.cli", "train", "--preset", preset,
               "--data-root", str(data_root), "--out", str(run_dir), "--resume" if resume else "--force"]
    for item in overrides:
        command += ["--set", item]
    return command


def papermill_command(template: str, output: str, parameters: Mapping[str, Any],
                      executable: str = ".venv/bin/papermill") -> str:
    """The shell command that runs one stage by hand with papermill from the repository root.

    Args:
        template: Template notebook (``notebooks/03_train.ipynb``).
        output: Executed notebook to write.
        parameters: The stage's full parameters (e.g. ``Layout.parameters(stage)``), passed as YAML.
        executable: The papermill program (default: the project's virtual environment's, whose
            ``python3`` kernel is that environment).
    """
    yaml = json.dumps(dict(parameters), sort_keys=False)  # JSON is YAML
    return shlex.join([executable, template, output, "-k", "python3", "--cwd", ".", "-y", yaml])
