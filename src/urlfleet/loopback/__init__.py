"""A loopback HTTP/1.1 test server: simulated hosts, latency, fault routes, request records.

Every simulated host is one listening socket (distinct ports on 127.0.0.1 by default, or
distinct addresses such as 127.0.0.2 on Linux). Each request waits for the host's latency,
is answered by a route chosen by its first path segment, and is recorded with its server-side
arrival and completion times, so tests can check a client's politeness from the server's side.

The server is a minimal HTTP/1.1 implementation on :class:`asyncio.Protocol`, standard library
only, because it must sustain thousands of keep-alive requests per second on one core while
using a small share of it.

Measured (2 cores, one host without latency, 4 keep-alive http.client threads, 5,000 requests,
median of 3 rounds; ``python benchmarks/loopback_speed.py``): 8,933 req/s vs 10,064 req/s for
http.server's ThreadingHTTPServer, 0.89x; in three runs 0.64x to 0.89x, and 1.16x with one
client thread. That rate is the Python client's limit, not either server's; the server's CPU
per request, 48 us vs 54 us (1.1x to 1.5x less across runs), is where they differ.

Routes (first path segment; further segments only make URLs unique)::

    /  /page/...  anything unknown     200 HTML page: <title>Page <target></title>, 3 links
                                        (?paragraphs=N adds N paragraphs)
    /status/<code>/...                  that status (3xx without Location)
    /flaky/<n>/...                      503 for the first n requests of this exact URL, then 200
    /retry-after/<s>/<n>/...            429 + "Retry-After: <s>" n times, then 200
    /retry-after-date/<s>/<n>/...       same with an HTTP-date <s> seconds in the future
    /redirect/<n>/rest                  302 to /redirect/<n-1>/rest; n == 0 is the page
    /to/<port>/rest                     302 to http://<this address>:<port>/rest
    /bytes/<n>/...                      n bytes of a repeating b"urlfleet" pattern
    /gzip/<n>/...                       n zero bytes with Content-Encoding: gzip
    /drop/...                           connection closed without a response (status 0)
    /slow-body/<interval>/<n>/...       headers at once (Content-Length n), then 1 byte every
    /drip/<interval>/<n>/...            <interval> s, each made as it is sent (n <= 2**20)
    /delay/<s>/...                      the page, after <s> s instead of the host's latency
    /auth/...                           JSON {"authorization": <header or null>}
    /robots.txt                         404, or what ServerSpec.robots sets for the host
    ?latency=<s> on any route           overrides the latency of that request
    /__urlfleet__/records?contains=X    control: JSON records (never recorded, no latency)
    /__urlfleet__/clear                 control: forget records and fault counters
    /__urlfleet__/stats                 control: JSON counters and the server's CPU time

Hostile routes, for a client's defences (bodies made as they are sent, never held whole; a
body that never ends stops when the client goes or the server stops)::

    /redirect-body/big/<n>/rest         302 to /page/rest with n bytes of body (Content-Length)
    /redirect-body/gzip/<n>/rest        302 to /page/rest, body the gzip of n zeros (as /gzip)
    /redirect-body/endless/<n>/rest     302 to /page/rest, chunked, a 1 KiB chunk every 10 ms
                                        for ever (n is ignored)
    /chunked/<n>/...                    n bytes in 1 KiB chunks, then the last chunk
    /chunked-truncated/<n>/...          the first half of those chunks (rounded up), then the
                                        connection closes without the last chunk
    /short-body/<n>/...                 Content-Length n, n // 2 bytes, then the close
    /black-hole/...                     nothing at all, until the client or the server goes
                                        (recorded then, status 0, like any abandoned request)
    /many-headers/<n>/...               200 with n extra headers X-H1: v ... X-Hn: v
                                        (n <= 100,000)
    /huge-header/<bytes>/...            200 with one header X-Huge of that many bytes (<= 1 MiB)
    /http10/<n>/...                     an HTTP/1.0 200 without Content-Length: n bytes, then
                                        the close ends the body

Request-shaping routes, to see what a client sent (every record keeps the request's ``body``,
latin-1 decoded, its first 64 KiB; only /echo takes methods other than GET and HEAD)::

    /echo/...                           any method: 200, JSON {"method", "headers", "body"}
    /set-cookie/NAME/VALUE/...          the page, with Set-Cookie NAME=VALUE; ?path=, ?domain=
                                        and ?max_age= add Path, Domain and Max-Age
    /no-head/...                        405 to HEAD, the page to GET
    /type/<type>/<subtype>/...          a short body with that Content-Type

A request a client abandons (timeout, hang-up) is recorded when the connection goes, with
status 0 unless a status line had been sent. :func:`host_loads` turns records into per-host
politeness figures (most requests in flight, shortest gap between request starts).

Run it with ``python -m urlfleet.loopback --hosts 4 --latency 0.1``.

The package follows the data, and imports nothing but the standard library (not even the rest
of urlfleet), so it can be copied into another project's tests as it is:

    spec.py       ServerSpec, RequestRecord, HostLoad, host_loads: what is simulated and seen
    http11.py     request heads in, response heads out
    routes.py     the routes above and the control routes
    reading.py    a connection's bytes in, framed into requests
    writing.py    a connection's responses out, each request recorded as its answer ends
    protocol.py   one asyncio.Protocol per client connection: answers requests in order
    state.py      what all hosts share: records, counters, the gzip cache
    server.py     the hosts' sockets, LoopbackServer (a thread), serve()
    process.py    LoopbackProcess: the server in a child process
    cli.py        the command line, both ways (argv -> ServerSpec -> argv)
"""

from __future__ import annotations

from .cli import main
from .process import LoopbackProcess
from .routes import CONTROL_PREFIX
from .server import READY_PREFIX, LoopbackServer, serve
from .spec import HostLoad, RequestRecord, ServerSpec, host_loads

__all__ = [
    "CONTROL_PREFIX",
    "READY_PREFIX",
    "HostLoad",
    "LoopbackProcess",
    "LoopbackServer",
    "RequestRecord",
    "ServerSpec",
    "host_loads",
    "main",
    "serve",
]
