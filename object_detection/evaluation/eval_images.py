"""Pictures of an evaluation: detections beside ground truth, as the OD API's eval draws them.

The first `eval_config.num_visualizations` evaluated images are drawn side by side, detections
on the left (those scoring at least `min_score_threshold`, at most `max_num_boxes_to_visualize`
of them, labels and scores unless `skip_labels` / `skip_scores`) and the ground truth on the
right (in `groundtruth_box_visualization_color`; also over the detections with
`visualize_groundtruth_boxes`). They go to TensorBoard under `eval_side_by_side_<i>` in
`model_dir/eval`, and, when `visualization_export_dir` is set, to PNG files there named by the
step and the image's position (or its source id with `keep_image_id_for_visualization_export`).

Images are drawn as the model saw them (the resized input), where the boxes are normalized.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

import numpy as np

from object_detection.builders import plan_builder
from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.utils import visualization


# What `eval_config` asks of the pictures, as plain values: `plans.eval.visualization`.
DrawOptions = plan_builder.VisualizationPlan


class SideBySide:
    """Collects up to `num_visualizations` side-by-side pictures while an evaluation runs."""

    def __init__(self, options: DrawOptions, category_index: Mapping[int, Mapping[str, Any]]):
        self.options = options
        self.category_index = category_index
        self.images: list[tuple[str, np.ndarray]] = []  # (source id, uint8 [H, 2W, 3])

    @property
    def wanted(self) -> bool:
        return len(self.images) < self.options.num_visualizations

    def add(self, *, source_id, image: np.ndarray, groundtruth_boxes: np.ndarray,
            groundtruth_classes: np.ndarray, num_groundtruth_boxes: int,
            detection_boxes: np.ndarray, detection_scores: np.ndarray,
            detection_classes: np.ndarray, num_detections: int) -> None:
        """Draws one image (the model input, float or uint8 [H, W, 3] in 0..255; boxes yxyx
        normalized; classes 0-based) if more pictures are wanted."""
        if not self.wanted:
            return
        o = self.options
        picture = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
        n, d = int(num_groundtruth_boxes), int(num_detections)
        gt_boxes, gt_classes = groundtruth_boxes[:n], groundtruth_classes[:n] + CLASS_ID_OFFSET

        def draw_groundtruth(canvas):
            return visualization.draw_detections(
                canvas, gt_boxes, gt_classes, np.ones([n], np.float32), self.category_index,
                min_score=0.0, max_boxes=max(n, 1), show_scores=False,
                show_labels=not o.skip_labels, colour=o.groundtruth_box_visualization_color)

        left = visualization.draw_detections(
            picture, detection_boxes[:d], detection_classes[:d] + CLASS_ID_OFFSET,
            detection_scores[:d], self.category_index, min_score=o.min_score_threshold,
            max_boxes=o.max_num_boxes_to_visualize, show_scores=not o.skip_scores,
            show_labels=not o.skip_labels)
        if o.visualize_groundtruth_boxes:
            left = draw_groundtruth(left)
        right = draw_groundtruth(picture)
        if isinstance(source_id, bytes):
            source_id = source_id.decode("utf-8", "replace")
        self.images.append((str(source_id),
                            np.concatenate([np.asarray(left), np.asarray(right)], axis=1)))

    def write(self, eval_dir: str, step: int) -> list[str]:
        """TensorBoard image summaries in `eval_dir`; PNGs when visualization_export_dir is set.

        Returns:
          The PNG paths written (empty without visualization_export_dir).
        """
        import tensorflow as tf
        from PIL import Image

        with tf.summary.create_file_writer(eval_dir).as_default(step=step):
            for i, (_, picture) in enumerate(self.images):
                tf.summary.image(f"eval_side_by_side_{i}", picture[None], step=step)
        paths = []
        export_dir = self.options.visualization_export_dir
        if export_dir:
            os.makedirs(export_dir, exist_ok=True)
            for i, (source_id, picture) in enumerate(self.images):
                name = (re.sub(r"[^\w.-]+", "_", source_id)
                        if self.options.keep_image_id_for_visualization_export else str(i))
                path = os.path.join(export_dir, f"export-step_{step}-{name}.png")
                Image.fromarray(picture).save(path)
                paths.append(path)
        return paths
