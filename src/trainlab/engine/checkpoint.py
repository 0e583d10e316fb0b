"""Atomic, safe checkpoints: weights as safetensors, training state via weights-only torch.

A checkpoint is a directory `checkpoints/epoch-NNNN/` written under a temporary name and
renamed into place, then named in `checkpoints/latest` (itself replaced atomically), so a
kill at any instant leaves the previous checkpoint whole. Nothing here unpickles: the
training state is loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RunError
from trainlab.fileio import atomic_write_text, fsync_dir


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Write the model's weights as safetensors, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_model(model, str(tmp))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_weights(model: torch.nn.Module, path: Path, device: str | torch.device = "cpu") -> None:
    """Load safetensors weights into `model`; a clear RunError if they do not fit."""
    if not Path(path).is_file():
        raise RunError(f"weights file '{path}' not found; was the run trained to an epoch end?")
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=str(device))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise RunError(f"cannot read weights '{path}': {exc}") from None
    if missing or unexpected:
        raise RunError(
            f"weights '{path}' do not match the model built from the recipe "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )


def rng_state() -> dict[str, Any]:
    """Every random generator training draws from, as tensors and plain numbers."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_random_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_random_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(state: State, techniques: list[Technique]) -> dict[str, Any]:
    """Everything besides the weights that a resumed fit needs to continue identically."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "schedule": state.schedule.state_dict() if state.schedule is not None else None,
        "grad_scaler": state.grad_scaler.state_dict() if state.grad_scaler is not None else None,
        "rng": rng_state(),
        "techniques": {f"{i}:{type(t).__name__}": t.state_dict() for i, t in enumerate(techniques)},
        "engine": {"epoch": state.epoch, "step": state.step, "history": state.history},
    }


def restore_training_state(
    state: State, techniques: list[Technique], saved: dict[str, Any]
) -> None:
    """Load `training_state()` output back into a freshly built fit."""
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.schedule is not None and saved.get("schedule") is not None:
        state.schedule.load_state_dict(saved["schedule"])
    if state.grad_scaler is not None and saved.get("grad_scaler") is not None:
        state.grad_scaler.load_state_dict(saved["grad_scaler"])
    for i, technique in enumerate(techniques):
        key = f"{i}:{type(technique).__name__}"
        if key in saved["techniques"]:
            technique.load_state_dict(saved["techniques"][key])
    engine = saved["engine"]
    state.epoch, state.step = int(engine["epoch"]), int(engine["step"])
    state.history = list(engine["history"])
    set_rng_state(saved["rng"])


class CheckpointStore:
    """The `checkpoints/` folder of a run: write atomically, find and read the latest.

    `keep` checkpoints are kept (two by default), so when the newest one cannot be read
    (a damaged disk, a file edited by hand) the run resumes from the one before it.
    """

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def latest(self) -> Path | None:
        """The directory of the newest complete checkpoint, or None."""
        found = self.candidates()
        return found[0] if found else None

    def candidates(self) -> list[Path]:
        """Complete checkpoints, newest first: the one `latest` names, then the others.

        A `latest` pointer that is unreadable or names nothing complete is ignored (the
        directories themselves say which epochs were written whole).
        """
        complete = sorted(
            (p for p in self.root.glob("epoch-*") if _is_complete(p)),
            key=lambda p: p.name,
            reverse=True,
        )
        named = self._pointed_at()
        if named is not None and named in complete:
            complete.remove(named)
            complete.insert(0, named)
        return complete

    def _pointed_at(self) -> Path | None:
        pointer = self.root / "latest"
        try:
            name = pointer.read_bytes().decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not name.startswith("epoch-") or "/" in name or "\\" in name:
            return None
        return self.root / name

    def save(self, model: torch.nn.Module, train_state: dict[str, Any], epoch: int) -> Path:
        """Write checkpoint `epoch` whole, point `latest` at it, drop older ones.

        A failed write (a full disk) removes its partial files and raises a RunError that
        says which checkpoint is still intact and how to resume from it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:04d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            save_model(model, str(tmp / "model.safetensors"))
            with open(tmp / "state.pt", "wb") as f:
                torch.save(train_state, f)
                f.flush()
                os.fsync(f.fileno())
            final = self.root / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(self.root)
            atomic_write_text(self.root / "latest", name)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RunError(self._save_failed_message(name, exc)) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(keep_name=name)
        return final

    def _save_failed_message(self, name: str, exc: Exception) -> str:
        intact = [p for p in self.candidates() if p.name != name]
        kept = (
            f"checkpoint {intact[0].name} is intact; free space (or fix the cause) and run "
            "`trainlab train` again with the same recipe and --out to resume from it"
            if intact
            else "no earlier checkpoint exists, so a re-run starts from the beginning"
        )
        cause = " ".join(str(exc).split())[:200] or type(exc).__name__
        free = shutil.disk_usage(self.root).free
        needed = sum(f.stat().st_size for f in intact[0].iterdir()) if intact else 0
        if free < needed + 2**20 and "space" not in cause.lower():
            cause = (
                f"the disk is full ({free // 1024} KiB free; a checkpoint takes "
                f"{needed // 1024} KiB): {cause}"
            )
        return f"cannot write checkpoint {name} in '{self.root}': {cause}; {kept}"

    def _prune(self, keep_name: str) -> None:
        done = sorted(p for p in self.root.glob("epoch-*") if p.is_dir() and p.name != keep_name)
        for old in done[: max(0, len(done) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".epoch-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def load_state(self, path: Path) -> dict[str, Any]:
        """Read a checkpoint's training state without unpickling arbitrary objects."""
        try:
            with warnings.catch_warnings():  # torch warns about the pickle protocol of junk
                warnings.simplefilter("ignore")
                return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:
            # torch's own message advises weights_only=False (unpickling): never relay it
            raise RunError(
                f"checkpoint '{path / 'state.pt'}' is damaged or not a trainlab checkpoint "
                f"({type(exc).__name__}); it is not loaded, since nothing is unpickled"
            ) from None


def _is_complete(path: Path) -> bool:
    return (path / "model.safetensors").is_file() and (path / "state.pt").is_file()


def restore_latest(store: CheckpointStore, state: State, techniques: list[Technique]) -> int | None:
    """Load the newest readable checkpoint into a freshly built fit; its epoch, or None.

    An unreadable checkpoint is skipped with a warning for the one before it; when none
    can be read the error names them and how to start over.
    """
    candidates = store.candidates()
    problems = []
    for path in candidates:
        try:
            saved = store.load_state(path)
            load_weights(state.model, path / "model.safetensors", state.device)
            restore_training_state(state, techniques, saved)
        except (RunError, SafetensorError, OSError, RuntimeError, KeyError, TypeError) as exc:
            problems.append(f"{path.name}: {' '.join(str(exc).split())[:160]}")
            continue
        if problems:
            warnings.warn(
                f"resumed from {path.name}, an earlier checkpoint: {'; '.join(problems)}",
                CheckpointFallbackWarning,
                stacklevel=2,
            )
        return state.epoch
    if problems:
        raise RunError(
            f"no checkpoint in '{store.root}' can be read ({'; '.join(problems)}); "
            f"delete '{store.root}' to train from the beginning"
        )
    return None


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint was unreadable and an earlier one was used."""


class Checkpointer(Technique):
    """Engine callback: after every epoch, save a resumable checkpoint of the fit."""

    order = Slot.CHECKPOINT

    def __init__(self, store: CheckpointStore, techniques: list[Technique], on_save=None) -> None:
        self.store = store
        self.techniques = techniques
        self.on_save = on_save

    def on_epoch_end(self, state: State) -> None:
        path = self.store.save(state.model, training_state(state, self.techniques), state.epoch)
        if self.on_save is not None:
            self.on_save(state, path)
