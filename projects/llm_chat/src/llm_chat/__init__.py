"""An OpenAI-compatible chat server: a Llama-family model with a slot KV cache decoded with
continuous batching (model.py, engine.py), sampling (sampling.py), safety filters (safety.py)."""
