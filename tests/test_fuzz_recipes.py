"""Recipe fuzzing: mutated example recipes through the real `trainlab train`.

A seeded sample of mutations of the small shipped examples (wrong types, deleted keys,
unknown keys, misspelt or swapped component names, bad component parameters, garbage
YAML), each trained in-process through `trainlab.cli.main` with one epoch. The property,
for every mutation:

- the command succeeds (exit 0, the run completed or stopped), or it ends with exit 2
  (a user mistake) or 3 (a diverged run) and one `error:` line, never a traceback;
- no exception escapes the entry point and no other exit status is used;
- run.json is never left saying `running`;
- a value that is plainly wrong is never trained with: a YAML boolean where the recipe
  holds a number, or a non-finite float (`.inf`, `.nan`).

    TRAINLAB_FUZZ_N=1000 pytest tests/test_fuzz_recipes.py   # a larger sample
    TRAINLAB_FUZZ_SEED=7 ...                                   # another sample
    TRAINLAB_FUZZ_REPORT=fuzz.json ...                         # every case and outcome

`pytest -m slow` also runs a 1,000-mutation sample with another seed. A failure lists the
distinct kinds of crash, each with a mutation that reproduces it (`case`, `base`, `op`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import random
import re
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import yaml

from trainlab.cli import main

from .conftest import EXAMPLES

DEFAULT_N = 500
#: The small examples (each trains one epoch in well under a second).
BASES = {
    "breast_cancer": EXAMPLES / "breast_cancer_mlp.yaml",
    "csv": EXAMPLES / "csv_train.yaml",
    "digits_pca": EXAMPLES / "digits_pca.yaml",
    "exploding": EXAMPLES / "broken" / "exploding_lr10.yaml",  # diverges: exit 3
}
#: Datasets a swapped `data.dataset` may name: the small ones only (plus the file
#: loaders, which must refuse a recipe without a path).
SMALL_DATASETS = [
    "breast_cancer",
    "digits",
    "iris",
    "wine",
    "diabetes",
    "cifar10_sample",
    "csv",
    "npy",
    "image_folder",
    "text",
    "cifar10_binary",
]
#: Keys where a huge integer costs no work or memory (epochs, widths and lengths are
#: never set huge: a run of 10**12 epochs or a layer of 10**12 units is not a fuzz case).
HUGE_OK = {
    ("train", "seed"),
    ("data", "split_seed"),
    ("train", "batch_size"),
    ("train", "eval_batch_size"),
    ("data", "cv"),
    ("data", "fold"),
    ("data", "preprocessing", "pca"),
}
HUGE = [10**12, 2**32, 2**64]
BAD_VALUES: list[Any] = [
    True,
    False,
    "x",
    "",
    "1e-3",
    [],
    [1, 2],
    [True],
    -1,
    0,
    -0.5,
    1.5,
    1e-9,
    0.999999,
    math.inf,
    -math.inf,
    math.nan,
    None,
    {"a": 1},
    {"a": {"b": [1]}},
]
DEVICES = ["cpu", "cuda", "cuda:7", "mps", "tpu", "CPU", ""]
#: Whole files that are not a recipe at all.
RAW_TEXTS: list[str | bytes] = [
    "",
    "null\n",
    "[1, 2]\n",
    "just a string\n",
    "42\n",
    "data: [\n",
    "data:\n  dataset: digits\n model: mlp\n",
    "data: {dataset: digits}\nmodel: mlp\ndata: {dataset: iris}\n",
    "data: !!python/object/apply:os.system ['true']\nmodel: mlp\n",
    "data: &a {dataset: digits}\nmodel: *a\n",
    "x: &a [1, 2, 3]\ny: &b [*a, *a, *a]\nz: &c [*b, *b, *b]\ndata: [*c, *c]\nmodel: mlp\n",
    b"\xff\xfe\x00d\x00a\x00t\x00a",
    b"data: {dataset: digits}\nmodel: mlp\ntrain: {epochs: 1}\n\x00\x01\x02",
    "data: {dataset: digits}\nmodel: mlp\ntrain: {epochs: 1}\n\t- tab\n",
]
OPS = [
    ("replace", 26),
    ("tweak", 8),
    ("delete", 10),
    ("unknown_key", 8),
    ("misspell", 10),
    ("swap_component", 10),
    ("param", 18),
    ("add_technique", 6),
    ("device", 2),
    ("raw", 4),
]
COMPONENTS = {  # where a recipe names a component, and the registry it names
    "dataset": ("data", "dataset"),
    "model": ("model",),
    "optimizer": ("train", "optimizer"),
    "loss": ("train", "loss"),
    "schedule": ("train", "schedule"),
}


def _registries() -> dict[str, Any]:
    from trainlab.catalog import TECHNIQUES
    from trainlab.data.datasets import DATASETS
    from trainlab.models import MODELS
    from trainlab.optim import LOSSES, OPTIMIZERS, SCHEDULES

    return {
        "dataset": DATASETS,
        "model": MODELS,
        "optimizer": OPTIMIZERS,
        "loss": LOSSES,
        "schedule": SCHEDULES,
        "technique": TECHNIQUES,
    }


def load_bases() -> dict[str, dict[str, Any]]:
    """The base recipes, with one epoch and the CSV path made absolute."""
    bases = {}
    for name, path in BASES.items():
        recipe = yaml.safe_load(path.read_text())
        recipe.setdefault("train", {})["epochs"] = 1
        dataset = recipe["data"]["dataset"]
        if isinstance(dataset, dict) and "path" in dataset:
            dataset["path"] = str((EXAMPLES.parent / dataset["path"]).resolve())
        bases[name] = recipe
    return bases


# ----------------------------------------------------------------------------- mutations
@dataclass
class Case:
    """One mutated recipe: the file's content, --set overrides, and what was changed."""

    index: int
    base: str
    op: str = ""
    path: str = ""
    value: str = ""
    recipe: Any = None  # a dict to dump as YAML, or raw text/bytes
    overrides: list[str] = field(default_factory=list)
    #: why training with this recipe would be a silent acceptance ('' when it would not)
    expect_refusal: str = ""

    def describe(self) -> str:
        via = f" via --set {self.overrides}" if self.overrides else ""
        return f"case {self.index}: {self.base}: {self.op} {self.path} = {self.value}{via}"


