"""TF-slim's ResNet v1 layout (the OD API TF1 backbone): strides, padding, widths, names.

Expected values are worked out by hand from TF-slim's `resnet_v1.py` / `resnet_utils.py`; that
the whole TF1 network computes what the TF1 OD API computes is the parity tool's job
(tools/odapi_parity/parity.py --tf1).
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.models import hyperparams as hp
from object_detection.models import resnet_v1
from object_detection.models import resnet_v1_slim as slim


def _end_points(model, depth):
    names = slim.output_layer_names(depth)
    return keras.Model(model.input, [model.get_layer(n).output for n in names])


@pytest.mark.parametrize("side, expected", [(320, [80, 40, 20, 10]), (640, [160, 80, 40, 20]),
                                            (321, [81, 41, 21, 11])])
def test_end_points_have_strides_4_to_32(side, expected):
    model = _end_points(slim.resnet_v1_slim(50), 50)
    outputs = model(tf.zeros([1, side, side, 3]))
    assert [o.shape[1] for o in outputs] == [o.shape[2] for o in outputs] == expected
    assert [o.shape[3] for o in outputs] == [256, 512, 1024, 2048]


def test_the_stride_sits_in_the_last_unit_of_blocks_1_to_3():
    # OD API TF1 way (store_non_strided_activations): the last unit runs at stride 1, then the
    # block keeps every other pixel; without it, that unit's 3x3 conv and shortcut are strided.
    model = slim.resnet_v1_slim(50)
    for block, units in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        for unit in range(1, units + 1):
            assert model.get_layer(f"block{block}_unit_{unit}_conv2").strides == (1, 1)
        subsample = [l for l in model.layers if l.name == f"block{block}_subsample"]
        assert bool(subsample) == (block < 4)
        if subsample:
            assert subsample[0].pool_size == (1, 1) and subsample[0].strides == (2, 2)
    strided = slim.resnet_v1_slim(50, store_non_strided_activations=False)
    for block, units in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        stride = 2 if block < 4 else 1
        assert strided.get_layer(f"block{block}_unit_{units}_conv2").strides == (stride, stride)
        for unit in range(1, units):
            assert strided.get_layer(f"block{block}_unit_{unit}_conv2").strides == (1, 1)
    # The last unit of block 1 keeps its identity shortcut, subsampled by a 1x1/2 max pool.
    pool = strided.get_layer("block1_unit_3_shortcut")
    assert isinstance(pool, keras.layers.MaxPooling2D) and pool.strides == (2, 2)
    # End points at strides 8, 16, 32, 32 then (each block's output is already subsampled).
    outputs = _end_points(strided, 50)(tf.zeros([1, 320, 320, 3]))
    assert [o.shape[1] for o in outputs] == [40, 20, 10, 10]


def _conv2d_same_reference(image, kernel, stride):
    """slim conv2d_same by hand: (k - 1) // 2 zeros before, the rest after, then every
    `stride`-th window from the first."""
    k = kernel.shape[0]
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    padded = np.pad(image, ((before, after), (before, after)))
    n = (padded.shape[0] - k) // stride + 1
    return np.array([[np.sum(padded[i * stride:i * stride + k, j * stride:j * stride + k] * kernel)
                      for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("side", [6, 7])
def test_conv2d_same_pads_symmetrically_on_odd_and_even_inputs(side):
    # The strided 3x3 conv of a last unit (store_non_strided_activations=False), fed one
    # channel through an identity root: compare with the hand computation. For an even side
    # Keras' 'same' would pad (0, 1) instead of slim's (1, 1).
    image = np.arange(side * side, dtype=np.float32).reshape(side, side) % 7 - 3
    kernel = np.arange(9, dtype=np.float32).reshape(3, 3) - 4
    got = _strided_conv2(image, kernel)
    want = _conv2d_same_reference(image, kernel, 2)
    assert got.shape == want.shape == ((side + 1) // 2,) * 2
    np.testing.assert_allclose(got, want, atol=1e-4)
    keras_same = tf.nn.conv2d(image[None, :, :, None], kernel[:, :, None, None], 2, "SAME")
    assert np.allclose(keras_same[0, :, :, 0], want) == (side % 2 == 1)


def _strided_conv2(image, kernel):
    """Runs only `block1_unit_3_conv2` (+ its pad) of a strided slim ResNet on `image`."""
    model = slim.resnet_v1_slim(50, store_non_strided_activations=False)
    pad, conv = model.get_layer("block1_unit_3_conv2_pad"), model.get_layer("block1_unit_3_conv2")
    assert pad.padding == ((1, 1), (1, 1)) and conv.padding == "valid"
    weights = np.zeros(conv.kernel.shape, np.float32)
    weights[:, :, 0, 0] = kernel
    conv.kernel.assign(weights)
    x = np.zeros([1, image.shape[0], image.shape[1], conv.kernel.shape[2]], np.float32)
    x[0, :, :, 0] = image
    return conv(pad(x)).numpy()[0, :, :, 0]


def test_root_conv_is_conv2d_same_and_pool_is_same():
    model = slim.resnet_v1_slim(50)
    assert model.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("conv1").padding == "valid" and model.get_layer("conv1").strides == (2, 2)
    pool = model.get_layer("pool1")
    assert pool.padding == "same" and pool.pool_size == (3, 3) and pool.strides == (2, 2)
    assert not any(getattr(l, "use_bias", False) for l in model.layers)


def test_depth_multiplier_scales_the_bottleneck_depth_and_never_conv1():
    model = slim.resnet_v1_slim(50, depth_multiplier=0.35, min_depth=16)
    assert model.get_layer("conv1").filters == 64
    # base depths max(int(64 * 0.35), 16) = 22, int(128 * .35) = 44, 89, 179; outputs 4x.
    assert model.get_layer("block1_unit_1_conv1").filters == 22
    assert model.get_layer("block1_unit_1_conv3").filters == 88
    assert model.get_layer("block4_unit_3_conv3").filters == 4 * 179
    small = slim.resnet_v1_slim(50, depth_multiplier=0.25, min_depth=8)
    # 4 * 16 = 64 = conv1's width: block1/unit_1 then has an identity shortcut, as in slim.
    assert "block1_unit_1_shortcut" not in [l.name for l in small.layers if l.weights]


def test_slim_scopes_of_every_layer_with_weights():
    model = slim.resnet_v1_slim(50)
    scopes = {slim.slim_scope(l.name) for l in model.layers if l.weights}
    assert "conv1" in scopes and "conv1/BatchNorm" in scopes
    assert "block1/unit_1/bottleneck_v1/shortcut/BatchNorm" in scopes
    assert "block3/unit_6/bottleneck_v1/conv2" in scopes
    assert len(scopes) == 2 * 53  # 53 convs, each with its batch norm
    with pytest.raises(ValueError, match="not a layer with variables"):
        slim.slim_scope("pool1")


def _copy_keras_layout_weights(keras_model, slim_model):
    parts = {"0": "shortcut", "1": "conv1", "2": "conv2", "3": "conv3"}
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        if layer.name.startswith("conv1_"):
            target = "conv1" + ("_BatchNorm" if layer.name.endswith("_bn") else "")
        else:  # conv{stage}_block{i}_{part}_{conv|bn}
            stage, block, part, kind = layer.name.split("_")
            target = (f"block{int(stage[4:]) - 1}_unit_{block[5:]}_{parts[part]}"
                      + ("_BatchNorm" if kind == "bn" else ""))
        for source, dest in zip(layer.weights, slim_model.get_layer(target).weights):
            dest.assign(source)


@pytest.mark.parametrize("training", [False, True])
def test_store_non_strided_activations_computes_the_keras_layout(training):
    # A stride-2 1x1 conv equals a 1x1 conv after keeping every other pixel: with the same
    # weights, the TF1 backbone and the Keras layout give the same C2..C5, in training mode too.
    params = hp.ConvHyperparams(
        activation="RELU", initializer={"kind": "truncated_normal", "stddev": 0.05},
        batch_norm=hp.BatchNormParams(decay=0.997, epsilon=1e-5, center=True, scale=True))
    keras_model = resnet_v1.resnet_v1(50, conv_hyperparams=params)
    slim_model = slim.resnet_v1_slim(50, conv_hyperparams=params)
    _copy_keras_layout_weights(keras_model, slim_model)
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(-100, 100, [2, 64, 64, 3]).astype(np.float32))
    ours = _end_points(slim_model, 50)(image, training=training)
    theirs = keras.Model(keras_model.input, [keras_model.get_layer(n).output for n in
                                             resnet_v1.output_layer_names(50)])(
        image, training=training)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4 * np.abs(b).max())
