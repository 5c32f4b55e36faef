"""Fleet keys of playbooks: tags, after/on_failure, failover/any targets, serial, tag filters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.model import Entry
from cmdctl.inputs.inventory import Inventory, load_inventory
from cmdctl.inputs.playbook import Plan, expand, load_playbook, parse_tags
from cmdctl.journal import entry as journal_entry
from cmdctl.journal import events, fleetkeys

from .conftest import EXAMPLES, NOW, BigVenue, counter_ids

Write = Callable[[str, str], Path]

HEAD = "name: t\ntargets: tvs\nsteps:\n"


def _plan(path: Path, inv: Inventory, **kwargs: Any) -> Plan:
    return expand(load_playbook(path), inv, now=NOW, ids=counter_ids(), who="ann@bar", **kwargs)


def _error(call: Callable[[], object]) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


def keys(entry: Entry) -> dict[str, Any]:
    """An entry's fleet keys as the journal stores them."""
    return fleetkeys.coordination_fields(entry.coordination)


def _extras(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    by_step: dict[str, list[dict[str, Any]]] = {}
    for entry in (*plan.immediate, *plan.queued):
        by_step.setdefault(entry.step, []).append(dict(keys(entry)))
    return by_step


# -- tags ----------------------------------------------------------------------------------------


def test_tags_merge_playbook_then_step(venue: Inventory, write: Write) -> None:
    path = write(
        "p.yml",
        """\
        targets: patio
        tags: [night, power]
        steps:
          - name: power
            switch.tv_power: on
            tags: [power, tv]
          - name: input
            select.input: HDMI 1
            tags: picture
          - name: volume
            number.volume: 20
        """,
    )
    pb = load_playbook(path)
    assert [step.tags for step in pb.steps] == [
        ("night", "power", "tv"),  # written order, each once
        ("night", "power", "picture"),
        ("night", "power"),
    ]
    extras = _extras(_plan(path, venue))
    assert extras["power"] == [{"tags": ["night", "power", "tv"]}] * 2
    assert extras["volume"] == [{"tags": ["night", "power"]}] * 2


def test_no_fleet_keys_no_extra(venue: Inventory) -> None:
    plan = _plan(EXAMPLES / "game-night.yml", venue)
    assert all(keys(entry) == {} for entry in (*plan.queued, *plan.immediate))
    assert plan.serial is None


@pytest.mark.parametrize(
    ("tags", "where", "message"),
    [
        ("[power, 'a b']", (5, 19), "bad tag 'a b'"),
        ("'a,b'", (5, 11), "bad tag 'a,b'"),
        ("[]", (5, 11), "tags must not be an empty list"),
        ("{a: 1}", (5, 11), "tags must be a string, not a mapping"),
        ("[1]", (5, 12), "each of tags must be a string, not '1'"),
    ],
)
def test_bad_tags_located(write: Write, tags: str, where: tuple[int, int], message: str) -> None:
    path = write("p.yml", HEAD + f"  - switch.tv_power: on\n    tags: {tags}\n")
    err = _error(lambda: load_playbook(path))
    assert (err.message, err.file, (err.line, err.column)) == (message, str(path), where)


def test_tag_filters(venue: Inventory) -> None:
    path = EXAMPLES / "rollout.yml"

    def steps(plan: Plan) -> list[str]:
        return [step.name for step in plan.steps]

    assert steps(_plan(path, venue, tags=frozenset({"ir"}))) == [
        "tune cable boxes",
        "blink a blaster",
    ]
    assert steps(_plan(path, venue, tags=frozenset({"power", "banner"}))) == [
        "power on",
        "input",
        "banner",
    ]
    assert steps(_plan(path, venue, skip_tags=frozenset({"picture"}))) == [
        "power on",
        "banner",
        "blink a blaster",
    ]
    both = _plan(path, venue, tags=frozenset({"power"}), skip_tags=frozenset({"picture"}))
    assert steps(both) == ["power on"]
    assert {entry.step for entry in both.queued} == {"power on"}


def test_tag_filter_errors(venue: Inventory) -> None:
    path = EXAMPLES / "rollout.yml"
    err = _error(lambda: _plan(path, venue, tags=frozenset({"powr"})))
    assert err.message == "--tags: no step of this playbook has tag 'powr'"
    assert (err.file, err.line, err.column) == (str(path), 1, 1)
    assert err.hint == "did you mean 'power'?"
    err = _error(lambda: _plan(path, venue, skip_tags=frozenset({"zzz"})))
    assert err.message == "--skip-tags: no step of this playbook has tag 'zzz'"
    assert err.hint == "its tags: banner, ir, picture, power, rollout"
    err = _error(lambda: _plan(path, venue, skip_tags=frozenset({"rollout"})))
    assert err.message == "--skip-tags rollout leaves no step of this playbook"
    assert (err.file, err.line) == (str(path), 1)
    err = _error(lambda: _plan(path, venue, tags=frozenset({"ir"}), skip_tags=frozenset({"ir"})))
    assert err.message == "--tags ir --skip-tags ir leaves no step of this playbook"
    err = _error(lambda: _plan(EXAMPLES / "volume.yml", venue, tags=frozenset({"x"})))
    assert err.hint == "its tags: none"


def test_parse_tags() -> None:
    assert parse_tags(" power, night ,,power") == frozenset({"power", "night"})
    assert _error(lambda: parse_tags(" , ")).message == "no tags in ' , '"
    assert _error(lambda: parse_tags("ok,a b")).message == "bad tag 'a b'"


# -- after / on_failure --------------------------------------------------------------------------


def test_after_and_on_failure(venue: Inventory, write: Write) -> None:
    path = write(
        "p.yml",
        HEAD
        + """\
          - name: blink
            button.identify: press
            mode: immediate
          - switch.tv_power: on
          - select.input: HDMI 1
            after: switch.tv_power
          - name: volume
            number.volume: 30
            after: blink
            on_failure: continue
        """,
    )
    pb = load_playbook(path)
    assert [(s.after, s.on_failure) for s in pb.steps] == [
        (None, None),
        (None, None),
        ("switch.tv_power", None),
        ("blink", "continue"),
    ]
    extras = _extras(_plan(path, venue))
    tvs = len(venue.groups["tvs"])
    assert extras["select.input"] == [{"after": "switch.tv_power", "on_failure": "skip"}] * tvs
    assert extras["volume"] == [{"after": "blink", "on_failure": "continue"}] * tvs
    assert extras["switch.tv_power"] == [{}] * tvs


def test_barrier_on_a_step_left_out_is_dropped(venue: Inventory) -> None:
    path = EXAMPLES / "rollout.yml"
    extras = _extras(_plan(path, venue, tags=frozenset({"picture"})))
    assert "after" not in extras["input"][0]  # "power on" is not in this batch
    assert "after" not in extras["tune cable boxes"][0]
    extras = _extras(_plan(path, venue, tags=frozenset({"power"})))
    assert extras["input"][0]["after"] == "power on"
    assert extras["input"][0]["on_failure"] == "continue"


@pytest.mark.parametrize(
    ("steps", "where", "message", "hint"),
    [
        (
            "  - name: power on\n    switch.tv_power: on\n"
            "  - select.input: HDMI 1\n    after: powr on\n",
            (7, 12),
            "after: no earlier step is named 'powr on'",
            "did you mean 'power on'?",
        ),
        (
            "  - select.input: HDMI 1\n    after: power on\n"
            "  - name: power on\n    switch.tv_power: on\n",
            (5, 12),
            "after: 'power on' is a later step (line 6); a step can only wait for an earlier one",
            "move this step below 'power on'",
        ),
        (
            "  - select.input: HDMI 1\n    after: select.input\n",
            (5, 12),
            "step 'select.input' cannot wait for itself",
            None,
        ),
        (
            "  - select.input: HDMI 1\n    after: nothing\n",
            (5, 12),
            "after: no earlier step is named 'nothing'",
            "this is the first step",
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n    after: zzz\n",
            (6, 12),
            "after: no earlier step is named 'zzz'",
            "earlier steps: switch.tv_power",
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n    on_failure: skip\n",
            (6, 5),
            "'on_failure' needs 'after:'",
            None,
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n"
            "    after: switch.tv_power\n    on_failure: skp\n",
            (7, 17),
            "unknown on_failure 'skp'",
            "did you mean 'skip'?",
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n"
            "    after: switch.tv_power\n    on_failure: retry\n",
            (7, 17),
            "unknown on_failure 'retry'",
            "skip or continue",
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n"
            "    after: switch.tv_power\n    on_failure: [skip]\n",
            (7, 17),
            "on_failure must be a string, not a list",
            None,
        ),
        (
            "  - switch.tv_power: on\n  - button.identify: press\n    mode: immediate\n"
            "    after: switch.tv_power\n",
            (7, 5),
            "an immediate step runs at once and cannot wait for another step",
            None,
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n    after: [switch.tv_power]\n",
            (6, 12),
            "after must be a string, not a list",
            None,
        ),
        (
            "  - switch.tv_power: on\n  - select.input: HDMI 1\n    aftr: switch.tv_power\n",
            (6, 5),
            "unknown step key 'aftr'",
            "did you mean 'after'?",
        ),
    ],
)
def test_after_errors_located(
    write: Write, steps: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = write("p.yml", HEAD + steps)
    err = _error(lambda: load_playbook(path))
    assert (err.message, err.file, (err.line, err.column)) == (message, str(path), where)
    if hint is not None:
        assert err.hint == hint


# -- failover / any targets ----------------------------------------------------------------------


def test_failover_and_any_expand_to_one_entry(venue: Inventory) -> None:
    plan = _plan(EXAMPLES / "rollout.yml", venue)
    tune = [e for e in plan.queued if e.step == "tune cable boxes"]
    blink = [e for e in plan.queued if e.step == "blink a blaster"]
    assert len(tune) == len(blink) == 1
    assert tune[0].device == "ir-blaster-a"
    assert keys(tune[0])["pick"] == "failover"
    assert keys(tune[0])["candidates"] == ["ir-blaster-a", "ir-blaster-b"]
    assert (keys(blink[0])["pick"], keys(blink[0])["candidates"]) == (
        "any",
        list(venue.groups["ir"]),
    )
    assert plan.count == 3 * len(venue.groups["tvs"]) + 2
    assert "ir-blaster-b" in [device.name for device in plan.devices]  # a candidate


def test_failover_order_is_as_written(venue: Inventory, write: Write) -> None:
    path = write(
        "p.yml",
        """\
        targets: {failover: [ir-blaster-b, ir, bar-tv-*]}
        steps:
          - action: send_tv_command
            data: {box: 1, channel: "7"}
          - name: tvs too
            switch.tv_power: on
            targets: patio
        """,
    )
    plan = _plan(path, venue)
    first, second = plan.queued[0], plan.queued[1:]
    assert first.device == "ir-blaster-b"
    bar_tvs = [f"bar-tv-{i}" for i in range(1, 7)]
    assert keys(first)["candidates"] == ["ir-blaster-b", "ir-blaster-a", *bar_tvs]
    assert [(e.device, dict(keys(e))) for e in second] == [("patio-tv-1", {}), ("patio-tv-2", {})]


def test_limit_intersects_candidates(venue: Inventory) -> None:
    path = EXAMPLES / "rollout.yml"
    plan = _plan(path, venue, limit="ir-blaster-b,bar-tv-1")
    tune = next(e for e in plan.queued if e.step == "tune cable boxes")
    assert (tune.device, keys(tune)["candidates"]) == ("ir-blaster-b", ["ir-blaster-b"])
    assert {e.device for e in plan.queued if e.step == "power on"} == {"bar-tv-1"}
    err = _error(lambda: _plan(path, venue, limit="patio"))
    assert err.message == "--limit 'patio' leaves no failover candidate for step 'tune cable boxes'"
    assert (err.file, err.line, err.column) == (str(path), 26, 25)
    assert err.hint and "--skip-tags" in err.hint
    assert _plan(path, venue, limit="patio", skip_tags=frozenset({"ir"})).count == 6


@pytest.mark.parametrize(
    ("targets", "where", "message", "hint"),
    [
        ("{failovr: [a]}", (2, 11), "unknown key 'failovr' in targets", "did you mean 'failover'?"),
        ("{}", (2, 10), "targets mapping needs exactly one of failover: or any:", None),
        (
            "{failover: [ir-blaster-a], any: [ir-blaster-b]}",
            (2, 37),
            "targets has both failover: and any:; choose one",
            None,
        ),
        ("{any: []}", (2, 16), "targets any must not be an empty list", None),
        ("{any: {a: 1}}", (2, 16), "targets any must be a string, not a mapping", None),
    ],
)
def test_pick_load_errors(
    write: Write, targets: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = write("p.yml", f"name: t\ntargets: {targets}\nsteps:\n  - button.identify: press\n")
    err = _error(lambda: load_playbook(path))
    assert (err.message, err.file, (err.line, err.column)) == (message, str(path), where)
    if hint is not None:
        assert err.hint == hint


def test_pick_names_must_match(venue: Inventory, write: Write) -> None:
    path = write(
        "p.yml",
        HEAD + "  - button.identify: press\n    targets: {failover: [ir-blaster-a, ir-blastr-a]}\n",
    )
    err = _error(lambda: _plan(path, venue))
    assert err.message == "pattern 'ir-blastr-a' matches no device or group"
    assert (err.file, err.line, err.column, err.hint) == (
        str(path),
        5,
        25,
        "did you mean 'ir-blaster-a'?",
    )


def test_pick_refused_on_immediate_steps(write: Write) -> None:
    path = write(
        "p.yml",
        HEAD + "  - button.identify: press\n    mode: immediate\n    targets: {any: ir}\n",
    )
    err = _error(lambda: load_playbook(path))
    assert (
        err.message
        == "step 'button.identify' is immediate: failover/any targets need a queued step"
    )
    assert (err.line, err.column) == (6, 20)
    path = write(
        "q.yml",
        "targets: {any: ir}\nsteps:\n  - button.identify: press\n    mode: immediate\n",
    )
    err = _error(lambda: load_playbook(path))
    assert (err.line, err.column) == (1, 16)  # inherited from the playbook's targets
    path = write(
        "r.yml",
        "targets: {any: ir}\nsteps:\n  - button.identify: press\n    mode: immediate\n"
        "    targets: tvs\n",
    )
    assert load_playbook(path).steps[0].pick is None  # plain targets of its own: fine


def test_cap_counts_a_pick_step_once(venue: Inventory, write: Write) -> None:
    path = write("p.yml", "targets: {any: all}\nsteps:\n  - button.identify: press\n")
    plan = expand(load_playbook(path), venue, now=NOW, ids=counter_ids(), who="x", max_commands=1)
    assert plan.count == 1 and len(keys(plan.queued[0])["candidates"]) == len(venue.names)


# -- serial --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("2", 2), ("20%", "20%"), ("' 5 % '", "5%"), ("100%", "100%")]
)
def test_serial(venue: Inventory, write: Write, text: str, value: int | str) -> None:
    path = write("p.yml", f"targets: patio\nserial: {text}\nsteps:\n  - switch.tv_power: on\n")
    assert load_playbook(path).serial == value
    plan = _plan(path, venue)
    assert plan.serial == value
    assert [keys(entry) for entry in plan.queued] == [{"serial": value}] * 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "serial must be between 1 and 1000000, not 0"),
        ("-3", "serial must be between 1 and 1000000, not -3"),
        ("0%", "serial must be a whole number or 1% to 100%, not '0%'"),
        ("101%", "serial must be a whole number or 1% to 100%, not '101%'"),
        ("'5'", "serial must be a whole number or 1% to 100%, not '5'"),
        ("1.5", "serial must be a whole number, not '1.5'"),
        ("true", "serial must be a whole number, not 'true'"),
        ("[1]", "serial must be a whole number, not a list"),
    ],
)
def test_bad_serial_located(write: Write, text: str, message: str) -> None:
    path = write("p.yml", f"targets: patio\nserial: {text}\nsteps:\n  - switch.tv_power: on\n")
    err = _error(lambda: load_playbook(path))
    assert (err.message, err.file, err.line, err.column) == (message, str(path), 2, 9)


