"""What the emulator remembers about each request, for tests to assert on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it (control endpoints are not recorded).

    status is the HTTP status sent, or 0 if the connection was reset or the request is in flight;
    authorization says whether an Authorization header was present (the key is never stored);
    t is the wall-clock arrival time (time.time()); peer is the address the connection came from
    (a proxy's outgoing address when the client went through one).
    """

    method: str
    path: str
    route: str
    status: int
    authorization: bool
    t: float
    peer: str = ""


@dataclass
class LiveRecord:
    """A RequestRecord still being filled in (status is set when the reply goes out)."""

    method: str
    path: str
    route: str
    authorization: bool
    t: float
    status: int = 0
    peer: str = ""

    def frozen(self) -> RequestRecord:
        return RequestRecord(
            self.method, self.path, self.route, self.status, self.authorization, self.t, self.peer
        )
