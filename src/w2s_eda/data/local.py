"""Local dataset files (jsonl, json, csv, parquet) turned into binary items, with row-level checks.

Every problem is a DatasetError naming the file and the row (1-based; for jsonl and csv the row is
the line number), so a researcher can open the file at the right place.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DatasetError
from .items import Item, normalise

FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def infer_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path.suffix.lower() not in FORMATS:
        raise DatasetError(
            f"{path}: cannot tell the format from the extension '{path.suffix}'; "
            f"use one of {', '.join(FORMATS)} or set 'format' in the dataset's config"
        )
    return FORMATS[path.suffix.lower()]


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DatasetError(
                    f"{path}, line {number}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at "
                    f"column {error.start + 1}); re-encode the file as UTF-8"
                ) from None


def read_rows(path: str | Path, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(row number, row)`` for every record of a local file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist")
    fmt = infer_format(path, fmt)
    if fmt == "jsonl":
        for number, line in _decoded_lines(path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(
                    f"{path}, line {number}: invalid JSON ({error.msg}); is the file truncated?"
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}, line {number}: expected a JSON object, got {row!r:.60}")
            yield number, row
    elif fmt == "json":
        text = "".join(line for _, line in _decoded_lines(path))
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(
                f"{path}, line {error.lineno}: invalid JSON ({error.msg}); is the file truncated?"
            ) from None
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: expected a JSON list of objects")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise DatasetError(f"{path}, row {number}: expected a JSON object")
            yield number, row
    elif fmt == "csv":
        lines = [line for _, line in _decoded_lines(path)]
        reader = csv.DictReader(lines)
        for row in reader:
            yield reader.line_num, row
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise DatasetError(f"{path}: not a readable parquet file ({error})") from None
        for number, row in enumerate(table.to_pylist(), start=1):
            yield number, row
    else:  # the schema's enum makes this unreachable from a validated config
        raise DatasetError(f"{path}: unknown format {fmt!r}")


class _LabelParser:
    """Parse 0/1 labels and insist that a file uses one type for them throughout."""

    def __init__(self, path: Path, field: str):
        self.path, self.field = path, field
        self.first_kind: tuple[str, int] | None = None

    def __call__(self, row: dict, number: int) -> int:
        where = f"{self.path}, row {number}"
        if self.field not in row:
            raise DatasetError(f"{where}: no '{self.field}' field (fields: {', '.join(row)})")
        value = row[self.field]
        if value is None or value == "":
            raise DatasetError(f"{where}: the '{self.field}' field is empty")
        # JSON true/false next to 0/1 (or "1") is as much a mix as "1" next to 1.
        kind = (
            "string" if isinstance(value, str)
            else "boolean" if isinstance(value, bool)
            else "number"
        )
        if self.first_kind is None:
            self.first_kind = (kind, number)
        elif kind != self.first_kind[0]:
            raise DatasetError(
                f"{where}: label {value!r} is a {kind}, but the labels before it are "
                f"{self.first_kind[0]}s (first at row {self.first_kind[1]}); use one type"
            )
        if isinstance(value, str):
            value = value.strip()
            if value not in ("0", "1"):
                raise DatasetError(f"{where}: label {value!r} is not 0 or 1")
            return int(value)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, (int, float)) and value in (0, 1):
            return int(value)
        raise DatasetError(f"{where}: label {value!r} is not 0 or 1")


def _text(row: dict, template: str, where: str) -> str:
    try:
        text = template.format_map(row)
    except KeyError as error:
        raise DatasetError(
            f"{where}: the text template {template!r} needs field {error.args[0]!r}, which the "
            f"row lacks (fields: {', '.join(row)})"
        ) from None
    if not text.strip():
        raise DatasetError(f"{where}: the item text is empty")
    return text


def pair_text(a: str, b: str) -> str:
    """What the strong model's prompts show of a pairwise item: the two texts' shared opening once
    (up to its last line break: an HH dialogue's human turn), then each text's own part."""
    shared = os.path.commonprefix([a, b])
    cut = shared.rfind("\n") + 1
    opening = a[:cut].strip()
    parts = [f"Reply A: {a[cut:].strip()}", f"Reply B: {b[cut:].strip()}"]
    return "\n\n".join([opening, *parts] if opening else parts)


def load_file(
    path: str | Path,
    fmt: str | None = None,
    text: str = "{text}",
    label: str = "label",
    pair: dict | None = None,
    seed: int = 0,
) -> list[Item]:
    """Binary items from one local file.

    With ``pair``, each row is a preference pair, and a seeded coin per row (in file order) makes
    the item. Pointwise scoring (``pair.scoring``, default): the item shows the chosen or the
    rejected text, labelled 1 when it is the chosen one (Burns et al.). Pairwise scoring: the item
    holds both texts as A and B in the coin's order, labelled 1 when A is the chosen one; models
    score each text with one head and compare them (Bradley-Terry, training.py).
    """
    path = Path(path)
    items: list[Item] = []
    if pair:
        rng = np.random.default_rng(seed)
        pairwise = pair.get("scoring", "pointwise") == "pairwise"
        for number, row in read_rows(path, fmt):
            where = f"{path}, row {number}"
            for field in (pair["chosen"], pair["rejected"]):
                if not isinstance(row.get(field), str) or not row[field].strip():
                    raise DatasetError(f"{where}: no text in the '{field}' field")
            chosen, rejected = row[pair["chosen"]], row[pair["rejected"]]
            is_chosen = int(rng.random() < 0.5)
            if pairwise:
                if normalise(chosen) == normalise(rejected):
                    raise DatasetError(f"{where}: the chosen and the rejected text are the same")
                a, b = (chosen, rejected) if is_chosen else (rejected, chosen)
                items.append(Item(pair_text(a, b), is_chosen, path.name, number, (a, b)))
            else:
                shown = chosen if is_chosen else rejected
                items.append(Item(shown, is_chosen, path.name, number))
    else:
        parse_label = _LabelParser(path, label)
        for number, row in read_rows(path, fmt):
            where = f"{path}, row {number}"
            items.append(Item(_text(row, text, where), parse_label(row, number), path.name, number))
    if not items:
        raise DatasetError(f"dataset file {path} has no rows")
    return items
