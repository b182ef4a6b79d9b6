"""Training patches: uniform random crops (the reference), organ-aware crops and the left/right-safe flip.

Volumes are (z, y, x) arrays already in network intensities (after the SLF or window, air at 0);
labels are integer (z, y, x) arrays with values 0..22. A patch is ``patch_size = (d, h, w)`` voxels;
where a volume is smaller than the patch along an axis the patch is centred on it and padded (image
with ``pad_value``, label with background 0).

Randomness comes only from the ``numpy.random.Generator`` given to :class:`PatchSampler`, so saving
``rng.bit_generator.state`` and restoring it replays the same patches (exact resume).

Left/right flips: mirroring the x axis turns a left organ into a right one, so :func:`flip_lr` also
swaps the labels of every organ pair (:func:`sepnet_core.organs.lr_swap_table`). A plain mirror
without the swap would teach the network that the left parotid can lie on the right.

Example:
    >>> import numpy as np
    >>> volume = np.zeros((4, 6, 6), np.float32); label = np.zeros((4, 6, 6), np.uint8)
    >>> label[1, 2, 4] = 12  # parotid L, right half of the array
    >>> sampler = PatchSampler([volume], [label], (8, 8, 8), mode="organ", rng=np.random.default_rng(0))
    >>> image, lab = sampler.sample()
    >>> image.shape, lab.dtype, int(lab.max())
    ((8, 8, 8), dtype('uint8'), 12)
    >>> flipped = flip_lr(volume, label)[1]
    >>> int(flipped[1, 2, 1])  # mirrored in x and relabelled parotid R
    13
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sepnet_core.organs import NUM_CLASSES, lr_swap_table

__all__ = ["SAMPLING_MODES", "PatchSampler", "flip_lr", "crop_patch", "organ_sampling_weights"]

SAMPLING_MODES: tuple[str, ...] = ("uniform", "organ")
"""``"uniform"``: random crop positions; ``"organ"``: some patches centred on (small) organs."""

_SWAP = lr_swap_table()


def flip_lr(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its label along x (the last axis) and swap left/right organ labels.

    Args:
        image: Array (..., x), any dtype.
        label: Integer array of the same shape, values 0..22.

    Returns:
        ``(image, label)`` as new contiguous arrays with the input dtypes.

    Raises:
        ValueError: if the shapes differ or ``label`` is not integer.
    """
    if image.shape != label.shape:
        raise ValueError(f"image shape {image.shape} and label shape {label.shape} must be equal")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must be an integer array, got dtype {label.dtype}")
    flipped = np.ascontiguousarray(image[..., ::-1])
    swapped = _SWAP[label[..., ::-1]].astype(label.dtype, copy=False)
    return flipped, np.ascontiguousarray(swapped)


