"""Checkpoint evaluation: generation, reward scores, KL from the base, and the job worker."""
