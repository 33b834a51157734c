"""One self-contained HTML page per run: headings, text, tables and figures in a single file.

Figures are PNGs inlined as base64 ``data:`` URIs and the style sheet is inline, so the page
opens from anywhere (a mail attachment, a CI artifact) with nothing beside it. Every section
gets an ``id`` so a reader (or a test) can jump to it. A one-line script marks the body with
``data-images="N/M"`` once the browser has decoded the images, which tests read back.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from model_dev.fileio import atomic_write_text

_STYLE = """
body { font-family: system-ui, sans-serif; color: #222; }
body { margin: 2em auto; padding: 0 1em; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.pass { color: #0a7d32; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
nav a { margin-right: 1em; }
"""
_SCRIPT = """
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + "/" + imgs.length;
});
"""


class HtmlReport:
    """Build a page section by section, then :meth:`write` it.

    Parameters
    ----------
    title : str
        The page title and top heading.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._sections: list[tuple[str, str]] = []  # (id, heading)
        self._body: list[str] = []

    def section(self, anchor: str, heading: str) -> None:
        """Start a section (``<h2 id=anchor>``)."""
        self._sections.append((anchor, heading))
        self._body.append(f'<h2 id="{html.escape(anchor)}">{html.escape(heading)}</h2>')

    def text(self, text: str, css_class: str | None = None) -> None:
        """A paragraph of plain text (escaped)."""
        attr = f' class="{css_class}"' if css_class else ""
        self._body.append(f"<p{attr}>{html.escape(text)}</p>")

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]], anchor: str = ""
    ) -> None:
        """A table; floats are shown with 4 decimals (whole ones from 100 up as integers),
        None as "n/a"."""

        def cell(v: object) -> str:
            if v is None or (isinstance(v, float) and v != v):
                return "n/a"
            if isinstance(v, float):  # counts that came through JSON as floats stay counts
                return f"{v:.0f}" if v.is_integer() and abs(v) >= 100 else f"{v:.4f}"
            return html.escape(str(v))

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
        attr = f' id="{html.escape(anchor)}"' if anchor else ""
        self._body.append(
            f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def figure(self, png: bytes | Path, caption: str, anchor: str = "") -> None:
        """A PNG (bytes or a file), inlined as base64, with a caption."""
        data = png.read_bytes() if isinstance(png, Path) else png
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"figure {caption!r}: not a PNG")
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        attr = f' id="{html.escape(anchor)}"' if anchor else ""
        alt = html.escape(caption)
        self._body.append(
            f'<figure{attr}><img src="{uri}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
        )

    def render(self) -> str:
        """The page as one HTML string."""
        nav = " ".join(
            f'<a href="#{html.escape(a)}">{html.escape(h)}</a>' for a, h in self._sections
        )
        title = html.escape(self.title)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head>"
            f"<body><h1>{title}</h1><nav>{nav}</nav>\n"
            + "\n".join(self._body)
            + "\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page atomically; returns its path."""
        path = Path(path)
        atomic_write_text(path, self.render())
        return path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports are drawn without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_of(fig) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards; no timestamp in the file)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
