"""A bulk's variable errors name how the caller gives variables: `?var=name=value` over HTTP,
`--var name=value` on the command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs import variables
from cmdctl.inputs.yamlsrc import Loc
from tests.cli.helpers import make_workspace
from tests.serve.test_serve import Served, start, stop

UNSET = b"name: volumes\ntargets: tvs\nsteps:\n  - number.volume: ${volume}\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start(make_workspace(tmp_path))
    try:
        yield s
    finally:
        assert "Traceback" not in stop(s)


def test_http_bulk_hint_names_the_var_query_parameter_and_the_cli_names_dash_dash_var(
    served: Served,
) -> None:
    status, err = served.call("/api/bulk", method="POST", body=UNSET)
    assert status == 400, err
    assert err["error"] == "${volume} is not set for tv-1"
    assert (err["line"], err["column"]) == (4, 20)
    assert err["hint"].endswith(", or pass var=volume=..."), err
    assert "--var" not in err["hint"]
    assert served.call("/api/bulk?var=volume=5", method="POST", body=UNSET)[0] == 201
    # a variable no step refers to (a typo) names the query parameter too
    status, err = served.call("/api/bulk?var=volume=5&var=volme=6", method="POST", body=UNSET)
    assert status == 400, err
    assert err["error"].startswith("var volme: no step of "), err
    assert err["hint"] == "did you mean 'volume'?"

    pb = served.ws.root / "unset.yml"
    pb.write_bytes(UNSET)
    cli = served.ws.run("bulk", str(pb))
    assert cli.returncode == 2
    assert cli.stderr.endswith(", or pass --var volume=...)\n"), cli.stderr


def test_a_variable_error_is_worded_again_for_another_way_of_giving_variables() -> None:
    loc = Loc("pb.yml", 4, 20)
    err = variables.unset("volume", "tv-1", loc)
    assert err.hint is not None and err.hint.endswith("or pass --var volume=...")
    http = err.given_as("var")
    assert (http.message, http.location) == (err.message, "pb.yml:4:20")
    assert http.hint is not None and http.hint.endswith("or pass var=volume=...")

    split = variables.disagree(loc, "tv", "failover", "tv-1", "tv-2")
    assert split.message == (
        "step 'tv' is one command for its failover candidates, but its variables give tv-1"
        " and tv-2 different values"
    )
    assert split.hint == (
        "set them the same for every candidate (the playbook's vars: or --var), or give the"
        " step plain targets"
    )
    assert "(the playbook's vars: or var)" in (split.given_as("var").hint or "")

    typo = variables.unreferenced("volme", "pb.yml", ["volume"])
    assert typo.one_line() == (
        "--var volme: no step of pb.yml refers to ${volme} (hint: did you mean 'volume'?)"
    )
    assert typo.given_as("var").message == "var volme: no step of pb.yml refers to ${volme}"
    assert variables.unreferenced("x", "pb.yml", []).hint == "it refers to no variables"


@pytest.mark.parametrize(
    ("option", "text", "hint"),
    [
        ("--var", "channel", "for example --var channel=206"),
        ("var", "channel", "for example var=channel=206"),
        ("--var", "c={a: 1}", "quote the value: --var 'c=\"{a: 1}\"'"),
        ("var", "c={a: 1}", 'quote the value: var=c="{a: 1}"'),
    ],
)
def test_assignment_hints_show_how_the_option_is_written(option: str, text: str, hint: str) -> None:
    with pytest.raises(InputError) as caught:
        variables.parse_assignment(text, option)
    assert caught.value.hint == hint
