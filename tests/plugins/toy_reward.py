"""A reward from outside the package, learnable by a random-weight model (GRPO tests on tiny models).

    plugins: [plugins.toy_reward]        # with tests/ on sys.path (pytest puts it there)
    train.grpo.rewards=[{name:toy_projection,weight:1.0}]

The share of a completion's tokens whose (tied) embedding points along one fixed random direction
of the model being trained: moving the last hidden state along that direction raises all their
logits at once, so GRPO can raise it within ~20 steps where a "small token id" reward does not move.
"""

from __future__ import annotations

from pipeline.config import Config
from pipeline.train.rewards import KINDS, Reward, register_reward


def _targets(cfg: Config) -> set[int]:
    import torch
    from safetensors.torch import load_file

    from pipeline.engine.models import resolve

    weights = load_file(str(resolve(cfg.model.spec, cfg.paths.models) / "model.safetensors"))
    emb = next(v for k, v in weights.items() if k.endswith("embed_tokens.weight")).float()
    v = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
    return set((emb @ v > 0).nonzero().flatten().tolist())


def build(cfg: Config):
    targets = _targets(cfg)

    def toy_projection(prompts, completions, completion_ids=None, **_) -> list[float]:
        return [sum(t in targets for t in ids) / max(len(ids), 1) for ids in completion_ids]

    return toy_projection


REWARD = register_reward(Reward("toy_projection", KINDS, build))
