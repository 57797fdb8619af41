"""How the bot's Bot API calls travel: PTB's request interface (``telegram.request.BaseRequest``) on aiohttp.

PTB builds every request (form fields, JSON-encoded complex values, multipart uploads) and turns every
answer into objects and errors; a ``BaseRequest`` only moves bytes. PTB's default, ``HTTPXRequest``, spends
about 1.5 ms of CPU a call in httpx and httpcore (its connection pool re-checks every idle connection with a
system call on each request), so one core sends at most ~600 messages a second; aiohttp moves the same
request in about a third of that (see BENCHMARKS.md). Long polling keeps PTB's own request: one call at a
time, with its read timeout stretched by the poll timeout.
"""

from __future__ import annotations

import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# PTB's HTTPXRequest defaults, so a call behaves the same whichever request class carries it.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
MEDIA_WRITE_TIMEOUT = 20.0
# What PTB passes for a timeout the caller did not set (its DefaultValue class, without a private import).
_NOT_SET = type(BaseRequest.DEFAULT_NONE)
JSON_HEADERS = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """``BaseRequest`` on one ``aiohttp.ClientSession`` with up to ``connection_pool_size`` keep-alive
    connections, opened in ``initialize`` and closed in ``shutdown`` (PTB calls both with the bot's)."""

    def __init__(self, connection_pool_size: int = 64) -> None:
        self._pool_size = connection_pool_size
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY…, as PTB's httpx default
        honours them), looked up once per scheme and host: aiohttp's own ``trust_env`` re-reads the
        environment and ~/.netrc on every request, which tripled the CPU of a send."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme)
            self._proxies[key] = None if proxy is None or urllib.request.proxy_bypass(key[1]) else proxy
        return self._proxies[key]

    @property
    def read_timeout(self) -> float | None:
        return READ_TIMEOUT

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # The session is made here, inside the running event loop, never at import or build time.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        data: Any = None
        headers: dict[str, str] | None = None
        uploads = request_data.multipart_data if request_data else None
        if uploads:
            form = aiohttp.FormData()
            for name, value in request_data.json_parameters.items():  # type: ignore[union-attr]
                form.add_field(name, value)
            for name, (filename, content, mimetype) in uploads.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            data = form
        elif request_data is not None:
            # A JSON body (the Bot API takes one for any call without a file): encoding a reply of a
            # thousand characters form-urlencoded costs a Python call per byte, json.dumps one C call.
            data = request_data.json_payload
            headers = JSON_HEADERS

        read = _given(read_timeout, READ_TIMEOUT)
        write = _given(write_timeout, MEDIA_WRITE_TIMEOUT if uploads else READ_TIMEOUT)
        connect = _given(connect_timeout, CONNECT_TIMEOUT)
        pool = _given(pool_timeout, POOL_TIMEOUT)
        # aiohttp has no write timeout of its own: the upload is bounded by the whole call's budget.
        total = None if read is None or write is None else read + write + (connect or 0) + (pool or 0)
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None if connect is None or pool is None else connect + pool,  # includes the pool wait
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout, proxy=self._proxy_for(url)
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError since Python 3.11
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # The class name says what failed when the message is empty (as PTB does for httpx).
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc


def _given(value: Any, default: float) -> float | None:
    return default if isinstance(value, _NOT_SET) else value
