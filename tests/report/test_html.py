"""`trainlab report`: the kind read from the folder, self-contained pages, what each shows."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil

import numpy as np
import pytest

from trainlab.errors import RunError
from trainlab.report.figures import plt
from trainlab.report.html import compare_report, detect_kind, report
from trainlab.report.page import png_bytes

from ..test_cli import cli

IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def test_the_kind_is_read_from_the_folder(folders):
    expected = {
        "run": "run",
        "regression": "run",
        "ablation": "ablation",
        "tune": "tune",
        "compress": "compress",
        "doctor": "doctor",
    }
    assert {name: detect_kind(path) for name, path in folders.items()} == expected


def test_a_folder_of_no_known_kind_is_a_one_line_error(tmp_path, folders):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a run directory"):
        detect_kind(tmp_path / "empty")
    with pytest.raises(RunError, match="does not exist"):
        detect_kind(tmp_path / "missing")
    with pytest.raises(RunError, match="is a file"):
        detect_kind(folders["run"] / "run.json")


def test_every_page_is_one_self_contained_file(pages):
    for name, written in pages.items():
        text = written.out.read_text(encoding="utf-8")
        assert written.bytes == written.out.stat().st_size, name
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), name
        assert "<link" not in text and "<script src" not in text and "@import" not in text
        assert 'name="viewport"' in text
        images = IMG.findall(text)
        assert len(images) == written.figures >= 1, name
        for alt, data in images:
            png = base64.b64decode(data)
            assert png[:8] == b"\x89PNG\r\n\x1a\n", (name, alt)
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            assert 100 < width < 2000 and 100 < height < 2000, (name, alt, width, height)


def _sections(text: str) -> list[str]:
    return re.findall(r'<section id="[^"]+"><h2>([^<]+)</h2>', text)


def test_run_page_has_every_part_the_run_has_data_for(pages, folders):
    text = pages["run"].out.read_text(encoding="utf-8")
    assert _sections(text) == [
        "Summary",
        "Final metrics",
        "Learning curves",
        "Fit diagnosis",
        "Predictions on the test split",
        "Gradient flow",
        "Activation statistics",
        "LR range test",
        "Timings",
        "Recipe",
        "Environment",
    ]
    history = [json.loads(line) for line in (folders["run"] / "history.jsonl").open()]
    best = max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))["epoch"]
    assert f"Best validation epoch: {best}." in text
    assert re.search(r'badge [a-z]+">(good fit|still improving|over-fitting|under-fitting)<', text)
    metrics = json.loads((folders["run"] / "metrics.json").read_text())
    assert f"{metrics['test_accuracy']:.4f}" in text
    # one row per class; the supports add up to the test split
    supports = re.findall(
        r"<tr><td>(\d)</td><td class=\"n\">[^<]+</td><td class=\"n\">[^<]+</td>"
        r"<td class=\"n\">(\d+)</td></tr>",
        text,
    )
    assert [c for c, _ in supports] == [str(i) for i in range(10)]
    assert sum(int(n) for _, n in supports) == 360  # digits: 20 % of 1,797 rows
    assert "1.weight" in text and "minimum_div_10" in text  # gradient layers, LR suggestions


def test_predictions_agree_with_the_runs_own_test_metrics(folders):
    from trainlab.cli import _report_predictions

    metrics = json.loads((folders["run"] / "metrics.json").read_text())
    preds = _report_predictions(folders["run"], "test")
    assert preds.kind == "multiclass" and preds.classes == [str(i) for i in range(10)]
    hits = np.mean(np.array(preds.y_true) == np.array(preds.y_pred))
    assert hits == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    metrics = json.loads((folders["regression"] / "metrics.json").read_text())
    preds = _report_predictions(folders["regression"], "test")
    error = np.array(preds.y_pred) - np.array(preds.y_true)
    assert math.sqrt(np.mean(error**2)) == pytest.approx(metrics["test_rmse"], rel=1e-4)


def test_regression_run_shows_residuals_not_a_confusion_matrix(pages):
    text = pages["regression"].out.read_text(encoding="utf-8")
    assert "Predictions on the test split" in _sections(text)
    assert 'alt="residuals 1"' in text and 'alt="residuals 2"' in text
    assert "confusion matrix" not in text and "Gradient flow" not in _sections(text)


def test_ablation_page_shows_effects_and_every_seed(pages, folders):
    text = pages["ablation"].out.read_text(encoding="utf-8")
    result = json.loads((folders["ablation"] / "results.json").read_text())
    assert _sections(text) == ["Summary", "Effects", "Per-seed values", "Costs"]
    (row,) = result["effects"]
    assert row["technique"] == "label_smoothing" and f">{row['verdict']}<" in text
    assert f"{row['effect']['mean']:+.4f}" in text and f"{row['effect']['ci_low']:+.4f}" in text
    assert f"{row['effect']['p_value']:.3f}" in text
    for arm in [result["baseline"], *result["arms"].values()]:
        for value in arm["values"] + arm["test_values"]:
            assert f"{value:.4f}" in text
    assert 'alt="effects"' in text and 'alt="per-seed values"' in text


def test_tune_page_draws_optunas_plots_and_lists_every_trial(pages, folders):
    text = pages["tune"].out.read_text(encoding="utf-8")
    summary = json.loads((folders["tune"] / "summary.json").read_text())
    for caption in (
        "optimization history",
        "parameter importances (fANOVA)",
        "parallel coordinates",
        "Pareto front",
    ):
        assert f'alt="{caption}"' in text, caption
    rows = re.findall(r'<tr><td class="n">(\d+)</td><td><span class="badge [a-z]+">(\w+)<', text)
    assert [int(n) for n, _ in rows] == list(range(summary["n_trials"]))
    states = {s: sum(1 for _, x in rows if x == s) for s in ("complete", "pruned")}
    assert states == {k: summary["trials"][k] for k in states}
    assert "Pareto-optimal trials" in text and "Best recipe" in text


def test_tune_page_without_its_storage_shows_the_saved_plots(folders, tmp_path):
    copy = tmp_path / "tune"
    shutil.copytree(folders["tune"], copy, ignore=shutil.ignore_patterns("study.journal*"))
    summary = json.loads((copy / "summary.json").read_text())
    summary["storage"] = str(copy / "study.journal")  # deleted
    (copy / "summary.json").write_text(json.dumps(summary))
    (copy / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.5, 0.9])
    (copy / "plots" / "history.png").write_bytes(png_bytes(fig))
    written = report(copy, tmp_path / "t.html")
    text = written.out.read_text()
    assert "journal" in text and "is gone" in text and written.figures == 1
    assert "<h2>Trials</h2>" not in text


def test_optuna_figures_of_a_single_objective_study_with_pruning():
    import optuna

    from trainlab.report.page import Page
    from trainlab.report.tune_page import optuna_figures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial):
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 1, 4)
        for step in range(3):
            trial.report(x * (step + 1) / y, step)
        return x / y

    study.optimize(objective, n_trials=6)
    page = Page("t")
    drawn, skipped = optuna_figures(page, study, ["val_accuracy"])
    alts = [re.search(r'alt="([^"]+)"', d).group(1) for d in drawn]
    assert (
        alts
        == [
            "optimization history",
            "parameter importances (fANOVA)",
            "parallel coordinates",
            "intermediate values (pruning)",
            "timeline: complete vs pruned trials",
        ]
        and not skipped
    )


def test_compress_page_shows_the_tradeoff_and_the_scratch_verdict(pages, folders):
    text = pages["compress"].out.read_text(encoding="utf-8")
    result = json.loads((folders["compress"] / "compression.json").read_text())
    assert _sections(text)[:3] == [
        "Summary",
        "Accuracy, latency and size",
        "Compressed vs trained from scratch",
    ]
    assert f">{result['vs_scratch']['verdict']}<" in text
    assert f"{result['before']['params']:,}" in text and f"{result['after']['params']:,}" in text
    assert 'alt="trade-off 1"' in text and 'alt="trade-off 2"' in text
    assert "Predictions on the test split" in _sections(text)


def test_doctor_page_shows_findings_advice_and_the_applied_ablation(pages, folders):
    text = pages["doctor"].out.read_text(encoding="utf-8")
    data = json.loads((folders["doctor"] / "report.json").read_text())
    assert data["codes"] == ["UNDERFITTING"]
    sections = _sections(text)
    assert sections[:4] == ["Summary", "Findings", "Recommendations", "Applied"]
    assert "<b>UNDERFITTING</b>" in text and "model.hidden=[2]" in text
    (row,) = data["applied"]["rows"]
    assert f"{row['effect']['mean']:+.4f}" in text and 'alt="effects"' in text
    assert {"Learning curves", "Gradient flow", "Per-seed values"} <= set(sections)


def test_compare_page_overlays_runs_and_lists_what_differs(pages, folders):
    text = pages["compare"].out.read_text(encoding="utf-8")
    assert _sections(text) == ["Runs", "Final metrics", "Learning curves", "Recipe differences"]
    diff = text[text.index('<section id="recipe-differences">') :]
    assert "compression.methods" in diff and "neurons:0.5" in diff  # the compressed one's
    assert "compression.shapes.1.weight" in diff and "[16, 64]" in diff  # 32 → 16 units
    assert "train.lr" not in diff and "model.hidden" not in diff  # the same in both
    with pytest.raises(RunError, match="at least two"):
        compare_report([folders["run"]])


def test_cli_report_json_and_errors(folders, tmp_path):
    result = cli("report", str(folders["regression"]), "--out", str(tmp_path / "r.html"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"out", "kind", "bytes", "figures"}
    assert data["kind"] == "run" and data["bytes"] == (tmp_path / "r.html").stat().st_size
    assert data["figures"] == 4  # loss and r2 curves, 2 residual panels; no monitors
    result = cli(
        "report",
        "--compare",
        str(folders["run"]),
        str(folders["regression"]),
        "--out",
        str(tmp_path / "c.html"),
        "--json",
    )
    assert result.returncode == 0 and '"kind": "compare"' in result.stdout
    result = cli("report", str(folders["ablation"]), "--json")
    assert json.loads(result.stdout.splitlines()[-1])["out"] == str(
        folders["ablation"] / "report.html"
    )
    for args, message in (
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(folders["run"]), str(folders["regression"])], "--compare"),
        ([str(folders["run"]), "--out", str(tmp_path / "x.txt")], ".html"),
    ):
        result = cli("report", *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_text_from_the_folder_is_escaped_and_numbers_read_well():
    from trainlab.report.page import kv, number, table

    hostile = '<script>alert("x")</script>'
    html = table(("a",), [(hostile,)]) + kv({"description": hostile})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert [number(v) for v in (None, math.nan, 1234, 0.123456, 2.5e-7, True)] == [
        "—", "—", "1,234", "0.1235", "2.5e-07", "True",
    ]  # fmt: skip


def test_pareto_front_on_latency_or_on_size():
    from trainlab.report.compression import pareto_front

    points = [
        {"label": "a", "test_accuracy": 0.95, "latency_ms_b256": 1.0, "size_bytes": 900},
        {"label": "b", "test_accuracy": 0.94, "latency_ms_b256": 2.0, "size_bytes": 100},
        {"label": "c", "test_accuracy": 0.90, "latency_ms_b256": 0.5, "size_bytes": 500},
    ]
    assert [p["label"] for p in pareto_front(points)] == ["c", "a"]  # b is slower and worse
    assert [p["label"] for p in pareto_front(points, "size_bytes")] == ["b", "a"]
