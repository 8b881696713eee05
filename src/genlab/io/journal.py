"""metrics.jsonl: an append-only journal of JSON records, one a line.

A process killed while appending (SIGKILL, out of memory, a full disk) can leave a torn last
line; readers drop it. A damaged line anywhere else is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.errors import RunError
from genlab.io.atomic import write_text_atomic


def _entries(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """Each intact line of the journal with its record, and whether a torn last line was left
    out."""
    lines = [line for line in Path(path).read_text(errors="replace").split("\n") if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines) - 1:  # torn by a kill during the last append
                return out, True
            raise RunError(f"{path} line {i + 1} is damaged ({e}); remove that line") from None
        out.append((line, record))
    return out, False


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The records of a journal ([] when there is none), without a torn last line."""
    path = Path(path)
    return [record for _, record in _entries(path)[0]] if path.exists() else []


def truncate_journal(path: str | Path, step: int) -> bool:
    """Keep only the records up to `step` and drop a torn last line, rewriting atomically;
    returns whether a torn line was dropped."""
    path = Path(path)
    if not path.exists():
        return False
    entries, torn = _entries(path)
    keep = [line for line, record in entries if record.get("step", 0) <= step]
    write_text_atomic(path, "".join(line + "\n" for line in keep))
    return torn
