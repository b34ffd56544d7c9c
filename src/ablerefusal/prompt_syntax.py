"""AUTOMATIC1111's prompt syntax, pure Python (gateway and worker both read it; no torch here).

- ``<lora:name:weight>`` tags (A1111 "extra networks"): ``extract_loras`` removes them from the text and
  returns them in order; the gateway validates the names, the worker applies them.
- Attention: ``(words)`` x1.1, ``((words))`` x1.21, ``(words:1.3)`` x1.3, ``[words]`` /1.1, ``\\(`` ``\\)``
  ``\\[`` ``\\]`` ``\\\\`` literal characters, and ``BREAK`` (upper case, a word of its own) which starts a new
  77-token chunk. ``parse_attention`` turns a prompt into weighted fragments per BREAK segment, with the same
  rules as A1111's ``prompt_parser.parse_prompt_attention``: unbalanced brackets still weight what follows
  them, a ``:`` outside a weight is plain text, and adjacent fragments of equal weight merge.

No maintained PyPI package parses this syntax (compel has its own, ``(words)1.3`` / ``words++``; sd_embed,
which implements A1111's, is not published on PyPI), hence this small parser; the encoding of the fragments is
compel's (worker/engine/adapters/prompts.py).
"""

from __future__ import annotations

import math
import re

from ablerefusal.protocol import LoraRef

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

# <lora:name> or <lora:name:weight>; A1111 also reads <lora:name:te:unet>, whose second number we refuse
# (one weight applies to the text encoders and the UNet alike here).
_LORA_TAG = re.compile(r"<lora:([^:>]*)(?::([^>]*))?>", re.IGNORECASE)
_ATTENTION = re.compile(
    r"""
    \\\(|\\\)|\\\[|\\\]|\\\\|\\|   # escapes, and a lone backslash
    \(|\[|                        # openers
    :\s*([+-]?[.\d]+)\s*\)|       # a weight closing a round bracket
    \)|\]|                        # closers
    [^\\()\[\]:]+|                # plain text
    :                             # a colon that closes nothing
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)

Fragment = tuple[str, float]


class PromptSyntaxError(ValueError):
    """A prompt tag that cannot be read; the message names the tag and the rule."""


def extract_loras(prompt: str) -> tuple[str, list[LoraRef]]:
    """The prompt without its ``<lora:…>`` tags, and the tags in order (a repeated name: the last one wins
    when the worker merges them). Raises PromptSyntaxError for a tag without a name or with a bad weight."""
    refs: list[LoraRef] = []

    def take(match: re.Match[str]) -> str:
        name, weight_text = match.group(1).strip(), match.group(2)
        if not name:
            raise PromptSyntaxError(f"{match.group(0)!r}: a <lora:name:weight> tag needs a name")
        weight = 1.0
        if weight_text is not None:
            if ":" in weight_text:
                raise PromptSyntaxError(
                    f"{match.group(0)!r}: separate text-encoder and UNet weights are not supported; use one weight"
                )
            try:
                weight = float(weight_text)
            except ValueError:
                raise PromptSyntaxError(f"{match.group(0)!r}: the weight must be a number") from None
            if not math.isfinite(weight):
                raise PromptSyntaxError(f"{match.group(0)!r}: the weight must be a finite number")
        try:
            refs.append(LoraRef(name=name, weight=weight))
        except ValueError as exc:  # pydantic: weight out of range, name too long
            raise PromptSyntaxError(f"{match.group(0)!r}: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
        return ""

    return _LORA_TAG.sub(take, prompt), refs


def merge_loras(prompt_refs: list[LoraRef], explicit: list[LoraRef]) -> list[LoraRef]:
    """Prompt tags merged with a call's ``loras`` field (the field wins per name), sorted by name so that the
    order a user wrote them in never changes the pixels (adapters are summed in this order)."""
    merged = {ref.name: ref for ref in prompt_refs}
    merged |= {ref.name: ref for ref in explicit}
    return [merged[name] for name in sorted(merged)]


def _weighted(text: str) -> list[list[float | str]]:
    """A1111's attention parse of one BREAK-free text: [text, weight] pairs, before merging."""
    res: list[list[float | str]] = []
    round_starts: list[int] = []
    square_starts: list[int] = []

    def multiply(start: int, multiplier: float) -> None:
        for pair in res[start:]:
            pair[1] = float(pair[1]) * multiplier

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            res.append([token[1], 1.0])
        elif token == "(":
            round_starts.append(len(res))
        elif token == "[":
            square_starts.append(len(res))
        elif weight is not None and round_starts:
            try:
                value = float(weight)
            except ValueError:  # "(a:1.2.3)": A1111 fails here; we keep the text as written
                res.append([token, 1.0])
                continue
            multiply(round_starts.pop(), value)
        elif token == ")" and round_starts:
            multiply(round_starts.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_starts:
            multiply(square_starts.pop(), SQUARE_MULTIPLIER)
        else:
            res.append([token, 1.0])
    # Unclosed brackets weight everything after them, as A1111 does.
    for start in round_starts:
        multiply(start, ROUND_MULTIPLIER)
    for start in square_starts:
        multiply(start, SQUARE_MULTIPLIER)
    return res


def _merge(pairs: list[list[float | str]]) -> list[Fragment]:
    out: list[Fragment] = []
    for text, weight in pairs:
        if out and out[-1][1] == weight:
            out[-1] = (out[-1][0] + str(text), float(weight))
        else:
            out.append((str(text), float(weight)))
    return out or [("", 1.0)]


def parse_attention(prompt: str) -> list[list[Fragment]]:
    """The prompt as BREAK-separated segments of ``(text, weight)`` fragments. Brackets do not span a BREAK
    (A1111 splits there first, too)."""
    return [_merge(_weighted(segment)) for segment in _BREAK.split(prompt)]


def plain_text(prompt: str) -> str:
    """The prompt's words without any syntax (what a reader of the text sees), BREAKs as spaces."""
    return " ".join("".join(text for text, _ in segment) for segment in parse_attention(prompt)).strip()
