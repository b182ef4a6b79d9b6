"""A stage of the book pipeline: one papermill run of a template notebook, and dependency order.

A *stage* is one papermill run of a template notebook under ``notebooks/`` with a set of literal
parameters; its executed copy is written where ``_toc.yml`` expects it (``book/pages/...``). Every
stage also receives four parameters injected by the driver (:data:`INJECTED_PARAMETERS`), all paths
relative to the repository root, which is the kernel's working directory:

- ``profile``: the profile name ("smoke", "cpu", "paper");
- ``results_dir``: ``results/<profile>/<stage>/``, small committed outputs (CSV, JSON);
- ``figures_dir``: ``figures/<profile>/<stage>/``, committed PNG figures;
- ``work_dir``: ``work/<profile>/``, uncommitted heavy files (data, checkpoints; git-ignored).

The driver empties a stage's ``results_dir`` and ``figures_dir`` before it runs, so these folders
always hold exactly what the last successful run wrote. Heavy products that later stages read
(phantom volumes, checkpoints) live under ``work_dir`` and are declared in :attr:`Stage.products`,
so the driver can re-create them when a dependent must run on a fresh clone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INJECTED_PARAMETERS", "Stage", "topological_order"]

INJECTED_PARAMETERS: tuple[str, ...] = ("profile", "results_dir", "figures_dir", "work_dir")
"""Parameters the driver adds to every stage; a stage table may not set them itself."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def _canonical_literal(value: Any, what: str) -> Any:
    """Return a JSON round-tripped copy of ``value``; raise if it is not made of JSON literals."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must hold only JSON literals (str, int, float, bool, None, list, dict): "
                        f"{exc}") from None
    return json.loads(text)


@dataclass(frozen=True)
class Stage:
    """One papermill run: a template notebook, its parameters and the stages it reads from.

    Attributes:
        name: Unique stage name, lower case ``[a-z0-9_]`` (it names folders and the record file).
        template: Template notebook, POSIX path relative to the repository root
            (``notebooks/03_train.ipynb``).
        output: Executed notebook, POSIX path relative to the repository root, as listed in ``_toc.yml``
            (``book/pages/03_train/sepnet_slf1_ath1_s0.ipynb``).
        parameters: Literal parameters (JSON types) passed to papermill; copied on construction. Must not
            use the names in :data:`INJECTED_PARAMETERS`.
        depends_on: Names of the stages whose outputs this stage reads.
        products: Uncommitted files or folders (relative paths, usually under ``work/<profile>/``) that
            dependents read. If one is missing when a dependent has to run, the stage is re-run first.
        gpus: GPUs (processes) the stage wants when GPUs are available; 1 for most stages, the
            torchrun process count for a multi-GPU training stage. Ignored on a CPU-only machine.
        uses_products: Whether the stage reads the :attr:`products` of the stages it depends on
            (default). ``False`` for stages that read only committed results and records (summary,
            reproducibility): when they run, missing checkpoints need not be re-created.

    Raises:
        ValueError: bad name, a reserved parameter name, a path that is absolute or leaves the
            repository, ``gpus`` < 1, or a stage that depends on itself.
        TypeError: a parameter value that is not a JSON literal.
    """

    name: str
    template: str
    output: str
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)
    depends_on: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    gpus: int = 1
    uses_products: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"stage name must match {_NAME_RE.pattern}, got {self.name!r}")
        for what, path in [("template", self.template), ("output", self.output), *(
                ("products", p) for p in self.products)]:
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                raise ValueError(f"stage {self.name}: {what} must be a relative POSIX path inside the "
                                 f"repository, got {path!r}")
        if not self.output.endswith(".ipynb"):
            raise ValueError(f"stage {self.name}: output must end with .ipynb, got {self.output!r}")
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"stage {self.name}: parameters must be a mapping, got {type(self.parameters)}")
        reserved = sorted(set(self.parameters) & set(INJECTED_PARAMETERS))
        if reserved:
            raise ValueError(f"stage {self.name}: parameters {reserved} are injected by the driver "
                             f"and may not be set in the stage table")
        object.__setattr__(self, "parameters",
                           _canonical_literal(dict(self.parameters), f"stage {self.name} parameters"))
        object.__setattr__(self, "depends_on", tuple(self.depends_on))
        object.__setattr__(self, "products", tuple(self.products))
        if self.name in self.depends_on:
            raise ValueError(f"stage {self.name} depends on itself")
        if not isinstance(self.gpus, int) or self.gpus < 1:
            raise ValueError(f"stage {self.name}: gpus must be an int >= 1, got {self.gpus!r}")


def topological_order(stages: Sequence[Stage]) -> list[Stage]:
    """Order ``stages`` so that every stage comes after the stages it depends on.

    The order is stable: each position takes the first stage in table order whose dependencies are
    already placed, so a table written in dependency order is returned unchanged.

    Raises:
        ValueError: duplicate names, a dependency that is not in the table, or a cycle.
    """
    by_name: dict[str, Stage] = {}
    for stage in stages:
        if stage.name in by_name:
            raise ValueError(f"duplicate stage name {stage.name!r} in the stage table")
        by_name[stage.name] = stage
    for stage in stages:
        missing = [d for d in stage.depends_on if d not in by_name]
        if missing:
            raise ValueError(f"stage {stage.name} depends on unknown stages {missing}")
    done: set[str] = set()
    ordered: list[Stage] = []
    remaining = list(stages)
    while remaining:
        ready = next((s for s in remaining if all(d in done for d in s.depends_on)), None)
        if ready is None:
            raise ValueError(f"dependency cycle among stages {sorted(s.name for s in remaining)}")
        ordered.append(ready)
        done.add(ready.name)
        remaining.remove(ready)
    return ordered
