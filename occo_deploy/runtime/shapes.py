"""The batch and frame sizes an engine accepts, shared by backends and their staging buffers."""

from __future__ import annotations

from dataclasses import dataclass

from occo_deploy.contract import MIN_SIDE
from occo_deploy.errors import ShapeError, option


@dataclass(frozen=True)
class ShapeRange:
    """Batch, height and width an engine accepts (inclusive); ``None`` means unbounded.

    Dynamic ONNX takes anything from ``MIN_SIDE`` (the network's limit) up; a TensorRT plan holds its
    optimization profile, whose minimum may be larger.
    """

    min_batch: int = 1
    max_batch: int | None = None
    min_height: int = MIN_SIDE
    min_width: int = MIN_SIDE
    max_height: int | None = None
    max_width: int | None = None

    def check(self, n: int, h: int, w: int) -> None:
        if h < MIN_SIDE or w < MIN_SIDE:
            raise ShapeError(
                f"frames of {h}x{w} are too small: OCCO needs height and width >= {MIN_SIDE}; upscale them first"
            )
        if h < self.min_height or w < self.min_width:
            raise ShapeError(
                f"frames of {h}x{w} are below this engine's minimum {self.min_height}x{self.min_width}; "
                "rebuild it with a smaller --min shape or upscale the frames"
            )
        if (self.max_height is not None and h > self.max_height) or (self.max_width is not None and w > self.max_width):
            raise ShapeError(
                f"frames of {h}x{w} exceed this engine's maximum {self.max_height}x{self.max_width}; "
                "rebuild it with a larger --max shape or resize the frames"
            )
        if n < self.min_batch or (self.max_batch is not None and n > self.max_batch):
            raise ShapeError(
                f"batch of {n} is outside this engine's range {self.min_batch}..{self.max_batch}; "
                f"use a smaller {option('batch')} or rebuild with a larger --max batch"
            )
