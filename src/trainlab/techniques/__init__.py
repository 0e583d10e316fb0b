"""Optimization techniques as event subscribers, one module each."""

from trainlab.techniques.registry import TECHNIQUES

__all__ = ["TECHNIQUES"]
