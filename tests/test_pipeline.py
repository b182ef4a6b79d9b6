"""The book pipeline driver: stage table, cache keys, plan, and real papermill runs on tiny notebooks.

The executed tests build a throw-away repository in a temporary folder with four tiny templates:

    a (value) ---> b (factor) ---> d (copies b's result)
    c (fails while the file fail_c exists) ---^

Every executed notebook appends its stage name to ``executions.log`` in the root, so a test can see
exactly which stages ran and in which order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sepnet_core.pipeline import (
    ENSEMBLE_MEMBERS,
    PROFILES,
    TRAIN_RUNS,
    Stage,
    main,
    plan_pipeline,
    read_stage_records,
    run_pipeline,
    stages_for_profile,
    template_fingerprint,
    topological_order,
)
from sepnet_core.pipeline.table import BASELINE_RUN, CLAIM_RUNS, ENSEMBLE_ARMS, STUDY_RUNS, seeds_of

PROFILE = "test"
CODE = "code-hash-for-tests"

_LOG = 'open("executions.log", "a").write({name!r} + "\\n")\n'
BODIES = {
    "a": "import json, pathlib\n" + _LOG.format(name="a") +
         'pathlib.Path(results_dir, "a.json").write_text(json.dumps({"value": value}))\n'
         'pathlib.Path(work_dir).mkdir(parents=True, exist_ok=True)\n'
         'pathlib.Path(work_dir, "a.bin").write_text("heavy")\n',
    "b": "import json, pathlib\n" + _LOG.format(name="b") +
         'a = json.loads(pathlib.Path(f"results/{profile}/a/a.json").read_text())\n'
         'pathlib.Path(results_dir, "b.json").write_text(json.dumps({"value": a["value"] * factor}))\n',
    "c": "import pathlib\n"
         'if pathlib.Path("fail_c").exists():\n    raise RuntimeError("c was told to fail")\n' +
         _LOG.format(name="c"),
    "d": "import json, pathlib\n" + _LOG.format(name="d") +
         'b = json.loads(pathlib.Path(f"results/{profile}/b/b.json").read_text())\n'
         'pathlib.Path(results_dir, "d.json").write_text(json.dumps(b))\n',
    "stop": "import os, pathlib, signal, time\n"
            'if pathlib.Path("interrupt").exists():  # play Ctrl-C on the driver, then keep running\n'
            '    os.kill(int(pathlib.Path("interrupt").read_text()), signal.SIGINT)\n'
            '    time.sleep(30)\n' + _LOG.format(name="stop"),
    "slow": "import json, os, pathlib, time\nt0 = time.time()\ntime.sleep(1.5)\n" + _LOG.format(name="slow") +
            'gpus = os.environ.get("CUDA_VISIBLE_DEVICES")\n'
            'pathlib.Path(results_dir, "t.json").write_text(json.dumps([t0, time.time(), gpus]))\n',
}
PARAMS = {"a": "value = 1  # a number", "b": "factor = 2", "c": "label = 'c'", "d": "note = ''",
          "stop": "tag = ''", "slow": "tag = ''"}


def write_template(path: Path, name: str) -> None:
    """A template: a ``parameters`` cell with the driver's four defaults plus the stage's, and a body."""
    defaults = ('profile = "test"\nresults_dir = "results/test/x"\nfigures_dir = "figures/test/x"\n'
                'work_dir = "work/test"\n' + PARAMS[name])
    nb = new_notebook(cells=[new_code_cell(defaults, metadata={"tags": ["parameters"]}),
                             new_code_cell(BODIES[name])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_repo(root: Path) -> None:
    for name in BODIES:
        write_template(root / "notebooks" / f"{name}.ipynb", name)


def table(**params: dict) -> list[Stage]:
    """The a/b/c/d stage table; keyword ``<stage>={...}`` sets a stage's parameters."""
    def stage(name: str, deps: tuple[str, ...] = (), products: tuple[str, ...] = ()) -> Stage:
        return Stage(name, f"notebooks/{name}.ipynb", f"book/pages/{name}.ipynb", params.get(name, {}),
                     depends_on=deps, products=products)

    return [stage("a", products=(f"work/{PROFILE}/a.bin",)), stage("b", ("a",)), stage("c"),
            stage("d", ("b", "c"))]


def run(root: Path, stages: list[Stage], **kwargs):
    return run_pipeline(stages, root, PROFILE, gpus=(), code_hash=CODE, **kwargs)


