"""Diagnostics of a starting backbone: within-set retrieval and the mean pairwise cosine."""

from __future__ import annotations

import itertools

import pytest
import torch

from amalib.metrics import average_precision
from amalib.retrieval.evaluate import mean_pairwise_cosine, within_set_map
from amalib.retrieval.features import FeatureSet


def test_mean_pairwise_cosine_equals_the_pair_loop():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(7, 5), dim=1)
    pairs = [float(x[i] @ x[j]) for i, j in itertools.permutations(range(7), 2)]
    assert mean_pairwise_cosine(x) == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)
    same = torch.nn.functional.normalize(torch.ones(4, 3), dim=1)
    assert mean_pairwise_cosine(same) == pytest.approx(1.0, abs=1e-6)  # a collapsed embedding
    with pytest.raises(ValueError, match="two"):
        mean_pairwise_cosine(x[:1])


def test_within_set_map_queries_even_rows_against_odd_rows():
    # Rows 0, 2 (queries) and 1, 3 (gallery); class 0 = rows 0, 1, class 1 = rows 2, 3.
    features = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    result = within_set_map(FeatureSet(features, torch.ones(4, dtype=torch.bool), labels))
    # Query 0 ranks row 3 (cosine 1.0, class 1) before row 1 (0.6, class 0): AP 1/2.
    # Query 2 ranks row 1 (0.8, class 0) before row 3 (0.0, class 1): AP 1/2.
    expected = (average_precision([0, 1]) + average_precision([0, 1])) / 2
    assert result == pytest.approx(expected) and expected == pytest.approx(0.5)


def test_within_set_map_skips_unreadable_images():
    features = torch.eye(4)
    labels = torch.tensor([0, 0, 1, 1])
    valid = torch.tensor([True, True, True, False])  # row 3 could not be read
    # Query 0 finds row 1 first (the only gallery row left): AP 1; query 2 finds none of its class.
    out = within_set_map(FeatureSet(features, valid, labels))
    assert out == pytest.approx(1.0)
