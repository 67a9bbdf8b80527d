"""The one way LLM calls reach an endpoint: extraction and titles, local llama.cpp or openai backend.

- **One retry policy**: the openai client's own (`max_retries`, exponential backoff with jitter; it
  honours `Retry-After` on 429/503 up to two minutes). Nothing retries transport errors on top.
- **A deadline per HTTP request**: httpx timeouts apply to each socket read, so a server trickling
  tokens could hold one request for hours; DeadlineTransport ends a request `timeout` seconds after
  it started and the client sees an ordinary timeout.
- **A circuit breaker** (pybreaker), one per endpoint in the process, so the models of one run share
  it: after `threshold` consecutive endpoint failures (timeouts, connection errors, 5xx, 429 once
  the client's retries are spent, bodies that are not a completion) it opens; every later call
  fails at once with CircuitOpenError and sends nothing. An answer the endpoint did give (wrong
  schema, empty, 4xx) shows it is alive and resets the count. After `reset_s` one trial call
  goes through (pybreaker's half-open state).

Settings: dbt vars (llm_timeout_s, llm_max_retries, llm_breaker_threshold) passed by the models,
else PINLANDING_LLM_TIMEOUT_S, PINLANDING_LLM_MAX_RETRIES, PINLANDING_LLM_BREAKER_THRESHOLD,
PINLANDING_LLM_BREAKER_RESET_S. The API key is read by the openai client from OPENAI_API_KEY (or
given by the caller) and is never stored here or logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import httpx2
import pybreaker

log = logging.getLogger(__name__)
T = TypeVar("T")


class CircuitOpenError(RuntimeError):
    """The endpoint's breaker is open: the call was not made."""


class InvalidResponseError(RuntimeError):
    """The endpoint answered 2xx with a body that is not a completion (not JSON, no `choices`)."""


class EmptyAnswerError(ValueError):
    """A completion with no choices or only whitespace: nothing to use or to cache."""


# ------------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class LLMSettings:
    timeout: float = 60.0          # seconds per HTTP request, all of it (connect + wait + body)
    max_retries: int = 2           # the openai client's retries per call
    breaker_threshold: int = 5     # consecutive failed calls that open the breaker
    breaker_reset_s: float = 600.0  # an open breaker lets one trial call through after this long

    @classmethod
    def from_env(cls, timeout=None, max_retries=None, breaker_threshold=None) -> "LLMSettings":
        """Explicit values (dbt config) win over PINLANDING_LLM_* environment variables and defaults;
        empty strings count as not given."""
        def pick(value, env, default, cast):
            if value in (None, ""):
                value = os.environ.get(env) or default
            return cast(value)

        settings = cls(timeout=pick(timeout, "PINLANDING_LLM_TIMEOUT_S", cls.timeout, float),
                       max_retries=pick(max_retries, "PINLANDING_LLM_MAX_RETRIES", cls.max_retries, int),
                       breaker_threshold=pick(breaker_threshold, "PINLANDING_LLM_BREAKER_THRESHOLD",
                                              cls.breaker_threshold, int),
                       breaker_reset_s=pick(None, "PINLANDING_LLM_BREAKER_RESET_S", cls.breaker_reset_s, float))
        if settings.timeout <= 0 or settings.max_retries < 0 or settings.breaker_threshold < 1:
            raise ValueError(f"invalid LLM settings: {settings}")
        return settings


