"""What one demo run works with: where its files go, which configs, models, prompts and raters."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cli.common import console
from judging import assets
from training.config import load_config

DEMO_CONFIGS = ("training/configs/demo_ppo_kl001.yaml", "training/configs/demo_ppo_kl01.yaml")
SHIPPED_RM = assets.shipped_data_dir() / "reward_models" / "rm-onpolicy"
SHIPPED_LADDER_RM = assets.shipped_data_dir() / "reward_models" / "rm-ladder-proxy"
"""The best-of-n ladder's proxy: PPO trains against it too when it is shipped (`proxy_adapter`)."""
LADDER_FILE = assets.shipped_data_dir() / "ladder" / "smollm2-rm-ladder-proxy.jsonl.gz"
LADDER_REF_FILE = assets.shipped_data_dir() / "ladder" / "smollm2-base-ref.jsonl.gz"
SHIPPED_EVAL_RM = assets.shipped_data_dir() / "reward_models" / "rm-onpolicy-eval"
"""Trained on other prompts' pairs than the proxy; PPO never optimises it (`eval_reward`)."""
SIM_STUDY = "demo-simulated"
LADDER_STUDY = "demo-ladder"
PEOPLE_STUDY = "demo-people"
Report = Callable[[str], None]
"""A stage's `report(detail)`: updates its line in the status file and on the console."""


@dataclass
class DemoContext:
    data_dir: Path
    base_url: str
    configs: tuple[str, ...] = DEMO_CONFIGS
    eval_config: str = "training/configs/eval_demo.yaml"
    prompt_set: str = "heldout-200"
    shipped_rm: Path = SHIPPED_RM
    shipped_ladder_rm: Path = SHIPPED_LADDER_RM
    reward_model: Path | None = None
    """A ready reward-model folder (skips materialising the shipped one; tests use it)."""
    ladder_file: Path = LADDER_FILE
    """Best-of-n samples (`rlhf ladder build`, n_max 16) against the ladder proxy."""
    ladder_ref_file: Path = LADDER_REF_FILE
    """One more base sample per prompt (n_max 1, another seed): the ladder study's reference.
    The ladder's own base holds sample 0, which BoN(n) chose from, so it is not independent."""
    ladder_run: str = "bon-smollm2"
    ladder_ref_run: str = "smollm2-base-ref"
    shipped_eval_rm: Path = SHIPPED_EVAL_RM
    eval_reward_model: Path | None = None
    """A ready evaluation reward-model folder (tests); default: the shipped one, merged."""
    base_model: str = "var/models/SmolLM2-135M-Instruct"
    train_overrides: list[str] = field(default_factory=list)
    """Extra `--set key=value` for every PPO run (tests shrink the models and steps)."""
    eval_limit: int | None = None
    sim_raters: int = 12
    """Simulated raters cost nothing, and with more of them comparisons can share base
    responses (`sim_base_reuse`): fewer base samples to generate for blind judging."""
    people: tuple[str, ...] = ("demo-rater-1", "demo-rater-2", "demo-rater-3")
    rater_temperature: float = 0.08
    rater_position_bias: float = 0.2
    echo: Callable[[str], None] = console.print
    evaluate_while_training: bool = True
    """A worker evaluates each checkpoint as PPO registers it, on the other core: training and
    evaluation overlap instead of running one after the other, and the dashboard fills sooner."""
    eval_workers: int = 0
    """Evaluation workers once training is done (0: one per CPU core, each on one thread)."""

    @property
    def proxy_adapter(self) -> Path:
        """The shipped proxy PPO trains against: the ladder's when shipped, so that the PPO runs
        and the best-of-n ladder optimise one proxy; the on-policy RM otherwise."""
        if (self.shipped_ladder_rm / "adapter_config.json").is_file():
            return self.shipped_ladder_rm
        return self.shipped_rm

    @property
    def rm_folder(self) -> Path:
        """Where the proxy is merged: `<data dir>/reward_models/<name>-merged`, the folder
        `rlhf ladder build` merges a shipped adapter into, so both share one copy."""
        merged = self.data_dir / "reward_models" / f"{self.proxy_adapter.name}-merged"
        return self.reward_model or merged

    def ladder_files_missing(self) -> list[Path]:
        return [p for p in (self.ladder_file, self.ladder_ref_file) if not p.is_file()]

    @property
    def eval_rm_folder(self) -> Path | None:
        """None when no evaluation RM is shipped: the evaluation then scores with the proxy."""
        if self.eval_reward_model is not None:
            return self.eval_reward_model
        if not (self.shipped_eval_rm / "adapter_config.json").is_file():
            return None
        return self.data_dir / "reward_models" / f"{self.shipped_eval_rm.name}-merged"

    def run_names(self) -> list[str]:
        return [run_name(config) for config in self.configs]

    def child_env(self) -> dict[str, str]:
        """The environment of every `rlhf` child: this demo's data dir, one thread each."""
        return {**os.environ, "RLHF_DATA_DIR": str(self.data_dir), "OMP_NUM_THREADS": "1"}

    def eval_args(self) -> list[str]:
        """`rlhf evaluate` arguments for the demo's checkpoints."""
        args = ["evaluate", "--config", self.eval_config, "--prompt-set", self.prompt_set]
        if self.eval_rm_folder is not None:
            args += ["--eval-reward-model", str(self.eval_rm_folder)]
        return args + (["--limit", str(self.eval_limit)] if self.eval_limit else [])


def run_name(config: str) -> str:
    return load_config(Path(config), []).run.name
