"""The worker's ledger of who drives it (worker/callers.py): calls from two callers overlapping are logged and
counted; one caller's own back-to-back or pipelined calls are not."""

from __future__ import annotations

import logging

import pytest

from ablerefusal.worker.callers import CallerLedger


def test_one_callers_pipelined_calls_are_no_overlap(caplog: pytest.LogCaptureFixture) -> None:
    ledger = CallerLedger()
    with caplog.at_level(logging.INFO, logger="ablerefusal.worker.callers"):
        assert ledger.arrive("gw-a") == []
        ledger.enter("gw-a", "c1", ["j1"])
        assert ledger.arrive("gw-a") == []  # its next call while c1's images are encoded
        ledger.enter("gw-a", "c2", ["j2", "j3"])
        ledger.leave("gw-a", "c1")
        ledger.leave("gw-a", "c2")
        assert ledger.arrive("gw-b") == []  # another gateway after the first is done: a hand-over
    assert ledger.overlaps == 0
    assert "call c2 from caller gw-a: jobs j2,j3" in caplog.text
    assert "two callers" not in caplog.text


def test_a_call_from_another_caller_while_one_streams_is_an_overlap(caplog: pytest.LogCaptureFixture) -> None:
    ledger = CallerLedger()
    ledger.arrive("gw-a")
    ledger.enter("gw-a", "c1", ["j1"])
    with caplog.at_level(logging.WARNING, logger="ablerefusal.worker.callers"):
        assert ledger.arrive("gw-b") == ["gw-a"]
    ledger.refused("gw-b", "busy")  # refused or not, two gateways were sending it calls
    assert ledger.overlaps == 1
    assert "two callers at once: gw-b called while gw-a still has a call in flight" in caplog.text
    ledger.leave("gw-a", "c1")
    assert ledger.arrive("gw-b") == [] and ledger.overlaps == 1
