"""Kernels on critic features: ``k(x[n, d], y[m, d]) -> [n, m]``.

Every kernel of the three papers (docs/numerics.md, "Kernels"), as small serializable objects that
wrap pure tensor functions:

* ``rbf``        Σ_σ w_σ exp(−‖x−y‖²/(2σ²))                (papers 1–3)
* ``rq``         Σ_α w_α (1 + ‖x−y‖²/(2α))^(−α)             (paper 1)
* ``rq_dot``     rq + c·⟨x, y⟩, the paper's rq*               (paper 1)
* ``dot``        ⟨x, y⟩
* ``distance``   (s/2)(ρ(x,0) + ρ(y,0) − ρ(x,y)), ρ = ‖·‖^β   (paper 1 Eq. 8 with s = 1; energy distance)
* ``polynomial`` (γ⟨x, y⟩ + c₀)^degree, γ = 1/d by default   (the KID kernel)

Conventions: ``x`` are real features and ``y`` fake features wherever the two differ;
inputs are cast to float32 and every kernel computes in float32, even under a
``mixed_float16``/``mixed_bfloat16`` policy, because MMD² is a small difference of
large sums. Squared distances are computed as ‖x‖² + ‖y‖² − 2xᵀy and clamped at 0;
when ``x`` and ``y`` are the same tensor the diagonal is exactly 0.
"""

import math

import keras
import tensorflow as tf

from mmd_keras import catalog

_PACKAGE = "mmd_keras"

PAPER1_RBF_SIGMAS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
PAPER3_RBF_SIGMAS = (1.0, math.sqrt(2.0), 2.0, 2.0 * math.sqrt(2.0), 4.0)
PAPER1_RQ_ALPHAS = (0.2, 0.5, 1.0, 2.0, 5.0)
PAPER1_CODE_RQ_ALPHAS = (0.1, 1.0, 10.0)


def _as_features(t, name):
    t = tf.convert_to_tensor(t)
    if t.shape.rank != 2:
        raise ValueError(
            f"Expected `{name}` of rank 2 with shape [batch, features]. "
            f"Received: `{name}.shape={t.shape}`"
        )
    return tf.cast(t, tf.float32)


def _check_widths(x, y):
    dx, dy = x.shape[-1], y.shape[-1]
    if dx is not None and dy is not None and dx != dy:
        raise ValueError(
            "Expected `x` and `y` with the same feature width. "
            f"Received: `x.shape={x.shape}`, `y.shape={y.shape}`"
        )


def squared_distances(x, y):
    """Pairwise squared Euclidean distances, clamped at 0.

    Args:
      x: [n, d] tensor.
      y: [m, d] tensor.

    Returns:
      [n, m] float32 tensor of ‖x_i − y_j‖², computed as ‖x‖² + ‖y‖² − 2xᵀy (one
      matmul) and clamped at 0 because cancellation can make it slightly negative.
      When ``y`` is ``x`` (the same object) the diagonal is set to exactly 0: the
      cancellation leaves ≈1e-6 there, which a square root (the distance kernel)
      turns into ≈1e-3.
    """
    same = y is x
    x = _as_features(x, "x")
    y = x if same else _as_features(y, "y")
    _check_widths(x, y)
    x_sq = tf.reduce_sum(tf.square(x), axis=1)
    y_sq = tf.reduce_sum(tf.square(y), axis=1)
    d2 = tf.maximum(x_sq[:, None] + y_sq[None, :] - 2.0 * tf.matmul(x, y, transpose_b=True), 0.0)
    if same:
        # A select, not tf.linalg.set_diag: set_diag's gradient builds a dynamic shape XLA rejects.
        index = tf.range(tf.shape(x)[0])
        d2 = tf.where(index[:, None] == index[None, :], tf.zeros_like(d2), d2)
    return d2


def _safe_power(t, exponent):
    """t^exponent for t ≥ 0 with a finite gradient at t = 0 (double-where trick).

    Distances on the kernel diagonal are exactly 0; sqrt there has an infinite
    derivative, and 0·inf = NaN would poison gradients even though estimators
    discard the diagonal.
    """
    positive = t > 0.0
    safe_t = tf.where(positive, t, tf.ones_like(t))
    return tf.where(positive, tf.pow(safe_t, exponent), tf.zeros_like(t))


