"""The `tracker` command group, its global options, the two kinds of failure and `tracker init`.

Each area's verbs register on `cli` from their own module (`tracker.cli` loads them all).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import sys
import threading
import traceback

import click

from tracker import __version__
from tracker.config import default_db_path
from tracker.errors import BadInput, RunFailure


class BadInputError(click.ClickException):
    """Bad input: one line per problem on stderr, exit 2."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        for problem in self.problems:
            click.echo(f"tracker: error: {problem}", err=True)


class RunFailureError(click.ClickException):
    exit_code = 1

    def show(self, file=None) -> None:  # noqa: ANN001
        click.echo(f"tracker: failed: {self.message}", err=True)


class TrackerGroup(click.Group):
    """Turns our two failure kinds into click exceptions, so CliRunner and the console agree."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except BadInput as exc:
            raise BadInputError(exc.problems) from None
        except RunFailure as exc:
            raise RunFailureError(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt,
                BrokenPipeError):
            raise
        except (OSError, sqlite3.OperationalError) as exc:
            problem = storage_problem(exc, (ctx.obj or {}).get("db_path"))
            if problem is None:
                raise self._internal(exc) from None
            bad_input, line = problem
            raise (BadInputError([line]) if bad_input else RunFailureError(line)) from None
        except Exception as exc:
            raise self._internal(exc) from None

    @staticmethod
    def _internal(exc: Exception) -> RunFailureError:
        """An unexpected bug: one line, the traceback only on request."""
        if os.environ.get("TRACKER_DEBUG"):
            traceback.print_exc()
        return RunFailureError(f"internal error: {type(exc).__name__}: {exc} (set TRACKER_DEBUG=1 for the traceback)")


# errno values that mean "you may not write here" (bad input, exit 2) or "the disk failed" (exit 1)
_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}
_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def storage_problem(exc: BaseException, db_path: str | None) -> tuple[bool, str] | None:
    """(bad input?, the one line) for a file-system or SQLite failure that names a place; None for others."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        where = db_path or "the database"
        if "readonly" in text or "read-only" in text:
            return True, f"{where}: the database is read-only ({text}); tracker needs to write it"
        if "unable to open" in text:
            return True, f"{where}: cannot open the database ({text})"
        if "disk is full" in text or "disk I/O error" in text:
            return False, f"{where}: could not write the database ({text}); free some space and run it again"
        return None
    if isinstance(exc, OSError) and exc.errno in _REFUSED | _DISK:
        where = exc.filename or db_path or "a file"
        return exc.errno in _REFUSED, f"{where}: {exc.strerror or exc}"
    return None


@click.group(cls=TrackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracker")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The SQLite database (default data/tracker.db, or $TRACKER_DB).",
)
@click.option("-v", "--verbose", count=True,
              help="Say more on stderr: -v what each run decides (e.g. its fast paths), -vv everything.")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, verbose: int) -> None:
    """Order-tracking fraud detector with a case tracker.

    Polls carriers' tracking pages, flags tracking-number fraud with rules and a classifier, keeps
    cases like the marketplace's My Reports page and exports complaint packets.
    """
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path or default_db_path()
    if verbose:
        _log_to_stderr(logging.INFO if verbose == 1 else logging.DEBUG)


def _log_to_stderr(level: int) -> None:
    """The tracker's own log lines at `level` and above, on stderr (once per process)."""
    logger = logging.getLogger("tracker")
    logger.setLevel(level)
    if not any(getattr(h, "_tracker_verbose", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("tracker: %(message)s"))
        handler._tracker_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def open_store(ctx: click.Context, *, create: bool = True):  # noqa: ANN201
    """The store named by --db; writing commands create or migrate it first."""
    from tracker.db import open_db

    db = open_db(ctx.find_root().obj["db_path"], create=create)
    ctx.call_on_close(db.close)  # closed when the command ends, whatever it did: its last commit checkpointed
    return db


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or migrate the database."""
    from tracker.migrations import migrate

    path = ctx.obj["db_path"]
    if not os.path.exists(path):
        open_store(ctx).close()
        click.echo(f"{path}: created")
        return
    db = open_store(ctx, create=False)
    try:
        applied = migrate(db)
    finally:
        db.close()
    click.echo(f"{path}: " + (f"migrated ({', '.join(applied)})" if applied else "up to date"))


def main(argv: list[str] | None = None) -> None:
    """The `tracker` program: runs one command, then ends the process (`_end`)."""
    try:
        cli.main(args=argv, prog_name="tracker")
    except SystemExit as exc:
        _end(exc.code)
    except KeyboardInterrupt:
        click.echo("tracker: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `tracker scores | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _end(code: object) -> None:
    """End the program with `code`, as `sys.exit(code)` would, but without the interpreter's teardown: its exit
    handlers run (child processes joined, logging flushed, temporary folders removed) and its output is flushed,
    and the system takes back the memory at once instead of every object being freed one by one (a run that held a
    million orders' frames frees millions of objects). The command's stores were closed with its context
    (`open_store`). Where another thread still runs (the interpreter would wait for it), or
    where this Python has no way to run the exit handlers, the process ends the usual way."""
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if run_exit_handlers is None or others or threading.current_thread() is not threading.main_thread():
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as the interpreter does: the message on stderr, exit status 1
        print(code, file=sys.stderr)
        status = 1
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            status = status or 1
    os._exit(status)
