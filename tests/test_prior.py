"""The post-hoc prior correction: the scan's arithmetic by hand, the choice rule, the bias fold (equal to
shifting the logits), and a run folder corrected once by ``fit`` and read by the gate."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from test_training import smoke, write_dataset

from sepnet_core.analysis.gate import gate_result_folders, read_corrected_dice
from sepnet_core.models import ModelConfig
from sepnet_core.training import fit, load_checkpoint, load_model
from sepnet_core.training.prior import (
    PRIOR_FILE,
    choose_scale,
    class_log_frequencies,
    correct_checkpoint,
    fold_into_bias,
    foreground_counts,
    scale_grid,
    volume_errors,
)


def test_scale_grid_includes_both_ends():
    assert scale_grid(0.5, 0.025).tolist() == pytest.approx([i * 0.025 for i in range(21)])
    assert scale_grid(0.1, 0.05).tolist() == pytest.approx([0.0, 0.05, 0.1])
    assert scale_grid(0.0, 0.05).tolist() == [0.0]
    with pytest.raises(ValueError, match="step > 0"):
        scale_grid(0.5, 0.0)


def test_class_log_frequencies_by_hand():
    labels = [np.array([0, 0, 0, 1]), np.array([[0, 0], [2, 0]])]  # 6 background, 1 of class 1, 1 of 2
    expected = np.log(np.array([6, 1, 1, 1]) / 9.0)  # class 3 absent: counted as one voxel
    assert class_log_frequencies(labels, 4) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no label voxels"):
        class_log_frequencies([np.array([], dtype=np.int64)], 3)


def test_foreground_counts_by_hand():
    # 3 voxels, 2 classes; background frequency 0.8, organ 0.2: log f = (-0.223, -1.609)
    probs = np.array([[0.45, 0.30, 0.10], [0.55, 0.70, 0.90]]).reshape(2, 1, 1, 3)
    log_f = np.log([0.8, 0.2])
    # k shifts the organ's log-probability by k * (log 0.2 - log 0.8) = -1.386 k relative to background:
    # voxel 1 (log ratio 0.20) flips at k = 0.145, voxel 2 (0.85) at 0.611, voxel 3 (2.20) at 1.585
    counts = foreground_counts(np.log(probs), log_f, [0.0, 0.1, 0.2, 0.7, 2.0])
    assert counts.tolist() == [3, 3, 2, 1, 0]


def test_volume_errors_and_choice():
    predicted = np.array([[200, 110, 90], [300, 150, 120]])  # two cases x three scales
    reference = np.array([100, 150])
    errors = volume_errors(predicted, reference)
    assert errors == pytest.approx([(math.log(2) + math.log(2)) / 2, (math.log(1.1) + 0) / 2,
                                    (abs(math.log(0.9)) + abs(math.log(0.8))) / 2])
    assert choose_scale([0.0, 0.1, 0.2], errors) == 0.1
    assert choose_scale([0.0, 0.1], [0.3, 0.3]) == 0.0  # ties: the smallest scale


def test_a_network_without_organ_voxels_keeps_scale_zero():
    # a case with no predicted organ at any scale: no finite error, no scale better than another
    errors = volume_errors(np.array([[0, 0, 0], [120, 90, 40]]), np.array([100, 100]))
    assert np.isinf(errors).all()
    assert choose_scale([0.0, 0.1, 0.2], errors) == 0.0
    with np.errstate(all="raise"):  # no divide-by-zero warning on the way
        volume_errors(np.array([[0, 5]]), np.array([10]))


def test_a_case_without_reference_organs_is_refused():
    with pytest.raises(ValueError, match="no reference organ voxel"):
        volume_errors(np.array([[10, 5]]), np.array([0]))


def test_folding_into_the_bias_equals_shifting_the_logits():
    torch.manual_seed(0)
    model = ModelConfig(name="sepnet", base=2, num_classes=4).build().eval()
    x = torch.randn(1, 1, 8, 16, 16)
    log_f = np.log(np.array([0.7, 0.2, 0.08, 0.02]))
    with torch.no_grad():
        before = model(x)
        fold_into_bias(model, 0.3, log_f)
        after = model(x)
    shift = torch.tensor(0.3 * log_f, dtype=after.dtype).view(1, -1, 1, 1, 1)
    assert torch.allclose(after, before + shift, atol=1e-5)


@pytest.fixture(scope="module")
def corrected_run(tmp_path_factory):
    data = write_dataset(tmp_path_factory.mktemp("data"))
    config = dataclasses.replace(smoke(data, epochs=2), prior_scale_max=0.2, prior_scale_step=0.1)
    out = tmp_path_factory.mktemp("run") / "run"
    fit(config, out)
    return config, out


def test_fit_corrects_best_pt_once_and_records_the_scan(corrected_run):
    config, out = corrected_run
    record = json.loads((out / PRIOR_FILE).read_text())
    assert record["scales"] == pytest.approx([0.0, 0.1, 0.2])
    assert record["scale"] in record["scales"]
    finite = [e for e in record["volume_error"] if e is not None]
    if finite:  # the chosen scale has the least error of the scan
        assert record["volume_error"][record["scales"].index(record["scale"])] == pytest.approx(min(finite))
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["prior_correction"]["scale"] == record["scale"]
    assert ckpt["best_metric"] == pytest.approx(record["val_mean_dice"])
    assert load_model(out / "best.pt").meta["prior_correction"]["scale"] == record["scale"]
    # the corrected classifier bias is the trained one plus k log f (last.pt holds the trained weights;
    # best.pt is the last epoch here only when it validated best, so compare against its own record)
    last = load_checkpoint(out / "last.pt")
    key = next(k for k in ckpt["model_state"] if k.startswith("head.") and k.endswith(".bias"))
    if ckpt["epoch"] == last["epoch"]:
        shift = torch.tensor(record["scale"] * np.array(record["log_frequency"]), dtype=torch.float32)
        assert torch.allclose(ckpt["model_state"][key], last["model_state"][key] + shift, atol=1e-6)
    # resuming the finished run changes nothing: corrected once
    before = (out / "best.pt").read_bytes()
    fit(config, out, resume=True)
    assert (out / "best.pt").read_bytes() == before


def test_a_corrected_checkpoint_without_its_record_is_corrected_again(corrected_run, tmp_path):
    import shutil

    config, out = corrected_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    record = json.loads((copy / PRIOR_FILE).read_text())
    (copy / PRIOR_FILE).unlink()
    again = correct_checkpoint(copy / "best.pt", config, *_cases(config), amp=None)  # as fit does
    assert again["scale"] == record["scale"]
    assert again["volume_error"] == pytest.approx(record["volume_error"])
    assert again["val_mean_dice"] == pytest.approx(record["val_mean_dice"])
    restored = load_checkpoint(copy / "best.pt")["model_state"]
    for key, value in load_checkpoint(out / "best.pt")["model_state"].items():
        assert torch.allclose(restored[key], value, atol=1e-6), key  # corrected once, not twice


def _cases(config):
    from sepnet_core.intensity import get_intensity
    from sepnet_core.training.data import load_split

    intensity = get_intensity(config.intensity)
    return (load_split(config.data.data_root, "train", intensity, config.data.crop_yx),
            load_split(config.data.data_root, "valid", intensity, config.data.crop_yx))


def test_the_loss_page_gate_reads_the_corrected_score(tmp_path):
    import pandas as pd

    from sepnet_core.analysis.loss_page import gate_table, run_corrected_dice

    folder = tmp_path / "train_x_s0"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"seed": 0}))
    (folder / PRIOR_FILE).write_text(json.dumps({"val_mean_dice": 0.7}))
    other = tmp_path / "train_y_s1"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"seed": 1}))
    assert run_corrected_dice({"A": [folder], "B": [other]}) == {"A/0": 0.7}
    curve = pd.DataFrame({"step": [100, 200, 300, 400], "val_mean_dice": [0.5, 0.6, 0.62, 0.62]})
    volumes = pd.DataFrame({"config": ["A"], "seed": [0], "case": ["c"], "volume_pred_ml": [100.0],
                            "volume_ref_ml": [100.0]})
    plain = gate_table(volumes, {"A/0": curve}, atlas_dice=0.3)
    fixed = gate_table(volumes, {"A/0": curve}, atlas_dice=0.3, corrected={"A/0": 0.7})
    assert (plain.loc[0, "best_val_dice"], bool(plain.loc[0, "trained"])) == (0.62, False)
    assert (fixed.loc[0, "best_val_dice"], bool(fixed.loc[0, "trained"])) == (0.7, True)


def test_the_gate_reads_the_corrected_score(corrected_run, tmp_path):
    _, out = corrected_run
    folder = tmp_path / "train_r_s0"
    folder.mkdir()
    (folder / "log.csv").write_text((out / "log.csv").read_text())
    assert read_corrected_dice(folder) is None
    record = json.loads((out / PRIOR_FILE).read_text())
    record["val_mean_dice"] = 0.9  # a distinct value: the gate must take it, not the curve's best
    (folder / PRIOR_FILE).write_text(json.dumps(record))
    assert read_corrected_dice(folder) == 0.9
    table = gate_result_folders({"r_s0": folder}, atlas_dice=0.3)
    assert table.loc[0, "best_val_dice"] == 0.9 and bool(table.loc[0, "accurate"])


def test_no_correction_by_default(tmp_path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "run"
    fit(smoke(data, epochs=1), out)
    assert not (out / PRIOR_FILE).exists()
    assert load_checkpoint(out / "best.pt")["prior_correction"] is None
