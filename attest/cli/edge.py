"""The one error edge of both CLIs (`attest`, `disputer`): an expected failure (`AttestError`) is one line on
stderr and exit code 1; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from attest.errors import AttestError, Interrupted


def run_cli(group: click.Group) -> None:
    try:
        group.main(standalone_mode=False)
    except AttestError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Abort as err:
        # click turns Ctrl-C into Abort; keep the shell's convention for an interrupt (128 + SIGINT).
        if isinstance(err.__context__, KeyboardInterrupt):
            _interrupted(err.__context__)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt as err:
        _interrupted(err)


def _interrupted(err: KeyboardInterrupt) -> NoReturn:
    """`Interrupted.`, with what the interrupt did to the job when the job said (attest.errors.Interrupted)."""
    click.echo(f"Interrupted: {err}" if isinstance(err, Interrupted) else "Interrupted.", err=True)
    sys.exit(130)
