"""pyproject.toml lists its packages by hand (asset folders are mapped into judging.assets, which
`find` cannot do): every code package and every asset folder must be on the list, or a wheel
silently leaves it out. tests/install builds a real wheel and runs it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("app", "cli", "judging", "training")


def _setuptools() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]  # type: ignore[no-any-return]


def _subfolders(top: Path, prefix: str) -> set[str]:
    """`prefix` plus the dotted name of each folder under `top` that Python could import."""
    names = {prefix}
    for folder in top.rglob("*"):
        parts = folder.relative_to(top).parts
        if not folder.is_dir() or "__pycache__" in parts:
            continue
        if all(part.isidentifier() for part in parts):
            names.add(".".join((prefix, *parts)))
    return names


def _asset_packages(package: str, folder: Path, patterns: list[str]) -> set[str]:
    """The packages the shipped files of a mapped folder sit in: each folder between it and
    a file, as far as the names are identifiers (deeper ones ride along with that package)."""
    names = {package}
    for pattern in patterns:
        for path in folder.glob(pattern):
            dotted = [package]
            for part in path.relative_to(folder).parent.parts:
                if not part.isidentifier():
                    break
                dotted.append(part)
                names.add(".".join(dotted))
    return names


def test_every_package_and_asset_folder_is_listed() -> None:
    config = _setuptools()
    mapped: dict[str, str] = config["package-dir"]  # type: ignore[assignment]
    data: dict[str, list[str]] = config["package-data"]  # type: ignore[assignment]
    expected: set[str] = set()
    for top in CODE:
        expected |= _subfolders(ROOT / top, top)
    for package, folder in mapped.items():
        expected |= _asset_packages(package, ROOT / folder, data.get(package, []))
        if folder != "data":  # a checkout's data/ may hold older untracked files: patterns only
            expected |= _subfolders(ROOT / folder, package)
    assert sorted(set(config["packages"])) == sorted(expected)  # type: ignore[arg-type]


def test_asset_folders_are_the_top_level_ones_the_finder_knows() -> None:
    from judging import assets

    mapped: dict[str, str] = _setuptools()["package-dir"]  # type: ignore[assignment]
    finders = {
        "data": assets.shipped_data_dir,
        "migrations": assets.migrations_dir,
        "static": assets.static_dir,
        "templates": assets.templates_dir,
    }
    assert {f"judging.assets.{name}": name for name in finders} == mapped
    for name, finder in finders.items():
        assert finder() == ROOT / name  # a checkout uses its own folders
