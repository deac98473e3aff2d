"""Training config loading: YAML, overrides, and one-line errors naming the key or line."""

from __future__ import annotations

from pathlib import Path

import pytest

from judging.errors import ConfigError
from judging.settings import PROJECT_ROOT
from training.config import load_config

CONFIGS = PROJECT_ROOT / "training" / "configs"
OURS = sorted(
    p for p in CONFIGS.glob("*.yaml") if p.stem.split("_")[0] in {"rm", "ppo", "sft", "dpo"}
)


def _write(tmp_path: Path, text: str, name: str = "ppo_cpu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.run.name and cfg.run.max_steps >= 1


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "run:\n  max_steps: 7\nppo:\n  kl:\n    coef: 0.2\n")
    cfg = load_config(
        path, ["ppo.kl.adaptive=true", "optim.learning_rate=3e-4", "lora.target_modules=[q_proj]"]
    )
    assert cfg.run.max_steps == 7 and cfg.ppo.kl.coef == 0.2 and cfg.ppo.kl.adaptive is True
    assert cfg.optim.learning_rate == pytest.approx(3e-4)
    assert cfg.lora.target_modules == ["q_proj"]
    assert cfg.run.name == "ppo_cpu"
    assert load_config(path, name="other").run.name == "other"
    assert cfg.to_dict()["ppo"]["kl"]["coef"] == 0.2


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "optim:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        "ppo_cpu.yaml: unknown key 'optim.learning_rat' (did you mean 'optim.learning_rate'?)"
    )


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'optimiser'"):
        load_config(_write(tmp_path, "optimiser:\n  batch_size: 1\n"))


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["optim.batch_size=eight"])
    assert str(err.value) == "'optim.batch_size' must be an integer, got 'eight'"
    with pytest.raises(ConfigError, match=r"'lora.enabled' must be true or false"):
        load_config(None, ["lora.enabled=maybe"])
    with pytest.raises(ConfigError, match=r"'run.report_to' must be one of"):
        load_config(None, ["run.report_to=mlflow"])
    with pytest.raises(ConfigError, match=r"'ppo.kl' must be a mapping"):
        load_config(None, ["ppo.kl=3"])


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "run:\n  name: x\n  max_steps: [1, 2\n")
    with pytest.raises(ConfigError, match=r"ppo_cpu.yaml: line \d+"):
        load_config(path)


def test_cross_field_checks_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'run\.max_steps' must be at least 1"):
        load_config(None, ["run.max_steps=0"])
    with pytest.raises(ConfigError, match=r"multiple of 'ppo.num_mini_batches'"):
        load_config(None, ["optim.batch_size=6", "ppo.num_mini_batches=4"])
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"section.key=value"):
        load_config(None, ["no_equals_sign"])


def test_pair_halves_are_disjoint_by_prompt_and_cover_all() -> None:
    import pytest

    from judging.errors import ConfigError
    from training.preferences import pair_half

    rows = [{"prompt": f"p{i % 40}", "chosen": "a", "rejected": "b"} for i in range(200)]
    first, second = pair_half(rows, "first"), pair_half(rows, "second")
    assert len(first) + len(second) == len(rows) and first and second
    assert not {r["prompt"] for r in first} & {r["prompt"] for r in second}
    assert pair_half(rows, "all") == rows
    with pytest.raises(ConfigError, match=r"rm\.pair_half"):
        pair_half(rows, "odd")
