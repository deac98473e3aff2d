"""Reward-model report maths on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from judging.evaluation.rm_report import (
    build_report,
    calibration_bins,
    expected_calibration_error,
    pairwise_accuracy,
    pearson,
    sigmoid,
)


def test_pairwise_accuracy_counts_ties_half() -> None:
    assert pairwise_accuracy([2.0, 1.0, 0.0, 5.0], [1.0, 3.0, 0.0, 4.0]) == pytest.approx(2.5 / 4)


def test_pairwise_accuracy_rejects_empty_and_mismatched() -> None:
    with pytest.raises(ValueError):
        pairwise_accuracy([], [])
    with pytest.raises(ValueError):
        pairwise_accuracy([1.0], [1.0, 2.0])


def test_calibration_bins_put_each_pair_in_both_orientations() -> None:
    # margin ln(3): p = 0.75 (outcome 1) and 0.25 (outcome 0); margin 0: p = 0.5 twice.
    bins = calibration_bins([math.log(3), 0.0], [0.0, 0.0], n_bins=4)
    assert [b.count for b in bins] == [0, 1, 2, 1]
    assert bins[1].mean_predicted == pytest.approx(0.25) and bins[1].observed == 0.0
    assert bins[2].mean_predicted == pytest.approx(0.5) and bins[2].observed == 0.5
    assert bins[3].mean_predicted == pytest.approx(0.75) and bins[3].observed == 1.0
    assert bins[0].mean_predicted is None
    # |0.25-0| + |0.5-0.5|*2 + |0.75-1| over 4 = 0.125
    assert expected_calibration_error(bins) == pytest.approx(0.125)


def test_sigmoid_is_stable_for_large_margins() -> None:
    assert sigmoid(1000.0) == 1.0 and sigmoid(-1000.0) == 0.0
    assert sigmoid(0.0) == 0.5


def test_pearson_hand_computed() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # x=[1,2,3,4], y=[1,3,2,4]: sxy=4, sxx=5, syy=5 -> 0.8
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1], [2]) is None


def test_build_report_figures() -> None:
    report = build_report(
        chosen=[2.0, 1.0], rejected=[0.0, 3.0], chosen_lengths=[10, 4], rejected_lengths=[2, 8]
    )
    assert report["pairs"] == 2 and report["accuracy"] == 0.5
    assert report["mean_margin"] == pytest.approx(0.0)
    assert report["chosen_longer_share"] == 0.5
    # scores [2,1,0,3] vs lengths [10,4,2,8]
    assert report["reward_length_pearson"] == pytest.approx(pearson([2, 1, 0, 3], [10, 4, 2, 8]))
    assert sum(b["count"] for b in report["calibration"]) == 4
