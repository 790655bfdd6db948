"""Input and output filters: blocked topics refuse, personal data is masked, and a heuristic
catches the common prompt-injection phrasings. Deliberately simple and fast (regular
expressions, no model); every refusal is counted in `llm_refusals_total{filter, side}`.

Input: a blocked topic or an injection attempt in a user message -> 400 `input_refused`; e-mail
addresses, phone and card numbers are masked before the model sees them.
Output: the same masking; a blocked topic ends the answer with finish_reason `content_filter`.
A JSON answer (`response_format`) is screened by safety_json.py instead: inside strings only.
"""

import re

from llm_chat import metrics
from mlstack.serve import APIError

# Every pattern runs on user text in linear time. The e-mail pattern only starts at the start of
# a run of address characters (the lookbehind): without it, a run of n such characters with no
# `@` was rescanned from each of its n positions (40k characters took 6 s). The other patterns
# have bounded repetitions or alternate between disjoint character classes.
PII = [
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("phone", re.compile(r"(?<![\w])\+?\d(?:[\s().-]?\d){7,14}\b")),
]
INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*"
    r"(?:previous|prior|above|earlier|system)\s+(?:instructions|prompts?|rules|messages)"
    r"|\b(?:reveal|show|print|repeat|leak)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions)"
    r"|\byou\s+are\s+now\s+(?:DAN|in\s+developer\s+mode|jailbroken)\b",
    re.IGNORECASE,
)
REFUSAL = "I can't help with that topic."


class SafetyFilter:
    def __init__(
        self, *, blocked_topics: list[str], redact_pii: bool = True, refuse_injection: bool = True
    ) -> None:
        words = [re.escape(t.strip()) for t in blocked_topics if t.strip()]
        self.blocked = re.compile(r"\b(?:" + "|".join(words) + r")\b", re.I) if words else None
        self.redact_pii, self.refuse_injection = redact_pii, refuse_injection

    def mask(self, text: str) -> str:
        if self.redact_pii:
            for kind, pattern in PII:
                text = pattern.sub(f"[{kind}]", text)
        return text

    def _refuse(self, name: str, message: str, param: str):
        metrics.REFUSED.labels(name, "input").inc()
        raise APIError(400, "input_refused", message, param=param)

    def screen_input(self, body):
        """The request with PII masked, or a 400 naming the filter that refused it."""
        if hasattr(body, "messages"):
            texts = [
                (f"messages[{i}].content", m.role, m.text()) for i, m in enumerate(body.messages)
            ]
        else:
            texts = [("prompt", "user", body.prompt)]
        for param, role, text in texts:
            if self.blocked and (hit := self.blocked.search(text)):
                self._refuse("blocked_topic", f"the topic {hit.group(0)!r} is blocked here", param)
            if self.refuse_injection and role == "user" and INJECTION.search(text):
                self._refuse(
                    "prompt_injection",
                    "this looks like a prompt-injection attempt "
                    "(instructions to ignore or reveal the system prompt)",
                    param,
                )
        if not self.redact_pii:
            return body
        if hasattr(body, "messages"):
            messages = [
                m.model_copy(update={"content": self.mask(m.text())}) for m in body.messages
            ]
            return body.model_copy(update={"messages": messages})
        return body.model_copy(update={"prompt": self.mask(body.prompt)})

    def screen_output(self, text: str) -> tuple[str, bool]:
        """(text to send, refused): a blocked topic replaces the answer with a refusal."""
        if self.blocked and self.blocked.search(text):
            metrics.REFUSED.labels("blocked_topic", "output").inc()
            return REFUSAL, True
        return self.mask(text), False

    def output_stream(self) -> "OutputStream":
        return OutputStream(self)


class OutputStream:
    """Screens streamed text. The last `HOLD` characters wait for the next piece (never cutting
    through a match), so an e-mail, a number or a blocked word split across tokens is caught
    whole. Without filters configured, text passes straight through."""

    HOLD = 48

    def __init__(self, safety: SafetyFilter) -> None:
        self.safety, self.pending = safety, ""
        self.active = safety.redact_pii or safety.blocked is not None

    def push(self, text: str, *, final: bool = False) -> tuple[str, bool]:
        if not self.active:
            return text, False
        buffer = self.pending + text
        cut = len(buffer) if final else max(0, len(buffer) - self.HOLD)
        patterns = [p for _, p in PII] + ([self.safety.blocked] if self.safety.blocked else [])
        for pattern in patterns:
            for match in pattern.finditer(buffer):
                if match.start() < cut < match.end():
                    cut = match.start()
        ready, self.pending = buffer[:cut], buffer[cut:]
        if self.safety.blocked and self.safety.blocked.search(ready):
            metrics.REFUSED.labels("blocked_topic", "output").inc()
            return "\n" + REFUSAL, True
        return self.safety.mask(ready), False
