"""Class selection (`data.classes`) and few labels per class (`data.train_per_class`).

Both act on a run's splits after they are made, so they never move the test split:

1. the dataset is split as without them (the canonical split, or the cv fold);
2. `data.classes` keeps the rows of those classes in every split — the test rows are
   exactly the canonical test rows of those classes — and relabels them 0…k−1 in the
   order the recipe lists them; the run's class names are the original names, so
   predictions read as the dataset's own labels;
3. `data.train_per_class: N` keeps N training rows of each class: the first N of that
   class in one permutation of the training rows seeded by `data.split_seed` (NumPy's
   `default_rng(split_seed).permutation`), kept in their training order. The validation
   and test splits are not limited. One permutation serves every class, so the rows
   for a smaller N are a subset of those for a larger one (same seed).

A class is named as the dataset names it: a class name ("malignant", "<=50K", "5"), or
a number equal to a numeric class name (5 for MNIST's "5", 3 for a CSV label "3.0").
When no class name is a number (breast_cancer, a CSV of words) a number is the class's
index in the dataset's class list, i.e. its value in `y` (sklearn's target value).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainlab.data.arrays import ArrayData, Split, Splits
from trainlab.errors import DataError, RecipeError
from trainlab.names import did_you_mean


def class_names(data: ArrayData) -> list[str]:
    """The dataset's class names, index i naming class i ("0"…"k−1" when it has none)."""
    if data.classes is not None:
        return [str(c) for c in data.classes]
    top = int(data.y.max()) + 1 if len(data.y) else 0
    if data.y_test is not None and len(data.y_test):
        top = max(top, int(data.y_test.max()) + 1)
    return [str(i) for i in range(top)]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _lookup(value: int | str, names: list[str]) -> int | None:
    """The index of the class `value` names, or None."""
    if isinstance(value, str):
        return names.index(value) if value in names else None
    text = str(value)
    if text in names:
        return names.index(text)
    numbers = [_number(n) for n in names]
    for i, number in enumerate(numbers):
        if number is not None and number == value:
            return i
    if all(n is None for n in numbers) and 0 <= value < len(names):
        return value  # the names are words: a number is the class index (its y value)
    return None


def resolve_classes(
    wanted: Sequence[int | str], data: ArrayData, dataset: str = "the dataset"
) -> list[int]:
    """The class indices (values in `y`) of `wanted`, in its order.

    RecipeError for a regression dataset, an empty or one-class list, a label the dataset
    does not have (naming its labels) and a class listed twice (as the same label or as
    a name and its index): each would train something other than what was asked.
    """
    check_applicable(data, dataset, classes=wanted)
    names = class_names(data)
    if len(wanted) < 2:
        raise RecipeError(
            f"data.classes: {list(wanted)} keeps {len(wanted)} class; a classifier needs at "
            f"least 2 (dataset '{dataset}' has {', '.join(names)})"
        )
    indices: list[int] = []
    for value in wanted:
        index = _lookup(value, names)
        if index is None:
            hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
            words = all(_number(n) is None for n in names)
            also = f" (or their indices 0 to {len(names) - 1})" if words else ""
            raise RecipeError(
                f"data.classes: {value!r} is not a label of dataset '{dataset}'; "
                f"{hint}its labels are {', '.join(names)}{also}"
            )
        if index in indices:
            raise RecipeError(
                f"data.classes: class '{names[index]}' is listed twice ({list(wanted)}); "
                "list each class once"
            )
        indices.append(index)
    return indices


def check_applicable(
    data: ArrayData,
    dataset: str,
    classes: Sequence[int | str] | None = None,
    train_per_class: int | None = None,
) -> None:
    """RecipeError when `data.classes` or `data.train_per_class` is set for a regression
    dataset: it has no classes to select or count."""
    if data.task != "regression":
        return
    key = "data.classes" if classes is not None else "data.train_per_class"
    if classes is not None or train_per_class is not None:
        raise RecipeError(
            f"{key}: dataset '{dataset}' is regression and has no classes; remove "
            "data.classes and data.train_per_class (or use a classification target)"
        )


def kept_names(wanted: Sequence[int | str] | None, data: ArrayData, dataset: str) -> list[str]:
    """The class names a run of `data` restricted to `wanted` predicts, in label order
    0…k−1 (all the dataset's names when `wanted` is None)."""
    names = class_names(data)
    if wanted is None:
        return names
    return [names[i] for i in resolve_classes(wanted, data, dataset)]


def select_classes(split: Split, indices: Sequence[int]) -> Split:
    """The rows of `split` whose class is in `indices`, relabelled: class indices[j]
    becomes j. The rows keep their order."""
    keep = np.isin(split.y, indices)
    lookup = np.full(int(max(max(indices), split.y.max(initial=0))) + 1, -1, dtype=np.int64)
    lookup[np.asarray(indices)] = np.arange(len(indices))
    return Split(split.X[keep], lookup[split.y[keep]])


def limit_per_class(split: Split, n: int, seed: int, names: Sequence[str]) -> Split:
    """`n` rows of each class of `split`: the first `n` of that class in the permutation
    `default_rng(seed).permutation(len(split))`, kept in `split`'s order.

    DataError naming the class when one has fewer than `n` rows (`names[j]` names
    class j): the run would not be the balanced few-label run the recipe asks for.
    """
    order = np.random.default_rng(seed).permutation(len(split))
    labels = split.y[order]
    chosen = []
    counts = np.bincount(split.y, minlength=len(names))
    for j, count in enumerate(counts):
        if count < n:
            least = int(counts.min())
            raise DataError(
                f"data.train_per_class: {n} training rows per class asked for, but class "
                f"'{names[j]}' has only {int(count)} after the test and validation splits; "
                f"set data.train_per_class to at most {least}, or lower data.val_size / "
                "data.test_size"
            )
        chosen.append(order[labels == j][:n])
    keep = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return Split(split.X[keep], split.y[keep])


def subset_splits(
    splits: Splits,
    data: ArrayData,
    classes: Sequence[int | str] | None,
    train_per_class: int | None,
    seed: int,
    dataset: str = "the dataset",
) -> Splits:
    """Apply `data.classes` to every split and `data.train_per_class` to the training
    split (the module docstring says how); `splits` unchanged when both are None."""
    check_applicable(data, dataset, classes, train_per_class)
    if classes is None and train_per_class is None:
        return splits
    names = class_names(data)
    if classes is not None:
        indices = resolve_classes(classes, data, dataset)
        names = [names[i] for i in indices]
        splits = Splits(
            *(select_classes(s, indices) for s in (splits.train, splits.val, splits.test))
        )
    if train_per_class is not None:
        train = limit_per_class(splits.train, train_per_class, seed, names)
        splits = Splits(train, splits.val, splits.test)
    return splits
