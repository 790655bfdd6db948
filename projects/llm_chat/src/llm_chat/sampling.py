"""Next-token choice from logits: logit bias, penalties, a grammar mask, temperature, min-p,
top-k, top-p, and a per-request seeded generator (the same seed and prompt give the same tokens).
Backend-independent: torch on CPU.

The order, vLLM's: logit_bias -> penalties -> grammar mask -> greedy argmax, or
temperature -> min_p -> top_k -> top_p -> draw. The mask comes before greedy and before
temperature so that neither can pick a token the grammar forbids.

Logprobs are "raw" (vLLM's term): the model's log-softmax before any of these steps, bias and
grammar mask included. A token that only the mask or a bias made likely is reported with the
probability the model itself gave it, which is what a client needs to judge the model's
confidence; the reported alternatives may include tokens the grammar did not allow.
"""

import math
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


@dataclass
class TokenLogprob:
    token: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)  # (token, logprob), likeliest first


# Below this temperature, sampling is greedy: dividing logits by ~0 overflows them to inf.
MIN_TEMPERATURE = 1e-4


class GrammarState:
    """One request's place in its grammar: xgrammar's matcher over the compiled grammar
    (grammar.compile_format). `stop_tokens` end the output, and the mask allows them only where
    the grammar may end; empty: the tokenizer's own end-of-sequence tokens."""

    def __init__(self, compiled, vocab_size: int, stop_tokens=()) -> None:
        import xgrammar as xgr

        self._apply = xgr.apply_token_bitmask_inplace
        # Without terminate_without_stop_token the matcher ends only on a stop token: with it,
        # it ends as soon as the output *could* end ("12" of a number, any free text).
        self.matcher = xgr.GrammarMatcher(
            compiled, override_stop_tokens=sorted(stop_tokens) or None
        )
        self.bitmask = xgr.allocate_token_bitmask(1, vocab_size)  # reused: one per request

    def mask(self, logits: torch.Tensor) -> None:
        """Sets the logits of every token the grammar forbids next to -inf, in place."""
        if self.matcher.fill_next_token_bitmask(self.bitmask):  # False: every token is allowed
            self._apply(logits.view(1, -1), self.bitmask)

    def accept(self, token: int) -> None:
        # The mask let only allowed tokens through: this fails when none was left finite.
        if not self.matcher.accept_token(token):
            raise RuntimeError(f"token {token} does not continue the grammar")

    @property
    def terminated(self) -> bool:
        return self.matcher.is_terminated()


class Sampler:
    """The state of one request's sampling: its generator, the token counts penalties need, its
    grammar state, and the logprob entries of sampled tokens not yet handed out."""

    def __init__(
        self,
        params: SamplingParams,
        prompt: list[int],
        vocab_size: int,
        *,
        tokenizer=None,
        stop_tokens=(),
    ) -> None:
        """`tokenizer`: what `params.grammar` compiles against (once per request, here);
        `stop_tokens`: the engine's end-of-sequence ids, see `GrammarState`."""
        self.params = params
        self.grammar = None
        if params.grammar is not None:  # first: an invalid grammar fails before anything else
            from llm_chat.grammar import compile_format

            compiled = compile_format(params.grammar, tokenizer, vocab_size)
            self.grammar = GrammarState(compiled, vocab_size, stop_tokens)
        if bad := [t for t in params.logit_bias if not 0 <= t < vocab_size]:
            raise ValueError(f"logit_bias names tokens outside the vocabulary: {bad[:5]}")
        self.bias_ids = torch.tensor(list(params.logit_bias), dtype=torch.long)
        self.bias = torch.tensor(list(params.logit_bias.values()), dtype=torch.float32)
        self.generator = torch.Generator()
        if params.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(params.seed)
        self.seen = torch.zeros(vocab_size, dtype=torch.bool)
        if prompt:
            self.seen[torch.tensor(prompt)] = True
        self.counts = torch.zeros(vocab_size)  # output tokens only
        self.logprobs: list[TokenLogprob] = []  # sampled tokens' entries, oldest first

    @property
    def terminated(self) -> bool:
        """The grammar took its stop token: the output is complete."""
        return self.grammar is not None and self.grammar.terminated

    def take_logprobs(self) -> list[TokenLogprob]:
        """The entries gathered since the last call (none when logprobs are off)."""
        taken, self.logprobs = self.logprobs, []
        return taken

    def drop_last_logprob(self) -> None:
        """The last token is not reported: an end-of-sequence token, as OpenAI leaves it out."""
        if self.logprobs:
            self.logprobs.pop()

    def __call__(self, logits: torch.Tensor) -> int:
        p = self.params
        logits = logits.float().clone()
        # Only when asked: a log-softmax over the vocabulary per token is not free.
        raw = torch.log_softmax(logits, -1) if p.logprobs is not None else None
        if p.logit_bias:
            logits[self.bias_ids] += self.bias
        if p.repetition_penalty != 1.0:
            picked = logits[self.seen]
            logits[self.seen] = torch.where(
                picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty
            )
        if p.presence_penalty or p.frequency_penalty:
            logits -= p.presence_penalty * (self.counts > 0) + p.frequency_penalty * self.counts
        if self.grammar is not None:
            self.grammar.mask(logits)
        greedy = p.temperature < MIN_TEMPERATURE
        token = int(logits.argmax()) if greedy else self._sample(logits / p.temperature)
        if self.grammar is not None:
            self.grammar.accept(token)
        self.seen[token] = True
        self.counts[token] += 1
        if raw is not None:
            self.logprobs.append(_entry(raw, token, p.logprobs))
        return token

    def _sample(self, logits: torch.Tensor) -> int:
        p = self.params
        if p.min_p > 0:
            # p_i < min_p * p_max, in log space: no softmax needed, and -inf stays dropped.
            logits[logits < logits.max() + math.log(p.min_p)] = float("-inf")
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


def _entry(raw: torch.Tensor, token: int, k: int) -> TokenLogprob:
    pairs: list[tuple[int, float]] = []
    if k:
        values, ids = torch.topk(raw, min(k, raw.numel()))  # sorted, likeliest first
        pairs = list(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(raw[token]), pairs)
