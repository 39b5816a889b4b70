"""Operating points chosen on validation hold on test, within the reported intervals."""

from __future__ import annotations

import numpy as np
import pytest

from harmscan.errors import InputError
from harmscan.eval.scores import ScoredSplit
from harmscan.eval.thresholds import (
    Objective,
    choose_threshold,
    parse_objectives,
    parse_prevalence,
    prevalence_weights,
    tune_from_scores,
)

stats = pytest.importorskip("scipy.stats")

LABELS = ["toxicity", "violence", "illegal_advice"]
POS, NEG = stats.beta(5, 2), stats.beta(2, 5)  # score distributions of positives and negatives


def sample(rng: np.random.Generator, n: int, rate: float, source: str = "s") -> ScoredSplit:
    y = (rng.random(n) < rate).astype(np.int8)
    p = np.where(y == 1, POS.rvs(n, random_state=rng), NEG.rvs(n, random_state=rng))
    return ScoredSplit(p[:, None], y[:, None], np.ones((n, 1), bool), [source] * n, p[:, None])


def true_precision(t: float, rate: float) -> float:
    tp, fp = rate * POS.sf(t), (1 - rate) * NEG.sf(t)
    return tp / (tp + fp)


# -- parsing ---------------------------------------------------------------------------------------------
def test_objectives_for_all_labels_per_label_and_mixed():
    assert {str(o) for o in parse_objectives("f1", LABELS).values()} == {"f1"}
    mixed = parse_objectives("precision>=0.9, violence=recall>=0.8,illegal_advice=fpr<=0.01", LABELS)
    assert str(mixed["toxicity"]) == "precision>=0.9"
    assert str(mixed["violence"]) == "recall>=0.8"
    assert mixed["illegal_advice"] == Objective("fpr", 0.01)
    assert str(parse_objectives({"violence": "precision>=0.95"}, LABELS)["toxicity"]) == "f1"


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("precision>0.9", "is not one of"),
        ("precision>=1.5", "is not one of"),
        ("accuracy", "is not one of"),
        ("recall>=0", "within (0, 1]"),
        ("self_harm=f1", "names label 'self_harm'"),
    ],
)
def test_bad_objectives_are_user_errors(spec: str, needle: str):
    with pytest.raises(InputError) as err:
        parse_objectives(spec, LABELS)
    assert needle in str(err.value)


def test_prevalence_forms():
    assert parse_prevalence("0.01", LABELS) == dict.fromkeys(LABELS, 0.01)
    assert parse_prevalence("toxicity=0.05,violence=0.002", LABELS) == {"toxicity": 0.05, "violence": 0.002}
    assert parse_prevalence(0.2, LABELS)["illegal_advice"] == 0.2
    for bad, needle in (("toxicity=1", "strictly between 0 and 1"), ("x=0.1", "names label 'x'"),
                        ("toxicity=lots", "not a number")):
        with pytest.raises(InputError, match=needle):
            parse_prevalence(bad, LABELS)


# -- choosing --------------------------------------------------------------------------------------------
def test_each_objective_on_a_small_hand_checked_example():
    # scores descending: 0.9 P, 0.8 P, 0.7 N, 0.6 P, 0.4 N, 0.3 N, 0.2 P, 0.1 N
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    t, info = choose_threshold(y, p, Objective("precision", 0.75))
    assert 0.4 < t <= 0.6 and info["precision"] == 0.75 and info["recall"] == 0.75  # flags the top 4
    t, info = choose_threshold(y, p, Objective("precision", 1.0))
    assert 0.7 < t <= 0.8 and info["recall"] == 0.5  # the top 2
    t, info = choose_threshold(y, p, Objective("recall", 1.0))
    assert 0.1 < t <= 0.2 and info["fpr"] == 0.75  # all 4 positives need the 0.2 one
    t, info = choose_threshold(y, p, Objective("fpr", 0.25))
    assert 0.4 < t <= 0.6 and info["recall"] == 0.75  # one negative allowed (the 0.7); the 0.4 is a second
    t, info = choose_threshold(y, p, Objective("f1"))
    assert info["f1"] == pytest.approx(0.75) and 0.4 < t <= 0.6
    flagged = p >= t
    assert flagged.sum() == 4  # the threshold reproduces the validation decisions under `score >= t`


