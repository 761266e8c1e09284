"""The Typer application: global options and the command table."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from cachectl import __version__

# one module per command in cachectl/cli/; each defines `command` and registers
# under the module's name (``flush`` -> ``cachectl flush``)
COMMANDS = (
    "lint", "schema", "inspect", "audit", "warm", "flush", "stats", "bench", "demo",
    "model", "plan", "apply", "observe", "verify",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cachectl {__version__}")
        raise typer.Exit(0)


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with just ``only`` (see ``build_command``)."""
    app = typer.Typer(
        name="cachectl",
        help="The operator toolkit for Redis caches run by one policy file.\n\n"
        "Global: --debug (anywhere) shows tracebacks; CACHECTL_POLICY names the policy.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,  # locals hold URLs with passwords
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        version: Annotated[bool, typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
        = False,
    ) -> None:
        """cachectl: lint, inspect, audit, warm, flush, stats and bench a policy-run Redis cache."""

    for name in (only,) if only in COMMANDS else COMMANDS:
        module = _load(name)
        if module is None:
            continue
        app.command(name=name, **getattr(module, "COMMAND_SETTINGS", {}))(module.command)
    return app


def _load(name: str) -> Any:
    qualified = f"cachectl.cli.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:  # a command not built yet
            return None
        raise


def built_commands() -> tuple[str, ...]:
    """The names in ``COMMANDS`` whose module exists (a reserved name is skipped until built)."""
    from importlib.util import find_spec

    return tuple(name for name in COMMANDS if find_spec(f"cachectl.cli.{name}") is not None)


def build_command(args: Sequence[str] = ()) -> Any:
    """The click command for ``args``. When they name a command first, only that one is
    imported and built: each command's options cost start-up time, paid on every run.
    Anything else (``--help``, no command, a mistyped one) gets the whole table."""
    command = typer.main.get_command(build_app(args[0] if args else None))
    bound_numeric_options(command)
    return command


# Every integer option is a count, a size or a seed: it must fit Redis's and C's 64 bits.
# Every float option is a positive amount (seconds, keys per second): finite, in range.
INT_BOUNDS = (-(2**63), 2**63 - 1)
FLOAT_BOUNDS = (1e-3, 1e9)


def bound_numeric_options(command: Any) -> None:
    """Give every int and float option of ``command`` (and its subcommands) one check, so
    ``--timeout nan``, ``--rate 1e-300`` or ``--limit 2**70`` is a usage error (exit 2)
    wherever it is given, not a crash further down. The help text is unchanged."""
    for sub in getattr(command, "commands", {}).values():
        bound_numeric_options(sub)
    for param in command.params:
        param.callback = _checked(param.callback)


def number_problem(value: object) -> str | None:
    """Why ``value`` (an option's parsed value) is out of bounds; None if it is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        low, high = INT_BOUNDS
        return None if low <= value <= high else "must fit in 64 bits"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "must be a finite number"
        least, most = FLOAT_BOUNDS
        if value <= 0:
            return "must be positive"
        if not least <= value <= most:
            return f"must be between {least:g} and {most:g}"
    return None


def _checked(inner: Any) -> Any:
    from typer._click.exceptions import BadParameter

    def callback(ctx: Any, param: Any, value: Any) -> Any:
        for item in value if isinstance(value, list | tuple) else (value,):
            problem = number_problem(item)
            if problem:
                shown = f"{item:g}" if isinstance(item, float) else str(item)
                raise BadParameter(f"{shown} {problem}", ctx=ctx, param=param)
        return inner(ctx, param, value) if inner is not None else value

    return callback
