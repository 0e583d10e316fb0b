"""trainlab against its peers on the seeds' own recipes, on a quiet and on a shared CPU.

The seed MLP (seed 003 §4.1: Dense 128 ReLU → Dropout 0.2 → Dense 10) and the seed CNN
with batch normalization (§4.2), on trainlab's canonical MNIST split with no validation
split (8,000 training / 2,000 test images), 5 epochs, batch 32, Adam 1e-3, trained by:

- **trainlab**: `examples/mnist_mlp_dropout.yaml` / `examples/mnist_cnn_bn.yaml` as
  shipped (`train.threads: auto`), with `data.val_size=0`;
- **hand loop**: the same torch model in a plain PyTorch loop (torch's default threads);
- **keras**: the seeds' Keras code (Keras 3 on its PyTorch backend);
- **lightning**: the same torch model in a `LightningModule` under `Trainer`.

Time to accuracy (`fast`): trainlab alone trains `examples/mnist_fast.yaml` in the same
rounds, and its fit time is set against the seed Keras CNN's (`time_to_accuracy`).

Each contender runs in its own process (so thread settings do not leak between them),
alternating A/B/C/D over `--repeats` rounds; the figure is the fit time (training only,
measured inside the process) and the test accuracy. The second phase repeats it all
while one CPU-bound process, started by this bench and ended by it, competes for a core.

Keras and Lightning are bench-only extras: `pip install -e .[bench]`. A missing one is
reported and skipped. Usage: `python bench/peers.py [--repeats 3] [--models mlp,cnn,fast]
[--peers trainlab,hand,keras,lightning] [--no-contended]`. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the PyTorch already installed
ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"mlp": "mnist_mlp_dropout.yaml", "cnn": "mnist_cnn_bn.yaml", "fast": "mnist_fast.yaml"}
#: `fast` is trainlab's time-to-accuracy recipe: only trainlab runs it, and its time is
#: set against the seed Keras CNN's time measured in the same rounds.
TRAINLAB_ONLY = {"fast"}
PEERS = ("trainlab", "hand", "keras", "lightning")
EPOCHS, BATCH = 5, 32


# --------------------------------------------------------------- one contender
def _split():
    """The canonical split's arrays (no validation rows), as trainlab prepares them."""
    import trainlab
    from trainlab.prepare import prepare

    recipe = trainlab.load_recipe(ROOT / "examples" / RECIPES["cnn"], ["data.val_size=0"])
    return prepare(recipe)


