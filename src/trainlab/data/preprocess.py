"""Preprocessing fitted on the training split only, saved as plain numbers.

Fitting uses scikit-learn (a `ColumnTransformer` of imputer → scaler for numeric columns,
missing indicators, and imputer → one-hot / ordinal encoder for categorical ones, then
`PCA`). The fitted parameters are then read out into plain lists, and `transform` applies
them with NumPy, so the state saved with a run is JSON: loading it executes no code and
needs no pickle. `tests/data/test_preprocess.py` checks that NumPy transform equals the
scikit-learn pipeline's output.

Three kinds of input:

- **tabular** — (N, F) float or object arrays with named numeric and categorical columns.
  Output: float32 (N, n_numeric + n_index) with scaled numeric, indicator and one-hot
  columns first and integer index columns (0 = unknown/missing) last.
- **array** — images and other (N, …) float arrays: scaled per position (flattened),
  shape kept unless PCA flattens it to (N, k).
- **text** — (N,) arrays of strings: tokenized and encoded with a vocabulary learned on
  the training texts, int64 (N, max_len).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.data.options import PreprocessingConfig
from trainlab.data.text import PAD_INDEX, Vocabulary, tokenize
from trainlab.errors import DataError

MISSING_CATEGORY = "<missing>"
OTHER_CATEGORY = "<other>"


def _is_missing_cell(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class Preprocessor:
    """Transforms learned from training data and applied to any split or to raw inputs.

    Args:
        config: the recipe's `data.preprocessing`.
        column_names / column_kinds: per raw column, its name and "numeric" or
            "categorical" (tables only; default: all numeric, named by position).
    """

    def __init__(
        self,
        config: PreprocessingConfig,
        column_names: list[str] | None = None,
        column_kinds: list[str] | None = None,
    ) -> None:
        self.config = config
        self.column_names = column_names
        self.column_kinds = column_kinds
        #: columns were typed by a table loader (a user's file), not a built-in array
        self.from_table = column_kinds is not None
        self.kind: str | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.p: dict[str, Any] = {}
        self.vocab: Vocabulary | None = None
        #: regression target standardization {"shift": mean, "scale": std} (per column
        #: for multi-output targets), or None: targets are used as they are
        self.target: dict[str, Any] | None = None

    # ----------------------------------------------------------------- fitting
    def fit(self, X: np.ndarray) -> Preprocessor:
        """Learn every statistic from the training features `X` (and nothing else)."""
        X = np.asarray(X)
        self.input_shape = tuple(X.shape[1:])
        if X.ndim == 1 and (X.dtype == object or X.dtype.kind in "US"):
            return self._fit_text(X)
        self.kind = "tabular" if X.ndim == 2 else "array"
        flat = X.reshape(len(X), -1)
        names = self.column_names or [f"x{i}" for i in range(flat.shape[1])]
        kinds = self.column_kinds or ["numeric"] * flat.shape[1]
        if len(names) != flat.shape[1] or len(kinds) != flat.shape[1]:
            names = [f"x{i}" for i in range(flat.shape[1])]
            kinds = ["numeric"] * flat.shape[1]
        self.column_names, self.column_kinds = names, kinds
        self.config = self._resolved_config()
        self._fit_columns(flat)
        return self

    def _resolved_config(self) -> PreprocessingConfig:
        """The config with `auto` imputation decided (saved so a run states what it did)."""
        cfg = self.config
        user_table = self.kind == "tabular" and self.from_table
        impute = cfg.impute if cfg.impute != "auto" else ("median" if user_table else "none")
        indicator = cfg.add_indicator
        if indicator == "auto":
            indicator = impute != "none" and user_table
        return cfg.model_copy(update={"impute": impute, "add_indicator": indicator})

    @property
    def onehot(self) -> bool:
        """Categoricals become one-hot columns (`onehot`, or `auto` with an <other> column)."""
        return self.config.encode in ("onehot", "auto")

    def imputation_notes(self) -> list[str]:
        """What was filled in, per numeric column that had missing training values."""
        p, names = self.p, self.column_names or []
        if self.kind != "tabular" or p.get("fill") is None or not p.get("indicator"):
            return []
        how = self.config.impute
        notes = []
        for j in p["indicator"]:
            col = p["numeric"][j]
            notes.append(
                f"{names[col]}: missing values filled with the training {how} "
                f"({p['fill'][j]:.4g}); indicator column {names[col]}_missing added"
            )
        return notes

    def fit_target(self, y: np.ndarray, regression: bool) -> Preprocessor:
        """Learn the target standardization from the training targets `y` (regression only;
        `target_scale: auto` is standard for regression; a constant target keeps scale 1)."""
        mode = self.config.target_scale
        if not regression or mode == "none" or len(y) == 0:
            self.target = None
            return self
        y = np.asarray(y, dtype=np.float64)
        mean, std = y.mean(axis=0), y.std(axis=0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self.target = {"shift": mean.tolist(), "scale": std.tolist()}
        return self

    @property
    def target_stats(self) -> tuple[Any, Any]:
        """(shift, scale) with `original = scaled * scale + shift`; (0.0, 1.0) when none."""
        if self.target is None:
            return 0.0, 1.0
        return self.target["shift"], self.target["scale"]

    def scale_target(self, y: np.ndarray) -> np.ndarray:
        """Targets in original units → the scaled units the model trains on."""
        if self.target is None:
            return y
        shift, scale = self.target_stats
        out = (np.asarray(y, dtype=np.float64) - np.asarray(shift)) / np.asarray(scale)
        return out.astype(np.float32)

    def _scale_mode(self) -> str:
        mode = self.config.scale
        if mode == "auto":
            # Tables from files have columns in unrelated units; images and the built-in
            # arrays are already on a common scale and keep their values.
            return "standard" if self.kind == "tabular" and self.from_table else "none"
        return mode

    def _fit_columns(self, flat: np.ndarray) -> None:
        """Fit imputation, scaling, encoding and PCA of a table (or flattened array)."""
        cfg = self.config
        num = [i for i, k in enumerate(self.column_kinds) if k == "numeric"]
        cat = [i for i, k in enumerate(self.column_kinds) if k == "categorical"]
        numeric = flat[:, num].astype(np.float64) if num else np.zeros((len(flat), 0))
        if cfg.impute == "none" and num:
            self._refuse_missing(numeric, num)
        scale = self._scale_mode()
        if not cat and scale == "none" and cfg.impute == "none" and cfg.pca is None:
            # nothing to learn (e.g. MNIST pixels as they are): skip the sklearn round trip
            self.p = {**_EMPTY_PARAMS, "numeric": num, "categorical": [], "identity": True}
            return
        ct = _column_transformer(cfg, num, cat, scale)
        out = ct.fit_transform(_as_sklearn_input(flat, num, cat))
        self._sklearn = ct  # kept in memory only, for the parity test
        self.p = {**_EMPTY_PARAMS, "numeric": num, "categorical": cat}
        self.p.update(_fitted_params(ct, cfg, num, cat))
        n_index = len(cat) if cfg.encode == "index" else 0
        if cfg.pca is not None:
            self.p.update(_fit_pca(cfg.pca, out[:, : out.shape[1] - n_index]))

    def _refuse_missing(self, numeric: np.ndarray, num: list[int]) -> None:
        bad = np.isnan(numeric).any(axis=0)
        if bad.any():
            j = int(np.argmax(bad))
            n_bad = int(np.isnan(numeric[:, j]).sum())
            raise DataError(
                f"column '{self.column_names[num[j]]}' has {n_bad} missing values in the "
                "training split; set data.preprocessing.impute to mean, median, "
                "most_frequent or constant"
            )

    def _fit_text(self, texts: np.ndarray) -> Preprocessor:
        self.kind = "text"
        t = self.config.text
        tokens = [tokenize(str(s), t.lowercase, t.tokenizer) for s in texts]
        self.vocab = Vocabulary.build(tokens, t.min_freq, t.max_size)
        return self

    # ------------------------------------------------------------- transforming
    @property
    def output_names(self) -> list[str] | None:
        """Names of the output columns (tables without PCA), else None."""
        if self.kind != "tabular" or self.p.get("pca_components") is not None:
            return None
        names = [self.column_names[i] for i in self.p["numeric"]]
        names += [f"{self.column_names[self.p['numeric'][j]]}_missing" for j in self.p["indicator"]]
        cats = [self.column_names[i] for i in self.p["categorical"]]
        if self.onehot:
            others = self.p.get("other") or [False] * len(cats)
            for name, values, other in zip(cats, self.p["categories"], others, strict=True):
                names += [f"{name}={v}" for v in values]
                names += [f"{name}={OTHER_CATEGORY}"] if other else []
        else:
            names += cats
        return names

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the learned transforms; float32 (int64 for text) out."""
        if self.kind is None:
            return np.asarray(X, dtype=np.float32)
        X = np.asarray(X)
        if self.kind == "text":
            t = self.config.text
            assert self.vocab is not None
            tokens = [tokenize(str(s), t.lowercase, t.tokenizer) for s in X.reshape(-1)]
            return self.vocab.encode(tokens, t.max_len)
        if tuple(X.shape[1:]) != tuple(self.input_shape or ()):
            raise DataError(
                f"input has shape {tuple(X.shape[1:])} per row; the run was trained on "
                f"{tuple(self.input_shape or ())}"
            )
        p = self.p
        if p.get("identity"):
            if X.dtype.kind not in "fiub":
                raise DataError("input holds non-numeric values; the run was trained on numbers")
            return X.astype(np.float32, copy=False)
        flat = X.reshape(len(X), -1)
        num, cat = p["numeric"], p["categorical"]
        blocks = []
        if num:
            z = flat[:, num].astype(np.float64)
            missing = np.isnan(z)
            if p["fill"] is not None:
                z = np.where(missing, np.asarray(p["fill"]), z)
            elif missing.any():
                j = int(np.argmax(missing.any(axis=0)))
                raise DataError(
                    f"column '{self.column_names[num[j]]}' has missing values and the run "
                    "has no imputer; fill them or retrain with data.preprocessing.impute"
                )
            if p["shift"] is not None:
                z = (z - np.asarray(p["shift"])) / np.asarray(p["scale"])
            elif p.get("quantiles") is not None:
                z = quantile_normal(z, p["quantiles"], p["references"])
            blocks.append(z)
            if p["indicator"]:
                blocks.append(missing[:, p["indicator"]].astype(np.float64))
        index_block = None
        if cat:
            raw = flat[:, cat]
            cols = []
            for j, values in enumerate(p["categories"]):
                col = raw[:, j]
                miss = np.fromiter((_is_missing_cell(v) for v in col), bool, len(col))
                strs = np.where(miss, "", col.astype(str))
                if p["cat_fill"] is not None:
                    strs = np.where(miss, p["cat_fill"][j], strs)
                elif self.onehot:
                    strs = np.where(miss, MISSING_CATEGORY, strs)
                lookup = {v: i for i, v in enumerate(values)}
                codes = np.fromiter((lookup.get(s, -1) for s in strs), np.int64, len(strs))
                if self.config.encode == "index" and p["cat_fill"] is None:
                    codes[miss] = -1
                cols.append(codes)
            if self.onehot:
                others = p.get("other") or [False] * len(cols)
                for codes, values, other in zip(cols, p["categories"], others, strict=True):
                    width = len(values) + int(bool(other))
                    if other:  # unknown and rare values share the last column
                        codes = np.where(codes < 0, len(values), codes)
                    onehot = np.zeros((len(codes), width))
                    known = codes >= 0
                    onehot[np.nonzero(known)[0], codes[known]] = 1.0
                    blocks.append(onehot)
            else:
                index_block = np.stack(cols, axis=1) + 1  # 0 = unknown or missing
        dense = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(flat), 0))
        if p["pca_components"] is not None:
            dense = (dense - np.asarray(p["pca_mean"])) @ np.asarray(p["pca_components"]).T
        elif self.kind == "array":
            return dense.reshape(X.shape).astype(np.float32)
        if index_block is not None:
            dense = np.concatenate([dense, index_block.astype(np.float64)], axis=1)
        return dense.astype(np.float32)

    def unseen_categories(self, X: np.ndarray) -> dict[str, tuple[int, str]]:
        """Per categorical column, the rows of raw `X` holding a category never fitted.

        Returns {column name: (row count, first unseen value)} for the columns that have
        any; `transform` encodes those cells as unknown (all-zero one-hot, index 0).
        Missing cells are not counted: they are imputed or encoded as missing.
        """
        cat = self.p.get("categorical") or []
        if not cat or self.kind == "text":
            return {}
        flat = np.asarray(X, dtype=object).reshape(len(X), -1)
        out: dict[str, tuple[int, str]] = {}
        rare = self.p.get("infrequent") or [[] for _ in cat]
        for j, values, seen in zip(cat, self.p["categories"], rare, strict=True):
            known = set(values) | set(seen)
            unseen = [str(v) for v in flat[:, j] if not _is_missing_cell(v) and str(v) not in known]
            if unseen:
                name = self.column_names[j] if self.column_names else f"x{j}"
                out[name] = (len(unseen), unseen[0])
        return out

    def features(self) -> dict[str, Any]:
        """Facts architectures need (TaskInfo.features): vocabulary or column layout."""
        if self.kind == "text":
            assert self.vocab is not None
            return {
                "kind": "text",
                "vocab_size": len(self.vocab),
                "pad_index": PAD_INDEX,
                "max_len": self.config.text.max_len,
            }
        if self.kind != "tabular":
            return {}
        cats = [self.column_names[i] for i in self.p["categorical"]]
        index = self.config.encode == "index" and bool(cats)
        n_out = self.output_dim
        pca = self.p.get("pca_components") is not None
        return {
            "kind": "tabular",
            "numeric": n_out - (len(cats) if index else 0),
            #: the leading scaled numeric columns (before indicators and one-hot ones)
            "continuous": 0 if pca else len(self.p["numeric"]),
            "cardinalities": [len(v) + 1 for v in self.p["categories"]] if index else [],
            "categorical_names": cats if index else [],
        }

    @property
    def output_dim(self) -> int:
        """Number of output features of a table (after encoding and PCA)."""
        p = self.p
        if p.get("pca_components") is not None:
            dense = len(p["pca_components"])
        else:
            dense = len(p["numeric"]) + len(p["indicator"])
            if self.onehot:
                dense += sum(len(v) for v in p["categories"])
                dense += sum(map(bool, p.get("other") or []))
        index = len(p["categorical"]) if self.config.encode == "index" else 0
        return dense + index

    # ------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Fitted parameters as JSON-serializable data (lists, numbers, strings)."""
        return {
            "version": 2,
            "config": self.config.model_dump(),
            "kind": self.kind,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "column_names": self.column_names,
            "column_kinds": self.column_kinds,
            "from_table": self.from_table,
            "params": self.p,
            "vocab": self.vocab.state_dict() if self.vocab is not None else None,
            "target": self.target,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from `state_dict()` output (no code executed)."""
        if state.get("version") != 2:  # the foundation's scale-only format
            legacy = cls(PreprocessingConfig(scale=state["config"].get("scale", "none")))
            if state.get("shift") is not None:
                legacy.kind = "array"
                legacy.p = {
                    "numeric": list(range(len(state["shift"]))),
                    "categorical": [],
                    "fill": None,
                    "shift": state["shift"],
                    "scale": state["scale"],
                    "indicator": [],
                    "categories": [],
                    "cat_fill": None,
                    "pca_components": None,
                }
            return legacy
        config = dict(state["config"])
        config.setdefault("target_scale", "none")  # saved before targets were scaled
        if isinstance(config.get("text"), dict):
            # saved before the tokenizer was a choice: those vocabularies were built on words
            config["text"] = {"tokenizer": "words", **config["text"]}
        pre = cls(PreprocessingConfig(**config), state["column_names"], state["column_kinds"])
        pre.kind = state["kind"]
        pre.from_table = bool(state.get("from_table"))
        pre.input_shape = tuple(state["input_shape"]) if state["input_shape"] is not None else None
        pre.p = state["params"]
        if state.get("vocab") is not None:
            pre.vocab = Vocabulary.from_state_dict(state["vocab"])
        # saved before target scaling existed: those runs trained on the targets as they are
        pre.target = state.get("target")
        return pre


def _as_sklearn_input(flat: np.ndarray, num: list[int], cat: list[int]) -> np.ndarray:
    """Object array with NaN for every missing cell (what scikit-learn treats as missing)."""
    if not cat:
        return flat.astype(np.float64)
    out = np.empty(flat.shape, dtype=object)
    if num:
        out[:, num] = flat[:, num].astype(np.float64)
    for j in cat:
        col = flat[:, j]
        out[:, j] = [np.nan if _is_missing_cell(v) else str(v) for v in col]
    return out


#: a quantile-transformed value maps into [BOUND, 1 - BOUND] before the normal inverse CDF
QUANTILE_BOUND = 1e-7


def quantile_normal(z: np.ndarray, quantiles: list, references: list) -> np.ndarray:
    """Each column through its training quantiles to a standard normal score.

    What scikit-learn's `QuantileTransformer(output_distribution="normal")` computes:
    the value's position among the training quantiles (interpolated from both sides so
    that tied quantiles map to their middle), clipped at the training range, then the
    normal inverse CDF, clipped to ±5.2 (the score of 1e-7).
    """
    from scipy.stats import norm

    refs = np.asarray(references, dtype=np.float64)
    out = np.empty_like(z, dtype=np.float64)
    for j, q in enumerate(np.asarray(quantiles, dtype=np.float64)):
        x = z[:, j]
        up = np.interp(x, q, refs)
        down = -np.interp(-x, -q[::-1], -refs[::-1])
        u = 0.5 * (up + down)
        u[x - QUANTILE_BOUND < q[0]] = 0.0
        u[x + QUANTILE_BOUND > q[-1]] = 1.0
        out[:, j] = u
    lo = norm.ppf(QUANTILE_BOUND - np.spacing(1))
    hi = norm.ppf(1 - (QUANTILE_BOUND - np.spacing(1)))
    return np.clip(norm.ppf(out), lo, hi)


def _scaler_params(scaler: Any) -> tuple[np.ndarray, np.ndarray]:
    """A fitted scikit-learn scaler as (x - shift) / scale."""
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    if isinstance(scaler, StandardScaler):
        return scaler.mean_, scaler.scale_
    if isinstance(scaler, RobustScaler):
        return scaler.center_, scaler.scale_
    if isinstance(scaler, MinMaxScaler):
        return -scaler.min_ / scaler.scale_, 1.0 / scaler.scale_
    raise TypeError(f"unsupported scaler {type(scaler).__name__}")


#: The fitted parameters of a table preprocessor before anything is fitted.
_EMPTY_PARAMS: dict[str, Any] = {
    "fill": None,
    "shift": None,
    "scale": None,
    "indicator": [],
    "categories": [],
    "cat_fill": None,
    "pca_mean": None,
    "pca_components": None,
}


def _column_transformer(cfg: Any, num: list[int], cat: list[int], scale: str) -> Any:
    """scikit-learn's ColumnTransformer for the numeric and categorical columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    parts: list[tuple[str, Any, list[int]]] = []
    num_steps: list[tuple[str, Any]] = []
    if cfg.impute != "none":
        imputer = SimpleImputer(
            strategy=cfg.impute, fill_value=cfg.fill_value, keep_empty_features=True
        )
        num_steps.append(("impute", imputer))
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}.get(scale)
    if scaler is not None:
        num_steps.append(("scale", scaler()))
    if scale == "quantile":
        num_steps.append(("scale", _quantile_transformer()))
    if num:
        parts.append(("num", Pipeline(num_steps) if num_steps else "passthrough", num))
    if num and cfg.add_indicator:
        parts.append(("ind", MissingIndicator(features="missing-only"), num))
    if cat:
        parts.append(("cat", _categorical_pipeline(cfg), cat))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _quantile_transformer() -> Any:
    """Quantiles of each numeric column → a normal score (fitted on up to 1,000 points)."""
    from sklearn.preprocessing import QuantileTransformer

    class SizedQuantileTransformer(QuantileTransformer):
        """At most one quantile per training row (scikit-learn warns otherwise)."""

        def fit(self, X: Any, y: Any = None) -> Any:
            self.n_quantiles = max(2, min(1000, len(X)))
            return super().fit(X, y)

    return SizedQuantileTransformer(
        output_distribution="normal", subsample=10**9, random_state=0
    )


