"""The output filter for structured output (`response_format` json_schema / json_object): PII is
masked inside JSON strings only, so the answer stays JSON.

Masking the text as a whole made `{"n": 4111111111111111}` into `{"n": [card]}` and a float's
digits (`0.123456789`) into `[phone]`: not JSON, against the schema the grammar had enforced.
Here a string's content is decoded (escapes included, so `\\u0040` is an `@`), masked as free
text is, and written back as it was except where a match was replaced by its placeholder
(`[email]`, `[phone]`, `[card]`: plain ASCII, valid inside a JSON string). Object keys are
strings too. Numbers, `true`, `false`, `null` and punctuation pass untouched: a JSON number is a
typed value the client asked for (an id, a timestamp in milliseconds, an amount), not text, and
no placeholder could stand for it; outside strings the grammar admits nothing else.

A masked string can still break the schema (a `format: email`, a `pattern`, a `maxLength`, an
`enum`): the route then checks the masked answer against the grammar and ends it with
`finish_reason: content_filter` if it no longer follows it (responses.py). So does a masked key
equal to an earlier key of its object (`{"555-123-4567": 1, "555-987-6543": 2}` would be
`{"[phone]": 1, "[phone]": 2}`, whose second value a client's JSON parser keeps silently):
`collided`. Unique placeholders (`[phone2]`) were the other way, but a placeholder a client
cannot recognise, still no answer the schema's names foresaw: the answer says it was filtered.
A blocked topic refuses as in free text; the caller sends the refusal in OpenAI's `refusal`
field, never as the content. Tool-call arguments are not screened here (nor anywhere): they go
to the client's code, as the grammar wrote them.

Streamed as free text is: the last `HOLD` characters of an open string wait for the next piece
(never cutting through a match), so a split number is caught whole; the rest of the JSON passes
at once. A whole answer is screened as one push, so both ways apply the same function.
"""

import re

from llm_chat import metrics
from llm_chat.safety import PII, OutputStream, SafetyFilter

_SPECIAL = re.compile(r'["\\]')  # what ends a run of string content: its end, an escape
_STRUCTURE = re.compile(r"[{}\[\],:]")  # outside strings: what says whether a string is a key
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _decode(escape: str) -> str:
    """One complete escape (`\\n`, `\\u00e9`) as the character it stands for."""
    if escape[1] != "u":
        return _ESCAPES.get(escape[1], "\ufffd")
    try:
        return chr(int(escape[2:], 16))
    except ValueError:  # never under the grammar; only matching reads it
        return "\ufffd"


def _mask(chars: list[str], raws: list[str]) -> tuple[str, str, bool]:
    """(the string content as written, with each PII match replaced by its placeholder; the same
    decoded; whether any was). `chars[i]` is the i-th decoded character, `raws[i]` how it was
    written. The patterns apply in turn, as `SafetyFilter.mask` applies them to free text."""
    changed = False
    for kind, pattern in PII:
        text = "".join(chars)
        if not pattern.search(text):
            continue
        changed = True
        placeholder = list(f"[{kind}]")
        new_chars: list[str] = []
        new_raws: list[str] = []
        last = 0
        for match in pattern.finditer(text):
            new_chars += chars[last : match.start()] + placeholder
            new_raws += raws[last : match.start()] + placeholder
            last = match.end()
        chars, raws = new_chars + chars[last:], new_raws + raws[last:]
    return "".join(raws), "".join(chars), changed


class _Object:
    """An open JSON object: its keys so far, as generated and as masked."""

    def __init__(self) -> None:
        self.at_key = True  # the next string is a key (after `{` or `,`)
        self.generated: set[str] = set()
        self.masked: set[str] = set()


