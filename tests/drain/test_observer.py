"""What observers are told (issue 12: results, not guesses; issue 13: lines that are true)."""

from __future__ import annotations

from collections.abc import Sequence

from cmdctl.core.model import Entry, State
from cmdctl.drain import loops
from cmdctl.drain.observer import Finished
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.drain.totals import Tally
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet

from .conftest import addresses, make_entry, queue, tvs

ONE_TRY = RetryPolicy(tries=1, ambiguous_tries=1, initial=0.0, maximum=0.0, jitter=0.0)


class Collect:
    def __init__(self) -> None:
        self.done: list[Finished] = []

    def planned(self, entries: Sequence[Entry]) -> None:
        pass

    def step(self, device: str, text: str) -> None:
        pass

    def finished(self, done: Finished) -> None:
        self.done.append(done)

    def device_done(self, tally: Tally) -> None:
        pass


async def test_the_entry_after_an_outcome_is_what_the_journal_then_holds(
    journal: Journal,
) -> None:
    """`--log-file` wrote `"attempts":0,"started":null` for a confirmed command."""
    async with Fleet(tvs(1)) as fleet:
        entry = queue(journal, [make_entry(fleet.devices[0].name, "switch", "tv_power",
                                           {"state": True})])[0]
        seen = Collect()
        await loops.drain(journal, loops.lookup(addresses(fleet)), DrainOptions(),
                          observer=seen)
    (done,) = seen.done
    assert done.outcome == "confirmed" and done.duration is not None and done.duration > 0
    journal_says = journal.ledger().get(entry.id)
    assert done.after == journal_says
    assert (done.after.state, done.after.attempts) == (State.DONE, 1)
    assert done.after.started is not None


async def test_gave_up_after_n_attempts_and_the_entry_says_n(journal: Journal) -> None:
    """`gave up after 5 attempts` was shown beside `attempts: 4`."""
    async with Fleet(tvs(1)) as fleet:
        tv = fleet.devices[0]
        entry = queue(journal, [make_entry(tv.name, "switch", "tv_power", {"state": True},
                                           max_attempts=1)])[0]
        await tv.set_offline(True)
        seen = Collect()
        await loops.drain(journal, loops.lookup(addresses(fleet)),
                          DrainOptions(policy=ONE_TRY, connect_timeout=0.5), observer=seen)
    got = journal.ledger().get(entry.id)
    assert got.state is State.FAILED and got.attempts == 1
    assert (got.last_error or "").startswith("gave up after 1 attempt: ")
    assert seen.done[0].after == got
