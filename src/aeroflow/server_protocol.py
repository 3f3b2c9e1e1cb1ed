"""What the servers' protocol extensions (the read and push lanes) share: when a request may be
answered without uvicorn's general handling."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def answerable_in_protocol(protocol: HttpToolsProtocol) -> bool:
    """True when the request whose headers were just parsed needs none of uvicorn's general
    handling of the connection: HTTP/1.1 keep-alive, no upgrade, no ``Expect: 100-continue``,
    no concurrency limit, and no earlier request of the connection still being answered."""
    parser = protocol.parser
    cycle = protocol.cycle
    return (
        parser.get_http_version() == "1.1"
        and parser.should_keep_alive()
        and not parser.should_upgrade()
        and not protocol.expect_100_continue
        and protocol.limit_concurrency is None
        and (cycle is None or cycle.response_complete)
    )
