"""Accuracy against the number of PCA components on scikit-learn's digits.

Trains `examples/digits_pca.yaml` once per component count (PCA fitted on the training
split only; 64 = no PCA) and writes a Markdown table, a PNG plot and a JSON summary:

    python examples/pca_sweep.py [--out runs/pca_sweep] [--components 2,4,8,16,32,64]

The last line of standard output is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import trainlab

RECIPE = Path(__file__).resolve().parent / "digits_pca.yaml"


def sweep(components: list[int], out: Path, seed: int = 0) -> list[dict]:
    """One run per component count; rows of (components, explained variance, accuracies)."""
    rows = []
    for k in components:
        started = time.perf_counter()
        pca = None if k >= 64 else k
        run = trainlab.train(
            RECIPE,
            {"data.preprocessing.pca": pca, "train.seed": seed},
            out=out / f"pca-{k}",
        )
        state = json.loads((run.run_dir / "preprocess.json").read_text())
        explained = state["params"].get("pca_explained") if pca else 1.0
        rows.append(
            {
                "components": k,
                "explained_variance": round(float(explained), 4),
                "val_accuracy": round(run.metrics["val_accuracy"], 4),
                "test_accuracy": round(run.metrics["test_accuracy"], 4),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    """The sweep as a Markdown table."""
    lines = [
        "| components | explained variance | val accuracy | test accuracy |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['components']} | {r['explained_variance']:.3f} | {r['val_accuracy']:.4f} | "
        f"{r['test_accuracy']:.4f} |"
        for r in rows
    ]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Test accuracy and explained variance against components (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["components"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [r["test_accuracy"] for r in rows], "o-", label="test accuracy")
    ax.plot(ks, [r["val_accuracy"] for r in rows], "s--", label="validation accuracy")
    ax.plot(ks, [r["explained_variance"] for r in rows], "^:", label="explained variance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("PCA components (64 = no PCA)")
    ax.set_ylim(0, 1.02)
    ax.set_title("digits: MLP accuracy vs. PCA components")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/pca_sweep"))
    parser.add_argument("--components", default="2,4,8,16,32,64")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = sweep([int(k) for k in args.components.split(",")], args.out, args.seed)
    md = table(rows)
    (args.out / "pca_sweep.md").write_text(md + "\n")
    plot(rows, args.out / "pca_sweep.png")
    print(md)
    print(
        json.dumps(
            {
                "rows": rows,
                "table": str(args.out / "pca_sweep.md"),
                "plot": str(args.out / "pca_sweep.png"),
            }
        )
    )


if __name__ == "__main__":
    main()
