"""Finding 1 of the security review: one ~250-byte ``/sdapi/v1/png-info`` request froze the gateway.

The attack: a PNG whose zTXt "parameters" chunk inflates to a long key-like run ("aaaa…"), over which
A1111's infotext regex backtracks quadratically, on the event loop. Also: zTXt bombs and decompression-bomb
headers answered 500. The parser must give A1111's answers in linear time, the text is capped, parsing
runs off the loop, and every bad image is a 422 naming ``image``.
"""

from __future__ import annotations

import base64
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from security_util import app_client, gateway_proc, png, ztxt

from ablerefusal.gateway.compat.infotext import MAX_INFOTEXT_CHARS, MAX_TEXT_CHUNKS_CHARS, infotext_pairs

# A1111's own pattern (modules/infotext_utils.py): the oracle the linear scanner must agree with. Only ever
# run here on short strings, where its backtracking costs nothing.
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

# The attack text: about 65,000 bytes of one key-like run deflate to ~100 bytes; the whole JSON body is
# ~250 bytes, and the old regex held the event loop for minutes with it (benchmarks/pnginfo_attack.py).
ATTACK_TEXT = b"a" * 65_000


def body_of(image: bytes) -> dict[str, str]:
    return {"image": base64.b64encode(image).decode("ascii")}


def attack_body() -> dict[str, str]:
    return body_of(png(ztxt("parameters", ATTACK_TEXT)))


def ztxt_bomb() -> dict[str, str]:
    """70 chunks of 1 MB of text each, ~70 kB on the wire: past Pillow's 64 MB of text in all."""
    return body_of(png(*(ztxt(f"k{i}", b"a" * 1_000_000) for i in range(70))))


# Characters that matter to the grammar (word, key punctuation, whitespace, separators, quotes, escapes)
# plus non-ASCII word and space characters.
_ALPHABET = st.sampled_from(list('aZ9_ -/:,"\\\t\r\u00e9\u3000.x'))


@settings(max_examples=3000, deadline=None, database=None)
@given(line=st.text(_ALPHABET, max_size=40))
def test_scanner_gives_a1111_regex_answers(line: str) -> None:
    assert infotext_pairs(line) == A1111_PARAM.findall(line)


def test_scanner_on_real_parameter_lines() -> None:
    line = (
        'Steps: 20, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 512x768, Lora hashes: "a: 1, b: \\"2\\"", '
        'Bad quote: "x"y, Empty: "", Tail: "unclosed, Version: v1.10'
    )
    assert infotext_pairs(line) == A1111_PARAM.findall(line)


def test_attack_body_is_small_and_parsed_like_a1111(tmp_path: Path) -> None:
    body = attack_body()
    assert len(str(body)) < 260
    with app_client(tmp_path) as client:
        resp = client.post("/sdapi/v1/png-info", json=body)
    assert resp.status_code == 200
    text = ATTACK_TEXT.decode()
    # No "Key: value" pairs: the whole text is the prompt, as A1111 reads it.
    assert resp.json() == {"info": text, "items": {}, "parameters": {"Prompt": text, "Negative prompt": ""}}


def _field_error(resp: httpx.Response) -> str:
    assert resp.status_code == 422, resp.text
    (detail,) = resp.json()["detail"]
    assert detail["loc"] == ["body", "image"]
    return str(detail["msg"])


def test_parameters_text_over_the_cap_is_refused(tmp_path: Path) -> None:
    too_long = png(ztxt("parameters", b"Steps: 1, " * (MAX_INFOTEXT_CHARS // 10 + 1)))
    with app_client(tmp_path) as client:
        message = _field_error(client.post("/sdapi/v1/png-info", json=body_of(too_long)))
    assert f"at most {MAX_INFOTEXT_CHARS} characters" in message


def test_text_chunks_over_the_total_cap_are_refused(tmp_path: Path) -> None:
    chunks = [ztxt(f"note{i}", b"b" * (MAX_TEXT_CHUNKS_CHARS // 4)) for i in range(5)]
    with app_client(tmp_path) as client:
        message = _field_error(client.post("/sdapi/v1/png-info", json=body_of(png(*chunks))))
    assert f"at most {MAX_TEXT_CHUNKS_CHARS} characters" in message


@pytest.mark.parametrize(
    ("image", "rule"),
    [
        (png(ztxt("parameters", b"a" * 2_000_000)), "Decompressed data too large"),
        (png(*(ztxt(f"k{i}", b"a" * 1_000_000) for i in range(70))), "Too much memory used in text chunks"),
        (png(width=100_000, height=100_000), "decompression bomb"),
    ],
    ids=["one-ztxt-chunk-bomb", "many-ztxt-chunks", "pixel-bomb-header"],
)
def test_bombs_are_a_422_not_a_500(tmp_path: Path, image: bytes, rule: str) -> None:
    with app_client(tmp_path) as client:
        assert rule in _field_error(client.post("/sdapi/v1/png-info", json=body_of(image)))


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_health_answers_while_png_info_requests_are_parsed(tmp_path: Path) -> None:
    """A real gateway gets the attack bodies and zTXt bombs at once; /api/v1/health, polled meanwhile, must
    keep answering while they are in flight (observed, not timed: the old code answered nothing until the
    regex let go of the event loop)."""
    bodies = [attack_body(), *(ztxt_bomb() for _ in range(6)), attack_body()]
    in_flight = 0
    lock = threading.Lock()
    done = threading.Event()
    answered_during: list[int] = []

    with gateway_proc(tmp_path).start(timeout=120) as proc:

        def poll_health() -> None:
            with httpx.Client(base_url=proc.url, timeout=60) as health:
                while not done.is_set():
                    with lock:
                        sent_during = in_flight > 0
                    status = health.get("/api/v1/health").status_code
                    with lock:
                        if sent_during and in_flight > 0:
                            answered_during.append(status)

        def send(body: dict[str, str]) -> int:
            nonlocal in_flight
            with httpx.Client(base_url=proc.url, timeout=120) as client:
                return client.post("/sdapi/v1/png-info", json=body).status_code

        with lock:
            in_flight = len(bodies)
        poller = threading.Thread(target=poll_health)
        poller.start()
        try:
            with ThreadPoolExecutor(len(bodies)) as pool:
                statuses = list(pool.map(send, bodies))
        finally:
            with lock:
                in_flight = 0
            done.set()
            poller.join()

    assert statuses == [200, *[422] * 6, 200]
    assert len(answered_during) >= 3 and set(answered_during) == {200}
