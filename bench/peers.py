"""The test suite's Telegram Bot API emulator, hosted in a process of its own for the benchmarks.

In the tests the emulator shares the bot's event loop, which is right for checking behaviour but would
bill its own work (parsing HTML, recording calls) to the bot when measuring throughput and latency. Here
it runs the same ``testing.telegram.TelegramEmulator`` in a child process — on the other core, as
Telegram's servers are elsewhere — and the benchmarks drive it through a small JSON control API:

- ``POST /limits`` ``{"global_per_second": 30, "per_chat_per_second": 1}`` (``{}`` turns limits off)
- ``GET /calls?since=N&methods=a,b`` the calls recorded after the N-th: ``[method, chat_id, time, status]``
- ``POST /wait`` ``{"method": "setMyCommands", "timeout": 30}``: the monotonic time of that call
- ``POST /polling`` ``{"timeout": 30}``: the monotonic time a getUpdates request was first held open
- ``POST /burst`` ``{"chats": [...], "text": "/standing", "timeout": 60}``: every chat sends ``text`` at
  once; the answer is each chat's latency from the update being queued to the bot's reply being recorded
- ``GET /stats``: 429 answers given and emulator crashes

Times are ``time.monotonic()``, one clock for every process on the machine.

``python -m bench.peers`` runs the child; ``EmulatorProcess`` starts and talks to it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
REPLY_METHODS = ("sendMessage", "sendPhoto")


class EmulatorProcess:
    """A ``python -m bench.peers`` child: ``api_root`` for the bot, async helpers for the control API."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self.api_root = ""
        self._control = ""
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmulatorProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.peers",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited before it was ready")
        ready = json.loads(line)
        self.api_root, self._control = ready["api"], ready["control"]
        # Control calls can wait minutes (a burst of chart requests); the emulator side bounds them.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # the child stops when its stdin closes
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        assert self._session is not None
        async with self._session.post(self._control + path, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def _get(self, path: str, **params: str) -> Any:
        assert self._session is not None
        async with self._session.get(self._control + path, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def limits(self, **limits: int) -> None:
        await self._post("/limits", limits)

    async def calls(self, since: int = 0, methods: tuple[str, ...] = ()) -> tuple[int, list[list[Any]]]:
        answer = await self._get("/calls", since=str(since), methods=",".join(methods))
        return int(answer["next"]), answer["calls"]

    async def wait(self, method: str, within: float = 30.0) -> float:
        """When the bot called ``method`` (the emulator gives up after ``within`` seconds)."""
        return float((await self._post("/wait", {"method": method, "timeout": within}))["time"])

    async def polling(self, within: float = 30.0) -> float:
        """When the bot's first long poll was held open (the emulator gives up after ``within`` seconds)."""
        return float((await self._post("/polling", {"timeout": within}))["time"])

    async def burst(self, chats: list[int], text: str, within: float = 120.0) -> list[float]:
        answer = await self._post("/burst", {"chats": chats, "text": text, "timeout": within})
        return [float(v) for v in answer["latencies"]]

    async def stats(self) -> dict[str, Any]:
        return dict(await self._get("/stats"))


async def _serve() -> None:
    from testing.telegram import TelegramEmulator

    emulator = TelegramEmulator()
    await emulator.start()

    async def limits(request: web.Request) -> web.Response:
        body = await request.json()
        if body:
            emulator.enforce_limits(**body)
        else:
            emulator.disable_limits()
        return web.json_response({"ok": True})

    async def calls(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        methods = {m for m in request.query.get("methods", "").split(",") if m}
        recorded = emulator.calls[since:]
        picked = [
            [c.method, c.chat_id, c.time, c.status] for c in recorded if not methods or c.method in methods
        ]
        return web.json_response({"next": since + len(recorded), "calls": picked})

    async def wait(request: web.Request) -> web.Response:
        body = await request.json()
        (call,) = await emulator.wait_for(method=body["method"], timeout=float(body.get("timeout", 30)))
        return web.json_response({"time": call.time})

    async def polling(request: web.Request) -> web.Response:
        body = await request.json()
        await emulator.wait_until_polling(timeout=float(body.get("timeout", 30)))
        return web.json_response({"time": time.monotonic()})

    async def burst(request: web.Request) -> web.Response:
        body = await request.json()
        chats: list[int] = body["chats"]
        timeout = float(body.get("timeout", 120))
        sent_at = {}
        for chat_id in chats:
            emulator.user_message(chat_id, body["text"])
            sent_at[chat_id] = time.monotonic()

        async def reply(chat_id: int) -> float:
            (call,) = await emulator.wait_for(
                lambda c: c.method in REPLY_METHODS, chat_id=chat_id, timeout=timeout
            )
            return call.time - sent_at[chat_id]

        latencies = await asyncio.gather(*(reply(chat_id) for chat_id in chats))
        return web.json_response({"latencies": latencies})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"too_many_requests": emulator.too_many_requests, "internal_errors": emulator.internal_errors}
        )

    control = web.Application()
    control.router.add_post("/limits", limits)
    control.router.add_get("/calls", calls)
    control.router.add_post("/wait", wait)
    control.router.add_post("/polling", polling)
    control.router.add_post("/burst", burst)
    control.router.add_get("/stats", stats)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(json.dumps({"api": emulator.root, "control": f"http://{host}:{port}"}), flush=True)

    # Serve until the parent closes our stdin (or dies, which closes it too).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await emulator.stop()


if __name__ == "__main__":
    asyncio.run(_serve())
