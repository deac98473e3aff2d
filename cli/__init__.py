"""The `rlhf` console script: the composition root that may import app, training and judging."""
