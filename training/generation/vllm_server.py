"""The vLLM server backend: an OpenAI-compatible `/v1/completions` endpoint (docker-compose).

Start the server with the base model and LoRA enabled, e.g. `python -m
vllm.entrypoints.openai.api_server --model BASE --enable-lora` with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: each checkpoint's adapter is then loaded by name through
`/v1/load_lora_adapter` before its first request (adapters named with `--lora-modules` at start-up
work too). Prompts are sent as token ids (our chat template, our seeds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from judging.errors import ConfigError
from judging.eval_config import ServerOptions
from training.generation.base import GenerationResult, ModelRef, SamplingParams, chat_prompt_ids


def _token_id(token: str) -> int:
    # With return_tokens_as_token_ids the server names each token "token_id:<id>".
    return int(token.rsplit(":", 1)[-1])


def parse_choice(choice: dict[str, Any]) -> GenerationResult:
    """One `/v1/completions` choice as a GenerationResult."""
    logprobs = choice.get("logprobs") or {}
    tokens = [_token_id(t) for t in logprobs.get("tokens") or []]
    values = logprobs.get("token_logprobs")
    reason = "length" if choice.get("finish_reason") == "length" else "stop"
    return GenerationResult(
        str(choice.get("text", "")), tokens, reason, [float(v) for v in values] if values else None
    )


class VllmServerGenerator:
    backend = "vllm-server"

    def __init__(
        self,
        options: ServerOptions,
        ref: ModelRef,
        *,
        tokenizer: Any,
        transport: httpx.AsyncBaseTransport | None = None,
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

    async def _all(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        url = self.options.url.rstrip("/") + "/v1/completions"
        async with httpx.AsyncClient(
            timeout=self.options.timeout_s, transport=self.transport
        ) as client:
            await self._ensure_adapter(client)

            async def one(prompt: str, seed: int) -> GenerationResult:
                try:
                    response = await client.post(url, json=self._body(prompt, params, seed))
                except httpx.HTTPError as exc:
                    raise ConfigError(
                        f"vLLM server {self.options.url} unreachable: {exc}"
                    ) from None
                if response.status_code != 200:
                    raise ConfigError(
                        f"vLLM server answered {response.status_code}: {response.text[:300]}"
                    )
                return parse_choice(response.json()["choices"][0])

            return list(
                await asyncio.gather(*(one(p, s) for p, s in zip(prompts, seeds, strict=True)))
            )

    async def _ensure_adapter(self, client: httpx.AsyncClient) -> None:
        """Load the checkpoint's adapter into the server once; "already loaded" is fine."""
        if not self.ref.adapter_path or self._adapter_loaded:
            return
        url = self.options.url.rstrip("/") + "/v1/load_lora_adapter"
        body = {"lora_name": self.model, "lora_path": str(self.ref.adapter_path)}
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise ConfigError(f"vLLM server {self.options.url} unreachable: {exc}") from None
        if response.status_code != 200 and "already" not in response.text.lower():
            raise ConfigError(
                f"vLLM server could not load adapter {self.model}: "
                f"{response.status_code} {response.text[:300]}"
            )
        self._adapter_loaded = True

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        return asyncio.run(self._all(prompts, params, seeds))

    def close(self) -> None:
        """Nothing held between calls."""
