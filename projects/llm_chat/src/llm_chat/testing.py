"""Test helpers other projects reuse: a tiny Llama (2 layers, 64 wide, random weights) saved as
a Hugging Face folder with a byte-level BPE tokenizer trained here on real text and a ChatML chat
template, like SmolLM2's."""

from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


TEXT = """Paris is the capital and largest city of France, on the Seine.
The Mona Lisa is a portrait painted by Leonardo da Vinci in the early sixteenth century.
Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.
A prime number has exactly two divisors: one and itself. 2, 3, 5, 7 and 11 are primes.
The Pacific is the largest and deepest of the world's five oceans.
Johann Sebastian Bach wrote the Brandenburg Concertos and the Mass in B minor.
Contact me at jane.doe@example.com or +1 555 010 9999 before 10:30!
Grüße aus Köln: café, naïve, 東京, €5, emoji 🙂, and "quotes" (brackets) [x] {y}.
def add(a, b):\n    return a + b  # Python code, indented
The quick brown fox jumps over the lazy dog; numbers 0123456789."""


def save_tiny_llama(out: Path, *, vocab: int = 400) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = TEXT.split("\n") * 4
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    # Untied: with tied random embeddings the likeliest next token is always the last one.
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def tiny_settings(model_dir: Path, **overrides):
    """Service settings for the tiny Llama: small context and outputs so tests stay fast."""
    from llm_chat.service import Settings

    defaults = {
        "model_dir": model_dir,
        "model_name": "tiny-llama",
        "slots": 4,
        "context_tokens": 512,
        "default_max_tokens": 24,
        "threads": 1,
    }
    return Settings(**(defaults | overrides))


def tiny_app(model_dir: Path | None = None, **overrides):
    """The real service (`build_app`) on the tiny Llama, saved to a temporary folder when
    `model_dir` is None. Serve it with uvicorn or `mlstack.testing.live_server`."""
    import tempfile

    from llm_chat.service import build_app

    if model_dir is None:
        model_dir = save_tiny_llama(Path(tempfile.mkdtemp(prefix="tiny-llama-")))
    return build_app(tiny_settings(model_dir, **overrides))


def served_app(folder: Path, api_key: str | None):
    """The service on the tiny Llama saved in `folder/tiny-llama` (saved there once)."""
    model_dir = folder / "tiny-llama"
    if not (model_dir / "config.json").exists():
        save_tiny_llama(model_dir)
    return tiny_app(model_dir, api_key=api_key)


def main() -> None:
    """`python -m llm_chat.testing FOLDER --port P [--api-key K]`: the service on the tiny Llama,
    saved in FOLDER (the same command shape as the other projects' testing modules)."""
    from mlstack.testing import serve_tiny

    serve_tiny("Serve LLM chat on a tiny random Llama.", 8003, served_app)


if __name__ == "__main__":
    main()
