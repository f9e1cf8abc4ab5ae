"""anchor_generator_builder: `AnchorGenerator` text protos -> MultiscaleGridAnchorGenerator."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from object_detection.builders import anchor_generator_builder
from object_detection.protos import anchor_generator_pb2
from object_detection.utils.errors import ConfigError

# The anchor_generator of the SSD320 v1.2 seed configs.
SEED = """
  multiscale_anchor_generator {
    min_level: 3
    max_level: 7
    anchor_scale: 4.0
    aspect_ratios: [1.0, 2.0, 0.5]
    scales_per_octave: 2
  }
"""


def _build(text: str):
    return anchor_generator_builder.build(
        text_format.Parse(text, anchor_generator_pb2.AnchorGenerator()))


def test_seed_anchor_generator_values():
    generator = _build(SEED)
    assert (generator.min_level, generator.max_level) == (3, 7)
    assert generator.anchor_scale == 4.0
    assert tuple(generator.aspect_ratios) == (1.0, 2.0, 0.5)
    assert generator.scales_per_octave == 2
    assert generator.normalize_coordinates
    assert generator.num_anchors_per_location() == 6  # 3 aspect ratios x 2 scales


def test_seed_anchor_count_at_320():
    # Grids ceil(320 / 2**l): 40, 20, 10, 5, 3 -> 1600 + 400 + 100 + 25 + 9 = 2134 locations.
    anchors = _build(SEED).generate(320, 320)
    assert anchors.shape == (6 * 2134, 4)  # 12,804


@pytest.mark.parametrize("normalize, expected", [
    # Level 7 at 128 px: one cell, centre (64, 64) (128 % 128 == 0: half-stride offset), side
    # anchor_scale * 2**7 = 512 px.
    ("true", [[-1.5, -1.5, 2.5, 2.5]]),  # normalized by 128
    ("false", [[-192.0, -192.0, 320.0, 320.0]]),  # pixels
])
def test_single_anchor_hand_computed(normalize, expected):
    generator = _build(f"""
      multiscale_anchor_generator {{
        min_level: 7 max_level: 7 anchor_scale: 4.0 aspect_ratios: [1.0] scales_per_octave: 1
        normalize_coordinates: {normalize}
      }}""")
    np.testing.assert_allclose(generator.generate(128, 128), expected, rtol=1e-6)


@pytest.mark.parametrize("text, pattern", [
    # Levels out of order.
    ("min_level: 5 max_level: 4",
     r"multiscale_anchor_generator: need min_level \(5\) <= max_level \(4\)"),
    ("anchor_scale: 0.0", r"multiscale_anchor_generator\.anchor_scale: must be > 0, got 0"),
    ("anchor_scale: -4.0", r"multiscale_anchor_generator\.anchor_scale: must be > 0, got -4"),
    ("scales_per_octave: 0",
     r"multiscale_anchor_generator\.scales_per_octave: must be >= 1, got 0"),
    ("aspect_ratios: [1.0, -2.0]",
     r"multiscale_anchor_generator\.aspect_ratios: each must be > 0, got \[1\.0, -2\.0\]"),
])
def test_config_errors_name_the_field(text, pattern):
    with pytest.raises(ConfigError, match=r"^model\.ssd\.anchor_generator\." + pattern):
        _build(f"multiscale_anchor_generator {{ {text} }}")


@pytest.mark.parametrize("which", [
    "ssd_anchor_generator",  # SSD (non-FPN) anchors: one per feature map of a non-FPN extractor
    "grid_anchor_generator",  # Faster R-CNN anchors
])
def test_other_anchor_generators_are_rejected(which):
    with pytest.raises(ConfigError, match=rf"^model\.ssd\.anchor_generator: '{which}' is not "
                                          r"supported; expected one of "
                                          r"\['multiscale_anchor_generator'\]"):
        _build(f"{which} {{ }}")


def test_no_anchor_generator_is_rejected():
    with pytest.raises(ConfigError, match=r"^model\.ssd\.anchor_generator: None is not supported"):
        _build("")
