"""Status of the running cpu chain: each training stage of today's code hash with its gate and prior
correction (from its results folder), and the stages still to run. Usage: .venv/bin/python .ci/chain_status.py"""

import json
from pathlib import Path

from sepnet_core.pipeline.cache import source_hash

code = source_hash()
root = Path("results/cpu")
rows = []
for record in sorted((root / "_stages").glob("train_*.json")):
    info = json.loads(record.read_text())
    if info.get("code_hash") != code:
        continue
    folder = root / record.stem
    gate = json.loads((folder / "gate.json").read_text())
    prior_file = folder / "prior_correction.json"
    prior = json.loads(prior_file.read_text()) if prior_file.is_file() else None
    reasons = [c for c, ok in (("a", gate["flattened"]), ("b", gate["accurate"]), ("c", gate["volumes_ok"])) if not ok]
    rows.append((record.stem.removeprefix("train_"), f"{info['duration_s']:.0f}",
                 "-" if prior is None else f"{prior['scale']:g}",
                 "-" if prior is None else f"{prior['val_mean_dice_uncorrected']:.3f}",
                 f"{gate['best_val_dice']:.3f}", f"{gate['curve_gain']:+.3f}", f"{gate['worst_volume_ratio']:.2f}x",
                 "trained" if gate["trained"] else "(" + ",".join(reasons) + ")"))
header = ("run", "stage s", "k", "val as trained", "val (gate)", "last-quarter gain", "worst test volume", "gate")
print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
for row in rows:
    print("| " + " | ".join(row) + " |")
print(f"\n{len(rows)} training stages finished at code hash {code[:8]}")
