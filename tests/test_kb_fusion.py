"""Ranking arithmetic for hybrid search: reciprocal rank fusion and cosine top-k, checked against hand values."""

from __future__ import annotations

import math
import random

import pytest

from attest.errors import KbError
from attest.kb.fusion import cosine, cosine_top_k, reciprocal_rank_fusion


def test_rrf_known_values() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)


def test_rrf_constant_changes_the_weights() -> None:
    assert reciprocal_rank_fusion([[5, 6]], k=0) == [(5, 1.0), (6, 0.5)]
    assert dict(reciprocal_rank_fusion([[5, 6]]))[5] == pytest.approx(1 / 61)  # 60 by default


def test_rrf_ties_go_to_the_first_ranking_and_are_exact() -> None:
    forward = reciprocal_rank_fusion([[1, 2], [2, 1]])
    assert [item for item, _ in forward] == [1, 2]
    assert forward[0][1] == forward[1][1]  # bit-equal, not merely close
    assert [item for item, _ in reciprocal_rank_fusion([[2, 1], [1, 2]])] == [2, 1]
    # Three rankings: the same multiset of ranks in different orders sums to the same float.
    three = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1, 2], [2, 3, 1]]))
    assert three[1] == three[2] == three[3]


def test_rrf_counts_an_item_once_per_ranking() -> None:
    fused = dict(reciprocal_rank_fusion([[7, 7, 8]]))
    assert fused == {7: pytest.approx(1 / 61), 8: pytest.approx(1 / 62)}


def test_rrf_of_nothing_and_bad_constant() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], k=-1)


def test_cosine_on_small_vectors() -> None:
    assert cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    assert cosine([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [-3.0, 0.0]) == pytest.approx(-1.0)
    assert cosine([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)
    assert cosine([0.0, 0.0], [1.0, 1.0]) == 0.0  # a zero vector resembles nothing
    with pytest.raises(KbError, match="dimensions"):
        cosine([1.0], [1.0, 2.0])


def test_cosine_top_k_orders_by_similarity_and_breaks_ties_by_id() -> None:
    vectors = [(1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [1.0, 1.0]), (4, [-1.0, 0.0]), (9, [2.0, 0.0])]
    top = cosine_top_k([1.0, 0.0], vectors, 3)
    assert [chunk_id for chunk_id, _ in top] == [1, 9, 3]  # 1 and 9 point the same way: the lower id first
    assert [s for _, s in top] == pytest.approx([1.0, 1.0, 1 / math.sqrt(2)])
    assert [chunk_id for chunk_id, _ in cosine_top_k([1.0, 0.0], vectors, 10)] == [1, 9, 3, 2, 4]
    assert cosine_top_k([1.0, 0.0], vectors, 0) == []
    assert cosine_top_k([0.0, 0.0], vectors, 2) == [(1, 0.0), (2, 0.0)]


def test_cosine_top_k_matches_a_brute_force_reference() -> None:
    rng = random.Random(7)
    vectors = [(i, [rng.uniform(-1, 1) for _ in range(16)]) for i in range(200)]
    query = [rng.uniform(-1, 1) for _ in range(16)]

    def reference(v: list[float]) -> float:
        dot = math.fsum(a * b for a, b in zip(query, v, strict=True))
        return dot / (math.sqrt(math.fsum(a * a for a in query)) * math.sqrt(math.fsum(b * b for b in v)))

    expected = sorted(vectors, key=lambda pair: -reference(pair[1]))[:10]
    top = cosine_top_k(query, vectors, 10)
    assert [chunk_id for chunk_id, _ in top] == [chunk_id for chunk_id, _ in expected]
    assert [s for _, s in top] == pytest.approx([reference(v) for _, v in expected])


def test_cosine_top_k_refuses_vectors_of_another_model() -> None:
    with pytest.raises(KbError, match="re-embed"):
        cosine_top_k([1.0, 0.0], [(1, [1.0, 0.0]), (2, [1.0, 0.0, 0.0])], 1)
