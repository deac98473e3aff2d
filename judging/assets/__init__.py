"""Where the committed assets are: templates, static files, migrations and the shipped data.

They sit at the top of the checkout (`templates/`, `static/`, `migrations/`, `data/`), and a
built wheel installs each one inside this package (`judging/assets/templates/`, ...; see
`[tool.setuptools.package-dir]` in pyproject.toml). The installed copy is looked for first, so
an installed tool never reads a folder that happens to sit above site-packages; a source
checkout (editable installs included) has nothing here and uses its own top-level folders.

Assets are read-only: runtime state (the database, the secret key, models, runs) lives in the
data directory of `judging.settings`, never here.
"""

from __future__ import annotations

from pathlib import Path

INSTALLED = Path(__file__).resolve().parent
CHECKOUT = INSTALLED.parents[1]


def _folder(name: str, marker: str) -> Path:
    """`name` installed next to this file, else in the checkout; `marker` must be inside, so
    a stray folder of the same name elsewhere is never taken for it."""
    for root in (INSTALLED, CHECKOUT):
        if (root / name / marker).exists():
            return root / name
    raise FileNotFoundError(
        f"the {name!r} assets are missing: neither {INSTALLED / name} nor {CHECKOUT / name} "
        f"holds {marker} (reinstall the package)"
    )


def templates_dir() -> Path:
    return _folder("templates", "base.html")


def static_dir() -> Path:
    return _folder("static", "app.css")


def migrations_dir() -> Path:
    """Alembic's script location (env.py and versions/)."""
    return _folder("migrations", "env.py")


def shipped_data_dir() -> Path:
    """The shipped data: prompts, preference pairs and the small reward-model adapters."""
    return _folder("data", "prompts")
