"""Build on-policy preference pairs: SmolLM2 samples labelled by the gold preference.

    python scripts/build_onpolicy_preferences.py sample [--n-prompts 800]   # slow, resumable
    python scripts/build_onpolicy_preferences.py label  [--flip 0.25 --length-bias 0.5]
    python scripts/build_onpolicy_preferences.py all                        # both, then the RM

See data/preferences/onpolicy/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "data" / "preferences" / "onpolicy"


def _sample(args: argparse.Namespace) -> None:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.onpolicy import SampleSpec, generate_samples

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = SampleSpec(
        n_prompts=args.n_prompts,
        first=args.first,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
        base_model=str(ROOT / "var/models/SmolLM2-135M-Instruct"),
        prompts=str(ROOT / "data/prompts/train.jsonl"),
    )
    started = time.monotonic()
    tokens = 0
    with Progress(
        TextColumn("sampling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
    ) as progress:
        task = progress.add_task("sample", total=spec.n_prompts, rate="")

        def on_batch(done: int, total: int, new_tokens: int) -> None:
            nonlocal tokens
            tokens += new_tokens
            rate = tokens / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:.1f} tok/s")

        added = generate_samples(spec, Path(args.samples), on_batch=on_batch)
    elapsed = time.monotonic() - started
    print(
        f"sampled {added} prompts, {tokens} tokens in {elapsed:.0f} s"
        f" ({tokens / max(elapsed, 1e-9):.1f} tok/s)"
    )


def _label(args: argparse.Namespace) -> None:
    import json

    from judging.gold import LabellerSpec
    from training.onpolicy import label_pairs

    spec = LabellerSpec(flip=args.flip, length_bias=args.length_bias)
    stats = label_pairs(Path(args.samples), Path(args.out), spec, seed=args.seed)
    print(json.dumps(stats, indent=2))


def _train_and_ship(args: argparse.Namespace) -> None:
    """`rlhf train rm` on the labelled pairs, then copy adapter + report into the repo."""
    import subprocess

    from judging.settings import get_settings
    from training.config import load_config
    from training.shipped_rm import ship

    cmd = [sys.executable, "-m", "cli.main", "train", "rm", "--config", args.config]
    subprocess.run(cmd, check=True, cwd=ROOT)
    name = load_config(Path(args.config), []).run.name
    run_dir = get_settings().data_dir / "runs" / name
    print(f"shipped {ship(run_dir, ROOT / 'data' / 'reward_models' / name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    sample = sub.add_parser("sample", help="two SmolLM2 answers per train prompt (resumable)")
    sample.add_argument("--n-prompts", type=int, default=800)
    sample.add_argument(
        "--first", type=int, default=0, help="start of the prompt window (skip the first N)"
    )
    sample.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    sample.add_argument("--max-new-tokens", type=int, default=160)
    sample.add_argument("--batch-size", type=int, default=16)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--samples", default=str(OUT / "samples.jsonl"))
    label = sub.add_parser("label", help="label the sampled pairs by the gold preference")
    label.add_argument("--flip", type=float, default=0.25, help="label-flip probability")
    label.add_argument(
        "--length-bias", type=float, default=0.1, help="gold units per 100 words longer"
    )
    label.add_argument("--seed", type=int, default=0)
    label.add_argument("--samples", default=str(OUT / "samples.jsonl"))
    label.add_argument("--out", default=str(OUT))
    for name in ("train", "all"):
        stage = sub.add_parser(
            name,
            help="train the RM and ship it"
            if name == "train"
            else "sample (resumes), label, train and ship: the whole rebuild",
        )
        stage.add_argument("--config", default="training/configs/rm_onpolicy.yaml")
        if name == "all":
            for action in sample._actions[1:] + label._actions[1:]:
                if action.dest not in {a.dest for a in stage._actions}:
                    stage._add_action(action)
    args = parser.parse_args()
    if args.stage == "sample":
        _sample(args)
    elif args.stage == "label":
        _label(args)
    elif args.stage == "train":
        _train_and_ship(args)
    else:
        _sample(args)
        _label(args)
        _train_and_ship(args)


if __name__ == "__main__":
    main()
