"""Every command is documented: in /help, in Telegram's command menu and in the README."""

from __future__ import annotations

import re
from pathlib import Path

from bot.commands import registry
from bot.handlers import menu

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_user_command_is_in_the_menu() -> None:
    menu_names = {c.command for c in menu(registry())}
    assert {c.name for c in registry() if c.menu and not c.admin_only} == menu_names
    assert all(1 <= len(c.description) <= 256 for c in menu(registry()))


def test_every_command_is_in_the_readme_commands_table() -> None:
    table_names = set(re.findall(r"^\| `/([a-z_]+)", README, re.MULTILINE))
    assert {c.name for c in registry()} <= table_names
    assert table_names <= {c.name for c in registry()}, "README documents a command that does not exist"


def test_readme_starts_with_the_run_and_test_commands() -> None:
    first_block = README.split("```")[1]
    assert "capgap run" in first_block and "pytest" in first_block


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    test_line = next(line for line in README.split("```")[1].splitlines() if "pytest" in line)
    assert test_line.strip() in ci
