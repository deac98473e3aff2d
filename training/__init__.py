"""Everything torch: model fetching, TRL trainers, generation and scoring.

Writes to the database only through `judging.data.registry`. Never imported by `app`.
"""
