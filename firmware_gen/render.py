"""Write the C package's files: hand-written C copied from ``csrc/``, the rest rendered from the
Jinja2 templates in ``templates/``.

Templates generate only what depends on the model or the front-end config (tables, the engine,
configuration headers, golden vectors, TFLM extras). Every generated file starts with a header
naming the generator version and the hashes of its inputs, and carries no timestamp, so
regenerating from the same inputs gives identical bytes. Copied files are the ``csrc/`` bytes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import jinja2
import numpy as np

GENERATOR = "aedfw.firmware_gen"
GENERATOR_VERSION = "0.1.0"
TEMPLATES = Path(__file__).parent / "templates"
#: Hand-written C, laid out as in a package (``aed/include``, ``aed/src``, ``port/``, ``app/``...).
CSRC = Path(__file__).parent / "csrc"
#: Where the library's headers and sources go in a package.
INCLUDE_DIR = "aed/include"
SOURCE_DIR = "aed/src"


def c_array(values: np.ndarray, per_line: int = 12, indent: str = "    ") -> str:
    """Format integers as the body of a C array initialiser, ``per_line`` values per line."""
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join(indent + line for line in lines)


#: Bytes a generated C string literal carries as they are: letters, digits and punctuation that
#: can neither end the literal (``"``, ``\\``), form a trigraph (``?``, ``-std=c99``) nor close or
#: open a comment (``*``, ``/``) when the literal is quoted inside one.
C_STRING_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.,:;+=()[]<>!#%&'^|~@$"
)


def c_string(text: str) -> str:
    """A C string literal for ``text`` that is safe anywhere in generated C, comments included.

    The UTF-8 bytes outside :data:`C_STRING_SAFE` become three-digit octal escapes (never a hex
    escape, which would swallow following hex digits), so a label such as ``*/ int x; /*`` or one
    with a newline cannot change the code around it.
    """
    out = [chr(b) if b in C_STRING_SAFE else f"\\{b:03o}" for b in text.encode()]
    return '"' + "".join(out) + '"'


def md_cell(text: str) -> str:
    """``text`` for one Markdown table cell or code span: one line, no pipe, backtick or HTML."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    text = html.escape(" ".join(text.split()), quote=False)
    return text.replace("|", "\\|").replace("`", "'")


def macro_lines(text: str) -> str:
    """Continue every line but the last with a backslash (a multi-line ``#define`` body)."""
    return " \\\n".join(text.split("\n"))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["c_array"] = c_array
    env.filters["c_string"] = c_string
    env.filters["macro_lines"] = macro_lines
    env.filters["md_cell"] = md_cell
    return env


#: Comment syntax of the provenance header: (open, line prefix, close) per file kind.
COMMENT_STYLES = {
    "c": ("/*", " *", " */"),
    "hash": ("#", "#", "#"),
    "html": ("<!--", "   ", "-->"),
}


def render(template: str, inputs: Mapping[str, str], comment: str = "c", **context) -> str:
    """Render ``template`` with a provenance header listing ``inputs`` (name -> hash).

    ``comment`` picks the header's comment syntax from ``COMMENT_STYLES`` (C, ``#`` for
    Makefiles, HTML for Markdown).
    """
    env = _environment()
    start, line, close = COMMENT_STYLES[comment]
    header = env.get_template("_header.j2").render(
        generator=GENERATOR,
        version=GENERATOR_VERSION,
        inputs=dict(sorted(inputs.items())),
        open=start,
        line=line,
        close=close,
    )
    return header + env.get_template(template).render(**context)


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds exactly that (keeps mtimes for make)."""
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_if_changed_bytes(path: Path, data: bytes) -> None:
    """:func:`write_if_changed` for bytes."""
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def copy_source(relative: str, out_dir: str | Path) -> Path:
    """Copy ``csrc/<relative>`` verbatim to ``<out_dir>/<relative>``; returns the copy."""
    path = Path(out_dir) / relative
    write_if_changed_bytes(path, (CSRC / relative).read_bytes())
    return path


def write_rendered(
    out_dir: str | Path,
    relative: str,
    inputs: Mapping[str, str],
    comment: str = "c",
    **context,
) -> Path:
    """Render ``templates/<name of relative>.j2`` to ``<out_dir>/<relative>``; returns the path."""
    path = Path(out_dir) / relative
    write_if_changed(path, render(f"{Path(relative).name}.j2", inputs, comment, **context))
    return path
