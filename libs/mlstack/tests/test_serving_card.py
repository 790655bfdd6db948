"""Serving cards: the card's values for what was not set explicitly, explicit values listed as
overrides, card values validated as settings are, and a card the service cannot run refused."""

import json

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlstack.serving_card import apply_card, params_hash, read_card, write_card


class Knobs(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KNOBS_")
    k: int = Field(5, ge=1, le=20)
    floor: float = 0.5
    label: str = "x"


def card(tmp_path, **config):
    path = tmp_path / "serving.json"
    write_card(path, project="p", config=config, params={"k": 1}, metrics={"recall": 0.9})
    return path


def test_the_card_fills_what_was_not_set_and_explicit_values_win(tmp_path, monkeypatch):
    path = card(tmp_path, k=9, floor=0.25)
    monkeypatch.setenv("KNOBS_FLOOR", "0.75")
    settings, shown = apply_card(Knobs(), path)
    assert (settings.k, settings.floor, settings.label) == (9, 0.75, "x")
    assert shown["overrides"] == {"floor": 0.75} and shown["params_hash"] == params_hash({"k": 1})
    assert shown["metrics"] == {"recall": 0.9} and shown["card"] == str(path)


def test_no_card_keeps_the_settings(tmp_path):
    settings, shown = apply_card(Knobs(), tmp_path / "absent.json")
    assert settings.k == 5 and shown["card"] is None
    assert apply_card(Knobs(), None)[1] == {"card": None}


@pytest.mark.parametrize(
    ("config", "error"), [({"k": 50}, "less than or equal"), ({"depth": 3}, "does not have: depth")]
)
def test_a_card_the_service_cannot_run_is_refused(tmp_path, config, error):
    with pytest.raises(ValueError, match=error):
        apply_card(Knobs(), card(tmp_path, **config))


def test_another_card_version_is_refused(tmp_path):
    path = card(tmp_path, k=3)
    path.write_text(json.dumps({**json.loads(path.read_text()), "card_version": 99}))
    with pytest.raises(ValueError, match="card_version"):
        read_card(path)
