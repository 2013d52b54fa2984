"""The Starlette application: the original's two path families, aliases, auth, limits, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from festmon_tui.api.auth import Caller, Role, Tokens, bearer
from festmon_tui.api.limits import LimitClass, RateLimiter
from festmon_tui.api.openapi import openapi_document
from festmon_tui.api.params import BadParameter
from festmon_tui.api.prometheus import Exposition
from festmon_tui.api.routes import Handlers, json_response, utc_now
from festmon_tui.service.api import ActionRefused, Unavailable
from festmon_tui.service.reports import NotFound, Reports

log = logging.getLogger(__name__)

PROCESSOR = "/functions/v1/monitoring"
READ_API = "/functions/v1/monitoring-api"
MAX_BODY = 64 * 1024


def error(status: int, title: str, message: str, **extra: Any) -> Response:
    headers = extra.pop("headers", None)
    body = {"error": title, "message": message, "timestamp": utc_now().isoformat(), **extra}
    return json_response(body, status, headers)


@dataclass(frozen=True)
class Endpoint:
    """One route: what it needs (role, budget) and what answers it."""

    path: str
    methods: tuple[str, ...]
    name: str
    handler: Callable[[Request, Caller], Awaitable[Response]]
    limit: LimitClass | None
    role: Role | None  # None: public (the OpenAPI document)


@dataclass(frozen=True)
class ApiContext:
    """What every request needs: the service's reports, tokens, limits, the exposition."""

    reports: Reports
    tokens: Tokens
    limiter: RateLimiter
    exposition: Exposition
    _: KW_ONLY
    metrics_token_required: bool

    def caller(self, request: Request, endpoint: Endpoint) -> Caller | Response:
        """The token's holder, or the 401 / 403 answer."""
        token = bearer(request.headers.get("authorization"))
        anonymous = Caller(f"address:{_address(request)}", Role.READ)
        if endpoint.role is None:
            return anonymous
        # A scrape without a token is fine when so configured; a wrong token never is.
        if token is None and endpoint.name == "prometheus" and not self.metrics_token_required:
            return anonymous
        if token is None:
            return error(
                401,
                "Unauthorized",
                "a bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        caller = self.tokens.find(token)
        if caller is None:
            return error(
                401,
                "Unauthorized",
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if caller.role < endpoint.role:
            return error(
                403,
                "Forbidden",
                f"{endpoint.name} needs an operator token; {caller.name!r} may only read",
            )
        return caller


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _guard(context: ApiContext, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        caller = context.caller(request, endpoint)
        if isinstance(caller, Response):
            return caller
        headers: dict[str, str] = {}
        if endpoint.limit is not None:
            verdict = context.limiter.check(caller.name, endpoint.limit)
            headers = verdict.headers()
            if not verdict.allowed:
                return error(
                    429,
                    "Too Many Requests",
                    f"more than {verdict.limit} {endpoint.limit.value} requests a minute",
                    retry_after=verdict.retry_after_s,
                    headers=headers,
                )
        # One deadline for the whole request (a page and its totals, the dashboard's reads):
        # the statement timeout plus the client's margin. A cycle has the breaker's own timeout.
        deadline = None if endpoint.name == "cycle" else context.reports.timeout_s
        response = await _answer(endpoint, request, caller, deadline)
        response.headers.update(headers)
        return response

    return handle


async def _answer(
    endpoint: Endpoint, request: Request, caller: Caller, deadline_s: float | None
) -> Response:
    # A task, not a timeout around the await: cancelling a query over a stalled network rolls
    # its transaction back over that same network, which takes another timeout. The answer
    # goes out at the deadline; the cancelled task finishes its cleanup on its own.
    task = asyncio.ensure_future(endpoint.handler(request, caller))
    done, _ = await asyncio.wait({task}, timeout=deadline_s)
    if not done:
        task.cancel()
        task.add_done_callback(_quiet)
        message = f"no answer from the database within {deadline_s:g} s"
        return error(503, "Service Unavailable", message, headers={"Retry-After": "5"})
    try:
        return task.result()
    except BadParameter as exc:
        return error(400, "Bad Request", str(exc), parameter=exc.name)
    except NotFound as exc:
        return error(404, "Not Found", str(exc))
    except Unavailable as exc:
        return error(503, "Service Unavailable", str(exc), headers={"Retry-After": "5"})
    except ActionRefused as exc:
        return error(409, "Conflict", str(exc))
    except Exception:
        log.exception("API request %s %s failed", request.method, request.url.path)
        return error(500, "Internal Server Error", "the request failed; see festmon's log")


def _quiet(task: asyncio.Future[Response]) -> None:
    if not task.cancelled():
        task.exception()  # an error while giving up is expected, not news


def endpoints(handlers: Handlers) -> list[Endpoint]:
    h = handlers
    health, data, cycles, dash = (
        LimitClass.HEALTH,
        LimitClass.DATA,
        LimitClass.CYCLES,
        LimitClass.DASHBOARD,
    )
    read, operator = Role.READ, Role.OPERATOR
    found = [
        Endpoint(f"{PROCESSOR}", ("POST",), "cycle", h.cycle, cycles, operator),
        Endpoint(f"{PROCESSOR}/cycle", ("POST",), "cycle", h.cycle, cycles, operator),
        Endpoint(f"{PROCESSOR}/health", ("GET",), "health", h.processor_health, health, read),
        Endpoint(f"{PROCESSOR}/events", ("GET",), "events", h.processor_events, data, read),
        Endpoint(f"{PROCESSOR}/status", ("GET",), "status", h.status, data, read),
        Endpoint(f"{READ_API}/health", ("GET",), "health", h.api_health, health, read),
        Endpoint(f"{READ_API}/events", ("GET",), "events", h.api_events, data, read),
        Endpoint(f"{READ_API}/metrics", ("GET",), "metrics", h.api_metrics, data, read),
        Endpoint(f"{READ_API}/dashboard", ("GET",), "dashboard", h.dashboard, dash, read),
        # Short aliases.
        Endpoint("/cycle", ("POST",), "cycle", h.cycle, cycles, operator),
        Endpoint("/health", ("GET",), "health", h.api_health, health, read),
        Endpoint("/events", ("GET",), "events", h.api_events, data, read),
        Endpoint("/status", ("GET",), "status", h.status, data, read),
        Endpoint("/dashboard", ("GET",), "dashboard", h.dashboard, dash, read),
        Endpoint("/metrics", ("GET",), "prometheus", h.prometheus, health, read),
        Endpoint("/openapi.json", ("GET",), "openapi", h.openapi, None, None),
    ]
    # The lifecycle the original only declared, under both families and the alias.
    for prefix in (PROCESSOR, READ_API, ""):
        found += [
            Endpoint(f"{prefix}/events/{{event_id}}", ("GET",), "event", h.event, data, read),
            Endpoint(
                f"{prefix}/events/{{event_id}}", ("PATCH",), "lifecycle", h.patch, data, operator
            ),
            Endpoint(
                f"{prefix}/events/{{event_id}}/{{action}}",
                ("POST",),
                "lifecycle",
                h.action,
                data,
                operator,
            ),
        ]
    return found


def _routes(context: ApiContext, found: list[Endpoint]) -> list[BaseRoute]:
    # One Route per path, its methods merged, so a wrong method is a 405, not a 404.
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in found:
        by_path.setdefault(endpoint.path, []).append(endpoint)
    routes: list[BaseRoute] = []
    for path, group in by_path.items():
        guarded = {method: _guard(context, e) for e in group for method in e.methods}
        routes.append(Route(path, _dispatcher(guarded), methods=[*sorted(guarded), "OPTIONS"]))
    return routes


Handler = Callable[[Request], Awaitable[Response]]


def _dispatcher(guarded: dict[str, Handler]) -> Handler:
    allow = ", ".join([*sorted(guarded), "OPTIONS"])

    async def dispatch(request: Request) -> Response:
        if request.method == "OPTIONS":  # the original answered 200 with an empty body
            return Response(status_code=200, headers={"Allow": allow})
        # Starlette lets HEAD through wherever GET is allowed; it answers as GET, without a body.
        method = "GET" if request.method == "HEAD" else request.method
        return await guarded[method](request)

    return dispatch


def build_app(
    reports: Reports,
    tokens: Tokens,
    limiter: RateLimiter,
    exposition: Exposition,
    *,
    cors_origins: list[str],
    metrics_token_required: bool,
) -> Starlette:
    context = ApiContext(
        reports, tokens, limiter, exposition, metrics_token_required=metrics_token_required
    )
    handlers = Handlers(reports, exposition, lambda: openapi)
    found = endpoints(handlers)
    listing = sorted({f"{' '.join(e.methods)} {e.path}" for e in found})
    openapi = openapi_document(found)

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return error(
                405,
                "Method Not Allowed",
                f"{request.method} is not allowed on {request.url.path[:200]}",
                headers=exc.headers,
            )
        return error(
            404,
            "Not Found",
            f"no endpoint at {request.url.path[:200]}",
            available_endpoints=listing,
        )

    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
                allow_headers=["authorization", "x-client-info", "apikey", "content-type"],
                expose_headers=[
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "Retry-After",
                ],
            )
        )
    return Starlette(
        routes=_routes(context, found),
        middleware=middleware,
        exception_handlers={404: not_found, 405: not_found},
    )
