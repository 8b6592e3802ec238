"""BIG-bench tasks (Apache-2.0): the registered tasks' files ship with the project, and any other
comes from the ``bigbench`` sdist on PyPI.

The registered tasks' ``task.json`` files are in ``data/bigbench/`` (gzipped, 2.7 MB, extracted
from the sdist whose sha256 is below; ``SHA256SUMS`` there holds each file's checksum), so a study
needs no download: ``copy_shipped`` checks the checksum and writes the file. The sdist is 358 MB;
``fetch_tasks`` streams it through gzip and tar, keeps only the task files asked for, and checks the
sdist's published sha256 before anything is written. Never ``pip install bigbench``: its
dependencies include tensorflow.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import tarfile
import urllib.request
from pathlib import Path

from ..errors import DatasetError
from ..io import write_text
from .items import Item

log = logging.getLogger(__name__)

BIGBENCH_SDIST_URL = (
    "https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/"
    "bigbench-1.0.0.tar.gz"
)
BIGBENCH_SDIST_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
_TASKS_DIR = "/bigbench/benchmark_tasks/"


class _HashingReader(io.RawIOBase):
    """Pass bytes through while hashing them, so the sdist is checked without being stored."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.n_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.raw.read(len(buffer))
        self.digest.update(chunk)
        self.n_bytes += len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def fetch_tasks(
    tasks: dict[str, str],
    url: str = BIGBENCH_SDIST_URL,
    sha256: str = BIGBENCH_SDIST_SHA256,
    timeout: float = 60.0,
) -> None:
    """Extract ``{bigbench task folder: output path}`` from the sdist at ``url``."""
    wanted = {f"{_TASKS_DIR}{task}/task.json": Path(out) for task, out in tasks.items()}
    found: dict[Path, bytes] = {}
    log.info("streaming %s for %s", url, ", ".join(tasks))
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except OSError as error:
        raise DatasetError(
            f"cannot download the bigbench sdist from {url}: {error}. It is fetched once from "
            "PyPI; on a machine without PyPI access, copy the task.json files to "
            f"{', '.join(str(p) for p in wanted.values())} by hand."
        ) from error
    with response:
        reader = _HashingReader(response)
        with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 20), mode="r|gz") as archive:
            for member in archive:
                for suffix, out in wanted.items():
                    if member.isfile() and member.name.endswith(suffix):
                        found[out] = archive.extractfile(member).read()
        reader.drain()
    if reader.digest.hexdigest() != sha256:
        raise DatasetError(
            f"the bigbench sdist from {url} has sha256 {reader.digest.hexdigest()}, "
            f"expected {sha256}; refusing to use it"
        )
    missing = [task for task, out in tasks.items() if Path(out) not in found]
    if missing:
        raise DatasetError(f"the bigbench sdist at {url} holds no task {', '.join(missing)}")
    for out, payload in found.items():
        write_text(out, payload.decode("utf-8"))
    log.info("extracted %d task file(s) from %.0f MB", len(found), reader.n_bytes / 1e6)


def load_task(path: str | Path, positive: str) -> list[Item]:
    """Binary items from a BIG-bench ``task.json`` whose ``target_scores`` score two choices 1 and
    0 (ints or floats, as tasks write either), label 1 where ``positive`` scores 1."""
    path = Path(path)
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read BIG-bench task file {path}: {error}") from error
    items = []
    for row, example in enumerate(task.get("examples", []), start=1):
        scores = example.get("target_scores", {})
        if positive not in scores or sorted(scores.values()) != [0, 1]:
            raise DatasetError(
                f"{path}, example {row}: target_scores {scores!r} are not a binary choice "
                f"with '{positive}' (two keys, scored 1 and 0)"
            )
        items.append(Item(example["input"], int(scores[positive] == 1), path.name, row))
    return items


def shipped_checksums(folder: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` from a shipped folder's SHA256SUMS (``sha256sum`` format)."""
    path = Path(folder) / "SHA256SUMS"
    if not path.is_file():
        return {}
    return {name: digest for digest, name in
            (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())}


def copy_shipped(name: str, folder: str | Path, out: str | Path) -> bool:
    """Write the shipped copy of task ``name`` (``<folder>/<name>.json.gz``) to ``out`` after
    checking its sha256 against SHA256SUMS; False when the project ships no copy of it."""
    source = Path(folder) / f"{name}.json.gz"
    expected = shipped_checksums(folder).get(f"{name}.json")
    if not source.is_file() or expected is None:
        return False
    payload = gzip.decompress(source.read_bytes())
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected:
        raise DatasetError(f"{source}: sha256 {digest} differs from SHA256SUMS' {expected}; "
                           "the shipped copy is damaged (restore it from git)")
    write_text(out, payload.decode("utf-8"))
    log.info("copied the shipped BIG-bench task %s from %s", name, source)
    return True


def obtain_task(name: str, bigbench_folder: str, out: str | Path, shipped: str | Path) -> None:
    """The task file of registered dataset ``name``: the shipped copy, else from the sdist."""
    if not copy_shipped(name, shipped, out):
        fetch_tasks({bigbench_folder: out})
