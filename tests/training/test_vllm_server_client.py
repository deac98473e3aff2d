"""The vLLM server client: request body (served name, chat-templated ids, seed) and parsing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from judging.errors import ConfigError
from judging.evaluation.config import ServerOptions
from training.generation.base import ModelRef, SamplingParams
from training.generation.vllm_server import VllmServerGenerator, parse_choice


class FakeTokenizer:
    chat_template = None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [len(word) for word in text.split()]}


def _server(requests: list[dict[str, Any]], status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append({"path": request.url.path, **body})
        if request.url.path == "/v1/load_lora_adapter":
            return httpx.Response(status, text="Success: LoRA adapter loaded")
        choice = {
            "text": f"seed {body['seed']}",
            "finish_reason": "length" if body["seed"] % 2 else "stop",
            "logprobs": {"tokens": ["token_id:5", "token_id:2"], "token_logprobs": [-0.5, -1.25]},
        }
        return httpx.Response(status, json={"choices": [choice]})

    return httpx.MockTransport(handle)


def test_client_sends_served_name_ids_and_seeds() -> None:
    requests: list[dict[str, Any]] = []
    ref = ModelRef("/models/base", "/runs/a/checkpoint-40", name="a-40")
    generator = VllmServerGenerator(
        ServerOptions(url="http://vllm:8000/"),
        ref,
        tokenizer=FakeTokenizer(),
        transport=_server(requests),
    )
    results = generator.generate(["hi there", "why"], SamplingParams(0.7, 0.9, 16), [10, 11])
    assert [r.text for r in results] == ["seed 10", "seed 11"]
    assert [r.finish_reason for r in results] == ["stop", "length"]
    assert results[0].token_ids == [5, 2] and results[0].logprobs == [-0.5, -1.25]
    loads = [r for r in requests if r["path"] == "/v1/load_lora_adapter"]
    assert loads == [
        {"path": "/v1/load_lora_adapter", "lora_name": "a-40", "lora_path": "/runs/a/checkpoint-40"}
    ]
    first = next(r for r in requests if r.get("seed") == 10)
    assert (
        first["path"] == "/v1/completions"
        and first["model"] == "a-40"
        and first["prompt"] == [2, 5]
    )
    assert (first["max_tokens"], first["temperature"], first["top_p"], first["logprobs"]) == (
        16,
        0.7,
        0.9,
        1,
    )


def test_base_model_is_addressed_by_its_served_name() -> None:
    requests: list[dict[str, Any]] = []
    options = ServerOptions(base_model_name="smollm2")
    VllmServerGenerator(
        options, ModelRef("/models/base"), tokenizer=FakeTokenizer(), transport=_server(requests)
    ).generate(["x"], SamplingParams(), [1])
    assert requests[0]["model"] == "smollm2"


def test_server_errors_are_one_line() -> None:
    generator = VllmServerGenerator(
        ServerOptions(),
        ModelRef("/b"),
        tokenizer=FakeTokenizer(),
        transport=_server([], status=404),
    )
    with pytest.raises(ConfigError, match="answered 404"):
        generator.generate(["x"], SamplingParams(), [1])


@pytest.mark.parametrize("reason", ["abort", None, "tool_calls"])
def test_a_response_that_neither_stopped_nor_reached_the_limit_is_an_error(
    reason: str | None,
) -> None:
    """An aborted request is not an answer: storing it as "stop" would score a cut-off text as
    a finished one (issue 27, item 5)."""
    choice = {
        "text": "half an ans",
        "finish_reason": reason,
        "logprobs": {"tokens": ["token_id:5"], "token_logprobs": [-0.5]},
    }
    with pytest.raises(ConfigError, match=f"finish reason {reason!r}"):
        parse_choice(choice)


@pytest.mark.parametrize(
    "logprobs",
    [None, {}, {"tokens": [], "token_logprobs": []}, {"tokens": ["token_id:5"]}],
)
def test_missing_token_ids_or_logprobs_are_an_error(logprobs: Any) -> None:
    """Without the sampled ids the reward model would read the prompt alone and KL would sum
    over no token: a score of nothing, stored as if it were the answer's."""
    with pytest.raises(ConfigError, match="token ids"):
        parse_choice({"text": "ok", "finish_reason": "stop", "logprobs": logprobs})


def test_stop_and_length_parse() -> None:
    lp = {"tokens": ["token_id:5", "token_id:2"], "token_logprobs": [-0.5, -1.25]}
    stop = parse_choice({"text": "ok", "finish_reason": "stop", "logprobs": lp})
    assert (stop.token_ids, stop.finish_reason, stop.logprobs) == ([5, 2], "stop", [-0.5, -1.25])
    assert parse_choice(
        {"text": "ok", "finish_reason": "length", "logprobs": lp}
    ).finish_reason == ("length")


def test_adapter_load_failure_is_one_line_error() -> None:
    generator = VllmServerGenerator(
        ServerOptions(),
        ModelRef("/b", "/runs/a/checkpoint-2", name="a-2"),
        tokenizer=FakeTokenizer(),
        transport=_server([], status=500),
    )
    with pytest.raises(ConfigError, match="could not load adapter a-2"):
        generator.generate(["x"], SamplingParams(), [1])
