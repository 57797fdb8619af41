"""The webhook: where Telegram posts updates, checked before a byte of them is read.

python-telegram-bot's own webhook server reads a request's whole body (tornado allows 100 MB) before it
looks at the secret token, and logs an update it cannot parse, content and all, at CRITICAL. This one is
a tornado handler that streams the body (``stream_request_body``), so it judges a request on its headers
first. A ``Content-Length`` over ``MAX_BODY_BYTES`` is answered at once (413, or 403 without the right
``X-Telegram-Bot-Api-Secret-Token``) and its body never read; a smaller body without the right secret
goes to nothing, unkept, and gets 403; an accepted body is read up to the cap, and one that cannot be
read as an update is logged by its size and kind only, never by what a user wrote.

The Application runs as python-telegram-bot's custom-webhook example runs it, on its public API:
initialize, post_init, listen, setWebhook, start; on SIGINT or SIGTERM the same in reverse. Reaching
Telegram at start is retried with the back-off of python-telegram-bot's bootstrap retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TimedOut

if TYPE_CHECKING:
    from bot.context import App

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# An update is a few kilobytes (a message is at most 4096 characters, with its entities and the chat);
# a megabyte leaves room for any update Telegram sends and none for a memory-filling post.
MAX_BODY_BYTES = 1024 * 1024
# python-telegram-bot's bootstrap back-off: 1.5 s after the first failure, 1.5 times longer after each
# next one, at most 30 s.
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class Hook:
    """Where the webhook listens and what it registers with Telegram (see ``bot.app.webhook_options``)."""

    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str
    allowed_updates: list[str]


def describe(body: bytes) -> str:
    """What a body that is no readable update was, in words that carry nothing a user wrote: its size,
    and the names of the top-level fields of the update (or updates) in it, which are Telegram's."""
    size = f"{len(body):,} bytes"
    try:
        data = json.loads(body)
    except ValueError:
        return f"{size}, not JSON"
    if isinstance(data, dict):
        return f"{size}, a JSON object with fields {_fields([data])}"
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return f"{size}, {len(data)} update(s) with fields {_fields(data)}"
    return f"{size}, a JSON {type(data).__name__} instead of an object"


def _fields(objects: list[dict[str, Any]]) -> str:
    names = sorted(
        {name if re.fullmatch(r"[a-z_]{1,32}", name) else "?" for item in objects for name in item}
    )
    return (", ".join(names[:8]) + (", …" if len(names) > 8 else "")) or "none"


async def with_retries(action: Callable[[], Awaitable[T]], retries: int, what: str) -> T:
    """``action()``, tried again up to ``retries`` times while Telegram cannot be reached (a network
    error, a time-out, a 5xx or a RetryAfter), waiting as python-telegram-bot's bootstrap retries wait.
    A rejected token is not retried."""
    delay = FIRST_DELAY_SECONDS
    for attempt in itertools.count(1):
        try:
            return await action()
        except InvalidToken:
            raise
        except (NetworkError, RetryAfter) as exc:
            if attempt > retries:
                raise
            if isinstance(exc, RetryAfter):
                after = exc.retry_after
                wait = (after.total_seconds() if isinstance(after, timedelta) else float(after)) + 0.5
            elif isinstance(exc, TimedOut):
                wait = 0.0  # the time-out was the wait
            else:
                delay = wait = min(MAX_DELAY_SECONDS, delay * 1.5)
            log.warning(
                "%s: Telegram did not answer (%s); try %d of %d in %.1f s",
                what,
                exc,
                attempt + 1,
                retries + 1,
                wait,
            )
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


