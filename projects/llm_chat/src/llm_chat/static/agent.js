// The demo page's agent: the tool-calling loop of llm_chat/agent.py, run in the browser against
// this server's /v1/chat/completions, with the same two tools. The loop lives here, not behind a
// new server route, so the chat server never fetches URLs a page hands it (no proxy to abuse)
// and the search service's API key stays in this browser. The search service must allow this
// page's origin (SEMANTIC_SEARCH_CORS_ORIGINS), as for any page calling it.
// Plain functions, no DOM: index.html wires them up, and node runs them in the tests.

const MAX_EXPRESSION_CHARS = 200;
const MAX_EXPONENT = 1000;

// The same specs as agent_tools.TOOLS (a test compares them).
const TOOLS = [
  { type: "function", function: {
    name: "search_wikipedia",
    description: "Search Wikipedia articles. Returns the best matching titles with a short snippet of each.",
    parameters: { type: "object", properties: { query: { type: "string", description: "what to look up", minLength: 1, maxLength: 200 } },
      required: ["query"], additionalProperties: false } } },
  { type: "function", function: {
    name: "calculator",
    description: "Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses, e.g. (3 + 4) * 2 ** 10.",
    parameters: { type: "object", properties: { expression: { type: "string", minLength: 1, maxLength: MAX_EXPRESSION_CHARS } },
      required: ["expression"], additionalProperties: false } } },
];
const SYSTEM = "You are a helpful assistant. Use the search_wikipedia tool to look facts up and the " +
  "calculator tool for arithmetic, then answer briefly from what the tools returned.";

class CalculatorError extends Error {}

// Arithmetic by a recursive-descent parser with Python's precedence (-2 ** 2 is -4; ** is right
// associative) and Python's // and %; never eval. JavaScript numbers are doubles, so integers past
// 2 ** 53 are approximate here where the Python tool is exact.
function calculate(expression) {
  if (expression.length > MAX_EXPRESSION_CHARS) {
    throw new CalculatorError(`expression too long: ${expression.length} characters, over the limit of ${MAX_EXPRESSION_CHARS}`);
  }
  const tokens = expression.match(/\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\*\*|\/\/|[-+*/%()]|\S/g) || [];
  let i = 0;
  const peek = () => tokens[i];
  const fail = (what) => {
    if (what === undefined) throw new CalculatorError("not an arithmetic expression: it ends too soon");
    const hint = what === "^" ? " (use ** for powers)" : what === "," ? " (no commas in numbers)"
      : /[A-Za-z_]/.test(what) ? " (only numbers, no names)" : "";
    throw new CalculatorError(`unsupported syntax: ${JSON.stringify(what)}${hint}`);
  };
  const finite = (v) => {
    if (Number.isNaN(v)) throw new CalculatorError("the result is not a real number");
    if (!Number.isFinite(v)) throw new CalculatorError("number too large for a float");
    return v;
  };
  function atom() {
    const t = tokens[i++];
    if (t === "(") { const v = sum(); if (tokens[i++] !== ")") fail(tokens[i - 1]); return v; }
    if (t !== undefined && /^[\d.]/.test(t)) return finite(Number(t));
    return fail(t);
  }
  function power() {
    const base = atom();
    if (peek() !== "**") return base;
    i++;
    const exponent = unary();
    if (Math.abs(exponent) > MAX_EXPONENT) throw new CalculatorError(`exponent ${exponent} is over the limit of ${MAX_EXPONENT}`);
    if (base === 0 && exponent < 0) throw new CalculatorError("division by zero");
    return finite(base ** exponent);
  }
  function unary() {
    if (peek() === "-") { i++; return -unary(); }
    if (peek() === "+") { i++; return +unary(); }
    return power();
  }
  function product() {
    let v = unary();
    while (["*", "/", "//", "%"].includes(peek())) {
      const op = tokens[i++], r = unary();
      if (op !== "*" && r === 0) throw new CalculatorError("division by zero");
      v = finite(op === "*" ? v * r : op === "/" ? v / r : op === "//" ? Math.floor(v / r) : v - r * Math.floor(v / r));
    }
    return v;
  }
  function sum() {
    let v = product();
    while (peek() === "+" || peek() === "-") v = finite(tokens[i++] === "+" ? v + product() : v - product());
    return v;
  }
  const value = sum();
  if (i < tokens.length) fail(tokens[i]);
  return value;
}

