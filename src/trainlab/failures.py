"""What was running when something failed, and where its traceback went.

A user mistake is a `TrainlabError` and the CLI prints it on one line. Anything else is
a bug: the CLI prints one line naming the step that failed and the log that holds the
traceback (`RUN/error.log` when a run was being written), and the run is marked
`failed` instead of staying `running` forever. `step()` names the step; `runs.train`
names the run directory it is writing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

#: Exit statuses of the command line: a user mistake, a diverged run, a bug in trainlab.
EXIT_USER_ERROR, EXIT_DIVERGED, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 2, 3, 4, 130

ERROR_LOG = "error.log"

_current: dict[str, object] = {"step": None, "run_dir": None}


@contextlib.contextmanager
def step(name: str, run_dir: Path | None = None) -> Iterator[None]:
    """Name what the code inside does ("loading data"), for the one-line error of a bug."""
    saved = dict(_current)
    _current["step"] = name
    if run_dir is not None:
        _current["run_dir"] = Path(run_dir)
    try:
        yield
    except BaseException:
        saved = {}  # keep the innermost step for the report; the caller clears it
        raise
    finally:
        if saved:
            _current.update(saved)


def now(name: str) -> None:
    """Name the step that starts here, until the enclosing `step()` ends."""
    _current["step"] = name


def current_step(default: str) -> str:
    """The innermost step that was running, or `default`."""
    return str(_current["step"] or default)


def current_run_dir() -> Path | None:
    """The run directory being written when the failure happened, if any."""
    run_dir = _current["run_dir"]
    return Path(run_dir) if run_dir is not None else None


def reset() -> None:
    """Forget the recorded step (after a failure was reported)."""
    _current.update(step=None, run_dir=None)


def describe(exc: BaseException) -> str:
    """'TypeName: first line of the message', for one-line reports."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:300]}"


def write_error_log(exc: BaseException, run_dir: Path | None, where: str) -> Path:
    """Append the traceback of `exc` to RUN/error.log (or a temporary file) and return it.

    An exception already logged (by the run that failed) is not logged twice.
    """
    logged = getattr(exc, "_trainlab_error_log", None)
    if logged is not None:
        return Path(logged)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = f"{stamp} internal error in {where}\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    candidates = [run_dir / ERROR_LOG] if run_dir is not None else []
    candidates.append(Path(tempfile.gettempdir()) / f"trainlab-error-{os.getpid()}.log")
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError:
            continue
        with contextlib.suppress(AttributeError):
            exc._trainlab_error_log = str(path)  # type: ignore[attr-defined]
        return path
    return candidates[-1]