def executions(root: Path) -> list[str]:
    path = root / "executions.log"
    return path.read_text().split() if path.exists() else []


def read_json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A repository after one complete run of the a/b/c/d table (value=3, factor=2)."""
    root = tmp_path_factory.mktemp("repo")
    make_repo(root)
    report = run(root, table(a={"value": 3}))
    return root, report


@pytest.fixture
def repo(first_run, tmp_path):
    """A private copy of the repository after the first run (the log emptied)."""
    root = tmp_path / "repo"
    shutil.copytree(first_run[0], root)
    (root / "executions.log").unlink()
    return root


# ----------------------------------------------------------------------------------- executed runs


@pytest.mark.slow
def test_first_run_order_parameters_outputs(first_run):
    root, report = first_run
    assert report.ok and sorted(report.executed) == ["a", "b", "c", "d"]
    log = executions(root)
    assert sorted(log) == ["a", "b", "c", "d"]
    assert log.index("a") < log.index("b") < log.index("d") and log.index("c") < log.index("d")
    # The stage parameter (value=3) and the injected results_dir reached the notebooks.
    assert read_json(root / "results/test/a/a.json") == {"value": 3}
    assert read_json(root / "results/test/d/d.json") == {"value": 6}
    nb = nbformat.read(root / "book/pages/b.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'results_dir = "results/test/b"' in injected[0].source
    assert nb.metadata.papermill["output_path"] == "book/pages/b.ipynb"
    record = read_json(root / "results/test/_stages/b.json")
    assert record["stage"] == "b" and record["duration_s"] > 0 and record["key"]
    assert record["parameters"] == {"profile": "test", "results_dir": "results/test/b",
                                    "figures_dir": "figures/test/b", "work_dir": "work/test"}
    assert record["dependencies"] == {"a": read_json(root / "results/test/_stages/a.json")["run_id"]}
    assert [r["stage"] for r in read_stage_records(root, PROFILE)] == log
    assert {s["stage"]: s["status"] for s in read_json(root / "results/test/_stages/run.json")["stages"]} \
        == dict.fromkeys("abcd", "ran")
    assert not list((root / "work/test/_partial").glob("*.ipynb"))


@pytest.mark.slow
def test_second_run_skips_everything(repo):
    mtime = (repo / "book/pages/d.ipynb").stat().st_mtime_ns
    report = run(repo, table(a={"value": 3}))
    assert report.status == dict.fromkeys("abcd", "skipped")
    assert executions(repo) == []
    assert (repo / "book/pages/d.ipynb").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_changed_parameter_reruns_stage_and_dependents_only(repo):
    report = run(repo, table(a={"value": 5}))
    assert report.status == {"a": "ran", "b": "ran", "c": "skipped", "d": "ran"}
    assert executions(repo) == ["a", "b", "d"]
    assert read_json(repo / "results/test/d/d.json") == {"value": 10}


@pytest.mark.slow
def test_failed_stage_leaves_nothing_and_rerun_redoes_only_unfinished(repo):
    (repo / "fail_c").touch()
    report = run(repo, table(a={"value": 3}), force=["c"])
    assert report.status == {"a": "skipped", "b": "skipped", "c": "failed", "d": "blocked"}
    assert not report.ok
    assert not (repo / "results/test/_stages/c.json").exists()  # removed before c ran, not rewritten
    assert not (repo / "book/pages/c.ipynb").exists()
    assert (repo / "work/test/_partial/c.ipynb").exists()  # the failed notebook is kept for inspection
    assert "c was told to fail" in (repo / "work/test/_logs/c.log").read_text()
    (repo / "fail_c").unlink()
    report = run(repo, table(a={"value": 3}))
    assert report.status == {"a": "skipped", "b": "skipped", "c": "ran", "d": "ran"}
    assert executions(repo) == ["c", "d"]


_INTERRUPTED_DRIVER = """
import os, pathlib, signal, sys
# A process started in the background by a non-interactive shell inherits SIGINT ignored (and Python then
# installs no handler): give the driver the Ctrl-C handling of a terminal run.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, sys.argv[2])
import test_pipeline as t
from sepnet_core.pipeline.stage import Stage
repo = pathlib.Path(sys.argv[1])
(repo / "interrupt").write_text(str(os.getpid()))
stages = [*t.table(a={"value": 3})[:2],
          Stage("stop", "notebooks/stop.ipynb", "book/pages/stop.ipynb", depends_on=("b",))]
