"""The front across runs (core.evaluation.pareto) on hand-made points: dominance, ties, unmeasured figures, objectives."""
from __future__ import annotations

import itertools
import random

import pytest

from core.errors import LabError
from core.evaluation.pareto import DEFAULT_OBJECTIVES, dominates, front


def pt(name: str, acc, size, lat=None, energy=None, check=None) -> dict:
    return {"variant": name, "test_accuracy": acc, "size_bytes": size, "latency_ms_p50": lat,
            "energy_per_1000_j": energy, "check_accuracy": check}


def names(points: list[dict], idx: list[int]) -> list[str]:
    return [points[i]["variant"] for i in idx]


def test_front_keeps_exactly_the_points_nothing_beats_on_every_objective():
    pts = [pt("big-accurate", 0.95, 9000, 5.0, 2.0),
           pt("small-fast", 0.80, 1000, 0.5, 0.2),
           pt("dominated", 0.79, 1200, 0.6, 0.3),        # small-fast is better on all four
           pt("frugal", 0.85, 3000, 2.0, 0.1),           # best energy: on the front though worse elsewhere
           pt("worse-twin", 0.95, 9000, 5.0, 2.5)]       # big-accurate ties on three and wins the fourth
    assert names(pts, front(pts)) == ["big-accurate", "frugal", "small-fast"]   # best accuracy first
    assert dominates(pts[1], pts[2]) and not dominates(pts[2], pts[1])
    assert dominates(pts[0], pts[4]) and not dominates(pts[0], pts[3])


def test_ties_are_all_kept_and_a_point_never_dominates_itself():
    a, b = pt("a", 0.9, 100, 1.0, 1.0), pt("b", 0.9, 100, 1.0, 1.0)
    assert not dominates(a, b) and not dominates(a, a)
    assert names([a, b], front([a, b])) == ["a", "b"]


def test_an_unmeasured_figure_counts_as_the_worst():
    measured = pt("measured", 0.9, 100, 1.0, 1.0)
    unmeasured = pt("no-latency", 0.9, 100)             # a run without compression: size and accuracy only
    assert names([measured, unmeasured], front([measured, unmeasured])) == ["measured"]
    lonely = pt("more-accurate-but-unmeasured", 0.99, 100)
    assert names([measured, lonely], front([measured, lonely])) == ["more-accurate-but-unmeasured", "measured"]


def test_objectives_can_be_chosen_and_include_the_check_set():
    pts = [pt("test-best", 0.95, 100, 1.0, 1.0, check=0.5), pt("check-best", 0.90, 100, 1.0, 1.0, check=0.8)]
    assert names(pts, front(pts)) == ["test-best"]                                   # check set not an objective
    assert names(pts, front(pts, DEFAULT_OBJECTIVES + ("check_accuracy",))) == ["test-best", "check-best"]
    assert names(pts, front(pts, ["check_accuracy", "size_bytes"])) == ["check-best"]
    with pytest.raises(LabError, match="unknown objective 'speed'|unknown objective speed"):
        front(pts, ["speed"])


def test_front_matches_brute_force_on_random_points():
    rng = random.Random(7)
    pts = [pt(f"p{i}", rng.choice([0.7, 0.8, 0.9]), rng.choice([1, 2, 3]), rng.choice([1.0, 2.0, None]),
              rng.choice([0.1, 0.2])) for i in range(40)]
    got = set(front(pts))
    for i, p in enumerate(pts):
        beaten = any(dominates(q, p) for j, q in enumerate(pts) if j != i)
        assert (i in got) == (not beaten), p
    # on the front, no point dominates another
    assert not any(dominates(pts[i], pts[j]) for i, j in itertools.permutations(got, 2))
