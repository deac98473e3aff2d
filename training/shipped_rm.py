"""The reward model shipped in the repository, and turning it back into a loadable folder.

Only the LoRA adapter and the score head are shipped (a few MB, `data/reward_models/<name>/`);
PPO and evaluation load reward models as plain `AutoModelForSequenceClassification` folders, so
`materialise` merges the adapter into the base once and writes that folder under the data dir
(temporary name, then rename: an interrupted merge leaves nothing half-written).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

SHIPPED_FILES = ("adapter_config.json", "adapter_model.safetensors")
REPORT_FILES = ("report.md", "report.json")


def ship(run_dir: Path, dest: Path) -> Path:
    """Copy a finished LoRA reward-model run's adapter and report into `dest` (replaced whole)."""
    adapter = run_dir / "adapter"
    missing = [f for f in SHIPPED_FILES if not (adapter / f).is_file()]
    missing += [f for f in REPORT_FILES if not (run_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks {', '.join(missing)} (train with LoRA first)")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in SHIPPED_FILES:
        shutil.copy2(adapter / name, tmp / name)
    for name in REPORT_FILES:
        shutil.copy2(run_dir / name, tmp / name)
    config = json.loads((tmp / "adapter_config.json").read_text("utf-8"))
    config["base_model_name_or_path"] = "var/models/SmolLM2-135M-Instruct"  # not a local path
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    card = json.loads((tmp / "report.json").read_text("utf-8")).get("model_card", {})
    card.pop("model", None)  # a path on the machine that trained it
    card["base_model"] = config["base_model_name_or_path"]
    (tmp / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", "utf-8")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def materialise(shipped: Path, base_model: str, out: Path) -> Path:
    """`out` as a merged reward-model folder; a no-op when it is already complete."""
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from training.common import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    model: Any = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(model, str(shipped)).merge_and_unload()
    # A folder per process, renamed into place: shards of one build may merge at the same time,
    # and the first complete folder wins (the others are identical).
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        shutil.rmtree(tmp)
        return out
    if out.exists():
        shutil.rmtree(out)
    try:
        tmp.rename(out)
    except OSError:  # another process renamed its copy first
        shutil.rmtree(tmp, ignore_errors=True)
    return out
