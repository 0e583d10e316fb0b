"""`data.preprocessing` options of a recipe: what the preprocessor fits and applies.

They live with the data code that reads them; the recipe schema (config/schema.py)
embeds them as its `data.preprocessing` section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from trainlab.params import StrictModel


class TextConfig(StrictModel):
    """`data.preprocessing.text`: tokenizer and vocabulary (fitted on training text only).

    `tokenizer: contractions` splits English clitics off their word as Kim's (2014)
    clean_str does ("don't" → "do", "n't"); `words` keeps them whole (runs saved before
    the option existed were tokenized that way and still are).
    """

    tokenizer: Literal["words", "contractions"] = "contractions"
    lowercase: bool = True
    max_len: int = Field(64, gt=0)
    min_freq: int = Field(1, ge=1)
    max_size: int | None = Field(None, gt=0)


class PreprocessingConfig(StrictModel):
    """`data.preprocessing`: transforms fitted on the training split only.

    `scale: auto` standardizes tables read from files and leaves images, text and the
    built-in arrays as they are. `pca` is a number of components (int) or a fraction of
    explained variance (0 < float < 1).

    `impute: auto` fills missing numbers of a user's table with the training median and
    adds a 0/1 indicator column for each column that had missing values
    (`add_indicator: auto`); images and built-in arrays are not imputed (their missing
    values are refused). Missing categories are a category of their own.

    `encode: auto` one-hot encodes categorical columns, keeping at most `onehot_max`
    columns per categorical: the rarest values share one `<other>` column (and values
    never seen in training go there too). `onehot` keeps every value; `index` gives one
    integer per categorical for embedding models (wide_deep).

    `target_scale: auto` standardizes regression targets (mean and standard deviation of
    the training targets; `none` for classification): the model trains on scaled
    targets, so the losses (`train_loss`, `val_loss`) are in scaled units, while metrics
    (mae, rmse, r2) and predictions are in the targets' original units.
    """

    impute: Literal["auto", "none", "mean", "median", "most_frequent", "constant"] = "auto"
    fill_value: float = 0.0
    add_indicator: bool | Literal["auto"] = "auto"
    categorical_missing: Literal["category", "most_frequent"] = "category"
    scale: Literal["auto", "none", "standard", "minmax", "robust", "quantile"] = "auto"
    encode: Literal["auto", "onehot", "index"] = "auto"
    onehot_max: int = Field(20, ge=2)
    pca: int | float | None = None
    target_scale: Literal["auto", "none", "standard"] = "auto"
    text: TextConfig = Field(default_factory=TextConfig)

    @field_validator("pca")
    @classmethod
    def _check_pca(cls, value: int | float | None) -> int | float | None:
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer() and value >= 1:
            value = int(value)
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("pca must be a component count (int >= 1) or a fraction in (0, 1)")
        if isinstance(value, int) and value < 1:
            raise ValueError("pca must be a component count (int >= 1) or a fraction in (0, 1)")
        return value
