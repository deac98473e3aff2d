"""Blind pairwise studies: assignment, rating, raters and quality control."""
