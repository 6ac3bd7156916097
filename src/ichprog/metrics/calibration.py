"""Calibration of predicted probabilities, decision thresholds and decision curves.

Everything here works on one binary outcome ``y_true`` (0/1) and its predicted probability
``y_prob``; the cumulative outputs ``P(y > j)`` of an ordinal task are binary outcomes too
(``y > j``).

* :func:`calibration_metrics`: Brier score, expected calibration error (ECE), calibration slope
  and calibration intercept. :func:`calibration_table` gives the bins of the reliability diagram.
* :func:`net_benefit` and :func:`decision_curve`: net benefit of the model, of treating everyone
  and of treating no one, against the threshold probability (Vickers and Elkin 2006).
* :func:`choose_threshold`: a decision threshold chosen on validation data (Youden's J, or the
  highest threshold that reaches a target sensitivity).
* :func:`fit_calibrator`: recalibration maps fitted on validation data (``"platt"``,
  ``"temperature"``, ``"isotonic"``; ``"none"`` is the identity), saved as JSON without pickle
  (:meth:`Calibrator.to_dict` / :meth:`Calibrator.from_dict`).

scikit-learn does the fitting (:class:`~sklearn.linear_model.LogisticRegression` for the slope and
Platt scaling, :class:`~sklearn.isotonic.IsotonicRegression`) and defines the bins
(:func:`~sklearn.calibration.calibration_curve`); scipy minimises the temperature's loss. Only
numpy, scipy and scikit-learn are imported: no torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ichprog.metrics._validation import warn_undefined
from ichprog.metrics.binary import validate_binary

__all__ = [
    "CALIBRATION_METRICS",
    "CALIBRATORS",
    "Calibrator",
    "calibration_metrics",
    "calibration_metrics_batch",
    "calibration_summary",
    "calibration_table",
    "choose_threshold",
    "decision_curve",
    "fit_calibrator",
    "net_benefit",
]

#: Keys of :func:`calibration_metrics`, in display order.
CALIBRATION_METRICS: tuple[str, ...] = ("brier", "ece", "slope", "intercept")

#: Names accepted by :func:`fit_calibrator`.
CALIBRATORS: tuple[str, ...] = ("none", "platt", "temperature", "isotonic")

# logit(p) of a probability of exactly 0 or 1 is infinite; probabilities are moved this far
# inside (0, 1) before the logit is taken (and only there).
_EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _bin_edges(y_prob: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """The bin edges of :func:`sklearn.calibration.calibration_curve`."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, int(n_bins) + 1)
    if strategy == "quantile":
        return np.percentile(y_prob, np.linspace(0, 100, int(n_bins) + 1))
    raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def _binned(y: np.ndarray, p: np.ndarray, n_bins: int,
            strategy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin edges, and per bin the sample count, the sum of probabilities and of outcomes."""
    edges = _bin_edges(p, n_bins, strategy)
    ids = np.searchsorted(edges[1:-1], p)
    k = len(edges) - 1
    return (edges, np.bincount(ids, minlength=k), np.bincount(ids, weights=p, minlength=k),
            np.bincount(ids, weights=y, minlength=k))


def calibration_table(y_true: Any, y_prob: Any, n_bins: int = 10,
                      strategy: str = "uniform") -> pd.DataFrame:
    """The bins of a reliability diagram.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Outcomes, 0 or 1.
    y_prob : array-like of shape (n_samples,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default=10
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        Bins of equal width, or holding equal numbers of samples; the same bins as
        :func:`sklearn.calibration.calibration_curve`.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin`` (its index), ``low`` and ``high`` (its edges),
        ``n`` (samples in it), ``mean_prob`` (mean predicted probability) and ``frac_pos``
        (observed share of outcome 1). ``mean_prob`` and ``frac_pos`` equal the ``prob_pred``
        and ``prob_true`` of :func:`~sklearn.calibration.calibration_curve`.
    """
    y, p = validate_binary(y_true, y_prob)
    if y.size == 0:
        raise ValueError("y_true and y_prob are empty")
    edges, counts, sum_p, sum_y = _binned(y, p, n_bins, strategy)
    keep = counts > 0
    return pd.DataFrame({
        "bin": np.flatnonzero(keep),
        "low": edges[:-1][keep],
        "high": edges[1:][keep],
        "n": counts[keep],
        "mean_prob": sum_p[keep] / counts[keep],
        "frac_pos": sum_y[keep] / counts[keep],
    })


def _logistic_fit(y: np.ndarray, z: np.ndarray,
                  weights: np.ndarray | None = None) -> tuple[float, float]:
    """Intercept and slope of the unpenalised logistic regression of ``y`` on ``z``
    (``C=inf``: no penalty, in every supported scikit-learn version)."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=np.inf, max_iter=1000).fit(z[:, None], y,
                                                              sample_weight=weights)
    return float(lr.intercept_[0]), float(lr.coef_[0, 0])


def _platt_fit(y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Platt's (1999) fit: the logistic regression of soft targets ``(N+ + 1) / (N+ + 2)`` for
    the positives and ``1 / (N- + 2)`` for the negatives on ``z``, which keeps the fit finite
    on small or separable validation sets. Each sample enters twice, as a 1 weighted by its
    target and as a 0 weighted by one minus it."""
    n_pos = float(np.sum(y == 1))
    n_neg = float(np.sum(y == 0))
    target = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    zz = np.concatenate([z, z])
    yy = np.concatenate([np.ones_like(y), np.zeros_like(y)])
    return _logistic_fit(yy, zz, np.concatenate([target, 1.0 - target]))


def calibration_metrics(y_true: Any, y_prob: Any, n_bins: int = 10,
                        strategy: str = "uniform") -> dict[str, float]:
    """Brier score, expected calibration error, calibration slope and calibration intercept.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Outcomes, 0 or 1.
    y_prob : array-like of shape (n_samples,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins, strategy
        Bins of the ECE (see :func:`calibration_table`).

    Returns
    -------
    dict
        ``brier``
            Mean squared difference between probability and outcome (0 is perfect); equal to
            :func:`sklearn.metrics.brier_score_loss`.
        ``ece``
            Expected calibration error: the mean over bins of ``|frac_pos - mean_prob|``,
            weighted by the share of samples in each bin (0 is perfect).
        ``slope``
            Calibration slope: ``b`` of the logistic recalibration
            ``logit P(y=1) = a + b * logit(p)`` fitted without penalty (1 is perfect; below 1,
            predictions are too extreme, as after overfitting).
        ``intercept``
            Calibration intercept (calibration-in-the-large): ``a`` of
            ``logit P(y=1) = a + logit(p)``, the slope held at 1 (0 is perfect; above 0, the
            model under-predicts the outcome on average).

    Warns
    -----
    UndefinedMetricWarning
        When ``y_true`` holds a single class, every probability is the same, or the
        probabilities separate the outcomes (the recalibration fit diverges): slope (and, for a
        single class, intercept) are NaN.

    Notes
    -----
    The intercept is the one of Van Calster et al. (2016, 2019): the slope is fixed at 1 so
    that the intercept measures calibration-in-the-large alone. ``logit(p)`` of a probability of
    exactly 0 or 1 is taken at ``1e-7`` from the bound.

    Examples
    --------
    >>> m = calibration_metrics([0, 0, 1, 1], [0.1, 0.4, 0.6, 0.9])
    >>> round(m["brier"], 3)
    0.085
    """
    y, p = validate_binary(y_true, y_prob)
    if y.size == 0:
        raise ValueError("y_true and y_prob are empty")
    _, counts, sum_p, sum_y = _binned(y, p, n_bins, strategy)
    # per bin, n * |frac_pos - mean_prob| = |sum_y - sum_p| (empty bins add 0)
    ece = float(np.sum(np.abs(sum_y - sum_p)) / y.size)
    out = {"brier": float(np.mean((p - y) ** 2)), "ece": ece}
    slope, intercept, reason = _recalibration_fits(y, _logit(p), np.ones((1, y.size)))
    if reason[0] == 1:
        warn_undefined("calibration slope and intercept are undefined when y_true holds a "
                       "single class; returning NaN")
    elif reason[0] == 2:
        warn_undefined("calibration slope is undefined when every probability is the same; "
                       "returning NaN")
    elif reason[0] == 3:
        warn_undefined("calibration slope is undefined: the logistic recalibration diverges "
                       "(the outcome is separated by the probabilities); returning NaN")
    out.update(slope=float(slope[0]), intercept=float(intercept[0]))
    return out


# -- decision curves ---------------------------------------------------------------------------
def _check_thresholds(thresholds: Any) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    bad = ~((t > 0) & (t < 1))
    if bad.any():
        raise ValueError(f"threshold probabilities must lie strictly between 0 and 1, got "
                         f"{t[bad][0]!r}")
    return t


def net_benefit(y_true: Any, y_prob: Any, thresholds: Any) -> np.ndarray:
    """Net benefit of treating the patients whose probability reaches each threshold.

    ``NB(t) = TP / n - FP / n * t / (1 - t)``, where a patient counts as treated when
    ``y_prob >= t`` (Vickers and Elkin 2006).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Outcomes, 0 or 1.
    y_prob : array-like of shape (n_samples,)
        Predicted probabilities, in [0, 1].
    thresholds : float or array-like
        Threshold probabilities, strictly between 0 and 1.

    Returns
    -------
    ndarray of shape (n_thresholds,)
    """
    y, p = validate_binary(y_true, y_prob)
    t = _check_thresholds(thresholds)
    n = y.size
    if n == 0:
        raise ValueError("y_true and y_prob are empty")
    treated = p[None, :] >= t[:, None]
    tp = (treated & (y[None, :] == 1)).sum(axis=1)
    fp = (treated & (y[None, :] == 0)).sum(axis=1)
    out: np.ndarray = tp / n - fp / n * t / (1.0 - t)
    return out


def decision_curve(y_true: Any, y_prob: Any,
                   thresholds: Any = None) -> pd.DataFrame:
    """Net benefit of the model, of treating everyone and of treating no one.

    Parameters
    ----------
    y_true, y_prob
        As in :func:`net_benefit`.
    thresholds : array-like, optional
        Threshold probabilities (default 0.01, 0.02, ..., 0.99).

    Returns
    -------
    pandas.DataFrame
        Columns ``threshold``, ``model``, ``treat_all`` (``prevalence - (1 - prevalence) *
        t / (1 - t)``) and ``treat_none`` (0).
    """
    t = _check_thresholds(np.round(np.arange(1, 100) / 100, 2) if thresholds is None
                          else thresholds)
    y, p = validate_binary(y_true, y_prob)
    prevalence = float(np.mean(y))
    return pd.DataFrame({
        "threshold": t,
        "model": net_benefit(y, p, t),
        "treat_all": prevalence - (1.0 - prevalence) * t / (1.0 - t),
        "treat_none": np.zeros_like(t),
    })


# -- thresholds --------------------------------------------------------------------------------
def choose_threshold(y_true: Any, y_prob: Any, method: str = "youden",
                     target: float = 0.9) -> float:
    """A decision threshold chosen on (validation) data.

    Parameters
    ----------
    y_true, y_prob
        Outcomes (0/1) and probabilities of the data to choose on; never the test data.
    method : {"youden", "sensitivity"}, default="youden"
        ``"youden"``: the threshold that maximises sensitivity + specificity - 1 (the lowest
        one on ties). ``"sensitivity"``: the highest threshold whose sensitivity reaches
        ``target``.
    target : float, default=0.9
        Sensitivity to reach (``method="sensitivity"``).

    Returns
    -------
    float
        A threshold among the observed probabilities: a patient is positive when
        ``y_prob >= threshold``.

    Raises
    ------
    ValueError
        When ``y_true`` does not hold both classes (Youden's J is then undefined) or holds no
        positive (a sensitivity is undefined).
    """
    y, p = validate_binary(y_true, y_prob)
    pos = int(np.sum(y == 1))
    neg = int(np.sum(y == 0))
    if method not in ("youden", "sensitivity"):
        raise ValueError(f"method must be 'youden' or 'sensitivity', got {method!r}")
    if pos == 0 or (method == "youden" and neg == 0):
        raise ValueError(f"choose_threshold({method!r}) needs both outcomes in y_true; got "
                         f"{pos} positive(s) and {neg} negative(s)")
    cand = np.unique(p)
    treated = p[None, :] >= cand[:, None]
    sens = (treated & (y == 1)).sum(axis=1) / pos
    if method == "youden":
        spec = ((~treated) & (y == 0)).sum(axis=1) / neg
        j = sens + spec - 1.0
        return float(cand[int(np.flatnonzero(j >= j.max() - 1e-12)[0])])
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target!r}")
    ok = np.flatnonzero(sens >= target - 1e-12)
    return float(cand[int(ok[-1])])


# -- calibrators -------------------------------------------------------------------------------
@dataclass
class Calibrator:
    """A fitted map from a predicted probability to a recalibrated one.

    Use :func:`fit_calibrator` to fit one. ``method`` is one of :data:`CALIBRATORS`; ``params``
    holds what :meth:`transform` needs: ``a`` and ``b`` of Platt scaling
    (``sigmoid(a + b * logit(p))``), the ``temperature`` ``T`` (``sigmoid(logit(p) / T)``), or the
    ``x`` / ``y`` knots of the isotonic step function (interpolated linearly between knots and
    held constant beyond them, as :class:`~sklearn.isotonic.IsotonicRegression` predicts).
    ``n_fit`` records how many samples it was fitted on, ``note`` why it is the identity.
    """

    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    n_fit: int = 0
    note: str = ""

    def transform(self, y_prob: Any) -> np.ndarray:
        """Recalibrated probabilities (an array of the same shape)."""
        p = np.asarray(y_prob, dtype=float)
        if self.method == "none":
            return p.copy()
        if self.method == "platt":
            return _sigmoid(self.params["a"] + self.params["b"] * _logit(p))
        if self.method == "temperature":
            return _sigmoid(_logit(p) / self.params["temperature"])
        if self.method == "isotonic":
            out: np.ndarray = np.interp(p, self.params["x"], self.params["y"])
            return out
        raise ValueError(f"unknown calibration method {self.method!r}; use one of "
                         f"{list(CALIBRATORS)}")

    __call__ = transform

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (read back by :meth:`from_dict`)."""
        return {"method": self.method, "params": self.params, "n_fit": self.n_fit,
                "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibrator:
        method = str(d.get("method", "none"))
        if method not in CALIBRATORS:
            raise ValueError(f"unknown calibration method {method!r}; use one of "
                             f"{list(CALIBRATORS)}")
        return cls(method, dict(d.get("params", {})), int(d.get("n_fit", 0)),
                   str(d.get("note", "")))


def fit_calibrator(y_true: Any, y_prob: Any, method: str = "platt") -> Calibrator:
    """Fit a recalibration map on validation data (never on test data).

    Parameters
    ----------
    y_true, y_prob
        Outcomes (0/1) and predicted probabilities of the validation data.
    method : {"platt", "temperature", "isotonic", "none"}, default="platt"
        ``"platt"``: logistic regression of the outcome on ``logit(p)`` (two parameters), with
        Platt's (1999) soft targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` so that small
        or separable validation sets give a finite fit.
        ``"temperature"``: one parameter ``T > 0`` dividing the logit, fitted by maximum
        likelihood (keeps the ranking and the 0.5 crossing). ``"isotonic"``: scikit-learn's
        :class:`~sklearn.isotonic.IsotonicRegression` (monotone, flexible; needs more data).
        ``"none"``: the identity.

    Returns
    -------
    Calibrator
        The identity, with a ``note`` saying why, when the data hold fewer than 2 samples or a
        single class (a warning is issued).
    """
    if method not in CALIBRATORS:
        raise ValueError(f"unknown calibration method {method!r}; use one of {list(CALIBRATORS)}")
    if method == "none":
        return Calibrator("none", note="no recalibration requested")
    if np.size(y_true) == 0 and np.size(y_prob) == 0:
        y = p = np.zeros(0)
    else:
        y, p = validate_binary(y_true, y_prob)
    if y.size < 2 or np.unique(y).size < 2:
        note = (f"{method} calibration not fitted: the validation data hold {y.size} sample(s) "
                f"and {np.unique(y).size} class(es); the probabilities are left as they are")
        warnings.warn(note, UserWarning, stacklevel=2)
        return Calibrator("none", n_fit=int(y.size), note=note)
    z = _logit(p)
    if method == "platt":
        a, b = _platt_fit(y, z)
        return Calibrator("platt", {"a": a, "b": b}, n_fit=int(y.size))
    if method == "temperature":
        from scipy.optimize import minimize_scalar

        def nll(log_t: float) -> float:
            q = np.clip(_sigmoid(z / np.exp(log_t)), 1e-12, 1 - 1e-12)
            return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))

        res = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
        return Calibrator("temperature", {"temperature": float(np.exp(res.x))},
                          n_fit=int(y.size))
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(),
                                   "y": iso.y_thresholds_.tolist()}, n_fit=int(y.size))


def calibration_summary(y_true: Any, y_prob: Any, n_resamples: int = 1000, ci: float = 0.95,
                        seed: int | None = 0, n_bins: int = 10) -> pd.DataFrame:
    """:func:`calibration_metrics` with percentile bootstrap intervals
    (:func:`~ichprog.metrics.bootstrap_ci`: resamples of the same size, seeded; all resamples
    at once with :func:`calibration_metrics_batch`).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, estimate, low, high, n_valid`` (rows brier, ece, slope, intercept).
    """
    from functools import partial

    from ichprog.metrics.bootstrap import bootstrap_ci

    y, p = validate_binary(y_true, y_prob)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = bootstrap_ci(partial(calibration_metrics, n_bins=n_bins), y, p,
                             n_resamples=n_resamples, ci=ci, seed=seed, progress=False)
    return table



def calibration_metrics_batch(y_true: np.ndarray, y_prob: np.ndarray, counts: np.ndarray,
                              n_bins: int = 10, max_iter: int = 100) -> dict[str, np.ndarray]:
    """:func:`calibration_metrics` of many bootstrap resamples at once (uniform bins).

    Parameters
    ----------
    y_true, y_prob
        The full sample (validated), shape ``(n,)``.
    counts
        ``(n_resamples, n)``: how often each sample is drawn in each resample
        (:func:`~ichprog.metrics.resample_counts`).
    n_bins
        Uniform bins of the ECE.
    max_iter
        Newton iterations of the slope and intercept fits.

    Returns
    -------
    dict
        ``{"brier", "ece", "slope", "intercept"}``, each an array of ``n_resamples`` values
        (NaN where :func:`calibration_metrics` gives NaN).
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    w = np.asarray(counts, dtype=float)
    n = w.sum(axis=1)
    brier = w @ (p - y) ** 2 / n
    edges = _bin_edges(p, n_bins, "uniform")
    onehot = np.zeros((p.size, len(edges) - 1))
    onehot[np.arange(p.size), np.searchsorted(edges[1:-1], p)] = 1.0
    ece = np.abs(w @ (onehot * (y - p)[:, None])).sum(axis=1) / n
    slope, intercept, _ = _recalibration_fits(y, _logit(p), w, max_iter)
    return {"brier": brier, "ece": ece, "slope": slope, "intercept": intercept}


def _recalibration_fits(y: np.ndarray, z: np.ndarray, w: np.ndarray,
                        max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration slope and intercept of every row of weights ``w`` (``(B, n)`` counts of
    each sample): Newton's method on ``logit P(y=1) = a + b z`` (the unpenalised fit of
    :class:`~sklearn.linear_model.LogisticRegression`, 2 x 2 systems solved in closed form)
    and on ``logit P(y=1) = c + z`` (``z`` as offset), for all rows at once.

    Returns the slopes, the intercepts and why a slope is NaN (0 fitted, 1 a single class,
    2 a single probability, 3 the fit diverges: the outcome is separable)."""
    n = w.sum(axis=1)
    pos = w @ y
    single = (pos == 0) | (pos == n)
    drawn = w > 0
    flat = np.where(drawn, z, np.inf).min(axis=1) == np.where(drawn, z, -np.inf).max(axis=1)
    # the maximum-likelihood fit exists only if the outcomes overlap on z: it does not when
    # every y=0 lies at or below every y=1 (or the reverse), the slope then grows without end
    zero, one = drawn & (y == 0)[None, :], drawn & (y == 1)[None, :]
    max0, min0 = np.where(zero, z, -np.inf).max(axis=1), np.where(zero, z, np.inf).min(axis=1)
    max1, min1 = np.where(one, z, -np.inf).max(axis=1), np.where(one, z, np.inf).min(axis=1)
    diverged = ~single & ((max0 <= min1) | (max1 <= min0))
    a = np.zeros(w.shape[0])
    b = np.zeros(w.shape[0])
    active = ~(single | flat | diverged)
    for _ in range(max_iter):
        if not active.any():
            break
        q = _sigmoid(a[:, None] + b[:, None] * z[None, :])
        r = w * (y[None, :] - q)
        v = w * q * (1.0 - q)
        g0, g1 = r.sum(axis=1), r @ z
        h00, h01, h11 = v.sum(axis=1), v @ z, v @ (z * z)
        det = h00 * h11 - h01 ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            s0 = np.clip((h11 * g0 - h01 * g1) / det, -10.0, 10.0)
            s1 = np.clip((h00 * g1 - h01 * g0) / det, -10.0, 10.0)
        bad = active & ~(np.isfinite(s0) & np.isfinite(s1))
        diverged |= bad
        active &= ~bad
        a = np.where(active, a + s0, a)
        b = np.where(active, b + s1, b)
        blown = active & (np.abs(b) > 1e3)
        diverged |= blown
        active &= ~blown
        active &= np.maximum(np.abs(s0), np.abs(s1)) >= 1e-10
    diverged |= active  # still moving after max_iter: no finite maximum (separation)
    reason = np.select([single, flat, diverged], [1, 2, 3], 0)
    slope = np.where(reason > 0, np.nan, b)
    c = np.zeros(w.shape[0])
    active = ~single
    for _ in range(max_iter):
        if not active.any():
            break
        q = _sigmoid(c[:, None] + z[None, :])
        g = (w * (y[None, :] - q)).sum(axis=1)
        h = (w * q * (1.0 - q)).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(h > 0, g / h, 0.0)
        c = np.where(active, c + np.clip(step, -5.0, 5.0), c)
        active &= np.abs(step) >= 1e-10
    intercept = np.where(single, np.nan, c)
    return slope, intercept, reason
