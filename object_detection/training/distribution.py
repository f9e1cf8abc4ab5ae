"""Distribution engines: tf.distribute and Horovod behind one small interface.

The training loop is written once against `Engine`; each engine supplies
- the replica layout (`num_replicas_in_sync`, `num_workers`, `worker_index`, `is_chief`);
- `scope()` under which the model and optimizer are created;
- `distribute_dataset(dataset_fn)`: every worker reads its own shard (`dataset_fn` gets a
  `tf.distribute.InputContext`);
- `run(replica_fn, batch)`: one replica step, and `sum_across_replicas(x)` to call inside it;
- `aggregate_gradients(grads)`: tf.distribute's Keras optimizer sums gradients over replicas
  itself, so this is the identity there; Horovod sums them with an allreduce;
- `allgather_object(obj)`: one Python object per worker gathered on every worker (evaluation);
- `raising_peer_failures()`: a context in which a collective aborted by a dead or unreachable
  peer raises `PeerFailureError` (multi-worker runs).

Loss convention (both engines): each replica's loss is its local sum divided by the GLOBAL
number of matched anchors, and the regularization loss is divided by `num_replicas_in_sync`;
gradients are summed over replicas. The update then equals the one a single replica would make
on the whole global batch.
"""
from __future__ import annotations

import contextlib
import os
import pickle
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from object_detection.utils.errors import PeerFailureError
from object_detection.utils.log import logger

ENGINES = ("auto", "tf", "horovod")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def horovod_launched() -> bool:
    """True when this process was started by horovodrun or mpirun."""
    return any(v in os.environ for v in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"))


class Engine:
    name = "base"
    num_replicas_in_sync = 1
    num_workers = 1
    worker_index = 0

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def scope(self):
        return contextlib.nullcontext()

    def distribute_dataset(
            self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
        raise NotImplementedError

    def run(self, replica_fn: Callable, batch) -> Any:
        raise NotImplementedError

    def reduce_sum(self, per_replica) -> tf.Tensor:
        """Sums a per-replica value (output of `run`) over all replicas of all workers."""
        raise NotImplementedError

    def sum_across_replicas(self, x: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    # True when the Keras optimizer sums the replicas' gradients itself, inside
    # `apply_gradients` (tf.distribute); False when `aggregate_gradients` does (Horovod).
    optimizer_sums_gradients = False

    def aggregate_gradients(self, grads):
        return grads

    def broadcast_initial_state(self, variables) -> None:
        """Makes every worker start from the chief's values (Horovod; tf.distribute does it)."""

    def allgather_object(self, obj: Any) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def describe(self) -> str:
        return (f"{self.name}: {self.num_workers} worker(s), {self.num_replicas_in_sync} "
                f"replica(s) in sync, this is worker {self.worker_index}")

    @contextlib.contextmanager
    def raising_peer_failures(self):
        """Turns the errors of collectives a failed peer aborted into a `PeerFailureError`.

        With more than one worker, a peer that dies or becomes unreachable makes the
        collectives fail (at once when aborted, or after the collective timeout) with an
        UnavailableError, DeadlineExceededError or CancelledError; one worker runs no
        collective with a peer, so its errors pass unchanged.

        Raises:
          PeerFailureError: naming this worker and the first line of the cause.
        """
        try:
            yield
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.CancelledError) as e:
            if self.num_workers == 1:
                raise
            lines = [line for line in e.message.splitlines() if line.strip()]
            cause = next((line for line in lines if "aborted" in line or "Connection" in line),
                         lines[-1] if lines else type(e).__name__)
            raise PeerFailureError(
                f"worker {self.worker_index} of {self.num_workers}: a peer worker failed or "
                f"became unreachable; stopping. Cause: {cause.strip()}") from e


class TFDistributeEngine(Engine):
    """tf.distribute: default (one device), MirroredStrategy or MultiWorkerMirroredStrategy."""

    name = "tf.distribute"
    optimizer_sums_gradients = True

    def __init__(self, strategy: str = "auto", collective_timeout_s: float = 300.0):
        if strategy not in STRATEGIES:
            raise ValueError(f"--strategy {strategy!r}: expected one of {list(STRATEGIES)}.")
        if strategy == "auto":
            if os.environ.get("TF_CONFIG") or _slurm_multi_task():
                strategy = "multi_worker"
            elif len(tf.config.list_logical_devices("GPU")) > 1:
                strategy = "mirrored"
            else:
                strategy = "default"
        self.strategy_name = strategy
        if strategy == "default":
            self.strategy = tf.distribute.get_strategy()
        elif strategy == "mirrored":
            devices = None  # every local GPU
            cpus = tf.config.list_logical_devices("CPU")
            if not tf.config.list_logical_devices("GPU") and len(cpus) > 1:
                devices = [d.name for d in cpus]  # split_cpu
            self.strategy = tf.distribute.MirroredStrategy(devices)
        else:
            resolver = None
            if not os.environ.get("TF_CONFIG") and _slurm_multi_task():
                resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
            # A bounded collective timeout turns a dead peer into an error instead of a hang.
            options = tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=collective_timeout_s)
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options)
        self.num_replicas_in_sync = self.strategy.num_replicas_in_sync
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if strategy == "multi_worker" and resolver is not None:
            spec = resolver.cluster_spec().as_dict()
            self.num_workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
            task_type, task_id = resolver.task_type, resolver.task_id
            self.worker_index = task_id + (1 if "chief" in spec and task_type == "worker" else 0)
        self.name = f"tf.distribute ({strategy})"

    def scope(self):
        return self.strategy.scope()

    def distribute_dataset(self, dataset_fn):
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def run(self, replica_fn, batch):
        return self.strategy.run(replica_fn, args=(batch,))

    def reduce_sum(self, per_replica):
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def sum_across_replicas(self, x):
        ctx = tf.distribute.get_replica_context()
        if ctx is None or self.num_replicas_in_sync == 1:
            return x
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)

    def allgather_object(self, obj):
        if self.num_workers == 1:
            return [obj]
        payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        length = tf.constant([payload.size], tf.int64)
        lengths = self._gather(length).numpy()
        padded = np.zeros([int(lengths.max())], np.uint8)
        padded[:payload.size] = payload
        gathered = self._gather(tf.constant(padded[np.newaxis])).numpy()
        # One row per replica; on CPU workers there is one replica per worker.
        per_worker = self.num_replicas_in_sync // self.num_workers
        return [pickle.loads(gathered[i][:lengths[i]].tobytes())
                for i in range(0, gathered.shape[0], per_worker)]

    def _gather(self, value: tf.Tensor) -> tf.Tensor:
        def fn():
            return tf.distribute.get_replica_context().all_gather(value, axis=0)

        result = self.strategy.run(tf.function(fn))
        return self.strategy.experimental_local_results(result)[0]

    def barrier(self):
        if self.num_workers > 1:
            self._gather(tf.constant([0], tf.int64))


