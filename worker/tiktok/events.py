"""TikTok web event names: the standard ones, and the rule a custom name must follow."""

from __future__ import annotations

import re

STANDARD_WEB_EVENTS = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval", "CompleteRegistration",
    "Contact", "CustomizeProduct", "Download", "FindLocation", "InitiateCheckout", "Lead", "Purchase",
    "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
})
# Renamed to Purchase and Lead in May 2025; TikTok still accepts them and converts them itself.
LEGACY_WEB_EVENTS = frozenset({"CompletePayment", "SubmitForm"})
KNOWN_WEB_EVENTS = STANDARD_WEB_EVENTS | LEGACY_WEB_EVENTS

MAX_CUSTOM_NAME_LENGTH = 50
CUSTOM_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_-]*")
# Names are case-sensitive: "purchase" would be a custom event that no campaign can optimise for.
KNOWN_BY_LOWERCASE = {name.lower(): name for name in KNOWN_WEB_EVENTS}


def event_name_problem(name: object) -> str | None:
    """Why TikTok would not take `name` as a web event name, or None when it would."""
    if not isinstance(name, str):
        return f"the event name must be a string, not {type(name).__name__}"
    if name in KNOWN_WEB_EVENTS:
        return None
    if not name:
        return "the event name is empty"
    if name.lower() in KNOWN_BY_LOWERCASE:
        return (f"{name!r} differs from the standard event {KNOWN_BY_LOWERCASE[name.lower()]!r} only in case; "
                "TikTok event names are case-sensitive")
    if len(name) > MAX_CUSTOM_NAME_LENGTH:
        return f"a custom event name has at most {MAX_CUSTOM_NAME_LENGTH} characters; {name[:20]!r}... has {len(name)}"
    if not ("A" <= name[0] <= "Z" or "a" <= name[0] <= "z"):
        return f"a custom event name must start with a letter (A-Z, a-z): {name!r}"
    if not CUSTOM_NAME_CHARACTERS.fullmatch(name):
        bad = next(char for char in name if not CUSTOM_NAME_CHARACTERS.fullmatch(char))
        return f"a custom event name may contain only letters, digits, '_' and '-', not {bad!r}: {name!r}"
    return None


def is_valid_event_name(name: object) -> bool:
    """A standard (or legacy) web event, or a well-formed custom event name."""
    return event_name_problem(name) is None
