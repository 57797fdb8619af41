"""The aiohttp transport of Bot API calls honours the environment's proxy settings, read once per host."""

from __future__ import annotations

import pytest

from bot.request import AiohttpRequest


def test_the_proxy_named_in_the_environment_is_used_and_no_proxy_respected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    request = AiohttpRequest()
    assert request._proxy_for("https://api.telegram.org/botX/getMe") == "http://proxy.internal:3128"
    assert request._proxy_for("http://127.0.0.1:8081/botX/getMe") is None


def test_without_proxy_settings_requests_go_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert AiohttpRequest()._proxy_for("https://api.telegram.org/botX/getMe") is None
