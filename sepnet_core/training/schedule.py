"""Learning-rate schedules: the paper's StepLR, or warm-up followed by poly or cosine decay.

:func:`build_schedule` turns :class:`~sepnet_core.training.config.OptimConfig` into a :class:`Schedule`
that the training loop calls after every optimiser step (:meth:`Schedule.after_step`) and after every
epoch (:meth:`Schedule.after_epoch`); each kind of schedule acts on one of the two:

* ``"step"`` (the paper, reference code ``StepLR(step_size=10, gamma=0.9)``): the rate is multiplied
  by ``gamma`` every ``step_every_epochs`` epochs, stepped once per epoch.
* ``"poly"`` (ours, for short runs; nnU-Net's rule ``lr (1 - t)^0.9``): a linear warm-up over
  ``warmup_steps`` optimiser steps from ``lr / warmup_steps`` to ``lr``, then
  ``lr (1 - t)^poly_power`` with ``t`` the fraction of the remaining steps done, stepped per step.
* ``"cosine"`` (ours): the same warm-up, then ``lr (1 + cos(pi t)) / 2``.

The per-step factor is a pure function of the step count (:func:`lr_factor`), so a resumed run that
restores the scheduler's state (its step counter) continues with exactly the rates of an uninterrupted
run. The total number of steps is ``epochs x iterations_per_epoch`` of the run: extending a finished
poly or cosine run (``--resume`` with more epochs) stretches the decay from the resumption point on.

Example:
    >>> round(lr_factor("poly", step=50, total_steps=100, warmup_steps=0, power=0.9), 4)
    0.5359
    >>> [round(lr_factor("cosine", s, 10, warmup_steps=2), 3) for s in (0, 1, 2, 6)]
    [0.5, 1.0, 1.0, 0.5]
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["SCHEDULES", "Schedule", "build_schedule", "lr_factor"]

SCHEDULES: tuple[str, ...] = ("step", "poly", "cosine")
"""Valid ``OptimConfig.schedule`` values."""


def lr_factor(kind: str, step: int, total_steps: int, warmup_steps: int = 0, power: float = 0.9) -> float:
    """Multiplier of the initial rate for the optimiser step that follows ``step`` completed steps.

    Args:
        kind: "poly" or "cosine".
        step: Optimiser steps done so far (0 for the first step).
        total_steps: Steps of the whole run (>= 1).
        warmup_steps: Linear warm-up length in steps (0: none); factor ``(step + 1) / warmup_steps``
            during it.
        power: Exponent of the poly decay (nnU-Net: 0.9).

    Returns:
        The factor, in [0, 1].

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in ("poly", "cosine"):
        raise ValueError(f"lr_factor: kind must be 'poly' or 'cosine', got {kind!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = min(max((step - warmup_steps) / span, 0.0), 1.0)
    if kind == "poly":
        return (1.0 - t) ** power
    return 0.5 * (1.0 + math.cos(math.pi * t))


class Schedule:
    """A learning-rate scheduler and when to step it (per optimiser step or per epoch).

    Attributes:
        kind: One of :data:`SCHEDULES`.
        scheduler: The torch scheduler (``StepLR`` or ``LambdaLR``).
        per_step: True if it advances after every optimiser step, False if after every epoch.
    """

    def __init__(self, kind: str, scheduler: torch.optim.lr_scheduler.LRScheduler, per_step: bool) -> None:
        self.kind, self.scheduler, self.per_step = kind, scheduler, per_step

    def after_step(self) -> None:
        """Call after each ``optimizer.step()``."""
        if self.per_step:
            self.scheduler.step()

    def after_epoch(self) -> None:
        """Call at the end of each epoch."""
        if not self.per_step:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (what a checkpoint stores as ``scheduler_state``)."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (resume)."""
        self.scheduler.load_state_dict(state)


def build_schedule(optimizer: torch.optim.Optimizer, optim: Any, total_steps: int) -> Schedule:
    """The schedule ``optim`` describes, attached to ``optimizer``.

    Args:
        optimizer: The optimiser whose ``lr`` is scheduled (its current lr is the initial rate).
        optim: An :class:`~sepnet_core.training.config.OptimConfig` (``schedule``, ``step_every_epochs``,
            ``gamma``, ``warmup_steps``, ``poly_power``).
        total_steps: Optimiser steps of the whole run (``epochs x iterations_per_epoch``).

    Raises:
        ValueError: unknown ``optim.schedule`` (valid names listed).
    """
    kind = optim.schedule
    if kind == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.step_every_epochs,
                                                    gamma=optim.gamma)
        return Schedule(kind, scheduler, per_step=False)
    if kind not in SCHEDULES:
        raise ValueError(f"optim.schedule={kind!r} is not valid; valid values: {', '.join(SCHEDULES)}")
    warmup, power = int(optim.warmup_steps), float(optim.poly_power)

    def factor(step: int) -> float:
        return lr_factor(kind, step, total_steps, warmup, power)

    return Schedule(kind, torch.optim.lr_scheduler.LambdaLR(optimizer, factor), per_step=True)
