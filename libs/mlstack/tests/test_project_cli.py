"""project_app and echo_json: what the four projects' CLIs share (help, stage logging, printed
results)."""

import datetime as dt
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.project_cli import echo_json, project_app


@pytest.fixture
def quiet_loggers():
    """The loggers the callback sets, restored afterwards (other tests share the process)."""
    names = ["mlstack_test_stage", "mlstack_test_other"]
    levels = {n: logging.getLogger(n).level for n in names}
    yield names
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _app_with_command(**options):
    app = project_app("Doc of the CLI.", **options)

    @app.command()
    def first() -> None:
        """The first command."""
        echo_json({"level": logging.getLogger("mlstack_test_stage").level})

    @app.command()
    def second() -> None:
        """The second command."""

    return app


def test_the_help_is_the_doc_and_no_completion_options():
    result = CliRunner().invoke(_app_with_command(), ["--help"])
    assert result.exit_code == 0
    assert "Doc of the CLI." in result.output
    assert "--install-completion" not in result.output


def test_no_arguments_show_the_help():
    result = CliRunner().invoke(_app_with_command(), [])
    assert "Doc of the CLI." in result.output and "first" in result.output


def test_info_loggers_log_info_before_each_command(quiet_loggers):
    stage, other = quiet_loggers
    app = _app_with_command(info_loggers=[stage])
    result = CliRunner().invoke(app, ["first"])
    assert result.exit_code == 0, result.output
    assert '"level": 20' in result.output  # INFO, set before the command ran
    assert logging.getLogger(other).level == logging.NOTSET


def test_without_info_loggers_no_logging_is_configured(quiet_loggers):
    result = CliRunner().invoke(_app_with_command(), ["first"])
    assert '"level": 0' in result.output


def test_echo_json_is_indented_and_prints_paths_and_dates_as_text(capsys):
    echo_json({"path": Path("a/b"), "day": dt.date(2024, 5, 1), "n": [1]})
    assert capsys.readouterr().out == (
        '{\n  "path": "a/b",\n  "day": "2024-05-01",\n  "n": [\n    1\n  ]\n}\n'
    )


def test_echo_json_escapes_non_ascii_unless_told(capsys):
    echo_json({"answer": "Zürich"})
    echo_json({"answer": "Zürich"}, ensure_ascii=False)
    escaped, kept = capsys.readouterr().out.split("}\n")[:2]
    assert "Z\\u00fcrich" in escaped and "Zürich" in kept