def _positive_tuple(values, name):
    try:
        values = tuple(float(v) for v in values)
    except TypeError:
        values = (float(values),)
    if not values or any(not v > 0 for v in values):
        raise ValueError(
            f"Expected `{name}` to be a non-empty list of positive numbers. "
            f"Received: `{name}={values}`"
        )
    return values


def _weights_tuple(weights, n, name_of_scales):
    if weights is None:
        return (1.0,) * n
    try:
        weights = tuple(float(w) for w in weights)
    except TypeError:
        weights = (float(weights),)
    if len(weights) != n:
        raise ValueError(
            f"Expected `weights` with one entry per element of `{name_of_scales}` "
            f"({n}). Received: `weights={weights}`"
        )
    return weights


class Kernel:
    """Base class: a positive (semi-)definite kernel on feature vectors.

    Subclasses implement ``_matrix(x, y)`` on float32 rank-2 tensors and
    ``_diagonal(x)`` (the true ``k(x_i, x_i)``).
    """

    #: The registry name (:data:`mmd_keras.catalog.KERNELS`, set on each class below).
    name = None
    #: True when k(x, y) = f(‖x − y‖²); such kernels also offer
    #: ``from_squared_distances`` so bounded variants (RBF-B) can clamp d².
    is_distance_based = False

    def __call__(self, x, y):
        """Kernel matrix.

        Args:
          x: [n, d] tensor (real features where it matters).
          y: [m, d] tensor (fake features where it matters).

        Returns:
          [n, m] float32 tensor with entries k(x_i, y_j).
        """
        same = y is x  # kept through the casts so squared_distances can zero the diagonal
        x = _as_features(x, "x")
        y = x if same else _as_features(y, "y")
        _check_widths(x, y)
        return self._matrix(x, y)

    def diagonal(self, x):
        """The true diagonal k(x_i, x_i), shape [n] float32."""
        return self._diagonal(_as_features(x, "x"))

    @property
    def constant_diagonal(self):
        """The constant paper 1's code subtracted as "diagonal" (``legacy_constant_diagonal``).

        None where that code had no constant for the kernel.
        """
        return None

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


