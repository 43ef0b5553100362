"""Which view pairs to match: network-guided instead of all ``S(S-1)/2``.

Each view is paired with (a) its nearest views by image retrieval on the encoder's pooled patch features
(``Prediction.descriptors``: cosine similarity), (b) the views that the network's own cameras and depth say
overlap it most (:func:`app.engine.dense_fit.overlap_neighbours`), and (c) its sequential neighbours (photos taken in
order, video frames). Retrieval covers views whose predicted cameras are wrong; predicted overlap covers views
that look alike but are far apart in the retrieval space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def retrieval_neighbours(descriptors: np.ndarray, count: int) -> list[list[int]]:
    """For each of ``S`` L2-normalised descriptors ``[S, C]``, the ``count`` most similar other views."""
    similarity = descriptors @ descriptors.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1)[:, : max(0, min(count, len(descriptors) - 1))]
    return [row.tolist() for row in order]


def sequential_neighbours(num_views: int, window: int) -> list[list[int]]:
    """View ``i`` with ``i+1 … i+window``."""
    return [list(range(i + 1, min(num_views, i + window + 1))) for i in range(num_views)]


def pairs_from_neighbours(*neighbour_lists: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Union of neighbour lists as sorted unique pairs ``(i, j)``, ``i < j``."""
    pairs = {(min(i, j), max(i, j)) for lists in neighbour_lists for i, row in enumerate(lists) for j in row if i != j}
    return sorted(pairs)


def select_pairs(
    descriptors: np.ndarray,
    overlap: Sequence[Sequence[int]],
    retrieval_count: int = 8,
    sequential_window: int = 2,
) -> list[tuple[int, int]]:
    """The pairs to match: retrieval neighbours ∪ predicted-overlap neighbours ∪ sequential neighbours."""
    S = len(descriptors)
    return pairs_from_neighbours(
        retrieval_neighbours(descriptors, retrieval_count), overlap, sequential_neighbours(S, sequential_window)
    )
