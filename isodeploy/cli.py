"""The ``isodeploy`` command line: a thin Typer shell over the Python API.

Each command lives in ``isodeploy/commands/<name>.py`` and exposes ``register(app)``; this file only
assembles them and turns :class:`IsodeployError`, usage errors and unreadable/unwritable paths into one
``error:`` line and an :class:`~isodeploy.core.errors.ExitCode`.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from isodeploy import __version__
from isodeploy.api import ExitCode, IsodeployError

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
    help="Prune vision models (timm, torchvision:NAME, package.module:function) with isomorphic pruning, export them to ONNX/TensorRT and report real latency.",
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
    trust_factory: list[str] = typer.Option([], "--trust-factory", metavar="PKG.MOD:FN",
                                            help="Allow output folders whose spec names this model factory to import it "
                                                 "(a folder alone is never trusted to choose code). Repeatable."),
) -> None:
    """isodeploy: prune → fine-tune → export → verify → engine → report."""
    if trust_factory:
        from isodeploy.api import trust_factories

        trust_factories(trust_factory)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _is_usage_error(exc: BaseException) -> bool:
    """Click's usage errors, whether from click itself or typer's vendored copy of it."""
    classes = []
    try:
        from typer._click import exceptions as vendored

        classes.append(vendored.ClickException)
    except ImportError:  # older typer: plain click
        pass
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(classes)) or (hasattr(exc, "show") and hasattr(exc, "exit_code") and hasattr(exc, "format_message"))


def _print_usage_error(exc: BaseException) -> int:
    """Click's usage text and one ``error:`` line on stderr; never a traceback."""
    ctx = getattr(exc, "ctx", None)
    name = type(exc).__name__
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        typer.echo(f"Try '{ctx.command_path} --help' for help.", err=True)
    else:
        typer.echo("Usage: isodeploy [OPTIONS] COMMAND [ARGS]...\nTry 'isodeploy --help' for help.", err=True)
    if name == "NoArgsIsHelpError":
        parent = getattr(ctx, "parent", None) if ctx is not None else None
        typer.echo(f"error: no {'command' if parent is None else 'arguments'} given", err=True)
        return ExitCode.BAD_INPUT
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    code = getattr(exc, "exit_code", ExitCode.BAD_INPUT)
    return int(code) if isinstance(code, int) and code != 0 else ExitCode.BAD_INPUT


def _say_error(message: str) -> None:
    """One ``error:`` line; under torchrun only rank 0 says it (every rank fails the same way)."""
    if os.environ.get("RANK", "0") == "0":
        typer.secho(f"error: {' '.join(message.split())}", fg=typer.colors.RED, err=True)


def _leave_process_group(code: int) -> None:
    """Under torchrun, leave the process group and exit ``code`` at once, so no rank aborts.

    The ranks of a failed run meet at a short barrier (:func:`isodeploy.train.dist.shutdown`) and
    then skip the interpreter's slow teardown: torchrun stops the remaining ranks as soon as one
    exits, so a rank that lagged behind would otherwise die by signal instead of exiting ``code``.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or "torch.distributed" not in sys.modules:
        return
    try:
        from isodeploy.api.train import leave_after_failure

        leave_after_failure()
    except Exception:  # noqa: BLE001 - exiting anyway; the exit code says what happened
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # every file was written atomically; nothing is lost by skipping the teardown


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, mapping user errors to one line and an exit code."""
    from isodeploy.api import trust_scope

    try:
        # In non-standalone mode click *returns* the code of a typer.Exit instead of raising it.
        with trust_scope():  # --trust-factory and a factory MODEL hold for this command only
            code = app(args=argv, standalone_mode=False)
        if isinstance(code, int):
            return code
    except IsodeployError as exc:
        _say_error(exc.for_cli() if hasattr(exc, "for_cli") else str(exc))  # API parameter names → CLI flags
        _leave_process_group(exc.exit_code)
        return exc.exit_code
    except typer.Exit as exc:
        if exc.exit_code:
            _leave_process_group(exc.exit_code)
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except MemoryError:
        _say_error("out of memory; lower the batch size or the image size")
        _leave_process_group(ExitCode.BAD_INPUT)
        return ExitCode.BAD_INPUT
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _say_error(f"cannot access{where}: {exc.strerror or exc}")
        _leave_process_group(ExitCode.BAD_INPUT)
        return ExitCode.BAD_INPUT
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if _is_usage_error(exc):
            return _print_usage_error(exc)
        raise
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
