"""What each Google API call opwatch makes needs, declared on the method that makes it.

An adapter method that calls a Google API carries :func:`calls`: the API method, as its
reference names it, and the IAM permissions that reference lists, by the resource they are
checked on. :mod:`opwatch.identities` says which deployed identity uses which of these methods,
and ``tests/infra/test_permissions.py`` holds that against what ``infra/`` grants, both ways: a call
without a grant fails, and so does a grant that no call uses.

Resources are named by role, not by id: ``queue`` (the check queue), ``invoker`` (the Tasks
invoker account whose OIDC token a task carries), ``topic`` (a topic published to),
``project`` (the watched API's operations). ``{service}`` in a permission stands for the watched
API's service name (``cloudaicompanion`` for ``cloudaicompanion.googleapis.com``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE: Final = "__opwatch_calls__"


class Call(NamedTuple):
    """One Google API method, and one permission it needs on one resource.

    A NamedTuple, as cheap to define at a cold start as a plain tuple (see settings.Variable)."""

    method: str
    permission: str
    resource: str


def calls(method: str, **permissions: tuple[str, ...]) -> Callable[[F], F]:
    """Declare that the decorated function calls ``method``, needing ``permissions``.

    Args:
        method: the API method, e.g. ``google.cloud.tasks.v2.CloudTasks.CreateTask``.
        permissions: by resource role (``queue=("cloudtasks.tasks.create",)``), the permissions
            the method's reference names.
    """

    def mark(function: F) -> F:
        declared = [
            Call(method, permission, resource)
            for resource, names in permissions.items()
            for permission in names
        ]
        setattr(function, _ATTRIBUTE, (*required(function), *declared))
        return function

    return mark


def required(function: Callable[..., Any]) -> tuple[Call, ...]:
    """The calls declared on ``function`` (none if it makes no Google API call)."""
    found: tuple[Call, ...] = getattr(function, _ATTRIBUTE, ())
    return found
