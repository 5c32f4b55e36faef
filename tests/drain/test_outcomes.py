"""The outcome policy (`cmdctl.drain.outcomes`): what each way an attempt can end writes, and
the entry it leaves behind, for every caller (device jobs, failover, send, recovery)."""

from __future__ import annotations

from dataclasses import replace

from cmdctl.core.errors import DeliveryUnknown, DeviceRejected, DeviceUnavailable
from cmdctl.core.model import Entry, State
from cmdctl.drain import outcomes
from cmdctl.drain import totals as tot
from cmdctl.drain.retry import DEFAULT
from cmdctl.journal import events as ev

from .conftest import make_entry

NOW = 1_800_000_000.0


def tv(**changes: object) -> Entry:
    entry = make_entry("tv", "switch", "power", {"state": True}, not_before=NOW - 5)
    return replace(entry, state=State.RUNNING, **changes)  # type: ignore[arg-type]


def kinds(verdict: outcomes.Verdict) -> list[str]:
    return [e.type for e in verdict.events]


def test_done_records_the_measured_duration_and_where_it_ran() -> None:
    verdict = outcomes.done(tv(), NOW, status="confirmed", elapsed=0.123456, detail="ok",
                            ran_on="tv-b")
    assert (verdict.outcome, verdict.duration, kinds(verdict)) == (tot.CONFIRMED, 0.1235, [ev.DONE])
    after = verdict.after(tv())
    assert (after.state, after.outcome, after.ran_on) == (State.DONE, "confirmed", "tv-b")


def test_a_rejection_fails_at_once_with_its_kind() -> None:
    verdict = outcomes.rejected(tv(), NOW, DeviceRejected("tv", "no entity switch.power"))
    assert kinds(verdict) == [ev.FAILED] and verdict.outcome == tot.FAILED
    assert verdict.after(tv()).last_error == "tv: no entity switch.power"


def test_unreachable_with_attempts_left_is_rescheduled_with_backoff() -> None:
    verdict = outcomes.unreachable(tv(), NOW, DeviceUnavailable("tv", "refused"),
                                   requeue=True, policy=DEFAULT)
    assert kinds(verdict) == [ev.ATTEMPT_FAILED, ev.RESCHEDULED]
    after = verdict.after(tv())
    assert after.state is State.PENDING and after.attempts == 1
    first = DEFAULT.reschedule_initial
    assert NOW + first <= after.not_before <= NOW + 2 * first


def test_unreachable_out_of_attempts_fails_and_says_how_many() -> None:
    verdict = outcomes.unreachable(tv(attempts=2), NOW, DeviceUnavailable("tv", "refused"),
                                   requeue=True, policy=DEFAULT)
    after = verdict.after(tv(attempts=2))
    assert after.state is State.FAILED and verdict.outcome == tot.UNREACHABLE
    assert after.last_error == "gave up after 3 attempts: tv: refused" and after.attempts == 3


def test_send_falls_back_to_the_queue_due_at_once_and_immediate_steps_do_not() -> None:
    queued = outcomes.unreachable(tv(), NOW, DeviceUnavailable("tv", "away"), requeue=True,
                                  policy=DEFAULT, due_now=True).after(tv())
    assert (queued.state, queued.not_before) == (State.PENDING, NOW)
    inline = outcomes.unreachable(tv(), NOW, DeviceUnavailable("tv", "away"), requeue=False,
                                  policy=DEFAULT).after(tv())
    assert inline.state is State.FAILED and inline.last_error == "tv: away"


def test_a_permanent_error_is_never_requeued() -> None:
    verdict = outcomes.unreachable(tv(), NOW, DeviceRejected("tv", "bad key"), requeue=True,
                                   policy=DEFAULT)
    assert kinds(verdict) == [ev.FAILED] and verdict.outcome == tot.FAILED


def test_a_written_command_lost_in_flight_is_in_doubt_only_when_not_idempotent() -> None:
    lost = DeliveryUnknown("tv", "connection lost after sending")
    assert outcomes.transient(tv(), NOW, lost) is None  # idempotent: try again
    assert outcomes.transient(tv(), NOW, DeviceUnavailable("tv", "x")) is None
    press = tv(idempotent=False)
    verdict = outcomes.transient(press, NOW, lost)
    assert verdict is not None and verdict.outcome == tot.UNKNOWN
    after = verdict.after(press)
    assert after.state is State.UNKNOWN
    how = f"not safe to repeat (`cmdctl queue retry {press.id}` runs it again)"
    assert how in (after.reason or "")


