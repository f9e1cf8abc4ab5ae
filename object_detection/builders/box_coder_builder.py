"""Builds the box coder of `model.ssd.box_coder`."""
from __future__ import annotations

from object_detection.core import box_coder
from object_detection.protos import box_coder_pb2
from object_detection.utils.errors import ConfigError

SUPPORTED = ("faster_rcnn_box_coder",)


def build(config: box_coder_pb2.BoxCoder,
          path: str = "model.ssd.box_coder") -> box_coder.FasterRcnnBoxCoder:
    which = config.WhichOneof("box_coder_oneof")
    if which not in SUPPORTED:
        raise ConfigError(f"{path}: {which!r} is not supported; expected one of {list(SUPPORTED)}.")
    c = config.faster_rcnn_box_coder
    scales = (c.y_scale, c.x_scale, c.height_scale, c.width_scale)
    for name, value in zip(("y_scale", "x_scale", "height_scale", "width_scale"), scales):
        if value <= 0:
            raise ConfigError(f"{path}.{which}.{name}: must be > 0, got {value}.")
    return box_coder.FasterRcnnBoxCoder(scale_factors=scales)