class WebhookServer:
    """The tornado server of one webhook, on the bot's event loop; ``listening`` once started."""

    def __init__(self, application: App, hook: Hook) -> None:
        self.application = application
        self.hook = hook
        self.port = hook.port  # the bound port once started (a requested 0 becomes a free one)
        self._server: Any = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def _app(self) -> Any:
        import tornado.web

        application, secret = self.application, self.hook.secret_token.encode()

        @tornado.web.stream_request_body
        class UpdateHandler(tornado.web.RequestHandler):
            SUPPORTED_METHODS = ("POST",)

            def initialize(self) -> None:
                self.body = bytearray()
                self.refusal: int | None = None

            def prepare(self) -> None:
                # Only the headers are in: whatever the body holds, none of it has been read.
                presented = self.request.headers.get(SECRET_HEADER, "").encode()
                genuine = hmac.compare_digest(presented, secret)
                declared = self.request.headers.get("Content-Length")
                if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
                    # Answered now; tornado closes the connection instead of reading the body.
                    raise tornado.web.HTTPError(413 if genuine else 403)
                # Any other body (a chunked one too: tornado drops the connection past the cap) is let
                # through to nothing when the secret is wrong, so that the client reads its 403.
                self.request.connection.set_max_body_size(MAX_BODY_BYTES)  # type: ignore[union-attr]
                self.refusal = None if genuine else 403

            def data_received(self, chunk: bytes) -> None:
                if self.refusal is None and not self._finished:
                    self.body += chunk

            async def post(self) -> None:
                if self.refusal is not None:
                    raise tornado.web.HTTPError(self.refusal)
                content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
                if content_type != "application/json":
                    raise tornado.web.HTTPError(415)
                body = bytes(self.body)
                try:
                    update = Update.de_json(json.loads(body), application.bot)
                except Exception:  # whatever it holds, it is dropped and described, never quoted
                    log.warning("webhook: refused an update that cannot be read (%s)", describe(body))
                    raise tornado.web.HTTPError(400) from None
                await application.update_queue.put(update)
                self.set_status(200)
                self.finish()

            def write_error(self, status_code: int, **kwargs: Any) -> None:
                self.finish()  # the status says it all; no page, no traceback

            def log_exception(self, *args: Any) -> None:
                pass  # refusals are expected and are not errors; nothing else raises here

        path = "/" + self.hook.url_path.lstrip("/")
        # No access log: it would print the webhook path, which some operators keep secret.
        return tornado.web.Application(
            [(rf"{re.escape(path.rstrip('/'))}/?", UpdateHandler)], log_function=lambda handler: None
        )

    async def start(self) -> None:
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        sockets = bind_sockets(self.port, self.hook.listen)
        self._server = HTTPServer(self._app())
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        log.info("webhook: listening on %s:%d", self.hook.listen, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None


async def register(application: App, hook: Hook, retries: int) -> None:
    """Tell Telegram where to post updates, and the secret to send with them."""
    await with_retries(
        lambda: application.bot.set_webhook(
            hook.webhook_url, secret_token=hook.secret_token, allowed_updates=hook.allowed_updates
        ),
        retries,
        "setWebhook",
    )


async def serve(application: App, hook: Hook, retries: int) -> None:
    """Run ``application`` behind the webhook until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = WebhookServer(application, hook)
    health = application.bot_data.health
    if health is not None:  # ready once the webhook listens (there is no Updater running to ask)
        health.ready = lambda: application.running and server.listening

    async def start() -> None:
        await with_retries(application.initialize, retries, "start")
        if application.post_init:
            await application.post_init(application)
        await server.start()  # before setWebhook: Telegram may post as soon as it knows the URL
        await register(application, hook, retries)
        await application.start()

    try:
        starting, stopping = asyncio.ensure_future(start()), asyncio.ensure_future(stop.wait())
        # A stop asked for while Telegram is still being tried again ends the tries.
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            starting.result()  # a start that failed raises here
        await stopping
    finally:
        await server.stop()
        if application.running:
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)
        # A start that failed part-way leaves the Bot API session open (shutdown closes only what an
        # initialize that succeeded opened).
        await application.bot.request.shutdown()