@dataclass
class _Bad:
    """A plainly wrong value a mutation put at `path` (in the file, or with --set)."""

    path: tuple
    value: Any
    via_set: bool
    why: str


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _paths(v, (*prefix, i))
    return found


def _get(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _set(obj: Any, path: tuple, value: Any) -> None:
    parent = _get(obj, path[:-1])
    if isinstance(parent, list) and path[-1] >= len(parent):
        parent.append(value)
    else:
        parent[path[-1]] = value


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _yaml_value(value: Any) -> str:
    """`value` as the text of a --set override (parsed back as YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("...").strip()


def _typo(rng: random.Random, name: str) -> str:
    for _ in range(20):
        i = rng.randrange(len(name)) if name else 0
        kind = rng.randrange(8)
        if kind == 0 and len(name) > 1:
            j = min(i + 1, len(name) - 1)
            chars = list(name)
            chars[i], chars[j] = chars[j], chars[i]
            out = "".join(chars)
        elif kind == 1 and len(name) > 1:
            out = name[:i] + name[i + 1 :]
        elif kind == 2:
            out = name[:i] + name[i : i + 1] * 2 + name[i + 1 :]
        elif kind == 3:
            out = name.capitalize() if name[:1].islower() else name.upper()
        elif kind == 4:
            out = name + "s"
        elif kind == 5:
            out = rng.choice([f" {name}", f"{name} ", f"{name}\t"])
        elif kind == 6:
            out = name.replace("_", "-") if "_" in name else name + "_"
        else:
            out = name[:i] + rng.choice("aeiouxz") + name[i + 1 :]
        if out != name:
            return out
    return name + "x"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_at(base: dict, path: tuple) -> bool:
    """Whether the base recipe holds a number (not a boolean) at `path`."""
    try:
        return _is_number(_get(base, path))
    except (KeyError, IndexError, TypeError):
        return False


def _bad_value(rng: random.Random, path: tuple) -> Any:
    values = BAD_VALUES + (HUGE if tuple(path) in HUGE_OK else [])
    return copy.deepcopy(rng.choice(values))


def _why_bad(value: Any, path: tuple, number_expected: bool) -> str:
    """Why training with `value` at `path` would be a silent acceptance ('' if it is not)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"non-finite {value} accepted at {_dotted(path)}"
    if isinstance(value, bool) and number_expected:
        where = _dotted(path)
        return f"boolean {str(value).lower()} accepted where a number is expected at {where}"
    return ""


def _param_value(rng: random.Random, default: Any) -> Any:
    """A bad value, or (a third of the time) a plausible one near the parameter's default."""
    if rng.random() < 0.67 or default is None:
        return copy.deepcopy(rng.choice(BAD_VALUES))
    if isinstance(default, bool):
        return not default
    if _is_number(default):
        return rng.choice([default * 10, default / 10, -default, default + 1, 0])
    if isinstance(default, str):
        return _typo(rng, default)
    return copy.deepcopy(rng.choice(BAD_VALUES))


def _tweak(rng: random.Random, value: Any) -> Any:
    """A nearby value of the same kind: valid edges and invalid ones, never a big one."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, 1, 2, -value, value + 1, max(1, value // 2)])
    if isinstance(value, float):
        return rng.choice([0.0, value / 10, value * 2, -value, 1.0, 1 - 1e-9])
    if isinstance(value, str):
        return _typo(rng, value) if value else " "
    if isinstance(value, list):
        return value[:-1] if value and rng.random() < 0.5 else value + value[-1:] or [0]
    return None


class _Mutator:
    """Applies mutation operators to one recipe, recording what each did."""

    def __init__(self, rng: random.Random, base: dict, recipe: dict) -> None:
        self.rng, self.base, self.recipe = rng, base, recipe
        self.regs = _registries()
        self.ops: list[str] = []
        self.paths: list[str] = []
        self.values: list[str] = []
        self.overrides: list[str] = []
        self.bad: list[_Bad] = []

    def put(self, path: tuple, value: Any, number_expected: bool | None = None) -> None:
        """Set `path` to `value`, in the file or (for dict paths, sometimes) with --set."""
        if number_expected is None:
            number_expected = _number_at(self.base, path)
        via_set = all(isinstance(p, str) for p in path) and self.rng.random() < 0.4
        if via_set:
            self.overrides.append(f"{_dotted(path)}={_yaml_value(value)}")
        else:
            _set(self.recipe, path, value)
        why = _why_bad(value, path, number_expected)
        if why:
            self.bad.append(_Bad(path, value, via_set, why))
        self.paths.append(_dotted(path))
        self.values.append(repr(value))

    def apply(self, op: str) -> None:
        self.ops.append(op)
        try:
            self._apply(op)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the target
            self.paths.append("(target gone)")
            self.values.append("-")

    def _apply(self, op: str) -> None:
        rng, recipe = self.rng, self.recipe
        if op in ("replace", "delete", "tweak"):
            paths = [p for p in _paths(recipe) if p]
            path = rng.choice(paths)
            if op == "delete":
                del _get(recipe, path[:-1])[path[-1]]
                self.paths.append(_dotted(path))
                self.values.append("(deleted)")
            elif op == "tweak":
                self.put(path, _tweak(rng, _get(recipe, path)))
            else:
                self.put(path, _bad_value(rng, path))
            return
        if op == "unknown_key":
            dicts = [p for p in _paths(recipe) if isinstance(_get(recipe, p), dict)]
            path = rng.choice(dicts)
            keys = [k for k in _get(recipe, path) if isinstance(k, str)]
            key = _typo(rng, rng.choice(keys)) if keys and rng.random() < 0.7 else "zz_unknown"
            self.put((*path, key), 1, number_expected=False)
            return
        if op == "device":
            self.put(("train", "device"), rng.choice(DEVICES))
            return
        if op == "add_technique":
            techniques = recipe.setdefault("techniques", [])
            if not isinstance(techniques, list):
                recipe["techniques"] = techniques = []
            techniques.append(rng.choice(self.regs["technique"].names()))
            self.paths.append("techniques")
            self.values.append(repr(techniques[-1]))
            return
        self._component(op)

    def _component(self, op: str) -> None:
        rng, recipe = self.rng, self.recipe
        kind = rng.choice([*COMPONENTS, "technique"])
        registry = self.regs[kind]
        names = registry.names()
        if kind == "dataset":
            names = [n for n in names if n in SMALL_DATASETS]
        if kind == "technique":
            techniques = recipe.get("techniques")
            if not isinstance(techniques, list):
                recipe["techniques"] = techniques = []
            path: tuple = ("techniques", len(techniques))
            spec: Any = None
            current = rng.choice(names)
        else:
            path = COMPONENTS[kind]
            parent = _get(recipe, path[:-1]) if len(path) > 1 else recipe
            if not isinstance(parent, dict):  # an earlier mutation replaced the section
                self.paths.append(_dotted(path))
                self.values.append("(section gone)")
                return
            spec = parent.get(path[-1])
            current = spec.get("name") if isinstance(spec, dict) else spec
        if op in ("misspell", "swap_component"):
            if op == "misspell":
                name = _typo(rng, current if isinstance(current, str) else rng.choice(names))
            else:
                name = rng.choice(names)
            if isinstance(spec, dict):
                spec["name"] = name  # the old parameters stay: they may not fit the new one
            else:
                _set(recipe, path, name)
            self.paths.append(_dotted(path))
            self.values.append(repr(name))
            return
        # op == "param": a named component with one parameter set to a bad or odd value
        name = current if current in names and rng.random() < 0.6 else rng.choice(names)
        fields = registry.get(name).params.model_fields
        new = dict(spec) if isinstance(spec, dict) and spec.get("name") == name else {"name": name}
        _set(recipe, path, new)
        if not fields:
            self.paths.append(_dotted(path))
            self.values.append(f"{name} (no parameters)")
            return
        param = rng.choice(sorted(fields))
        default = fields[param].default
        value = _param_value(rng, default)
        new[param] = value
        why = _why_bad(value, (*path, param), _is_number(default))
        if why:
            self.bad.append(_Bad((*path, param), value, False, why))
        self.paths.append(_dotted((*path, param)))
        self.values.append(f"{name}: {value!r}")

    def still_bad(self) -> str:
        """The silent acceptances to expect: the wrong values that are still in place."""
        found = []
        for b in self.bad:
            if not b.via_set:
                try:
                    if _get(self.recipe, b.path) is not b.value:
                        continue  # a later mutation replaced or removed it
                except (KeyError, IndexError, TypeError):
                    continue
            found.append(b.why)
        return "; ".join(dict.fromkeys(found))


def make_case(rng: random.Random, index: int, bases: dict[str, dict]) -> Case:
    """Draw one mutated recipe: one operator, or (a fifth of the time) two or three."""
    base_name = rng.choice(sorted(bases))
    base = bases[base_name]
    ops, weights = zip(*OPS, strict=True)
    op = rng.choices(ops, weights)[0]
    case = Case(index, base_name)
    if op == "raw":
        case.op, case.recipe = "raw", rng.choice(RAW_TEXTS)
        case.value = repr(case.recipe)[:60]
        return case
    recipe = copy.deepcopy(base)
    mutator = _Mutator(rng, base, recipe)
    mutator.apply(op)
    if rng.random() < 0.2:
        others = [(o, w) for o, w in OPS if o != "raw"]
        for _ in range(rng.choice([1, 2])):
            mutator.apply(rng.choices(*zip(*others, strict=True))[0])
    case.op = "+".join(mutator.ops)
    case.path = ", ".join(mutator.paths)
    case.value = ", ".join(mutator.values)
    case.recipe = recipe
    case.overrides = mutator.overrides
    case.expect_refusal = mutator.still_bad()
    return case


def draw_cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    bases = load_bases()
    return [make_case(rng, i, bases) for i in range(n)]


# ----------------------------------------------------------------------------- running
@dataclass
class Outcome:
    case: Case
    code: int | None
    seconds: float
    crash: str = ""  # the kind of crash; '' when the property holds
    detail: str = ""


def _normalize(text: str) -> str:
    """A message with the case-specific parts (paths, numbers, quoted values) removed."""
    text = re.sub(r"(/[\w.\-]+)+/?", "<path>", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return " ".join(text.split())[:160]


def _cli(args: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    out, err = io.StringIO(), io.StringIO()
    code: int | None = 0
    escaped = None
    threads = torch.get_num_threads()
    with (
        mock.patch.object(sys, "argv", ["trainlab", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # noqa: BLE001 - that is what the fuzz looks for
            code, escaped = None, exc
        finally:
            torch.set_num_threads(threads)  # a recipe's train.threads must not leak
    return code, out.getvalue(), err.getvalue(), escaped


def run_case(case: Case, root: Path) -> Outcome:
    folder = root / f"case-{case.index:05d}"
    folder.mkdir(parents=True)
    recipe_path = folder / "recipe.yaml"
    if isinstance(case.recipe, bytes):
        recipe_path.write_bytes(case.recipe)
    elif isinstance(case.recipe, str):
        recipe_path.write_text(case.recipe)
    else:
        recipe_path.write_text(yaml.safe_dump(case.recipe, sort_keys=False))
    run_dir = folder / "run"
    args = ["train", str(recipe_path), "--out", str(run_dir), "--quiet"]
    for item in case.overrides:
        args += ["--set", item]
    started = time.perf_counter()
    code, _stdout, stderr, escaped = _cli(args)
    outcome = Outcome(case, code, time.perf_counter() - started)

    status = None
    if (run_dir / "run.json").is_file():
        with contextlib.suppress(ValueError):
            status = json.loads((run_dir / "run.json").read_text()).get("status")
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]

    def crash(kind: str, detail: str) -> Outcome:
        outcome.crash, outcome.detail = kind, detail
        return outcome

    if escaped is not None:
        frames = traceback.extract_tb(escaped.__traceback__)
        ours = [f for f in frames if "trainlab" in f.filename]
        where = f"{Path(ours[-1].filename).name}:{ours[-1].name}" if ours else "?"
        message = str(escaped).splitlines()[0] if str(escaped) else ""
        return crash(
            f"{type(escaped).__name__} escaped from {where}: {_normalize(message)}",
            f"{type(escaped).__name__}: {message[:300]}",
        )
    if status == "running":
        return crash(f"run.json left 'running' (exit {code})", stderr[-300:])
    if "Traceback" in stderr:
        return crash(f"traceback on stderr (exit {code})", stderr[-500:])
    if code == 0:
        if status not in ("completed", "stopped"):
            return crash(f"exit 0 with run status {status!r}", stderr[-300:])
        if case.expect_refusal:
            return crash(_normalize(case.expect_refusal), case.expect_refusal)
        return outcome
    if code in (2, 3):
        if len(errors) != 1 or lines[-1] != errors[0]:
            return crash(f"exit {code} without exactly one final error: line", stderr[-500:])
        if code == 3 and status != "diverged":
            return crash(f"exit 3 with run status {status!r}", errors[0])
        if code == 3 and case.expect_refusal:  # trained with it, then diverged
            return crash(_normalize(case.expect_refusal) + " (then diverged)", errors[0])
        if code == 2 and status == "diverged":
            return crash("exit 2 for a diverged run", errors[0])
        return outcome
    last = errors[-1] if errors else (lines[-1] if lines else "")
    # "internal error in STEP: Type: message (details in LOG)": grouped by the exception
    bug = re.match(r"error: internal error in .*?: (\w+: .*?)( \(details in .*)?$", last)
    kind = f"internal error {bug.group(1)}" if bug else last
    return crash(f"exit {code}: {_normalize(kind)}", last[:300])


def fuzz(n: int, seed: int, root: Path) -> list[Outcome]:
    return [run_case(case, root) for case in draw_cases(n, seed)]


def report(outcomes: list[Outcome]) -> str:
    """The distinct kinds of crash, most frequent first, each with its first case."""
    kinds: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if o.crash:
            kinds[o.crash].append(o)
    lines = [f"{sum(map(len, kinds.values()))} of {len(outcomes)} mutations broke the contract:"]
    for kind, items in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        first = items[0]
        lines.append(f"- [{len(items)}x] {kind}")
        lines.append(f"    e.g. {first.case.describe()} (exit {first.code}): {first.detail[:200]}")
    return "\n".join(lines)


def _write_report(outcomes: list[Outcome]) -> None:
    target = os.environ.get("TRAINLAB_FUZZ_REPORT")
    if not target:
        return
    rows = []
    for o in outcomes:
        case = asdict(o.case)
        case["recipe"] = (
            case["recipe"] if isinstance(case["recipe"], dict) else repr(case["recipe"])
        )
        rows.append({**asdict(o), "case": case})
    Path(target).write_text(json.dumps(rows, default=repr, indent=1))


def _check(n: int, seed: int, root: Path) -> None:
    started = time.perf_counter()
    outcomes = fuzz(n, seed, root)
    _write_report(outcomes)
    codes = defaultdict(int)
    for o in outcomes:
        codes["crash" if o.crash else o.code] += 1
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(
        f"\n{n} mutations (seed {seed}) in {time.perf_counter() - started:.1f}s; outcomes "
        f"{dict(codes)}; slowest {slowest.seconds:.2f}s: {slowest.case.describe()}"
    )
    if n >= 100:  # a real sample exercises every outcome, or the property says little
        assert codes[0] and codes[2] and codes[3], dict(codes)
    broken = [o for o in outcomes if o.crash]
    assert not broken, report(outcomes)


def test_fuzz_recipes(tmp_path):
    n = int(os.environ.get("TRAINLAB_FUZZ_N", DEFAULT_N))
    _check(n, int(os.environ.get("TRAINLAB_FUZZ_SEED", 0)), tmp_path)


@pytest.mark.slow
def test_fuzz_recipes_large(tmp_path):
    _check(1000, int(os.environ.get("TRAINLAB_FUZZ_SEED", 0)) + 1, tmp_path)


def test_mutations_are_seeded_and_cover_every_operator():
    a, b = draw_cases(200, 0), draw_cases(200, 0)
    assert [c.describe() for c in a] == [c.describe() for c in b]
    assert [c.describe() for c in draw_cases(50, 1)] != [c.describe() for c in a[:50]]
    assert {op for c in a for op in c.op.split("+")} == {op for op, _ in OPS}
    assert any("+" in c.op for c in a)  # combined mutations too
    assert {c.base for c in a} == set(BASES)
    assert any(c.overrides for c in a) and any(c.expect_refusal for c in a)
    for c in a:  # work is never scaled up: one epoch unless the mutation is about epochs
        if isinstance(c.recipe, dict) and "epochs" not in c.path and not c.overrides:
            train = c.recipe.get("train")
            if isinstance(train, dict) and "epochs" in train:
                assert train["epochs"] == 1, c.describe()


# ----------------------------------------------------------------------------- known bad values
BAD = [
    ("train.seed", -1, "breast_cancer"),
    ("train.threads", True, "breast_cancer"),
    ("train.batch_size", True, "breast_cancer"),
    ("train.lr", True, "breast_cancer"),
    ("train.lr", math.inf, "breast_cancer"),
    ("train.weight_decay", math.inf, "breast_cancer"),
    ("train.loss.pos_weight", math.inf, "breast_cancer"),
]


@pytest.mark.parametrize("via", ["file", "set"])
@pytest.mark.parametrize(("key", "value", "base"), BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_values_refused(tmp_path, key, value, base, via):
    recipe = load_bases()[base]
    overrides = []
    if via == "set":
        overrides = ["--set", f"{key}={_yaml_value(value)}"]
    else:
        path = tuple(key.split("."))
        if path[:2] == ("train", "loss") and not isinstance(recipe["train"].get("loss"), dict):
            recipe["train"]["loss"] = {"name": recipe["train"].get("loss", "bce")}
        _set(recipe, path, value)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = tmp_path / "run"
    code, _, stderr, escaped = _cli(["train", str(recipe_path), "--out", str(out), *overrides])
    assert escaped is None, f"{type(escaped).__name__}: {escaped}"
    text = stderr.strip()
    assert code == 2, text[-1000:]
    assert "Traceback" not in text
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    assert key in text, text  # the message names the key
    assert not (out / "model.safetensors").exists()  # refused before training
