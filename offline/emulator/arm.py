"""ARM's resource addressing: subscription, resource group and name checks with ARM's wording.

Names in paths are checked against Azure's rules before any lookup, so a caller that lets user input
reach a path segment (``..``, ``/``, a host) gets the same 400 it would get from Azure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from .config import GUID, RESOURCE_GROUP_NAME
from .server import ApiError

NOT_FOUND_HINT = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"


class ArmDirectory:
    """Which subscriptions and resource groups exist, for ARM's 404s."""

    def __init__(self, resource_groups: Iterable[tuple[str, str]]) -> None:
        self._groups: dict[str, set[str]] = {}
        for subscription, group in resource_groups:
            self._groups.setdefault(subscription.lower(), set()).add(group.lower())

    def check_scope(self, subscription: str, resource_group: str) -> None:
        if not GUID.match(subscription):
            raise ApiError(
                400,
                "InvalidSubscriptionId",
                f"The provided subscription identifier '{subscription}' is malformed or invalid.",
            )
        if not RESOURCE_GROUP_NAME.match(resource_group) or len(resource_group) > 90 or resource_group.endswith("."):
            raise ApiError(
                400,
                "InvalidResourceGroupName",
                f"Resource group name '{resource_group}' is invalid. It can include alphanumeric, underscore, "
                "parentheses, hyphen, period (except at end), and Unicode characters that match the allowed "
                "characters.",
            )
        groups = self._groups.get(subscription.lower())
        if groups is None:
            raise ApiError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")
        if resource_group.lower() not in groups:
            raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")


def check_name(value: str, rule: re.Pattern[str], low: int, high: int, what: str, hint: str) -> None:
    if not (low <= len(value) <= high) or not rule.match(value):
        raise ApiError(400, "InvalidResourceName", f"The {what} name '{value}' is invalid. {hint}", target=what)


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ApiError:
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        + NOT_FOUND_HINT,
    )


def stable_uuid(*parts: str) -> str:
    """The same made-up GUID for the same resource in every run of the emulator."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts).lower()))
