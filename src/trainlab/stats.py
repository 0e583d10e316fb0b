"""Statistics for comparing variants measured over the same seeds.

A technique is judged by the paired difference of the validation metric against the
baseline on the same seeds: pairing removes the seed-to-seed variation both share, so
a small real effect shows up with few seeds. The confidence interval is Student's t on
the paired differences (what the verdict uses); an exact sign-flip permutation p-value is
reported beside it as a distribution-free check (with n seeds its smallest possible
value is 2/2ⁿ, so it needs n ≥ 6 to go below 0.05 — a reminder that 3 seeds prove little).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps


@dataclass
class Summary:
    """Mean, standard deviation and 95 % t-interval of one variant's values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        """JSON form."""
        return asdict(self)


@dataclass
class PairedDifference:
    """Variant minus baseline over the same seeds."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided paired t-test
    p_value_permutation: float  # exact sign-flip test
    test: str = "paired t-test (95% CI on the mean difference)"

    def to_dict(self) -> dict[str, float | str]:
        """JSON form."""
        return asdict(self)


def summarize(values: list[float], confidence: float = 0.95) -> Summary:
    """Mean ± t-interval of `values` (a single value has an infinite interval)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return Summary(n, mean, math.nan, -math.inf, math.inf)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_difference(
    variant: list[float], baseline: list[float], confidence: float = 0.95
) -> PairedDifference:
    """Paired comparison of two equally long value lists (same seeds, same order)."""
    if len(variant) != len(baseline):
        raise ValueError("paired values need the same seeds for both variants")
    d = np.asarray(variant, dtype=float) - np.asarray(baseline, dtype=float)
    s = summarize(d.tolist(), confidence)
    if s.n < 2:
        p = math.nan
    elif s.std == 0 or not math.isfinite(s.std):
        # identical differences on every seed: no noise, the effect is exact
        p = 1.0 if s.mean == 0 else 0.0
        s = Summary(s.n, s.mean, 0.0, s.mean, s.mean)
    else:
        p = float(sps.ttest_rel(variant, baseline).pvalue)
    return PairedDifference(s.n, s.mean, s.std, s.ci_low, s.ci_high, p, sign_flip_p(d))


def sign_flip_p(d: np.ndarray) -> float:
    """Exact two-sided permutation p-value of mean(d) under random sign flips."""
    n = len(d)
    if n == 0 or n > 16:
        return math.nan
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    count = 0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        if abs((d * np.asarray(signs)).mean()) >= observed - 1e-12:
            count += 1
    return count / 2**n


def verdict(diff: PairedDifference, higher_is_better: bool) -> str:
    """helps / hurts / no significant effect, from the interval of the difference."""
    if not math.isfinite(diff.ci_low) or not math.isfinite(diff.ci_high):
        return "not enough seeds"
    lo, hi = (diff.ci_low, diff.ci_high) if higher_is_better else (-diff.ci_high, -diff.ci_low)
    if lo > 0:
        return "helps"
    if hi < 0:
        return "hurts"
    return "no significant effect"


LOWER_IS_BETTER = ("loss", "mae", "rmse", "mse", "error")


def higher_is_better(metric: str) -> bool:
    """Whether larger values of `metric` are better (accuracy, F1, R²) or worse (loss)."""
    return not any(metric.endswith(s) for s in LOWER_IS_BETTER)