def crop_patch(volume: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float = 0) -> np.ndarray:
    """Cut ``volume[start : start + size]`` along each axis; voxels outside the volume get ``fill``.

    ``start`` may be negative and the window may run past the end (that part is padded).

    Returns:
        A new array of shape ``size`` and ``volume``'s dtype.
    """
    out = np.full(tuple(size), fill, dtype=volume.dtype)
    src, dst = [], []
    for s, p, n in zip(start, size, volume.shape, strict=True):
        lo, hi = max(s, 0), min(s + p, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def organ_sampling_weights(counts: np.ndarray) -> np.ndarray:
    """Probabilities of choosing each organ for an organ-centred patch: inverse voxel counts.

    Args:
        counts: (23,) voxel counts per label over the training set (entry 0, background, is ignored).

    Returns:
        float64 (23,) probabilities, 0 for background and for absent organs; all zero if no organ is
        present.

    Example:
        >>> organ_sampling_weights(np.array([900, 10, 30] + [0] * 20))[:3].round(2).tolist()
        [0.0, 0.75, 0.25]
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    present[0] = False
    weights[present] = 1.0 / counts[present]
    total = weights.sum()
    return weights / total if total > 0 else weights


class PatchSampler:
    """Draws training patches from volumes held in memory.

    Args:
        volumes: Sequence of float (z, y, x) arrays, network intensities.
        labels: Sequence of integer (z, y, x) arrays (values 0..22, checked here once per case), same
            shapes as ``volumes``.
        patch_size: (d, h, w) voxels.
        mode: "uniform": a random case, then a uniformly random patch position inside it (the
            reference). "organ": with probability ``organ_fraction`` the patch is centred on a random
            voxel of an organ drawn with :func:`organ_sampling_weights` (small organs such as lens,
            chiasm, optic nerves and pituitary are drawn far more often than their share of voxels),
            otherwise as "uniform". Near borders the patch is shifted to stay inside the volume.
        rng: The only source of randomness; default ``numpy.random.default_rng(0)``.
        organ_fraction: See ``mode``.
        flip: Apply :func:`flip_lr` to each patch with probability 0.5.
        pad_value: Image value of padding where a volume is smaller than the patch.

    Raises:
        ValueError: empty or mismatched inputs, label values outside 0..22, bad ``patch_size``,
            unknown ``mode``, or ``organ_fraction`` outside [0, 1].
    """

    def __init__(
        self,
        volumes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        patch_size: Sequence[int],
        mode: str = "uniform",
        rng: np.random.Generator | None = None,
        organ_fraction: float = 0.5,
        flip: bool = False,
        pad_value: float = 0.0,
    ) -> None:
        if len(volumes) == 0 or len(volumes) != len(labels):
            raise ValueError(f"need one label per volume and at least one volume; got {len(volumes)} "
                             f"volumes and {len(labels)} labels")
        for i, (vol, lab) in enumerate(zip(volumes, labels, strict=True)):
            if vol.ndim != 3 or vol.shape != lab.shape:
                raise ValueError(f"case {i}: volume {vol.shape} and label {lab.shape} must be equal "
                                 "3-D shapes")
            if not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"case {i}: label must be integer, got dtype {lab.dtype}")
            # Checked once here, on the host, so the training loss need not check each batch on the
            # device (a device-to-host synchronisation per step on a GPU).
            low, high = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
            if low < 0 or high >= NUM_CLASSES:
                raise ValueError(f"case {i}: label values must be 0..{NUM_CLASSES - 1}, found {low}..{high}")
        size = tuple(int(p) for p in patch_size)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"patch_size must be three positive integers (d, h, w), got {patch_size!r}")
        if mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; valid modes: {', '.join(SAMPLING_MODES)}")
        if not 0.0 <= organ_fraction <= 1.0:
            raise ValueError(f"organ_fraction must be in [0, 1], got {organ_fraction!r}")
        self.volumes, self.labels = volumes, labels
        self.patch_size, self.mode = size, mode
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.organ_fraction, self.flip, self.pad_value = float(organ_fraction), bool(flip), float(pad_value)
        self.counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        self._voxels: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(NUM_CLASSES)]
        if mode == "organ":
            self._index_organs()
        self.organ_weights = organ_sampling_weights(self.counts)

    def _index_organs(self) -> None:
        """Flat voxel indices of every organ in every case, grouped by label (one pass per case)."""
        for case, label in enumerate(self.labels):
            flat = np.flatnonzero(label)
            values = label.reshape(-1)[flat]
            order = np.argsort(values, kind="stable")
            counts = np.bincount(values, minlength=NUM_CLASSES)
            if counts.size > NUM_CLASSES:
                raise ValueError(f"case {case}: label values must be 0..{NUM_CLASSES - 1}, "
                                 f"found {values.max()}")
            groups = np.split(flat[order], np.cumsum(counts[1:])[:-1])
            for organ, voxels in enumerate(groups, start=1):
                if voxels.size:
                    self._voxels[organ].append((case, voxels.astype(np.int64)))
            self.counts += counts

    def _uniform_start(self, shape: tuple[int, ...]) -> list[int]:
        return [int(self.rng.integers(0, n - p + 1)) if n >= p else -((p - n) // 2)
                for n, p in zip(shape, self.patch_size, strict=True)]

    def _organ_case_and_start(self) -> tuple[int, list[int]]:
        organ = int(self.rng.choice(NUM_CLASSES, p=self.organ_weights))
        groups = self._voxels[organ]
        ends = np.cumsum([v.size for _, v in groups])
        k = int(self.rng.integers(0, ends[-1]))
        g = int(np.searchsorted(ends, k, side="right"))
        case, voxels = groups[g]
        offset = k - (int(ends[g - 1]) if g else 0)
        shape = self.labels[case].shape
        centre = np.unravel_index(int(voxels[offset]), shape)
        start = []
        for c, n, p in zip(centre, shape, self.patch_size, strict=True):
            start.append(min(max(int(c) - p // 2, 0), n - p) if n >= p else -((p - n) // 2))
        return case, start

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One patch: ``(image float32 (d, h, w), label (d, h, w) with the labels' dtype)``."""
        organ_mode = self.mode == "organ" and self.organ_weights.any()
        if organ_mode and self.rng.random() < self.organ_fraction:
            case, start = self._organ_case_and_start()
        else:
            case = int(self.rng.integers(0, len(self.volumes)))
            start = self._uniform_start(self.volumes[case].shape)
        image = crop_patch(self.volumes[case], start, self.patch_size, self.pad_value).astype(np.float32)
        label = crop_patch(self.labels[case], start, self.patch_size, 0)
        if self.flip and self.rng.random() < 0.5:
            image, label = flip_lr(image, label)
        return image, label

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images float32 ``(n, 1, d, h, w)`` and labels int64 ``(n, d, h, w)``."""
        pairs = [self.sample() for _ in range(n)]
        images = np.stack([p[0] for p in pairs])[:, None]
        labels = np.stack([p[1] for p in pairs]).astype(np.int64)
        return images, labels
