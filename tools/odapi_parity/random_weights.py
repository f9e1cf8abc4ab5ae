"""The seeded random weights both reference scripts (TF2 `reference.py`, TF1 `reference_tf1.py`)
give the OD API model. NumPy only: each script imports it beside its own TensorFlow mode."""
import numpy as np

CLASS_PRIOR_BIAS = -4.6  # -log((1 - 0.01) / 0.01), the class head's prior


def random_value(name: str, shape, rng: np.random.Generator):
    """A float32 value for the variable `name` (tf-keras `.../bias:0` or TF-slim `.../biases`),
    or None to keep its initial value: biases ~ N(0, 0.1) (the class head N(-4.6, 0.5)), batch
    norm gamma ~ U(0.5, 1), beta ~ U(-0.2, 0.3)."""
    kind = name.split(":")[0].rsplit("/", 1)[-1]
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape))
    if kind in ("bias", "biases"):
        if "class_predictor" in name or "ClassPredictor" in name:
            value = CLASS_PRIOR_BIAS + 0.5 * rng.standard_normal(n)
        else:
            value = 0.1 * rng.standard_normal(n)
    elif kind == "gamma":
        value = rng.uniform(0.5, 1.0, n)
    elif kind == "beta":
        value = rng.uniform(-0.2, 0.3, n)
    else:
        return None
    return value.reshape(shape).astype(np.float32)


def noisy_statistics(mean, variance, rng: np.random.Generator):
    """Moving statistics near a batch norm's input statistics on the image (so that no layer
    is saturated or dead): (mean + 0.05 std N(0, 1), variance U(0.8, 1.25) + 1e-3)."""
    mean, variance = np.asarray(mean), np.asarray(variance)
    n = mean.shape[0]
    return ((mean + 0.05 * np.sqrt(variance) * rng.standard_normal(n)).astype(np.float32),
            (variance * rng.uniform(0.8, 1.25, n) + 1e-3).astype(np.float32))
