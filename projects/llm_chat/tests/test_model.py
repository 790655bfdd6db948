"""The native Llama against transformers on the same weights, and continuous batching against
one-at-a-time decoding: the tokens must not depend on what else is in the batch."""

import pytest
import torch

from llm_chat.backends import NativeBackend, TransformersBackend, load_backend
from llm_chat.model import LlamaConfig


def greedy(backend, prompts: list[list[int]], steps: int, stagger: bool = False) -> list[list[int]]:
    """Greedy tokens for each prompt, all decoding together in slots 0..n-1. With `stagger`,
    prompt i joins the batch at step i (as requests arrive while others run)."""
    out: list[list[int]] = [[] for _ in prompts]
    joined = [False] * len(prompts)
    for step in range(steps + len(prompts)):
        for i, prompt in enumerate(prompts):
            if not joined[i] and (not stagger or step >= i):
                out[i].append(int(backend.prefill(i, prompt).argmax()))
                joined[i] = True
        active = [i for i in range(len(prompts)) if joined[i] and len(out[i]) < steps]
        if not active:
            break
        tokens = [out[i][-1] if i in active else 0 for i in range(len(prompts))]
        positions = [
            len(prompts[i]) + len(out[i]) - 1 if i in active else 0 for i in range(len(prompts))
        ]
        logits = backend.decode(tokens, positions)
        for i in active:
            out[i].append(int(logits[i].argmax()))
    return out


PROMPTS = [[5, 17, 42, 9], [300, 2, 77, 123, 64, 8, 19, 250, 11], [99], [7, 7, 7, 7, 7, 7]]


@pytest.fixture(scope="module")
def tied_llama(tmp_path_factory):
    """Tied input and output embeddings, as SmolLM2 has; a different head count too."""
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("tied")
    config = HFConfig(
        vocab_size=400,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=3,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.mark.parametrize("folder", ["tiny_llama", "tied_llama"])
def test_native_matches_transformers_generate(folder, request):
    from transformers import AutoModelForCausalLM

    model_dir = request.getfixturevalue(folder)
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    native = NativeBackend(model_dir, slots=1, max_len=128)
    for prompt in PROMPTS:
        with torch.inference_mode():
            expected = reference.generate(
                torch.tensor([prompt]),
                max_new_tokens=12,
                do_sample=False,
                min_new_tokens=12,
                pad_token_id=0,
            )[0, len(prompt) :]
        assert greedy(native, [prompt], 12)[0] == expected.tolist()


@pytest.mark.parametrize("backend", [NativeBackend, TransformersBackend])
def test_batched_decoding_matches_one_at_a_time(tiny_llama, backend):
    alone = [greedy(backend(tiny_llama, slots=1, max_len=64), [p], 10)[0] for p in PROMPTS]
    batch = backend(tiny_llama, slots=len(PROMPTS), max_len=64)
    assert greedy(batch, PROMPTS, 10) == alone
    assert greedy(batch, PROMPTS, 10, stagger=True) == alone  # slots reused, joined mid-flight


def test_int8_backend_decodes_close_to_fp32(tiny_llama):
    fp32 = NativeBackend(tiny_llama, slots=1, max_len=64)
    int8 = NativeBackend(tiny_llama, slots=1, max_len=64, int8=True)
    assert int8.name == "native-int8"
    a, b = fp32.prefill(0, PROMPTS[1]), int8.prefill(0, PROMPTS[1])
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99
    assert int(a.argmax()) == int(b.argmax())


def test_auto_backend_and_unsupported_configs(tiny_llama, tmp_path):
    assert load_backend("auto", tiny_llama, slots=1, max_len=32).name == "native"
    config = (tiny_llama / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace('"llama"', '"gpt2"'))
    with pytest.raises(ValueError, match="native backend runs"):
        LlamaConfig.from_folder(tmp_path)
    with pytest.raises(ValueError, match="backend must be"):
        load_backend("vllm", tiny_llama, slots=1, max_len=32)


@pytest.fixture(scope="module")
def onnx_dir(tiny_llama, tmp_path_factory):
    from llm_chat.onnx_export import export

    out = tmp_path_factory.mktemp("onnx")
    report = export(tiny_llama, out)
    assert set(report["files"]) == {"fp32", "int8"}
    return out


def test_onnx_greedy_tokens_match_pytorch(tiny_llama, onnx_dir):
    torch_backend = NativeBackend(tiny_llama, slots=len(PROMPTS), max_len=64)
    onnx = load_backend("onnx", tiny_llama, slots=len(PROMPTS), max_len=64, onnx_dir=onnx_dir)
    assert greedy(onnx, PROMPTS, 10, stagger=True) == greedy(torch_backend, PROMPTS, 10)
    int8 = load_backend("onnx-int8", tiny_llama, slots=1, max_len=64, onnx_dir=onnx_dir)
    a, b = torch_backend.prefill(0, PROMPTS[1]), int8.prefill(0, PROMPTS[1])
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.99