def _categorical_pipeline(cfg: Any) -> Any:
    """Impute (a category of its own, or the most frequent) and encode (one-hot or index)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    strategy = "most_frequent" if cfg.categorical_missing == "most_frequent" else "constant"
    imputer = SimpleImputer(strategy=strategy, fill_value=MISSING_CATEGORY, missing_values=np.nan)
    if cfg.encode in ("onehot", "auto"):
        rare = {"max_categories": cfg.onehot_max} if cfg.encode == "auto" else {}
        unknown = "infrequent_if_exist" if rare else "ignore"
        enc = OneHotEncoder(
            handle_unknown=unknown, sparse_output=False, dtype=np.float64, **rare
        )
        return Pipeline([("impute", imputer), ("encode", enc)])
    enc = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=-1,
        encoded_missing_value=-1,
        dtype=np.float64,
    )
    steps = [("encode", enc)]
    if cfg.categorical_missing == "most_frequent":
        steps.insert(0, ("impute", imputer))
    return Pipeline(steps)


def _fitted_params(ct: Any, cfg: Any, num: list[int], cat: list[int]) -> dict[str, Any]:
    """The fitted statistics of `ct` as plain numbers (what preprocess.json holds)."""
    p: dict[str, Any] = {}
    pipe = ct.named_transformers_["num"] if num else None
    if hasattr(pipe, "named_steps"):  # a Pipeline, not the passthrough of raw columns
        if "impute" in pipe.named_steps:
            p["fill"] = pipe.named_steps["impute"].statistics_.astype(float).tolist()
        scaler = pipe.named_steps.get("scale")
        if scaler is not None and hasattr(scaler, "quantiles_"):
            p["quantiles"] = scaler.quantiles_.T.tolist()
            p["references"] = scaler.references_.tolist()
        elif scaler is not None:
            shift, div = _scaler_params(scaler)
            p["shift"], p["scale"] = shift.tolist(), div.tolist()
    if num and cfg.add_indicator:
        p["indicator"] = ct.named_transformers_["ind"].features_.tolist()
    if cat:
        pipe = ct.named_transformers_["cat"]
        enc = pipe.named_steps["encode"]
        rare = getattr(enc, "infrequent_categories_", None) or [None] * len(enc.categories_)
        rare = [set() if r is None else {str(v) for v in r} for r in rare]
        p["categories"] = [
            [str(c) for c in cats if str(c) not in r]
            for cats, r in zip(enc.categories_, rare, strict=True)
        ]
        if cfg.encode == "auto":
            p["other"] = [bool(r) for r in rare]
            p["infrequent"] = [sorted(r) for r in rare]
        if "impute" in pipe.named_steps:
            p["cat_fill"] = [str(v) for v in pipe.named_steps["impute"].statistics_]
    return p


def _fit_pca(n_components: int | float, dense: np.ndarray) -> dict[str, Any]:
    """PCA on the encoded training features: its mean, components and variance kept."""
    from sklearn.decomposition import PCA

    n_feats = dense.shape[1]
    if isinstance(n_components, int) and n_components > min(n_feats, len(dense)):
        raise DataError(
            f"data.preprocessing.pca: {n_components} components asked but the data has only "
            f"{n_feats} features ({len(dense)} training rows); ask for fewer"
        )
    pca = PCA(n_components=n_components, svd_solver="full", random_state=0).fit(dense)
    return {
        "pca_mean": pca.mean_.tolist(),
        "pca_components": pca.components_.tolist(),
        "pca_explained": float(pca.explained_variance_ratio_.sum()),
    }