class _MixtureKernel(Kernel):
    """Weighted sum over scales of a function of the squared distance."""

    is_distance_based = True
    _scales_name = None

    def __init__(self, scales, weights=None):
        self._scales = _positive_tuple(scales, self._scales_name)
        self.weights = _weights_tuple(weights, len(self._scales), self._scales_name)

    def _component(self, d2, scale):
        raise NotImplementedError

    def from_squared_distances(self, d2):
        """Applies the kernel to (possibly clamped) squared distances, any shape."""
        d2 = tf.cast(d2, tf.float32)
        total = tf.zeros_like(d2)
        for scale, weight in zip(self._scales, self.weights):
            total += weight * self._component(d2, scale)
        return total

    def _matrix(self, x, y):
        return self.from_squared_distances(squared_distances(x, y))

    def _diagonal(self, x):
        return tf.fill(tf.shape(x)[:1], float(sum(self.weights)))

    @property
    def constant_diagonal(self):
        return float(sum(self.weights))

    def get_config(self):
        return {self._scales_name: list(self._scales), "weights": list(self.weights)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RBF(_MixtureKernel):
    """Mixture of Gaussian kernels Σ_σ w_σ exp(−‖x−y‖²/(2σ²)).

    Args:
      sigmas: bandwidths. Default: paper 1's {2, 5, 10, 20, 40, 80}; paper 3's
        "MMD-rbf" uses ``PAPER3_RBF_SIGMAS``; SMMD and the repulsive loss use (1,).
      weights: one weight per bandwidth (default 1 each).
    """

    _scales_name = "sigmas"

    def __init__(self, sigmas=PAPER1_RBF_SIGMAS, weights=None):
        super().__init__(sigmas, weights)

    @property
    def sigmas(self):
        return self._scales

    def _component(self, d2, sigma):
        return tf.exp(-d2 / (2.0 * sigma * sigma))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RationalQuadratic(_MixtureKernel):
    """Mixture of rational-quadratic kernels Σ_α w_α (1 + ‖x−y‖²/(2α))^(−α).

    Args:
      alphas: shape parameters. Default: paper 1's text {0.2, 0.5, 1, 2, 5}; its code
        used ``PAPER1_CODE_RQ_ALPHAS`` = {0.1, 1, 10}.
      weights: one weight per alpha (default 1 each).
    """

    _scales_name = "alphas"

    def __init__(self, alphas=PAPER1_RQ_ALPHAS, weights=None):
        super().__init__(alphas, weights)

    @property
    def alphas(self):
        return self._scales

    def _component(self, d2, alpha):
        return tf.pow(1.0 + d2 / (2.0 * alpha), -alpha)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RationalQuadraticDot(RationalQuadratic):
    """Paper 1's rq*: rational-quadratic mixture plus c·⟨x, y⟩.

    The true diagonal is Σw + c‖x‖²; paper 1's code subtracted only Σw
    (see ``legacy_constant_diagonal`` in :func:`mmd_keras.losses.mmd2` and the MMD-family losses).

    Args:
      alphas, weights: as :class:`RationalQuadratic`.
      linear_coefficient: c (1 in every paper-1 script).
    """

    is_distance_based = False

    def __init__(self, alphas=PAPER1_RQ_ALPHAS, weights=None, linear_coefficient=1.0):
        super().__init__(alphas, weights)
        self.linear_coefficient = float(linear_coefficient)

    def _matrix(self, x, y):
        rq = super()._matrix(x, y)
        return rq + self.linear_coefficient * tf.matmul(x, y, transpose_b=True)

    def _diagonal(self, x):
        return super()._diagonal(x) + self.linear_coefficient * tf.reduce_sum(
            tf.square(x), axis=1
        )

    def get_config(self):
        return {**super().get_config(), "linear_coefficient": self.linear_coefficient}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Dot(Kernel):
    """Linear kernel ⟨x, y⟩."""


    def _matrix(self, x, y):
        return tf.matmul(x, y, transpose_b=True)

    def _diagonal(self, x):
        return tf.reduce_sum(tf.square(x), axis=1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Distance(Kernel):
    """Distance kernel of the energy distance: (s/2)(ρ(x,0) + ρ(y,0) − ρ(x,y)), ρ = ‖·‖^β.

    With s = 1 (paper 1 §2.3, Eq. 8; Sejdinovic et al. 2013) MMD² is half the energy
    distance of Eq. 7; with s = 2 (paper 1's code) it is the energy distance itself,
    the quantity the Cramér GAN generator minimizes (Bellemare et al. 2017). The scale
    matters under the witness gradient penalty, whose target norm is 1.

    Args:
      beta: exponent β ∈ (0, 2] (1 in paper 1).
      eps: added to each squared norm before the power. Paper 1's code adds 1e-5
        inside each sqrt; the paper (and the default) uses 0. Gradients stay finite at
        zero distance either way.
      scale: s > 0; 1 is paper 1's Eq. 8 (default), 2 its official code.
    """


    def __init__(self, beta=1.0, eps=0.0, scale=1.0):
        beta = float(beta)
        if not 0.0 < beta <= 2.0:
            raise ValueError(f"Expected `beta` in (0, 2]. Received: `beta={beta}`")
        if eps < 0:
            raise ValueError(f"Expected `eps` >= 0. Received: `eps={eps}`")
        if not scale > 0:
            raise ValueError(f"Expected `scale` > 0. Received: `scale={scale}`")
        self.beta = beta
        self.eps = float(eps)
        self.scale = float(scale)

    def _rho(self, d2):
        return _safe_power(d2 + self.eps, self.beta / 2.0)

    def _matrix(self, x, y):
        rho_x = self._rho(tf.reduce_sum(tf.square(x), axis=1))
        rho_y = self._rho(tf.reduce_sum(tf.square(y), axis=1))
        return (0.5 * self.scale) * (rho_x[:, None] + rho_y[None, :] - self._rho(squared_distances(x, y)))

    def _diagonal(self, x):
        rho_x = self._rho(tf.reduce_sum(tf.square(x), axis=1))
        return self.scale * (rho_x - 0.5 * self._rho(tf.zeros_like(rho_x)))

    def get_config(self):
        return {"beta": self.beta, "eps": self.eps, "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Polynomial(Kernel):
    """Polynomial kernel (γ⟨x, y⟩ + c₀)^degree; KID uses (xᵀy/d + 1)³.

    Args:
      degree: positive integer power (3 for KID).
      gamma: scale of the inner product; None means 1/d, d the feature width.
      coef0: additive constant c₀.
    """


    def __init__(self, degree=3, gamma=None, coef0=1.0):
        if int(degree) != degree or degree < 1:
            raise ValueError(f"Expected `degree` a positive integer. Received: `degree={degree}`")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"Expected `gamma` > 0 or None. Received: `gamma={gamma}`")
        self.degree = int(degree)
        self.gamma = None if gamma is None else float(gamma)
        self.coef0 = float(coef0)

    def _gamma(self, x):
        if self.gamma is not None:
            return self.gamma
        return 1.0 / tf.cast(tf.shape(x)[1], tf.float32)

    def _matrix(self, x, y):
        return tf.pow(self._gamma(x) * tf.matmul(x, y, transpose_b=True) + self.coef0, self.degree)

    def _diagonal(self, x):
        return tf.pow(self._gamma(x) * tf.reduce_sum(tf.square(x), axis=1) + self.coef0, self.degree)

    def get_config(self):
        return {"degree": self.degree, "gamma": self.gamma, "coef0": self.coef0}


_REGISTRY = {name: globals()[class_name] for name, class_name in catalog.KERNELS.items()}
for _name, _cls in _REGISTRY.items():
    _cls.name = _name  # the catalog is the one definition of the names
KERNELS = tuple(_REGISTRY)
_BY_CLASS_NAME = {cls.__name__: cls for cls in _REGISTRY.values()}


def get(identifier, **params):
    """Returns a kernel object.

    Args:
      identifier: a name in ``KERNELS`` ("rbf", "rq", "rq_dot", "dot", "distance",
        "polynomial"), a :class:`Kernel` (returned as is), or a Keras serialization
        dict (``{"class_name": ..., "config": ...}``).
      **params: constructor arguments for a name, e.g. ``sigmas=(1.0,)``.

    Raises:
      ValueError: unknown name, or parameters the kernel does not take.
    """
    if isinstance(identifier, Kernel):
        if params:
            raise ValueError(
                "Expected no extra parameters with a Kernel instance. "
                f"Received: `params={params}`"
            )
        return identifier
    if isinstance(identifier, dict):
        # The short form {"class_name": "RBF" or "rbf", "config": {...}} is resolved
        # here; anything else (e.g. registered_name "mmd_keras>RBF") goes to Keras.
        cls = _BY_CLASS_NAME.get(identifier.get("class_name")) or _REGISTRY.get(
            identifier.get("class_name")
        )
        if cls is not None and set(identifier) <= {"class_name", "config"}:
            return cls.from_config(dict(identifier.get("config") or {}))
        try:
            kernel = keras.saving.deserialize_keras_object(identifier)
        except (TypeError, ValueError):
            kernel = None
        if not isinstance(kernel, Kernel):
            raise ValueError(
                "Expected a kernel config dict {'class_name': one of "
                f"{list(KERNELS)}, 'config': {{...}}}} (or a Keras serialization of a Kernel). "
                f"Received: `kernel={identifier!r}`"
            )
        return kernel
    if not isinstance(identifier, str) or identifier not in _REGISTRY:
        raise ValueError(
            f"Expected `kernel` to be one of {list(KERNELS)}. Received: `kernel={identifier!r}`"
        )
    try:
        return _REGISTRY[identifier](**params)
    except TypeError as error:
        raise ValueError(
            f"Invalid parameters for kernel {identifier!r}: {error}. Received: `params={params}`"
        ) from None


def serialize(kernel):
    """Keras serialization dict of a kernel (inverse of :func:`get` on dicts)."""
    return keras.saving.serialize_keras_object(kernel)