def endpoint_name(base_url: str) -> str:
    """scheme://host:port/path: what logs and tables may say about an endpoint (no userinfo, no query)."""
    parts = urllib.parse.urlsplit(base_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/')}"


# ---------------------------------------------------------------------------------------- deadline

class _DeadlineStream(httpx2.SyncByteStream):
    def __init__(self, stream, deadline: float, seconds: float, request):
        self._stream, self._deadline, self._seconds, self._request = stream, deadline, seconds, request

    def __iter__(self):
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx2.ReadTimeout(f"response not complete {self._seconds:g}s after the request",
                                         request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class DeadlineTransport(httpx2.HTTPTransport):
    """An HTTP transport that ends each request `seconds` after it started (as a ReadTimeout): a
    bound httpx's per-read timeouts do not give against a server that sends a byte at a time."""

    def __init__(self, seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self.seconds
        response = super().handle_request(request)
        if time.monotonic() > deadline:
            response.close()
            raise httpx2.ReadTimeout(f"no response headers within {self.seconds:g}s", request=request)
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_DeadlineStream(response.stream, deadline, self.seconds, request),
                               extensions=response.extensions)


# ----------------------------------------------------------------------------------------- breaker

def is_endpoint_failure(exc: BaseException) -> bool:
    """What the breaker counts: the endpoint could not answer (after the client's retries)."""
    from openai import APIConnectionError, APIStatusError  # APITimeoutError is an APIConnectionError

    from ml.llm_server import LlamaServerError

    if isinstance(exc, (APIConnectionError, InvalidResponseError, LlamaServerError)):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 429)
    return False


class _LogOpening(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        if new_state.name == pybreaker.STATE_OPEN:
            log.warning("LLM endpoint %s: circuit breaker OPEN after %d consecutive failures; further "
                        "calls are recorded as errors without being sent", cb.name, cb.fail_max)
        elif new_state.name == pybreaker.STATE_CLOSED and old_state is not None:
            log.warning("LLM endpoint %s: circuit breaker closed again (trial call succeeded)", cb.name)


def new_breaker(name: str, threshold: int, reset_s: float) -> pybreaker.CircuitBreaker:
    # throw_new_error_on_trip=False: the call that trips it keeps its real error (recorded as such)
    return pybreaker.CircuitBreaker(fail_max=threshold, reset_timeout=reset_s, name=name,
                                    exclude=[lambda exc: not is_endpoint_failure(exc)],
                                    listeners=[_LogOpening()], throw_new_error_on_trip=False)


_BREAKERS: dict[str, pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(name: str, threshold: int, reset_s: float) -> pybreaker.CircuitBreaker:
    """The process's breaker for an endpoint: extraction and titles in one run share it."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(name)
        if breaker is None:
            breaker = _BREAKERS[name] = new_breaker(name, threshold, reset_s)
        else:
            breaker.fail_max, breaker.reset_timeout = threshold, reset_s
        return breaker


# ---------------------------------------------------------------------------------------- endpoint

class LLMEndpoint:
    """An openai client for one endpoint, its breaker and, for the embedded server, the server to
    restart when it crashed. `call(fn)` runs `fn(client)` through the breaker."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 settings: LLMSettings | None = None, breaker: pybreaker.CircuitBreaker | None = None,
                 server=None):
        from openai import DefaultHttpxClient, OpenAI

        self.settings = settings or LLMSettings.from_env()
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.name = endpoint_name(self.base_url)
        timeout = httpx2.Timeout(self.settings.timeout, connect=min(self.settings.timeout, 10.0))
        kwargs = {"api_key": api_key} if api_key else {}  # else the client reads OPENAI_API_KEY
        self.client = OpenAI(base_url=self.base_url, timeout=timeout, max_retries=self.settings.max_retries,
                             http_client=DefaultHttpxClient(transport=DeadlineTransport(self.settings.timeout)),
                             **kwargs)
        self.breaker = breaker or breaker_for(self.name, self.settings.breaker_threshold,
                                              self.settings.breaker_reset_s)
        self.server = server
        self.calls = 0     # calls handed to the client (each is 1 + up to max_retries requests)
        self.refused = 0   # calls refused because the breaker was open

    @property
    def is_open(self) -> bool:
        return self.breaker.current_state == pybreaker.STATE_OPEN

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return self.breaker.call(self._attempt, fn, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            self.refused += 1
            raise CircuitOpenError(f"circuit open: {self.name} failed {self.breaker.fail_max} calls in a row; "
                                   "not called (rerun to fill the gap)") from None

    def _attempt(self, fn, *args, **kwargs):
        from openai import APIConnectionError

        if self.server is not None:
            self.server.ensure_running()
        try:
            return self._send(fn, *args, **kwargs)
        except APIConnectionError:
            if self.server is None:
                raise
            self.server.ensure_running()  # the embedded server crashed mid-call: restart it, ask once more
            return self._send(fn, *args, **kwargs)

    def _send(self, fn, *args, **kwargs):
        self.calls += 1
        try:
            return fn(self.client, *args, **kwargs)
        except json.JSONDecodeError as exc:  # a 2xx body that is not JSON (proxy error page, cut body)
            raise InvalidResponseError(f"response body is not JSON: {exc.msg}") from None

    def summary(self) -> str:
        state = "OPEN" if self.is_open else "closed"
        return (f"endpoint {self.name}: {self.calls} calls, {self.refused} refused, "
                f"circuit breaker {state} (threshold {self.breaker.fail_max})")


def answer_text(response) -> str:
    """The first choice's text (chat or completions); errors for a body that is not a completion
    (counted by the breaker) and for an empty answer (not counted, never cached)."""
    choices = getattr(response, "choices", None)
    if choices is None:
        raise InvalidResponseError("response is not a completion (no choices field)")
    if not choices:
        raise EmptyAnswerError("response has no choices")
    message = getattr(choices[0], "message", None)
    text = message.content if message is not None else getattr(choices[0], "text", None)
    if not text or not text.strip():
        raise EmptyAnswerError("empty answer")
    return text
