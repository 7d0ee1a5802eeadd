"""A trained turbo multimodal model (CLIP tower + llava projector + causal LM) as a transformers
`LlavaForConditionalGeneration`, so that transformers and vLLM load it as any LLaVA model.

The two compute the same thing: LLaVA takes the vision tower's hidden_states[-2] without the CLS token
(vision_feature_layer -2, select strategy "default"), exactly as turbo's CLIP encoder does; its
multi_modal_projector is Linear -> GELU -> Linear like turbo's llava projector; and it replaces the
input embeddings at the image token's positions with the projected features, in order, as turbo does.
"""

from __future__ import annotations

from typing import Any

from turbo.errors import ModelError

EXPORTABLE_ENCODERS = ("clip",)


def export_problem(encoder_type: str, projector_type: str, modalities: list[str]) -> str | None:
    """Why a model with these parts has no LLaVA form, or None."""
    if modalities != ["image"]:
        return f"LLaVA has one image tower; this model has the modalities {', '.join(modalities)}"
    if encoder_type not in EXPORTABLE_ENCODERS:
        return (
            f"the {encoder_type} encoder reads its tower's last output after the post-layernorm, which "
            "LLaVA's vision_feature_layer cannot select; only clip encoders export"
        )
    if projector_type != "llava":
        return f"the {projector_type} projector has no LLaVA form; only the llava projector exports"
    return None


def to_llava(
    language_model: Any, vision_tower: Any, projector: Any, image_token_id: int, n_tokens: int
) -> Any:
    """LlavaForConditionalGeneration holding these very modules (no copy of the LM or the tower).

    `language_model` is a plain causal LM (adapters merged), `vision_tower` a CLIPVisionModel,
    `projector` turbo's LlavaProjector."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    text_config = language_model.config
    vision_config = vision_tower.config
    config = LlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=image_token_id,
        image_seq_length=n_tokens,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    dtype = language_model.get_input_embeddings().weight.dtype
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(config)
    base = getattr(language_model, language_model.base_model_prefix, None)
    if base is None or not hasattr(language_model, "lm_head"):
        raise ModelError(
            f"{type(language_model).__name__} is not a causal LM with a base model and an lm_head"
        )
    llava.model.language_model = base
    llava.lm_head = language_model.lm_head
    llava.model.vision_tower = vision_tower
    # turbo's projector names its weights as transformers' LlavaMultiModalProjector does (linear_1, linear_2)
    state = {key: value.detach().to(dtype) for key, value in projector.state_dict().items()}
    llava.model.multi_modal_projector.load_state_dict(state, assign=True)
    llava.config.dtype = dtype
    return llava.eval()
