"""The metric sets of `eval_config.metrics_set`: from their names to evaluators.

Every evaluator has the same interface, so the evaluation loop treats them alike:

  name                        its metrics_set name
  add_image(**kwargs)         one image, numpy: source_id, original_shape, groundtruth_boxes,
                              groundtruth_classes, num_groundtruth_boxes, detection_boxes,
                              detection_scores, detection_classes, num_detections, and the
                              optional groundtruth_is_crowd, groundtruth_area,
                              groundtruth_difficult (each evaluator uses what its protocol
                              knows); an image seen twice counts once
  state() / merge(states)     a worker's images as a picklable value / adding other workers'
  empty_copy()                a new evaluator with the same settings and no image
  num_images
  evaluate(print_summary)     -> {metric key: float}, printing a summary
  tensorboard_names(metrics)  -> the same values under the OD API's metric names

The loop: `build` once, `add_image` on every evaluator for every image, gather every worker's
`state()`, `rebuild` each evaluator, `merge` the gathered states into the new ones, `evaluate`.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from object_detection.evaluation import coco_evaluation, pascal_evaluation
from object_detection.utils.errors import ConfigError

COCO = "coco_detection_metrics"
PASCAL = "pascal_voc_detection_metrics"
WEIGHTED_PASCAL = "weighted_pascal_voc_detection_metrics"
METRICS_SETS = (COCO, PASCAL, WEIGHTED_PASCAL)
DEFAULT_METRICS_SET = COCO  # an empty metrics_set, as in the OD API (EVAL_DEFAULT_METRIC)

# OD API metrics_set names (its eval_util.EVAL_METRICS_CLASS_DICT) not computed here: masks,
# Open Images protocols (group-of boxes, image-level labels), precision at recall.
OD_API_NOT_SUPPORTED = (
    "coco_mask_metrics",
    "oid_challenge_detection_metrics",
    "oid_challenge_segmentation_metrics",
    "oid_V2_detection_metrics",
    "pascal_voc_instance_segmentation_metrics",
    "precision_at_recall_detection_metrics",
    "weighted_pascal_voc_instance_segmentation_metrics",
)


class Evaluator(Protocol):
    """What the evaluation loop needs of an evaluator (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def add_image(self, **kwargs: Any) -> None: ...

    def state(self) -> dict: ...

    def merge(self, states: Sequence[Mapping[str, Any]]) -> None: ...

    def empty_copy(self) -> Evaluator: ...

    @property
    def num_images(self) -> int: ...

    def evaluate(self, print_summary: bool = True) -> dict[str, float]: ...

    def tensorboard_names(self, metrics: Mapping[str, float]) -> dict[str, float]: ...


def build(metrics_set: Sequence[str], categories: Sequence[Mapping[str, Any]], *,
          include_metrics_per_category: bool = False,
          backend: str = "pycocotools") -> list[Evaluator]:
    """One evaluator per metric set, in the order given; repeated names count once.

    Args:
      metrics_set: `eval_config.metrics_set` names (METRICS_SETS); empty: [DEFAULT_METRICS_SET].
      categories: [{"id": 1-based id, "name": str}, ...] (from the label map).
      include_metrics_per_category: per-category metrics in every evaluator.
      backend: the COCO backend (`--eval_backend`, coco_evaluation.BACKENDS); checked even
        when no COCO set is asked for.

    Raises:
      ConfigError: a name not in METRICS_SETS, or an unknown backend.
    """
    coco_evaluation.check_backend(backend)
    if isinstance(metrics_set, str):
        metrics_set = [metrics_set]
    names = list(dict.fromkeys(metrics_set)) or [DEFAULT_METRICS_SET]
    for name in names:
        if name not in METRICS_SETS:
            known = (" (an OD API metric set this project does not compute)"
                     if name in OD_API_NOT_SUPPORTED else "")
            raise ConfigError(
                f"eval_config.metrics_set: {name!r} is not supported{known}; supported: "
                f"{list(METRICS_SETS)}; OD API sets not computed here: "
                f"{list(OD_API_NOT_SUPPORTED)}.")
    evaluators: list[Evaluator] = []
    for name in names:
        if name == COCO:
            evaluators.append(coco_evaluation.CocoEvaluator(
                categories, include_metrics_per_category, backend=backend))
        else:
            evaluators.append(pascal_evaluation.PascalEvaluator(
                categories, weighted=name == WEIGHTED_PASCAL,
                include_metrics_per_category=include_metrics_per_category))
    return evaluators


def rebuild(evaluator: Evaluator) -> Evaluator:
    """A new evaluator with `evaluator`'s settings and no image (to merge gathered states)."""
    return evaluator.empty_copy()


def tensorboard_names(evaluator: Evaluator, metrics: Mapping[str, float]) -> dict[str, float]:
    """`metrics` (from `evaluator.evaluate`) under the OD API's metric names."""
    return evaluator.tensorboard_names(metrics)
