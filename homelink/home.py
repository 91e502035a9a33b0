"""``/``: the front page. Whoever arrives at the site's address (from a letter, a bookmark, or
``make demo``'s first line) is told what homelink is and where to go: parents to register or log
in, school office staff to sign in to the console. It shows no school's data."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from homelink.staff.selectors import confirmed_memberships
from homelink.trusts.selectors import confirmed_trust_memberships


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    # Someone already signed in is offered the pages that are theirs; the console only to an
    # account it would let in (a confirmed email with a membership), so nobody follows a link
    # to a refusal.
    works_for_a_school = request.user.is_authenticated and (
        confirmed_memberships().filter(user_id=request.user.pk).exists()
        or confirmed_trust_memberships().filter(user_id=request.user.pk).exists()
    )
    return render(request, "home.html", {"works_for_a_school": works_for_a_school})
