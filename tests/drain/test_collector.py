"""The collector's pace during passes: raised inside, the host's own thresholds back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Entry
from cmdctl.drain import collector, loops
from cmdctl.drain.observer import NullObserver
from cmdctl.drain.options import DrainOptions
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet

from .conftest import addresses, make_entry, queue, tvs


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_a_pass_collects_less_often_and_gives_the_thresholds_back() -> None:
    gc.set_threshold(700, 11, 12)
    with collector.paced():
        assert gc.get_threshold() == (collector.YOUNG, 11, 12)
    assert gc.get_threshold() == (700, 11, 12)


def test_overlapping_passes_restore_only_when_the_last_one_ends() -> None:
    gc.set_threshold(700, 10, 10)
    first, second = collector.paced(), collector.paced()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second still runs
    assert gc.get_threshold() == (collector.YOUNG, 10, 10)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("young", [0, 50_000])
def test_a_host_that_chose_its_own_pace_keeps_it(young: int) -> None:
    gc.set_threshold(young, 10, 10)
    with collector.paced():
        assert gc.get_threshold() == (young, 10, 10)
    assert gc.get_threshold() == (young, 10, 10)


def test_an_error_in_the_pass_still_restores() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), collector.paced():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


class _Seen(NullObserver):
    """An observer that notes the collector's thresholds while the pass plans its devices."""

    def __init__(self) -> None:
        self.during: list[tuple[int, int, int]] = []

    def planned(self, entries: Sequence[Entry]) -> None:
        self.during.append(gc.get_threshold())


async def test_a_drain_runs_its_pass_paced_and_gives_the_thresholds_back(
    journal: Journal,
) -> None:
    gc.set_threshold(700, 10, 10)
    seen = _Seen()
    async with Fleet(tvs(1)) as fleet:
        queue(journal, [make_entry("bar-tv-1", "switch", "tv_power", {"state": True})])
        totals = await loops.drain(journal, addresses(fleet).get, DrainOptions(),
                                   observer=seen)
    assert totals.exit_code() == ExitCode.OK
    assert seen.during == [(collector.YOUNG, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)
