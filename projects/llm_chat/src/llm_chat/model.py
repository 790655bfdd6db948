"""A Llama-family decoder (Llama 2/3, SmolLM, Mistral without sliding window) in one file, with a
slot KV cache built for continuous batching.

Every running request owns one slot of a preallocated cache. A decode step feeds one token for
each of slots 0..n-1 at that slot's own position, so requests that started at different times
and have different lengths decode in one batched forward pass; a finished request frees its
slot for the next one in the queue. Weights load from a Hugging Face folder (safetensors).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("llama", "mistral")


@dataclass
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    head_dim: int | None = None

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @classmethod
    def from_folder(cls, path: str | Path) -> "LlamaConfig":
        raw = json.loads((Path(path) / "config.json").read_text())
        if raw.get("model_type") not in SUPPORTED:
            raise ValueError(
                f"native backend runs {SUPPORTED} models, not {raw.get('model_type')!r}"
            )
        if raw.get("rope_scaling") or raw.get("sliding_window"):
            raise ValueError(
                "rope scaling and sliding-window attention need the transformers backend"
            )
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in fields and v is not None})


class KVCache:
    """Keys and values per layer: (slots, kv_heads, max_len, head_dim)."""

    def __init__(self, config: LlamaConfig, slots: int, max_len: int, dtype=torch.float32) -> None:
        shape = (slots, config.num_key_value_heads, max_len, config.dim_per_head)
        self.keys = [torch.zeros(shape, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.slots, self.max_len = slots, max_len


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (
            c.num_attention_heads,
            c.num_key_value_heads,
            c.dim_per_head,
        )
        self.q_proj = nn.Linear(c.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache_k, cache_v, positions, mask) -> torch.Tensor:
        """x: (B, T, hidden); cache_k/v: this batch's slots (B, kv_heads, max_len, d);
        positions: (B, T) absolute positions, where this step's keys and values are written."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        rows = torch.arange(b)[:, None]
        cache_k[rows, :, positions] = k.transpose(1, 2)
        cache_v[rows, :, positions] = v.transpose(1, 2)
        span = mask.shape[-1]  # keys up to the furthest position in the batch
        out = F.scaled_dot_product_attention(
            q, cache_k[:, :, :span], cache_v[:, :, :span], attn_mask=mask, enable_gqa=True
        )
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, cache_k, cache_v, positions, mask) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache_k, cache_v, positions, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        d = config.dim_per_head
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2).float() / d))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @classmethod
    def from_folder(cls, path: str | Path) -> "Llama":
        """Loads `model.safetensors` (or shards) of a Hugging Face Llama-family folder."""
        from safetensors.torch import load_file

        model = cls(LlamaConfig.from_folder(path))
        state = {}
        for file in sorted(Path(path).glob("*.safetensors")):
            state |= {k.removeprefix("model."): v.float() for k, v in load_file(file).items()}
        if "lm_head.weight" not in state and model.config.tie_word_embeddings:
            state["lm_head.weight"] = state["embed_tokens.weight"]
        model.load_state_dict(state, strict=True)
        return model.eval()

    def new_cache(self, slots: int, max_len: int) -> KVCache:
        return KVCache(self.config, slots, max_len)

    @torch.inference_mode()
    def forward(
        self, tokens: torch.Tensor, cache: KVCache, first_slot: int, start: torch.Tensor
    ) -> torch.Tensor:
        """Runs `tokens` (B, T) for slots first_slot..first_slot+B-1, row b continuing its slot at
        position `start[b]`. Returns the logits of each row's last token: (B, vocab)."""
        b, t = tokens.shape
        positions = start[:, None] + torch.arange(t)[None, :]  # (B, T)
        angles = positions[..., None].float() * self.inv_freq  # (B, T, d/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, T, d)
        cos, sin = angles.cos(), angles.sin()
        span = int(positions.max()) + 1
        # A query at position p sees the keys at positions 0..p of its own slot.
        mask = torch.arange(span)[None, None, None, :] <= positions[:, None, :, None]
        x = self.embed_tokens(tokens)
        slots = slice(first_slot, first_slot + b)
        for layer, block in enumerate(self.layers):
            x = block(
                x, cos, sin, cache.keys[layer][slots], cache.values[layer][slots], positions, mask
            )
        return self.lm_head(self.norm(x[:, -1]))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cache_bytes(config: LlamaConfig, slots: int, max_len: int) -> int:
    return (
        2
        * config.num_hidden_layers
        * slots
        * config.num_key_value_heads
        * max_len
        * (config.dim_per_head * 4)
    )
