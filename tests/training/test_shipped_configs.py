"""Every shipped config pair fits together: LoRA ranks the vLLM side can load, dtypes per device.

Pairs are by device: `*_gpu_*.yaml` training recipes with the evaluation configs and the compose
vLLM service that run on `cuda`; `*_cpu.yaml` recipes with the `cpu` evaluation configs.
"""

from __future__ import annotations

import pytest
import yaml

from judging.evaluation.config import EvalConfig, load_eval_config
from judging.settings import PROJECT_ROOT
from training.config import TrainConfig, load_config

CONFIGS = PROJECT_ROOT / "training" / "configs"
POLICY_RECIPES = ("ppo", "sft", "dpo")  # their checkpoints are evaluated (RM runs are not)


def _recipes(device: str) -> list[tuple[str, TrainConfig]]:
    found = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        algorithm = path.stem.split("_")[0]
        on_gpu = "_gpu" in path.stem
        if algorithm in POLICY_RECIPES and on_gpu == (device == "cuda"):
            found.append((path.name, load_config(path, [])))
    return found


def _evals() -> list[tuple[str, EvalConfig]]:
    return [(p.name, load_eval_config(p)) for p in sorted(CONFIGS.glob("eval_*.yaml"))]


def _compose_vllm_flags() -> dict[str, str]:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    flags = {}
    for arg in compose["services"]["vllm"]["command"]:
        key, _, value = str(arg).partition("=")
        flags[key] = value
    return flags


def test_shipped_configs_found() -> None:
    assert _recipes("cuda") and _recipes("cpu") and _evals()


@pytest.mark.parametrize("name,evaluation", _evals())
def test_vllm_loads_every_adapter_of_its_device(name: str, evaluation: EvalConfig) -> None:
    for recipe, cfg in _recipes(evaluation.device):
        if cfg.lora.enabled:
            assert evaluation.vllm.max_lora_rank >= cfg.lora.r, f"{name} vs {recipe}"


def test_compose_vllm_server_fits_gpu_recipes() -> None:
    flags = _compose_vllm_flags()
    for recipe, cfg in _recipes("cuda"):
        if cfg.lora.enabled:
            assert int(flags["--max-lora-rank"]) >= cfg.lora.r, recipe
    # Generation in bf16 on GPU; KL is recomputed in fp32 by the worker's transformers scorer,
    # so vLLM's own (bf16) log-probs never reach a KL estimate.
    assert flags["--dtype"] == "bfloat16"


@pytest.mark.parametrize("name,cfg", _recipes("cuda"))
def test_gpu_recipes_train_in_bf16(name: str, cfg: TrainConfig) -> None:
    assert cfg.model.dtype == "bfloat16" and cfg.model.bf16, name


@pytest.mark.parametrize("name,cfg", _recipes("cpu"))
def test_cpu_recipes_stay_fp32(name: str, cfg: TrainConfig) -> None:
    assert cfg.model.dtype == "float32" and not cfg.model.bf16 and not cfg.model.load_in_4bit


def test_qlora_without_gpu_is_a_clear_error() -> None:
    pytest.importorskip("torch")
    import torch

    from judging.errors import ConfigError
    from training.common import quantization_kwargs

    cfg = load_config(CONFIGS / "ppo_gpu_8b_qlora.yaml", [])
    assert cfg.model.load_in_4bit and cfg.lora.enabled
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="load_in_4bit"):
        quantization_kwargs(cfg)
