"""Exception types of the loaders.

Every failure a run can hit has its own type so the runner can word the final message (service,
endpoint, status, attempts, and what to do next) and so tests can assert the *kind* of failure
rather than grep text. None of them ever carries a credential: they are built from URLs without
query secrets, status codes and the service's error envelope only.
"""

from __future__ import annotations


class ExtractError(RuntimeError):
    """Base class: a run that must fail (and must not advance incremental state)."""


class FetchError(ExtractError):
    """A page could not be fetched within the retry budget, or the service refused it (4xx).

    The message names service, endpoint, the URL (scheme, host, port and path only: never a query,
    which may carry a secret, nor user info) and, as ``hint``, what to check.
    """

    def __init__(
        self,
        service: str,
        endpoint: str,
        status: int | str,
        attempts: int,
        detail: str,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.service = service
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        self.url = url
        where = f" [{url}]" if url else ""
        advice = f"; {hint}" if hint else ""
        super().__init__(
            f"{service} {endpoint}: failed after {attempts} attempt(s); last status {status}: {detail}"
            f"{where}{advice}"
        )


class UnsafePagination(ExtractError):
    """The pagination tried to leave the service, loop, or run past the page cap."""


class BadPage(ExtractError):
    """A 200 response that is not a usable page (error envelope, no data key, truncated JSON)."""


class SchemaDrift(ExtractError):
    """Records changed shape in a way that would corrupt raw tables (missing/renamed field, new type)."""


class ConfigMissing(ExtractError):
    """A base URL or credential could not be found in env, .dlt/ files or run/fleet.env."""


class SourceFileError(ExtractError):
    """An invalid source file (``sources/<name>.yml``): names the file, the key and what is allowed."""


class PageShape(BadPage):
    """A complete JSON body of the wrong shape for the endpoint's ``records`` (an array where an object
    was expected, or the reverse): a configuration error, so it is not retried."""


class ShortWalk(ExtractError):
    """A walk that ended with fewer records than the API said it holds (a wrong pagination key)."""