try:
    t.run(repo, stages)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
def test_interrupted_run_keeps_finished_stages_and_reruns_the_rest(repo):
    stages = [*table(a={"value": 3})[:2],
              Stage("stop", "notebooks/stop.ipynb", "book/pages/stop.ipynb", depends_on=("b",))]
    # The driver runs in its own process (default Ctrl-C handling whatever earlier tests did to this
    # one); the "stop" stage sends it SIGINT, as a user's Ctrl-C would.
    t0 = time.monotonic()
    command = [sys.executable, "-c", _INTERRUPTED_DRIVER, str(repo), str(Path(__file__).parent)]
    driver = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=repo)
    assert driver.returncode == 130, driver.stdout[-2000:] + driver.stderr[-2000:]
    assert time.monotonic() - t0 < 25  # the running stage was stopped, not waited for
    assert not (repo / "results/test/_stages/stop.json").exists()
    assert not (repo / "book/pages/stop.ipynb").exists()
    (repo / "interrupt").unlink()
    report = run(repo, stages)
    assert report.status == {"a": "skipped", "b": "skipped", "stop": "ran"}
    assert executions(repo) == ["stop"]


@pytest.mark.slow
def test_jobs_2_runs_independent_stages_concurrently_one_gpu_each(tmp_path):
    make_repo(tmp_path)
    stages = [Stage(n, "notebooks/slow.ipynb", f"book/pages/{n}.ipynb", {"tag": n}) for n in ("s1", "s2")]
    stages.append(Stage("both", "notebooks/slow.ipynb", "book/pages/both.ipynb", {"tag": "both"}, gpus=2))
    report = run_pipeline(stages, tmp_path, PROFILE, jobs=2, gpus=("3", "5"), code_hash=CODE)
    assert report.status == {"s1": "ran", "s2": "ran", "both": "ran"}
    (a0, a1, a_gpu), (b0, b1, b_gpu), (c0, _, c_gpu) = (
        read_json(tmp_path / f"results/test/{n}/t.json") for n in ("s1", "s2", "both"))
    assert a0 < b1 and b0 < a1  # the two single-GPU stages overlapped in time...
    assert {a_gpu, b_gpu} == {"3", "5"}  # ...each on its own GPU
    assert c_gpu == "3,5" and c0 > max(a1, b1)  # the two-GPU stage waited for both


# ------------------------------------------------------------------------------------ plan only


def actions(plan) -> dict[str, str]:
    return {p.stage.name: p.action for p in plan}


def test_plan_force_only_and_output_checks(repo):
    stages = table(a={"value": 3})
    assert set(actions(plan_pipeline(stages, repo, PROFILE, code_hash=CODE)).values()) == {"skip"}
    assert actions(plan_pipeline(stages, repo, PROFILE, force=["b"], code_hash=CODE)) == \
        {"a": "skip", "b": "run", "c": "skip", "d": "run"}
    assert actions(plan_pipeline(stages, repo, PROFILE, only=["b"], force_all=True, code_hash=CODE)) == \
        {"a": "run", "b": "run"}
    assert set(actions(plan_pipeline(stages, repo, PROFILE, code_hash="other")).values()) == {"run"}
    # An executed page replaced by another run (e.g. another profile) is not up to date.
    page = repo / "book/pages/c.ipynb"
    page.write_text(page.read_text() + "\n")
    assert actions(plan_pipeline(stages, repo, PROFILE, code_hash=CODE))["c"] == "run"


def test_plan_restores_missing_products_only_when_needed(repo):
    (repo / "work/test/a.bin").unlink()
    stages = table(a={"value": 3})
    assert set(actions(plan_pipeline(stages, repo, PROFILE, code_hash=CODE)).values()) == {"skip"}
    plan = plan_pipeline(table(a={"value": 3}, b={"factor": 4}), repo, PROFILE, code_hash=CODE)
    assert actions(plan) == {"a": "restore", "b": "run", "c": "skip", "d": "run"}
    assert plan[0].reason == "work/test/a.bin missing (needed by b)"
    # A stage that reads only committed results does not bring back its dependencies' products.
    stages = table(a={"value": 3}, b={"factor": 4})
    stages[1] = replace(stages[1], uses_products=False)
    assert actions(plan_pipeline(stages, repo, PROFILE, code_hash=CODE))["a"] == "skip"


