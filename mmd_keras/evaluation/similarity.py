"""Relative-similarity three-sample test of paper 1 §4.1 (Bounliphone et al. 2016).

Given reference features X (real) and features of two generators, the new one Y and
an older one Z (m rows each), test whether Y is closer to X than Z is:

    diff = MMD²_u(X, Y) − MMD²_u(X, Z),   t = diff / sqrt(max(var, 1e-5)),   p = Φ(t),

with the polynomial KID kernel. A small p (≤ 0.1 in the learning-rate schedule)
means "Y is significantly better than Z". ``var`` is the variance of the difference of the
two estimates (Bounliphone et al. 2016, Theorem 2, with the corrections of Sutherland et al.
2017 that paper 1 uses, §4.1 footnote 14; paper 1's code, ``_diff_mmd2_and_ratio_from_sums``).

Everything the test needs about one candidate is a handful of kernel sums against
the fixed X (:class:`CandidateSums`, O(m) numbers), so an evaluation kept in the
learning-rate queue does not keep its features. All of it is float64 NumPy on the
host.
"""

import dataclasses

import numpy as np
import scipy.stats

from mmd_keras.evaluation import kid

VARIANCE_FLOOR = 1e-5


@dataclasses.dataclass(frozen=True)
class CandidateSums:
    """Kernel sums of one candidate Y against the reference X (m rows each).

    Attributes:
      kt_yy_sums: [m] row sums of K_YY without its diagonal.
      kt_yy_2_sum: ‖K_YY‖²_F minus the squared diagonal.
      k_xy_col_sums: [m] Σ_i K_XY[i, j], per y_j (sum over X).
      k_xy_row_sums: [m] Σ_j K_XY[i, j], per x_i (sum over Y).
      k_xy_2_sum: ‖K_XY‖²_F.
    """

    kt_yy_sums: np.ndarray
    kt_yy_2_sum: float
    k_xy_col_sums: np.ndarray
    k_xy_row_sums: np.ndarray
    k_xy_2_sum: float

    @property
    def num_samples(self):
        return int(self.kt_yy_sums.shape[0])

    def to_vector(self):
        """Packs the sums into one float64 vector of length 3m + 2 (for checkpoints)."""
        return np.concatenate([
            self.kt_yy_sums, self.k_xy_col_sums, self.k_xy_row_sums, [self.kt_yy_2_sum, self.k_xy_2_sum]
        ]).astype(np.float64)

    @classmethod
    def from_vector(cls, vector):
        """Inverse of :meth:`to_vector`."""
        vector = np.asarray(vector, np.float64)
        if vector.ndim != 1 or (len(vector) - 2) % 3 or len(vector) < 11:
            raise ValueError(f"Expected a vector of length 3m + 2, m ≥ 3. Received: `vector.shape={vector.shape}`")
        m = (len(vector) - 2) // 3
        return cls(
            kt_yy_sums=vector[:m], k_xy_col_sums=vector[m:2 * m], k_xy_row_sums=vector[2 * m:3 * m],
            kt_yy_2_sum=float(vector[-2]), k_xy_2_sum=float(vector[-1]),
        )


@dataclasses.dataclass(frozen=True)
class RelativeSimilarityResult:
    """Outcome of one test: diff = MMD²_u(X,Y) − MMD²_u(X,Z), its variance, t and p = Φ(t)."""

    diff: float
    variance: float
    statistic: float
    p_value: float


def candidate_sums(real_features, fake_features, kernel=None):
    """The sums of :class:`CandidateSums` for X = ``real_features``, Y = ``fake_features``.

    Args:
      real_features: [m, d] reference features X — the same rows for every candidate.
      fake_features: [m, d] features of the candidate generator's samples.
      kernel: callable ``(a[p,d], b[q,d]) -> [p,q]`` float64 NumPy; default the KID
        polynomial kernel (aᵀb/d + 1)³.

    Raises:
      ValueError: bad ranks or widths, unequal row counts, m < 3.
    """
    x, y = kid.as_feature_pair(real_features, fake_features, 3, ("real_features", "fake_features"))
    if len(x) != len(y):
        raise ValueError(
            "Expected `real_features` and `fake_features` with the same number of rows. "
            f"Received: `real_features.shape={x.shape}`, `fake_features.shape={y.shape}`"
        )
    kernel = kid.polynomial_kernel if kernel is None else kernel
    k_xy = np.asarray(kernel(x, y), np.float64)
    k_yy = np.asarray(kernel(y, y), np.float64)
    diag = np.diag(k_yy)
    return CandidateSums(
        kt_yy_sums=k_yy.sum(axis=1) - diag,
        kt_yy_2_sum=float((k_yy ** 2).sum() - diag @ diag),
        k_xy_col_sums=k_xy.sum(axis=0),
        k_xy_row_sums=k_xy.sum(axis=1),
        k_xy_2_sum=float((k_xy ** 2).sum()),
    )


