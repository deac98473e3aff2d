"""Pieces every trainer shares: tokenizer, dtype, LoRA, data files and the run's DB record."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from judging.data import registry
from judging.data.db import check_connection, make_engine, make_session_factory, session_scope
from judging.errors import ConfigError, InputFileError
from training.config import TrainConfig, resolve_path
from training.sequences import prompt_ids

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerBase

PAD_TOKEN = "<|endoftext|>"


def setup_torch(cfg: TrainConfig) -> None:
    """Threads and seeds, before any model is built."""
    import torch
    from transformers import set_seed

    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    set_seed(cfg.run.seed)


def world_size() -> int:
    """Processes of this launch (torchrun, accelerate and deepspeed set WORLD_SIZE); 1 alone."""
    return max(int(os.environ.get("WORLD_SIZE", "1")), 1)


def global_batch(cfg: TrainConfig) -> int:
    """Episodes (rollouts) per PPO update over all processes: what TRL divides by."""
    return cfg.optim.batch_size * cfg.optim.gradient_accumulation_steps * world_size()


def torch_dtype(name: str) -> torch.dtype:
    import torch

    dtype: torch.dtype = getattr(torch, name)
    return dtype


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """Tokenizer with a pad token distinct from EOS (TRL masks pad ids) and left padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PAD_TOKEN
        else:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.padding_side = "left"
    return tokenizer


def lora_config(cfg: TrainConfig, task_type: str) -> LoraConfig | None:
    """peft LoraConfig from the `lora` section, or None for full fine-tuning."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type=task_type,
    )


def quantization_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """`from_pretrained` kwargs for dtype and optional 4-bit loading."""
    kwargs: dict[str, Any] = {"dtype": torch_dtype(cfg.model.dtype)}
    if cfg.model.load_in_4bit:
        import importlib.util

        import torch
        from transformers import BitsAndBytesConfig

        if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                "'model.load_in_4bit' (QLoRA) needs a CUDA GPU and bitsandbytes "
                "(pip install bitsandbytes); set it to false on CPU"
            )

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch_dtype(cfg.model.dtype),
        )
    return kwargs


def freeze_below_top(model: Any, top: int) -> None:
    """Train only the top `top` decoder layers, the final norm and the score head."""
    backbone = getattr(model, model.base_model_prefix)
    model.requires_grad_(False)
    for module in [*backbone.layers[-top:], backbone.norm, model.score]:
        module.requires_grad_(True)


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids of a single-turn chat prompt ending with the assistant header (shared builder)."""
    return prompt_ids(tokenizer, prompt)


def read_jsonl(path: str | Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each checked for `required` string fields."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), None, "file does not exist")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(str(path), number, f"invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise InputFileError(str(path), number, "each line must be a JSON object")
        for key in required:
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise InputFileError(str(path), number, f"'{key}' must be a non-empty string")
        rows.append(row)
    if not rows:
        raise InputFileError(str(path), None, "no rows found")
    return rows


def output_dir(cfg: TrainConfig, data_dir: Path) -> Path:
    """The run's folder: the configured one, or `<data_dir>/runs/<name>`."""
    if cfg.run.output_dir:
        return Path(resolve_path(cfg.run.output_dir))
    return (data_dir / "runs" / cfg.run.name).resolve()


def report_to(cfg: TrainConfig) -> list[str]:
    return [] if cfg.run.report_to == "none" else [cfg.run.report_to]


@dataclass
class RunRecorder:
    """The run's database record, written in one short transaction per event."""

    database_url: str
    run_id: int = 0
    prior_compute: float = 0.0
    started: float = field(default_factory=time.monotonic)
    _flushed: float = 0.0
    _factory: sessionmaker[Session] | None = None

    @property
    def is_main(self) -> bool:
        """Only the first process of a distributed launch (RANK 0) writes to the database."""
        return int(os.environ.get("RANK", "0")) == 0

    def __post_init__(self) -> None:
        engine = make_engine(self.database_url)
        check_connection(engine)
        self._factory = make_session_factory(engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        assert self._factory is not None
        with session_scope(self._factory) as session:
            yield session

    def compute_spent(self) -> float:
        """Seconds of training so far, earlier attempts of a resumed run included."""
        return self.prior_compute + time.monotonic() - self.started

    def flush_compute(self, session: Session) -> float:
        """Add the compute since the last flush to the run; returns the running total."""
        elapsed = time.monotonic() - self.started
        run = registry.get_run(session, self.run_id)
        registry.add_compute(session, run, elapsed - self._flushed)
        self._flushed = elapsed
        return self.compute_spent()

    def start(
        self, cfg: TrainConfig, *, algorithm: str, out: Path, reward_model: str | None, resume: bool
    ) -> None:
        """Create (or reopen with `resume`) the run and its base checkpoint."""
        self.started = time.monotonic()
        if not self.is_main:
            return
        with self.transaction() as session:
            run = registry.start_run(
                session,
                name=cfg.run.name,
                algorithm=algorithm,
                base_model=cfg.model.base_model,
                config=cfg.to_dict(),
                reward_model=reward_model,
                output_dir=str(out),
                compute_budget={"max_steps": cfg.run.max_steps, "max_seconds": cfg.run.max_seconds},
                device=_device_name(),
                resume=resume,
            )
            if resume:
                run.config = cfg.to_dict()
            registry.ensure_base_checkpoint(session, run)
            self.run_id = run.id
            self.prior_compute = run.compute_spent_seconds or 0.0
        self.started = time.monotonic()
        self._flushed = 0.0

    @contextmanager
    def outcome(self) -> Iterator[None]:
        """Mark the run stopped on Ctrl-C and failed (with the error) on any exception."""
        try:
            yield
        except KeyboardInterrupt:
            self.finish("stopped", error="interrupted")
            raise
        except Exception as exc:
            self.finish("failed", error=f"{type(exc).__name__}: {exc}")
            raise

    def finish(self, status: str, error: str | None = None) -> None:
        if not self.is_main:
            return
        with self.transaction() as session:
            self.flush_compute(session)
            registry.finish_run(
                session, registry.get_run(session, self.run_id), status=status, error=error
            )


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu x{os.cpu_count()}"


def resolve_model_paths(cfg: TrainConfig) -> None:
    """Make local model paths absolute so the DB rows stay valid from any working directory."""
    cfg.model.base_model = resolve_path(cfg.model.base_model)
    if cfg.model.reward_model:
        cfg.model.reward_model = resolve_path(cfg.model.reward_model)
    if cfg.model.ref_model:
        cfg.model.ref_model = resolve_path(cfg.model.ref_model)
    if not cfg.model.base_model:
        raise ConfigError("'model.base_model' is required")


def shard_path(out: Path, index: int, count: int) -> Path:
    """Where shard `index` of `count` of the file `out` is written (one process per shard)."""
    return out.with_name(f"{out.name}.shard{index}of{count}")


def shard_files(out: Path) -> list[Path]:
    """The shards of `out` on disk, in name order (never a writer's `.partial` leftover)."""
    return sorted(
        path
        for path in out.parent.glob(f"{out.name}.shard*of*")
        if re.fullmatch(r"\.shard\d+of\d+", path.name[len(out.name) :])
    )
