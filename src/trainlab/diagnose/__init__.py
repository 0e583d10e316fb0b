"""Diagnostics: gradient-flow and activation monitors, divergence guard, fit analysis,
LR range test, and the doctor that combines them.

The monitors are techniques (`gradient_monitor`, `activation_stats`, `divergence_guard`)
registered when `trainlab.techniques` is imported; the rest loads on first use.
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
    "LRFindResult": "trainlab.diagnose.lr_finder",
    "lr_find": "trainlab.diagnose.lr_finder",
    "DoctorReport": "trainlab.diagnose.doctor",
    "doctor": "trainlab.diagnose.doctor",
}

if TYPE_CHECKING:
    from trainlab.diagnose.activations import ActivationStats, analyze_activations
    from trainlab.diagnose.doctor import DoctorReport, doctor
    from trainlab.diagnose.findings import Code, Finding, Recommendation
    from trainlab.diagnose.fit import FitDiagnosis, analyze_fit
    from trainlab.diagnose.gradients import (
        GradientMonitor,
        analyze_gradient_flow,
        plot_gradient_flow,
    )
    from trainlab.diagnose.guard import DivergenceGuard
    from trainlab.diagnose.lr_finder import LRFindResult, lr_find


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "ActivationStats",
    "Code",
    "DivergenceGuard",
    "DoctorReport",
    "Finding",
    "FitDiagnosis",
    "GradientMonitor",
    "LRFindResult",
    "Recommendation",
    "analyze_activations",
    "analyze_fit",
    "analyze_gradient_flow",
    "doctor",
    "lr_find",
    "plot_gradient_flow",
]
