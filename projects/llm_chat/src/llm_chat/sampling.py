"""Next-token choice from logits: penalties, temperature, top-k, top-p, and a per-request seeded
generator (the same seed and prompt give the same tokens). Backend-independent: torch on CPU."""

from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # HF style, on prompt and output tokens; 1 = off
    presence_penalty: float = 0.0  # OpenAI style, on output tokens
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    min_p: float = 0.0  # drop tokens under min_p x the likeliest one's probability; 0 = off
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    # None: off; k >= 0: each output token's log-probability and the k likeliest alternatives,
    # from the model's distribution before sampling's transforms (vLLM's "raw" logprobs).
    logprobs: int | None = None
    grammar: dict | None = None  # the output must match this format (grammar.py); None: free


# Below this temperature, sampling is greedy: dividing logits by ~0 overflows them to inf.
MIN_TEMPERATURE = 1e-4


class Sampler:
    """The state of one request's sampling: its generator and the token counts penalties need."""

    def __init__(self, params: SamplingParams, prompt: list[int], vocab_size: int) -> None:
        self.params = params
        self.generator = torch.Generator()
        if params.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(params.seed)
        self.seen = torch.zeros(vocab_size, dtype=torch.bool)
        if prompt:
            self.seen[torch.tensor(prompt)] = True
        self.counts = torch.zeros(vocab_size)  # output tokens only

    def __call__(self, logits: torch.Tensor) -> int:
        p = self.params
        logits = logits.float().clone()
        if p.repetition_penalty != 1.0:
            picked = logits[self.seen]
            logits[self.seen] = torch.where(
                picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty
            )
        if p.presence_penalty or p.frequency_penalty:
            logits -= p.presence_penalty * (self.counts > 0) + p.frequency_penalty * self.counts
        greedy = p.temperature < MIN_TEMPERATURE
        token = int(logits.argmax()) if greedy else self._sample(logits / p.temperature)
        self.seen[token] = True
        self.counts[token] += 1
        return token

    def _sample(self, logits: torch.Tensor) -> int:
        p = self.params
        if 0 < p.top_k < logits.numel():
            kth = torch.topk(logits, p.top_k).values[-1]
            logits[logits < kth] = float("-inf")
        if p.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=True)
            cumulative = torch.softmax(ordered, -1).cumsum(-1)
            # Drop a token once the ones before it already cover top_p; the first always stays.
            drop = cumulative - torch.softmax(ordered, -1) >= p.top_p
            logits[order[drop]] = float("-inf")
        probs = torch.softmax(logits, -1)
        if not torch.isfinite(probs).all():
            # Extreme but valid settings (a penalty of 1e-300) overflow to inf/nan: the
            # likeliest token is the only answer left that means anything.
            return int(logits.nan_to_num(nan=float("-inf")).argmax())
        return int(torch.multinomial(probs, 1, generator=self.generator))
