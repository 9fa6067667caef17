"""Each idea's nearest other ideas by embedding cosine, in blocks so memory stays bounded."""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 2048


def nearest(vectors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `count` most similar other rows (indices, cosines), most similar first.

    Rows with fewer other rows are padded with index -1 and similarity -inf.
    """
    n = len(vectors)
    width = min(count, n - 1)
    indices = np.full((n, count), -1, dtype=np.int64)
    sims = np.full((n, count), -np.inf, dtype=np.float64)
    if width <= 0:
        return indices, sims
    import torch  # here, not at the top: every command imports dedup, few run it

    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    with torch.no_grad():
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            cosines = matrix[start:stop] @ matrix.T
            rows = torch.arange(stop - start)
            cosines[rows, rows + start] = -torch.inf
            top = torch.topk(cosines, width, dim=1)
            indices[start:stop, :width] = top.indices.numpy()
            sims[start:stop, :width] = top.values.double().numpy()
    return indices, sims
