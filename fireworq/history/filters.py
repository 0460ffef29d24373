"""
The ``name=`` and ``tag=`` filters of the job lists, the failure log and
``/completed`` (protocol B8), over the jobs' B7 ``name`` and ``tags``.

The stores keep names and tags inside the options JSON, which no index
covers, so a filtered list walks the store's own pages (in the list's
order, with its cursors) and keeps the matching items: L{filtered_page}.
One request reads at most L{SCAN_LIMIT} items; when it stops there with
fewer matches than asked, its ``next_cursor`` says where to go on (a page
may then hold fewer items than ``limit``, even none, and still have a
next page).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import attr
from twisted.internet.defer import Deferred

from fireworq.joboptions.values import JobOptions
from fireworq.model import Page, PageKey

#: Items one filtered list request reads from the store at most.
SCAN_LIMIT = 10_000

#: Items asked from the store per step of a filtered walk.
STEP = 500


class BadFilter(ValueError):
    """A ``name`` or ``tag`` query parameter that cannot be a filter."""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JobFilter:
    """
    Which jobs a list shows: ``name`` exactly, or names starting with
    ``prefix`` (``name=send*``), and every ``tags`` pair.
    """

    name: Optional[str] = None
    prefix: Optional[str] = None
    tags: Tuple[Tuple[str, str], ...] = ()

    @property
    def active(self) -> bool:
        """Whether the filter leaves anything out."""
        return self.name is not None or self.prefix is not None or bool(self.tags)

    def matches(self, options: JobOptions) -> bool:
        """Whether a job with ``options`` passes."""
        name = options.name
        if self.name is not None and name != self.name:
            return False
        if self.prefix is not None and (name is None or not name.startswith(self.prefix)):
            return False
        if self.tags:
            tags = dict(options.tags or ())
            for key, value in self.tags:
                if tags.get(key) != value:
                    return False
        return True


NO_FILTER = JobFilter()


def parse_filter(names: Sequence[str], tags: Sequence[str]) -> JobFilter:
    """
    The filter of a list request's ``name`` (at most one) and ``tag``
    (``key:value``, repeatable) query values.

    @raise BadFilter: naming the bad parameter.
    """
    if len(names) > 1:
        raise BadFilter("query parameter name may be given once")
    name = prefix = None
    if names:
        text = names[0]
        if not text:
            raise BadFilter("query parameter name must not be empty")
        if text.endswith("*"):
            prefix = text[:-1]
        else:
            name = text
    pairs: List[Tuple[str, str]] = []
    for tag in tags:
        key, colon, value = tag.partition(":")
        if not colon or not key:
            raise BadFilter(f"query parameter tag must be key:value, got {tag!r}")
        pairs.append((key, value))
    return JobFilter(name=name, prefix=prefix, tags=tuple(pairs))


def filtered_page(
    fetch: Callable[[Optional[PageKey], int], "Deferred[Page[Any]]"],
    key_of: Callable[[Any], PageKey],
    options_of: Callable[[Any], JobOptions],
    job_filter: JobFilter,
    limit: int,
    start: Optional[PageKey],
    scan_limit: int = SCAN_LIMIT,
) -> "Deferred[Page[Any]]":
    """
    One page of the items ``fetch(start, count)`` lists that pass
    ``job_filter``: the list is walked from ``start`` until ``limit``
    items matched, the list ended or ``scan_limit`` items were read.  The
    page's ``next_key`` is the key of the item after the last one read
    that matched (or where the walk stopped), None at the end.
    """
    if not job_filter.active:
        return fetch(start, limit)
    found: List[Any] = []
    read = [0]
    result: Deferred = Deferred()

    def step(key: Optional[PageKey]) -> None:
        count = min(max(limit - len(found), STEP), max(1, scan_limit - read[0]))
        d = fetch(key, count)
        d.addCallbacks(got, result.errback)

    def got(page: Page) -> None:
        for index, item in enumerate(page.items):
            read[0] += 1
            if job_filter.matches(options_of(item)):
                found.append(item)
                if len(found) >= limit:
                    rest = page.items[index + 1:]
                    result.callback(Page(found, key_of(rest[0]) if rest else page.next_key))
                    return
        if page.next_key is None or read[0] >= scan_limit:
            result.callback(Page(found, page.next_key))
            return
        step(page.next_key)

    step(start)
    return result