class JSONOutputStream:
    """Screens JSON text as it streams. `push` returns (text to send, refused); on a refusal
    the text is empty and the caller sends `REFUSAL` as the answer's `refusal`. `masked`: some
    PII was masked (the route then checks the answer against its grammar)."""

    HOLD = OutputStream.HOLD

    def __init__(self, safety: SafetyFilter) -> None:
        self.safety = safety
        self.active = safety.redact_pii or safety.blocked is not None
        self.in_string, self.escape = False, ""  # escape: one cut between pieces
        self.chars: list[str] = []  # the open string's held content, decoded
        self.raws: list[str] = []  # the same characters as written
        self.masked = self.refused = False
        # a masked key equal to an earlier one of its object (see above): the route ends the
        # answer with content_filter
        self.collided = False
        self.open: list[_Object | None] = []  # the open objects and arrays (None), innermost last
        self.key: tuple[list[str], list[str]] | None = None  # an open key: generated, masked

    def push(self, text: str, *, final: bool = False) -> tuple[str, bool]:
        if not self.active:
            return text, False
        out: list[str] = []
        i = 0
        while i < len(text):
            if self.escape:
                self.escape += text[i]
                i += 1
                if len(self.escape) == (6 if self.escape[1] == "u" else 2):
                    self.chars.append(_decode(self.escape))
                    self.raws.append(self.escape)
                    self.escape = ""
            elif not self.in_string:
                quote = text.find('"', i)
                end = len(text) if quote < 0 else quote + 1
                out.append(text[i:end])
                self._structure(text, i, end)
                self.in_string, i = quote >= 0, end
                top = self.open[-1] if self.open else None
                if self.in_string and top is not None and top.at_key:
                    self.key = ([], [])
            elif text[i] == '"':
                out.append(self._release(len(self.chars)) + '"')
                self.in_string, i = False, i + 1
                self._end_key()
            elif text[i] == "\\":
                self.escape, i = "\\", i + 1
            else:
                special = _SPECIAL.search(text, i)
                end = special.start() if special else len(text)
                self.chars += text[i:end]
                self.raws += text[i:end]
                i = end
            if self.refused:
                return "", True
        if self.in_string:
            out.append(self._release(len(self.chars) if final else self._cut()))
        if final:
            out.append(self.escape)  # an escape cut short by max_tokens, as written
        return ("", True) if self.refused else ("".join(out), False)

    def _structure(self, text: str, start: int, end: int) -> None:
        """Follows the objects and arrays opened and closed in `text[start:end]` (no string)."""
        for match in _STRUCTURE.finditer(text, start, end):
            mark, top = match.group(), self.open[-1] if self.open else None
            if mark in "{[":
                self.open.append(_Object() if mark == "{" else None)
            elif mark in "}]":
                if self.open:
                    self.open.pop()
            elif top is not None:
                top.at_key = mark == ","

    def _end_key(self) -> None:
        if self.key is None:
            return
        generated, masked = ("".join(parts) for parts in self.key)
        self.key, top = None, self.open[-1]
        if top is not None:
            if masked in top.masked and generated not in top.generated:
                self.collided = True
            top.generated.add(generated)
            top.masked.add(masked)
            top.at_key = False

    def _cut(self) -> int:
        """Where the held string may be cut: `HOLD` characters back, never inside a match."""
        text = "".join(self.chars)
        cut = max(0, len(text) - self.HOLD)
        patterns = [p for _, p in PII] + ([self.safety.blocked] if self.safety.blocked else [])
        moved = True
        while moved:  # a cut moved back may now fall inside another pattern's match
            moved = False
            for pattern in patterns:
                for match in pattern.finditer(text):
                    if match.start() < cut < match.end():
                        cut, moved = match.start(), True
        return cut

    def _release(self, cut: int) -> str:
        """The held string's first `cut` characters, screened, as JSON string content."""
        chars, raws = self.chars[:cut], self.raws[:cut]
        del self.chars[:cut], self.raws[:cut]
        blocked = self.safety.blocked
        if blocked and blocked.search("".join(chars)):
            metrics.REFUSED.labels("blocked_topic", "output").inc()
            self.refused = True
            return ""
        if not self.safety.redact_pii:
            return "".join(raws)
        text, decoded, changed = _mask(chars, raws)
        self.masked |= changed
        if self.key is not None:
            self.key[0].append("".join(chars))
            self.key[1].append(decoded)
        return text


def screen_json(safety: SafetyFilter, text: str) -> tuple[str, bool, bool, bool]:
    """A whole JSON answer screened: (text to send, refused, some PII masked, a masked key equal
    to another of its object)."""
    screen = JSONOutputStream(safety)
    out, refused = screen.push(text, final=True)
    return out, refused, screen.masked, screen.collided
