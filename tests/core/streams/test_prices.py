"""The price table: packaged figures, a dated model name, the user's override, unknown models."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.core.errors import InputError
from corral.core.streams import load_prices


def test_a_dated_or_prefixed_model_takes_its_family_s_price() -> None:
    table = load_prices(None)
    assert table.price("claude-sonnet-4-5-20250929") == table.price("claude-sonnet-4-5")
    assert table.price("openai/gpt-5-mini") == table.models["gpt-5-mini"]
    assert table.cost("gpt-5", 1_000_000, 0, 0) == pytest.approx(1.25)


def test_an_unknown_model_has_no_cost_not_a_guess() -> None:
    assert load_prices(None).cost("scripted-model", 1000, 10, 0) is None


def test_cached_input_is_priced_as_cached(tmp_path: Path) -> None:
    table = load_prices(None)
    fresh = table.cost("claude-sonnet-4-5", 1_000_000, 0, 0)
    cached = table.cost("claude-sonnet-4-5", 1_000_000, 0, 1_000_000)
    assert fresh is not None
    assert cached is not None
    assert cached < fresh


def test_the_repository_s_prices_add_and_override(tmp_path: Path) -> None:
    (tmp_path / ".corral").mkdir()
    (tmp_path / ".corral" / "prices.toml").write_text(
        '[models."scripted-model"]\ninput = 1.0\noutput = 2.0\n'
        '[models."gpt-5"]\ninput = 100.0\noutput = 100.0\n'
    )
    table = load_prices(tmp_path)
    assert table.cost("scripted-model", 1_000_000, 1_000_000, 0) == pytest.approx(3.0)
    assert table.cost("gpt-5", 1_000_000, 0, 0) == pytest.approx(100.0)
    assert table.price("claude-sonnet-4-5") is not None


def test_a_broken_price_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".corral").mkdir()
    (tmp_path / ".corral" / "prices.toml").write_text('[models."m"]\ninput = -1\noutput = 1\n')
    with pytest.raises(InputError, match=r"prices\.toml: models\.m\.input"):
        load_prices(tmp_path)
