"""What every project's command line shares: its Typer app with the stages' logging, and
printing a stage's result. Only json, logging and typer are imported here, so a CLI's `--help`
stays fast (the `serve` command is in serve_command.py for the same reason)."""

import json
import logging
from collections.abc import Iterable
from typing import Any

import typer


def project_app(doc: str | None, *, info_loggers: Iterable[str] = ()) -> typer.Typer:
    """A project's CLI app: `doc` (its module docstring) as the help, no shell-completion
    options. With `info_loggers`, every command first sends log records of WARNING and above to
    stderr, and INFO too from those loggers (a stage's progress): other libraries' INFO stays
    quiet (ONNX Runtime's quantizer logs every tensor at INFO on the root logger)."""
    app = typer.Typer(help=doc, no_args_is_help=True, add_completion=False)
    names = list(info_loggers)
    if names:

        @app.callback()
        def _logging() -> None:
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
            for name in names:
                logging.getLogger(name).setLevel(logging.INFO)

    return app


def echo_json(result: Any, *, ensure_ascii: bool = True) -> None:
    """Prints a command's result as indented JSON; what JSON has no type for (a path, a date)
    as its str(). `ensure_ascii=False` keeps non-ASCII text as itself (generated answers)."""
    typer.echo(json.dumps(result, indent=2, default=str, ensure_ascii=ensure_ascii))
