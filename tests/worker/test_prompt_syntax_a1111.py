"""The A1111 prompt parser (``ablerefusal.prompt_syntax``), pure Python: attention weights, escapes, BREAK and
``<lora:…>`` tags. Expected weights are A1111's multipliers written out (1.1 per round bracket, /1.1 per square)."""

from __future__ import annotations

import pytest

from ablerefusal.prompt_syntax import PromptSyntaxError, extract_loras, merge_loras, parse_attention, plain_text
from ablerefusal.protocol import LoraRef


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat) sat", [("a ", 1.0), ("cat", 1.1), (" sat", 1.0)]),
        ("((cat))", [("cat", 1.1 * 1.1)]),
        ("(cat:1.5)", [("cat", 1.5)]),
        ("(a (cat:2) b:0.5)", [("a ", 0.5), ("cat", 1.0), (" b", 0.5)]),
        ("[cat]", [("cat", 1 / 1.1)]),
        (r"\(cat\) \[x\] a\\b", [(r"(cat) [x] a\b", 1.0)]),
        ("(unclosed", [("unclosed", 1.1)]),
        ("a: b", [("a: b", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_attention(prompt: str, expected: list[tuple[str, float]]) -> None:
    (segment,) = parse_attention(prompt)
    assert [t for t, _ in segment] == [t for t, _ in expected]
    assert [w for _, w in segment] == pytest.approx([w for _, w in expected])


def test_break_splits_segments_and_only_as_a_word() -> None:
    assert parse_attention("a red BREAK (cat:1.2)") == [[("a red", 1.0)], [("cat", 1.2)]]
    assert parse_attention("BREAKFAST break") == [[("BREAKFAST break", 1.0)]]
    assert plain_text("a (red:1.3) BREAK [cat]") == "a red cat"


def test_extract_loras() -> None:
    text, refs = extract_loras("a cat <lora:ink:0.8>, <LORA:paper> style")
    assert text == "a cat ,  style"
    assert refs == [LoraRef(name="ink", weight=0.8), LoraRef(name="paper", weight=1.0)]
    assert extract_loras("<hypernet:x:1> plain") == ("<hypernet:x:1> plain", [])


@pytest.mark.parametrize("tag", ["<lora::1>", "<lora:x:heavy>", "<lora:x:9>", "<lora:x:1:0.5>", "<lora:x:nan>"])
def test_bad_lora_tags(tag: str) -> None:
    with pytest.raises(PromptSyntaxError, match="lora"):
        extract_loras(f"a {tag}")


def test_merge_loras_field_wins_and_order_is_by_name() -> None:
    merged = merge_loras(
        [LoraRef(name="b", weight=0.2), LoraRef(name="a", weight=0.5)], [LoraRef(name="b", weight=0.9)]
    )
    assert merged == [LoraRef(name="a", weight=0.5), LoraRef(name="b", weight=0.9)]
