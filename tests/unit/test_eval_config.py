"""The evaluation YAML config: defaults, overrides and one-line errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from judging.errors import ConfigError
from judging.evaluation.config import DEFAULT_EVAL_CONFIG, load_eval_config, parse_eval_config


def test_shipped_config_loads_and_overrides_apply() -> None:
    config = load_eval_config(DEFAULT_EVAL_CONFIG, backend="vllm", limit=40)
    assert config.backend == "vllm" and config.limit == 40
    assert config.sampling.max_new_tokens > 0 and config.thresholds.max["length_growth"] == 1.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bakend": "vllm"}, "unknown key 'bakend'"),
        ({"sampling": {"temprature": 0.5}}, "unknown key 'sampling.temprature'"),
        ({"backend": "onnx"}, "backend"),
        ({"sampling": {"top_p": 1.5}}, "sampling.top_p"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_values_are_one_line_config_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as info:
        parse_eval_config(data)
    assert "\n" not in str(info.value)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_eval_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_eval_config(bad)
