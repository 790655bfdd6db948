"""llama.cpp in bench_llm_chat.py (split from it): batch 1 through `llama-cpp-python`, where
`make llama-cpp` built it, on the same thread count as every other contender."""

import time
from pathlib import Path

GGUF = Path("models/llm_chat/gguf")  # `make llama-cpp`


def gguf_files() -> dict[str, Path]:
    """The GGUF files llama.cpp runs: the base model as `scripts/llama_cpp.sh` converts it (the
    same weights as every other contender, Q8_0 and F16), and the packaged Q4_1 they came from."""
    from llm_chat.convert import packaged_gguf

    files = {f"llama.cpp-{f.stem.removeprefix('model-')}": f for f in sorted(GGUF.glob("*.gguf"))}
    return files | {"llama.cpp-q4_1-packaged": packaged_gguf()}


def bench_llama_cpp(gguf: Path, prompts: list[str], tokens: int, threads: int, openings: list[str]):
    """Batch 1 through llama.cpp's own chat template and sampler (greedy); end of turn is
    banned, as it is ignored for every other contender, so each writes `tokens` tokens."""
    from llm_chat.backend_llama_cpp import load_llama

    llm = load_llama(gguf, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    # the GGUF's end-of-text and the chat template's end of turn
    ends = {llm.token_eos(), *llm.tokenize(b"<|im_end|>", add_bos=False, special=True)}
    no_eos = dict.fromkeys(ends, -1e9)
    rates, ttft, texts = [], [], []
    for text in prompts:
        messages = [{"role": "user", "content": text}]
        t0, first, count, out = time.perf_counter(), None, 0, ""
        chunks = llm.create_chat_completion(
            messages, max_tokens=tokens, temperature=0, stream=True, logit_bias=no_eos
        )
        for chunk in chunks:
            first = first or time.perf_counter()
            count += 1
            out += chunk["choices"][0]["delta"].get("content") or ""
        ttft.append(first - t0)
        rates.append((count - 1) / (time.perf_counter() - first))
        texts.append(out)
    same = [t.strip()[:24] == o.strip()[:24] for t, o in zip(texts, openings, strict=True)]
    return {
        "gguf": str(gguf),
        "threads": threads,  # n_threads and n_threads_batch
        "ttft_ms_p50": round(1000 * sorted(ttft)[len(ttft) // 2], 1),
        "opening_matches_hf": round(sum(same) / len(same), 2),
        "decode_tokens_per_s_b1": round(sum(rates) / len(rates), 1),
    }
