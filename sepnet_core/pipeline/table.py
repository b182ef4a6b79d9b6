"""The book's experiments as data: profiles, training runs, and the stage table of a profile.

To add or change an experiment, edit the tables here (:data:`TEMPLATES`, :data:`TRAIN_RUNS`,
:data:`ENSEMBLE_MEMBERS`, :data:`ABLATIONS`, :data:`PROFILES`); :func:`stages_for_profile` derives the
stage list from them. ``python -m sepnet_core.pipeline --list`` prints the result with what would run.
Parameters every stage gets from the driver (``profile``, ``results_dir``, ``figures_dir``,
``work_dir``) are described in :mod:`sepnet_core.pipeline.stage`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sepnet_core.pipeline.cache import Layout
from sepnet_core.pipeline.stage import Stage, topological_order

__all__ = [
    "ABLATIONS",
    "BASELINE_RUN",
    "LOSS_ARM_RUNS",
    "CLAIM_RUNS",
    "ENSEMBLE_ARMS",
    "ENSEMBLE_MEMBERS",
    "STUDY_RUNS",
    "PROFILES",
    "TEMPLATES",
    "TRAIN_RUNS",
    "Profile",
    "TrainRun",
    "baseline_arm",
    "get_profile",
    "seeds_of",
    "stages_for_profile",
]


@dataclass(frozen=True)
class Profile:
    """How big the whole book run is; the same notebooks serve every profile.

    Attributes:
        name: Profile name, also the folder under ``results/``, ``figures/`` and ``work/``.
        description: One line for ``--list`` and the reproducibility page.
        train_preset: :func:`sepnet_core.training.config.preset` name for every training stage.
        seeds: Training seeds of every run not named below (the ensemble members; one training stage
            per run and seed).
        claim_seeds: Seeds of every run of :data:`CLAIM_RUNS` (the configurations a claim compares).
        study_seeds: Seeds of every run of :data:`STUDY_RUNS` (measured beside the claims).
        baseline_seeds: Further seeds of :data:`BASELINE_RUN`; its seed-to-seed spread is the noise level
            of every comparison whose configs have a single seed (``compare(..., baseline_spread=...)``),
            so it needs two seeds or more in all.
        phantom_profile: :data:`sepnet_core.data.phantom.PHANTOM_PROFILES` name used to generate data,
            or ``None`` when the profile needs real data (``data_root``).
        phantom_cases: Cases per split of the generated phantom, as ``((split, count), ...)``.
        phantom_seed: Seed of the phantom generator.
        data_root: StructSeg-layout folder (``<root>/<split>/<patient>/data.nii.gz``); ``None`` means
            generate the phantom. Set it with :func:`dataclasses.replace` or ``--data-root``.
        jobs: Default number of stages run concurrently.
        train_overrides: Extra ``key=value`` overrides for
            :func:`sepnet_core.training.config.apply_overrides`, applied to every training stage.
        skip_runs: Runs of :data:`TRAIN_RUNS` this profile does not train (to fit its time budget);
            ablation groups made only of skipped runs are left out of their page. Never an ensemble
            member or :data:`BASELINE_RUN`.
    """

    name: str
    description: str
    train_preset: str
    seeds: tuple[int, ...] = (0,)
    claim_seeds: tuple[int, ...] = (0,)
    study_seeds: tuple[int, ...] = (0,)
    baseline_seeds: tuple[int, ...] = (0, 1, 2)
    phantom_profile: str | None = "cpu"
    phantom_cases: tuple[tuple[str, int], ...] = (("train", 6), ("valid", 2), ("test", 2))
    phantom_seed: int = 0
    data_root: str | None = None
    jobs: int = 1
    train_overrides: tuple[str, ...] = ()
    skip_runs: tuple[str, ...] = ()

    @property
    def needs_data_root(self) -> bool:
        """True when the profile has no phantom and so must be given real data."""
        return self.phantom_profile is None


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI: the whole chain in minutes on tiny phantom data (numbers are meaningless)",
        train_preset="smoke",
        seeds=(0,),
        claim_seeds=(0,),  # CI checks the plumbing, not the statistics: one seed (two for the baseline)
        study_seeds=(0,),
        baseline_seeds=(0, 1),
        phantom_profile="smoke",
        phantom_cases=(("train", 2), ("valid", 1), ("test", 1)),
        # the cpu preset's prior correction, on a short scan (its code path, not its effect)
        train_overrides=("prior_scale_max=0.1", "prior_scale_step=0.05"),
    ),
    # Budget of the cpu chain (issue 14 asks for at most 4 hours on a 2-core machine, 2 stages at a time,
    # one thread each). 25 training stages: the 6 trained CLAIM_RUNS x 3 seeds, the 2 seeds of the
    # intended Dice weighting and the 5 other ensemble members x 1. Measured on this machine (2 cores,
    # quiet apart from the two runs, 2026-12-07) with CPU_TRAIN_STEPS = 5,400 (the shortest run measured
    # whose curve flattens above the gate's 0.65; sepnet_core.training.config): a 3D-SepNet training
    # stage 2,550-2,760 s, a 3D U-Net one 2,100-2,220 s, two at a time, so the chain takes about
    # ceil(25 / 2) x 2,650 s + ~15 min (data + atlas, ensemble of 6 on 20 cases, the rest) = about 9.5 h,
    # beyond the 4 hours: it runs in the background over several sessions, resuming where it stopped. On a
    # slower 2-core machine (2026-12-07 evening, KVM Xeon with AMX) a step took 0.92 s instead of ~0.45 s
    # with two runs at once (a SepNet stage about 1.5 h, the chain about 19 h); one stage at a time on both
    # cores (jobs=1 below) 0.34 s, a SepNet stage 2,064 s, the chain about 14.5 h.
    "cpu": Profile(
        name="cpu",
        description="default of `make book`: the phantom's cpu profile (estimate: 9.5-14.5 h, 2-core CPU)",
        train_preset="cpu",
        seeds=(0,),  # the ensemble members other than the baseline: one seed each
        claim_seeds=(0, 1, 2),  # every configuration a claim compares (CLAIM_RUNS): 3 seeds
        study_seeds=(0, 1),  # the intended Dice weighting (STUDY_RUNS): 2 seeds
        baseline_seeds=(0, 1, 2),
        phantom_profile="cpu",
        # 10 train / 4 valid / 20 test: the comparisons are paired over the 20 test cases (issue 15).
        phantom_cases=(("train", 10), ("valid", 4), ("test", 20)),
        # One stage at a time on both cores: a cpu-preset step took 0.41 s alone on two threads against
        # 0.92 s for each of two runs on one thread (0.46 s per step of throughput; 2026-12-07, KVM Xeon);
        # issue 14 measured the same on the earlier machine (0.336 s against 0.735 / 2). A run also
        # finishes in half the wall time, so a session's end interrupts less work.
        jobs=1,
        # The window arm is fixed a priori as the soft-tissue window (W400/L40, the usual head-and-neck
        # window); the brain and bone windows are not trained here (3 seeds each would not fit the budget).
        skip_runs=("sepnet_brain_ath1", "sepnet_bone_ath1"),
    ),
    "paper": Profile(
        name="paper",
        description="the reference settings on real StructSeg 2019 task 1 data (GPU; needs --data-root)",
        train_preset="paper",
        seeds=(0,),
        claim_seeds=(0, 1, 2),
        study_seeds=(0, 1),
        baseline_seeds=(0, 1, 2),
        phantom_profile=None,
        phantom_cases=(),
        jobs=1,
    ),
}
"""The profiles of ``make book PROFILE=...``."""


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {sorted(PROFILES)}")
    return PROFILES[name]


# --------------------------------------------------------------------------------------------------
# The experiments
# --------------------------------------------------------------------------------------------------

TEMPLATES: dict[str, str] = {
    "data": "notebooks/01_data.ipynb",
    "intensity": "notebooks/02_intensity.ipynb",
    "train": "notebooks/03_train.ipynb",
    "ablation_network": "notebooks/04_ablation_network.ipynb",
    "ablation_intensity": "notebooks/05_ablation_intensity.ipynb",
    "ablation_loss": "notebooks/06_ablation_loss.ipynb",
    "ensemble": "notebooks/07_ensemble.ipynb",
    "summary": "notebooks/08_summary.ipynb",
    "performance": "notebooks/09_performance.ipynb",
    "reproducibility": "notebooks/10_reproducibility.ipynb",
    "benchmarks": "notebooks/11_benchmarks.ipynb",
}
"""Template notebook of each kind of stage. The executed copy goes to ``book/pages/<template name>``,
except training runs, which go to ``book/pages/03_train/<run>_s<seed>.ipynb``."""


@dataclass(frozen=True)
class TrainRun:
    """One training configuration; each is trained once per profile seed.

    Attributes:
        run: Identifier used in stage names and folders, e.g. ``sepnet_slf1_ath1``.
        model: :func:`sepnet_core.models.build_model` name ("sepnet" | "unet").
        intensity: :data:`sepnet_core.intensity.PRESETS` name ("slf1", "soft_tissue", ...).
        loss: :func:`sepnet_core.losses.build_loss` name ("dice" | "explog" | "ath").
        alpha: ATH temperature; ``None`` for the other losses.
        overrides: Extra ``key=value`` training-config overrides of this run (after the profile's).
    """

    run: str
    model: str
    intensity: str
    loss: str
    alpha: float | None = None
    overrides: tuple[str, ...] = ()


def _run(model: str, intensity: str, loss: str, alpha: float | None = None, suffix: str = "",
         overrides: tuple[str, ...] = ()) -> TrainRun:
    tag = loss if alpha is None else f"{loss}{format(alpha, 'g').replace('.', '')}"  # 0.5 -> ath05
    return TrainRun(f"{model}_{intensity}_{tag}{suffix}", model, intensity, loss, alpha, overrides)


TRAIN_RUNS: tuple[TrainRun, ...] = (
    # The ensemble: {SLF-1, SLF-2, SLF-3} x ATH alpha {1, 0.5}.
    *(_run("sepnet", slf, "ath", alpha) for slf in ("slf1", "slf2", "slf3") for alpha in (1.0, 0.5)),
    # Network ablation: 3D U-Net with the same intensity and loss as the sepnet_slf1_ath1 member.
    _run("unet", "slf1", "ath", 1.0),
    # Intensity ablation: window width/level baselines, same network and loss.
    *(_run("sepnet", window, "ath", 1.0) for window in ("soft_tissue", "brain", "bone")),
    # Loss ablation: the baselines of ATH, same network and SLF-1 (exp-log with the preset's background
    # and Dice-weighting settings, as ATH; the Dice loss counts every class anyway).
    # The Dice loss has no class-weighted cross-entropy, which is what the prior correction undoes (and a
    # soft-Dice run that labels no organ has no scale to choose): it trains without the correction.
    _run("sepnet", "slf1", "dice", overrides=("prior_scale_max=0",)),
    _run("sepnet", "slf1", "explog"),
    # The loss page's three versions of ATH alpha 1 (see losses.py), each fully specified. The one that
    # equals the profile's preset is the baseline run itself and is not trained twice
    # (baseline_arm, LOSS_ARM_RUNS):
    # the paper's loss as the reference code computed it (reference Dice weighting, foreground only),
    _run("sepnet", "slf1", "ath", 1.0, suffix="_ref",
         overrides=("dice_weighting=reference", "loss_background=false")),
    # the Dice term as the paper's text writes it (mean over classes, smoothing 1), foreground only,
    _run("sepnet", "slf1", "ath", 1.0, suffix="_intended",
         overrides=("dice_weighting=intended", "loss_background=false")),
    # ours: the background class counted too (TrainConfig.loss_background), intended weighting.
    _run("sepnet", "slf1", "ath", 1.0, suffix="_bg",
         overrides=("dice_weighting=intended", "loss_background=true")),
)
"""Every training configuration of the book."""

ENSEMBLE_MEMBERS: tuple[str, ...] = tuple(r.run for r in TRAIN_RUNS[:6])
"""Runs fused by the ensemble stage (first profile seed of each)."""

BASELINE_RUN = "sepnet_slf1_ath1"
"""The run trained with every seed of :attr:`Profile.baseline_seeds`: the paper's main configuration
(3D-SepNet, SLF-1, ATH alpha 1) and the reference of all three ablations."""

LOSS_ARM_RUNS: dict[str, str] = {
    "reference": "sepnet_slf1_ath1_ref",
    "intended": "sepnet_slf1_ath1_intended",
    "background": "sepnet_slf1_ath1_bg",
}
"""The three versions of ATH alpha 1 on the loss page (arm -> run): the reference code's Dice weighting
(the paper's loss as trained), the intended formula, and the background counted (ours). The arm whose settings
the profile's training preset already has (:func:`baseline_arm`) is the baseline run's own
configuration, so its run is not trained."""

CLAIM_RUNS: tuple[str, ...] = (
    BASELINE_RUN, "unet_slf1_ath1", "sepnet_soft_tissue_ath1", "sepnet_slf1_dice", "sepnet_slf1_explog",
    "sepnet_slf1_ath1_bg", "sepnet_slf1_ath1_ref",
)
"""Runs a claim of the paper compares (the baseline, the 3D U-Net, the window arm, the Dice and exp-log
losses, the background variant or the paper's loss, whichever is not the baseline): trained with
:attr:`Profile.claim_seeds`. The window arm is fixed a priori as the soft-tissue window, not picked as
the best window after the fact."""

STUDY_RUNS: tuple[str, ...] = ("sepnet_slf1_ath1_intended",)
"""Runs measured beside the claims (the loss page's background question): :attr:`Profile.study_seeds`."""

ENSEMBLE_ARMS: dict[str, str] = {
    "3D-SepNet (baseline)": BASELINE_RUN,
    "3D U-Net": "unet_slf1_ath1",
    "window soft tissue": "sepnet_soft_tissue_ath1",
}
"""Single-network arms the ensemble page draws beside the ensemble (label -> run; the first seed's
checkpoint folder is passed as the ensemble stage's ``arms`` parameter)."""

ABLATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "ablation_network": {
        "3D-SepNet": ("sepnet_slf1_ath1",),
        "3D U-Net": ("unet_slf1_ath1",),
    },
    "ablation_intensity": {
        "SLF-1": ("sepnet_slf1_ath1",),
        "SLF-2": ("sepnet_slf2_ath1",),
        "SLF-3": ("sepnet_slf3_ath1",),
        "window soft tissue": ("sepnet_soft_tissue_ath1",),
        "window brain": ("sepnet_brain_ath1",),
        "window bone": ("sepnet_bone_ath1",),
    },
    "ablation_loss": {
        "Dice": ("sepnet_slf1_dice",),
        "exp-log": ("sepnet_slf1_explog",),
        "ATH alpha=1": ("sepnet_slf1_ath1",),
        "ATH alpha=0.5": ("sepnet_slf1_ath05",),
        "ATH alpha=1, reference Dice weighting (paper)": ("sepnet_slf1_ath1_ref",),
        "ATH alpha=1, intended Dice weighting": ("sepnet_slf1_ath1_intended",),
        "ATH alpha=1 + background (ours)": ("sepnet_slf1_ath1_bg",),
    },
}
"""Each ablation stage compares labelled groups of runs (every seed trained of each run: the profile seeds,
and for :data:`BASELINE_RUN` also its baseline seeds)."""


def _page(template: str) -> str:
    return "book/pages/" + template.rsplit("/", 1)[-1]


def baseline_arm(profile: Profile | str) -> str | None:
    """The arm of :data:`LOSS_ARM_RUNS` that :data:`BASELINE_RUN` already is in ``profile``, or None.

    It is the arm whose overrides change nothing in the profile's training preset (with the profile's
    own overrides): "reference" for the ``paper`` and ``smoke`` presets (the paper's loss), "background"
    for ``cpu`` (ATH + background, intended weighting; see :mod:`sepnet_core.training.config`).

    Example:
        >>> baseline_arm("paper"), baseline_arm("cpu")
        ('reference', 'background')
    """
    from sepnet_core.training.config import apply_overrides, preset

    prof = get_profile(profile) if isinstance(profile, str) else profile
    base = apply_overrides(preset(prof.train_preset), prof.train_overrides)
    overrides = {r.run: r.overrides for r in TRAIN_RUNS}
    for arm, run in LOSS_ARM_RUNS.items():
        if apply_overrides(base, overrides[run]) == base:
            return arm
    return None


def seeds_of(run: str, profile: Profile | str) -> tuple[int, ...]:
    """Seeds a run is trained with in a profile (the one rule; in this order):

    :attr:`Profile.claim_seeds` for a run of :data:`CLAIM_RUNS`, :attr:`Profile.study_seeds` for one of
    :data:`STUDY_RUNS`, :attr:`Profile.seeds` for the others; :data:`BASELINE_RUN` also gets
    :attr:`Profile.baseline_seeds`. A run of :attr:`Profile.skip_runs` gets none, and so does the run of
    :data:`LOSS_ARM_RUNS` that is the baseline's own configuration (:func:`baseline_arm`).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if run in prof.skip_runs or run == LOSS_ARM_RUNS.get(baseline_arm(prof) or ""):
        return ()
    seeds = prof.claim_seeds if run in CLAIM_RUNS else prof.study_seeds if run in STUDY_RUNS else prof.seeds
    extra = prof.baseline_seeds if run == BASELINE_RUN else ()
    return tuple(dict.fromkeys((*seeds, *extra)))


BENCHMARKS_DIR = "results/benchmarks"
"""Where ``make bench`` writes its tables (read by the ``benchmarks`` stage)."""


def benchmark_fingerprint(root: str | Path = ".") -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of each CSV table in ``root/results/benchmarks``, by file name.

    The ``benchmarks`` stage gets it as a parameter, so the stage reruns when ``make bench`` rewrites a
    table (its cache key covers parameters, not the files a notebook reads).
    """
    folder = Path(root) / BENCHMARKS_DIR
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(folder.glob("*.csv"))}


def _loss_arm_labels(prof: Profile, groups: dict[str, list[str]]) -> dict[str, str]:
    """{arm of :data:`LOSS_ARM_RUNS`: its group label on the loss page} for the arms ``prof`` has; the
    baseline's arm (:func:`baseline_arm`) is the group of :data:`BASELINE_RUN`."""
    own = baseline_arm(prof)
    labels = {}
    for arm, run in LOSS_ARM_RUNS.items():
        wanted = BASELINE_RUN if arm == own else run
        labels.update((arm, label) for label, runs in groups.items() if runs == [wanted])
    return labels


def stages_for_profile(
    profile: Profile | str, data_root: str | None = None, nproc: int = 1, root: str | Path = "."
) -> list[Stage]:
    """The stage table of ``profile``, in dependency order.

    Parameters each kind of stage receives (besides the driver's four, see
    :mod:`sepnet_core.pipeline.stage`):

    - ``data``: ``data_root`` (real data or None), ``data_dir`` (where the cases are), ``phantom_profile``,
      ``phantom_cases`` ({split: count}), ``phantom_seed``;
    - ``intensity``: ``data_dir``;
    - ``train_<run>_s<seed>``: ``run`` (``<run>_s<seed>``), ``model``, ``intensity``, ``loss``, ``alpha``,
      ``seed``, ``preset``, ``overrides``, ``data_dir``, ``data_results`` (the data stage's results, for
      the atlas score of the gate), ``run_dir`` (checkpoints, under ``work/``), ``nproc``;
    - ablations: ``runs`` ({label: [results folder of each training stage]}), ``baseline`` (results
      folders of :data:`BASELINE_RUN`'s seeds), ``data_results`` (the atlas score of the gate); they
      read committed results only;
    - ``ensemble``: ``members`` (run folders with ``best.pt``), ``arms`` ({label: run folder} of
      :data:`ENSEMBLE_ARMS`, first seed), ``data_dir``, ``baseline``, ``data_kind``; for the members'
      trained-model gate ``member_results`` (their training stages' results folders) and ``data_results``;
    - ``summary``: ``inputs`` ({stage: results folder}), ``baseline``, ``data_kind`` ("phantom" |
      "structseg"); for the trained-model gate ``train_results`` ({run id: results folder} of every
      training stage), ``data_results`` (the atlas score), ``configs`` ({config label of the ablations:
      its run ids}); for the headline figure ``members`` and ``data_dir``;
    - ``performance``: ``quick``; ``benchmarks``: ``benchmarks_dir``, ``tables``
      (:func:`benchmark_fingerprint`); ``reproducibility``: ``records_dir``, ``profile_description``.

    Args:
        profile: A :class:`Profile` or a name in :data:`PROFILES`.
        data_root: Real StructSeg-layout data folder; overrides ``profile.data_root``. Required for a
            profile without a phantom ("paper").
        nproc: Processes (GPUs) per training stage, passed to the training notebook as ``nproc``
            (torchrun path of the engine). Default 1.
        root: Repository root, where the ``benchmarks`` stage's tables are fingerprinted.

    Returns:
        Stages: ``data``, ``intensity``, ``train_<run>_s<seed>`` for every run of :data:`TRAIN_RUNS`
        and profile seed (plus the baseline seeds of :data:`BASELINE_RUN`), the three ablations,
        ``ensemble``, ``performance``, ``benchmarks``, ``summary``, ``reproducibility``; ordered so that
        the ensemble's training stages and the ensemble come first.

    Raises:
        ValueError: unknown profile name, ``nproc`` < 1, or no data root for a profile that needs one.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if data_root is not None:
        prof = replace(prof, data_root=str(data_root))
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
    if prof.needs_data_root and prof.data_root is None:
        raise ValueError(f"profile {prof.name!r} needs real data: pass data_root (--data-root), a folder "
                         f"laid out as <root>/<split>/<patient>/data.nii.gz + label.nii.gz")
    layout = Layout(Path("."), prof.name)
    work = layout.work_dir
    generated = prof.data_root is None
    data_dir = f"{work}/data" if generated else prof.data_root
    data_stage = Stage(
        name="data",
        template=TEMPLATES["data"],
        output=_page(TEMPLATES["data"]),
        parameters={
            "data_root": prof.data_root,
            "data_dir": data_dir,
            "phantom_profile": prof.phantom_profile if generated else None,
            "phantom_cases": dict(prof.phantom_cases),
            "phantom_seed": prof.phantom_seed,
        },
        products=(data_dir,) if generated else (),
    )
    stages = [
        data_stage,
        Stage("intensity", TEMPLATES["intensity"], _page(TEMPLATES["intensity"]),
              {"data_dir": data_dir}, depends_on=("data",)),
    ]

    run_dirs: dict[str, list[str]] = {}  # run -> checkpoint folders, seed order
    results: dict[str, list[str]] = {}  # run -> results folders of its training stages
    train_stages: dict[str, list[str]] = {}
    known = {r.run for r in TRAIN_RUNS}
    protected = {*ENSEMBLE_MEMBERS, BASELINE_RUN}
    bad = sorted(set(prof.skip_runs) - (known - protected))
    if bad:
        raise ValueError(f"profile {prof.name!r} cannot skip run(s) {bad}: unknown, an ensemble member or "
                         f"the baseline run")
    for run in TRAIN_RUNS:
        if run.run in prof.skip_runs:
            continue
        for seed in seeds_of(run.run, prof):
            run_id = f"{run.run}_s{seed}"
            run_dir = f"{work}/runs/{run_id}"
            stage = Stage(
                name=f"train_{run_id}",
                template=TEMPLATES["train"],
                output=f"book/pages/03_train/{run_id}.ipynb",
                parameters={
                    "run": run_id,
                    "model": run.model,
                    "intensity": run.intensity,
                    "loss": run.loss,
                    "alpha": run.alpha,
                    "seed": seed,
                    "preset": prof.train_preset,
                    "overrides": [*prof.train_overrides, *run.overrides],
                    "data_dir": data_dir,
                    "data_results": layout.results_dir("data"),
                    "run_dir": run_dir,
                    "nproc": nproc,
                },
                depends_on=("data",),
                products=(f"{run_dir}/best.pt",),
                gpus=nproc,
            )
            stages.append(stage)
            run_dirs.setdefault(run.run, []).append(run_dir)
            results.setdefault(run.run, []).append(layout.results_dir(stage.name))
            train_stages.setdefault(run.run, []).append(stage.name)
    baseline = results[BASELINE_RUN]

    def deps(*names: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(["data", *(n for group in names for n in group)]))

    for name, groups in ABLATIONS.items():
        groups = {label: [r for r in runs if r in results] for label, runs in groups.items()}
        groups = {label: runs for label, runs in groups.items() if runs}
        dirs = {label: [d for r in runs for d in results[r]] for label, runs in groups.items()}
        trained = [s for runs in groups.values() for r in runs for s in train_stages[r]]
        params = {"runs": dirs, "baseline": baseline, "data_results": layout.results_dir("data")}
        if name == "ablation_loss":
            params["background_arms"] = _loss_arm_labels(prof, groups)
        # Ablations read the committed results of the training stages, never their checkpoints.
        stages.append(Stage(name, TEMPLATES[name], _page(TEMPLATES[name]), params,
                            depends_on=deps(trained, train_stages[BASELINE_RUN]), uses_products=False))
    members = [run_dirs[r][0] for r in ENSEMBLE_MEMBERS]
    arms = {label: run_dirs[r][0] for label, r in ENSEMBLE_ARMS.items() if r in run_dirs}
    data_kind = "phantom" if generated else "structseg"
    stages.append(Stage("ensemble", TEMPLATES["ensemble"], _page(TEMPLATES["ensemble"]),
                        {"members": members, "arms": arms, "data_dir": data_dir, "baseline": baseline,
                         "data_kind": data_kind, "member_results": [results[r][0] for r in ENSEMBLE_MEMBERS],
                         "data_results": layout.results_dir("data")},
                        depends_on=deps([train_stages[r][0] for r in ENSEMBLE_MEMBERS],
                                        [train_stages[r][0] for r in ENSEMBLE_ARMS.values() if r in run_dirs],
                                        train_stages[BASELINE_RUN])))
    stages.append(Stage("performance", TEMPLATES["performance"], _page(TEMPLATES["performance"]),
                        {"quick": prof.name == "smoke"}))
    stages.append(Stage("benchmarks", TEMPLATES["benchmarks"], _page(TEMPLATES["benchmarks"]),
                        {"benchmarks_dir": BENCHMARKS_DIR, "tables": benchmark_fingerprint(root)},
                        uses_products=False))
    summarised = ("ablation_network", "ablation_intensity", "ablation_loss", "ensemble", "performance")
    all_train = [s for names in train_stages.values() for s in names]
    configs = {label: [f"{r}_s{seed}" for r in runs if r in results for seed in seeds_of(r, prof)]
               for groups in ABLATIONS.values() for label, runs in groups.items()}
    stages.append(Stage("summary", TEMPLATES["summary"], _page(TEMPLATES["summary"]),
                        {"inputs": {s: layout.results_dir(s) for s in summarised}, "baseline": baseline,
                         "data_kind": data_kind,
                         # the trained-model gate: every training stage's results and the atlas score
                         "train_results": {s.removeprefix("train_"): layout.results_dir(s)
                                           for s in all_train},
                         "data_results": layout.results_dir("data"),
                         "configs": {label: ids for label, ids in configs.items() if ids},
                         "members": members, "data_dir": data_dir},
                        depends_on=deps(summarised, all_train)))
    stages.append(Stage("reproducibility", TEMPLATES["reproducibility"], _page(TEMPLATES["reproducibility"]),
                        {"records_dir": layout.records_dir.relative_to(layout.root).as_posix(),
                         "profile_description": prof.description},
                        depends_on=tuple(s.name for s in stages), uses_products=False))
    # Run order (the driver starts the first ready stage of this order): the training stages whose
    # checkpoints the ensemble stage reads, then the ensemble, then the rest. A chain that spans several
    # sessions needs those uncommitted checkpoints early, while they are most likely still on disk (a
    # lost one is retrained, deterministically, before a stage that reads it runs).
    first = {*next(s for s in stages if s.name == "ensemble").depends_on, "ensemble"}
    stages = [s for s in stages if s.name in first] + [s for s in stages if s.name not in first]
    return topological_order(stages)