def test_plan_notices_a_dependency_that_ran_since(repo):
    record_path = repo / "results/test/_stages/a.json"
    record = read_json(record_path)
    record_path.write_text(json.dumps({**record, "run_id": "another-run"}))
    assert actions(plan_pipeline(table(a={"value": 3}), repo, PROFILE, code_hash=CODE)) == \
        {"a": "skip", "b": "run", "c": "skip", "d": "run"}


def test_plan_errors_name_the_problem(repo):
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        plan_pipeline(table(), repo, PROFILE, force=["nope"], code_hash=CODE)
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        plan_pipeline(table(), repo, PROFILE, only=["nope"], code_hash=CODE)
    (repo / "notebooks/c.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match="notebooks/c.ipynb"):
        plan_pipeline(table(), repo, PROFILE, code_hash=CODE)


def test_template_fingerprint_ignores_outputs_not_code(tmp_path):
    write_template(tmp_path / "t.ipynb", "a")
    before = template_fingerprint(tmp_path / "t.ipynb")
    nb = nbformat.read(tmp_path / "t.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello")]
    nb.cells[1].execution_count = 7
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert template_fingerprint(tmp_path / "t.ipynb") == before
    nb.cells[1].source += "\nprint(1)"
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert template_fingerprint(tmp_path / "t.ipynb") != before
    (tmp_path / "bad.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="bad.ipynb"):
        template_fingerprint(tmp_path / "bad.ipynb")


# ------------------------------------------------------------------------------ stage table rules


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "Bad-Name"}, ValueError, "stage name"),
        ({"parameters": {"results_dir": "x"}}, ValueError, "injected by the driver"),
        ({"parameters": {"x": object()}}, TypeError, "JSON literals"),
        ({"parameters": {"x": float("nan")}}, TypeError, "JSON literals"),
        ({"template": "/abs/t.ipynb"}, ValueError, "relative POSIX path"),
        ({"output": "../out.ipynb"}, ValueError, "relative POSIX path"),
        ({"output": "book/pages/x.md"}, ValueError, "end with .ipynb"),
        ({"depends_on": ("s",)}, ValueError, "depends on itself"),
        ({"gpus": 0}, ValueError, "gpus"),
    ],
)
def test_stage_rejects_bad_fields(kwargs, error, match):
    fields = {"name": "s", "template": "notebooks/t.ipynb", "output": "book/pages/s.ipynb", **kwargs}
    with pytest.raises(error, match=match):
        Stage(**fields)


def test_stage_copies_parameters():
    params = {"runs": {"x": [1, 2]}}
    stage = Stage("s", "notebooks/t.ipynb", "book/pages/s.ipynb", params)
    params["runs"]["x"].append(3)
    assert stage.parameters == {"runs": {"x": [1, 2]}}


