"""GPU-only checks (marker `gpu`; skipped without CUDA): run by bench/gpu_check.sh on a lent
machine. Self-contained toy models: no SmolLM2 weights travel there."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

T = 0.7


def _tiny(seed: int, noise: float = 0.0) -> object:
    from tests.training.test_kl_exact import _tiny as tiny

    return tiny(seed, noise)


@pytest.fixture(autouse=True)
def _exact_fp32() -> object:
    """TF32 matmuls would move fp32 log-probs by ~1e-3: the evaluation's KL needs true fp32."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_cuda_sampling_log_probs_equal_teacher_forcing_and_the_cpu_kl() -> None:
    from training.evaluation.scoring import KLScorer, response_logprobs
    from training.generation.base import SamplingParams
    from training.generation.hf import sample_batch

    prompt = [1, 3, 4]
    params = SamplingParams(temperature=T, top_p=1.0, max_new_tokens=8)
    ckpt, base = _tiny(0, noise=0.05), _tiny(0)
    ckpt_gpu, base_gpu = ckpt.to("cuda"), _tiny(0).to("cuda")  # type: ignore[attr-defined]
    n = 32
    rows = sample_batch(
        ckpt_gpu, [prompt] * n, params, list(range(n)), pad_id=0, stops={2}, device="cuda"
    )
    responses = [t for t, _, _ in rows]
    forced = response_logprobs(
        ckpt_gpu, [prompt] * n, responses, pad_id=0, temperature=T, device="cuda"
    )
    for (_, logps, _), again in zip(rows, forced, strict=True):
        assert logps == pytest.approx(again, abs=1e-4)
    on_gpu = KLScorer(ckpt_gpu, base=base_gpu, pad_id=0, device="cuda").score(
        [prompt] * n, responses, temperature=T
    )
    on_cpu = KLScorer(ckpt.to("cpu"), base=base, pad_id=0).score(  # type: ignore[attr-defined]
        [prompt] * n, responses, temperature=T
    )
    flat = [k for pair in on_gpu for k in pair]
    assert flat == pytest.approx([k for pair in on_cpu for k in pair], abs=1e-4)


def test_auto_dtype_is_bf16_on_cuda() -> None:
    from training.generation.attention import resolve_dtype

    assert resolve_dtype("auto", "cuda") == "bfloat16"
