"""AUTOMATIC1111 "parameters" text (infotext): reading it out of a PNG and parsing it the way A1111's
``parse_generation_parameters`` does, so that clients which feed ``/png-info`` answers back into txt2img see
the keys and the string values they are used to.

The text comes from untrusted images (zTXt chunks inflate about 1000:1), so parsing is linear in the text's
length: A1111's own regex backtracks quadratically over a long key-like run (a 253-byte request held the
event loop for seconds). The scanner below reproduces that regex's ``findall`` answers, token by token,
with single-quantifier patterns that never rescan what they have passed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

# Longest "parameters" text parsed; A1111's own infotexts stay far below it (prompts here are capped at
# queue.max_prompt_length).
MAX_INFOTEXT_CHARS = 65_536
# Longest total of all text chunks returned: the answer echoes them, and Pillow alone allows 64 MB.
MAX_TEXT_CHUNKS_CHARS = 262_144

_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"
# A last line with fewer pairs than this is prose (part of the prompt), not the parameters line.
_MIN_PAIRS = 3

# Tokens of A1111's grammar ``\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)``, one quantifier each.
# The key and backslash runs are read backwards from a colon or quote, on the reversed line.
_SPACES = re.compile(r"\s*")
_WORD = re.compile(r"\w")
_KEY_CHARS = re.compile(r"[\w \-/]*")
# A key is at least two key characters before its colon: colons without them are skipped in C.
_KEY_END = re.compile(r"[\w \-/]{2}:")
_BACKSLASHES = re.compile(r"\\*")


def _run_end(pattern: re.Pattern[str], line: str, pos: int) -> int:
    """Where a ``*`` pattern's match starting at ``pos`` ends (it always matches, maybe empty)."""
    match = pattern.match(line, pos)
    return pos if match is None else match.end()


def _run_before(pattern: re.Pattern[str], reversed_line: str, pos: int) -> int:
    """Length of the run of ``pattern`` characters just before ``pos`` in the line ``reversed_line`` reverses."""
    start = len(reversed_line) - pos
    return _run_end(pattern, reversed_line, start) - start


class ImageDecodeError(ValueError):
    """The value given as an image is not a base64 image we can open, or its text breaks a limit."""


@dataclass
class PngInfo:
    """What ``/png-info`` answers: the parameters text, the other text chunks, the parsed parameters."""

    info: str = ""
    items: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


def _quoted_end(line: str, reversed_line: str, start: int) -> int:
    """Index just past the closing quote of the JSON-ish string opening at ``start``, or -1 when A1111's
    ``"(?:\\.|[^\\"])+"`` does not match there (unclosed or empty).

    Backslashes pair up from the left, and a run of them always starts a pair, so a quote closes the string
    exactly when the backslashes right before it are even in number.
    """
    pos = start + 1
    while (quote := line.find('"', pos)) != -1:
        if _run_before(_BACKSLASHES, reversed_line, quote) % 2 == 0:
            return quote + 1 if quote > start + 1 else -1
        pos = quote + 1
    return -1


def infotext_pairs(line: str) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs A1111's regex ``findall`` finds in one line (no newline in it), in time
    linear in its length. Values keep their quotes, as ``findall`` returns them.

    A match's key is a run of key characters that a colon ends, so the scan goes from colon to colon: the
    key is that run from its first word character (at least one key character must follow it); a colon
    whose run has none is no match, and no match can start before it and end at a later colon (the run
    cannot cross it).
    """
    reversed_line = line[::-1]
    size = len(line)
    pairs: list[tuple[str, str]] = []
    pos = 0
    while (found := _KEY_END.search(line, pos)) is not None:
        colon = found.end() - 1
        run_start = max(colon - _run_before(_KEY_CHARS, reversed_line, colon), pos)
        word = _WORD.search(line, run_start, colon - 1)
        if word is None:
            pos = colon + 1
            continue
        value_start = _run_end(_SPACES, line, colon + 1)
        end = -1
        if value_start < size and line[value_start] == '"':
            end = _quoted_end(line, reversed_line, value_start)
            if end != -1 and end < size and line[end] != ",":
                end = -1  # a quoted value must end the pair; A1111 falls back to the comma-free form
        if end == -1:
            comma = line.find(",", value_start)
            end = size if comma == -1 else comma
        pairs.append((line[word.start() : colon], line[value_start:end]))
        pos = end + 1  # past the separating comma (or the end)
    return pairs


def parse_infotext(text: str) -> dict[str, str]:
    """Split an infotext into Prompt, Negative prompt and its ``Key: value`` pairs.

    ``Size: 512x768`` becomes ``Size-1``/``Size-2`` as in A1111. Values stay strings, as A1111 sends them.
    """
    *lines, last = text.strip().split("\n")
    pairs = infotext_pairs(last)
    if len(pairs) < _MIN_PAIRS:
        lines.append(last)
        pairs = []
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE) :].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in pairs:
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value[1:-1]
        size = _IMAGE_SIZE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result


def decode_image(value: str) -> bytes:
    """Bytes of a base64 image, with or without a ``data:image/...;base64,`` prefix."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"not valid base64: {exc}") from exc


def read_text_chunks(data: bytes) -> dict[str, str]:
    """Text metadata of an image (PNG tEXt/zTXt/iTXt chunks and the like), string values only.

    Pillow refuses a text chunk that inflates past 1 MB, 64 MB of text in all, and a header announcing a
    decompression bomb; each of those is the client's bad image, never a server error. Pixels are never
    decoded.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            info = dict(image.info)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageDecodeError(f"not an image Pillow can open: {exc}") from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        # Pillow's text limits ("Decompressed data too large", "Too much memory used in text chunks") and
        # its broken-chunk errors.
        raise ImageDecodeError(f"unreadable image metadata: {exc}") from exc
    chunks = {key: value for key, value in info.items() if isinstance(key, str) and isinstance(value, str)}
    total = sum(len(key) + len(value) for key, value in chunks.items())
    if total > MAX_TEXT_CHUNKS_CHARS:
        raise ImageDecodeError(f"text chunks must total at most {MAX_TEXT_CHUNKS_CHARS} characters (got {total})")
    return chunks


def read_png_info(value: str, parameters_chunk: str) -> PngInfo:
    """Everything ``/png-info`` answers for a base64 image; blocking (base64, inflate, parse): run it off
    the event loop."""
    chunks = read_text_chunks(decode_image(value))
    text = chunks.pop(parameters_chunk, "")
    if len(text) > MAX_INFOTEXT_CHARS:
        raise ImageDecodeError(
            f"the {parameters_chunk!r} text must be at most {MAX_INFOTEXT_CHARS} characters (got {len(text)})"
        )
    return PngInfo(info=text, items=chunks, parameters=parse_infotext(text) if text else {})