def test_topological_order_is_stable_and_checks_the_graph():
    s = {n: Stage(n, "notebooks/t.ipynb", f"book/pages/{n}.ipynb") for n in "xyz"}
    late_dep = [replace(s["x"], depends_on=("z",)), s["y"], s["z"]]
    assert [t.name for t in topological_order(late_dep)] == ["y", "z", "x"]
    assert [t.name for t in topological_order([s["y"], s["x"], s["z"]])] == ["y", "x", "z"]
    with pytest.raises(ValueError, match="duplicate"):
        topological_order([s["x"], s["x"]])
    with pytest.raises(ValueError, match="unknown stages"):
        topological_order([replace(s["x"], depends_on=("w",))])
    with pytest.raises(ValueError, match="cycle"):
        topological_order([replace(s["x"], depends_on=("y",)), replace(s["y"], depends_on=("x",))])


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_profile_tables_are_consistent(profile):
    stages = stages_for_profile(profile)
    names = [s.name for s in stages]
    seeds, baseline_seeds = PROFILES[profile].seeds, PROFILES[profile].baseline_seeds
    assert len(baseline_seeds) >= 2  # a seed-to-seed spread needs two seeds
    baseline = [f"train_{BASELINE_RUN}_s{s}" for s in dict.fromkeys((*seeds, *baseline_seeds))]
    assert len(names) == len(set(names)) and len({s.output for s in stages}) == len(stages)
    assert names[0] == "data" and names[-1] == "reproducibility"
    train = [s for s in stages if s.name.startswith("train_")]
    assert len(TRAIN_RUNS) == 15  # one of the three loss-page arms is the baseline itself in each profile
    assert len(train) == {"smoke": 15, "cpu": 25}[profile]
    assert all(s.depends_on == ("data",) and s.parameters["preset"] == profile for s in train)
    assert set(baseline) <= {s.name for s in train}
    by_name = {s.name: s for s in stages}
    # Stages that evaluate checkpoints read the data too: they depend on it directly, so that a missing
    # phantom is regenerated before they run.
    members = tuple(f"train_{r}_s{seeds[0]}" for r in ENSEMBLE_MEMBERS)
    arms = (f"train_unet_slf1_ath1_s{seeds[0]}", f"train_sepnet_soft_tissue_ath1_s{seeds[0]}")
    later = tuple(b for b in baseline if b not in members)
    assert by_name["ensemble"].depends_on == ("data", *members, *arms, *later)
    unet = [f"train_unet_slf1_ath1_s{s}" for s in seeds_of("unet_slf1_ath1", profile)]
    assert set(by_name["ablation_network"].depends_on) == {"data", *baseline, *unet}
    intensity = [s for s in train if any(w in s.name for w in ("slf2_ath1", "slf3_ath1", "soft_tissue",
                                                               "brain", "bone"))]
    assert set(by_name["ablation_intensity"].depends_on) == {"data", *baseline, *(s.name for s in intensity)}
    # Ablations read the committed results of the training stages and of the baseline's seeds.
    network = by_name["ablation_network"]
    assert network.parameters["runs"]["3D U-Net"] == [f"results/{profile}/{s}" for s in unet]
    assert network.parameters["baseline"] == [f"results/{profile}/{b}" for b in baseline]
    assert not network.uses_products and by_name["ensemble"].uses_products
    assert set(by_name["reproducibility"].depends_on) == set(names[:-1])
    assert by_name["data"].products == (f"work/{profile}/data",)
    assert not by_name["reproducibility"].uses_products
    assert by_name["benchmarks"].parameters["benchmarks_dir"] == "results/benchmarks"


def test_benchmarks_stage_reruns_when_a_benchmark_table_changes(tmp_path):
    bench = tmp_path / "results" / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "ensemble.csv").write_text("case,seconds\ncrop,100\n")

    def tables():
        stage = {s.name: s for s in stages_for_profile("smoke", root=tmp_path)}["benchmarks"]
        return stage.parameters["tables"]

    first = tables()
    assert list(first) == ["ensemble.csv"]
    assert tables() == first
    (bench / "ensemble.csv").write_text("case,seconds\ncrop,90\n")
    assert tables() != first  # another parameter value: another cache key, so the page reruns
    assert stages_for_profile("smoke", root=tmp_path / "nothing")[0].name == "data"  # no tables: still a plan


def test_profile_options():
    with pytest.raises(ValueError, match="data_root"):
        stages_for_profile("paper")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        stages_for_profile("huge")
    stages = {s.name: s for s in stages_for_profile("paper", data_root="/data/structseg", nproc=2)}
    assert stages["data"].products == () and stages["data"].parameters["data_dir"] == "/data/structseg"
    member = stages["train_sepnet_slf1_ath05_s0"]
    assert member.gpus == 2 and member.parameters["nproc"] == 2 and member.parameters["alpha"] == 0.5
    assert stages["performance"].gpus == 1


def test_cli_one_line_errors(tmp_path, capsys):
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    assert main(["--root", str(tmp_path), "--list", "--force", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pipeline: error: --force: unknown stage 'nope'") and "\n" not in err
    assert main(["--root", str(tmp_path), "--no-build"]) == 2
    assert "template notebooks not found: notebooks/01_data.ipynb (data);" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "--list"]) == 0  # --list shows what is missing instead
    assert "train_sepnet_slf1_ath1_s0        missing  notebooks/03_train.ipynb not found" in \
        capsys.readouterr().out
    assert main(["--root", str(tmp_path), "--profile", "paper", "--list"]) == 2
    assert "--data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--profile", "huge"])
    assert exc.value.code == 2


