"""Input pipelines: sharded TFRecords of OD API tf.Examples -> static-shape batches.

Batches (B = batch size, N = max_boxes, H x W = image_size), InputFields keys:
  image                         float32 [B, H, W, 3], 0..255 (the model normalizes)
  groundtruth_boxes             float32 [B, N, 4] yxyx normalized; rows >= count are 0
  groundtruth_classes           int32 [B, N] 0-based; padding 0
  groundtruth_weights           float32 [B, N] 0 for crowd boxes and padding
  groundtruth_is_crowd          bool [B, N]
  groundtruth_difficult         bool [B, N] (evaluation only; training gives them weight 1)
  groundtruth_area              float32 [B, N]
  num_groundtruth_boxes         int32 [B] boxes present (<= N; extra boxes are cut, first kept)
  source_id, filename           string [B]
  original_image_spatial_shape  int32 [B, 2] (height, width) of the decoded image
  true_image_shape              int32 [B, 3] = (H, W, 3)
Training batches always have B rows (drop_remainder). Evaluation batches are NOT padded: the
last batch of an epoch may be partial (B unknown statically there; every other dimension is
static), so evaluation never sees fake images.

How records flow (one pipeline per worker):
  files (sorted glob; with an InputContext, pipeline p of n takes files p, p+n, ...)
  -> shuffled and repeated file order (training)
  -> interleave over files; in each file: records enumerated (record index) -> parse, decode,
     augment, resize, pad ground truth (parallel, order kept) -> corrupt records skipped and
     reported by index -> examples
  -> (training with sample weights: the above once per file pattern, the streams drawn from
     at random in proportion to the weights)
  -> shuffle (training) -> batch -> prefetch.
Examples are augmented and resized before the shuffle, so the shuffle buffer holds fixed-size
examples (H*W*3 bytes of uint8 image each, ~300 KB at 320x320) rather than encoded records.

Corrupt records (unparsable tf.Example or undecodable image): a decode error inside the map
drops the element (`ignore_errors`); the next element of the same file then shows a gap in the
record index, which names exactly which records were lost. With on_corrupt="skip" each is
logged (file and record index) and counted in a `CorruptRecordCounter`; with "stop" the first
one raises, and iteration fails with an InvalidArgumentError whose message names the file and
record index (DataError text). This costs no per-record Python call: Python runs only when a
gap is found.

Records whose class labels fall outside 1..num_classes (a label map that does not match the
records, or the background id 0) follow the same choice: with "skip" each is logged, counted
under its own reason and left out; with "stop" the first one fails the iteration with a
DataError line naming the file and record.

Randomness: every example gets a stateless seed folded from (seed, file visit, record index),
so with deterministic=True and a fixed seed the batches are reproducible whatever the
parallelism; otherwise the seed is drawn at random.

Every function handed to tf.data is traced as written, without AutoGraph (`_plain`): the
pipeline's branches on tensors are explicit `tf.cond`s, and converting the source of the
parser and of every augmentation cost more than a second at each start.
"""
from __future__ import annotations

import contextlib
import math
import random
import threading
from typing import Sequence

import tensorflow as tf

from object_detection.core.standard_fields import InputFields, TfExampleFields
from object_detection.data import preprocessor
from object_detection.data.tf_example_decoder import TfExampleDecoder
from object_detection.utils.errors import DataError
from object_detection.utils.log import logger

ON_CORRUPT_CHOICES = ("skip", "stop")
# Starts the message of every DataError a running pipeline raises: TensorFlow carries it as an
# InvalidArgumentError, and `raising_data_errors` finds it there by this marker.
DATA_ERROR_MARKER = "DataError: "
# Why a record was skipped (CorruptRecordCounter.by_reason).
SKIP_CORRUPT = "corrupt"
SKIP_BAD_LABELS = "class labels outside 1..num_classes"
_INDEX = "_record_index"  # private keys of per-file elements, removed before batching
_END = "_end_of_file"
_LABELS_OK = "_labels_ok"
_EXPECTED = "_expected_index"
# tf.data traces a function without converting its source (see the module docstring).
_plain = tf.autograph.experimental.do_not_convert
_BOX_FIELDS = (InputFields.groundtruth_boxes, InputFields.groundtruth_classes,
               InputFields.groundtruth_weights, InputFields.groundtruth_is_crowd,
               InputFields.groundtruth_difficult, InputFields.groundtruth_area)


