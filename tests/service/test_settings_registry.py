"""The environment settings and the registry's ids and recent-predictions budget, as plain calls."""

from __future__ import annotations

import logging

import pytest

from nbcog.core.prediction import Prediction, Status
from nbcog.service import (
    DEFAULT_RECENT_BYTES,
    RECENT_LIMIT,
    history_capacity_from_env,
    recent_bytes_from_env,
    setup_timeout_from_env,
)
from nbcog.service.registry import Registry


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+5", 5), ("0", 0), (" 5", 1024), ("5_0", 1024), ("-1", 1024), (str(1 << 64), 1024)],
)
def test_history_capacity_is_parsed_like_a_rust_usize(monkeypatch, caplog, raw, expected):
    """Digits with an optional '+', below 2**64; anything else is 1024 and a warning."""
    monkeypatch.setenv("COG_STREAM_HISTORY_CAPACITY", raw)
    with caplog.at_level(logging.WARNING, "nbcog"):
        assert history_capacity_from_env() == expected
    assert bool(caplog.records) == (expected == 1024)


def test_recent_bytes_and_setup_timeout_fall_back_on_bad_values(monkeypatch):
    """A bad NBCOG_RECENT_BYTES is the 64 MiB default; COG_SETUP_TIMEOUT <= 0 or junk is none."""
    monkeypatch.setenv("NBCOG_RECENT_BYTES", "12k")
    assert recent_bytes_from_env() == DEFAULT_RECENT_BYTES
    monkeypatch.setenv("NBCOG_RECENT_BYTES", "4096")
    assert recent_bytes_from_env() == 4096
    for raw, expected in (("3", 3.0), ("0", None), ("-2", None), ("1.5", None), ("", None)):
        monkeypatch.setenv("COG_SETUP_TIMEOUT", raw)
        assert setup_timeout_from_env() == expected


def finished(prediction_id: str, text: str = "") -> Prediction:
    """A real prediction of input ``text`` (its size is what it retains) that succeeded."""
    prediction = Prediction(prediction_id, created_at=0.0, input={"text": text})
    prediction.finish(Status.SUCCEEDED, completed_at=1.0)
    return prediction


def test_ids_strictly_increase():
    """Ids made in the same nanosecond still differ, in order."""
    registry = Registry(recent_bytes=1 << 20)
    ids = [int(registry.new_id().removeprefix("pred_"), 16) for _ in range(1000)]
    assert ids == sorted(set(ids))


def test_the_byte_budget_evicts_the_oldest_first():
    """Predictions are kept newest first; past the byte budget the oldest leave."""
    size = finished("probe", "x" * 1000).retained_bytes()
    registry = Registry(recent_bytes=size * 3)
    for name in ("a", "b", "c", "d"):
        registry.remember(finished(name, "x" * 1000))
    assert [p.id for p in registry.recent] == ["d", "c", "b"]
    assert registry.recent_retained_bytes == size * 3


def test_one_prediction_over_the_whole_budget_is_not_kept():
    """Keeping it would evict everything else and still not fit."""
    registry = Registry(recent_bytes=5_000)
    registry.remember(finished("small"))
    registry.remember(finished("huge", "x" * 10_000))
    assert [p.id for p in registry.recent] == ["small"]


def test_the_count_limit_evicts_the_oldest_first():
    """At most RECENT_LIMIT are kept, whatever the byte budget."""
    registry = Registry(recent_bytes=1 << 30)
    for i in range(RECENT_LIMIT + 2):
        registry.remember(finished(f"p{i}"))
    kept = [p.id for p in registry.recent]
    assert len(kept) == RECENT_LIMIT
    assert (kept[0], kept[-1]) == (f"p{RECENT_LIMIT + 1}", "p2")
