"""box_coder_builder: `BoxCoder` text protos -> FasterRcnnBoxCoder."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from object_detection.builders import box_coder_builder
from object_detection.protos import box_coder_pb2
from object_detection.utils.errors import ConfigError


def _build(text: str):
    return box_coder_builder.build(text_format.Parse(text, box_coder_pb2.BoxCoder()))


def test_seed_box_coder():
    coder = _build("faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 "
                   "width_scale: 5.0 }")
    assert coder.scale_factors == (10.0, 10.0, 5.0, 5.0)
    assert coder.code_size == 4


def test_scale_factors_reach_the_encoding():
    # Anchor centre (0.25, 0.25), size 0.5 x 0.5; box centre (0.3, 0.25), size 0.5 x 1.0:
    # ty = 2 * (0.05 / 0.5) = 0.2, tx = 0, th = 3 * log(1) = 0, tw = 4 * log(2).
    coder = _build("faster_rcnn_box_coder { y_scale: 2.0 x_scale: 1.0 height_scale: 3.0 "
                   "width_scale: 4.0 }")
    codes = coder.encode(np.array([[0.05, -0.25, 0.55, 0.75]], np.float32),
                         np.array([[0.0, 0.0, 0.5, 0.5]], np.float32))
    np.testing.assert_allclose(codes, [[0.2, 0.0, 0.0, 4.0 * np.log(2.0)]], rtol=1e-5, atol=1e-6)


def test_default_scales_are_the_od_api_ones():
    assert _build("faster_rcnn_box_coder {}").scale_factors == (10.0, 10.0, 5.0, 5.0)


@pytest.mark.parametrize("field", ["y_scale", "x_scale", "height_scale", "width_scale"])
def test_non_positive_scale_is_an_error(field):
    with pytest.raises(ConfigError, match=rf"^model\.ssd\.box_coder\.faster_rcnn_box_coder\."
                                          rf"{field}: must be > 0, got 0"):
        _build(f"faster_rcnn_box_coder {{ {field}: 0.0 }}")


@pytest.mark.parametrize("which", ["mean_stddev_box_coder", "square_box_coder"])
def test_other_box_coders_are_rejected(which):
    with pytest.raises(ConfigError, match=rf"^model\.ssd\.box_coder: '{which}' is not supported; "
                                          r"expected one of \['faster_rcnn_box_coder'\]"):
        _build(f"{which} {{ }}")
