"""The command line: ``main()`` is the one error boundary; one module per command.

Importing this package must stay cheap (no redis, no Rich tables): commands import
their core modules inside the command body.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from cachectl.errors import CachectlError, ExitCode, missing_module_hint

DEBUG_ENV = "CACHECTL_DEBUG"


def main(argv: Sequence[str] | None = None) -> int:
    """Run cachectl; return (and, as a console script, exit with) its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # pydantic looks for plugins by reading the entry points of every installed
        # distribution (about a tenth of `cachectl lint`'s start-up); the CLI's own policy
        # models need none. Only the console script sets it, never the library, and a
        # value the user set wins.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if "--debug" in args:  # accepted anywhere on the line, before or after the command
        args.remove("--debug")
        debug = True
    code = run_scrubbed(args, debug=debug)
    if argv is None:
        sys.exit(code)
    return code


def run_scrubbed(args: list[str], *, debug: bool = False) -> int:
    """``run`` with every secret the run registers masked in stdout, stderr and the
    exception ``--debug`` lets through (``cachectl.secrets``): redaction that does not
    depend on each message having been built right."""
    from cachectl import secrets

    secrets.reset()
    restore_sigterm = _sigterm_as_interrupt()
    streams = sys.stdout, sys.stderr
    sys.stdout = secrets.ScrubbingStream(sys.stdout)
    sys.stderr = secrets.ScrubbingStream(sys.stderr)
    try:
        return run(args, debug=debug)
    except BaseException as exc:
        secrets.scrub_exception(exc)
        raise
    finally:
        sys.stdout, sys.stderr = streams
        restore_sigterm()


def run(args: list[str], *, debug: bool = False) -> int:
    import typer
    from typer._click import exceptions as click_exc  # Typer ships its own click

    from cachectl.cli.app import build_command

    command = build_command(args)
    try:
        result = command.main(args=args, prog_name="cachectl", standalone_mode=False)
    except CachectlError as exc:
        _error(exc.message, exc.hint)
        if debug:
            raise
        return int(exc.exit_code)
    except click_exc.UsageError as exc:  # a bad flag or argument
        exc.show()
        return int(ExitCode.USAGE)
    except click_exc.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted", "whatever was written is complete; rerun to finish")
        return int(ExitCode.INTERRUPTED)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except BrokenPipeError:
        # stdout was closed early (`cachectl … | head`): not an error worth a message
        _silence_stdout()
        return int(ExitCode.OK)
    except SystemExit:
        # click turns a broken pipe into exit 1 after wrapping stdout; treat it as above
        from typer._click.utils import PacifyFlushWrapper

        if isinstance(sys.stdout, PacifyFlushWrapper):
            _silence_stdout()
            return int(ExitCode.OK)
        raise
    except Exception as exc:  # the one place a bug becomes exit 70
        if debug:
            raise
        if isinstance(exc, ModuleNotFoundError) and exc.name \
                and exc.name.partition(".")[0] != "cachectl":  # a dependency, not a bug of ours
            _error(f"cachectl needs the Python module {exc.name!r}, which is not installed",
                   missing_module_hint(exc.name))
            return int(ExitCode.USAGE)
        _error(f"internal error in cachectl ({type(exc).__name__}); this is a bug",
               "rerun with --debug and report the traceback at "
               "https://github.com/cachectl/cachectl/issues")
        return int(ExitCode.BUG)
    if result == ExitCode.INTERRUPTED:  # Typer returns a Ctrl-C in a command as 130, silently
        _error("interrupted", "whatever was written is complete; rerun to finish")
    if isinstance(result, int):
        return result
    return int(ExitCode.OK)


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Handle SIGTERM as Ctrl-C for the whole run (exit 130, cleanup and partial results
    reported); commands that stop between batches narrow it (``stop_on_sigint``).
    Returns what restores the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _error(message: str, hint: str | None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
