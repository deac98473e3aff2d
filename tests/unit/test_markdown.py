"""Responses are rendered as markdown with every bit of raw HTML escaped."""

from __future__ import annotations

from app.markdown import render_markdown


def test_script_and_event_handlers_are_escaped() -> None:
    html = str(render_markdown("<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>"))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_javascript_links_are_not_links() -> None:
    html = str(
        render_markdown("[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c](data:text/html,x)")
    )
    assert "href" not in html


def test_ordinary_markdown_still_renders() -> None:
    html = str(
        render_markdown("**bold** and `code`\n\n- one\n- two\n\n[site](https://example.org)")
    )
    assert (
        "<strong>bold</strong>" in html and "<code>code</code>" in html and "<li>one</li>" in html
    )
    assert '<a href="https://example.org">site</a>' in html


def test_images_are_not_loaded() -> None:
    assert "<img" not in str(render_markdown("![pixel](https://tracker.example/p.gif)"))