class CorruptRecordCounter:
    """Counts the records pipelines skipped, and remembers which.

    Thread-safe; read `count` (every skip, repeats of the training input included),
    `by_reason` ({reason: count}) and `records` (the first `max_names` distinct
    (file, record index)) at any time.
    """

    def __init__(self, max_names: int = 1000, max_logged: int = 20):
        self._lock = threading.Lock()
        self._max_names, self._max_logged = max_names, max_logged
        self._seen: set[tuple[str, int]] = set()
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self.records: list[tuple[str, int]] = []

    def add(self, filename: str, index: int, reason: str = SKIP_CORRUPT) -> tuple[int, bool]:
        """Counts one skip; returns (skips so far, whether to log it).

        A record is logged the first time it is skipped (not again when the training input
        repeats), for the first `max_logged` distinct records.
        """
        with self._lock:
            self.count += 1
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
            key = (filename, index)
            if key in self._seen or len(self._seen) >= self._max_names:
                return self.count, False
            self._seen.add(key)
            self.records.append(key)
            if len(self.records) == self._max_logged + 1:
                logger.warning("more than %d distinct records skipped: further ones are "
                               "counted, not logged.", self._max_logged)
            return self.count, len(self.records) <= self._max_logged


def data_error_in(error: tf.errors.OpError) -> DataError | None:
    """The DataError a running pipeline raised, carried inside a TensorFlow error, else None.

    Its message is the pipeline's line from DATA_ERROR_MARKER on ("DataError: <file>: record
    <index> ..."), without the tf.data stack around it.
    """
    if not isinstance(error, tf.errors.InvalidArgumentError):
        return None
    line = next((line for line in error.message.splitlines() if DATA_ERROR_MARKER in line),
                None)
    if line is None:
        return None
    # A tf.debugging.Assert message comes as "assertion failed: [DataError: ...]".
    return DataError(line[line.index(DATA_ERROR_MARKER):].strip().rstrip("]").strip())


@contextlib.contextmanager
def raising_data_errors():
    """A context in which iterating a dataset of this module raises the DataError it hit.

    Raises:
      DataError: --on_corrupt=stop met a corrupt record or one with bad labels, or no record of
        the input is usable; the message names the file and record (`data_error_in`).
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        error = data_error_in(e)
        if error is None:
            raise
        try:
            raise error from e
        finally:
            # This frame is in `error`'s traceback: holding `error` too would be a reference
            # cycle keeping the failed run (its frames, its dataset iterator) alive until the
            # garbage collector, possibly interpreter shutdown, where a tf.data thread inside a
            # py_function waits for the GIL and the process hangs.
            del error


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching a glob, a comma-separated list of globs, or a list of globs."""
    patterns = file_pattern.split(",") if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns if p.strip() for f in tf.io.gfile.glob(p.strip())})
    if not files:
        raise DataError(f"no input files match {file_pattern!r}.")
    return files


def _shard(files: list[str], input_context: tf.distribute.InputContext | None
           ) -> tuple[list[str], int, int]:
    """(files of this pipeline, record stride, record offset) for an InputContext.

    Sharding is by file; with fewer files than pipelines, every pipeline reads every file and
    keeps records index % n == p instead (each record still goes to exactly one pipeline).
    """
    if input_context is None or input_context.num_input_pipelines <= 1:
        return files, 1, 0
    n, p = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= n:
        if len(files) % n:
            logger.warning("%d input files for %d input pipelines: pipelines get unequal "
                           "shares; write a multiple of %d shards.", len(files), n, n)
        return files[p::n], 1, 0
    logger.warning("%d input files for %d input pipelines: every pipeline reads every file "
                   "and keeps 1 record in %d; write at least %d shards to shard by file.",
                   len(files), n, n, n)
    return files, n, p


def _pad_groundtruth(fields: dict[str, tf.Tensor], mask: tf.Tensor, max_boxes: int
                     ) -> dict[str, tf.Tensor]:
    """Present boxes (mask True) moved to the front in order, cut or zero-padded to max_boxes.

    Args:
      fields: per-box tensors [n, ...] (_BOX_FIELDS).
      mask: bool [n].
    Returns:
      The fields with first dimension max_boxes, rows >= count zero, plus
      num_groundtruth_boxes int32 [] = min(sum(mask), max_boxes).
    """
    order = tf.argsort(tf.cast(~mask, tf.int32), stable=True)  # present boxes first
    count = tf.minimum(tf.reduce_sum(tf.cast(mask, tf.int32)), max_boxes)
    valid = tf.range(max_boxes) < count  # [N]
    out = {}
    for key, value in fields.items():
        value = tf.gather(value, order)[:max_boxes]
        padding = [[0, max_boxes - tf.shape(value)[0]]] + [[0, 0]] * (value.shape.rank - 1)
        value = tf.pad(value, padding)
        value.set_shape([max_boxes] + value.shape[1:].as_list())
        valid_rows = tf.reshape(valid, [max_boxes] + [1] * (value.shape.rank - 1))
        out[key] = tf.where(valid_rows, value, tf.zeros_like(value))
    out[InputFields.num_groundtruth_boxes] = count
    return out


