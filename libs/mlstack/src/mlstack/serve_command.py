"""The `serve` command of every project's CLI: host, port and workers over the service's
settings (its pydantic-settings class, which reads the project's environment prefix), run by
`mlstack.serve.runner`. The service module (and mlstack.serve, FastAPI: half a second) is
imported when the command runs, so `--help` stays fast: hence a module outside that package."""

import importlib
from typing import Annotated

import typer


def add_serve_command(
    app: typer.Typer, service: str, *, doc: str, blas_threads: int | None = None
) -> None:
    """Adds `serve` to `app`; `service` is the module holding `Settings` and `app_factory`.
    `blas_threads`: see `runner.run` (1 where requests run NumPy in parallel threads)."""

    def serve(
        host: Annotated[str | None, typer.Option(help="Overrides the settings' host.")] = None,
        port: Annotated[int | None, typer.Option(help="Overrides the settings' port.")] = None,
        workers: Annotated[int | None, typer.Option(min=1)] = None,
    ) -> None:
        from pydantic import ValidationError

        from mlstack.serve.runner import run

        given = {"host": host, "port": port, "workers": workers}
        try:  # a value the service's settings refuse (llm_chat: one worker) is a usage error
            settings = importlib.import_module(service).Settings(
                **{k: v for k, v in given.items() if v is not None}
            )
        except ValidationError as exc:
            raise typer.BadParameter(str(exc)) from None
        run(f"{service}:app_factory", settings, blas_threads=blas_threads)

    serve.__doc__ = doc
    app.command("serve")(serve)
