"""The FID Inception-v3 network (the 2015-12-05 TF graph) in Keras, as ported by pytorch-fid.

FID, KID and the Inception Score are only comparable across papers when they use the same
network: the 2015-12-05 Inception graph of the original TensorFlow FID/IS code. pytorch-fid
(``pytorch_fid/inception.py``) and torch-fidelity port it to PyTorch with the weights file
``pt_inception-2015-12-05-6726825d.pth``. That graph differs from torchvision's / Keras's
Inception-v3 in four places, all reproduced here:

* average pools inside the mixed blocks exclude the zero padding from the count
  (``count_include_pad=False``; TF's ``SAME`` average pool does the same);
* the last mixed block (``Mixed_7c``) pools its fourth branch with a *max* pool;
* the classifier has 1008 outputs (``fc``), pool_3 is the 2048-d global average pool;
* batch normalization uses ``eps=0.001``.

Inputs are images ``[N, H, W, 3]`` in ``[-1, 1]`` (our convention). They are resized to
299×299 with bilinear interpolation and half-pixel centers (``F.interpolate(...,
align_corners=False)`` in pytorch-fid, ``tf.image.resize(..., antialias=False)`` here);
pytorch-fid's ``2 * x - 1`` input scaling maps its ``[0, 1]`` images to the same ``[-1, 1]``.

Layer names are the PyTorch module paths (``Mixed_5b.branch1x1.conv``), so converting a state
dict is a renaming plus transposes (:func:`keras_weights_from_state_dict`). The TF graph's own
Const nodes map on with a renaming alone (:mod:`mmd_keras.tools.fid_weights`).

Reference: Heusel et al., *GANs trained by a two time-scale update rule converge to a local
Nash equilibrium* (NeurIPS 2017); Bińkowski et al., *Demystifying MMD GANs* (ICLR 2018), §5.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from mmd_keras.evaluation import weights as weights_lib
from mmd_keras.evaluation.extractor_base import FeatureExtractor, float32_policy

INPUT_SIZE = 299
NUM_LOGITS = 1008
POOL3_DIM = 2048
BATCH_NORM_EPSILON = 1e-3
NUM_CONV_LAYERS = 94  # BasicConv2d modules (conv + batch norm) in the network


def _conv_bn(x, name, filters, kernel_size, strides=1, padding=None):
    """``BasicConv2d``: conv (no bias) → batch norm (eps 1e-3) → ReLU.

    Torch pads stride-1 convs of the mixed blocks by (k - 1) / 2 ("same") and never pads the
    stride-2 ones ("valid"); the stem's unpadded 3×3 convs pass ``padding="valid"``.
    """
    if padding is None:
        padding = "same" if strides == 1 else "valid"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding,
        use_bias=False, name=f"{name}.conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}.bn")(x)
    return keras.layers.ReLU(name=f"{name}.relu")(x)


def _avg_pool_same(x):
    # TF's SAME average pool divides by the number of valid inputs: count_include_pad=False.
    return keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)


def _concat(name, tensors):
    return keras.layers.Concatenate(axis=-1, name=f"{name}.concat")(tensors)


def _block_a(x, name, pool_features):
    """``FIDInceptionA`` (Mixed_5b/c/d)."""
    b1 = _conv_bn(x, f"{name}.branch1x1", 64, 1)
    b5 = _conv_bn(x, f"{name}.branch5x5_1", 48, 1)
    b5 = _conv_bn(b5, f"{name}.branch5x5_2", 64, 5)
    b3 = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    b3 = _conv_bn(b3, f"{name}.branch3x3dbl_2", 96, 3)
    b3 = _conv_bn(b3, f"{name}.branch3x3dbl_3", 96, 3)
    bp = _conv_bn(_avg_pool_same(x), f"{name}.branch_pool", pool_features, 1)
    return _concat(name, [b1, b5, b3, bp])


def _block_b(x, name):
    """``InceptionB`` (Mixed_6a): grid reduction 35 → 17."""
    b3 = _conv_bn(x, f"{name}.branch3x3", 384, 3, strides=2)
    bd = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_2", 96, 3)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_3", 96, 3, strides=2)
    bp = keras.layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    return _concat(name, [b3, bd, bp])


def _block_c(x, name, c7):
    """``FIDInceptionC`` (Mixed_6b/c/d/e) with factorized 7×7 convolutions."""
    b1 = _conv_bn(x, f"{name}.branch1x1", 192, 1)
    b7 = _conv_bn(x, f"{name}.branch7x7_1", c7, 1)
    b7 = _conv_bn(b7, f"{name}.branch7x7_2", c7, (1, 7))
    b7 = _conv_bn(b7, f"{name}.branch7x7_3", 192, (7, 1))
    bd = _conv_bn(x, f"{name}.branch7x7dbl_1", c7, 1)
    for i, (filters, kernel) in enumerate(
            ((c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)), (192, (1, 7))), start=2):
        bd = _conv_bn(bd, f"{name}.branch7x7dbl_{i}", filters, kernel)
    bp = _conv_bn(_avg_pool_same(x), f"{name}.branch_pool", 192, 1)
    return _concat(name, [b1, b7, bd, bp])


def _block_d(x, name):
    """``InceptionD`` (Mixed_7a): grid reduction 17 → 8."""
    b3 = _conv_bn(x, f"{name}.branch3x3_1", 192, 1)
    b3 = _conv_bn(b3, f"{name}.branch3x3_2", 320, 3, strides=2)
    b7 = _conv_bn(x, f"{name}.branch7x7x3_1", 192, 1)
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_2", 192, (1, 7))
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_3", 192, (7, 1))
    b7 = _conv_bn(b7, f"{name}.branch7x7x3_4", 192, 3, strides=2)
    bp = keras.layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    return _concat(name, [b3, b7, bp])


def _block_e(x, name, pool):
    """``FIDInceptionE_1`` (pool="avg", Mixed_7b) / ``FIDInceptionE_2`` (pool="max", Mixed_7c)."""
    b1 = _conv_bn(x, f"{name}.branch1x1", 320, 1)
    b3 = _conv_bn(x, f"{name}.branch3x3_1", 384, 1)
    b3 = [_conv_bn(b3, f"{name}.branch3x3_2a", 384, (1, 3)),
          _conv_bn(b3, f"{name}.branch3x3_2b", 384, (3, 1))]
    bd = _conv_bn(x, f"{name}.branch3x3dbl_1", 448, 1)
    bd = _conv_bn(bd, f"{name}.branch3x3dbl_2", 384, 3)
    bd = [_conv_bn(bd, f"{name}.branch3x3dbl_3a", 384, (1, 3)),
          _conv_bn(bd, f"{name}.branch3x3dbl_3b", 384, (3, 1))]
    if pool == "max":  # The FID graph's quirk: a max pool in the last block.
        pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    else:
        pooled = _avg_pool_same(x)
    bp = _conv_bn(pooled, f"{name}.branch_pool", 192, 1)
    return _concat(name, [b1, *b3, *bd, bp])


def build_fid_inception(resize_input=True):
    """Builds the FID Inception-v3 as a functional Keras model (random weights).

    Args:
        resize_input: resize inputs of any size to 299×299 (bilinear, half-pixel centers,
            no antialiasing — pytorch-fid's ``F.interpolate(align_corners=False)``). With
            ``False`` the input must already be 299×299.

    Returns:
        ``keras.Model`` mapping images ``[N, H, W, 3]`` in ``[-1, 1]`` to
        ``{"pool_3": [N, 2048], "logits": [N, 1008]}`` (``logits = fc(pool_3)``).
    """
    if not isinstance(resize_input, bool):
        raise ValueError(
            f"Expected `resize_input` to be a bool. Received: `resize_input={resize_input!r}`")
    with float32_policy():
        return _build(resize_input)


def _build(resize_input):
    size = None if resize_input else INPUT_SIZE
    inputs = keras.Input((size, size, 3), name="images")
    x = inputs
    if resize_input:
        x = keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear",
                                  name="resize")(x)
    x = _conv_bn(x, "Conv2d_1a_3x3", 32, 3, strides=2)
    x = _conv_bn(x, "Conv2d_2a_3x3", 32, 3, padding="valid")
    x = _conv_bn(x, "Conv2d_2b_3x3", 64, 3)
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool1")(x)
    x = _conv_bn(x, "Conv2d_3b_1x1", 80, 1)
    x = _conv_bn(x, "Conv2d_4a_3x3", 192, 3, padding="valid")
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool2")(x)
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = _block_a(x, name, pool_features)
    x = _block_b(x, "Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _block_c(x, name, c7)
    x = _block_d(x, "Mixed_7a")
    x = _block_e(x, "Mixed_7b", pool="avg")
    x = _block_e(x, "Mixed_7c", pool="max")
    pool_3 = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    logits = keras.layers.Dense(NUM_LOGITS, name="fc")(pool_3)
    return keras.Model(inputs, {"pool_3": pool_3, "logits": logits}, name="fid_inception_v3")


WEIGHTS_FORMAT = "mmd_keras/fid_inception/v1"
_FORMAT_KEY = "__format__"
_BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
             "running_var": "moving_variance"}


def keras_weights_from_state_dict(state_dict):
    """Converts pytorch-fid's Inception state dict into this model's weights.

    Renames ``<module>.conv.weight`` → ``<module>.conv/kernel`` (``[out, in, kh, kw]`` →
    ``[kh, kw, in, out]``), batch-norm ``weight/bias/running_mean/running_var`` →
    ``gamma/beta/moving_mean/moving_variance``, ``fc.weight`` ``[1008, 2048]`` →
    ``fc/kernel`` ``[2048, 1008]``. ``num_batches_tracked`` and ``AuxLogits.*`` are dropped.

    Args:
        state_dict: mapping from torch parameter names to arrays (NumPy or torch tensors).

    Returns:
        ``dict[str, np.ndarray]`` keyed by Keras weight path (``"<layer>/<name>"``), float32.

    Raises:
        ValueError: on a key that is neither a conv, batch-norm nor ``fc`` parameter.
    """
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked") or key.startswith("AuxLogits."):
            continue
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                           dtype=np.float32)
        layer, _, param = key.rpartition(".")
        if layer.endswith(".conv") and param == "weight" and array.ndim == 4:
            out[f"{layer}/kernel"] = array.transpose(2, 3, 1, 0)
        elif layer.endswith(".bn") and param in _BN_NAMES:
            out[f"{layer}/{_BN_NAMES[param]}"] = array
        elif layer == "fc" and param == "weight" and array.ndim == 2:
            out["fc/kernel"] = array.T
        elif layer == "fc" and param == "bias":
            out["fc/bias"] = array
        else:
            raise ValueError(
                "Expected a pytorch-fid Inception state dict (conv/bn/fc parameters). "
                f"Received an unknown entry: `{key}` with shape {array.shape}")
    return out


def check_converted_weights(weights):
    """Cheap structural check of converted weights (no network is built).

    Raises:
        ValueError: not 94 conv/batch-norm layers with all their weights, or ``fc`` not
            ``[2048, 1008]`` (e.g. torchvision's 1000-class ImageNet Inception).
    """
    convs = {k[:-len(".conv/kernel")] for k in weights if k.endswith(".conv/kernel")}
    expected = {f"{c}.conv/kernel" for c in convs} | {"fc/kernel", "fc/bias"} | {
        f"{c}.bn/{name}" for c in convs for name in _BN_NAMES.values()}
    if len(convs) != NUM_CONV_LAYERS or set(weights) != expected:
        raise ValueError(
            f"Expected {NUM_CONV_LAYERS} conv + batch-norm layers and `fc`. Received: "
            f"{len(convs)} conv layers; missing {sorted(expected - set(weights))[:3]}, "
            f"unexpected {sorted(set(weights) - expected)[:3]}.")
    if weights["fc/kernel"].shape != (POOL3_DIM, NUM_LOGITS):
        raise ValueError(
            f"Expected `fc.weight` of shape ({NUM_LOGITS}, {POOL3_DIM}) (the FID Inception's "
            f"1008 classes). Received: {weights['fc/kernel'].T.shape}.")


def set_fid_inception_weights(model, weights):
    """Assigns converted weights (:func:`keras_weights_from_state_dict`) to ``model``.

    Raises:
        ValueError: naming missing, unexpected or mis-shaped weights.
    """
    variables = {v.path: v for v in model.weights}
    missing = sorted(set(variables) - set(weights))
    unexpected = sorted(set(weights) - set(variables) - {_FORMAT_KEY})
    if missing or unexpected:
        raise ValueError(
            "Expected weights for exactly the FID Inception layers. Received: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}).")
    for path, variable in variables.items():
        value = np.asarray(weights[path])
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Expected `{path}` of shape {tuple(variable.shape)}. "
                f"Received: shape {tuple(value.shape)}.")
        variable.assign(value.astype(np.float32))


def save_fid_inception_weights(weights, path):
    """Writes converted weights to ``path`` as an ``.npz`` (format tag included)."""
    np.savez(path, **{_FORMAT_KEY: np.array(WEIGHTS_FORMAT)}, **weights)


def load_fid_inception(weights_path=None, resize_input=True, flag="weights_path"):
    """Builds the FID Inception and loads weights written by the converter.

    Args:
        weights_path: ``.npz`` from ``python -m mmd_keras.tools.fid_weights``; None
            = the default cache file :func:`mmd_keras.evaluation.weights.default_fid_weights_path`.
        resize_input: see :func:`build_fid_inception`.
        flag: the argument or command-line flag that set ``weights_path``, named in errors.

    Raises:
        FileNotFoundError: naming ``flag``, the path and how to create the file.
        ValueError: when the file is not a converted FID Inception weights file.
    """
    weights_path = weights_lib.resolve_fid_weights_path(weights_path, flag=flag)
    try:
        with np.load(weights_path, allow_pickle=False) as data:
            weights = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Expected a `.npz` written by mmd_keras.tools.fid_weights (or "
            f"convert_fid_inception). Received: "
            f"`weights_path={weights_path}` ({error})") from error
    if str(weights.get(_FORMAT_KEY, "")) != WEIGHTS_FORMAT:
        raise ValueError(
            f"Expected a weights file tagged `{WEIGHTS_FORMAT}`. Received: "
            f"`weights_path={weights_path}` with tag `{weights.get(_FORMAT_KEY)}`.")
    model = build_fid_inception(resize_input=resize_input)
    set_fid_inception_weights(model, weights)
    return model


class FIDInceptionExtractor(FeatureExtractor):
    """pool_3 features (2048-d), logits and probabilities of the FID Inception.

    ``__call__`` gives pool_3, the features of FID and KID. ``probabilities`` is the softmax
    of the *unbiased* logits ``pool_3 @ fc.kernel`` over the 1008 outputs, as the original
    Inception Score code (``softmax/logits/MatMul``) and torch-fidelity's ``logits_unbiased``
    compute it; ``logits(images, bias=True)`` gives the ``fc`` output of pytorch-fid's port.

    Args:
        weights_path: ``.npz`` written by ``python -m mmd_keras.tools.fid_weights``;
            None = the default cache file (``$MMD_KERAS_CACHE/fid_inception.npz``, else
            ``~/.cache/mmd_keras/fid_inception.npz``), where the converter writes by default.
        batch_size: images per network call.
        model: an already-built :func:`build_fid_inception` model (then ``weights_path`` is
            only recorded; for tests with random weights).
        flag: the argument or command-line flag that sets ``weights_path`` (e.g.
            ``"--weights"``), named in the missing-file error.

    Raises:
        FileNotFoundError: the weights file does not exist (the message names ``flag``, the
            path and how to create it).
    """

    has_probabilities = True

    def __init__(self, weights_path=None, batch_size=32, model=None, flag="weights_path"):
        super().__init__("fid_inception", batch_size=batch_size, channels=3)
        if model is None:
            weights_path = weights_lib.resolve_fid_weights_path(weights_path, flag=flag)
            model = load_fid_inception(weights_path)
        self.weights_path = None if weights_path is None else os.fspath(weights_path)
        self.model = model
        self._fc = model.get_layer("fc")
        self._compute = tf.function(self._compute_eager, reduce_retracing=True)

    def _compute_eager(self, batch):
        return self.model(batch, training=False)

    def _features(self, batch):
        return self._compute(batch)["pool_3"]

    def _unbiased_logits(self, batch):
        return tf.matmul(self._compute(batch)["pool_3"], self._fc.kernel)

    def _probabilities(self, batch):
        return tf.nn.softmax(self._unbiased_logits(batch), axis=-1)

    def logits(self, images, bias=True):
        """Logits ``[N, 1008]``: ``fc(pool_3)``, or ``pool_3 @ kernel`` with ``bias=False``."""
        fn = (lambda b: self._compute(b)["logits"]) if bias else self._unbiased_logits
        return self._batched(fn, images)

    def get_config(self):
        return {**super().get_config(), "weights_path": self.weights_path}
