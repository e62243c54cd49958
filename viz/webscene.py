"""An interactive, offline HTML copy of a 3D scene (vtk.js), when ``trame-vtk`` is installed.

The scene's render window is serialised with trame-vtk's vtk.js serialisers
(the same state its ``VtkLocalView.export`` produces, taken here without
starting a trame server), zipped, and embedded as base64 in trame-vtk's
standalone viewer page, which carries vtk.js itself: the file needs no
network.  Without trame-vtk the export is skipped with a warning.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

__all__ = ["export_html", "available"]

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether the offline viewer (trame-vtk) is installed."""
    try:
        import trame_vtk.modules.vtk.serializers  # noqa: F401
        import trame_vtk.tools.vtksz2html  # noqa: F401
    except ImportError:
        return False
    return True


def scene_state(plotter) -> dict:
    """The plotter's render window as a vtk.js synchronisation state with its arrays inlined."""
    from trame_vtk.modules.vtk.serializers import (
        SynchronizationContext,
        extract_array_hash,
        initialize_serializers,
        reference_id,
        serialize,
    )

    initialize_serializers()
    context = SynchronizationContext()
    context.set_ignore_last_dependencies(True)
    window = plotter.ren_win
    camera = plotter.renderer.GetActiveCamera()
    view = serialize(None, window, reference_id(window), context, 1)
    if not view:
        raise RuntimeError("the render window could not be serialised for vtk.js")
    view["extra"] = {
        "vtkRefId": reference_id(window),
        "centerOfRotation": list(camera.GetFocalPoint()),
        "camera": reference_id(camera),
    }
    hashes = {}
    for entry in extract_array_hash(view):
        h = entry.get("hash")
        hashes[h] = dict(**entry, content=context.get_cached_data_array(h, False))
    return {"hashes": hashes, "scene": view}


def export_html(plotter, path: str | Path) -> bool:
    """Write the plotter's scene as a self-contained interactive HTML file.

    Returns ``False`` (and logs a warning) when trame-vtk is not installed.
    The file is written atomically.
    """
    if not available():
        log.warning("interactive HTML export skipped: install trame-vtk (pip install trame-vtk) for it")
        return False
    from trame_vtk.tools.vtksz2html import write_html

    from basics.atomic import write_bytes

    plotter.render()
    state = scene_state(plotter)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.json", json.dumps(state), compress_type=zipfile.ZIP_DEFLATED)
    out = io.StringIO()
    write_html(buf.getvalue(), out)
    write_bytes(Path(path), out.getvalue().encode("utf-8"))
    return True
