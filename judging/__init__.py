"""The core of the RLHF checkpoint lab: database models, registry, pairing, statistics.

Nothing in this package imports a web framework or torch; `app` and `training` both build on it.
"""
