"""What a running drain may still send: a person's `queue cancel` wins over a plan made earlier.

A drain reads the journal once per pass and then works from that picture for minutes. A person
may cancel an entry meanwhile (`cmdctl queue cancel`, which decides under the journal lock and
refuses entries that are already RUNNING). To make the two agree, every append the drain makes
goes through `Claims.append`, which under the same lock first reads what others appended since
the drain's last look and notes every entry cancelled there, then appends the drain's events
minus any for those entries. The engine writes an entry's `started` durably before sending it
and drops it if the entry turned out withdrawn, so for each entry exactly one of these holds:

* the cancel came first: the `started` is not written and the command is never sent;
* the `started` came first: the cancel finds the entry RUNNING and refuses it, saying why.

Either way nothing is appended for an entry after its `cancelled` event. A `retried` after
the `cancelled` (both while the drain ran) makes the entry the drain's again.

`journal compact` may run meanwhile and archive the cancelled entry, cancel and all: the file is
then replaced and read whole, and an entry the drain writes about, then or later in the pass,
that was not in it was finished by someone else (only a cancel finishes an entry a drain
holds), so it is withdrawn too.

`Claims.append` runs in the recorder's worker thread; `seen` must only be called while the
recorder is idle (between passes, after a flush).
"""

from __future__ import annotations

from collections.abc import Sequence

from cmdctl.journal import events as ev
from cmdctl.journal import heads
from cmdctl.journal.events import Event, EventDecodeError
from cmdctl.journal.framing import Mark, Scan
from cmdctl.journal.store import AppendReport, Journal

_CANCELLED = ev.CANCELLED.encode()
_RETRIED = ev.RETRIED.encode()


class Claims:
    """The drain's appends, checked against cancellations made since it read the journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.withdrawn: set[str] = set()  # cancelled since the drain's last read: do not send
        self._mark: Mark | None = None
        #: ids in the journal at the last whole read since the drain's read (None: none yet).
        #: An entry of the drain's that is not among them was archived: finished by someone.
        self._present: set[str] | None = None

    def seen(self, scan: Scan) -> None:
        """The drain has (re)read the journal up to `scan`'s end: earlier cancels are folded."""
        self._mark = scan.mark()
        self.withdrawn.clear()
        self._present = None

    def append(self, events: Sequence[Event]) -> AppendReport:
        """Append `events`, without those of entries cancelled since the last look."""
        report, self._mark = self.journal.append_since(
            self._mark, lambda lines, whole: self._keep(lines, whole, events)
        )
        return report

    def _keep(
        self, lines: Sequence[bytes], whole: bool, events: Sequence[Event]
    ) -> Sequence[Event]:
        """`append_since`'s decision: learn of new cancels, keep the events still ours."""
        present: set[str] = set()  # kept only when `lines` are the whole file
        if whole:
            self._present = present
        for line in lines:
            if not whole and _CANCELLED not in line and _RETRIED not in line:
                continue  # the common case, cheaply; `_head` reads the type exactly
            kind, entry_id = _head(line)
            present.add(entry_id)
            if kind == ev.CANCELLED:
                self.withdrawn.add(entry_id)
            elif kind == ev.RETRIED:
                self.withdrawn.discard(entry_id)
        known = self._present
        if known is not None:  # the file was replaced: entries archived since are done with
            known.update(e.id for e in events if e.type == ev.QUEUED)  # ours, not archived
            self.withdrawn.update(e.id for e in events if e.id not in known)
        if not self.withdrawn:
            return events
        return [e for e in events if e.id not in self.withdrawn]


def _head(line: bytes) -> tuple[str, str]:
    """(type, id) of a committed line; ("", "") if it cannot be read (verify reports it)."""
    head = heads.peek(line)
    if head is not None:
        return head[0].decode(), head[1]
    try:
        event = ev.decode(line)
    except EventDecodeError:
        return "", ""
    return event.type, event.id
