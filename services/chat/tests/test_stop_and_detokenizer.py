"""Unit tests of the text pieces: stop-string hold-back and UTF-8-safe incremental detokenization."""

from __future__ import annotations

import pytest
from chat_service.engine.detokenizer import IncrementalDetokenizer
from chat_service.serving.stop import StopStringMatcher


def _run(stops: list[str], pieces: list[str]) -> tuple[list[str], bool]:
    matcher = StopStringMatcher(stops)
    out: list[str] = []
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out.append(text)
        if stopped:
            return out, True
    out.append(matcher.flush())
    return out, False


def test_stop_split_over_pieces_is_cut_without_leaking() -> None:
    out, stopped = _run(["END"], ["Hello E", "N", "D and more"])
    assert stopped and "".join(out) == "Hello "
    assert out[:2] == ["Hello ", ""]  # "E" and "EN" were held back, never emitted


def test_false_start_is_released() -> None:
    out, stopped = _run(["END"], ["a E", "x", "b"])
    assert not stopped and "".join(out) == "a Exb"
    assert out[0] == "a "


def test_earliest_of_several_stops_wins() -> None:
    out, stopped = _run(["world", "lo w"], ["hello world"])
    assert stopped and "".join(out) == "hel"


def test_no_stops_passes_through() -> None:
    assert _run([], ["a", "b"]) == (["a", "b", ""], False)


def test_text_held_at_end_is_flushed() -> None:
    out, stopped = _run(["STOP"], ["abc ST"])
    assert not stopped and "".join(out) == "abc ST"


BYTES = {1: b"Caf", 2: b"\xc3", 3: b"\xa9", 4: b" \xf0\x9f", 5: b"\x98\x80", 6: b"!"}


def _decode(ids) -> str:
    return b"".join(BYTES[i] for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize("ids", [[1, 2, 3, 4, 5, 6], [2, 3, 2, 3], [4, 5], [1, 6]])
def test_incremental_detokenizer_equals_full_decode(ids: list[int]) -> None:
    detok = IncrementalDetokenizer(_decode)
    pieces = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == _decode(ids)
    assert all("\ufffd" not in p for p in pieces)


def test_incomplete_character_at_the_end_decodes_like_full_decode() -> None:
    detok = IncrementalDetokenizer(_decode)
    pieces = [detok.push(1), detok.push(2)]
    assert pieces == ["Caf", ""]
    assert detok.flush() == "\ufffd"
