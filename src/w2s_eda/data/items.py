"""The binary item every stage works on, and its content hash."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to detect the same item twice."""
    return _WHITESPACE.sub(" ", text).strip().casefold()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Item:
    text: str
    label: int
    source: str  # file name or hub split the item came from
    row: int  # 1-based row (line for jsonl/csv) in that source
    # Pairwise items (a dataset's ``pair.scoring: pairwise``): the two texts scored one by one,
    # A first; ``text`` shows both, label 1 when A is the chosen one.
    pair: tuple[str, str] | None = None

    @property
    def hash(self) -> str:
        return content_hash(self.text)

    @property
    def id(self) -> str:
        """Short stable id: the first 16 hex digits of the content hash."""
        return self.hash[:16]

    def where(self) -> str:
        return f"{self.source}, row {self.row}"
