"""/healthz: is capgap alive, ready, and doing its job? JSON for a container HEALTHCHECK or a monitor.

The answer is 200 when healthy and 503 when not. Unhealthy means any of:

- not ready: the bot has not finished starting, is stopping, or its database does not answer;
- market data: during NYSE regular hours, no successful price refresh for ``REFRESH_MISSES`` poll
  intervals (at least ``MIN_REFRESH_GAP``) counted from the later of the last success and the open; at any
  time, the latest close still missing ``CLOSE_GRACE`` after it should have been fetched;
- delivery: a message has waited in the outbox longer than ``BACKLOG_MAX_AGE``.

The last refresh error and the last delivery error are reported, but do not by themselves make capgap
unhealthy: a refresh that failed once is retried on the next tick, a message that failed once is retried
with back-off, and the thresholds above catch the failures that last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from market import calendar

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

REFRESH_MISSES = 3
MIN_REFRESH_GAP = timedelta(minutes=15)
CLOSE_GRACE = timedelta(hours=2)
BACKLOG_MAX_AGE = timedelta(minutes=15)
PATH = "/healthz"


@dataclass(frozen=True)
class Health:
    ready: bool
    problems: tuple[str, ...]
    body: dict[str, Any]

    @property
    def healthy(self) -> bool:
        return self.ready and not self.problems

    @property
    def status_code(self) -> int:
        return 200 if self.healthy else 503


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def check(services: Services, now: datetime, *, ready: bool = True, mode: str = "polling") -> Health:
    """Judge the health of capgap at ``now`` from its database (blocking: call it off the event loop)."""
    problems: list[str] = []
    try:
        db = services.alerts.db
        db.conn.total_changes  # noqa: B018  the writers' connection: once closed, this raises
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the file, through a reader
    except Exception as exc:  # a locked, missing or corrupt file: whatever it is, capgap is not ready
        return Health(False, (f"database: {exc}",), {"status": "unhealthy", "live": True, "ready": False})

    market = _market(services, now, problems)
    pending, oldest = services.alerts.outbox.backlog()
    oldest_age = _age(now, oldest)
    if oldest is not None and now - oldest > BACKLOG_MAX_AGE:
        problems.append(
            f"outbox: a message has waited {_minutes(now - oldest)} (limit {_minutes(BACKLOG_MAX_AGE)})"
        )
    last_error = services.alerts.outbox.last_error()
    if not ready:
        problems.append("not ready: starting or stopping")
    body: dict[str, Any] = {
        "status": "ok" if ready and not problems else "unhealthy",
        "live": True,
        "ready": ready,
        "mode": mode,
        "checked_at": now.isoformat(timespec="seconds"),
        "problems": problems,
        "market": market,
        "outbox": {"pending": pending, "oldest_pending_age_seconds": oldest_age},
        "delivery": {
            "last_error": None if last_error is None else last_error[0],
            "last_error_row_status": None if last_error is None else last_error[1],
        },
    }
    return Health(ready, tuple(problems), body)


def _market(services: Services, now: datetime, problems: list[str]) -> dict[str, Any]:
    cache = services.market.cache
    last_ok = cache.last_refresh("prices", ok=True)
    last_any = cache.last_refresh("prices")
    ok_at = datetime.fromisoformat(str(last_ok["at"])) if last_ok else None
    latest = cache.latest_day()
    fresh = calendar.freshness(latest, now)
    regular_hours = calendar.is_regular_hours(now)

    if regular_hours:
        allowed = max(MIN_REFRESH_GAP, timedelta(seconds=REFRESH_MISSES * services.config.poll_seconds))
        session = calendar.current_session(now)
        opened = calendar.session_open(session) if session is not None else now
        since = max(ok_at, opened) if ok_at is not None else opened
        if now - since > allowed:
            problems.append(
                f"market data: no successful refresh for {_minutes(now - since)} during trading hours "
                f"(limit {_minutes(allowed)})"
            )
    if fresh.stale:
        due = calendar.session_close(fresh.expected) + calendar.CLOSE_SETTLE
        behind = fresh.sessions_behind
        if latest is None or (behind is not None and behind >= 2) or now - due > CLOSE_GRACE:
            problems.append(
                f"market data: the {fresh.expected.isoformat()} close is missing "
                f"(latest close {latest.isoformat() if latest else 'none'})"
            )
    return {
        "source": str(last_ok["source"]) if last_ok else services.market.source.name,
        "last_refresh_at": ok_at.isoformat(timespec="seconds") if ok_at else None,
        "last_refresh_age_seconds": _age(now, ok_at),
        "last_error": str(last_any["detail"]) if last_any and not last_any["ok"] else None,
        "last_error_reason": (
            str(last_any.get("reason") or last_any["detail"]) if last_any and not last_any["ok"] else None
        ),
        # Values market.plausibility kept out of the cache; reported, not a problem by themselves.
        "held_values": cache.held_counts(),
        "latest_close": latest.isoformat() if latest else None,
        "expected_close": fresh.expected.isoformat(),
        "sessions_behind": fresh.sessions_behind,
        "regular_hours": regular_hours,
    }


class HealthServer:
    """``GET /healthz`` on its own port, served on the bot's event loop (tornado, which PTB's webhook
    server uses too). Started in ``post_init``, stopped in ``post_shutdown``."""

    def __init__(
        self,
        services: Services,
        listen: str,
        port: int,
        *,
        ready: Callable[[], bool],
        mode: str,
        secrets: list[str],
    ) -> None:
        self.services = services
        self.listen = listen
        self.port = port  # the bound port once started (a requested 0 becomes a free one)
        self.ready = ready
        self.mode = mode
        self.secrets = [s for s in secrets if s]
        self.started = time.monotonic()
        self._server: Any = None

    async def report(self) -> tuple[int, str]:
        health = await asyncio.to_thread(
            check, self.services, self.services.now(), ready=self.ready(), mode=self.mode
        )
        body = dict(health.body, uptime_seconds=int(time.monotonic() - self.started))
        text = json.dumps(body, indent=1, default=str)
        for secret in self.secrets:  # an error text could quote a URL; the token never leaves
            text = text.replace(secret, "***")
        return health.status_code, text

    async def start(self) -> None:
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets
        from tornado.web import Application, RequestHandler

        server = self

        class HealthHandler(RequestHandler):
            async def get(self) -> None:
                status, text = await server.report()
                self.set_status(status)
                self.set_header("Content-Type", "application/json")
                self.set_header("Cache-Control", "no-store")
                self.finish(text)

        # No access log: a monitor polling every few seconds would drown the bot's own lines.
        app = Application([(PATH, HealthHandler)], log_function=lambda handler: None)
        sockets = bind_sockets(self.port, self.listen)
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%d%s", self.listen, self.port, PATH)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
