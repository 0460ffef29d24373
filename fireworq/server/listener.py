"""
The API listener: a L{StreamServerEndpointService} on the endpoint that
``bind`` describes (L{endpoint_description}, parsed by L{serverFromString}),
so that other endpoint kinds (``ssl:``, ``unix:``) need no code here.

The service keeps the L{IListeningPort} its endpoint's ``listen`` gave
(through L{RecordingEndpoint}, public API only) to tell the real port when
bound to port 0, and turns a failure to listen into L{CannotListenError}
raised from L{APIListener.privilegedStartService}, synchronously, for the
tree to report as one line.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer


def endpoint_description(host: str, port: int) -> str:
    """The server endpoint description of ``host:port`` (``bind``)."""
    return f"tcp:{port}:interface={quoteStringArgument(host)}"


@implementer(IStreamServerEndpoint)
class RecordingEndpoint:
    """
    An endpoint that listens through another one and keeps the outcome:
    L{port} once listening, L{failure} when listening failed (the
    Deferred then fires with None, so the service has nothing to log).
    """

    def __init__(self, endpoint: IStreamServerEndpoint) -> None:
        self.endpoint = endpoint
        self.port: Optional[IListeningPort] = None
        self.failure: Optional[Failure] = None

    def listen(self, factory: Any) -> "Deferred[Optional[IListeningPort]]":
        self.failure = None
        d = self.endpoint.listen(factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            return port

        def failed(failure: Failure) -> None:
            self.failure = failure
            return None

        d.addCallbacks(listening, failed)
        return d


class APIListener(StreamServerEndpointService):
    """Serves ``factory`` on the endpoint ``description``."""

    name = "api"

    def __init__(self, reactor: Any, description: str, factory: Any,
                 endpoint: Optional[IStreamServerEndpoint] = None) -> None:
        # ``endpoint``: listen through it instead (``--workers``: a port shared by processes).
        self.recorder = RecordingEndpoint(endpoint or serverFromString(reactor, description))
        super().__init__(self.recorder, factory)
        self.description = description

    def privilegedStartService(self) -> None:
        """Listen; raise L{CannotListenError} when the endpoint could not."""
        super().privilegedStartService()
        failure = self.recorder.failure
        if failure is not None:
            self.running = 0
            if failure.check(CannotListenError):
                raise failure.value
            raise CannotListenError(None, self.description, failure.value)

    @property
    def port(self) -> Optional[IListeningPort]:
        """The listening port, once listening."""
        return self.recorder.port

    def stopService(self) -> Any:
        d = super().stopService()
        self.recorder.port = None
        return d
