"""Evaluation bookkeeping: configs, the job queue, stored generations, diagnostics."""
