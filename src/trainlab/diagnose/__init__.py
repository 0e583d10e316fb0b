"""Diagnostics: gradient-flow and activation monitors, divergence guard, fit analysis
and the findings they report.

The monitors are techniques (`gradient_monitor`, `activation_stats`, `divergence_guard`)
registered when `trainlab.catalog` is imported; the rest loads on first use. The LR range
test and the doctor, which run trainings of their own, are studies
(`trainlab.studies.lr_finder`, `trainlab.studies.doctor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainlab.lazy import lazy_getattr

_LAZY = {
    "Code": "trainlab.diagnose.findings",
    "Finding": "trainlab.diagnose.findings",
    "Recommendation": "trainlab.diagnose.findings",
    "GradientMonitor": "trainlab.diagnose.gradients",
    "analyze_gradient_flow": "trainlab.diagnose.gradients",
    "plot_gradient_flow": "trainlab.diagnose.gradients",
    "ActivationStats": "trainlab.diagnose.activations",
    "analyze_activations": "trainlab.diagnose.activations",
    "DivergenceGuard": "trainlab.diagnose.guard",
    "FitDiagnosis": "trainlab.diagnose.fit",
    "analyze_fit": "trainlab.diagnose.fit",
}

if TYPE_CHECKING:
    from trainlab.diagnose.activations import ActivationStats, analyze_activations
    from trainlab.diagnose.findings import Code, Finding, Recommendation
    from trainlab.diagnose.fit import FitDiagnosis, analyze_fit
    from trainlab.diagnose.gradients import (
        GradientMonitor,
        analyze_gradient_flow,
        plot_gradient_flow,
    )
    from trainlab.diagnose.guard import DivergenceGuard


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "ActivationStats",
    "Code",
    "DivergenceGuard",
    "Finding",
    "FitDiagnosis",
    "GradientMonitor",
    "Recommendation",
    "analyze_activations",
    "analyze_fit",
    "analyze_gradient_flow",
    "plot_gradient_flow",
]
