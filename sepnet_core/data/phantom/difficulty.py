"""How far a CT number window alone gets: the best single-interval threshold segmentation of an organ.

If an organ could be segmented by ``a <= HU <= b`` the task would be a colouring exercise. The
phantom is built so that it cannot for the soft-tissue organs (brain stem, temporal lobes, parotids),
as on real CT; :func:`best_interval_dice` measures it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_interval_dice"]


def best_interval_dice(
    image: np.ndarray, mask: np.ndarray, low_hu: float = -200.0, high_hu: float = 200.0, step_hu: float = 5.0
) -> tuple[float, float, float]:
    """Best Dice of ``a <= image <= b`` against ``mask`` over all interval ends on a grid.

    Every pair ``low_hu <= a <= b <= high_hu`` with ``a`` and ``b`` on the grid
    ``low_hu + k * step_hu`` is tried, over the whole volume.

    Args:
        image: CT (any shape) in HU.
        mask: Boolean organ mask of the same shape (non-empty).
        low_hu, high_hu: Range of the interval ends, HU.
        step_hu: Grid step of the interval ends, HU (> 0).

    Returns:
        ``(dice, a, b)``: the best Dice and its interval ends (HU).

    Raises:
        ValueError: Shapes differ, the mask is empty, or the grid is empty.

    Example:
        >>> img = np.array([-10.0, 0.0, 10.0, 20.0])
        >>> best_interval_dice(img, img >= 5, -20, 30, 10)
        (1.0, 10.0, 20.0)
    """
    image = np.asarray(image, dtype=np.float64).ravel()
    mask = np.asarray(mask, dtype=bool).ravel()
    if image.shape != mask.shape:
        raise ValueError(f"image and mask must have the same size, got {image.size} and {mask.size}")
    if not mask.any():
        raise ValueError("mask is empty; the Dice of an empty organ is undefined")
    if not step_hu > 0 or high_hu < low_hu:
        raise ValueError(f"need step_hu > 0 and low_hu <= high_hu, got {low_hu}, {high_hu}, {step_hu}")
    grid = low_hu + step_hu * np.arange(int(np.floor((high_hu - low_hu) / step_hu + 1e-9)) + 1)
    every, organ = np.sort(image), np.sort(image[mask])
    le_all, lt_all = np.searchsorted(every, grid, "right"), np.searchsorted(every, grid, "left")
    le_org, lt_org = np.searchsorted(organ, grid, "right"), np.searchsorted(organ, grid, "left")
    inside = le_org[None, :] - lt_org[:, None]  # [i, j]: organ voxels in [grid[i], grid[j]]
    chosen = le_all[None, :] - lt_all[:, None]
    valid = np.triu(np.ones(inside.shape, dtype=bool))  # a <= b
    dice = np.full(inside.shape, -1.0)
    np.divide(2.0 * inside, organ.size + chosen, out=dice, where=valid)
    i, j = np.unravel_index(int(np.argmax(dice)), dice.shape)
    return float(dice[i, j]), float(grid[i]), float(grid[j])
