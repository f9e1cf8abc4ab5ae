"""distribution.Engine.raising_peer_failures: collective failures become a typed error."""
from __future__ import annotations

import pytest
import tensorflow as tf

from object_detection.training import distribution
from object_detection.utils.errors import PeerFailureError


class _TwoWorkers(distribution.Engine):
    num_workers = 2
    worker_index = 1


@pytest.mark.parametrize("error_type", [
    tf.errors.UnavailableError,  # the peer's socket closed
    tf.errors.DeadlineExceededError,  # --collective_timeout_s elapsed
    tf.errors.CancelledError,  # the collective was cancelled by the abort
])
def test_a_collective_aborted_by_a_peer_becomes_a_peer_failure(error_type):
    message = "\n\nCollective ops is aborted by: socket closed\nAdditional GRPC info\n"
    with pytest.raises(PeerFailureError) as raised:
        with _TwoWorkers().raising_peer_failures():
            raise error_type(None, None, message)
    assert str(raised.value) == ("worker 1 of 2: a peer worker failed or became unreachable; "
                                 "stopping. Cause: Collective ops is aborted by: socket closed")
    assert isinstance(raised.value.__cause__, error_type)


def test_without_a_peer_the_error_passes_unchanged():
    with pytest.raises(tf.errors.UnavailableError):
        with distribution.Engine().raising_peer_failures():
            raise tf.errors.UnavailableError(None, None, "a file system is unavailable")


def test_other_errors_pass_unchanged():
    with pytest.raises(tf.errors.InvalidArgumentError):
        with _TwoWorkers().raising_peer_failures():
            raise tf.errors.InvalidArgumentError(None, None, "bad shape")


def test_prefetch_to_a_device_keeps_every_batch_and_places_it_there():
    # What the Horovod engine does with its rank's GPU; here with the CPU, the device there is.
    dataset = tf.data.Dataset.range(5).map(lambda i: {"x": tf.fill([2], i)})
    out = list(distribution.prefetch_to(dataset, "/cpu:0"))
    assert [int(b["x"][0]) for b in out] == [0, 1, 2, 3, 4]
    assert all(b["x"].device.endswith("CPU:0") for b in out)
