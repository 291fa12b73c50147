"""Global sum pooling: the resnet critic's last spatial reduction (Miyato et al., 2018)."""

import keras


@keras.saving.register_keras_serializable(package="mmd_keras")
class GlobalSumPooling2D(keras.layers.Layer):
    """Sums a ``[b, H, W, C]`` feature map over ``H`` and ``W``: ``[b, C]``.

    The SN-ResNet critic of Miyato et al. (2018), which paper 2 uses, ends with a global *sum*
    (not mean) pooling before its dense layer, so the features scale with the map's area. A
    registered layer (not a ``Lambda``) so that models load with ``safe_mode=True``.

    Args:
        keepdims: keep the pooled axes as size 1 (``[b, 1, 1, C]``).
        **kwargs: those of ``keras.layers.Layer`` (``name``, ``dtype``).
    """

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(keepdims, bool):
            raise ValueError(f"Expected `keepdims` to be True or False. "
                             f"Received: `keepdims={keepdims!r}`")
        self.keepdims = keepdims
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs, training=False):
        del training  # the same in training and inference
        return keras.ops.sum(inputs, axis=(1, 2), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}
