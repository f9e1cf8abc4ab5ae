"""losses_builder: `model.ssd.loss` (+ normalization flags) text protos -> LossOptions."""
from __future__ import annotations

import pytest
from google.protobuf import text_format

from object_detection.builders import losses_builder
from object_detection.meta_architectures.ssd_meta_arch import LossOptions
from object_detection.protos import ssd_pb2
from object_detection.utils.errors import ConfigError

# The loss part of the SSD320 v1.2 seed configs.
SEED = """
  loss {
    classification_loss { weighted_sigmoid_focal { alpha: 0.25 gamma: 2.0 } }
    localization_loss { weighted_smooth_l1 { } }
    classification_weight: 1.0
    localization_weight: 1.0
  }
  normalize_loss_by_num_matches: true
  normalize_loc_loss_by_codesize: true
"""


def _build(text: str):
    return losses_builder.build(text_format.Parse(text, ssd_pb2.Ssd()))


def test_seed_losses():
    assert _build(SEED) == LossOptions(
        classification_loss="sigmoid_focal", focal_alpha=0.25, focal_gamma=2.0,
        localization_loss="smooth_l1", smooth_l1_delta=1.0, classification_weight=1.0,
        localization_weight=1.0, normalize_by_num_matches=True, normalize_loc_by_codesize=True)


def test_focal_loss_without_alpha_has_no_alpha_weighting():
    # OD API: SigmoidFocalClassificationLoss.alpha has no default; unset means no weighting.
    options = _build("""loss { classification_loss { weighted_sigmoid_focal { gamma: 1.5 } }
                               localization_loss { weighted_smooth_l1 { } } }""")
    assert options.focal_alpha is None
    assert options.focal_gamma == 1.5


def test_sigmoid_and_l2_with_weights_and_flags():
    options = _build("""
      loss {
        classification_loss { weighted_sigmoid { } }
        localization_loss { weighted_l2 { } }
        classification_weight: 2.0
        localization_weight: 0.5
      }
      normalize_loss_by_num_matches: false""")
    assert options.classification_loss == "sigmoid"
    assert options.localization_loss == "l2"
    assert (options.classification_weight, options.localization_weight) == (2.0, 0.5)
    assert not options.normalize_by_num_matches
    assert not options.normalize_loc_by_codesize  # the proto's default


def test_smooth_l1_delta():
    options = _build("""loss { classification_loss { weighted_sigmoid { } }
                               localization_loss { weighted_smooth_l1 { delta: 0.1 } } }""")
    assert options.smooth_l1_delta == pytest.approx(0.1)


_CLS = "classification_loss { weighted_sigmoid_focal { alpha: 0.25 gamma: 2.0 } }"
_LOC = "localization_loss { weighted_smooth_l1 { } }"


@pytest.mark.parametrize("loss, pattern", [
    # Softmax over classes: the class head has no softmax variant here.
    (f"classification_loss {{ weighted_softmax {{ }} }} {_LOC}",
     r"loss\.classification_loss: 'weighted_softmax' is not supported; expected one of "
     r"\['weighted_sigmoid', 'weighted_sigmoid_focal'\]"),
    (f"classification_loss {{ bootstrapped_sigmoid {{ alpha: 0.5 }} }} {_LOC}",
     r"loss\.classification_loss: 'bootstrapped_sigmoid' is not supported"),
    (_LOC, r"loss\.classification_loss: None is not supported"),  # missing
    (f"{_CLS} localization_loss {{ weighted_iou {{ }} }}",
     r"loss\.localization_loss: 'weighted_iou' is not supported; expected one of "
     r"\['weighted_l2', 'weighted_smooth_l1'\]"),
    (_CLS, r"loss\.localization_loss: None is not supported"),  # missing
    (f"{_CLS} {_LOC} hard_example_miner {{ }}", r"loss\.hard_example_miner: is not supported"),
    (f"{_CLS} {_LOC} random_example_sampler {{ }}",
     r"loss\.random_example_sampler: is not supported"),
    (f"classification_loss {{ weighted_sigmoid_focal {{ gamma: -1.0 }} }} {_LOC}",
     r"loss\.classification_loss\.weighted_sigmoid_focal\.gamma: must be >= 0, got -1"),
    (f"classification_loss {{ weighted_sigmoid_focal {{ alpha: 1.5 }} }} {_LOC}",
     r"loss\.classification_loss\.weighted_sigmoid_focal\.alpha: must be in \[0, 1\], got 1\.5"),
    (f"{_CLS} localization_loss {{ weighted_smooth_l1 {{ delta: 0.0 }} }}",
     r"loss\.localization_loss\.weighted_smooth_l1\.delta: must be > 0, got 0"),
    (f"{_CLS} {_LOC} classification_weight: -1.0",
     r"loss\.classification_weight: must be >= 0, got -1"),
    (f"{_CLS} {_LOC} localization_weight: -0.5",
     r"loss\.localization_weight: must be >= 0, got -0\.5"),
    # Fields that change the loss must not be dropped silently.
    (f"{_CLS} {_LOC} equalization_loss {{ weight: 0.5 }}",
     r"loss\.equalization_loss: is not supported"),
    (f"{_CLS} {_LOC} expected_loss_weights: EXPECTED_SAMPLING",
     r"loss\.expected_loss_weights: EXPECTED_SAMPLING is not supported"),
])
def test_config_errors_name_the_field(loss, pattern):
    with pytest.raises(ConfigError, match=r"^model\.ssd\." + pattern):
        _build(f"loss {{ {loss} }}")


def test_zero_equalization_weight_and_no_expected_weights_are_accepted():
    options = _build(f"loss {{ {_CLS} {_LOC} equalization_loss {{ weight: 0.0 }} "
                     "expected_loss_weights: NONE }")
    assert options.classification_loss == "sigmoid_focal"
