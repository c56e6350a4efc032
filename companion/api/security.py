"""Access rules for a daemon on a home network: API key, Host allow-list, cross-site refusal, CORS.

Every request passes :func:`check_request` before its handler. Plain clients (curl, scripts,
the CLI) send no Origin or Sec-Fetch-Site headers and are not affected by the cross-site rule.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Request, Response

from companion.config import ServerSettings
from companion.errors import Forbidden, MisdirectedRequest, Unauthorized
from companion.names import MEMORY_HEADER, RECALLED_HEADER

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "localhost.localdomain"}
WILDCARD_BINDS = {"0.0.0.0", "::", ""}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# the AI Companion API changes data on these GETs
MUTATING_GETS = {"/api/clearMessages", "/api/erase/longTermMemory", "/api/regenerate_message",
                 "/api/clearTuningMessages"}
# with [server] api_key every route needs the key but the web page (which asks for it) and a
# liveness probe, as llama-server exempts /health: llama.cpp's /completion, /tokenize and /props
# generate or tell without /api/ or /v1/ in their path
PUBLIC_PATHS = {"/", "/health", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/",)


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name part of a Host header, without port, lower-case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, server: ServerSettings) -> bool:
    """Host allow-list against DNS rebinding: local names, IP literals, the bind host, configured names.

    A rebinding attack needs a domain name that resolves to this machine, so IP literals
    (how people reach a LAN device) are always fine.
    """
    name = host_name(host_header)
    if not name:
        return False
    if name in LOCAL_NAMES or is_ip_literal(name):
        return True
    if server.host not in WILDCARD_BINDS and name == server.host.lower():
        return True
    return name in {h.lower() for h in server.allowed_hosts}


def changes_data(request: Request) -> bool:
    return request.method not in SAFE_METHODS or request.path in MUTATING_GETS


def own_origin(request: Request) -> str:
    return f"{request.scheme}://{request.host}".lower()


def origin_allowed(origin: str, request: Request, server: ServerSettings) -> bool:
    origin = origin.rstrip("/").lower()
    return origin == own_origin(request) or origin in {o.rstrip("/").lower() for o in server.cors_origins}


def presented_key(request: Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key", "").strip()


def check_request(request: Request, server: ServerSettings) -> None:
    """Refuse a request that breaks an access rule (raises 421, 401 or 403)."""
    if not host_allowed(request.host, server):
        raise MisdirectedRequest(f"this daemon does not answer for host {host_name(request.host)!r}; "
                                 "add it to [server] allowed_hosts")
    if request.method == "OPTIONS":
        return
    if server.api_key and request.path not in PUBLIC_PATHS and not request.path.startswith(PUBLIC_PREFIXES):
        if not hmac.compare_digest(presented_key(request).encode(), server.api_key.encode()):
            raise Unauthorized("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    if changes_data(request):
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        if origin and origin != "null" and origin_allowed(origin, request, server):
            return
        if origin or site == "cross-site" or (site == "same-site" and not origin):
            raise Forbidden("cross-site requests may not change anything; list the page's origin "
                            "in [server] cors_origins to allow it")


def add_cors_headers(request: Request, response: Response, server: ServerSettings) -> Response:
    """CORS headers for the origins listed in [server] cors_origins, and only for them."""
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in server.cors_origins}:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = f"Authorization, X-API-Key, Content-Type, Accept, {MEMORY_HEADER}"
        response.headers["Access-Control-Expose-Headers"] = f"{RECALLED_HEADER}, X-Request-ID"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
        response.vary.add("Origin")
    return response
