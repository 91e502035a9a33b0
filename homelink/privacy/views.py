"""The public pages of data protection: a school's current privacy notice, readable by anyone
(parents need no account to read it), and the page a "stop messages" link opens."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from homelink.privacy import notices
from homelink.privacy.tokens import read_stop_token
from homelink.register.models import Adult
from homelink.schools.models import School


def notice(request: HttpRequest, urn: str) -> HttpResponse:
    """The school's current notice. A signed-in parent linked to the school is recorded as
    shown this version (once)."""
    school = get_object_or_404(School, urn=urn)
    current = notices.notice_current(school)
    linked = False
    if request.user.is_authenticated:
        adult = Adult.objects.filter(school=school, account_id=request.user.pk).first()
        if adult is not None:
            linked = True
            notices.notice_shown(
                school=school, notice=current, adult=adult, account_id=request.user.pk
            )
    return render(
        request,
        "privacy/notice.html",
        {"school": school, "notice": current, "linked": linked},
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def stop(request: HttpRequest, token: str) -> HttpResponse:
    """A "stop messages" link: GET asks (mail scanners follow links; nothing changes), the
    button POSTs (CSRF-checked) and opts out everyone the link names: the person, or every
    adult a copy to a shared address or number was for, named on the page by first name. Using
    it twice changes nothing. The token is unguessable (privacy/tokens.py); any other answers
    404."""
    found = read_stop_token(token)
    people = notices.stop_link_people(found) if found is not None else []
    if found is None or not people:
        raise Http404("no such link")
    done = False
    if request.method == "POST":
        people = notices.stop_messages(token=found) or people
        done = True
    school = people[0].school
    return render(
        request,
        "privacy/stop.html",
        {
            "school": school,
            "token": token,
            "done": done,
            "already": all(p.opted_out for p in people) and not done,
            # Several people share the address: the page says whose messages stop.
            "whose": notices.first_names(people) if len(people) > 1 else "",
            "notice": notices.notice_current(school),
        },
    )