def test_run_overrides_reach_the_training_stage():
    stages = {s.name: s for s in stages_for_profile("cpu")}
    assert stages["train_sepnet_slf1_ath1_ref_s0"].parameters["overrides"] == [
        "dice_weighting=reference", "loss_background=false"]
    assert stages["train_sepnet_slf1_ath1_s0"].parameters["overrides"] == []
    assert stages["train_sepnet_slf1_dice_s0"].parameters["overrides"] == ["prior_scale_max=0"]
    smoke = {s.name: s for s in stages_for_profile("smoke")}
    # the profile's overrides first (the smoke profile's short prior-correction scan), then the run's
    assert smoke["train_sepnet_slf1_ath1_bg_s0"].parameters["overrides"] == [
        "prior_scale_max=0.1", "prior_scale_step=0.05", "dice_weighting=intended", "loss_background=true"]
    assert smoke["train_sepnet_slf1_dice_s0"].parameters["overrides"][-1] == "prior_scale_max=0"


def test_the_ensemble_and_its_training_stages_run_first():
    order = [s.name for s in stages_for_profile("cpu")]
    ensemble = order.index("ensemble")
    needed = {"data", *next(s for s in stages_for_profile("cpu") if s.name == "ensemble").depends_on}
    assert set(order[:ensemble]) == needed
    assert "train_sepnet_slf1_dice_s0" in order[ensemble:]


def test_the_loss_arm_equal_to_the_preset_is_the_baseline_and_is_not_trained_twice():
    """cpu trains ATH + background (intended weighting), so its baseline is the background arm and the
    paper's loss is a run of its own; paper and smoke train the paper's loss, so the reverse."""
    from sepnet_core.pipeline.table import LOSS_ARM_RUNS, baseline_arm
    from sepnet_core.training import apply_overrides
    from sepnet_core.training import preset as training_preset

    assert baseline_arm("cpu") == "background"
    assert baseline_arm("smoke") == baseline_arm("paper") == "reference"
    for profile, own in (("cpu", "background"), ("smoke", "reference")):
        stages = {s.name: s for s in stages_for_profile(profile)}
        trained = {n.removeprefix("train_").rsplit("_s", 1)[0] for n in stages if n.startswith("train_")}
        assert LOSS_ARM_RUNS[own] not in trained
        assert {r for a, r in LOSS_ARM_RUNS.items() if a != own} <= trained
        arms = stages["ablation_loss"].parameters["background_arms"]
        assert arms[own] == "ATH alpha=1" and set(arms) == set(LOSS_ARM_RUNS)
        assert all(label in stages["ablation_loss"].parameters["runs"] for label in arms.values())
    # each arm's run, applied to either preset, gives the arm's settings whatever the preset's default
    for arm, run in LOSS_ARM_RUNS.items():
        overrides = list(next(r for r in TRAIN_RUNS if r.run == run).overrides)
        for name in ("cpu", "paper"):
            config = apply_overrides(training_preset(name), overrides)
            assert (config.dice_weighting, config.loss_background) == {
                "reference": ("reference", False), "intended": ("intended", False),
                "background": ("intended", True)}[arm]


def test_profile_can_skip_runs_but_not_members_or_the_baseline():
    from dataclasses import replace as dc_replace

    base = PROFILES["smoke"]
    skipped = dc_replace(base, skip_runs=("sepnet_brain_ath1", "sepnet_bone_ath1"))
    stages = {s.name: s for s in stages_for_profile(skipped)}
    assert "train_sepnet_brain_ath1_s0" not in stages and "train_sepnet_bone_ath1_s0" not in stages
    assert "train_sepnet_soft_tissue_ath1_s0" in stages
    runs = stages["ablation_intensity"].parameters["runs"]
    assert "window brain" not in runs and "window soft tissue" in runs
    assert not any("brain" in d for d in stages["ablation_intensity"].depends_on)
    for bad in ("sepnet_slf2_ath05", BASELINE_RUN, "no_such_run"):
        with pytest.raises(ValueError, match="cannot skip"):
            stages_for_profile(dc_replace(base, skip_runs=(bad,)))