def prefetch_to(dataset: tf.data.Dataset, device: str, buffer_size: int = 2) -> tf.data.Dataset:
    """`dataset` with its next batches copied to `device` ahead of the step (Horovod on GPUs;
    tf.distribute's datasets already fetch to their replicas' devices)."""
    return dataset.apply(tf.data.experimental.prefetch_to_device(device, buffer_size))


class HorovodEngine(Engine):
    """Horovod (horovodrun / mpirun): one replica per process, gradients summed by allreduce."""

    name = "horovod"

    def __init__(self):
        try:
            import horovod.tensorflow as hvd
        except ImportError as e:
            raise RuntimeError(
                "--engine horovod: horovod is not installed in this environment; build it with "
                "`make horovod` (tools/build_horovod.sh).") from e
        self.hvd = hvd
        hvd.init()
        self.num_replicas_in_sync = hvd.size()
        self.num_workers = hvd.size()
        self.worker_index = hvd.rank()
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
        self._input_context = tf.distribute.InputContext(
            num_input_pipelines=hvd.size(), input_pipeline_id=hvd.rank(),
            num_replicas_in_sync=hvd.size())

    def distribute_dataset(self, dataset_fn):
        dataset = dataset_fn(self._input_context)
        gpus = tf.config.list_logical_devices("GPU")  # this rank's GPU only (see __init__)
        return prefetch_to(dataset, gpus[0].name) if gpus else dataset

    def run(self, replica_fn, batch):
        return replica_fn(batch)

    def reduce_sum(self, value):
        return self.hvd.allreduce(value, op=self.hvd.Sum)

    def sum_across_replicas(self, x):
        return self.hvd.allreduce(x, op=self.hvd.Sum)

    def aggregate_gradients(self, grads):
        return [None if g is None else self.hvd.allreduce(g, op=self.hvd.Sum) for g in grads]

    def broadcast_initial_state(self, variables):
        # Keras 3 variables wrap a tf.Variable; Horovod's broadcast needs the tf.Variable itself.
        self.hvd.broadcast_variables([getattr(v, "value", v) for v in variables], root_rank=0)

    def allgather_object(self, obj):
        return self.hvd.allgather_object(obj)

    def barrier(self):
        self.hvd.allreduce(tf.constant(0.0), op=self.hvd.Sum)


def split_cpu(replicas: int) -> None:
    """Splits the host CPU into `replicas` logical devices, on which `mirrored` then runs one
    replica each, as it does over several local GPUs. Must run before TensorFlow starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def _slurm_multi_task() -> bool:
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ


def make_engine(engine: str = "auto", strategy: str = "auto",
                collective_timeout_s: float = 300.0) -> Engine:
    """Horovod when launched by horovodrun/mpirun (or asked for), else tf.distribute."""
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r}: expected one of {list(ENGINES)}.")
    if engine == "horovod" or (engine == "auto" and horovod_launched()):
        result = HorovodEngine()
    else:
        result = TFDistributeEngine(strategy, collective_timeout_s=collective_timeout_s)
    logger.info("distribution: %s", result.describe())
    return result
