"""Generation backends behind one interface: transformers, vLLM offline, vLLM server."""

from training.generation.base import (
    GenerationResult,
    Generator,
    ModelRef,
    SamplingParams,
    model_ref_for,
)

__all__ = ["GenerationResult", "Generator", "ModelRef", "SamplingParams", "model_ref_for"]
