"""Optimization profiles: the batch and frame sizes an engine is built (and calibrated) for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from occo_deploy.contract import MIN_SIDE
from occo_deploy.errors import InputError, ShapeError

Shape = tuple[int, int, int]  # N, H, W
DEFAULT_OPT: Shape = (1, 480, 640)


def _parse(text: str, with_batch: bool, option: str) -> Shape:
    parts = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)(?:\s*[xX]\s*(\d+))?\s*", text or "")
    if not parts or (parts.group(3) is None) == with_batch:
        form = "NxHxW, e.g. 1x480x640" if with_batch else "HxW, e.g. 480x640"
        raise InputError(f"{option} {text!r} is not {form}")
    a, b, c = parts.groups()
    return (int(a), int(b), int(c)) if with_batch else (1, int(a), int(b))


@dataclass(frozen=True)
class Profile:
    """min <= opt <= max, each N x H x W; ``dynamic`` when the user gave none (ONNX Runtime takes any)."""

    min: Shape
    opt: Shape
    max: Shape
    dynamic: bool = False

    @classmethod
    def from_options(cls, shape: str | None = None, min_: str | None = None, opt: str | None = None,
                     max_: str | None = None) -> Profile:
        """``--shape HxW`` (static, batch 1) or ``--min/--opt/--max NxHxW`` (all three), or nothing."""
        ranged = [v is not None for v in (min_, opt, max_)]
        if shape is not None and any(ranged):
            raise InputError("give either --shape or --min/--opt/--max, not both")
        if any(ranged) and not all(ranged):
            raise InputError("--min, --opt and --max go together; give all three (or --shape)")
        if shape is not None:
            s = _parse(shape, False, "--shape")
            profile = cls(s, s, s)
        elif all(ranged):
            profile = cls(_parse(min_ or "", True, "--min"), _parse(opt or "", True, "--opt"),
                          _parse(max_ or "", True, "--max"))
        else:
            profile = cls(DEFAULT_OPT, DEFAULT_OPT, DEFAULT_OPT, dynamic=True)
        profile.validate()
        return profile

    @classmethod
    def from_lists(cls, min_: list[int], opt: list[int], max_: list[int]) -> Profile:
        """The profile a sidecar recorded (``shapes``: min, opt, max as lists of N, H, W)."""
        def shape(values: list[int]) -> Shape:
            n, h, w = (int(v) for v in values)
            return n, h, w

        profile = cls(shape(min_), shape(opt), shape(max_))
        profile.validate()
        return profile

    def validate(self) -> None:
        for name, s in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if s[0] < 1:
                raise ShapeError(f"{name} batch must be at least 1 (got {s[0]})")
            if s[1] < MIN_SIDE or s[2] < MIN_SIDE:
                raise ShapeError(
                    f"{name} shape {s[1]}x{s[2]} is below what OCCO supports: height and width >= {MIN_SIDE}"
                )
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ShapeError(f"profile needs min <= opt <= max in every dimension (got {self.describe()})")

    @property
    def static(self) -> bool:
        return not self.dynamic and self.min == self.opt == self.max

    @property
    def opt_hw(self) -> tuple[int, int]:
        return self.opt[1], self.opt[2]

    def describe(self) -> str:
        fmt = "x".join
        if self.dynamic:
            return f"dynamic (calibrated and checked at {self.opt[1]}x{self.opt[2]})"
        if self.static:
            return f"static {fmt(map(str, self.opt))}"
        return f"min {fmt(map(str, self.min))}, opt {fmt(map(str, self.opt))}, max {fmt(map(str, self.max))}"

    def as_dict(self) -> dict[str, Any]:
        if self.dynamic:
            return {"dynamic": True, "opt": list(self.opt)}
        return {"dynamic": False, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}
