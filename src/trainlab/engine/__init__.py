"""The training engine: events, state, the loop, checkpoints and determinism."""

from trainlab.engine.events import Event, StopFit, StopReason
from trainlab.engine.loop import Engine
from trainlab.engine.state import State
from trainlab.engine.technique import Technique

__all__ = ["Engine", "Event", "State", "StopFit", "StopReason", "Technique"]
