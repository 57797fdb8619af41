"""Parameterised SQL only: no value is ever formatted into an SQL string in database/, market/, alerts/ or bot/.

Every f-string, %-format or .format() whose text looks like SQL is found by reading the code's syntax
tree. The few that build SQL from something other than a value (a constant column list, a run of ``?``
placeholders, an identifier from SQLite's own catalogue) are listed here by name, with the reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("database", "market", "alerts", "bot")
# capgap writes SQL keywords in capitals, and its messages to people do not shout them.
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH|REPLACE)\b|\b(FROM|WHERE|VALUES)\b"
)

# (file, the interpolated expression) -> why it is no value
ALLOWED = {
    ("alerts/store/rules.py", "columns"): "a constant list of column names (RULE_COLUMNS)",
    ("alerts/store/rules.py", "','.join('?' * len(chunk))"): "only ? placeholders; the values are bound",
    ("database/files.py", "name.replace(chr(34), chr(34) * 2)"): "a table name from sqlite_master, quoted",
    ("database/connection.py", "PAGE_CACHE_KIB"): "a constant integer (PRAGMA takes no bound parameter)",
    ("database/wal.py", "LOG_SIZE_LIMIT_BYTES"): "a constant integer (PRAGMA takes no bound parameter)",
}


def interpolations(path: Path) -> list[tuple[str, str, int]]:
    """(expression, how, line) of every formatting into an SQL-looking string in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if SQL.search(text):
                found += [
                    (ast.unparse(v.value), "f-string", node.lineno)
                    for v in node.values
                    if isinstance(v, ast.FormattedValue)
                ]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if (
                isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
                and SQL.search(node.left.value)
            ):
                found.append((ast.unparse(node.right), "%-format", node.lineno))
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
        ):
            target = node.func.value
            if (
                isinstance(target, ast.Constant)
                and isinstance(target.value, str)
                and SQL.search(target.value)
            ):
                found.append((ast.unparse(node), ".format()", node.lineno))
    return sorted(found, key=lambda item: item[2])


def test_no_value_is_formatted_into_sql() -> None:
    offending = []
    seen_allowed = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            for expression, how, line in interpolations(path):
                if (name, expression) in ALLOWED:
                    seen_allowed.add((name, expression))
                else:
                    offending.append(f"{name}:{line}: {how} puts {expression!r} into SQL; bind it with ?")
    assert not offending, "\n".join(offending)
    assert seen_allowed == set(ALLOWED), "an allowed exception no longer exists: remove it from ALLOWED"


def test_the_scan_finds_what_it_is_meant_to(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(db, chat_id, name):\n"
        "    db.execute(f'SELECT * FROM rules WHERE chat_id = {chat_id}')\n"
        "    db.execute('DELETE FROM chats WHERE chat_id = %s' % chat_id)\n"
        "    db.execute('UPDATE chats SET zone = {}'.format(name))\n"
        "    db.execute('SELECT * FROM rules WHERE chat_id = ?', [chat_id])\n"
        "    return f'Hello {name}, from the bot'\n"
    )
    assert [(how, line) for _, how, line in interpolations(sample)] == [
        ("f-string", 2),
        ("%-format", 3),
        (".format()", 4),
    ]
