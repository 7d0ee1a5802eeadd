"""The DPO trainer's pieces: answer log-probs from one forward pass, and the TR-DPO reference sync."""

from types import SimpleNamespace

import torch

from turbo.data.pair_preferences import PairCollator
from turbo.settings.pipelines.train.dpo import SyncRefModelSettings
from turbo.trainers.dpo import SyncRefModelCallback
from turbo.trainers.logps import answer_logps


class TinyLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(11, 5)
        self.head = torch.nn.Linear(5, 11)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self.head(self.embed(input_ids)))


def test_answer_logps_sum_the_answer_tokens_only() -> None:
    model = TinyLM()
    features = [
        {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]},
        {"prompt_ids": [1, 7], "chosen_ids": [8, 9, 10], "rejected_ids": [4, 4]},
    ]
    batch = PairCollator(pad_token_id=0)(features)
    result = answer_logps(model, batch)
    rows = [(f["prompt_ids"], f[key]) for key in ("chosen_ids", "rejected_ids") for f in features]
    for row, (prompt, answer) in enumerate(rows):
        ids = torch.tensor([prompt + answer])
        log_probs = model(ids, None).logits[0].log_softmax(-1)
        expected = sum(log_probs[len(prompt) - 1 + i, token] for i, token in enumerate(answer))
        torch.testing.assert_close(result.sums[row], expected, atol=1e-6, rtol=0)
        assert result.counts[row] == len(answer)


def test_sync_mixes_the_policy_into_the_reference_every_sync_steps() -> None:
    policy, reference = TinyLM(), TinyLM()
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(1.0)
    before = {name: p.clone() for name, p in reference.named_parameters()}
    callback = SyncRefModelCallback(
        reference, SyncRefModelSettings(sync_ref_model=True, alpha=0.25, sync_steps=2)
    )
    callback.on_step_end(None, SimpleNamespace(global_step=1), None, model=policy)
    assert all(torch.equal(before[name], p) for name, p in reference.named_parameters())
    callback.on_step_end(None, SimpleNamespace(global_step=2), None, model=policy)
    for name, p in reference.named_parameters():
        expected = 0.75 * before[name] + 0.25 * dict(policy.named_parameters())[name]
        torch.testing.assert_close(p, expected)
