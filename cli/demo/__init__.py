"""The demo pipeline behind `rlhf demo`: train, evaluate, judge and recommend, stage by stage.

`command` is the typer command; `stages` the pipeline's stages in order; `runner` runs them,
recording each in the status file (`status`, over `judging.pipeline_status`); `processes` runs
the `rlhf` children that do the heavy work; `queries` and `studies` are what stages ask and make
in the database; `invites` writes invite links; `context` holds one run's settings.
"""
