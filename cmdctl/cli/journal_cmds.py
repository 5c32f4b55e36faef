"""`cmdctl journal verify / compact`: integrity and housekeeping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli.common import finish, now, open_journal
from cmdctl.cli.options import JournalOpt, JsonOpt, QuietOpt
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.journal.archive import ArchiveCheck

journal_app = typer.Typer(
    name="journal",
    help="Check the journal's integrity and compact it.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@journal_app.command("verify")
def verify(journal: JournalOpt = None, json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Check every line and entry, and every line of the archive; exit 3 when anything is damaged.

    Example: cmdctl journal verify
    """
    from cmdctl.cli import render

    jr = open_journal(journal)
    report = jr.verify()
    archived = jr.verify_archive()
    if json_out:
        render.emit_json(
            {
                "ok": report.ok,
                "path": str(report.path),
                "events": report.events,
                "entries": report.entries,
                "damaged": [{"line": d.line, "reason": d.reason} for d in report.damaged],
                "problems": list(report.problems),
                "torn_bytes": report.torn,
                "uncommitted_lines": report.uncommitted,
                "quarantined": [str(p) for p in report.quarantined],
                "filesystem": report.filesystem,
                "warnings": list(report.warnings),
                "archive": _archive_json(archived),
            }
        )
    else:
        for d in report.damaged:
            render.stderr().print(
                f"{report.path}:{d.line}: damaged line skipped: {d.reason}", markup=False
            )
        for problem in report.problems:
            render.stderr().print(f"{report.path}: {problem}", markup=False)
        for warning in report.warnings:
            render.warn(warning)
        if not quiet or not report.ok:
            verdict = "ok" if report.ok else "CORRUPT"
            render.line(
                f"{verdict}: {report.path}: {report.events:,} events, {report.entries:,} entries, "
                f"{len(report.damaged)} damaged lines, {len(report.problems)} problems"
            )
        _print_archive(archived, quiet=quiet)
    finish(ExitCode.OK if report.ok and archived.ok else ExitCode.JOURNAL)


def _archive_json(check: ArchiveCheck) -> dict[str, object]:
    return {
        "ok": check.ok,
        "path": str(check.folder),
        "files": check.files,
        "events": check.lines,
        "damaged": [{"file": str(p), "line": d.line, "reason": d.reason} for p, d in check.damaged],
        "warnings": list(check.warnings),
    }


def _print_archive(check: ArchiveCheck, *, quiet: bool) -> None:
    from cmdctl.cli import render

    for path, d in check.damaged:
        render.stderr().print(f"{path}:{d.line}: damaged line skipped: {d.reason}", markup=False)
    for warning in check.warnings:
        render.warn(warning)
    if not quiet or not check.ok:
        verdict = "ok" if check.ok else "CORRUPT"
        render.line(
            f"{verdict}: archive {check.folder}: {check.files:,} file{'s' * (check.files != 1)}, "
            f"{check.lines:,} events, "
            f"{len(check.damaged)} damaged lines"
        )


#: How long `journal compact` keeps the archive's day files unless told: venue systems commonly
#: keep a week of detail (the journal's --keep) and about three months of statistics.
ARCHIVE_KEEP = "90d"


@journal_app.command("compact")
def compact(
    keep: Annotated[
        str,
        typer.Option("--keep", help="Keep finished entries younger than this (e.g. 7d, 12h)."),
    ] = "7d",
    archive_keep: Annotated[
        str,
        typer.Option(
            "--archive-keep",
            help="Delete archive day files older than this (e.g. 30d); 'forever' keeps all.",
        ),
    ] = ARCHIVE_KEEP,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rewrite the journal atomically; older finished entries move to the archive.

    The archive keeps one file per UTC day (archive/2026-12-05.jsonl) and whole days older
    than --archive-keep are deleted.

    Example: cmdctl journal compact --keep 7d --archive-keep 90d
    """
    from dataclasses import asdict

    from cmdctl.cli import render
    from cmdctl.core.timespec import parse_duration

    keep_s = parse_duration(keep)
    archive_s = None if archive_keep.strip() == "forever" else parse_duration(archive_keep)
    jr = open_journal(journal)
    report = jr.compact(keep_s, now(), archive_s)
    if json_out:
        render.emit_json(
            {
                k: (str(v) if not isinstance(v, int | float) else v)
                for k, v in asdict(report).items()
            }
        )
    elif not quiet:
        render.line(_describe(report))
    finish(ExitCode.OK)


def _describe(report: object) -> str:
    from dataclasses import asdict, is_dataclass

    if not is_dataclass(report) or isinstance(report, type):
        return str(report)
    fields = asdict(report)
    return "compacted: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items())


def register(app: typer.Typer) -> None:
    """Add the `journal` group to the app."""
    app.add_typer(journal_app, name="journal")
