"""``/openapi.yaml``.  Placeholder: filled in by the hardening work."""


class OpenAPIRoutes:
    """Routes serving the API description."""
