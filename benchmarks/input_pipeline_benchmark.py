r"""Throughput of the training input pipeline (not a test).

  python benchmarks/input_pipeline_benchmark.py                 # 1 core, then all cores
  python benchmarks/input_pipeline_benchmark.py --cores 1 --num_images 512 --batches 40

Writes `--num_images` 640x480 JPEGs (shapes on noisy backgrounds, ~100 KB each, like COCO
photos) into `--num_shards` TFRecords in a temporary folder, then runs `build_train_dataset`
with the seed's augmentation (random_horizontal_flip; random_crop_image with
min_object_covered 0, aspect ratio 0.75-3, area 0.75-1, overlap_thresh 0;
fixed_shape_resizer 320x320; batch 32) and prints images per second.

`--cores 1` pins the process to one CPU (sched_setaffinity) and limits tf.data to one thread;
`--cores all` uses every CPU the process may run on. Without --cores, both run, each in its own
process. Besides wall-clock images/s, it prints images per CPU-second (process CPU time), which
is the per-core cost even when other programs share the machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED_AUGMENTATION = [
    ("random_horizontal_flip", {}),
    ("random_crop_image", dict(min_object_covered=0.0, aspect_ratio_range=(0.75, 3.0),
                               area_range=(0.75, 1.0), overlap_thresh=0.0)),
]


def write_records(directory: str, num_images: int, num_shards: int, seed: int = 0) -> str:
    """Writes the synthetic records and returns their glob."""
    import io

    import numpy as np

    from object_detection.dataset_tools import conversion, dataset_util
    from object_detection.dataset_tools.create_shapes_dataset import CLASSES, draw_image

    rng = np.random.default_rng(seed)
    base = os.path.join(directory, "bench.record")
    with dataset_util.ShardedTFRecordWriter(base, num_shards) as writer:
        for i in range(num_images):
            image, shapes = draw_image(rng, 480, 640, max_shapes=8)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            boxes = [conversion.BoxAnnotation(x0, y0, x1, y1, label=k + 1, text=CLASSES[k])
                     for k, (x0, y0, x1, y1) in shapes]
            example = dataset_util.build_example_from_boxes(
                buffer.getvalue(), width=640, height=480, boxes=boxes, source_id=str(i),
                filename=f"{i}.jpg")
            writer.write(example.SerializeToString())
    return base + "-*"


def run(cores: str, num_images: int, num_shards: int, batches: int, warmup: int) -> None:
    if cores == "1":
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from object_detection.data import inputs

    if cores == "1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    num_cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as directory:
        pattern = write_records(directory, num_images, num_shards)
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
        dataset = inputs.build_train_dataset(
            pattern, batch_size=32, image_size=(320, 320), max_boxes=100,
            augmentations=SEED_AUGMENTATION, num_classes=3, shuffle_buffer_size=256,
            num_readers=num_shards)
        if cores == "1":
            options = tf.data.Options()
            options.threading.private_threadpool_size = 1
            options.threading.max_intra_op_parallelism = 1
            dataset = dataset.with_options(options)
        iterator = iter(dataset)
        for _ in range(warmup):
            next(iterator)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            batch = next(iterator)
        batch["image"].numpy()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = batches * 32
    print(f"cores={cores} ({num_cpus} CPU(s) usable): {images / wall:.1f} images/s total, "
          f"{images / wall / num_cpus:.1f} images/s per core (wall clock), "
          f"{images / cpu:.1f} images per CPU-second; {num_images} images "
          f"({size / num_images / 1024:.0f} KB/record) in {num_shards} shards, "
          f"{batches} batches of 32 after {warmup} warm-up batches", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", choices=["1", "all"], help="default: both, in turn")
    parser.add_argument("--num_images", type=int, default=512)
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args()
    if args.cores:
        run(args.cores, args.num_images, args.num_shards, args.batches, args.warmup)
        return
    for cores in ("1", "all"):
        subprocess.run([sys.executable, __file__, "--cores", cores,
                        "--num_images", str(args.num_images), "--num_shards",
                        str(args.num_shards), "--batches", str(args.batches),
                        "--warmup", str(args.warmup)], check=True)


if __name__ == "__main__":
    main()
