"""The vLLM server backend: an OpenAI-compatible `/v1/completions` endpoint (docker-compose).

Start the server with the base model and LoRA enabled, e.g. `python -m
vllm.entrypoints.openai.api_server --model BASE --enable-lora` with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: each checkpoint's adapter is then loaded by name through
`/v1/load_lora_adapter` before its first request (adapters named with `--lora-modules` at start-up
work too). Prompts are sent as token ids (our chat template, our seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from judging.errors import ConfigError
from judging.evaluation.config import ServerOptions
from training.generation.base import GenerationResult, ModelRef, SamplingParams, chat_prompt_ids


def _token_id(token: str) -> int:
    # With return_tokens_as_token_ids the server names each token "token_id:<id>".
    return int(token.rsplit(":", 1)[-1])


def finish_reason(raw: object) -> str:
    """vLLM's finish reason as ours: only "stop" (EOS or a stop string) and "length" are answers.

    "abort" (the request was cancelled or the server ran out of KV cache) or None (no reason
    given) would otherwise be stored as "stop": a cut-off text scored as a finished one.
    """
    if raw in ("stop", "length"):
        return str(raw)
    raise ConfigError(
        f"vLLM returned finish reason {raw!r} (neither 'stop' nor 'length'): the response is "
        "not a complete sample; nothing was stored, evaluate again"
    )


def parse_choice(choice: dict[str, Any]) -> GenerationResult:
    """One `/v1/completions` choice as a GenerationResult.

    The sampled token ids (from the log-probs) are what is scored; a choice without them, or
    without one log-prob per id, is an error rather than an empty response (which would be scored
    as the prompt alone, with KL 0).
    """
    reason = finish_reason(choice.get("finish_reason"))
    logprobs = choice.get("logprobs") or {}
    tokens = [_token_id(t) for t in logprobs.get("tokens") or []]
    values = logprobs.get("token_logprobs") or []
    if not tokens or len(values) != len(tokens):
        raise ConfigError(
            f"vLLM returned no sampled token ids with their log-probs ({len(tokens)} ids, "
            f"{len(values)} log-probs): the server must honour logprobs=1 and "
            "return_tokens_as_token_ids"
        )
    return GenerationResult(str(choice.get("text", "")), tokens, reason, [float(v) for v in values])


class VllmServerGenerator:
    backend = "vllm-server"
    logprobs_exact = False  # untempered log-probs by default: KL recomputes them in fp32

    def __init__(
        self,
        options: ServerOptions,
        ref: ModelRef,
        *,
        tokenizer: Any,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options
        self.transport = transport
        self.ref = ref
        self.tokenizer = tokenizer
        self.model = (
            ref.lora_name if ref.adapter_path else (options.base_model_name or ref.base_path)
        )
        self._adapter_loaded = False

    def _body(self, prompt: str, params: SamplingParams, seed: int) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": chat_prompt_ids(self.tokenizer, prompt),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": int(seed),
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": True,
        }

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return client.post(self.options.url.rstrip("/") + path, json=body)
        except httpx.HTTPError as exc:
            raise ConfigError(f"vLLM server {self.options.url} unreachable: {exc}") from None

    def _ensure_adapter(self, client: httpx.Client) -> None:
        """Load the checkpoint's adapter into the server once; "already loaded" is fine."""
        if not self.ref.adapter_path or self._adapter_loaded:
            return
        body = {"lora_name": self.model, "lora_path": str(self.ref.adapter_path)}
        response = self._post(client, "/v1/load_lora_adapter", body)
        if response.status_code != 200 and "already" not in response.text.lower():
            raise ConfigError(
                f"vLLM server could not load adapter {self.model}: "
                f"{response.status_code} {response.text[:300]}"
            )
        self._adapter_loaded = True

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        # Threads rather than asyncio: callers may already run an event loop (notebooks, tests).
        with httpx.Client(timeout=self.options.timeout_s, transport=self.transport) as client:
            self._ensure_adapter(client)

            def one(prompt: str, seed: int) -> GenerationResult:
                response = self._post(client, "/v1/completions", self._body(prompt, params, seed))
                if response.status_code != 200:
                    raise ConfigError(
                        f"vLLM server answered {response.status_code}: {response.text[:300]}"
                    )
                return parse_choice(response.json()["choices"][0])

            with ThreadPoolExecutor(max_workers=max(1, min(16, len(prompts)))) as pool:
                return list(pool.map(one, prompts, seeds))

    def close(self) -> None:
        """Nothing held between calls."""
