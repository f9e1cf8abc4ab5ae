"""Draws detections on images with Pillow (boxes, class names and scores).

Boxes come in the model's convention, yxyx normalized to [0, 1] of the image; they are turned
into pixels here, at the edge, and nowhere else. Class ids are label-map ids (1-based), looked up
in a category index `{id: {"id": id, "name": name}}` (`label_map_util.create_category_index`).
"""
from __future__ import annotations

import colorsys
from typing import Mapping

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A bright colour, the same for a class id across images (golden-ratio hue steps)."""
    hue = (int(class_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def class_name(class_id: int, category_index: Mapping[int, Mapping] | None) -> str:
    if category_index and int(class_id) in category_index:
        return str(category_index[int(class_id)]["name"])
    return f"class {int(class_id)}"


def draw_detections(image: Image.Image | np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                    scores: np.ndarray, category_index: Mapping[int, Mapping] | None = None,
                    min_score: float = 0.3, max_boxes: int = 100,
                    line_width: int | None = None, *, show_scores: bool = True,
                    show_labels: bool = True, colour: str | tuple | None = None
                    ) -> Image.Image:
    """Returns a copy of `image` with the detections scoring at least `min_score` drawn.

    Args:
      image: PIL image or uint8 [H, W, 3] array.
      boxes: float [N, 4] yxyx normalized to the image.
      classes: [N] label-map ids (1-based).
      scores: float [N], in descending order or not (drawn highest last, so on top).
      category_index: {id: {"name": ...}}; ids not in it are drawn as "class <id>".
      min_score: detections below it are not drawn.
      max_boxes: at most this many (the highest scoring) are drawn.
      line_width: box outline in pixels (default: scaled to the image, at least 2).
      show_scores, show_labels: what the label above a box says (no label when neither).
      colour: one colour (a PIL colour name or RGB) for every box; default: one per class.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = image.convert("RGB")  # a copy
    width, height = image.size
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    scores = np.asarray(scores, np.float32).reshape(-1)
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(scores[keep], kind="stable")][-max_boxes:]  # ascending: best on top
    line_width = line_width or max(2, round(min(width, height) / 200))
    font = _font(max(10, round(min(width, height) / 30)))
    draw = ImageDraw.Draw(image)
    for i in keep:
        ymin, xmin, ymax, xmax = np.clip(boxes[i], 0.0, 1.0)
        left, top = xmin * (width - 1), ymin * (height - 1)
        right, bottom = xmax * (width - 1), ymax * (height - 1)
        box_colour = colour or class_colour(classes[i])
        draw.rectangle([left, top, right, bottom], outline=box_colour, width=line_width)
        parts = [class_name(classes[i], category_index)] if show_labels else []
        if show_scores:
            parts.append(f"{round(100 * float(scores[i]))}%")
        if not parts:
            continue
        text = ": ".join(parts)
        tl, tt, tr, tb = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = tr - tl, tb - tt
        # The label sits above the box, or inside its top edge when there is no room above.
        label_top = top - text_h - 4 if top - text_h - 4 >= 0 else top
        draw.rectangle([left, label_top, left + text_w + 4, label_top + text_h + 4],
                       fill=box_colour)
        draw.text((left + 2 - tl, label_top + 2 - tt), text, fill=_text_colour(box_colour),
                  font=font)
    return image


def _text_colour(fill) -> tuple[int, int, int]:
    """Black on light label backgrounds, white on dark ones."""
    r, g, b = ImageColor.getrgb(fill) if isinstance(fill, str) else fill[:3]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 110 else (255, 255, 255)
