"""Safe markdown for model responses: raw HTML escaped, no images, only harmless link targets."""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

_SAFE_SCHEMES = ("http://", "https://", "mailto:", "#", "/")


def _validate_link(url: str) -> bool:
    # markdown-it already refuses javascript:/vbscript:/file:/data:; we allow only a short list.
    return url.strip().lower().startswith(_SAFE_SCHEMES)


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.enable("table").enable("strikethrough")
# Images would let a response load remote content (a tracking pixel) into the rater's page.
_md.disable("image")
_md.validateLink = _validate_link  # type: ignore[method-assign]


def render_markdown(text: str | None) -> Markup:
    """HTML for a response; any HTML the model wrote is shown as text, never interpreted."""
    return Markup(_html(text or ""))  # html=False escaped all raw HTML


@lru_cache(maxsize=1024)
def _html(text: str) -> str:
    """Each text parsed once per process: a prompt and its responses go to several raters (and
    come back on a reload or an undo); parsing was ~40% of the rater page's rendering time."""
    html: str = _md.render(text)
    return html
