"""Chunked prefill in the native engine: a prompt whose uncached rest exceeds `chunk_tokens` takes
its slot at admission without being prefilled, then each turn of the engine's loop prefills one
chunk of it (the oldest such request's) before the batched decode step. The running streams so
wait for one chunk between two tokens instead of a whole prompt (a 1,500-token one takes hundreds
of milliseconds on 2 cores). It needs a backend whose prefill continues a slot from `start`.

While it prefills, the request holds its slot (`load()` counts it as running) and its `position`
is the next prompt token to write; the batched decode gives the slot a dummy row there, which the
next chunk overwrites. Its last chunk's logits give the first token, as a one-pass prefill's do."""

import logging

log = logging.getLogger("llm_chat.engine")


def prefill_chunk(engine) -> None:
    """Ends the prefilling requests that were cancelled (their slots are free for this turn's
    decode), then prefills one chunk of the oldest other one. A failing chunk (or first-token
    sampling) ends its own request with an error; the batch goes on."""
    if not engine.chunk_tokens:
        return
    prefilling = [
        (r.request.id, slot)
        for slot, r in enumerate(engine._slots)
        if r is not None and r.prefilling
    ]
    for _, slot in prefilling:
        if engine._slots[slot].request.cancelled:
            engine._finish(slot, "cancelled")
    left = [(rid, slot) for rid, slot in prefilling if engine._slots[slot] is not None]
    if not left:
        return
    _, slot = min(left)  # ids are given in submission order, which is admission order
    running = engine._slots[slot]
    prompt, start = running.request.prompt, running.position
    end = min(start + engine.chunk_tokens, len(prompt))
    try:
        logits = engine.backend.prefill(slot, prompt[start:end], start=start)
        first = running.sampler(logits) if end == len(prompt) else None
    except Exception:
        log.exception("request %d: prefill failed at prompt token %d", running.request.id, start)
        engine._finish(slot, "error")  # drops the slot's prefix: its keys are not to be trusted
        return
    running.position, running.fed = end, prompt[:end]
    if first is None:
        return
    running.token = first
    engine.observer.prefix_cache(len(prompt), running.cached)
    engine._started(slot, running)
