"""Values that cannot be right, refused by the schema: one range per numeric field, checked in one place.

A schema field states its range in its declaration instead of a hand-written check::

    batch_size: int = at_least(1, 4)          # 4 by default, refused below 1
    epochs: float = above(0, 1.0)             # > 0
    max_steps: int = at_least(1, -1, unset=-1) # -1 means "not set" (derive from epochs)
    dropout: float = within(0, 1, 0.05, hi_open=True)

The range lives in the field's metadata (OmegaConf ignores it), :func:`check` walks a validated
config once (every group, the backend's and the model's schemas included) and raises
:class:`BoundsError` with the dotted key: ``train.epochs must be > 0 (got -1.0)``. ``None`` (an
optional field left unset) is never out of range. ``python -m ftlab.config.reference`` prints each
range beside the field's type.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

KEY = "ftlab.range"


class BoundsError(ValueError):
    """A config value outside its field's declared range."""


@dataclass(frozen=True)
class Range:
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    unset: tuple = ()
    """Sentinel values that mean "not set" and are always allowed (``max_steps=-1``)."""

    def holds(self, value: Any) -> bool:
        if value in self.unset:
            return True
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return not (self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)))

    def text(self) -> str:
        """``> 0``, ``>= 1``, ``in [0, 1)``, ``-1 or >= 1``."""
        if self.lo is not None and self.hi is not None:
            rng = f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            rng = f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        else:
            rng = f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return " or ".join([*(str(u) for u in self.unset), rng])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _field(default: Any, rng: Range) -> Any:
    return dataclasses.field(default=default, metadata={KEY: rng})


def at_least(lo: float, default: Any, unset: tuple | Any = ()) -> Any:
    """A field whose value must be ``>= lo`` (or one of the ``unset`` sentinels)."""
    return _field(default, Range(lo=lo, unset=unset if isinstance(unset, tuple) else (unset,)))


def above(lo: float, default: Any) -> Any:
    """A field whose value must be ``> lo``."""
    return _field(default, Range(lo=lo, lo_open=True))


def within(lo: float, hi: float, default: Any, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A field whose value must lie between ``lo`` and ``hi`` (closed unless told open)."""
    return _field(default, Range(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open))


def range_of(f: dataclasses.Field) -> Optional[Range]:
    return f.metadata.get(KEY)


def check(node: Any, prefix: str = "") -> None:
    """Raise :class:`BoundsError` for the first field of ``node`` (a dataclass instance, walked into
    nested dataclasses and lists of them) whose value is outside its declared range."""
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name, None), f"{prefix}{f.name}"
        rng = range_of(f)
        if rng is not None and value is not None and not isinstance(value, bool) \
                and isinstance(value, (int, float)) and not rng.holds(value):
            raise BoundsError(f"{key} must be {rng.text()} (got {value})")
        if dataclasses.is_dataclass(value):
            check(value, f"{key}.")
