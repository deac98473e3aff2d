"""Register checkpoints written by another engine (OpenRLHF, verl, a script) as they appear.

The registry stays the one seam: whatever trains, its checkpoints reach the database only
through `registry.register_checkpoint`. An external engine knows nothing of our database, so a
watcher polls its save folder and registers every folder that is complete:

- its name carries the step: `checkpoint-N`, `global_step_N` (verl), `global_stepN_hf`
  (OpenRLHF `--save_hf_ckpt`), `step-N`;
- it holds Hugging Face weights (`model.safetensors`, every shard of `model-*.safetensors` that
  the index lists, or a LoRA `adapter_model.safetensors`) and a `config.json` or
  `adapter_config.json`, optionally under `subdir` (verl: `actor/huggingface`);
- nothing in it changed for `settle_s` seconds (engines write shards one by one).

Registration is idempotent; a folder whose files change later is re-registered, and the
registry re-queues the evaluations of the old files.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import Checkpoint
from judging.errors import NotFoundError

STEP_NAME = re.compile(r"^(?:checkpoint|global_step|step)[-_]?(\d+)(?:_hf)?$")
WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin")
CONFIGS = ("config.json", "adapter_config.json")


@dataclass(frozen=True)
class Found:
    step: int
    path: Path


def _shards_complete(folder: Path) -> bool:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return any(folder.glob("model-*.safetensors"))
    try:
        files = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (ValueError, KeyError, TypeError):
        return False
    return all((folder / name).is_file() for name in files)


def is_complete(folder: Path, settle_s: float, now: float | None = None) -> bool:
    """Weights and a config are there and no file changed in the last `settle_s` seconds."""
    if not folder.is_dir():
        return False
    has_weights = any((folder / name).is_file() for name in WEIGHTS) or _shards_complete(folder)
    if not has_weights or not any((folder / name).is_file() for name in CONFIGS):
        return False
    newest = max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])
    return (now if now is not None else time.time()) - newest >= settle_s


def complete_folders(root: Path, *, subdir: str = "", settle_s: float = 30.0) -> list[Found]:
    """Complete checkpoint folders under `root`, by step."""
    if not root.is_dir():
        raise NotFoundError(f"folder {root} does not exist")
    found = []
    for child in root.iterdir():
        match = STEP_NAME.match(child.name)
        if not match:
            continue
        folder = child / subdir if subdir else child
        if is_complete(folder, settle_s):
            found.append(Found(int(match.group(1)), folder.resolve()))
    return sorted(found, key=lambda f: f.step)


def register_new(
    session: Session, *, run_id: int, root: Path, subdir: str = "", settle_s: float = 30.0
) -> list[int]:
    """Register complete folders that are new or whose path or files changed; returns steps."""
    registry.get_run(session, run_id)
    rows = session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id))
    known = {c.step: c for c in rows}
    registered = []
    for found in complete_folders(root, subdir=subdir, settle_s=settle_s):
        checksum, size = registry.directory_checksum(found.path)
        old = known.get(found.step)
        if old is not None and old.path == str(found.path) and old.checksum == checksum:
            continue
        checkpoint = registry.register_checkpoint(
            session, run_id=run_id, step=found.step, path=found.path, checksum=checksum
        )
        checkpoint.size_bytes = size
        registered.append(found.step)
    return registered
