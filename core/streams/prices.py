"""What tokens cost, for CLIs that count tokens but report no cost.

The packaged table (prices.toml beside this module) is read first; the repository's
`.corral/prices.toml` adds models or replaces the figures of the ones it names. A model in
neither has no price: its tokens are shown, its cost is not (never a guessed figure).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.core.errors import InputError

USER_PRICES = Path(".corral") / "prices.toml"
"""The user's table, relative to the repository's top."""
_PROVIDER_PREFIXES = ("anthropic/", "openai/", "google/", "gemini/", "models/")


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    """Input read from the provider's cache; the `input` price when not given."""


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelPrice] = Field(default_factory=dict)

    def price(self, model: str) -> ModelPrice | None:
        """The model's own price, else that of the longest known name it starts with."""
        name = model.strip().lower()
        for prefix in _PROVIDER_PREFIXES:
            name = name.removeprefix(prefix)
        if name in self.models:
            return self.models[name]
        known = [key for key in self.models if name.startswith(key)]
        return self.models[max(known, key=len)] if known else None

    def cost(self, model: str, tokens_in: int, tokens_out: int, cached: int) -> float | None:
        """USD for these tokens (`tokens_in` counts `cached` among them); None if unpriced."""
        price = self.price(model)
        if price is None:
            return None
        cached_price = price.input if price.cached_input is None else price.cached_input
        fresh = max(tokens_in - cached, 0)
        usd = (fresh * price.input + cached * cached_price + tokens_out * price.output) / 1e6
        return round(usd, 6)


def _read(text: str, where: str) -> PriceTable:
    try:
        return PriceTable.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML ({exc}); fix the syntax there") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"])
        raise InputError(
            f"{where}: {at}: {first['msg']}; write each model as "
            '[models."NAME"] with input, output (and cached_input) in USD per million tokens'
        ) from None


def packaged_prices() -> PriceTable:
    text = resources.files("corral.core.streams").joinpath("prices.toml").read_text("utf-8")
    return _read(text, "corral's prices.toml")


def load_prices(repo_top: Path | None) -> PriceTable:
    """The packaged table with the repository's `.corral/prices.toml` over it; raises
    InputError naming the user's file when it cannot be read."""
    table = packaged_prices()
    if repo_top is None:
        return table
    path = repo_top / USER_PRICES
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return table
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read ({exc}); fix or remove it") from None
    user = _read(text, str(path))
    return PriceTable(models={**table.models, **{k.lower(): v for k, v in user.models.items()}})
