"""`trainlab report`: one self-contained HTML page for a run, a study or a search.

The kind of page follows from what the folder holds:

  run        run.json (a trained run)
  compress   run.json and compression.json (a run made by `trainlab compress`)
  ablation   study.json of kind "ablate" and results.json (`trainlab ablate`)
  tune       summary.json with objectives and a sampler (`trainlab tune`)
  doctor     report.json with a probe and findings (`trainlab doctor`)
  compare    several runs side by side (`trainlab report --compare RUN RUN …`)

The page only reads the folder (and, for a search, its Optuna storage); it never trains.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainlab.errors import RunError
from trainlab.fileio import atomic_write_text
from trainlab.report.page import Page
from trainlab.report.run_page import Predictions


@dataclass(frozen=True)
class Report:
    """A written report: where, which kind, its size in bytes and how many figures."""

    out: Path
    kind: str
    bytes: int
    figures: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what `trainlab report --json` prints)."""
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def detect_kind(target: str | Path) -> str:
    """run, compress, ablation, tune or doctor, from the files in `target`; RunError when
    the folder is none of them."""
    path = Path(target)
    if not path.exists():
        raise RunError(f"'{path}' does not exist; pass a run directory or a study folder")
    if not path.is_dir():
        raise RunError(
            f"'{path}' is a file; pass the folder that holds it (a run directory or a study)"
        )
    spec = _json(path / "study.json")
    if (
        isinstance(spec, dict)
        and spec.get("kind") == "ablate"
        and (path / "results.json").is_file()
    ):
        return "ablation"
    report = _json(path / "report.json")
    if isinstance(report, dict) and "probe" in report and "findings" in report:
        return "doctor"
    summary = _json(path / "summary.json")
    if isinstance(summary, dict) and "objectives" in summary and "sampler" in summary:
        return "tune"
    if (path / "run.json").is_file():
        return "compress" if (path / "compression.json").is_file() else "run"
    export = _json(path / "export.json")
    if isinstance(export, dict) and export.get("source_run"):
        raise RunError(
            f"'{path}' is an export of the run '{export['source_run']}'; report the run "
            f"(`trainlab report {export['source_run']}`): its page lists its exports"
        )
    raise RunError(
        f"'{path}' is not a run directory (run.json), an ablation (study.json + results.json), "
        "a tune study (summary.json) or a doctor folder (report.json); pass one of those"
    )


def build_page(
    target: str | Path,
    predictions: Predictions | None = None,
    storage: str | None = None,
) -> Page:
    """The report page of `target`, of the kind its files show."""
    kind = detect_kind(target)
    if kind == "run":
        from trainlab.report.run_page import build_run_page

        return build_run_page(target, predictions)
    if kind == "compress":
        from trainlab.report.compress_page import build_compress_page

        return build_compress_page(target, predictions)
    if kind == "ablation":
        from trainlab.report.ablation_page import build_ablation_page

        return build_ablation_page(target)
    if kind == "tune":
        from trainlab.report.tune_page import build_tune_page

        return build_tune_page(target, storage)
    from trainlab.report.doctor_page import build_doctor_page

    return build_doctor_page(target)


def check_out(out: str | Path | None) -> None:
    """RunError, before any work, for an --out that is no .html file in an existing folder."""
    if out is None:
        return
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"--out '{out}': a report is an .html file (report.html)")
    if not out.parent.is_dir():
        raise RunError(f"--out '{out}': folder '{out.parent}' does not exist")


def write_page(page: Page, out: Path) -> Report:
    """Render `page` and write it atomically to `out`."""
    out = Path(out)
    check_out(out)
    text = page.render()
    atomic_write_text(out, text, durable=False)
    return Report(out, page.kind, len(text.encode("utf-8")), page.figures)


def report(
    target: str | Path,
    out: str | Path | None = None,
    *,
    predictions: Predictions | None = None,
    storage: str | None = None,
) -> Report:
    """Write the report of a run or study folder (default: TARGET/report.html)."""
    check_out(out)
    page = build_page(target, predictions, storage)
    return write_page(page, Path(out) if out else Path(target) / "report.html")


def compare_report(runs: Sequence[str | Path], out: str | Path | None = None) -> Report:
    """Write one page comparing several runs (default: ./compare.html)."""
    from trainlab.report.compare_page import build_compare_page

    check_out(out)
    page = build_compare_page(runs)
    return write_page(page, Path(out) if out else Path("compare.html"))
