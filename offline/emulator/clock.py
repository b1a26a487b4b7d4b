"""Emulated time: real time plus an offset that tests move forward.

Run and batch states are computed from this clock on every read, so advancing it is all a test
needs to do to see a run finish; nothing runs in the background.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time shifted by a forward-only offset."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Emulated epoch seconds."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Moves emulated time forward and returns the new emulated now.

        Time never goes backwards: runs already recorded as finished must stay finished.
        """
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()


def isoformat(epoch: float) -> str:
    """Formats like ADF does: seven fractional digits and a ``Z``."""
    whole = int(epoch // 1)
    ticks = round((epoch - whole) * 10_000_000)
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, 0
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ticks:07d}Z"


def arm_timestamp(epoch: float) -> str:
    """Formats like ARM's authentication messages (``11/22/2025 1:46:00 AM``)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    hour = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {meridiem}"


def parse_iso(text: str) -> float:
    """Parses an ISO 8601 timestamp; a value without a zone is taken as UTC, as ADF does."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
