"""An on-disk, in-order queue of OCPP frames that must reach the backend (local controller mode).

While the operator's backend is unreachable, transactions and meter values a charge point sends
are appended here (one JSON line per frame) and replayed in order when the backend is back. The
file survives a restart of fuseguard. The queue is bounded: beyond ``max_entries`` the oldest
entries are dropped, loudly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One queued frame; ``local_tx`` is the transaction id fuseguard gave a StartTransaction it
    answered itself (the backend's id replaces it on replay)."""

    frame: str
    local_tx: int | None = None


class Spool:
    """A JSON-lines file of :class:`SpoolEntry`, oldest first."""

    def __init__(self, path: Path, *, max_entries: int = 100_000) -> None:
        self.path = path
        self.max_entries = max_entries
        self._entries: list[SpoolEntry] = self._load()

    @classmethod
    def for_identity(cls, directory: Path, identity: str) -> Spool:
        """The spool file of one charge point identity in ``directory``."""
        return cls(directory / f"{_SAFE.sub('_', identity)}.jsonl")

    def _load(self) -> list[SpoolEntry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                data = json.loads(line)
                frame, local_tx = data["frame"], data.get("local_tx")
            except (ValueError, KeyError, TypeError):
                log.warning("ocpp_spool_line_skipped", device=str(self.path), reason="not JSON")
                continue
            if isinstance(frame, str) and (local_tx is None or isinstance(local_tx, int)):
                entries.append(SpoolEntry(frame, local_tx))
        return entries

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[SpoolEntry]:
        """A copy of the queued entries, oldest first."""
        return list(self._entries)

    def append(self, entry: SpoolEntry) -> None:
        """Queue one frame (and persist it before returning)."""
        self._entries.append(entry)
        if len(self._entries) > self.max_entries:
            dropped = len(self._entries) - self.max_entries
            del self._entries[:dropped]
            log.warning("ocpp_spool_full", device=str(self.path), reason=f"dropped {dropped}")
            self._write()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_line(entry))

    def pop_first(self) -> None:
        """Remove the oldest entry (it reached the backend)."""
        if self._entries:
            del self._entries[0]
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(_line(e) for e in self._entries), encoding="utf-8")
        tmp.replace(self.path)


def _line(entry: SpoolEntry) -> str:
    return json.dumps({"frame": entry.frame, "local_tx": entry.local_tx}) + "\n"


__all__ = ["Spool", "SpoolEntry"]