def test_a_mismatch_is_retried_later_only_while_safe() -> None:
    again = outcomes.mismatch(tv(), NOW, "still off", requeue=True, policy=DEFAULT)
    assert kinds(again) == [ev.ATTEMPT_FAILED, ev.RESCHEDULED]
    once = outcomes.mismatch(tv(idempotent=False), NOW, "still off", requeue=True, policy=DEFAULT)
    assert kinds(once) == [ev.ATTEMPT_FAILED, ev.FAILED]
    assert once.after(tv(idempotent=False)).outcome == "mismatch"


def test_left_puts_a_started_entry_back_as_it_was_and_leaves_others_alone() -> None:
    entry = tv(attempts=1)
    verdict = outcomes.left(entry, NOW, started=True)
    after = verdict.after(entry)
    assert (after.state, after.not_before, after.attempts) == (
        State.PENDING, entry.not_before, 1)
    assert outcomes.left(entry, NOW, started=False).events == ()


def test_recovery_does_not_count_the_interrupted_attempt() -> None:
    entry = tv(attempts=2)
    after = outcomes.abandoned(entry, NOW, "drain run R (pid 1 on box)").after(entry)
    assert (after.state, after.attempts, after.not_before) == (State.PENDING, 1, NOW)
    press = tv(idempotent=False)
    gone = outcomes.abandoned(press, NOW, "drain run R (pid 1 on box)").after(press)
    assert gone.state is State.UNKNOWN and "drain run R" in (gone.reason or "")


def test_expired_names_the_time_it_expired() -> None:
    entry = replace(tv(), state=State.PENDING, expires=NOW - 1)
    after = outcomes.expired(entry, NOW).after(entry)
    assert after.state is State.EXPIRED and after.reason == (
        "not run before it expired at 2027-01-15T07:59:59Z")


def test_the_state_a_verdict_leaves_is_the_state_of_the_entry_it_leaves() -> None:
    err = DeviceUnavailable("tv", "refused")
    for entry in (tv(), tv(attempts=2), replace(tv(), state=State.DONE),
                  replace(tv(), state=State.PENDING)):
        for verdict in (
            outcomes.done(entry, NOW, status="confirmed", elapsed=0.1, detail=""),
            outcomes.unreachable(entry, NOW, err, requeue=True, policy=DEFAULT),
            outcomes.unreachable(entry, NOW, err, requeue=False, policy=DEFAULT),
            outcomes.mismatch(entry, NOW, "saw off", requeue=True, policy=DEFAULT),
            outcomes.left(entry, NOW, started=True),
            outcomes.left(entry, NOW, started=False),
            outcomes.in_doubt(entry, NOW, "lost"),
            outcomes.skipped(entry, NOW, "why"),
        ):
            assert verdict.state_after(entry) is verdict.after(entry).state


def test_a_started_event_carries_its_owner_after_the_attempt_byte_for_byte() -> None:
    from cmdctl.drain import recovery

    owner = recovery.Owner(run="R1", kind="drain", pid=42, host="bar-pi", lease=NOW + 60)
    entry = tv(attempts=1)
    line = ev.encode(recovery.started(entry, NOW, owner))
    assert line == (
        '{"t":"started","id":"' + entry.id + '","ts":1800000000.0,"v":1,"attempt":2,'
        '"run":"R1","by":"drain","pid":42,"host":"bar-pi","lease":1800000060.0}'
    )


def test_a_done_duration_is_its_own_elapsed_rounded_whatever_came_before() -> None:
    """A barrier's commands share one `elapsed` object, rounded once: a different one, equal or
    not, is rounded again."""
    shared = 0.0123456
    seen = []
    for elapsed in (shared, shared, 1.23456789, float("0.0123456"), 2.0, shared, 5e-05):
        verdict = outcomes.done(tv(), NOW, status="delivered", elapsed=elapsed, detail="")
        seen.append(verdict.duration)
        assert verdict.events[0].get("duration") == verdict.duration
    assert seen == [0.0123, 0.0123, 1.2346, 0.0123, 2.0, 0.0123, 0.0001]
