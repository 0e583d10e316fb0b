"""The base class every technique and engine callback derives from."""

from __future__ import annotations

from typing import Any, ClassVar

from trainlab.engine.events import Event
from trainlab.engine.order import Slot


class Technique:
    """Something that acts on engine events: a regularizer, a monitor, a checkpointer.

    Subclasses define `on_<event>(self, state)` methods for the events they care about
    (e.g. `on_after_step`); the engine calls only the methods that exist, so an unused
    event costs nothing. A technique that keeps state across steps returns it from
    `state_dict()` (tensors and plain numbers only) so a resumed run continues exactly.

    `rewrites_targets` marks techniques that replace the batch targets (mixup, cutmix):
    two of them in one recipe conflict unless told otherwise. `order` is the technique's
    place within every event, one of the named slots of `engine.order.Slot`.
    """

    rewrites_targets: ClassVar[bool] = False
    #: Lower runs first within an event; engine bookkeeping (checkpoints) runs last.
    order: ClassVar[int] = Slot.DEFAULT

    def handlers(self) -> dict[Event, Any]:
        """The bound `on_<event>` methods this object defines, by event."""
        found = {}
        for event in Event:
            method = getattr(self, f"on_{event.value}", None)
            if method is not None:
                found[event] = method
        return found

    def optimizer_parts(self, model: Any) -> list[tuple[str, list[Any]]] | None:
        """The model's parameters cut into named parts, in forward order, when this
        technique needs one optimizer param group per part (discriminative learning
        rates); None (the default) when it does not care how the groups are cut."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """State to save in a checkpoint; empty for stateless techniques."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned."""
