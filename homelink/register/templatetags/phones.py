"""``{% load phones %}``: phone numbers shown as the school's region writes them.

Numbers are stored in E.164 (``+447700900767``): exact, and what gateways want. People read and
type them the national way, so every page shows them through ``phone``::

    {{ adult.mobile|phone:school.phone_region }}   → 07700 900767 for a GB school
    {{ parent.mobile|phone }}                      → the parents' pages read numbers as GB

A value that is not E.164 (an email address in a "to" column) passes through unchanged, so one
column can hold both. CSV exports keep E.164: spreadsheets and other systems read it unambiguously.
"""

from __future__ import annotations

from django import template

from homelink.mis.phones import for_display

register = template.Library()

#: Parents' pages belong to no one school; parents' numbers are read as GB there
#: (homelink.accounts.services.MOBILE_REGION), so they are shown that way too.
DEFAULT_REGION = "GB"


@register.filter(is_safe=True)
def phone(value: object, region: str | None = None) -> str:
    # is_safe: the output is digits, spaces, "+", "(", ")" and "-", or the input unchanged (which
    # autoescaping still escapes when the input was unsafe, as Django does for is_safe filters).
    return for_display(str(value or ""), region or DEFAULT_REGION)
