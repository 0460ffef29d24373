"""
Serving the web console (no browser): ``/ui`` and its files through the
API's real site on a loopback port, content types and security headers, no
reference to anything off the server, and no way out of the console's
directory.
"""

from __future__ import annotations

import http.client
import os
import re
from typing import Dict, List, Tuple

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.config import load
from fireworq.web.app import FireworqAPI
from fireworq.web.console import UI_DIR, content_type, resolve_asset
from fireworq.web.site import FireworqSite

#: Text that would only appear if a file outside the console were served.
OUTSIDE_MARKERS = (b"install_requires", b"class ConsoleRoutes", b"root:", b"[fireworq]")

EXPECTED_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def console_files() -> List[str]:
    """Every file of the console, as a path relative to its directory."""
    out = []
    for folder, _, names in os.walk(UI_DIR):
        for name in names:
            out.append(os.path.relpath(os.path.join(folder, name), UI_DIR).replace(os.sep, "/"))
    return sorted(out)


def raw_get(port: int, path: str, method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    """
    Send ``path`` exactly as given (no client-side normalisation of ``..``
    or percent-escapes); blocking, so call it in a thread.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class ConsoleServingTests(TestCase):
    """The console's routes on the API's real site."""

    def setUp(self):
        config = load({"driver": "in-memory"}, environ={})
        api = FireworqAPI(None, None, config)
        site = FireworqSite(api.app.resource(), None, 1 << 20, keep_alive=False)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"

    @inlineCallbacks
    def get(self, path: str):
        response = yield treq.get(self.url(path), allow_redirects=False, persistent=False, timeout=10)
        body = yield response.content()
        return response, body

    @inlineCallbacks
    def test_ui_redirects_to_the_page(self):
        response, _ = yield self.get("/ui")
        self.assertEqual(response.code, 302)
        # Relative, so that it also works behind a proxy that adds a prefix.
        self.assertEqual(response.headers.getRawHeaders("location"), ["ui/"])

    @inlineCallbacks
    def test_index(self):
        response, body = yield self.get("/ui/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"])
        with open(os.path.join(UI_DIR, "index.html"), "rb") as f:
            self.assertEqual(body, f.read())
        self.assertIn(b'<script src="console.js"', body)
        self.assertEqual(response.headers.getRawHeaders("x-content-type-options"), ["nosniff"])
        policy = response.headers.getRawHeaders("content-security-policy")[0]
        self.assertIn("script-src 'self'", policy)
        self.assertIn("connect-src 'self'", policy)
        self.assertNotIn("unsafe-inline", policy)
        self.assertNotIn("unsafe-eval", policy)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])

    @inlineCallbacks
    def test_every_file_with_its_type(self):
        files = console_files()
        for needed in ("index.html", "console.js", "json.js", "console.css", "favicon.svg"):
            self.assertIn(needed, files)
        for name in files:
            response, body = yield self.get("/ui/" + name)
            self.assertEqual(response.code, 200, name)
            with open(os.path.join(UI_DIR, name), "rb") as f:
                self.assertEqual(body, f.read(), name)
            expected = EXPECTED_TYPES.get(os.path.splitext(name)[1])
            self.assertIsNotNone(expected, f"{name}: add its type to the console's table and this test")
            self.assertEqual(response.headers.getRawHeaders("content-type"), [expected], name)

    @inlineCallbacks
    def test_page_references_are_served(self):
        """Every src/href of the page is a file of the console."""
        _, body = yield self.get("/ui/")
        refs = re.findall(rb'(?:src|href)="([^"#]+)"', body)
        self.assertTrue(refs)
        for ref in refs:
            response, _ = yield self.get("/ui/" + ref.decode())
            self.assertEqual(response.code, 200, ref)

    def test_nothing_off_the_server(self):
        """No CDN, font service or other host: the console works offline."""
        for name in console_files():
            if name.endswith(".svg"):
                continue  # its xmlns is a name, not a download
            with open(os.path.join(UI_DIR, name), encoding="utf-8") as f:
                text = f.read()
            self.assertNotRegex(text, r"(?i)https?://", name)
            self.assertNotRegex(text, r"""(?:src|href|url\()\s*=?\s*["']?//""", name)
            self.assertNotIn("@import", text, name)

    def test_no_markup_insertion_in_the_script(self):
        """The script builds the page with text nodes only (no XSS sinks)."""
        for name in console_files():
            if not name.endswith(".js"):
                continue
            with open(os.path.join(UI_DIR, name), encoding="utf-8") as f:
                text = f.read()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                self.assertNotIn(sink, text, f"{name} uses {sink}")

    @inlineCallbacks
    def test_missing_file(self):
        response, body = yield self.get("/ui/nothing-here.js")
        self.assertEqual(response.code, 404)
        self.assertIn(b"nothing-here.js", body)

    @inlineCallbacks
    def test_other_methods_refused(self):
        response = yield treq.post(self.url("/ui/index.html"), data=b"x", persistent=False, timeout=10)
        yield response.content()
        self.assertEqual(response.code, 405)

    @inlineCallbacks
    def test_no_way_out(self):
        """Raw paths that try to leave the console's directory all get 404."""
        port = self.port.getHost().port
        attempts = [
            "/ui/../setup.py",
            "/ui/../../setup.py",
            "/ui/%2e%2e/console.py",
            "/ui/%2E%2E/%2E%2E/%2E%2E/setup.py",
            "/ui/.%2e/console.py",
            "/ui/..%2fconsole.py",
            "/ui/%2e%2e%2f%2e%2e%2f%2e%2e%2fsetup.py",
            "/ui/..%5cconsole.py",
            "/ui/..\\console.py",
            "/ui/%2fetc%2fpasswd",
            "/ui//etc/passwd",
            "/ui/%00index.html",
            "/ui/index.html%00.png",
            "/ui/.",
            "/ui/./index.html",
            "/ui/x/../index.html",
            "/ui/.hidden",
            "/ui/%2e",
        ]
        for path in attempts:
            code, headers, body = yield deferToThread(raw_get, port, path)
            self.assertIn(code, (400, 404), f"{path} answered {code}: {body[:200]!r}")
            for marker in OUTSIDE_MARKERS:
                self.assertNotIn(marker, body, path)


class ResolveAssetTests(SynchronousTestCase):
    """L{resolve_asset} alone, including symbolic links."""

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.root = os.path.join(self.base, "ui")
        os.makedirs(os.path.join(self.root, "img"))
        with open(os.path.join(self.root, "index.html"), "w") as f:
            f.write("page")
        with open(os.path.join(self.root, "img", "a.png"), "w") as f:
            f.write("png")
        with open(os.path.join(self.base, "secret.txt"), "w") as f:
            f.write("secret")

    def test_files_inside(self):
        self.assertEqual(resolve_asset("index.html", self.root), os.path.join(os.path.realpath(self.root), "index.html"))
        self.assertEqual(
            resolve_asset("img/a.png", self.root), os.path.join(os.path.realpath(self.root), "img", "a.png")
        )

    def test_refused(self):
        for relative in (
            "",
            "img",
            "img/",
            "../secret.txt",
            "img/../../secret.txt",
            "./index.html",
            "img//a.png",
            ".hidden",
            "img\\..\\..\\secret.txt",
            "index.html\x00",
            os.path.join(self.base, "secret.txt"),
            "missing.html",
        ):
            self.assertIsNone(resolve_asset(relative, self.root), repr(relative))

    def test_symlink_out_of_the_directory(self):
        os.symlink(os.path.join(self.base, "secret.txt"), os.path.join(self.root, "link.txt"))
        os.symlink(self.base, os.path.join(self.root, "up"))
        self.assertIsNone(resolve_asset("link.txt", self.root))
        self.assertIsNone(resolve_asset("up/secret.txt", self.root))

    def test_content_types(self):
        self.assertEqual(content_type("a/b.JS"), b"text/javascript; charset=utf-8")
        self.assertEqual(content_type("x.bin"), b"application/octet-stream")
