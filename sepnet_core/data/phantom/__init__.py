"""Synthetic head-and-neck CT phantoms that look like StructSeg 2019 task-1 cases.

``generate_case(seed, profile)`` returns one CT volume (HU) with its 22-organ label map;
``write_dataset(out_dir, cases, seed, profile)`` writes a train/valid/test set in the StructSeg
layout; ``preview_case`` draws a tri-planar PNG. Everything is documented in ``docs/phantom.md``.
"""

from __future__ import annotations

from sepnet_core.data.phantom.dataset import case_seed, default_split, write_dataset
from sepnet_core.data.phantom.generator import PHANTOM_PROFILES, PhantomProfile, generate_case, get_profile
from sepnet_core.data.phantom.preview import preview_case

__all__ = ["PHANTOM_PROFILES", "PhantomProfile", "generate_case", "get_profile", "write_dataset",
           "default_split", "case_seed", "preview_case"]
