"""core's inert-text rule: what an agent wrote cannot drive a terminal (docs/reliability.md T5)."""

from __future__ import annotations

import json
import time

import pytest

from corral.core.trust.inert import UNSAFE, InertStream, inert, inert_json, visible

SEQUENCES = {
    "CSI colour": "\x1b[1;31m",
    "CSI erase screen": "\x1b[2J",
    "CSI private mode": "\x1b[?1049h",
    "OSC title, BEL": "\x1b]0;pwned\x07",
    "OSC clipboard, ST": "\x1b]52;c;ZXZpbA==\x1b\\",
    "OSC hyperlink": "\x1b]8;;https://evil.invalid\x1b\\",
    "DCS": "\x1bP+q544e\x1b\\",
    "SOS": "\x1bXhidden\x1b\\",
    "PM": "\x1b^hidden\x1b\\",
    "APC": "\x1b_hidden\x1b\\",
    "charset": "\x1b(0",
    "keypad": "\x1b=",
    "lone ESC": "\x1b\n",
    "8-bit CSI": "\x9b2J",
    "8-bit OSC": "\x9d0;pwned\x9c",
    "8-bit DCS": "\x90q\x9c",
    "bell, backspace, DEL, NEL": "\x07\x08\x7f\x85",
    "bidi override and isolate": "\u202e\u2066\u200f\u061c",
}


@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_each_sequence_leaves_nothing_but_the_text_around_it(sequence: str) -> None:
    assert inert(f"before{sequence}after").replace(" ", "") == "beforeafter"
    assert inert(f"before{sequence}after", lines=True).replace("\n", "") == "beforeafter"
    assert inert(f"it ends with it{sequence}").rstrip() == "it ends with it"


def test_lines_are_kept_only_when_asked_and_no_line_overwrites_another() -> None:
    text = "a\tb\nc\r\nd\re"
    assert inert(text) == "a b c  d e"
    assert inert(text, lines=True) == "a\tb\nc\nd\ne"
    assert inert(None) == inert("") == ""
    plain = "plain text, ünïcödé and 日本語 stay as they are"
    assert inert(plain) is plain


def test_an_unterminated_string_sequence_cannot_hide_the_next_lines() -> None:
    assert inert("shown\x1b]0;title\nstill shown\n", lines=True) == "shown\nstill shown\n"
    assert inert("shown\x1bPdcs\nstill shown", lines=True) == "shown\nstill shown"
    assert inert("shown\x9d0;t\nstill shown", lines=True) == "shown\nstill shown"


def test_visible_spells_controls_out_so_names_stay_distinct() -> None:
    assert visible("evil\x1b[2J\u202e\t\n.sarif") == "evil\\x1b[2J\\u202e\\t\\n.sarif"
    assert visible("findings.json") == "findings.json"
    assert UNSAFE.search(visible("".join(SEQUENCES.values()))) is None


def test_json_is_escaped_and_means_the_same() -> None:
    value = {"name": "x\x1b]0;t\x07\x9b2J\x7f\u202ey", "plain": "日本"}
    text = inert_json(json.dumps(value, ensure_ascii=False))
    assert UNSAFE.search(text.replace("\n", "")) is None
    assert json.loads(text) == value
    assert "日本" in text


def test_a_stream_cut_anywhere_prints_what_the_whole_prints() -> None:
    whole = (
        "out \x1b]52;c;ZXZpbA==\x07 \x1b[2J ünï \x1bP+q\x1b\\ \x9b31m 10%\r50%\r\n"
        "\x1b]0;unterminated\nnext\x1b"
    ).encode() + b" raw \x9b byte \xff\n"
    expected = inert(whole.decode("utf-8", "replace"), lines=True)
    for cut in range(len(whole) + 1):
        stream = InertStream()
        got = stream.feed(whole[:cut]) + stream.feed(whole[cut:]) + stream.end()
        assert got == expected, cut
    stream = InertStream()
    assert "".join(stream.feed(whole[i : i + 1]) for i in range(len(whole))) + stream.end() == (
        expected
    )
    assert UNSAFE.search(expected.replace("\n", "")) is None
    assert "\ufffd byte \ufffd" in expected


def test_inert_is_linear_on_hostile_megabytes() -> None:
    hostile = ("x\x1b]" * 50_000 + "\n") * 10 + ("\x1b[" + "1;" * 1000) * 200 + "\nok"
    start = time.perf_counter()
    stream = InertStream()
    out = stream.feed(hostile.encode()) + stream.end()
    assert time.perf_counter() - start < 2.0
    assert out.endswith("\nok")
    assert UNSAFE.search(out.replace("\n", "")) is None
