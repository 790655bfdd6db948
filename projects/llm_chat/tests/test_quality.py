"""llm_chat.quality's fp32 reference: greedy answers generated in one left-padded batch are the
answers each prompt gets on its own."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_chat.quality import hf_greedy


def test_batched_reference_answers_equal_one_prompt_at_a_time(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    prompts = [[5, 6, 7], [11, 12, 13, 14, 15, 16, 17, 18], [40], [20, 21, 22, 23, 24]]
    batched = hf_greedy(model, tokenizer, prompts, 12)
    alone = [hf_greedy(model, tokenizer, [p], 12)[0] for p in prompts]
    assert batched == alone
    assert len({a for a in batched}) > 1  # different prompts, different answers: not all padding
