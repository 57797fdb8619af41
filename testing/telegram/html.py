"""Telegram's HTML dialect: the tags and entities it accepts, its error texts, and the plain text and
entities it makes of a message."""

from __future__ import annotations

import re
from typing import Final

from testing.telegram.records import JSON

_HTML_ENTITY_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_NAMED_HTML_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TEXT_RUN = re.compile(r"[^<&]+")
# A named entity is the run of letters after "&" (tdlib's decode_html_entity stops at the first non-letter,
# so "&amp1" is "&" then "1").
_HTML_ENTITY = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([A-Za-z]+));?")
_HTML_SPACE: Final = frozenset(" \t\n\r\v\f")
_NAME_TOKEN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


class HtmlError(ValueError):
    pass


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_html_entity(html: str, pos: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY.match(html, pos)
    if match is None:
        return None
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        char = _NAMED_HTML_ENTITIES.get(name)
        return None if char is None else (char, match.end())
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def _decode_html_entities(text: str) -> str:
    if "&" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        decoded = _decode_html_entity(text, i) if text[i] == "&" else None
        if decoded is None:
            out.append(text[i])
            i += 1
        else:
            out.append(decoded[0])
            i = decoded[1]
    return "".join(out)


class _HtmlParser:
    """Telegram's parse_mode=HTML: the same tags, entities and error texts as the Bot API."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.pieces: list[str] = []
        self.offset = 0  # in UTF-16 code units, as entity offsets are
        self.open_tags: list[tuple[str, str, int, bool]] = []  # tag, argument, offset, expandable
        self.entities: list[JSON] = []

    def byte_offset(self, pos: int) -> int:
        return len(self.html[:pos].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.pieces.append(text)
        self.offset += _utf16_len(text)

    def parse(self) -> tuple[str, list[JSON]]:
        html, i, n = self.html, 0, len(self.html)
        while i < n:
            run = _HTML_TEXT_RUN.match(html, i)
            if run is not None:
                self.emit(run.group())
                i = run.end()
            elif html[i] == "&":
                decoded = _decode_html_entity(html, i)
                # Telegram keeps a lone ampersand as text rather than rejecting the message: the Bot API
                # parses HTML with tdlib, whose decode_html_entity returns 0 for "&" not starting lt, gt,
                # amp, quot or a numeric reference ("unsupported literal entity"), and parse_html then
                # keeps the "&" as a character (tdlib/td td/telegram/MessageEntity.cpp). So "S&P 500"
                # arrives whole; only a tag-like "<" is refused. The Bot API docs still ask for every
                # such "&" as &amp; (core.telegram.org/bots/api#html-style), and capgap escapes them.
                char, i = decoded if decoded is not None else ("&", i + 1)
                self.emit(char)
            elif i + 1 < n and html[i + 1] == "/":
                i = self.close_tag(i)
            else:
                i = self.open_tag(i)
        if self.open_tags:
            raise HtmlError(f'Can\'t find end tag corresponding to start tag "{self.open_tags[-1][0]}"')
        for entity in self.entities:
            entity.pop("_language", None)
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.pieces), self.entities

    def skip_spaces(self, i: int) -> int:
        while i < len(self.html) and self.html[i] in _HTML_SPACE:
            i += 1
        return i

    def open_tag(self, begin: int) -> int:
        html, n = self.html, len(self.html)
        where = f"at byte offset {self.byte_offset(begin)}"
        i = begin + 1
        while i < n and html[i] not in _HTML_SPACE and html[i] != ">":
            i += 1
        if i >= n:
            raise HtmlError(f"Unclosed start tag {where}")
        tag = html[begin + 1 : i].lower()
        if tag not in _HTML_ENTITY_TYPES:
            raise HtmlError(f'Unsupported start tag "{tag}" {where}')
        argument = ""
        expandable = False
        while True:
            i = self.skip_spaces(i)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] == ">":
                break
            name_begin = i
            while i < n and html[i] not in _HTML_SPACE and html[i] not in "=>":
                i += 1
            name = html[name_begin:i].lower()
            if not name:
                raise HtmlError(f'Empty attribute name in the tag "{tag}" {where}')
            i = self.skip_spaces(i)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] != "=":
                if tag == "blockquote" and name == "expandable":
                    expandable = True
                    continue
                raise HtmlError(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" {where}'
                )
            i = self.skip_spaces(i + 1)
            if i >= n:
                raise HtmlError(f"Unclosed start tag {where}")
            if html[i] in "\"'":
                end = html.find(html[i], i + 1)
                if end < 0:
                    raise HtmlError(f"Unclosed start tag {where}")
                value = _decode_html_entities(html[i + 1 : end])
                i = end + 1
            else:
                token_begin = i
                while i < n and html[i] in _NAME_TOKEN_CHARS:
                    i += 1
                value = html[token_begin:i].lower()
                if i >= n or (html[i] not in _HTML_SPACE and html[i] != ">"):
                    raise HtmlError(
                        f"Unexpected end of name token at byte offset {self.byte_offset(token_begin)}"
                    )
            if (tag == "a" and name == "href") or (tag == "span" and name == "class"):
                argument = value
            elif tag == "code" and name == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "blockquote" and name == "expandable":
                expandable = True
        if tag == "span" and argument != "tg-spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" {where}')
        self.open_tags.append((tag, argument, self.offset, expandable))
        return i + 1

    def close_tag(self, begin: int) -> int:
        html, n = self.html, len(self.html)
        where = f"at byte offset {self.byte_offset(begin)}"
        if not self.open_tags:
            raise HtmlError(f"Unexpected end tag {where}")
        i = begin + 2
        while i < n and html[i] not in _HTML_SPACE and html[i] != ">":
            i += 1
        name = html[begin + 2 : i].lower()
        i = self.skip_spaces(i)
        if i >= n or html[i] != ">":
            raise HtmlError(f"Unclosed end tag {where}")
        tag, argument, start, expandable = self.open_tags[-1]
        if name and name != tag:
            raise HtmlError(f'Unmatched end tag {where}, expected "</{tag}>", found "</{name}>"')
        self.open_tags.pop()
        length = self.offset - start
        if length > 0:
            self.add_entity(tag, argument, start, length, expandable)
        return i + 1

    def add_entity(self, tag: str, argument: str, start: int, length: int, expandable: bool) -> None:
        kind = _HTML_ENTITY_TYPES[tag]
        entity: JSON = {"type": kind, "offset": start, "length": length}
        if kind == "text_link":
            if not argument:
                return
            entity["url"] = argument
        elif kind == "code" and argument:
            entity["_language"] = argument
        elif kind == "pre":
            inner = self.entities[-1] if self.entities else None
            if inner and inner["type"] == "code" and (inner["offset"], inner["length"]) == (start, length):
                # <pre><code class="language-x"> is one pre entity carrying the language.
                self.entities.pop()
                if "_language" in inner:
                    entity["language"] = inner["_language"]
        elif kind == "blockquote" and expandable:
            entity["type"] = "expandable_blockquote"
        self.entities.append(entity)


def parse_html(html: str) -> tuple[str, list[JSON]]:
    """Return the text a user sees and its entities, or raise HtmlError with Telegram's wording."""
    return _HtmlParser(html).parse()
