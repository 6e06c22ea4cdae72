"""``gateway audit verify``: check a trail and its rotated files line by line."""


from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from types import NoneType
from typing import TYPE_CHECKING, Any

import orjson

from gateway.audit.log import OUTCOMES

if TYPE_CHECKING:
    pass


FIELDS: dict[str, tuple[type, ...]] = {
    "ts": (str,), "connector_id": (str, NoneType), "outcome": (str,),
    "reason": (str, NoneType), "event_ids": (list,), "request_id": (str, NoneType),
    "remote_addr": (str, NoneType), "body_sha256": (str, NoneType), "bytes": (int, NoneType)}
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass(frozen=True)
class FileCount:
    path: Path
    lines: int
    bad: int


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int  # from 1
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    files: list[FileCount]  # oldest first: PATH.{n} ... PATH.1, PATH
    bad_lines: list[BadLine]  # the first ones

    @property
    def ok(self) -> bool:
        return bool(self.files) and not any(f.bad for f in self.files)

    def summary(self) -> str:
        if not self.files:
            return f"no audit file at {self.path}"
        out = [f"{f.path}: {f.lines} lines" + (f", {f.bad} bad" if f.bad else "")
               for f in self.files]
        bad = sum(f.bad for f in self.files)
        total = sum(f.lines for f in self.files)
        if not bad:
            out.append(f"ok: {total} lines in {len(self.files)} files")
            return "\n".join(out)
        out.append(f"{bad} bad of {total} lines in {len(self.files)} files"
                   + (f"; the first {len(self.bad_lines)}:" if len(self.bad_lines) < bad
                      else ":"))
        out += [f"  {b.path}:{b.line}: {b.problem}" for b in self.bad_lines]
        return "\n".join(out)


def verify_files(path: Path, *, max_bad: int = 20) -> VerifyReport:
    """Checks that every line of ``path`` and its rotated files is a whole audit line."""
    rotated = sorted((int(p.name.rpartition(".")[2]), p) for p in path.parent.glob(
        glob.escape(path.name) + ".*") if p.name.rpartition(".")[2].isdigit())
    candidates = [p for _, p in reversed(rotated)] + [path]
    files: list[FileCount] = []
    bad_lines: list[BadLine] = []
    for p in candidates:
        try:
            f = p.open("rb")
        except FileNotFoundError:
            continue  # rotated away while we looked
        lines = bad = 0
        with f:
            for lines, raw in enumerate(f, 1):
                problem = _check_line(raw)
                if problem is not None:
                    bad += 1
                    if len(bad_lines) < max_bad:
                        bad_lines.append(BadLine(p, lines, problem))
        files.append(FileCount(p, lines, bad))
    return VerifyReport(path, files, bad_lines)


def _check_line(raw: bytes) -> str | None:
    if not raw.endswith(b"\n"):
        return "incomplete last line (no newline)"
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not JSON (a torn or interleaved line?)"
    if not isinstance(obj, dict):
        return "not a JSON object"
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        return "missing " + ", ".join(missing)
    for key, types in FIELDS.items():
        if not isinstance(obj[key], types) or isinstance(obj[key], bool):
            return f"{key} is a {type(obj[key]).__name__}"
    if obj["outcome"] not in OUTCOMES:
        return f"unknown outcome {obj['outcome'][:40]!r}"
    if not all(isinstance(i, str) for i in obj["event_ids"]):
        return "event_ids holds a non-string"
    if not _TS.fullmatch(obj["ts"]):
        return "ts is not YYYY-MM-DDTHH:MM:SS.mmmZ"
    return None
