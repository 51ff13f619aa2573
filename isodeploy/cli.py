"""The ``isodeploy`` command line: a thin Typer shell over the Python API.

Each command lives in ``isodeploy/commands/<name>.py`` and exposes ``register(app)``; this file only
assembles them and turns :class:`IsodeployError` into one ``error:`` line and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import typer

from isodeploy import __version__
from isodeploy.errors import IsodeployError

# Command modules, in the order `--help` lists them. Each has `register(app: typer.Typer) -> None`.
COMMAND_MODULES = [
    "isodeploy.commands.models",
    "isodeploy.commands.groups",
    "isodeploy.commands.prune",
    "isodeploy.commands.prune_export",
    "isodeploy.commands.finetune",
    "isodeploy.commands.export",
    "isodeploy.commands.verify",
    "isodeploy.commands.build_engine",
    "isodeploy.commands.triton_repo",
    "isodeploy.commands.bench",
    "isodeploy.commands.compare",
]

app = typer.Typer(
    name="isodeploy",
    help="Prune timm vision models with isomorphic pruning, export them to ONNX/TensorRT and report real latency.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"isodeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """isodeploy: prune → fine-tune → export → verify → engine → report."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, mapping user errors to one line and an exit code."""
    try:
        # In non-standalone mode click *returns* the code of a typer.Exit instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int):
            return code
    except IsodeployError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
