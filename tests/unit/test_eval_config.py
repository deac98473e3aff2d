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


def test_seq_rep_thresholds_follow_the_configured_n() -> None:
    from judging.errors import ConfigError
    from judging.evaluation.config import parse_eval_config
    from judging.evaluation.diagnostics import raise_flags

    with pytest.raises(
        ConfigError, match=r"seq_rep_4 names another n than diagnostics\.seq_rep_n = 3"
    ):
        parse_eval_config(
            {"diagnostics": {"seq_rep_n": 3}, "thresholds": {"max": {"seq_rep_4": 0.2}}}
        )
    config = parse_eval_config({"diagnostics": {"seq_rep_n": 3}})
    assert config.limits("max")["seq_rep_3"] == 0.2 and "seq_rep_4" not in config.limits("max")
    flags = raise_flags({"seq_rep_3": 0.5}, maximum=config.limits("max"))
    assert flags == ["seq_rep_3>0.2"]


def test_growth_is_also_reported_on_untruncated_answers() -> None:
    from judging.evaluation.diagnostics import ResponseRecord, summarize, with_growth

    base = summarize([ResponseRecord("a b", 10, "stop"), ResponseRecord("c", 64, "length")])
    ckpt = summarize([ResponseRecord("a b", 30, "stop"), ResponseRecord("c", 64, "length")])
    grown = with_growth(ckpt, base)
    assert grown["length_growth"] == pytest.approx(94 / 74)
    assert grown["length_growth_untruncated"] == pytest.approx(3.0)
