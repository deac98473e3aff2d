"""Grouped-query attention without copying the KV cache, and the dtype that is fast on this host.

transformers' `sdpa` attention hands SDPA native GQA (`enable_gqa=True`) only when there is no
attention mask, which on CPU means never for padded batches: it then expands every key/value head
to all query heads with a full copy of the KV cache, per layer and per decoding step (SmolLM2: 3 KV
heads for 9 query heads). On CPU that copy cost as much as the attention itself at batch 96
(profiled: 5.6 s of 38.8 s). `sdpa_gqa` is the same computation with the copy left to SDPA's
broadcasting; a test checks its outputs equal the stock `sdpa` ones.
"""

from __future__ import annotations

from typing import Any

import torch

ATTENTION = "sdpa_gqa"


def _sdpa_gqa(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, Tq, D)
    key: torch.Tensor,  # (B, Hkv, Tk, D)
    value: torch.Tensor,  # (B, Hkv, Tk, D)
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    causal = bool(query.shape[2] > 1 and attention_mask is None and causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=causal,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None  # (B, Tq, H, D)


def register() -> str:
    """Register `sdpa_gqa` with transformers (idempotent); returns its name for from_pretrained."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION, _sdpa_gqa)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION


def fast_dtype(device: str) -> torch.dtype:
    """bfloat16 where the hardware has it (CUDA, CPUs with AVX512-BF16 or AMX), else float32.

    On a CPU without native bf16 the conversions make bf16 slower than fp32.
    """
    if device.startswith("cuda"):
        return torch.bfloat16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def resolve_dtype(name: str, device: str) -> str:
    """`auto` resolved for this host: the dtype name recorded with every generation."""
    if name != "auto":
        return name
    return "bfloat16" if fast_dtype(device) == torch.bfloat16 else "float32"