def test_unreachable_precision_is_reported_not_hidden():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6])
    _, info = choose_threshold(y, p, Objective("precision", 0.99))
    assert info["attained"] is False


def test_precision_target_holds_on_test_within_the_reported_interval():
    """precision>=0.9 chosen on validation: the true precision at the chosen threshold is ~0.9, and the
    reported test interval covers it in most draws (95% nominal)."""
    covered, trues = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        val, test = sample(rng, 2000, 0.3), sample(rng, 2000, 0.3)
        r = tune_from_scores(val, test, ["toxicity"], {"toxicity": Objective("precision", 0.9)}, n_boot=400,
                             seed=seed)
        t = r["thresholds"]["toxicity"]
        lo, hi = r["test"]["toxicity"]["precision"]["ci95"]
        point = r["test"]["toxicity"]["precision"]["value"]
        assert lo <= point <= hi
        assert r["validation"]["toxicity"]["precision"] >= 0.9
        truth = true_precision(t, 0.3)
        trues.append(truth)
        covered += lo <= truth <= hi
    assert covered >= 34, covered  # >= 85% of 40 (nominal 95%; binomial slack)
    assert np.mean(trues) == pytest.approx(0.9, abs=0.015)


def test_prevalence_reweighting_targets_the_users_base_rate():
    """Validation at 30% positives, traffic at 5%: precision>=0.9 must hold at 5%, so the threshold rises."""
    rng = np.random.default_rng(11)
    val, test = sample(rng, 20000, 0.3), sample(rng, 20000, 0.3)
    objective = {"toxicity": Objective("precision", 0.9)}
    plain = tune_from_scores(val, test, ["toxicity"], objective, n_boot=200)
    reweighted = tune_from_scores(val, test, ["toxicity"], objective, {"toxicity": 0.05}, n_boot=200)
    t_plain, t_prev = plain["thresholds"]["toxicity"], reweighted["thresholds"]["toxicity"]
    assert t_prev > t_plain
    assert true_precision(t_plain, 0.05) < 0.8  # without re-weighting, precision collapses at 5%
    assert true_precision(t_prev, 0.05) == pytest.approx(0.9, abs=0.03)
    at_prev = reweighted["test_at_prevalence"]["toxicity"]["precision"]
    assert at_prev["ci95"][0] <= true_precision(t_prev, 0.05) <= at_prev["ci95"][1]
    # recall does not depend on the base rate: re-weighting leaves it alone at a fixed threshold
    w = prevalence_weights(val.labels[:, 0], 0.05)
    assert w is not None and np.average(val.labels[:, 0], weights=w) == pytest.approx(0.05)


def test_hard_negative_sources_get_their_own_false_positive_rate():
    rng = np.random.default_rng(2)
    mixed = sample(rng, 1000, 0.4, "comments")
    benign = sample(rng, 500, 0.0, "wikitext2_hardneg")
    test = ScoredSplit(*(np.concatenate([a, b]) for a, b in zip(
        (mixed.probs, mixed.labels, mixed.mask), (benign.probs, benign.labels, benign.mask), strict=True)),
        mixed.sources + benign.sources, np.concatenate([mixed.logits, benign.logits]))
    r = tune_from_scores(mixed, test, ["toxicity"], {"toxicity": Objective("fpr", 0.05)}, n_boot=100)
    hard = r["hard_negative_fpr"]["toxicity"]
    assert list(hard) == ["wikitext2_hardneg"]  # the mixed source has positives: not a hard-negative source
    t = r["thresholds"]["toxicity"]
    expected = float((benign.probs[:, 0] >= t).mean())
    assert hard["wikitext2_hardneg"]["fpr"]["value"] == pytest.approx(expected)
    assert hard["wikitext2_hardneg"]["fpr"]["value"] <= 0.1