def _moments(sums, m):
    """Per-candidate moment estimates of the variance of ``diff`` (names follow paper 1's code)."""
    mu_yy = sums.kt_yy_sums.sum() / (m * (m - 1))
    mu_xy = sums.k_xy_col_sums.sum() / (m * m)
    return {
        "mu_yy": mu_yy,
        "mu_xy": mu_xy,
        "e_y_mu_y_sq": (sums.kt_yy_sums @ sums.kt_yy_sums - sums.kt_yy_2_sum) / (m * (m - 1) * (m - 2)),
        "e_x_mu_y_sq": (sums.k_xy_row_sums @ sums.k_xy_row_sums - sums.k_xy_2_sum) / (m * m * (m - 1)),
        "e_y_mu_x_sq": (sums.k_xy_col_sums @ sums.k_xy_col_sums - sums.k_xy_2_sum) / (m * m * (m - 1)),
        "e_y_mu_y_mu_x": (sums.kt_yy_sums @ sums.k_xy_col_sums) / (m * m * (m - 1)),
        "e_kyy2": sums.kt_yy_2_sum / (m * (m - 1)),
        "e_kxy2": sums.k_xy_2_sum / (m * m),
    }


def relative_similarity_test(new, old):
    """Three-sample test of the new candidate Y against the old one Z (paper 1, §4.1).

    Args:
      new: :class:`CandidateSums` of Y (the current generator).
      old: :class:`CandidateSums` of Z (an earlier generator), same X and m.

    Returns:
      :class:`RelativeSimilarityResult`; ``p_value`` small when Y is closer to X.

    Raises:
      ValueError: the two sums have different m.
    """
    if new.num_samples != old.num_samples:
        raise ValueError(
            "Expected `new` and `old` sums over the same number of samples. Received: "
            f"`new.num_samples={new.num_samples}`, `old.num_samples={old.num_samples}`"
        )
    m = float(new.num_samples)
    y, z = _moments(new, m), _moments(old, m)
    e_x_mu_y_mu_z = (new.k_xy_row_sums @ old.k_xy_row_sums) / (m ** 3)
    cross = e_x_mu_y_mu_z - y["mu_xy"] * z["mu_xy"]
    diff = y["mu_yy"] - 2 * y["mu_xy"] - z["mu_yy"] + 2 * z["mu_xy"]

    def own_first(c):
        return (c["e_y_mu_y_sq"] - c["mu_yy"] ** 2 + c["e_x_mu_y_sq"] - c["mu_xy"] ** 2
                + c["e_y_mu_x_sq"] - c["mu_xy"] ** 2)

    def own_second(c):
        return c["e_kyy2"] - c["mu_yy"] ** 2 + 2 * (c["e_kxy2"] - c["mu_xy"] ** 2)

    def coupling(c):
        return c["e_y_mu_y_mu_x"] - c["mu_yy"] * c["mu_xy"]

    first = 4 * (m - 2) / (m * (m - 1)) * (
        own_first(y) + own_first(z) - 2 * coupling(y) - 2 * cross - 2 * coupling(z)
    )
    second = 2 / (m * (m - 1)) * (
        own_second(y) + own_second(z) - 4 * coupling(y) - 4 * cross - 4 * coupling(z)
    )
    variance = first + second
    statistic = diff / np.sqrt(max(variance, VARIANCE_FLOOR))
    return RelativeSimilarityResult(
        diff=float(diff), variance=float(variance), statistic=float(statistic),
        p_value=float(scipy.stats.norm.cdf(statistic)),
    )
