"""The engine's lean due selection picks exactly what `Ledger.due` picks, in the same order."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.model import Priority
from cmdctl.drain.due import select
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal

from .conftest import make_entry

NOW = time.time()

entry_specs = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # device
        st.sampled_from(list(Priority)),
        st.sampled_from([-60.0, 0.0, 30.0]),  # not_before offset
        st.sampled_from([None, -1.0, 600.0]),  # expires offset
        st.sampled_from(["B1", "B2"]),
        st.booleans(),  # rescheduled once (two records: the slow path)
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(entry_specs)
def test_select_matches_the_ledger(specs: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp))
        entries = [
            make_entry(device, "switch", "x", {"state": True}, priority=prio, batch=batch,
                       not_before=NOW + nb, expires=None if ex is None else NOW + ex)
            for device, prio, nb, ex, batch, _ in specs
        ]
        events = [ev.queued(e) for e in entries]
        events += [
            ev.rescheduled(e.id, NOW, not_before=e.not_before, attempts=1)
            for e, spec in zip(entries, specs, strict=True) if spec[5]
        ]
        if events:
            journal.append(events)
        ledger = journal.ledger()
        work = select(ledger, NOW)
        assert [e.id for e in work.due] == [e.id for e in ledger.due(NOW)]
        assert sorted(e.id for e in work.expired) == sorted(e.id for e in ledger.expired(NOW))
        later = [e.not_before for e in entries
                 if e.not_before > NOW and (e.expires is None or e.expires > NOW)]
        assert work.next_due == (min(later) if later else None)
        only = select(journal.ledger(), NOW, only={"a"}, batch="B1")
        assert [e.id for e in only.due] == [
            e.id for e in ledger.due(NOW) if e.device == "a" and e.batch == "B1"
        ]
