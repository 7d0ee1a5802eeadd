"""The CLI entry point. Thin: parse, load settings, call a pipeline. Heavy imports happen in pipelines."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from turbo.cli import tools  # noqa: F401  (registers validate, schema, convert_gguf)
from turbo.cli.app import SET_HELP, app
from turbo.errors import RunComplete, SettingsError, TurboError
from turbo.settings.commands import not_a_command

__all__ = ["SET_HELP", "app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: `--debug` anywhere shows tracebacks; user errors exit with their code (2, or 3 for a
    diverged run; turbo/errors.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # pydantic's plugin discovery reads every installed package's entry points on the first settings
    # class built (~20 ms of `validate` in an environment with torch and vLLM); no turbo run uses a
    # pydantic plugin. `PYDANTIC_DISABLE_PLUGINS=` (empty) in the environment turns discovery back on.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    debug = "--debug" in args or bool(os.environ.get("TURBO_DEBUG"))
    args = [arg for arg in args if arg != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        instead = not_a_command(args[0]) if args else None
        if instead is not None:
            raise SettingsError(instead)
        app(args=args, prog_name="turbo")
    except TurboError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except RunComplete as exc:
        print(exc, file=sys.stderr)
    except KeyboardInterrupt:
        sys.exit(130)
