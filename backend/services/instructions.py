"""A project's Markdown instructions as HTML that is safe to put in a page (``innerHTML`` on the
crowd page, the admin preview).

Markdown is rendered first (raw HTML in it included), then the HTML goes through ammonia (the
``nh3`` package), a real HTML sanitiser, with an allowlist: text-formatting tags, lists, tables,
links and images; no attribute but a link's ``href``/``title`` and an image's ``src``/``alt``/
``title``/size; URLs only ``http``, ``https`` and ``mailto`` (or relative). Everything else goes:
``<script>`` and ``<style>`` with their content, event handlers (``onerror``, ``onload``...),
``style``, ``<svg>``, ``<iframe>``, forms, ``javascript:``/``data:``/``vbscript:`` URLs. Links
get ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import functools

import markdown
import nh3

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def sanitize_html(html: str) -> str:
    """``html`` with only the allowlisted tags, attributes and URL schemes left (see the module)."""
    return nh3.clean(html, tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer", strip_comments=True)


@functools.lru_cache(maxsize=128)  # every lease sends them; they change only when an admin edits them
def instructions_html(text: str | None) -> str:
    """The project's Markdown instructions as sanitised HTML (empty text: ``""``)."""
    return sanitize_html(markdown.markdown(text or "", extensions=["sane_lists"]))
