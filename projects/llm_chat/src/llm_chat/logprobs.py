"""Log-probabilities in OpenAI's two shapes: chat's `{"content": [{token, logprob, bytes,
top_logprobs}]}` and completions' `{tokens, token_logprobs, top_logprobs, text_offset}`.

A token's text is its bytes decoded (a token that holds part of a UTF-8 character shows U+FFFD,
its `bytes` stay exact): byte-level tokens decode alone to what they add to the text."""

from functools import lru_cache

from llm_chat.engine_api import TokenLogprob


@lru_cache(maxsize=4)
def vocabulary_bytes(tokenizer) -> tuple[bytes, ...]:
    """Each token id's bytes (xgrammar's decoding of the vocabulary, the grammar's view too)."""
    import xgrammar as xgr

    return tuple(xgr.TokenizerInfo.from_huggingface(tokenizer).decoded_vocab)


class TokenText:
    def __init__(self, tokenizer) -> None:
        self.vocab = vocabulary_bytes(tokenizer)

    def bytes(self, token: int) -> bytes:
        return self.vocab[token] if 0 <= token < len(self.vocab) else b""

    def text(self, token: int) -> str:
        return self.bytes(token).decode("utf-8", errors="replace")

    def chat(self, entries: list[TokenLogprob]) -> list[dict]:
        def one(token: int, logprob: float) -> dict:
            return {"token": self.text(token), "logprob": logprob, "bytes": list(self.bytes(token))}

        return [
            {**one(e.token, e.logprob), "top_logprobs": [one(t, lp) for t, lp in e.top]}
            for e in entries
        ]

    def completion(self, entries: list[TokenLogprob], offset: int) -> dict:
        """`offset`: where the first entry's text starts in the choice's text."""
        tokens = [self.text(e.token) for e in entries]
        offsets = []
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        top = [{self.text(t): lp for t, lp in e.top} for e in entries]
        return {
            "tokens": tokens,
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": top,
            "text_offset": offsets,
        }
