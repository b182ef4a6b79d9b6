"""SepNet-Book: 3D-SepNet organ-at-risk segmentation of head-and-neck CT (StructSeg 2019, task 1).

Importing this package has no side effects (no logging set-up, no downloads, no threads).
Voxel arrays are always in (z, y, x) order; spacings are in millimetres in the same order;
intensities are Hounsfield units (HU) unless a docstring says otherwise.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
