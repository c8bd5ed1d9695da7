"""The address students should open: not the one in the teacher's address bar.

A teacher who opens the app on the server's own machine sees ``http://localhost:8501``,
which no student's device can open. The links we hand out (a lesson's settings, the Class
page's link and QR code) use, in this order:

1. ``browser.serverAddress`` when the teacher configured it (e.g. a name behind a proxy);
2. the address the page was opened with, when that is already a network address;
3. this machine's network address (the one Streamlit prints as "Network URL").

Pure logic (no Streamlit): pages pass the page's URL and the configured address in.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def is_local(host: str | None) -> bool:
    """True for a name or address only this machine can open (localhost, 127.x, ::1, 0.0.0.0)."""
    host = (host or "").strip("[]").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def network_ip() -> str | None:
    """This machine's address on its network (the interface of its default route), or None.

    Connecting a UDP socket sends nothing: it only asks the kernel which interface a packet
    to that (private, unused) address would leave by."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 1))
            ip = probe.getsockname()[0]
    except OSError:
        ip = None
    if ip and not is_local(ip):
        return ip
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return None
    return None if is_local(ip) else ip


@dataclass(frozen=True)
class StudentAddress:
    url: str  # what to hand out (no query string)
    why: str  # one plain sentence for the page: where the address comes from
    reachable: bool  # False when we found no address other devices can open


def student_address(page_url: str | None, server_address: str | None = None,
                    find_ip=network_ip) -> StudentAddress:
    """The base URL (scheme, host, port, path; no query) students should open.

    ``page_url``: the page as the browser sees it (``st.context.url``);
    ``server_address``: Streamlit's ``browser.serverAddress`` if the teacher set one."""
    parts = urlsplit(page_url or "http://localhost:8501/")
    scheme, path = parts.scheme or "http", parts.path or "/"
    port = parts.port
    configured = (server_address or "").strip()
    if configured and not is_local(configured):
        host = configured
        why = f"The server's configured address (browser.serverAddress = {configured})."
    elif not is_local(parts.hostname):
        return StudentAddress(urlunsplit((scheme, parts.netloc, path, "", "")),
                              "The address this page was opened with.", True)
    else:
        host = find_ip()
        if host is None:
            return StudentAddress(urlunsplit((scheme, parts.netloc, path, "", "")),
                                  "This computer has no network address right now, so other "
                                  "devices cannot open it: connect it to the class's network.",
                                  False)
        why = (f"This computer's network address: {parts.hostname or 'localhost'}, in your "
               "address bar, opens only on this computer.")
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc = f"{netloc}:{port}"
    return StudentAddress(urlunsplit((scheme, netloc, path, "", "")), why, True)
