"""The vectorised sampler and the copy-free GQA attention compute what the stock code computes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _draw(probs: list[float], u: float) -> int:
    from training.generation.hf import inverse_cdf_sample

    row = torch.tensor([probs], dtype=torch.float32)
    return int(inverse_cdf_sample(row, torch.tensor([u], dtype=torch.float64))[0])


def test_inverse_cdf_by_hand() -> None:
    # cdf: 0, .5, .5, 1 -> u in [0, .5) takes token 1, u in [.5, 1) token 3; zeros never.
    probs = [0.0, 0.5, 0.0, 0.5]
    assert [_draw(probs, u) for u in (0.0, 0.25, 0.4999, 0.5, 0.75, 0.999999)] == [1, 1, 1, 3, 3, 3]
    # Unnormalised mass works the same (top-p leaves the nucleus unnormalised).
    assert [_draw([0.0, 2.0, 0.0, 2.0], u) for u in (0.1, 0.6)] == [1, 3]


def test_inverse_cdf_crosses_blocks_and_never_picks_a_zero() -> None:
    # 600 tokens: three blocks of 256 (the last padded); mass only at 5, 300 and 599.
    probs = [0.0] * 600
    probs[5], probs[300], probs[599] = 0.2, 0.3, 0.5
    assert [_draw(probs, u) for u in (0.1, 0.21, 0.49, 0.51, 0.9999999)] == [5, 300, 300, 599, 599]
    generator = torch.Generator().manual_seed(0)
    sparse = torch.rand(64, 3000, generator=generator)
    sparse[sparse < 0.97] = 0.0  # about 90 non-zero tokens per row
    u = torch.rand(64, generator=generator, dtype=torch.float64)
    u[:8] = 1 - 1e-16  # the very top of the range, where rounding could step past the last mass
    from training.generation.hf import inverse_cdf_sample

    chosen = inverse_cdf_sample(sparse, u)
    assert bool((sparse.gather(-1, chosen[:, None]) > 0).all())


def test_inverse_cdf_follows_the_distribution() -> None:
    from training.generation.hf import inverse_cdf_sample

    probs = torch.tensor([0.05, 0.0, 0.4, 0.15, 0.3, 0.1])
    n = 40_000
    u = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    chosen = inverse_cdf_sample(probs.expand(n, -1).contiguous(), u)
    freq = torch.bincount(chosen, minlength=6).double() / n
    # 4 standard errors of a proportion at n = 40,000 is at most 0.01.
    assert freq.tolist() == pytest.approx(probs.tolist(), abs=0.01)


def _gqa_model(attn: str) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.generation.attention import register

    register()
    config = LlamaConfig(
        hidden_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,  # grouped: 3 query heads per KV head, as in SmolLM2
        intermediate_size=96,
        vocab_size=300,
        pad_token_id=0,
    )
    config._attn_implementation = attn
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_gqa_equals_stock_sdpa_with_padding_and_cache(dtype: torch.dtype) -> None:
    stock, ours = _gqa_model("sdpa").to(dtype), _gqa_model("sdpa_gqa").to(dtype)
    ours.load_state_dict(stock.state_dict())
    ids = torch.randint(3, 300, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding, as in batched generation
    mask[1, :1] = 0
    with torch.no_grad():
        a = stock(input_ids=ids, attention_mask=mask, use_cache=True)
        b = ours(input_ids=ids, attention_mask=mask, use_cache=True)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        assert torch.allclose(a.logits[mask.bool()], b.logits[mask.bool()], atol=tol)
        step = torch.tensor([[5], [6], [7]])
        longer = torch.cat([mask, torch.ones_like(step)], dim=-1)
        a2 = stock(input_ids=step, attention_mask=longer, past_key_values=a.past_key_values)
        b2 = ours(input_ids=step, attention_mask=longer, past_key_values=b.past_key_values)
        assert torch.allclose(a2.logits, b2.logits, atol=tol)


def test_auto_dtype_resolves_to_a_name_this_host_runs() -> None:
    from training.generation.attention import fast_dtype, resolve_dtype

    assert resolve_dtype("float32", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    auto = resolve_dtype("auto", "cpu")
    assert auto == str(fast_dtype("cpu")).removeprefix("torch.")


def _decode(model: object, cache: object, steps: int) -> tuple[list[torch.Tensor], list[int]]:
    """Logits of a left-padded prefill and `steps` decoding steps, one row leaving the batch
    after the third; the data pointer of layer 0's keys at every step (each kept alive, so a
    freed buffer's address is never handed out again)."""
    ids = torch.randint(3, 300, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    logits, keys = [], []
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        for step in range(steps):
            logits.append(out.logits[:, -1])
            keys.append(out.past_key_values.layers[0].keys)
            if step == 2:  # a finished row leaves the batch, as in `sample_batch`
                out.past_key_values.batch_select_indices(torch.tensor([0, 2]))
                mask = mask[[0, 2]]
            nxt = logits[-1][: mask.shape[0]].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=-1)
            out = model(input_ids=nxt, attention_mask=mask, past_key_values=out.past_key_values)
    return logits, [k.data_ptr() for k in keys]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_preallocated_cache_equals_the_dynamic_cache_and_writes_in_place(
    dtype: torch.dtype,
) -> None:
    """Each decoding step writes one position into buffers allocated once (the growing cache
    copied all of them per step: 37% of generating 128-token answers); logits are identical."""
    from transformers import DynamicCache

    from training.generation.kv_cache import preallocated_cache

    model = _gqa_model("sdpa_gqa").to(dtype)
    stock, stock_ptrs = _decode(model, DynamicCache(), 6)
    ours, our_ptrs = _decode(model, preallocated_cache(9 + 6), 6)
    for a, b in zip(stock, ours, strict=True):
        assert torch.equal(a, b)
    # One buffer before the finished row leaves (steps 0-2), one after it (steps 3-5).
    assert len(set(our_ptrs[:3])) == 1 and len(set(our_ptrs[3:])) == 1
    assert len(set(stock_ptrs)) == len(stock_ptrs)  # the stock cache reallocates every step
    grown, _ = _decode(model, preallocated_cache(4), 6)  # too small: it grows, same logits
    assert all(torch.equal(a, b) for a, b in zip(stock, grown, strict=True))


