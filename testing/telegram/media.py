"""Photos: what counts as an image (sniffed from its bytes, as Telegram does), and the files the bot
uploaded, kept so a ``file_id`` can be sent again and ``getFile`` can serve them."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from testing.telegram.records import JSON, UploadedFile, _bad

MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, (0, 0) for other images, None for what is not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
        return 0, 0
    if data.startswith((b"GIF87a", b"GIF89a", b"BM")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return 0, 0
    return None


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


class PhotoStore:
    """The emulator's file store: uploads are kept by file_id and by file path."""

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}

    def _photo_bytes(self, photo: Any) -> bytes:
        if isinstance(photo, UploadedFile):
            data = photo.data
        elif isinstance(photo, str) and photo in self._files:
            data = self._files[photo].data
        elif isinstance(photo, str) and photo:
            raise _bad("wrong file identifier/HTTP URL specified")
        else:
            raise _bad("there is no photo in the request")
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("file is too big")
        return data

    def _store_file(self, data: bytes, extension: str) -> _StoredFile:
        number = len(self._files) + 1
        stored = _StoredFile(
            f"emu-photo-{number}", f"emu-unique-{number}", f"photos/file_{number}.{extension}", data
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._files_by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self.token or stored is None:
            return self._not_found()
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _get_file(self, params: JSON) -> JSON:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }
