"""Token ids -> text pieces for streaming, with stop sequences.

Decoding token by token breaks multi-byte characters and word-initial spaces, so we decode with
context and emit what grew, holding back an unfinished character (U+FFFD at the end) and any
tail that could still become a stop sequence. Text never goes out past a stop sequence.

Decoding the whole output at every token cost O(n^2) on the engine thread, which every request
shares (8192 tokens: 7 s of decoding for one answer). Now each token decodes a window: the last
few settled tokens, for context, and the new ones; the text they add is the window's text past
the settled tokens' text. Where a tokenizer's cleanup makes the two disagree, it falls back to
decoding everything, as before."""

WINDOW = 6  # settled tokens decoded again for context (word-initial spaces, merges)


class TextStream:
    def __init__(self, tokenizer, stop: list[str]) -> None:
        self.tokenizer, self.stop = tokenizer, [s for s in stop if s]
        self.longest_stop = max((len(s) for s in self.stop), default=0)
        self.ids: list[int] = []
        self.settled = 0  # tokens whose text is final and in `self.text`
        self.text = ""  # the text of ids[:settled]
        self.sent = 0  # characters of the decoded text already emitted

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _full_text(self) -> str:
        """The text of every token so far; settles tokens once they end in a whole character."""
        start = max(0, self.settled - WINDOW)
        context = self._decode(self.ids[start : self.settled])
        window = self._decode(self.ids[start:])
        if not window.startswith(context):  # cleanup rewrote the boundary: decode it all
            text = self._decode(self.ids)
            if not text.endswith("\ufffd"):
                self.text, self.settled = text, len(self.ids)
            return text
        text = self.text + window[len(context) :]
        if not window.endswith("\ufffd"):
            self.text, self.settled = text, len(self.ids)
        return text

    def push(self, token: int) -> tuple[str, bool]:
        """Adds one token; returns (text to emit now, whether a stop sequence was reached)."""
        self.ids.append(token)
        text = self._full_text()
        for stop in self.stop:
            at = text.find(stop, max(0, self.sent - len(stop) + 1))
            if at != -1:
                piece, self.sent = text[self.sent : at], len(text)
                return piece, True
        end = len(text)
        if text.endswith("\ufffd"):
            end -= 1
        end -= self._partial_stop(text[max(self.sent, end - self.longest_stop) : end])
        piece = text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return piece, False

    def flush(self) -> str:
        """What was held back, when the output ends without a stop sequence."""
        text = self._full_text()
        piece = text[self.sent :].rstrip("\ufffd")
        self.sent = len(text)
        return piece

    def _partial_stop(self, tail: str) -> int:
        """Length of the longest end of `tail` that begins some stop sequence."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(tail)), longest, -1):
                if tail.endswith(stop[:n]):
                    longest = n
                    break
        return longest
