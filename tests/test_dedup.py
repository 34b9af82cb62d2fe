"""Dedup: exact and near duplicates within a generation and against earlier ones; distinct problems stay."""

from __future__ import annotations

import pytest

from pipeline.synth.dedup import NearDupIndex, dedup_items

A = "Tom buys 3 apples for 2 dollars each and a melon for 5 dollars. How much does he spend in total?"
A_EXACT = "  tom buys 3 apples, for 2 dollars each and a MELON for 5 dollars...how much does he spend in total "
A_NUMBERS = "Tom buys 7 apples for 4 dollars each and a melon for 9 dollars. How much does he spend in total?"
B = "A train leaves at 9 and travels 60 miles per hour for 3 hours. How far does the train travel?"
C = "Lena has 24 stickers. She gives a third to her brother and 5 to a friend. How many stickers are left?"


def test_exact_near_and_distinct_within_a_generation():
    kept, dropped = dedup_items([("a", A), ("b", B), ("a2", A_EXACT), ("a3", A_NUMBERS), ("c", C)], [], 0.8)
    assert kept == ["a", "b", "c"]
    assert dropped["a2"]["reason"] == "dup_within_gen" and dropped["a2"]["match"] == "exact" and dropped["a2"]["dup_of"] == "a"
    assert dropped["a3"]["match"] == "near" and dropped["a3"]["score"] >= 0.8


def test_against_earlier_generations():
    kept, dropped = dedup_items([("new-a", A_NUMBERS), ("new-c", C)], [("old-a", A)], 0.8)
    assert kept == ["new-c"]
    assert dropped["new-a"] == {"reason": "dup_earlier_gen", "dup_of": "old-a", "match": "near", "score": 1.0}


def test_threshold_matters_and_is_checked():
    similar = A.replace("a melon", "a large watermelon from the market")
    assert NearDupIndex(0.95).find(similar) is None
    idx = NearDupIndex(0.5)
    idx.add(A, "a")
    assert idx.find(similar).other_id == "a"
    with pytest.raises(ValueError, match="threshold"):
        NearDupIndex(0)
