"""A loopback web server that misbehaves on demand, the way hostile or broken servers do.

One raw asyncio stream server serves every mode: aiohttp.web cannot accept a
connection and then never speak TLS, send a megabyte header line or answer
with bytes that are not HTTP. TLS is started per connection (server-side
`start_tls`), so `ssl_context` can be swapped at runtime (expired or
wrong-name certificates) and `blackhole` can leave even the handshake
unanswered. Every response closes its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from enum import StrEnum
from html import escape

from simulator.portal import PortalIdentity, RotatingPortal, defaced_page, healthy_page

_MIB = 1 << 20
_CHUNK = 64 * 1024
_MAX_REQUEST_HEAD = 64 * 1024
_TLS_HANDSHAKE_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 2.0
_DROP_FILLERS = 4
_DROP_SETTLE_S = 0.02
_REASON_PHRASES = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# What answers on the wrong port often looks like: another protocol's banner.
_GARBAGE = b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe\x01 this is not HTTP \x7f\x80\r\n\r\n"
_LANDING_PATH = "/landing"
_LOOP_PATHS = ("/loop-a", "/loop-b")


class WebMode(StrEnum):
    OK = "ok"  # 200 with `body_text`
    REFUSE = "refuse"  # the listener is closed: connections are refused
    DROP = "drop"  # SYNs dropped: connections time out (an accept queue kept full)
    BLACKHOLE = "blackhole"  # TCP accepted, then silence (no TLS handshake either)
    STATUS = "status"  # `status_code` (5xx by default)
    SLOW = "slow"  # `slow_delay_s` of silence before the response head
    DEFACED = "defaced"  # 200 with the defacer's page (`pages`), or `defaced_text`
    ROTATING = "rotating"  # 200 with a page that differs on every request (`pages`)
    DRIP = "drip"  # head at once, then the body one byte per `drip_interval_s`
    HUGE_BODY = "huge_body"  # 200 with `huge_body_bytes` of body
    GZIP_BOMB = "gzip_bomb"  # a small gzip body that inflates to `gzip_bomb_bytes`
    REDIRECT = "redirect"  # every path redirects once to /landing, which is OK
    REDIRECT_LOOP = "redirect_loop"  # /loop-a -> /loop-b -> /loop-a -> ...
    HUGE_HEADER = "huge_header"  # a header line of `huge_header_bytes`
    GARBAGE = "garbage"  # bytes that are not HTTP, then close


@dataclass(frozen=True, slots=True)
class SitePages:
    """A site's pages: its portal, its news-front-page twin and its defacement."""

    healthy: bytes
    rotating: RotatingPortal
    defaced: bytes

    @classmethod
    def for_site(cls, identity: PortalIdentity) -> SitePages:
        return cls(healthy_page(identity), RotatingPortal(identity), defaced_page())