def test_sample_batch_decodes_into_a_preallocated_cache() -> None:
    from training.generation.base import SamplingParams
    from training.generation.hf import sample_batch
    from training.generation.kv_cache import PreallocatedLayer

    model = _gqa_model("sdpa_gqa")
    seen: list[object] = []

    def hook(_module: object, _args: object, kwargs: dict, _output: object) -> None:
        cache = kwargs.get("past_key_values")
        seen.append(type(cache.layers[0]) if cache is not None and cache.layers else None)

    handle = model.register_forward_hook(hook, with_kwargs=True)
    params = SamplingParams(temperature=1.0, max_new_tokens=5)
    sample_batch(model, [[5, 6, 7], [8, 9]], params, [1, 2], pad_id=0, stops=set())
    handle.remove()
    assert seen[1:] and all(kind is PreallocatedLayer for kind in seen[1:])


def test_preallocated_layer_grows_by_doubling_and_returns_what_the_dynamic_layer_returns() -> None:
    from transformers.cache_utils import DynamicLayer

    from training.generation.kv_cache import PreallocatedLayer

    generator = torch.Generator().manual_seed(3)
    ours, stock = PreallocatedLayer(capacity=20), DynamicLayer()
    held: list[torch.Tensor] = []
    for width in [9] + [1] * 150:  # a prefill, then 150 steps: far past `capacity`
        k, v = torch.randn(2, 2, width, 4, generator=generator).unbind(0)
        a, b = ours.update(k[None], v[None]), stock.update(k[None], v[None])
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        held.append(ours.keys)  # alive: a freed buffer's address is never handed out again
    # Rooms of 20 (capacity), then 85 (at least 64 ahead), then 172: three buffers, not 151.
    assert len({keys.data_ptr() for keys in held}) == 3
    assert ours.get_seq_length() == stock.get_seq_length() == 159
