"""Metrics over cherry-pick answers and inference outputs: `{"type": ..., "parameters": {...}}`.

One parameters model per metric type, each strict; the union is discriminated on `type`, so a typo
in a metric's parameters names that metric and that key before any model loads.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.datasets.chat import ChatPromptTemplate
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import TokenizerSettings


class MetricParameters(StrictModel):
    """Parameters every metric takes."""

    need_average: list[bool] = Field(
        default_factory=lambda: [True],
        min_length=1,
        description="true: log the mean over the samples; false: write each sample's value beside its "
        "answers; [true, false]: both.",
    )


class NgramParameters(MetricParameters):
    """Parameters of an n-gram metric."""

    ngram: int = Field(5, gt=0, description="The largest n-gram order.")


class SelfBleuParameters(MetricParameters):
    """Parameters of self-BLEU (the BLEU of each answer against the others of its prompt)."""

    ngram: int = Field(3, gt=0, description="BLEU's largest n-gram order.")


class DiversityParameters(MetricParameters):
    """Parameters of the token diversity metric."""

    top_k: int | None = Field(
        None, gt=0, description="Count only the first top_k tokens of each answer; None: all of them."
    )


class KlParameters(MetricParameters):
    """Parameters of the KL metric (the policy's answer log-probs against another model's)."""

    ref_logits_type: Literal["sft", "reference"] = Field(
        "sft",
        description="The model the answers' log-probs are compared with: 'sft' the starting model, "
        "'reference' the method's reference model (the same model where a method has no other).",
    )


class MeteorParameters(MetricParameters):
    """Parameters of METEOR against the reference answer."""

    compute_element_wise_meteor: bool = Field(
        True, description="Score each answer against its reference (false: one corpus-level score)."
    )
    element_wise_meteor_label: str = Field(
        "meteor", min_length=1, description="The name the score logs under."
    )


class RougeParameters(MetricParameters):
    """Parameters of ROUGE against the reference answer."""

    need_compute_rouge_n: list[Annotated[int, Field(ge=1, le=9)]] = Field(
        default_factory=lambda: [1], description="ROUGE-n orders to compute (F-measure)."
    )
    need_compute_rouge_l: bool = Field(True, description="Also compute ROUGE-L (F-measure).")


class ToolCallParameters(MetricParameters):
    """Parameters of the tool-call metrics."""

    tool_activation_str: str = Field(
        min_length=1, description="The text that starts a tool call in an answer (a JSON call follows it)."
    )


class RetrievalUtilityParameters(MetricParameters):
    """Parameters of the retrieval-utility metric."""

    doc_sep_symbol: str = Field(
        "<doc_sep>",
        min_length=1,
        description="Separates the retrieved documents (first) from the message text (last) in a message.",
    )


class RewardParameters(MetricParameters):
    """Parameters of the reward metric: the reward model that scores each answer."""

    model_settings: ModelSettings = Field(description="A reward model (train_rm output, model_type seq_cls).")
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    prompt_template: ChatPromptTemplate | None = Field(
        None, description="How conversations are rendered for the reward model; None: its chat template."
    )
    max_tokens_count: int | None = Field(
        None, gt=0, description="Longer conversations are cut from the start."
    )
    system_prompt: str | None = Field(
        None, description="Put first unless a conversation has a system message."
    )
    name: str = Field("reward", min_length=1, description="The name the score logs under.")
    micro_batch: int = Field(1, gt=0, description="Conversations per reward-model forward pass.")

    @field_validator("model_settings")
    @classmethod
    def _sequence_classifier(cls, value: ModelSettings) -> ModelSettings:
        if value.model_type != "seq_cls":
            raise ValueError("a reward model has model_type 'seq_cls'")
        return value


class _Metric(StrictModel):
    """A metric's settings; the class says what the metric needs (read by the settings and by metrics/)."""

    reads_model: ClassVar[bool] = False
    """Reads the trained model's log-probs: computed during training only (cherry-picks of text prompts)."""
    reads_reference: ClassVar[bool] = False
    """Compares the trained model with a reference model: the run needs one."""
    per_sample: ClassVar[bool] = False
    """A sample's value depends on that sample only (and on models): it runs where the sample was
    generated, on every process; the others run once over a whole dataset's answers."""

    parameters: MetricParameters = MetricParameters()


class AccuracyMetricSettings(_Metric):
    """The share of answers equal to the reference (classification: predicted label == label)."""

    type: Literal["accuracy"]


class DistNMetricSettings(_Metric):
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams of a prompt's answers, n = 1..ngram."""

    type: Literal["dist_n"]
    parameters: NgramParameters = NgramParameters()


class DiversityMetricSettings(_Metric):
    """prod over n = 2..4 of unique / all n-grams of each answer (Su et al. 2022)."""

    type: Literal["diversity"]
    parameters: DiversityParameters = DiversityParameters()


class LengthMetricSettings(_Metric):
    """Answer length in tokens (and in characters)."""

    type: Literal["length"]


class KlMetricSettings(_Metric):
    """Sequence KL estimate on the generated answers: sum of log p_model - log p_ref over their tokens."""

    reads_model = True
    reads_reference = True
    per_sample = True

    type: Literal["kl"]
    parameters: KlParameters = KlParameters()


class MeteorMetricSettings(_Metric):
    """nltk's METEOR (WordNet synonyms from the packaged WordNet 3.0) against the reference answer."""

    type: Literal["meteor"]
    parameters: MeteorParameters = MeteorParameters()


class PerplexityMetricSettings(_Metric):
    """exp of the mean negative log-likelihood of each answer's tokens under the current model."""

    reads_model = True
    per_sample = True

    type: Literal["perplexity"]


class RewardMetricSettings(_Metric):
    """The score a reward model gives to each conversation (prompt + answer)."""

    per_sample = True

    type: Literal["reward"]
    parameters: RewardParameters


class RougeMetricSettings(_Metric):
    """rouge-score's ROUGE-n / ROUGE-L F-measure against the reference answer."""

    type: Literal["rouge"]
    parameters: RougeParameters = RougeParameters()


class SelfBleuMetricSettings(_Metric):
    """Self-BLEU (Zhu et al. 2018): BLEU of each answer against all other answers; lower is more diverse."""

    type: Literal["self_bleu"]
    parameters: SelfBleuParameters = SelfBleuParameters()


class ToolCallMetricSettings(_Metric):
    """Share of answers that call a tool, that do so when the reference does, and whose call is JSON."""

    type: Literal["tool_call_metrics"]
    parameters: ToolCallParameters


class RetrievalUtilityMetricSettings(_Metric):
    """How much the retrieved documents in the prompt lower the answer's cross-entropy (nats per token)."""

    reads_model = True
    per_sample = True

    type: Literal["retrieval_utility"]
    parameters: RetrievalUtilityParameters = RetrievalUtilityParameters()


MetricSettings = Annotated[
    AccuracyMetricSettings
    | DistNMetricSettings
    | DiversityMetricSettings
    | LengthMetricSettings
    | KlMetricSettings
    | MeteorMetricSettings
    | PerplexityMetricSettings
    | RewardMetricSettings
    | RougeMetricSettings
    | SelfBleuMetricSettings
    | ToolCallMetricSettings
    | RetrievalUtilityMetricSettings,
    Field(discriminator="type"),
]


def model_metric_names(metrics: list) -> list[str]:
    """The types among `metrics` that read the trained model (sorted, each once)."""
    return sorted({metric.type for metric in metrics if metric.reads_model})