class _Pipeline:
    """The per-file reading, decoding and augmentation shared by the train and eval datasets."""

    def __init__(self, *, image_size, max_boxes, augmentations, num_classes, on_corrupt,
                 corrupt_counter, stride, offset, seed, training, resize_method="BILINEAR"):
        if on_corrupt not in ON_CORRUPT_CHOICES:
            raise ValueError(f"on_corrupt must be one of {ON_CORRUPT_CHOICES}, got "
                             f"{on_corrupt!r}.")
        height, width = (int(v) for v in image_size)
        if height <= 0 or width <= 0 or max_boxes <= 0:
            raise ValueError(f"need image_size > 0 and max_boxes > 0, got {image_size}, "
                             f"{max_boxes}.")
        preprocessor.check_steps(augmentations)
        self.height, self.width, self.max_boxes = height, width, max_boxes
        self.resize_method = resize_method
        self.augmentations = list(augmentations)
        self.decoder = TfExampleDecoder(num_classes)
        self.on_corrupt = on_corrupt
        self.counter = corrupt_counter
        self.stride, self.offset = stride, offset
        self.seed = tf.constant([seed, 0], tf.int64)
        self.training = training

    # Runs in Python only when a gap (lost records) is found.
    def _report(self, filename, start, stop, stride) -> int:
        filename = filename.numpy().decode("utf8", "replace")
        for index in range(int(start), int(stop), int(stride)):
            if self.on_corrupt == "stop":
                self.counter.add(filename, index, SKIP_CORRUPT)
                # py_function carries it as "DataError: <message>" (DATA_ERROR_MARKER).
                raise DataError(f"{filename}: record {index} is corrupt (its tf.Example cannot "
                                "be parsed, its image cannot be decoded, or the file is "
                                "truncated there); stopping as on_corrupt='stop' asks. Use "
                                "on_corrupt='skip' to skip such records.")
            total, log = self.counter.add(filename, index, SKIP_CORRUPT)
            if log:
                logger.warning("%s: record %d is corrupt (its tf.Example cannot be parsed, "
                               "its image cannot be decoded, or the file is truncated there); "
                               "skipped (%d records skipped so far).", filename, index, total)
        return 0

    @property
    def _labels_rule(self) -> str:
        return (f" has class labels outside 1..num_classes ({self.decoder.num_classes}); the "
                "label map / num_classes do not match the records (ids are 1..num_classes; 0 "
                "is the background id)")

    # Runs in Python only for a record with bad labels under on_corrupt="skip".
    def _report_labels(self, filename, index) -> int:
        filename = filename.numpy().decode("utf8", "replace")
        total, log = self.counter.add(filename, int(index), SKIP_BAD_LABELS)
        if log:
            logger.warning("%s: record %d%s; skipped (%d records skipped so far).",
                           filename, int(index), self._labels_rule, total)
        return 0

    def _dummy(self) -> dict[str, tf.Tensor]:
        """A placeholder element of the right structure: the end-of-file marker."""
        n = self.max_boxes
        return {
            InputFields.image: tf.zeros([self.height, self.width, 3], self._image_dtype),
            InputFields.source_id: tf.constant(""), InputFields.filename: tf.constant(""),
            InputFields.original_image_spatial_shape: tf.zeros([2], tf.int32),
            InputFields.true_image_shape: tf.constant([self.height, self.width, 3]),
            InputFields.groundtruth_boxes: tf.zeros([n, 4]),
            InputFields.groundtruth_classes: tf.zeros([n], tf.int32),
            InputFields.groundtruth_weights: tf.zeros([n]),
            InputFields.groundtruth_is_crowd: tf.zeros([n], tf.bool),
            InputFields.groundtruth_difficult: tf.zeros([n], tf.bool),
            InputFields.groundtruth_area: tf.zeros([n]),
            InputFields.num_groundtruth_boxes: tf.constant(0),
            _LABELS_OK: tf.constant(True),
        }

    @property
    def _image_dtype(self):
        # uint8 keeps the training shuffle buffer 4x smaller; evaluation keeps float32.
        return tf.uint8 if self.training else tf.float32

    def _process(self, serialized, seed) -> dict[str, tf.Tensor]:
        """Parse, decode, augment, resize and pad one record (may raise if it is corrupt)."""
        tensors = self.decoder.parse(serialized)
        image = self.decoder.decode_image(tensors.pop(TfExampleFields.image_encoded))
        labels_ok = self.decoder.labels_in_range(tensors[InputFields.groundtruth_classes])
        boxes = tensors[InputFields.groundtruth_boxes]
        mask = tf.ones([tf.shape(boxes)[0]], tf.bool)
        original_shape = tf.shape(image)[:2]
        image, boxes, mask = preprocessor.apply_steps(image, boxes, mask, self.augmentations,
                                                      seed)
        image = preprocessor.fixed_shape_resizer(image, height=self.height, width=self.width,
                                                 method=self.resize_method)
        if self.training:
            image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
        fields = {k: tensors[k] for k in _BOX_FIELDS}
        fields[InputFields.groundtruth_boxes] = boxes
        out = _pad_groundtruth(fields, mask, self.max_boxes)
        out.update({
            InputFields.image: image,
            InputFields.source_id: tensors[InputFields.source_id],
            InputFields.filename: tensors[InputFields.filename],
            InputFields.original_image_spatial_shape: original_shape,
            InputFields.true_image_shape: tf.constant([self.height, self.width, 3]),
            _LABELS_OK: labels_ok,
        })
        return out

    def read_file(self, visit: tf.Tensor, filename: tf.Tensor) -> tf.data.Dataset:
        """Examples of one file, corrupt records skipped and reported (see module docstring)."""
        records = tf.data.TFRecordDataset(filename)
        records = records.map(_plain(lambda r: (r, False))).concatenate(
            tf.data.Dataset.from_tensors((tf.constant(b""), True)))  # end marker
        records = records.enumerate()  # the end marker's index is the record count
        if self.stride > 1:
            records = records.filter(
                _plain(lambda i, x: x[1] | tf.equal(i % self.stride, self.offset)))
        file_seed = tf.random.experimental.stateless_fold_in(self.seed, visit)

        def process(index, record_and_end):
            record, is_end = record_and_end
            seed = tf.random.experimental.stateless_fold_in(file_seed, index)
            element = tf.cond(is_end, self._dummy, lambda: self._process(record, seed))
            element[_INDEX] = index
            element[_END] = is_end
            return element

        examples = records.map(_plain(process), num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
        examples = examples.ignore_errors()
        stride = tf.constant(self.stride, tf.int64)

        def find_gap(expected_index, element):
            # Only bookkeeping here: a failure inside scan would leave its state behind and
            # make the next element report a gap twice, so checks run in the map below.
            element[_EXPECTED] = expected_index
            return element[_INDEX] + stride, element

        def check(element):
            element = dict(element)
            index, expected_index = element.pop(_INDEX), element.pop(_EXPECTED)
            labels_ok = element[_LABELS_OK]
            report = tf.cond(
                index > expected_index,
                lambda: tf.py_function(self._report, [filename, expected_index, index, stride],
                                       tf.int64),
                lambda: tf.constant(0, tf.int64))
            bad_labels = ~labels_ok
            if self.on_corrupt == "stop":
                message = tf.strings.join([DATA_ERROR_MARKER, filename, ": record ",
                                           tf.strings.as_string(index), self._labels_rule])
                labels = tf.debugging.Assert(labels_ok, [message])
            else:
                labels = tf.cond(
                    bad_labels,
                    lambda: tf.py_function(self._report_labels, [filename, index], tf.int64),
                    lambda: tf.constant(0, tf.int64))
            with tf.control_dependencies([report, labels]):
                element[_END] = tf.identity(element[_END])
            return element

        examples = examples.scan(tf.constant(self.offset, tf.int64), _plain(find_gap)).map(
            _plain(check))
        examples = examples.filter(_plain(lambda element: element[_LABELS_OK]))  # bad labels
        if not self.training:
            examples = examples.filter(_plain(lambda element: ~element[_END]))
        return examples.map(_plain(
            lambda element: {k: v for k, v in element.items()
                             if k != _LABELS_OK and (self.training or k != _END)}))


def _stop_if_nothing_usable(dataset: tf.data.Dataset, files: list[str],
                            cycle_length: int) -> tf.data.Dataset:
    """Drops the end-of-file markers of the endless training stream, failing with a DataError
    when every record is skipped (which would otherwise loop over the files forever).

    A file with a usable record yields an example on every visit, before its end marker, and
    every file is visited once per pass (the file order is reshuffled each pass), so usable
    data never leaves more than about 2 passes plus the visits in flight (`cycle_length` and
    their prefetch) of end markers in a row. Twice that bound without an example means there is
    none.
    """
    limit = 4 * (len(files) + 2 * cycle_length) + 8

    def count(run, element):
        run = tf.where(element[_END], run + 1, 0)
        return run, (run, element)

    def check(run, element):
        message = (f"{DATA_ERROR_MARKER}no usable record in {len(files)} input file(s) "
                   f"({files[0]}{' ...' if len(files) > 1 else ''}): every record was skipped "
                   "(see the warnings above: corrupt records, or class labels outside "
                   "1..num_classes)")
        ok = tf.debugging.Assert(run < limit, [message])
        with tf.control_dependencies([ok]):
            return tf.identity(element[_END])

    dataset = dataset.scan(tf.constant(0, tf.int64), _plain(count))
    dataset = dataset.filter(_plain(lambda run, element: ~check(run, element)))
    return dataset.map(
        _plain(lambda run, element: {k: v for k, v in element.items() if k != _END}))


def _finish(dataset: tf.data.Dataset, batch_size: int, drop_remainder: bool,
            deterministic: bool) -> tf.data.Dataset:
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        _plain(lambda b: {**b, InputFields.image: tf.cast(b[InputFields.image], tf.float32)}))
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_optimization.map_parallelization = True
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def build_train_dataset(file_pattern: str | Sequence[str], *, batch_size: int,
                        image_size: tuple[int, int], max_boxes: int,
                        augmentations: Sequence[tuple[str, dict]] = (),
                        num_classes: int | None = None, shuffle: bool = True,
                        shuffle_buffer_size: int = 2048,
                        sample_weights: Sequence[float] | None = None,
                        num_readers: int = 8, deterministic: bool = False,
                        seed: int | None = None,
                        input_context: tf.distribute.InputContext | None = None,
                        on_corrupt: str = "skip",
                        corrupt_counter: CorruptRecordCounter | None = None,
                        resize_method: str = "BILINEAR"
                        ) -> tf.data.Dataset:
    """An endless, shuffled, augmented training dataset of static-shape batches.

    Args:
      file_pattern: TFRecord glob(s): a string (comma-separated allowed) or a list.
      batch_size: per-pipeline batch size; every batch has exactly this many rows.
      image_size: (height, width) of `fixed_shape_resizer`.
      max_boxes: N, ground truth padded (or cut) to this many boxes (max_number_of_boxes).
      resize_method: `fixed_shape_resizer.resize_method` (`core.image_resizer.RESIZE_METHODS`).
      augmentations: [(step name, kwargs)] from preprocessor.STEP_FUNCTIONS, in order.
      num_classes: foreground classes; a record with labels outside 1..num_classes is
        skipped and counted, or stops the pipeline naming the file and record, as
        `on_corrupt` says. None: not checked.
      shuffle: shuffle the file order (on every pass) and the examples; False reads the
        files in sorted order and keeps the examples in their interleaved order.
      shuffle_buffer_size: examples in the shuffle buffer (each H*W*3 bytes plus boxes).
      sample_weights: None, or one weight >= 0 per entry of `file_pattern` (a list then): each
        entry is read as its own stream (its own file order, readers and shard) and the
        streams are interleaved at random, drawing from entry i with probability
        w_i / sum(w) (`tf.data.Dataset.sample_from_datasets`, OD API
        `sample_from_datasets_weights`); an entry of weight 0 is not read. Each stream fails
        on its own when none of its records is usable.
      num_readers: files read in parallel (interleave cycle length); with `sample_weights`
        shared among the entries in proportion to their weights (at least 1 each).
      deterministic: reproducible order and augmentation (slower: parallel stages keep
        order); uses `seed`, 0 if None.
      seed: random seed; None draws one (unless deterministic).
      input_context: from `strategy.distribute_datasets_from_function`; this pipeline reads
        its own shard of the files.
      on_corrupt: "skip" (log, count, go on) or "stop" (raise at the first corrupt record or
        record with bad labels).
      corrupt_counter: where skipped records are counted; None: a counter of this dataset
        alone (the warnings still give the running count), which the caller cannot read.

    Returns:
      tf.data.Dataset of dicts (module docstring), repeating forever.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}.")
    if seed is None:
        seed = 0 if deterministic else random.SystemRandom().randrange(2**31)
    if corrupt_counter is None:
        corrupt_counter = CorruptRecordCounter()
    if sample_weights is None:
        sources = [(file_pattern, 1.0)]
    else:
        patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
        weights = [float(w) for w in sample_weights]
        if not weights or len(weights) != len(patterns) or min(weights) < 0 \
                or sum(weights) <= 0:
            raise ValueError(f"need one weight >= 0 per file pattern (sum > 0), got "
                             f"{weights} for {patterns}.")
        sources = [(p, w) for p, w in zip(patterns, weights) if w > 0]
    total = sum(w for _, w in sources)
    streams = []
    for i, (pattern, weight) in enumerate(sources):
        readers = num_readers if len(sources) == 1 else math.ceil(num_readers * weight / total)
        # Stream i folds i into the seed: its augmentations do not repeat another stream's.
        streams.append(_read_stream(
            pattern, readers, seed=(seed + i) % 2**31, shuffle=shuffle,
            deterministic=deterministic, input_context=input_context,
            image_size=image_size, max_boxes=max_boxes, augmentations=augmentations,
            num_classes=num_classes, on_corrupt=on_corrupt, corrupt_counter=corrupt_counter,
            resize_method=resize_method))
    if len(streams) == 1:
        dataset = streams[0]
    else:
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=[w / total for _, w in sources], seed=seed)
    if shuffle and shuffle_buffer_size > 1:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    return _finish(dataset, batch_size, drop_remainder=True, deterministic=deterministic)


def _read_stream(file_pattern, num_readers: int, *, seed: int, shuffle: bool,
                 deterministic: bool, input_context, **pipeline_args) -> tf.data.Dataset:
    """The endless examples of the files of `file_pattern` (this pipeline's shard of them)."""
    files, stride, offset = _shard(list_files(file_pattern), input_context)
    pipeline = _Pipeline(stride=stride, offset=offset, seed=seed, training=True,
                         **pipeline_args)
    cycle_length = max(1, min(num_readers, len(files)))
    file_order = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        file_order = file_order.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    file_order = file_order.repeat().enumerate()  # (visit, filename): one seed per visit
    dataset = file_order.interleave(
        _plain(pipeline.read_file), cycle_length=cycle_length, block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return _stop_if_nothing_usable(dataset, files, cycle_length)


def build_eval_dataset(file_pattern: str | Sequence[str], *, batch_size: int,
                       image_size: tuple[int, int], max_boxes: int,
                       num_classes: int | None = None, num_readers: int = 8,
                       sample_1_of_n: int = 1,
                       input_context: tf.distribute.InputContext | None = None,
                       on_corrupt: str = "skip",
                       corrupt_counter: CorruptRecordCounter | None = None,
                       resize_method: str = "BILINEAR"
                       ) -> tf.data.Dataset:
    """One pass over the records, no augmentation, in a deterministic order.

    Keeps `source_id` (to map detections back to the COCO json) and
    `original_image_spatial_shape`. The last batch may be partial (not padded, not dropped).
    `sample_1_of_n` keeps records whose index in their file is a multiple of n
    (`--sample_1_of_n_eval_examples`). Other arguments as in `build_train_dataset`.
    """
    if batch_size <= 0 or sample_1_of_n <= 0:
        raise ValueError(f"need batch_size > 0 and sample_1_of_n > 0, got {batch_size}, "
                         f"{sample_1_of_n}.")
    files, stride, offset = _shard(list_files(file_pattern), input_context)
    pipeline = _Pipeline(image_size=image_size, max_boxes=max_boxes, augmentations=(),
                         num_classes=num_classes, on_corrupt=on_corrupt,
                         corrupt_counter=(CorruptRecordCounter() if corrupt_counter is None
                                          else corrupt_counter), stride=stride * sample_1_of_n,
                         offset=offset, seed=0, training=False, resize_method=resize_method)
    cycle_length = max(1, min(num_readers, len(files)))
    file_order = tf.data.Dataset.from_tensor_slices(files).enumerate()
    dataset = file_order.interleave(
        _plain(pipeline.read_file), cycle_length=cycle_length, block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _finish(dataset, batch_size, drop_remainder=False, deterministic=True)
