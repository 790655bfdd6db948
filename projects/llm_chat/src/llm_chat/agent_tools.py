"""The agent's two tools, as OpenAI function specs and as code: `calculator` (arithmetic over
Python's `ast`, never `eval`) and `search_wikipedia` (the semantic search service over HTTP).

Whatever goes wrong in a tool (arguments that are not JSON, as small models write them, an
unknown tool, a search service that is down) comes back as the tool's result text, starting
with "error:", so the model can read it and the loop goes on."""

import ast
import json
import math
import operator
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096  # ~1,233 digits: past this a few nested powers would take seconds and MBs
MAX_QUERY_CHARS = 500

TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "search_wikipedia",
            "description": "Search Wikipedia articles. Returns the best matching titles with a "
            "short snippet of each.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "what to look up",
                        "minLength": 1,
                        "maxLength": 200,
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression: numbers, + - * / // % ** and "
            "parentheses, e.g. (3 + 4) * 2 ** 10.",
            "parameters": {
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_EXPRESSION_CHARS,
                    },
                },
                "required": ["expression"],
                "additionalProperties": False,
            },
        },
    },
]


class CalculatorError(ValueError):
    """An expression the calculator refuses; the message says why, for the model to read."""


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_HINTS = {
    ast.BitXor: " (use ** for powers)",
    ast.Tuple: " (no commas in numbers)",
    ast.Name: " (only numbers, no names)",
    ast.Call: " (only numbers and operators)",
    ast.Attribute: " (only numbers and operators)",
}


def _check_size(value: int | float) -> int | float:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError(f"number too large (over {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("number too large for a float")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is over the limit of {MAX_EXPONENT}")
    # Refuse before computing, or 99 ** 999 builds the huge int first; bit_length * exponent is
    # an upper bound on the result's bits (a negative exponent makes a float: 0 bits here).
    ints = isinstance(base, int) and isinstance(exponent, int)
    if ints and base.bit_length() * exponent > MAX_INT_BITS:
        raise CalculatorError(f"number too large (over {MAX_INT_BITS} bits)")
    result = base**exponent
    if isinstance(result, complex):  # (-8) ** 0.5
        raise CalculatorError("the result is not a real number")
    return result


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        # bool is an int subclass, and True + True is not arithmetic anyone asked for.
        if type(node.value) in (int, float):
            return _check_size(node.value)
        raise CalculatorError(f"unsupported constant {node.value!r}: only numbers")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        try:
            if isinstance(node.op, ast.Pow):
                return _check_size(_power(left, right))
            return _check_size(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:  # 1 / 0, 1 % 0, and 0 ** -1 too
            raise CalculatorError("division by zero") from None
    kind = type(getattr(node, "op", node))
    raise CalculatorError(f"unsupported syntax: {kind.__name__}{_HINTS.get(kind, '')}")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression, or CalculatorError saying why not."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(
            f"expression too long: {len(expression)} characters, over the "
            f"limit of {MAX_EXPRESSION_CHARS}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not an arithmetic expression: {e.msg}") from None
    try:  # the length limit bounds the nesting, so _eval's recursion too
        return _eval(tree)
    except OverflowError:  # float ** float past 1e308
        raise CalculatorError("number too large for a float") from None


def format_number(value: int | float) -> str:
    return f"{value:.12g}" if isinstance(value, float) else str(value)


@dataclass
class Toolbox:
    """Runs the tools the model asks for. `search_url` is the semantic search service's base URL
    (e.g. http://127.0.0.1:8002); its API key, when it has one, goes as a Bearer token."""

    search_url: str = "http://127.0.0.1:8002"
    search_api_key: str | None = None
    k: int = 3
    snippet_chars: int = 300
    timeout_s: float = 10.0

    def run(self, name: str, arguments: str) -> str:
        """The tool's result as text; every failure is an "error: ..." text, never an exception."""
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as e:
            return f"error: the arguments are not valid JSON ({e.msg}): {arguments[:200]!r}"
        if not isinstance(args, dict):
            return "error: the arguments must be a JSON object"
        if name == "calculator":
            return self._calculator(args)
        if name == "search_wikipedia":
            return self._search(args)
        return f"error: unknown tool {name!r}; the tools are search_wikipedia and calculator"

    def _calculator(self, args: dict[str, Any]) -> str:
        expression = args.get("expression")
        if not isinstance(expression, str):
            return 'error: calculator needs {"expression": "<arithmetic>"}'
        try:
            return format_number(calculate(expression))
        except CalculatorError as e:
            return f"error: {e}"

    def _search(self, args: dict[str, Any]) -> str:
        import httpx

        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            return 'error: search_wikipedia needs {"query": "<what to look up>"}'
        headers = {"Authorization": f"Bearer {self.search_api_key}"} if self.search_api_key else {}
        url = self.search_url.rstrip("/") + "/v1/search"
        body = {"query": query[:MAX_QUERY_CHARS], "k": self.k}
        try:
            r = httpx.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            return f"error: the search service at {self.search_url} is unreachable ({e})"
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            return f"error: search failed with HTTP {r.status_code}: {message}"
        results = r.json().get("results", [])
        if not results:
            return f"no Wikipedia article matches {query!r}"
        return "\n".join(
            f"{i}. {_clip(h['title'], 100)}: {_clip(h['snippet'], self.snippet_chars)}"
            for i, h in enumerate(results, 1)
        )


def _clip(text: str, chars: int) -> str:
    # NUL is the one character chat servers refuse in a message (ours answers 422).
    text = " ".join(text.replace("\x00", "").split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"
