"""Closed outlines of a 2D mask along pixel edges: the polygons an RT Structure Set stores per slice.

Each outline runs along the edges between foreground and background pixels, so a vertex lies on a
pixel corner, half a pixel from every pixel centre. Filling the outlines with the even-odd rule (a point
is inside if a ray from it crosses an odd number of edges; what planning systems do when they XOR
nested contours) and testing pixel centres gives back exactly the mask, and the polygons' area is
exactly the mask's pixel count. Holes are outlines of their own (inside an outer one); regions that
touch only at a corner are separate outlines (4-connectivity), so every outline is a simple polygon,
though two may share a corner point. Vertices where the outline runs straight on are dropped.

Coordinates are (row, column) in pixel-index units: pixel (r, c) has its centre at (r, c), so vertices
have half-integer coordinates such as (-0.5, 2.5).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mask_outlines", "outline_area"]

# Edge directions in (row, column) steps, clockwise on screen (rows grow downwards): right, down, left, up.
_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def _edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boundary edges of the foreground: (start corner id, end corner id, direction), each (E,)."""
    rows, cols = mask.shape
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    # Neighbours above, right, below and left of each pixel.
    neighbours = (padded[:-2, 1:-1], padded[1:-1, 2:], padded[2:, 1:-1], padded[1:-1, :-2])
    # For each side of a pixel: (corner offset of the edge's start, direction), going clockwise.
    sides = (((0, 0), 0), ((0, 1), 1), ((1, 1), 2), ((1, 0), 3))
    starts, ends, dirs = [], [], []
    for neighbour, ((dr, dc), direction) in zip(neighbours, sides, strict=True):
        r, c = np.nonzero(inner & ~neighbour)
        start_r, start_c = r + dr, c + dc
        step_r, step_c = _STEPS[direction]
        starts.append(start_r * (cols + 1) + start_c)
        ends.append((start_r + step_r) * (cols + 1) + start_c + step_c)
        dirs.append(np.full(r.size, direction))
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(dirs)


def mask_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Outlines of the foreground of a 2D mask along pixel edges (outer boundaries and holes).

    Args:
        mask: (rows, columns) array; non-zero is foreground.

    Returns:
        One float64 array (N, 2) of (row, column) vertices per closed outline (the first vertex is not
        repeated; N >= 4), in pixel-index coordinates (half-integers). Outer boundaries run clockwise
        on screen (rows down), holes counter-clockwise. Empty list for an empty mask.

    Raises:
        ValueError: ``mask`` is not 2D.

    Example:
        >>> mask_outlines(np.array([[1]]))[0].tolist()
        [[-0.5, -0.5], [-0.5, 0.5], [0.5, 0.5], [0.5, -0.5]]
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2D (rows, columns) array, got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    starts, ends, dirs = _edges(mask)
    if starts.size == 0:
        return []
    # Successor of each edge: the edge leaving its end corner. A corner where two regions touch
    # diagonally has two; take the one turning clockwise, staying around the same region.
    order = np.argsort(starts, kind="stable")
    corners, first, count = np.unique(starts[order], return_index=True, return_counts=True)
    slot = np.searchsorted(corners, ends)
    option_a = order[first[slot]]
    option_b = np.where(count[slot] == 2, order[np.minimum(first[slot] + 1, order.size - 1)], option_a)
    successor = np.where(dirs[option_a] == (dirs + 1) % 4, option_a, option_b)
    successor_l, starts_l, dirs_l = successor.tolist(), starts.tolist(), dirs.tolist()
    cols1 = mask.shape[1] + 1
    used = [False] * len(starts_l)
    loops = []
    for first_edge in range(len(starts_l)):
        if used[first_edge]:
            continue
        loop, edge = [], first_edge
        while not used[edge]:
            used[edge] = True
            loop.append(edge)
            edge = successor_l[edge]
        # Keep the corners where the direction changes (the start of an edge turning from the previous).
        ids = np.asarray([starts_l[e] for i, e in enumerate(loop) if dirs_l[e] != dirs_l[loop[i - 1]]],
                         dtype=np.int64)
        loops.append(np.stack([ids // cols1, ids % cols1], axis=1).astype(np.float64) - 0.5)
    return loops


def outline_area(outline: np.ndarray) -> float:
    """Signed area (shoelace) of a closed (N, 2) outline in pixel units: positive for the clockwise
    outer boundaries and negative for holes of :func:`mask_outlines`."""
    r, c = np.asarray(outline, dtype=np.float64).T
    return 0.5 * float(np.dot(c, np.roll(r, -1)) - np.dot(r, np.roll(c, -1)))
