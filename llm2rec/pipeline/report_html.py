"""``report.html``: the report's Markdown rendered by a real Markdown library (markdown-it-py, CommonMark
plus tables and strikethrough), as one self-contained page: every local image is inlined as a data URI,
raw HTML in the Markdown is escaped, not passed through."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml", ".webp": "image/webp"}  # fmt: skip
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
    "th{background:#f4f4f4}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}"
)


def _data_uri(run_dir: Path, src: str) -> str | None:
    """``src`` (relative to ``run_dir``, inside it) as a base64 data URI; None when it is not such a file."""
    if "://" in src or src.startswith("data:"):
        return None
    root = run_dir.resolve()
    path = (root / src).resolve()
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file() or not path.is_relative_to(root):
        return None
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _image_rule(run_dir: Path):
    def render_image(renderer, tokens, idx, options, env) -> str:
        token = tokens[idx]
        alt = html.escape(renderer.renderInlineAsText(token.children or [], options, env))
        src = token.attrGet("src") or ""
        uri = _data_uri(run_dir, str(src))
        if uri is None:  # never a reference out of the page: the alt text says what is missing
            log.warning("report: image %s is not a file in %s; left out of report.html", src, run_dir)
            return f"<em>[image not found: {alt}]</em>"
        return f'<img alt="{alt}" src="{uri}">'

    return render_image


def markdown_to_html(md: str, run_dir: Path, title: str = "llm2rec report") -> str:
    """The Markdown ``md`` as a self-contained HTML page; images are read relative to ``run_dir``."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_rule(Path(run_dir)))
    body = parser.render(md)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n"
    )