# -- the journal keeps it all; and it stays fast ---------------------------------------------------


def test_fleet_keys_survive_the_journal(venue: Inventory) -> None:
    plan = _plan(EXAMPLES / "rollout.yml", venue)
    for entry in plan.queued:
        event = events.decode(events.encode(events.queued(entry)))
        back = journal_entry.entry_from_queued(event)
        assert replace(back, updated=entry.updated) == entry
        assert dict(keys(back)) == dict(keys(entry))


def test_10k_commands_with_fleet_keys_expand_fast(tmp_path: Path, big_venue: BigVenue) -> None:
    inv = load_inventory(big_venue(1000), env={})
    steps = "".join(
        f"  - name: s{i}\n    number.volume: {i}\n    tags: [t{i}, all-steps]\n"
        + (f"    after: s{i - 1}\n    on_failure: continue\n" if i else "")
        for i in range(10)
    )
    path = tmp_path / "big.yml"
    path.write_text(
        "targets: tvs\nserial: 10%\ntags: big\nsteps:\n"
        + steps
        + "  - name: pick\n    button.identify: press\n    targets: {failover: [zone-1, zone-2]}\n"
    )
    pb = load_playbook(path)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()  # CPU time: other test processes share the machine
        plan = expand(pb, inv, now=NOW, ids=counter_ids(), who="x", skip_tags=frozenset({"t9"}))
        best = min(best, time.process_time() - started)
    assert plan.count == 9 * 1000 + 1
    assert keys(plan.queued[-1])["candidates"][:2] == ["tv-1", "tv-11"]
    assert keys(plan.queued[1000]) == {
        "tags": ["big", "t1", "all-steps"],
        "after": "s0",
        "on_failure": "continue",
        "serial": "10%",
    }
    assert best < 0.3, f"expanding 9,001 commands with fleet keys took {best:.3f}s of CPU"
