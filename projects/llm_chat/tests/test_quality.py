"""llm_chat.quality's fp32 reference: greedy answers generated in one left-padded batch are the
answers each prompt gets on its own, a row that ends early included."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_chat.quality import hf_greedy

PROMPTS = [[5, 6, 7], [11, 12, 13, 14, 15, 16, 17, 18], [40], [20, 21, 22, 23, 24]]


def load(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), tokenizer


def test_batched_reference_answers_equal_one_prompt_at_a_time(tiny_llama):
    model, tokenizer = load(tiny_llama)
    batched = hf_greedy(model, tokenizer, PROMPTS, 12)
    assert batched == [hf_greedy(model, tokenizer, [p], 12)[0] for p in PROMPTS]
    assert len(set(batched)) > 1  # different prompts, different answers: not all padding


def test_a_row_that_stops_early_keeps_its_own_answer(tiny_llama):
    model, tokenizer = load(tiny_llama)
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([PROMPTS[1]]), max_new_tokens=3, do_sample=False, pad_token_id=0
        )
    # the third token this prompt generates becomes the end of sequence: its row finishes
    # while the others go on, and is filled with pads after it
    model.generation_config.eos_token_id = int(out[0, -1])
    batched = hf_greedy(model, tokenizer, PROMPTS, 12)
    alone = [hf_greedy(model, tokenizer, [p], 12)[0] for p in PROMPTS]
    assert batched == alone
    # it stopped at that token; a longer-running row went on past three tokens
    first_three = tokenizer.decode(out[0, len(PROMPTS[1]) :], skip_special_tokens=True)
    assert alone[1] == first_three and len(max(alone, key=len)) > len(first_three)