class FaultWebServer:
    """An HTTP(S) server on `host:port` (port 0: any free one) with a switchable fault mode.

    `mode` changes through `set_mode` (refusing means closing the listener,
    which is asynchronous); the page texts, status code, delays and sizes are
    plain attributes read for every request, as is `ssl_context`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        mode: WebMode = WebMode.OK,
        body_text: str = "govwatch simulated portal",
        defaced_text: str = "Hacked by the simulator",
        status_code: int = 500,
        slow_delay_s: float = 30.0,
        drip_interval_s: float = 1.0,
        huge_body_bytes: int = 50 * _MIB,
        gzip_bomb_bytes: int = 256 * _MIB,
        huge_header_bytes: int = _MIB,
        declare_length: bool = True,
        pages: SitePages | None = None,
    ) -> None:
        self.host = host
        # A realistic portal (simulator.portal) when set; else a one-line page of `body_text`.
        self.pages = pages
        self.ssl_context = ssl_context
        self.body_text = body_text
        self.defaced_text = defaced_text
        self.status_code = status_code
        self.slow_delay_s = slow_delay_s
        self.drip_interval_s = drip_interval_s
        self.huge_body_bytes = huge_body_bytes
        self.gzip_bomb_bytes = gzip_bomb_bytes
        self.huge_header_bytes = huge_header_bytes
        # False: the huge body comes without Content-Length, ended by closing the connection.
        self.declare_length = declare_length
        self.connections_accepted = 0
        self._requested_port = port
        self._port: int | None = None
        self._running = False
        self._mode = mode
        self._listener: asyncio.Server | None = None
        self._dropper: _DroppingPort | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._gzip_bomb: tuple[int, bytes] | None = None  # (inflated size, gzip bytes)

    @property
    def mode(self) -> WebMode:
        return self._mode

    @property
    def port(self) -> int:
        """The port listened on (or refused on); after `stop()`, the one a restart reuses."""
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("the server is already started")
        if self._port is None:
            self._port = self._requested_port
        if self._port == 0:
            await self._listen()  # even refusing or dropping needs a port of its own
        await self._arrange_port()
        self._running = True

    async def stop(self) -> None:
        """Stop listening and end every connection; `start()` again reuses the port."""
        self._running = False
        await self._close_listener()
        self._close_dropper()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def set_mode(self, mode: WebMode) -> None:
        """Switch the fault; connections already being served finish in their old mode."""
        self._mode = mode
        if self._running:
            await self._arrange_port()

    async def __aenter__(self) -> FaultWebServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _arrange_port(self) -> None:
        """Serve, refuse (nothing bound) or drop (bound, never accepting) as the mode says."""
        if self._mode in (WebMode.REFUSE, WebMode.DROP):
            await self._close_listener()
        if self._mode is not WebMode.DROP:
            self._close_dropper()
        if self._mode is WebMode.DROP and self._dropper is None:
            self._dropper = await _DroppingPort.open(self.host, self.port)
        elif self._mode not in (WebMode.REFUSE, WebMode.DROP) and self._listener is None:
            await self._listen()

    def _close_dropper(self) -> None:
        if self._dropper is not None:
            self._dropper.close()
            self._dropper = None

    async def _listen(self) -> None:
        self._listener = await asyncio.start_server(
            self._serve, self.host, self._port, limit=_MAX_REQUEST_HEAD
        )
        self._port = self._listener.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections_accepted += 1
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            # stop(). Not re-raised: Python 3.11's start_server logs a cancelled handler as an error.
            writer.transport.abort()
        finally:
            self._handlers.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._mode is WebMode.BLACKHOLE:
                await _swallow(reader)
                return
            if self.ssl_context is not None:
                await writer.start_tls(
                    self.ssl_context, ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT_S
                )
            path = await _read_request_path(reader)
            if path is not None:
                await self._respond(self._mode, path, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # clients hang up on faults mid-way; that is what faults are for
        writer.close()
        try:
            # A TLS close waits for the peer's close_notify, which a probe may never send.
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()

    async def _respond(
        self, mode: WebMode, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        match mode:
            # REFUSE, DROP: accepted just before the switch.
            case WebMode.OK | WebMode.REFUSE | WebMode.DROP:
                await _send(writer, 200, self._normal_page())
            case WebMode.BLACKHOLE:
                await _swallow(reader)
            case WebMode.STATUS:
                await _send(writer, self.status_code, _page(f"Error {self.status_code}"))
            case WebMode.SLOW:
                await asyncio.sleep(self.slow_delay_s)
                await _send(writer, 200, self._normal_page())
            case WebMode.DEFACED:
                defaced = self.pages.defaced if self.pages else _page(self.defaced_text)
                await _send(writer, 200, defaced)
            case WebMode.ROTATING:
                if self.pages:
                    await _send(writer, 200, self.pages.rotating.page())
                else:
                    await _send(writer, 200, _page(f"{self.body_text} {time.time()}"))
            case WebMode.DRIP:
                await self._drip(writer)
            case WebMode.HUGE_BODY:
                await _send_filler(writer, self.huge_body_bytes, declare=self.declare_length)
            case WebMode.GZIP_BOMB:
                bomb = self._gzip_bomb_body()
                await _send(writer, 200, bomb, [("Content-Encoding", "gzip")])
            case WebMode.REDIRECT:
                if path == _LANDING_PATH:
                    await _send(writer, 200, self._normal_page())
                else:
                    await _send(writer, 302, b"", [("Location", _LANDING_PATH)])
            case WebMode.REDIRECT_LOOP:
                target = _LOOP_PATHS[1] if path == _LOOP_PATHS[0] else _LOOP_PATHS[0]
                await _send(writer, 302, b"", [("Location", target)])
            case WebMode.HUGE_HEADER:
                padding = "a" * self.huge_header_bytes
                await _send(writer, 200, self._normal_page(), [("X-Padding", padding)])
            case WebMode.GARBAGE:
                writer.write(_GARBAGE)
                await writer.drain()

    def _normal_page(self) -> bytes:
        return self.pages.healthy if self.pages else _page(self.body_text)

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        body = self._normal_page()
        writer.write(_head(200, len(body), []))
        await writer.drain()
        for index in range(len(body)):
            await asyncio.sleep(self.drip_interval_s)
            writer.write(body[index : index + 1])
            await writer.drain()

    def _gzip_bomb_body(self) -> bytes:
        if self._gzip_bomb is None or self._gzip_bomb[0] != self.gzip_bomb_bytes:
            self._gzip_bomb = (self.gzip_bomb_bytes, gzip_of_zeros(self.gzip_bomb_bytes))
        return self._gzip_bomb[1]


class _DroppingPort:
    """A port whose SYNs the kernel drops: a listener that never accepts, its queue full.

    Loopback cannot lose packets, but a full accept queue makes Linux drop
    new SYNs, so clients see exactly what a filtered network shows them.
    """

    def __init__(self, sockets: list[socket.socket]) -> None:
        self._sockets = sockets

    @classmethod
    async def open(cls, host: str, port: int) -> _DroppingPort:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        sockets = [listener]
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(0)
            for _ in range(_DROP_FILLERS):
                filler = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(filler)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect((host, port))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        await asyncio.sleep(_DROP_SETTLE_S)  # let the fillers' handshakes fill the queue
        return cls(sockets)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def gzip_of_zeros(size: int) -> bytes:
    """A valid gzip member that inflates to `size` zero bytes (about 1 KiB per MiB).

    After a full flush deflate restarts from an empty window, so every whole
    MiB of zeros compresses to the same bytes: compress one, repeat it.
    """
    whole_mib, rest = divmod(size, _MIB)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    one_mib = deflater.compress(bytes(_MIB)) + deflater.flush(zlib.Z_FULL_FLUSH)
    tail = deflater.compress(bytes(rest)) + deflater.flush(zlib.Z_FINISH)
    crc = 0
    zeros = bytes(_MIB)
    for _ in range(whole_mib):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return header + one_mib * whole_mib + tail + trailer


def _page(text: str) -> bytes:
    safe = escape(text)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{safe}</title></head>"
        f"<body><h1>{safe}</h1></body></html>\n"
    ).encode()


def _head(status: int, content_length: int | None, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASON_PHRASES.get(status, 'Status')}"]
    lines.append("Content-Type: text/html; charset=utf-8")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    writer.write(_head(status, len(body), headers or []))
    writer.write(body)
    await writer.drain()


async def _send_filler(writer: asyncio.StreamWriter, size: int, *, declare: bool) -> None:
    writer.write(_head(200, size if declare else None, []))
    chunk = memoryview(b"x" * _CHUNK)
    remaining = size
    while remaining > 0:
        step = min(remaining, _CHUNK)
        writer.write(chunk[:step])
        await writer.drain()
        remaining -= step


async def _read_request_path(reader: asyncio.StreamReader) -> str | None:
    """The path of the request head on `reader`; None when the client sent no request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    return parts[1] if len(parts) == 3 else "/"


async def _swallow(reader: asyncio.StreamReader) -> None:
    """Read and drop whatever the client sends until it hangs up."""
    while await reader.read(_CHUNK):
        pass