def test_seeds_per_run_follow_the_claim_rule():
    """cpu: 3 seeds for every config a claim compares, 2 for the intended Dice weighting, 1 per other
    ensemble member; smoke stays small (one seed, two for the baseline's spread)."""
    cpu = {r.run: seeds_of(r.run, "cpu") for r in TRAIN_RUNS}
    assert set(CLAIM_RUNS) == {BASELINE_RUN, "unet_slf1_ath1", "sepnet_soft_tissue_ath1", "sepnet_slf1_dice",
                               "sepnet_slf1_explog", "sepnet_slf1_ath1_bg", "sepnet_slf1_ath1_ref"}
    # the background arm is the cpu baseline itself (not trained twice)
    assert all(cpu[r] == (0, 1, 2) for r in CLAIM_RUNS if r != "sepnet_slf1_ath1_bg")
    assert cpu["sepnet_slf1_ath1_bg"] == ()
    assert cpu["sepnet_slf1_ath1_intended"] == (0, 1) and STUDY_RUNS == ("sepnet_slf1_ath1_intended",)
    assert all(cpu[r] == (0,) for r in ENSEMBLE_MEMBERS if r != BASELINE_RUN)
    assert cpu["sepnet_brain_ath1"] == cpu["sepnet_bone_ath1"] == ()  # skipped in cpu for the budget
    smoke = {r.run: seeds_of(r.run, "smoke") for r in TRAIN_RUNS}
    assert smoke[BASELINE_RUN] == (0, 1) and smoke["sepnet_slf1_ath1_ref"] == ()  # the smoke baseline's arm
    assert all(s == (0,) for r, s in smoke.items() if r not in (BASELINE_RUN, "sepnet_slf1_ath1_ref"))
    stages = {s.name: s for s in stages_for_profile("cpu")}
    trained = {n.removeprefix("train_") for n in stages if n.startswith("train_")}
    assert trained == {f"{r}_s{s}" for r, seeds in cpu.items() for s in seeds}
    intended = stages["train_sepnet_slf1_ath1_intended_s1"]
    assert intended.parameters["overrides"] == ["dice_weighting=intended", "loss_background=false"]
    assert intended.parameters["seed"] == 1
    assert intended.parameters["data_results"] == "results/cpu/data"  # the atlas score of its gate
    assert stages["ablation_loss"].parameters["data_results"] == "results/cpu/data"
    loss = stages["ablation_loss"].parameters["runs"]
    assert loss["ATH alpha=1, intended Dice weighting"] == [
        f"results/cpu/train_sepnet_slf1_ath1_intended_s{s}" for s in (0, 1)]
    paper_loss = loss["ATH alpha=1, reference Dice weighting (paper)"]
    assert len(loss["Dice"]) == len(loss["exp-log"]) == len(paper_loss) == len(loss["ATH alpha=1"]) == 3
    assert "ATH alpha=1 + background (ours)" not in loss
    cases = dict(PROFILES["cpu"].phantom_cases)
    assert cases["test"] >= 20 and cases["valid"] >= 4 and cases["train"] == 10


def test_intended_dice_weighting_override_is_a_valid_config():
    from sepnet_core.training import apply_overrides
    from sepnet_core.training import preset as training_preset

    run = next(r for r in TRAIN_RUNS if r.run == "sepnet_slf1_ath1_intended")
    config = apply_overrides(training_preset("cpu"), list(run.overrides))
    assert (config.dice_weighting, config.loss_background) == ("intended", False)
    assert training_preset("paper").dice_weighting == "reference"


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_ensemble_gets_the_arms_and_summary_gets_the_gate_inputs(profile):
    stages = {s.name: s for s in stages_for_profile(profile)}
    ensemble, summary = stages["ensemble"], stages["summary"]
    assert ensemble.parameters["arms"] == {
        "3D-SepNet (baseline)": f"work/{profile}/runs/{BASELINE_RUN}_s0",
        "3D U-Net": f"work/{profile}/runs/unet_slf1_ath1_s0",
        "window soft tissue": f"work/{profile}/runs/sepnet_soft_tissue_ath1_s0"}
    assert set(ENSEMBLE_ARMS) == set(ensemble.parameters["arms"])
    assert {f"train_{r}_s0" for r in ENSEMBLE_ARMS.values()} <= set(ensemble.depends_on)
    train = sorted(n for n in stages if n.startswith("train_"))
    assert sorted(summary.parameters["train_results"]) == sorted(n.removeprefix("train_") for n in train)
    results = summary.parameters["train_results"]
    assert results[f"{BASELINE_RUN}_s1"] == f"results/{profile}/train_{BASELINE_RUN}_s1"
    assert summary.parameters["data_results"] == f"results/{profile}/data"
    assert set(train) <= set(summary.depends_on)
    configs = summary.parameters["configs"]
    assert configs["3D U-Net"] == [f"unet_slf1_ath1_s{s}" for s in seeds_of("unet_slf1_ath1", profile)]
    assert all(r in summary.parameters["train_results"] for runs in configs.values() for r in runs)
    assert summary.parameters["members"] == [f"work/{profile}/runs/{r}_s0" for r in ENSEMBLE_MEMBERS]
