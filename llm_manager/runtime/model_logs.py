"""Per-model log capture: a ring buffer for the UI, a log file on disk, and live lines on the event bus."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .bus import EventBus


@dataclass(frozen=True, slots=True)
class LogLine:
    ts: float
    stream: str  # "stdout" | "stderr" | "manager"
    line: str

    def to_dict(self) -> dict:
        return {"ts": self.ts, "stream": self.stream, "line": self.line}


class ModelLog:
    """The last ``capacity`` lines of one model's output, mirrored to ``<log_dir>/<model>.log``."""

    def __init__(self, model: str, log_dir: Path | None, bus: EventBus | None = None, capacity: int = 2000):
        self.model = model
        self.lines: deque[LogLine] = deque(maxlen=capacity)
        self.bus = bus
        self._file: TextIO | None = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
            self.path: Path | None = log_dir / f"{safe}.log"
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        else:
            self.path = None

    def add(self, line: str, stream: str = "stdout") -> None:
        entry = LogLine(time.time(), stream, line.rstrip("\r\n"))
        self.lines.append(entry)
        if self._file is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.ts))
            self._file.write(f"{stamp} [{stream}] {entry.line}\n")
        if self.bus is not None and self.bus.has_subscribers("log"):
            self.bus.publish("log", {"model": self.model, **entry.to_dict()})

    def tail(self, n: int = 200) -> list[LogLine]:
        if n <= 0:
            return []
        return list(self.lines)[-n:]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
