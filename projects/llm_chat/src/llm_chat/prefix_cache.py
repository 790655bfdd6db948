"""Prefix caching over the engine's slots: a slot keeps the keys and values of the last request
that used it, so a new request takes the free slot whose tokens share the longest prefix with
its prompt and prefills only the rest. Multi-turn chats (each turn resends the history) and a
shared system prompt (the RAG chatbot's) skip most of their prefill.

The cache lives where the engine already keeps it (one slot per request, no paging), so a
prefix survives only until its slot is reused: a least-recently-used choice among equals."""

import itertools


def shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class SlotPrefixes:
    def __init__(self, slots: int, max_len: int) -> None:
        self.held: list[list[int]] = [[] for _ in range(slots)]  # tokens whose KV a slot holds
        self.max_len = max_len
        self._clock = itertools.count(1)  # 0: never used
        self._used = [0] * slots

    def pick(self, free: list[int], prompt: list[int]) -> int:
        """The free slot sharing the longest prefix with `prompt`; among equals, the one left
        longest ago (its prefix is the least likely to be asked for again)."""
        return max(free, key=lambda s: (shared_prefix(self.held[s], prompt), -self._used[s]))

    def take(self, slot: int, prompt: list[int]) -> int:
        """Prompt tokens already in `slot` (at least one is left to prefill: its logits give the
        first token). The slot's old tokens are forgotten: the prefill overwrites them."""
        reusable = min(shared_prefix(self.held[slot], prompt), len(prompt) - 1)
        self.held[slot] = []
        self._used[slot] = next(self._clock)
        return max(reusable, 0)

    def release(self, slot: int, fed: list[int]) -> None:
        """`fed`: the tokens whose keys and values the slot now holds, positions 0.. in order."""
        self.held[slot] = fed[: self.max_len - 1]  # the last position is for idle rows

    def idle_position(self, slot: int) -> int:
        """Where a free slot's dummy row in a batched decode writes: past what it holds, so
        the cached prefix is not overwritten."""
        return len(self.held[slot])
