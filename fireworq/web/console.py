"""The built-in web console at ``/ui``.  Placeholder: filled in by the console work."""


class ConsoleRoutes:
    """Routes serving the web console."""
