"""Writing figures (PNG, PDF, SVG, ...): the output path checked before any work, the file written
atomically, and every OS error as one sentence."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from softac.errors import SoftacError


def _formats() -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return sorted(FigureCanvasAgg(Figure()).get_supported_filetypes())


def figure_path(out: str | Path) -> Path:
    """The file a figure for `out` is written to: `out` itself, or `out` + ".png" when it has no suffix.

    SoftacError for an existing directory or a suffix that is not an image format matplotlib writes.
    """
    out = Path(out)
    if out.is_dir():
        raise SoftacError(f"{out} is a directory; give a file name such as {out / 'curve.png'}.")
    if not out.suffix:
        out = out.with_name(out.name + ".png")
    if out.suffix[1:].lower() not in _formats():
        raise SoftacError(f"Cannot write a figure to {out}: {out.suffix} is not an image format matplotlib "
                          f"writes (use .png, .pdf or .svg, or no suffix for .png).")
    return out


def save_figure(fig: Any, out: str | Path, **savefig_kwargs: Any) -> Path:
    """Write matplotlib figure `fig` to `figure_path(out)` atomically; returns the path written."""
    out = figure_path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, format=out.suffix[1:].lower(), **savefig_kwargs)
        os.replace(tmp, out)
    except OSError as exc:
        raise SoftacError(f"Cannot write the figure {out}: {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return out
