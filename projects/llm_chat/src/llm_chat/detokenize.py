"""Token ids -> text pieces for streaming, with stop sequences.

Decoding token by token breaks multi-byte characters and word-initial spaces, so we decode the
whole output and emit what grew, holding back an unfinished character (U+FFFD at the end) and
any tail that could still become a stop sequence. Text never goes out past a stop sequence."""


class TextStream:
    def __init__(self, tokenizer, stop: list[str]) -> None:
        self.tokenizer, self.stop = tokenizer, [s for s in stop if s]
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already emitted

    def push(self, token: int) -> tuple[str, bool]:
        """Adds one token; returns (text to emit now, whether a stop sequence was reached)."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for stop in self.stop:
            at = text.find(stop, max(0, self.sent - len(stop) + 1))
            if at != -1:
                piece, self.sent = text[self.sent : at], len(text)
                return piece, True
        end = len(text)
        if text.endswith("\ufffd"):
            end -= 1
        end -= self._partial_stop(text[:end])
        piece = text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return piece, False

    def flush(self) -> str:
        """What was held back, when the output ends without a stop sequence."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        piece = text[self.sent :].rstrip("\ufffd")
        self.sent = len(text)
        return piece

    def _partial_stop(self, text: str) -> int:
        """Length of the longest tail of `text` that begins some stop sequence."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
