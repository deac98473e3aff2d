"""Prompt files: parse and validate JSONL or CSV completely before anything is stored."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import SPLITS, Prompt, PromptSet
from judging.errors import ConflictError, InputFileError

MAX_PROMPT_CHARS = 20_000
TEXT_KEYS = ("prompt", "text", "instruction")


@dataclass(frozen=True)
class PromptRecord:
    external_id: str
    text: str
    category: str | None = None


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to spot duplicates."""
    return re.sub(r"\s+", " ", text).strip().lower()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def _record(path: str, line: int, row: dict[str, object], index: int) -> PromptRecord:
    key = next((k for k in TEXT_KEYS if k in row), None)
    if key is None:
        raise InputFileError(
            path, line, f"no prompt field (expected one of {', '.join(TEXT_KEYS)})"
        )
    text = row[key]
    if not isinstance(text, str) or not text.strip():
        raise InputFileError(path, line, f"'{key}' must be a non-empty string")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputFileError(
            path, line, f"prompt has {len(text)} characters (max {MAX_PROMPT_CHARS})"
        )
    raw_id = row.get("id", f"p{index:05d}")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or str(raw_id).strip() == "":
        raise InputFileError(path, line, "'id' must be a non-empty string or integer")
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise InputFileError(path, line, "'category' must be a string")
    return PromptRecord(str(raw_id).strip(), text.strip(), category or None)


def jsonl_rows(path: str, content: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; InputFileError naming the first bad one."""
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, number, f"invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputFileError(path, number, "each line must be a JSON object")
        yield number, row


def _csv_rows(path: str, content: str) -> Iterable[tuple[int, dict[str, object]]]:
    reader = csv.DictReader(io.StringIO(content))
    if not reader.fieldnames or not any(k in reader.fieldnames for k in TEXT_KEYS):
        raise InputFileError(
            path, 1, f"CSV header needs a column named one of {', '.join(TEXT_KEYS)}"
        )
    for row in reader:
        if None in row:
            raise InputFileError(path, reader.line_num, "more fields than the header has")
        yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def parse_prompt_file(path: Path) -> list[PromptRecord]:
    """All records of a .jsonl or .csv file, or InputFileError naming the first bad line."""
    name = str(path)
    if not path.is_file():
        raise InputFileError(name, None, "file does not exist")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError(name, None, "file is not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise InputFileError(name, None, "expected a .jsonl or .csv file")
    rows = jsonl_rows(name, content) if suffix == ".jsonl" else _csv_rows(name, content)
    return check_records(name, rows)


def check_records(name: str, rows: Iterable[tuple[int, dict[str, object]]]) -> list[PromptRecord]:
    records: list[PromptRecord] = []
    seen_text: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    for index, (line, row) in enumerate(rows):
        record = _record(name, line, row, index)
        digest = text_hash(record.text)
        if digest in seen_text:
            raise InputFileError(name, line, f"duplicate of the prompt on line {seen_text[digest]}")
        if record.external_id in seen_id:
            raise InputFileError(
                name, line, f"id {record.external_id!r} repeats line {seen_id[record.external_id]}"
            )
        seen_text[digest], seen_id[record.external_id] = line, line
        records.append(record)
    if not records:
        raise InputFileError(name, None, "no prompts found")
    return records


def store_prompt_set(
    session: Session, *, name: str, split: str, records: list[PromptRecord], source: str | None
) -> PromptSet:
    """Create the set and all its prompts in the caller's transaction."""
    if split not in SPLITS:
        raise ConflictError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if prompt_set_exists(session, name):
        raise ConflictError(f"prompt set {name!r} already exists")
    prompt_set = PromptSet(name=name, split=split, source=source)
    session.add(prompt_set)
    session.flush()
    session.add_all(
        Prompt(
            prompt_set_id=prompt_set.id,
            position=i,
            external_id=r.external_id,
            text=r.text,
            text_hash=text_hash(r.text),
            category=r.category,
        )
        for i, r in enumerate(records)
    )
    session.flush()
    return prompt_set


def prompt_set_exists(session: Session, name: str) -> bool:
    return session.scalar(select(PromptSet.id).where(PromptSet.name == name)) is not None


def count_prompts(session: Session, prompt_set_id: int) -> int:
    return session.scalar(select(func.count()).where(Prompt.prompt_set_id == prompt_set_id)) or 0