def run_trainlab(model: str, seed: int) -> dict:
    import trainlab

    overrides = ["data.val_size=0", f"train.seed={seed}"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRAINLAB_STORE"] = f"sqlite:///{tmp}/index.db"
        run = trainlab.train(ROOT / "examples" / RECIPES[model], overrides, out=Path(tmp) / "r")
        record = json.loads((run.run_dir / "run.json").read_text())
    return {
        "fit_seconds": run.info["timings"]["fit_seconds"],
        "test_accuracy": run.metrics["test_accuracy"],
        "threads": record["threads"]["threads"],
    }


def _torch_model(model: str, seed: int):
    """The recipe's torch model, initialized as trainlab initializes it."""
    import torch

    import trainlab
    from trainlab.prepare import prepare

    recipe = trainlab.load_recipe(ROOT / "examples" / RECIPES[model], ["data.val_size=0"])
    prepared = prepare(recipe)
    torch.manual_seed(seed)
    return prepared, prepared.build_model()


def run_hand(model: str, seed: int) -> dict:
    import torch

    prepared, net = _torch_model(model, seed)
    x, y = prepared.tensors("train")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    fit = time.perf_counter() - start
    return {"fit_seconds": fit, "test_accuracy": _accuracy(net, *prepared.tensors("test")),
            "threads": torch.get_num_threads()}


def _accuracy(net, x, y) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def run_keras(model: str, seed: int) -> dict:
    import keras
    import torch

    prepared = _split()
    x_train = prepared.splits.train.X.transpose(0, 2, 3, 1)
    x_test = prepared.splits.test.X.transpose(0, 2, 3, 1)
    keras.utils.set_random_seed(seed)
    net = keras.Sequential(seed_keras_layers(keras, model))
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    net.fit(x_train, prepared.splits.train.y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    fit = time.perf_counter() - start
    acc = float(net.evaluate(x_test, prepared.splits.test.y, verbose=0)[1])
    return {"fit_seconds": fit, "test_accuracy": acc, "threads": torch.get_num_threads()}


def seed_keras_layers(keras, model: str) -> list:
    """The seeds' Keras models as written (`keras.Input` replaces `input_shape`)."""
    if model == "mlp":  # seed 003 §4.1
        return [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    return [  # seed 003 §4.2
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(filters=32, kernel_size=(3, 3)),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(filters=64, kernel_size=(3, 3)),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(units=64, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(units=10, activation="softmax"),
    ]


def run_lightning(model: str, seed: int) -> dict:
    import lightning as L
    import torch

    prepared, net = _torch_model(model, seed)
    x, y = prepared.tensors("train")

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    trainer = L.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(Module(), data)
    fit = time.perf_counter() - start
    return {"fit_seconds": fit, "test_accuracy": _accuracy(net, *prepared.tensors("test")),
            "threads": torch.get_num_threads()}


RUNNERS = {"trainlab": run_trainlab, "hand": run_hand, "keras": run_keras,
           "lightning": run_lightning}


# ------------------------------------------------------------------- the bench
def _missing(peer: str) -> str | None:
    module = {"keras": "keras", "lightning": "lightning"}.get(peer)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"{peer} is not installed: pip install -e .[bench]"
    return None


def _one(peer: str, model: str, seed: int) -> dict:
    """Run one contender in a fresh process; its result, or {"error": …}."""
    cmd = [sys.executable, __file__, "--one", peer, model, str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def _competitor(seconds: float) -> subprocess.Popen:
    """One CPU-bound process, bounded by `seconds` and by the bench's life: it ends when
    the bench ends it, or when its parent is gone (a killed bench leaves nothing behind)."""
    code = (
        "import os, time\n"
        f"end, parent = time.time() + {seconds}, {os.getpid()}\n"
        "while time.time() < end and os.getppid() == parent:\n"
        "    sum(range(10000))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def phase(models: list[str], peers: list[str], repeats: int, contended: bool) -> dict:
    """Alternating rounds of every peer on every model; per model and peer the runs."""
    rival = _competitor(3600) if contended else None
    try:
        time.sleep(1.0 if rival else 0.0)
        out: dict = {m: {p: [] for p in _contenders(m, peers)} for m in models}
        for r in range(repeats):
            for model in models:
                for peer in _contenders(model, peers):
                    res = _one(peer, model, seed=r)
                    out[model][peer].append(res)
                    print(f"{'shared' if contended else 'quiet'} {model} {peer} #{r}: {res}",
                          file=sys.stderr, flush=True)
        return out
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def _contenders(model: str, peers: list[str]) -> list[str]:
    """Who runs `model`: every peer, or trainlab alone for its own recipes."""
    return [p for p in peers if p == "trainlab"] if model in TRAINLAB_ONLY else peers


def _time_to_accuracy(quiet: dict) -> dict | None:
    """mnist_fast against the seed Keras CNN, both from the same quiet rounds."""
    fast = quiet.get("fast", {}).get("peers", {}).get("trainlab", {})
    keras = quiet.get("cnn", {}).get("peers", {}).get("keras", {})
    if "fit_seconds_median" not in fast or "fit_seconds_median" not in keras:
        return None
    return {
        "mnist_fast_seconds": fast["fit_seconds_median"],
        "mnist_fast_accuracy": fast["test_accuracy_mean"],
        "keras_cnn_seconds": keras["fit_seconds_median"],
        "keras_cnn_accuracy": keras["test_accuracy_mean"],
        "fast_over_keras": round(fast["fit_seconds_median"] / keras["fit_seconds_median"], 3),
    }


def _summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0].get("error") if runs else "not run"}
    times = [r["fit_seconds"] for r in ok]
    return {
        "fit_seconds_median": round(statistics.median(times), 3),
        "fit_seconds_min": round(min(times), 3),
        "test_accuracy_mean": round(statistics.mean(r["test_accuracy"] for r in ok), 4),
        "threads": ok[0].get("threads"),
        "runs": len(ok),
    }


def _ratios(table: dict) -> dict:
    """Each peer's median fit time over trainlab's (> 1: trainlab is faster)."""
    base = table.get("trainlab", {}).get("fit_seconds_median")
    return {
        p: round(row["fit_seconds_median"] / base, 3)
        for p, row in table.items()
        if base and "fit_seconds_median" in row and p != "trainlab"
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, metavar=("PEER", "MODEL", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="mlp,cnn,fast")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--no-contended", action="store_true")
    ap.add_argument("--phases", default="quiet,shared", help="quiet, shared or both")
    args = ap.parse_args()
    if args.one:
        peer, model, seed = args.one
        print(json.dumps(RUNNERS[peer](model, int(seed))))
        return
    models = args.models.split(",")
    peers, skipped = [], {}
    for p in args.peers.split(","):
        problem = _missing(p)
        (skipped.__setitem__(p, problem) if problem else peers.append(p))
    for p, why in skipped.items():
        print(f"skipped {p}: {why}", file=sys.stderr)
    result: dict = {"bench": "peers", "epochs": EPOCHS, "batch_size": BATCH,
                    "data": "MNIST canonical split, 8,000 train / 2,000 test", "skipped": skipped}
    for name, contended in (("quiet", False), ("shared", True)):
        if (contended and args.no_contended) or name not in args.phases.split(","):
            continue
        runs = phase(models, peers, args.repeats, contended)
        table = {m: {p: _summary(got) for p, got in runs[m].items()} for m in models}
        result[name] = {m: {"peers": table[m], "ratio_to_trainlab": _ratios(table[m])}
                        for m in models}
    if "quiet" in result:
        result["time_to_accuracy"] = _time_to_accuracy(result["quiet"])
    if "shared" in result and "quiet" in result:
        result["shared_over_quiet_trainlab"] = {
            m: round(result["shared"][m]["peers"]["trainlab"]["fit_seconds_median"]
                     / result["quiet"][m]["peers"]["trainlab"]["fit_seconds_median"], 3)
            for m in models if "trainlab" in peers and m in result["quiet"]
        }
    _print_table(result, models)
    print(json.dumps(result))


def _print_table(result: dict, models: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fit seconds (median) and test accuracy; ratio = peer / trainlab")
    for col in ("phase", "model", "peer", "fit s", "accuracy", "threads", "ratio"):
        table.add_column(col)
    for name in ("quiet", "shared"):
        for m in models if name in result else []:
            block = result[name][m]
            for peer, row in block["peers"].items():
                ratio = block["ratio_to_trainlab"].get(peer, 1.0 if peer == "trainlab" else "")
                table.add_row(name, m, peer, str(row.get("fit_seconds_median", row.get("error"))),
                              str(row.get("test_accuracy_mean", "")), str(row.get("threads", "")),
                              str(ratio))
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
