"""Sighting ids and time windows: the one owner of the rule "a sighting id encodes its minute".

A sighting's id is (minute + 1) << ID_BUCKET_BITS | slot << SLOT_SHIFT | n: the minute (since the epoch) it was
seen, its camera's slot (a small number the catalog gives each camera), and n counting that camera's sightings of
that minute in the order they are stored (never reused). The catalog allocates them, the index shards by time and
partitions by slot, so a time window is one id range plus its two partial minutes and a camera is a slot: neither
is a list of ids, whatever the collection holds.

Ids allocated before camera slots (catalog migration 18) have no camera in them: their minute's n counted every
camera's sightings, so their slot bits are n's high bits, below the catalog's `legacy_slots` (no camera is given
one of those). Ids below FIRST_TIMED_ID were allocated before time-ordered ids and carry no time either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

ID_BUCKET_S = 60  # seconds per minute bucket
ID_BUCKET_BITS = 24  # ids per minute: 1 << ID_BUCKET_BITS
FIRST_TIMED_ID = 1 << ID_BUCKET_BITS
SLOT_BITS = 12  # camera slots: 1 << SLOT_BITS per catalog (slot 0 and the legacy ones are never a camera's)
SLOT_SHIFT = ID_BUCKET_BITS - SLOT_BITS  # ids per camera per minute: 1 << SLOT_SHIFT
MAX_SLOT = (1 << SLOT_BITS) - 1
MAX_ID = 1 << 62
DAY_S = 86_400  # seconds per day (UTC): the PostgreSQL catalog's partitions (catalog/partitions.py)
_OPEN_END = 1 << 40  # a minute past any real one: the window has no end


def minute_of_ts(ts_s: float) -> int:
    """The minute (since the epoch, from 0) whose id range holds a sighting seen at ts_s."""
    return max(0, int(ts_s // ID_BUCKET_S))


def minute_ids(minute: int) -> tuple[int, int]:
    """[lo, hi) of the ids of one minute."""
    lo = (minute + 1) << ID_BUCKET_BITS
    return lo, lo + (1 << ID_BUCKET_BITS)


def day_ids(day: int) -> tuple[int, int]:
    """[lo, hi) of the ids of one UTC day (days since the epoch)."""
    per_day = DAY_S // ID_BUCKET_S
    return minute_ids(day * per_day)[0], minute_ids((day + 1) * per_day)[0]


def day_of_ts(ts_s: float) -> int:
    """The UTC day (since the epoch, from 0) of a time."""
    return minute_of_ts(ts_s) // (DAY_S // ID_BUCKET_S)


def camera_minute_ids(minute: int, slot: int) -> tuple[int, int]:
    """[lo, hi) of the ids of one camera slot in one minute."""
    lo = minute_ids(minute)[0] + (slot << SLOT_SHIFT)
    return lo, lo + (1 << SLOT_SHIFT)


def slot_of(ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """The camera slot bits of each id (for an id from before camera slots: the high bits of its minute's n)."""
    return (np.asarray(ids, np.int64) >> SLOT_SHIFT) & MAX_SLOT


def is_legacy(ids: NDArray[np.int64], legacy_slots: int) -> NDArray[np.bool_]:
    """Which ids were allocated before camera slots (their camera is not in them; `legacy_slots`: the catalog's)."""
    ids = np.asarray(ids, np.int64)
    return (ids < FIRST_TIMED_ID) | (slot_of(ids) < legacy_slots)


def minute_of(ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """The minute each id was allocated for; -1 for ids from before time-ordered ids."""
    return (np.asarray(ids, np.int64) >> ID_BUCKET_BITS) - 1


def minute_of_id(sighting_id: int) -> int:
    """The minute one id was allocated for; -1 for an id from before time-ordered ids."""
    return (int(sighting_id) >> ID_BUCKET_BITS) - 1


def minutes_ids(first: int, end: int) -> tuple[int, int]:
    """[lo, hi) of the ids of minutes [first, end); minute -1 stands for the ids from before time-ordered ids."""
    return (0 if first < 0 else minute_ids(first)[0]), (FIRST_TIMED_ID if end <= 0 else minute_ids(end)[0])


@dataclass(frozen=True)
class Window:
    """A time window (epoch seconds, inclusive; None: open at that end) planned as id ranges.

    Its sightings lie in `envelope`; every sighting of the minutes `whole` (inclusive) is inside it; the ids of
    its first and last minutes (`partial`) must be checked by their times. Legacy ids (below FIRST_TIMED_ID) are
    outside the envelope and are selected by time.
    """

    from_ts_s: float | None
    to_ts_s: float | None

    @property
    def lo_ts(self) -> float:
        return -1e300 if self.from_ts_s is None else self.from_ts_s

    @property
    def hi_ts(self) -> float:
        return 1e300 if self.to_ts_s is None else self.to_ts_s

    @property
    def first(self) -> int:
        """The first (partial) minute; -1 when the window has no start."""
        return -1 if self.from_ts_s is None else minute_of_ts(self.from_ts_s)

    @property
    def last(self) -> int:
        """The last (partial) minute; a minute past any real one when the window has no end."""
        return _OPEN_END if self.to_ts_s is None else minute_of_ts(self.to_ts_s)

    @property
    def whole(self) -> tuple[int, int]:
        """The minutes [a, b] wholly inside the window."""
        return self.first + 1, self.last - 1

    @property
    def envelope(self) -> tuple[int, int]:
        """[lo, hi) of the ids the window's minutes hold."""
        return (
            minute_ids(max(self.first, 0))[0] if self.from_ts_s is not None else FIRST_TIMED_ID,
            minute_ids(self.last)[1] if self.to_ts_s is not None else MAX_ID,
        )

    @property
    def partial_minutes(self) -> tuple[int, ...]:
        """The minutes only partly inside the window (its first and last)."""
        return tuple(sorted({self.first, self.last} - {-1, _OPEN_END}))

    @property
    def partial(self) -> tuple[tuple[int, int], ...]:
        """The id ranges of the minutes only partly inside the window (its first and last)."""
        return tuple(minute_ids(m) for m in self.partial_minutes)

    def outside(self, ids: NDArray[np.int64], times: dict[int, float]) -> NDArray[np.bool_]:
        """Which of `ids` (found in the envelope) are outside the window: those of a partial minute whose time
        (`times`, from the catalog; missing: gone meanwhile) is not inside it."""
        maybe = self.in_partial(ids)
        t = np.array([times.get(i, np.nan) for i in ids.tolist()])
        return maybe & ~((t >= self.lo_ts) & (t <= self.hi_ts))

    def in_partial(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of `ids` are in a partial minute (their times decide)."""
        maybe = np.zeros(len(ids), bool)
        for a, b in self.partial:
            maybe |= (ids >= a) & (ids < b)
        return maybe
