"""The DPO-family losses, one settings class per `loss_type` (formulas: turbo/trainers/losses/dpo.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from turbo.settings.base import StrictModel


def _beta() -> float:
    return Field(0.1, gt=0, description="Temperature of the implicit reward (the KL strength).")


NORM_DESCRIPTION = "Subtract the reference log-ratio (true) or use the policy log-ratio alone (false)."


class BaseLossSettings(StrictModel):
    @property
    def uses_reference(self) -> bool:
        """Whether the loss reads reference log-probs."""
        return True

    @property
    def uses_margin(self) -> bool:
        """Whether every record needs a precomputed margin."""
        return False


class SigmoidLossSettings(BaseLossSettings):
    loss_type: Literal["sigmoid"]
    beta: float = _beta()
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Share of labels assumed flipped (cDPO).")


class SigmoidWithMarginLossSettings(BaseLossSettings):
    loss_type: Literal["sigmoid_with_margin"]
    beta: float = _beta()

    @property
    def uses_margin(self) -> bool:
        return True


class HingeLossSettings(BaseLossSettings):
    loss_type: Literal["hinge"]
    beta: float = _beta()
    norm: bool = Field(False, description=NORM_DESCRIPTION)

    @property
    def uses_reference(self) -> bool:
        return self.norm


class IpoLossSettings(BaseLossSettings):
    loss_type: Literal["ipo"]
    beta: float = _beta()


class KtoPairLossSettings(BaseLossSettings):
    loss_type: Literal["kto"]
    beta: float = _beta()


class SlicHfLossSettings(BaseLossSettings):
    loss_type: Literal["slic_hf"]
    beta: float = Field(1.0, gt=0, description="Scale of the log-ratio inside the hinge.")
    delta: float = Field(1.0, gt=0, description="The hinge margin.")
    lam: float = Field(0.1, ge=0, description="Weight of the NLL of the chosen answer.")
    norm: bool = Field(False, description=NORM_DESCRIPTION)

    @property
    def uses_reference(self) -> bool:
        return self.norm


class CpoLossSettings(BaseLossSettings):
    loss_type: Literal["cpo"]
    beta: float = _beta()
    norm: bool = Field(False, description=NORM_DESCRIPTION)

    @property
    def uses_reference(self) -> bool:
        return self.norm


class OrpoLossSettings(BaseLossSettings):
    loss_type: Literal["orpo"]
    beta: float = Field(0.1, gt=0, description="Weight of the odds-ratio term (lambda in the paper).")

    @property
    def uses_reference(self) -> bool:
        return False


class SimpoLossSettings(BaseLossSettings):
    loss_type: Literal["simpo"]
    beta: float = Field(2.0, gt=0, description="Scale of the length-normalised reward.")
    gamma: float = Field(1.0, ge=0, description="Target reward margin.")

    @property
    def uses_reference(self) -> bool:
        return False


class AsftLossSettings(BaseLossSettings):
    loss_type: Literal["asft"]
    beta: float = Field(0.1, gt=0, description="Weight of the alignment term.")

    @property
    def uses_reference(self) -> bool:
        return False


class ApoZeroLossSettings(BaseLossSettings):
    loss_type: Literal["apo_zero"]
    beta: float = _beta()


class ApoDownLossSettings(BaseLossSettings):
    loss_type: Literal["apo_down"]
    beta: float = _beta()


class DpopLossSettings(BaseLossSettings):
    loss_type: Literal["dpop"]
    beta: float = _beta()
    lam: float = Field(50.0, ge=0, description="Penalty on the chosen log-ratio falling below the reference.")


class NcaPairLossSettings(BaseLossSettings):
    loss_type: Literal["nca_pair"]
    beta: float = _beta()


DpoLossSettings = Annotated[
    SigmoidLossSettings
    | SigmoidWithMarginLossSettings
    | HingeLossSettings
    | IpoLossSettings
    | KtoPairLossSettings
    | SlicHfLossSettings
    | CpoLossSettings
    | OrpoLossSettings
    | SimpoLossSettings
    | AsftLossSettings
    | ApoZeroLossSettings
    | ApoDownLossSettings
    | DpopLossSettings
    | NcaPairLossSettings,
    Field(discriminator="loss_type"),
]
