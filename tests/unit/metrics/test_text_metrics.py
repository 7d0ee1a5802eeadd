"""Each text metric against a value computed by hand or by the library's own documented example."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from turbo.metrics.base import EvalSample
from turbo.metrics.registry import METRICS, compute_scores, summarize
from turbo.settings.metrics import MetricSettings

METRIC_LIST = TypeAdapter(list[MetricSettings])


def sample(reference: str | None = None, source: str = "d") -> EvalSample:
    return EvalSample(source=source, row={}, reference=reference)


def scores(metric: dict, references: list[str | None], answers: list[list[str]]) -> dict:
    (settings,) = METRIC_LIST.validate_python([metric])
    samples = [sample(r) for r in references]
    return METRICS[settings.type](settings.parameters, samples, answers, None)


def test_every_type_of_the_files_is_registered() -> None:
    types = {"accuracy", "dist_n", "diversity", "length", "kl", "meteor", "perplexity", "reward", "rouge",
             "self_bleu", "tool_call_metrics", "retrieval_utility"}
    assert set(METRICS) == types


def test_rouge_by_hand() -> None:
    # reference 6 words, answer 3 of them in order: P = 1, R = 1/2 -> F = 2/3; bigrams 2 of 5 -> F = 4/7
    result = scores({"type": "rouge", "parameters": {"need_compute_rouge_n": [1, 2], "need_compute_rouge_l": True}},
                    ["the cat sat on the mat"], [["the cat sat"]])
    assert result["rouge1"] == [pytest.approx(2 / 3)]
    assert result["rouge2"] == [pytest.approx(2 * 1 * 0.4 / 1.4)]
    assert result["rougeL"] == [pytest.approx(2 / 3)]


def test_meteor_matches_nltk_documented_example_and_uses_wordnet_synonyms() -> None:
    hypothesis = ("It is a guide to action which ensures that the military always obeys the commands of the "
                  "party")
    reference = "It is a guide to action that ensures that the military will forever heed Party commands"
    result = scores({"type": "meteor"}, [reference], [[hypothesis]])
    assert round(result["meteor"][0], 4) == 0.6944  # nltk.translate.meteor_score's docstring
    # all three words matched in one chunk: F = 1, penalty 0.5 * (1/3)^3; "auto" matches "car" through
    # WordNet (car.n.01), "bike" matches nothing: 2 matches in 1 chunk, F = 2/3, penalty 0.5 * (1/2)^3
    same = scores({"type": "meteor"}, ["a red car"], [["a red car"]])["meteor"][0]
    synonym = scores({"type": "meteor"}, ["a red car"], [["a red auto"]])["meteor"][0]
    other = scores({"type": "meteor"}, ["a red car"], [["a red bike"]])["meteor"][0]
    assert same == synonym == pytest.approx(1 - 0.5 / 27)
    assert other == pytest.approx(2 / 3 * (1 - 0.5 / 8))


def test_self_bleu_by_hand() -> None:
    # "a b c d" against "a b c e" (and back): p1 = 3/4, p2 = 2/3, no brevity penalty -> sqrt(1/2)
    result = scores({"type": "self_bleu", "parameters": {"ngram": 2}}, [None, None], [["a b c d"], ["a b c e"]])
    assert result["self_bleu"] == [pytest.approx(0.5**0.5), pytest.approx(0.5**0.5)]
    same = scores({"type": "self_bleu"}, [None, None], [["x y z w"], ["x y z w"]])
    assert same["self_bleu"] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_dist_n_diversity_length_by_hand() -> None:
    dist = scores({"type": "dist_n", "parameters": {"ngram": 2}}, [None], [["a a b"]])
    assert dist == {"dist_1": [pytest.approx(2 / 3)], "dist_2": [1.0]}
    pooled = scores({"type": "dist_n", "parameters": {"ngram": 1}}, [None], [["a b", "a c"]])
    assert pooled["dist_1"] == [pytest.approx(3 / 4)]  # a prompt's answers are pooled
    # bigrams ab ba ab ba: 2/4; trigrams aba bab aba: 2/3; 4-grams abab baba: 2/2
    assert scores({"type": "diversity"}, [None], [["a b a b a"]])["diversity"] == [pytest.approx(1 / 3)]
    assert scores({"type": "length"}, [None], [["one two three", "one"]])["length_words"] == [2.0]


def test_accuracy_and_tool_calls_by_hand() -> None:
    assert scores({"type": "accuracy"}, ["1", "0", None], [["1"], ["1"], ["0"]])["accuracy"] == [1.0, 0.0, None]
    result = scores(
        {"type": "tool_call_metrics", "parameters": {"tool_activation_str": "<tool>"}},
        ["<tool>{}", "plain", "<tool>{}"],
        [['<tool>{"name": "f"}'], ["<tool>{broken"], ["no call"]],
    )
    assert result["tool_call_rate"] == [1.0, 1.0, 0.0]
    assert result["tool_call_accuracy"] == [1.0, 0.0, 0.0]
    assert result["tool_call_valid_json"] == [1.0, 0.0, None]


def test_need_average_chooses_the_mean_the_elements_or_both() -> None:
    metrics = METRIC_LIST.validate_python([
        {"type": "length", "parameters": {"need_average": [True]}},
        {"type": "accuracy", "parameters": {"need_average": [False]}},
        {"type": "dist_n", "parameters": {"ngram": 1, "need_average": [True, False]}},
    ])
    samples = [sample("x"), sample("y")]
    answers = [["x"], ["x x"]]
    means, elements = summarize(metrics, compute_scores(metrics, samples, answers, None, per_sample=False))
    assert means == {"length_words": 1.5, "dist_1": 0.75}
    assert elements == {"accuracy": [1.0, 0.0], "dist_1": [1.0, 0.5]}


def test_metric_settings_are_strict_and_name_the_metric() -> None:
    with pytest.raises(ValidationError, match=r"rouge\.parameters\.need_compute_rouge_m"):
        METRIC_LIST.validate_python([{"type": "rouge", "parameters": {"need_compute_rouge_m": [1]}}])
    with pytest.raises(ValidationError, match="dist_n.parameters.ngram"):
        METRIC_LIST.validate_python([{"type": "dist_n", "parameters": {"ngram": 0}}])
    with pytest.raises(ValidationError, match="tool_activation_str"):
        METRIC_LIST.validate_python([{"type": "tool_call_metrics", "parameters": {}}])
    with pytest.raises(ValidationError, match="bleu"):
        METRIC_LIST.validate_python([{"type": "bleu"}])
