"""Read models for the research pages: plain dataclasses built from SQL, no lazy ORM in templates.

Every function here issues a bounded number of queries whatever the size of a study (aggregates and
joins in SQL, one row per verdict at most), so a 10-checkpoint x 200-prompt x 2-rater study renders
in well under the page budget. Statistics come from `judging.stats` (pure functions); the bootstrap
intervals, the costly part, are memoised on the exact verdicts they were computed from, so a new
verdict recomputes them and an unchanged study does not.
"""
