r"""Checks that a file is TF-slim's ImageNet ResNet v1 checkpoint, variable by variable.

    python -m object_detection.verify_checkpoint --slim_resnet_v1 50 /checkpoints/resnet_v1_50/model.ckpt

TF-slim publishes no checksum for `resnet_v1_50_2016_08_28.tar.gz` (nor for 101/152), so
`download_all.sh` checks the content instead: every variable the TF1 extractor
`ssd_resnet{depth}_v1_fpn` loads from it (the backbone of `models.resnet_v1_slim`, under
`resnet_v1_{depth}/`) must be in the file with its shape. Prints one line with the counts;
exit status 0 when complete, 1 when anything is missing or has another shape (listed), 2 when
the file cannot be read.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def expected_slim_resnet_variables(depth: int) -> dict[str, tuple[int, ...]]:
    """{name: shape} of every backbone variable of TF-slim's `resnet_v1_{depth}`."""
    from object_detection.meta_architectures import odapi_checkpoint
    from object_detection.models import resnet_v1_slim

    names = odapi_checkpoint.slim_backbone_names(
        resnet_v1_slim.resnet_v1_slim(depth), f"resnet_v1_{depth}", resnet_v1_slim.slim_scope)
    return {name: tuple(v.shape) for name, v in names.items()}


def verify_slim_resnet(path: str, depth: int) -> tuple[int, list[str]]:
    """(number of variables found as expected, problems) for the checkpoint at `path`."""
    import tensorflow as tf

    stored = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    problems, found = [], 0
    for name, shape in sorted(expected_slim_resnet_variables(depth).items()):
        if name not in stored:
            problems.append(f"{name} is missing")
        elif tuple(stored[name]) != shape:
            problems.append(f"{name} has shape {tuple(stored[name])}, expected {shape}")
        else:
            found += 1
    return found, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slim_resnet_v1", type=int, required=True, choices=(50, 101, 152),
                        help="the ResNet v1 depth the file must hold")
    parser.add_argument("checkpoint", help="checkpoint path (V1 file or V2 prefix)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    try:
        found, problems = verify_slim_resnet(args.checkpoint, args.slim_resnet_v1)
    except (tf.errors.OpError, ValueError, OSError) as e:  # unreadable: one line
        print(f"error: {args.checkpoint}: cannot be read as a checkpoint ({type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''})", file=sys.stderr)
        return 2
    if problems:
        print(f"error: {args.checkpoint} is not TF-slim's resnet_v1_{args.slim_resnet_v1}: "
              f"{len(problems)} problems: " + "; ".join(problems[:5])
              + ("; ..." if len(problems) > 5 else ""), file=sys.stderr)
        return 1
    print(f"{args.checkpoint}: TF-slim resnet_v1_{args.slim_resnet_v1}, all {found} backbone "
          "variables present with their shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