function formatNumber(v) {  // as Python's f"{v:.12g}" for what the tests compare
  return Number.isInteger(v) && Math.abs(v) < 1e15 ? String(v) : String(Number(v.toPrecision(12)));
}

const clip = (text, chars) => {
  text = text.replace(/\0/g, "").split(/\s+/).filter(Boolean).join(" ");
  return text.length <= chars ? text : text.slice(0, chars - 1).trimEnd() + "…";
};

async function searchWikipedia(args, { searchUrl, searchKey = "", k = 3, snippetChars = 300 }) {
  const query = args.query;
  if (typeof query !== "string" || !query.trim()) return 'error: search_wikipedia needs {"query": "<what to look up>"}';
  const headers = { "Content-Type": "application/json", ...(searchKey ? { Authorization: "Bearer " + searchKey } : {}) };
  let r;
  try {
    r = await fetch(searchUrl.replace(/\/+$/, "") + "/v1/search",
      { method: "POST", headers, body: JSON.stringify({ query: query.slice(0, 500), k }) });
  } catch (e) {  // a refused connection and a CORS refusal look the same to a page
    return `error: the search service at ${searchUrl} is unreachable (${e.message}; is it running, and does it allow this page's origin?)`;
  }
  const body = await r.json().catch(() => null);
  if (!r.ok) return `error: search failed with HTTP ${r.status}: ${body?.error?.message ?? r.statusText}`;
  const results = body?.results ?? [];
  if (!results.length) return `no Wikipedia article matches ${JSON.stringify(query)}`;
  return results.map((h, n) => `${n + 1}. ${clip(h.title, 100)}: ${clip(h.snippet, snippetChars)}`).join("\n");
}

// Every failure is the tool's result text, for the model to read; the loop goes on.
async function runTool(name, argumentsText, options) {
  let args;
  try { args = JSON.parse(argumentsText || "{}"); } catch (e) {
    return `error: the arguments are not valid JSON (${e.message}): ${JSON.stringify(String(argumentsText).slice(0, 200))}`;
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) return "error: the arguments must be a JSON object";
  if (name === "calculator") {
    if (typeof args.expression !== "string") return 'error: calculator needs {"expression": "<arithmetic>"}';
    try { return formatNumber(calculate(args.expression)); } catch (e) {
      if (e instanceof CalculatorError) return "error: " + e.message;
      throw e;
    }
  }
  if (name === "search_wikipedia") return searchWikipedia(args, options);
  return `error: unknown tool ${JSON.stringify(name)}; the tools are search_wikipedia and calculator`;
}

// The loop of agent.run_agent: the first call's tool_choice is `firstToolChoice`, the last one
// allowed "none", "auto" between. Errors of the chat API itself are thrown.
async function runAgent({ question, chatUrl = "/v1", headers = {}, model, maxSteps = 5, firstToolChoice = "auto",
                          maxTokens = 256, temperature = 0, system = SYSTEM, tools = {}, onStep = () => {} }) {
  const messages = system ? [{ role: "system", content: system }] : [];
  messages.push({ role: "user", content: question });
  for (let step = 0; step < maxSteps; step++) {
    const toolChoice = step === 0 ? firstToolChoice : step === maxSteps - 1 ? "none" : "auto";
    const r = await fetch(chatUrl + "/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify({ model, messages, tools: TOOLS, tool_choice: toolChoice, max_tokens: maxTokens, temperature }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body?.error?.message ?? `HTTP ${r.status}`);
    const message = body.choices[0].message;
    const calls = message.tool_calls || [];
    if (!calls.length) {
      messages.push({ role: "assistant", content: message.content ?? "" });
      onStep({ step: step + 1, kind: "answer", content: message.content ?? "" });
      return { answer: message.content ?? "", messages, modelCalls: step + 1, finish: "answer" };
    }
    messages.push({ role: "assistant", content: message.content ?? null, tool_calls: calls.map((c) => (
      { id: c.id, type: "function", function: { name: c.function.name, arguments: c.function.arguments } })) });
    for (const c of calls) {
      const result = await runTool(c.function.name, c.function.arguments, tools);
      messages.push({ role: "tool", tool_call_id: c.id, content: result });
      onStep({ step: step + 1, kind: "tool", name: c.function.name, arguments: c.function.arguments, result });
    }
  }
  return { answer: null, messages, modelCalls: maxSteps, finish: "max_steps" };
}

if (typeof module !== "undefined") module.exports = { TOOLS, SYSTEM, CalculatorError, calculate, formatNumber, runTool, runAgent };
