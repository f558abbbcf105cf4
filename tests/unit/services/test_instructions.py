"""backend.services.instructions: Markdown rendered, then sanitised with an allowlist (nh3)."""

from __future__ import annotations

import re

import pytest

from backend.services.instructions import instructions_html

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    "<img src=x onerror=\"window.__pwned=1\">",
    "[click](javascript:window.__pwned=1)",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="java&#x09;script:alert(1)">tab</a>',
    "![pic](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[html](data:text/html,<script>alert(1)</script>)",
    "[vb](vbscript:msgbox(1))",
    "<svg onload=alert(1)><circle r=5/></svg>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<form action=\"https://evil.example\"><input name=a></form>",
    "<p style=\"background:url(javascript:alert(1))\" onclick=\"alert(1)\">x</p>",
    "<object data=\"x.swf\"></object><embed src=\"x\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_keeps_no_script_handler_or_dangerous_url(text):
    out = instructions_html(text).lower()
    assert "<script" not in out and "javascript:" not in out and "vbscript:" not in out and "data:" not in out
    assert not re.search(r"\son[a-z]+\s*=", out), out
    for tag in ("<svg", "<iframe", "<form", "<input", "<object", "<embed", "<meta", "<math", "style="):
        assert tag not in out, out


def test_ordinary_instructions_keep_their_formatting_and_safe_links():
    out = instructions_html("Outline **every** cell, _carefully_.\n\n- one\n- two\n\n"
                            "[guide](https://example.org/guide?a=1&b=2) · [mail](mailto:lab@example.org) · "
                            "<https://example.org/auto>\n\n![legend](https://example.org/legend.png)\n\n"
                            "Press <kbd>B</kbd> for the brush.")
    assert "<strong>every</strong>" in out and "<em>carefully</em>" in out and "<li>one</li>" in out
    assert '<a href="https://example.org/guide?a=1&amp;b=2" rel="noopener noreferrer">guide</a>' in out
    assert 'href="mailto:lab@example.org"' in out and 'href="https://example.org/auto"' in out
    assert '<img alt="legend" src="https://example.org/legend.png">' in out
    assert "<kbd>B</kbd>" in out


def test_empty_instructions_are_empty():
    assert instructions_html("") == "" and instructions_html(None) == ""
