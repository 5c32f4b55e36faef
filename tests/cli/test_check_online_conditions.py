"""`bulk --check --online` looks up the entities of `when:` / `wait_until:` on the live devices
(real `cmdctl` processes, the real simulator): a typo or an option the device lacks is the same
one-line input error, at the same place, as the cached check gives."""

from __future__ import annotations

from tests.cli.helpers import RunningFleet, Workspace
from tests.cli.test_check_online import assert_untouched, sim

__all__ = ["sim"]  # the fixture: three encrypted TVs running

CONDITIONS = """\
name: conditions
targets: tvs
steps:
  - name: power
    switch.tv_power: on
    wait_until: {WAIT, timeout: 5s}
  - name: volume
    number.volume: 20
    when: {WHEN}
"""


def test_online_check_refuses_a_condition_the_devices_cannot_show_at_its_place(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim

    def check(wait: str, when: str) -> tuple[int, str]:
        text = CONDITIONS.replace("WAIT", wait).replace("WHEN", when)
        result = ws.run("bulk", str(ws.playbook("c.yml", text)), "--check", "--online")
        assert "Traceback" not in result.stderr
        return result.returncode, result.stderr

    where = ws.playbook("c.yml", "")
    code, err = check("switch.tv_power: on", "switch.tv_powr: on")
    assert (code, err) == (
        2,
        f"cmdctl: {where}:9:12: bar-tv-1: when: no switch 'tv_powr' (did you mean"
        " switch.tv_power?) (hint: checked against bar-tv-1's entity list as it answered now)\n",
    )
    code, err = check("select.input: HDMI 9", "switch.tv_power: on")
    assert (code, err) == (
        2,
        f"cmdctl: {where}:6:18: bar-tv-1: wait_until: select.input has no option 'HDMI 9'"
        " (options: HDMI 1, HDMI 2, Cable) (hint: checked against bar-tv-1's entity list as it"
        " answered now)\n",
    )
    code, err = check("select.input: HDMI 2", "switch.tv_power: on")
    assert code == 0, err
    assert_untouched(fleet, ws)
