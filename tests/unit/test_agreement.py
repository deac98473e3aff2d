"""Agreement statistics against values computed by hand or published."""

from __future__ import annotations

import pytest

from judging.stats import agreement as stats

NA = None


def test_cohen_kappa_hand_computed_two_by_two() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 35/50 = 0.7; p_yes(A) = 0.5, p_yes(B) = 0.6; p_e = 0.5*0.6 + 0.5*0.4 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert stats.cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_three_labels_hand_computed() -> None:
    # 10 items: agreements a,a,a,b,b,c ; disagreements (a,b) (b,a) (c,a) (a,c)
    pairs = (
        [("a", "a")] * 3
        + [("b", "b")] * 2
        + [("c", "c")]
        + [("a", "b"), ("b", "a"), ("c", "a"), ("a", "c")]
    )
    # p_o = 0.6. First: a=5, b=3, c=2. Second: a=5, b=3, c=2. p_e = (25+9+4)/100 = 0.38
    assert stats.cohen_kappa(pairs) == pytest.approx((0.6 - 0.38) / (1 - 0.38))


def test_krippendorff_alpha_textbook_example() -> None:
    # Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", 4 observers x 12 units,
    # nominal: alpha = 0.743.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3]
    c = [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA]
    assert stats.krippendorff_alpha_nominal(list(zip(a, b, c, d, strict=True))) == pytest.approx(
        0.743, abs=5e-4
    )


def test_krippendorff_alpha_wikipedia_example() -> None:
    # Wikipedia "Krippendorff's alpha": 3 coders x 15 units with gaps, nominal alpha = 0.691.
    rows = [
        [NA, NA, NA, NA, NA, 3, 4, 1, 2, 1, 1, 3, 3, NA, 3],
        [1, NA, 2, 1, 3, 3, 4, 3, NA, NA, NA, NA, NA, NA, NA],
        [NA, NA, 2, 1, 3, 4, 4, NA, 2, 1, 1, 3, 3, NA, 4],
    ]
    assert stats.krippendorff_alpha_nominal(list(zip(*rows, strict=True))) == pytest.approx(
        0.691, abs=5e-4
    )


def test_alpha_two_raters_matches_its_small_sample_formula() -> None:
    # Perfect agreement gives 1; two raters always disagreeing on two labels gives below 0.
    assert stats.krippendorff_alpha_nominal([["x", "x"], ["y", "y"]]) == pytest.approx(1.0)
    assert stats.krippendorff_alpha_nominal([["x", "y"], ["y", "x"]]) < 0
    assert stats.krippendorff_alpha_nominal([["x"], ["y"]]) is None


def test_raw_agreement_pools_pairs() -> None:
    # Unit 1: 3 raters a,a,b -> 1 of 3 pairs agree; unit 2: a,a -> 1 of 1.
    assert stats.raw_agreement([["a", "a", "b"], ["a", "a"]]) == pytest.approx(2 / 4)
    assert stats.raw_agreement([["a"]]) is None


def test_position_bias_and_winner() -> None:
    assert stats.position_bias(["left", "left", "right", "tie", "both_bad"]) == pytest.approx(2 / 3)
    assert stats.position_bias(["tie"]) is None
    assert stats.winner("left", "left") == "checkpoint"
    assert stats.winner("left", "right") == "reference"
    assert stats.winner("tie", "right") == "tie"
    assert stats.winner("both_bad", "left") == "both_bad"
    assert stats.median_or_none([3.0, 1.0, 2.0]) == 2.0
    assert stats.pass_rate([True, False, True, True]) == 0.75


# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 subjects, 14 raters, 5 categories;
# P_bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example() -> None:
    units = [[cat for cat, k in enumerate(row, 1) for _ in range(k)] for row in FLEISS_TABLE]
    assert stats.fleiss_kappa(units) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_two_raters_by_hand() -> None:
    # 4 units x 2 ratings: (a,a) (a,b) (b,b) (a,a). P_i = 1, 0, 1, 1 -> P_bar = 0.75.
    # p_a = 5/8, p_b = 3/8 -> P_e = 25/64 + 9/64 = 34/64; kappa = (0.75 - 34/64) / (30/64) = 7/15
    units = [["a", "a"], ["a", "b"], ["b", "b"], ["a", "a"]]
    assert stats.fleiss_kappa(units) == pytest.approx(7 / 15)


def test_fleiss_kappa_edge_cases() -> None:
    assert stats.fleiss_kappa([]) is None
    assert stats.fleiss_kappa([["x", "x"], ["x", "x"]]) == 1.0
    with pytest.raises(ValueError, match="same number of ratings"):
        stats.fleiss_kappa([["x", "x"], ["x", "y", "x"]])


def test_pairwise_cohen_kappa_per_rater_pair() -> None:
    # Three raters, each comparison judged by two of them. (ann, bob) agree on 3 of 4:
    # ann: c c r t ; bob: c c r c. p_o = 0.75; ann c=2 r=1 t=1, bob c=3 r=1:
    # p_e = (2*3 + 1*1) / 16 = 7/16 -> kappa = (0.75 - 7/16) / (9/16) = 5/9.
    units = [
        {"ann": "c", "bob": "c"},
        {"ann": "c", "bob": "c"},
        {"ann": "r", "bob": "r"},
        {"ann": "t", "bob": "c"},
        {"ann": "c", "cid": "r"},
        {"bob": "r", "cid": "r"},
        {"bob": "c", "cid": "c"},
    ]
    pairs = {(p.rater_a, p.rater_b): p for p in stats.pairwise_cohen_kappa(units)}
    assert set(pairs) == {("ann", "bob"), ("ann", "cid"), ("bob", "cid")}
    ab = pairs[("ann", "bob")]
    assert ab.n == 4 and ab.agreement == 0.75 and ab.kappa == pytest.approx(5 / 9)
    assert pairs[("ann", "cid")].n == 1 and pairs[("ann", "cid")].agreement == 0.0
    bc = pairs[("bob", "cid")]
    assert bc.n == 2 and bc.agreement == 1.0 and bc.kappa == pytest.approx(1.0)
