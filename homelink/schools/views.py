"""The school's logo, for the pages that show it: the school's own staff and its parents only."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from homelink.register.models import Link, PendingLink
from homelink.schools.models import SchoolLogo
from homelink.staff.selectors import confirmed_memberships
from homelink.trusts.selectors import confirmed_trust_memberships


@require_safe
def school_logo(request: HttpRequest, urn: str) -> HttpResponse:
    """The logo of the school ``urn``, to its staff and to parents linked to (or waiting for)
    one of its students; 404 to anyone else, as for a school without a logo. Never a file
    under MEDIA_ROOT: the bytes come from the database, re-encoded when uploaded."""
    user = request.user
    if not user.is_authenticated:
        raise Http404
    # The image (up to 200 KB) is read only for someone allowed to see it.
    school_id = (
        SchoolLogo.objects.filter(school__urn=urn).values_list("school_id", flat=True).first()
    )
    if school_id is None:
        raise Http404
    allowed = (
        confirmed_memberships().filter(user_id=user.pk, school_id=school_id).exists()
        or confirmed_trust_memberships()
        .filter(user_id=user.pk, trust__places__school_id=school_id)
        .exists()
        or Link.objects.filter(school_id=school_id, adult__account_id=user.pk).exists()
        or PendingLink.objects.filter(
            school_id=school_id,
            adult__account_id=user.pk,
            status=PendingLink.Status.WAITING,
        ).exists()
    )
    if not allowed:
        raise Http404
    logo = SchoolLogo.objects.get(school_id=school_id)
    response = HttpResponse(bytes(logo.image), content_type=logo.content_type)
    extension = "png" if logo.content_type == "image/png" else "jpg"
    response["Content-Disposition"] = f'inline; filename="logo.{extension}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
