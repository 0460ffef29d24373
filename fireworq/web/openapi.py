"""
``GET /openapi.yaml``: the OpenAPI 3.1 description of the API.

The document ships inside the package (``fireworq/openapi.yaml``, listed in
``package_data``) so that an installed server serves the description of
exactly its own API.  It is the only copy: docs/api.md links to it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fireworq.web.routes import app

#: The media type of YAML (RFC 9512).
YAML_MEDIA_TYPE = b"application/yaml"


@lru_cache(maxsize=1)
def openapi_document() -> bytes:
    """The bytes of the packaged ``openapi.yaml`` (read once)."""
    from importlib import resources  # on the first request only

    return resources.files("fireworq").joinpath("openapi.yaml").read_bytes()


class OpenAPIRoutes:
    """Routes serving the API description."""

    @app.route("/openapi.yaml", methods=["GET"])
    def openapi(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", YAML_MEDIA_TYPE)
        return openapi_document()
