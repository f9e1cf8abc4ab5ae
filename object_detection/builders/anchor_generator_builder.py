"""Builds the anchor generator of `model.ssd.anchor_generator`."""
from __future__ import annotations

from object_detection.builders import config_rules
from object_detection.core import anchor_generator
from object_detection.protos import anchor_generator_pb2
from object_detection.utils.errors import ConfigError

SUPPORTED = ("multiscale_anchor_generator",)


def build(config: anchor_generator_pb2.AnchorGenerator, path: str = "model.ssd.anchor_generator"
          ) -> anchor_generator.MultiscaleGridAnchorGenerator:
    which = config.WhichOneof("anchor_generator_oneof")
    if which not in SUPPORTED:
        raise ConfigError(f"{path}: {which!r} is not supported; expected one of {list(SUPPORTED)}"
                          " (the FPN extractors need one anchor grid per pyramid level).")
    c = config.multiscale_anchor_generator
    path = f"{path}.{which}"
    config_rules.raise_first(config_rules.multiscale_anchor_generator_problems(c, path))
    if c.anchor_scale <= 0:
        raise ConfigError(f"{path}.anchor_scale: must be > 0, got {c.anchor_scale}.")
    if c.scales_per_octave < 1:
        raise ConfigError(f"{path}.scales_per_octave: must be >= 1, got {c.scales_per_octave}.")
    if any(r <= 0 for r in c.aspect_ratios):
        raise ConfigError(f"{path}.aspect_ratios: each must be > 0, got {list(c.aspect_ratios)}.")
    return anchor_generator.MultiscaleGridAnchorGenerator(
        min_level=c.min_level, max_level=c.max_level, anchor_scale=c.anchor_scale,
        aspect_ratios=tuple(c.aspect_ratios) or (1.0, 2.0, 0.5),
        scales_per_octave=c.scales_per_octave,
        normalize_coordinates=c.normalize_coordinates)
