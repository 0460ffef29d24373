"""
The built-in web console at ``/ui``: static files (HTML, CSS, JavaScript,
written by hand, no build step) shipped as package data in
``fireworq/web/ui/`` and served by the API's own site.

  - ``GET /ui`` redirects to ``/ui/`` (with the relative target ``ui/``);
  - ``GET /ui/`` serves ``index.html``;
  - ``GET /ui/<path>`` serves that file of the console's directory.

Only regular files inside that directory are served: a path with an empty,
``.``, ``..`` or hidden segment, a backslash or a NUL is refused with 404,
and the resolved path must still lie inside the directory (so a symbolic
link cannot lead out of it).  Every answer carries a Content-Type from a
fixed table, ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy
that allows only the console's own scripts and styles and API calls to the
same origin, so that data shown by the console (categories, payloads,
worker messages) can never run as code even if it were inserted as markup.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from fireworq.web.errors import not_found
from fireworq.web.routes import app

#: The directory of the console's files.
UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")

#: Content types by file extension; anything else is served as bytes.
CONTENT_TYPES: Dict[str, bytes] = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".json": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".txt": b"text/plain; charset=utf-8",
}

#: The policy of every console answer: own files only, API calls to the same
#: origin, no inline script, no framing.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    b"frame-ancestors 'none'"
)


def resolve_asset(relative: str, root: str = UI_DIR) -> Optional[str]:
    """
    The absolute path of the console file ``relative`` (a ``/``-separated
    path below ``root``), or None when it is not a regular file inside
    ``root`` or names one in a way that is refused (see the module's text).
    """
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    segments = relative.split("/")
    if any(not s or s.startswith(".") for s in segments):
        return None
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, *segments))
    if os.path.commonpath([real_root, path]) != real_root or path == real_root:
        return None
    if not os.path.isfile(path):
        return None
    return path


def content_type(path: str) -> bytes:
    """The Content-Type header value for the file ``path``."""
    return CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), b"application/octet-stream")


class ConsoleRoutes:
    """Routes serving the web console."""

    @app.route("/ui", methods=["GET"])
    def console_redirect(self, request: Any) -> bytes:
        """
        Redirect to ``/ui/`` so that the page's relative links resolve.  The
        target is relative (``ui/``) so that it stays right behind a proxy
        that serves the API under a path prefix.
        """
        request.setResponseCode(302)
        request.setHeader(b"Location", b"ui/")
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"The console is at /ui/\n"

    @app.route("/ui/", methods=["GET"])
    def console_index(self, request: Any) -> bytes:
        """The console's page."""
        return self._console_file(request, "index.html")

    @app.route("/ui/<path:asset>", methods=["GET"])
    def console_asset(self, request: Any, asset: str) -> bytes:
        """One of the console's files."""
        return self._console_file(request, asset)

    def _console_file(self, request: Any, relative: str) -> bytes:
        path = resolve_asset(relative)
        if path is None:
            raise not_found(f"the console has no file {relative!r}")
        with open(path, "rb") as f:
            data = f.read()
        request.setHeader(b"Content-Type", content_type(path))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        # Revalidate on every load so that an upgraded server's console is
        # never mixed with stale cached files.
        request.setHeader(b"Cache-Control", b"no-cache")
        return data
