"""How every console page finds its school and its records: through the signed-in user's
membership, and through helpers that take the school.

Another school's URN and another school's ids answer 404, never 403, so that nobody can learn
from the console whether a school, a student or a link exists elsewhere (style habit 6). A
member of the school whose role is too low gets 403: they know the school already.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase

from homelink.messaging.models import Message, Template
from homelink.mis.models import ImportRun
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink
from homelink.registration.models import SecurityCode
from homelink.schools.models import School
from homelink.staff.models import Role, StaffInvitation, StaffMembership
from homelink.staff.otp import second_factor_redirect
from homelink.staff.selectors import confirmed_memberships

#: A view answers with a page, a redirect or a streamed download (a CSV).
ViewFunc = Callable[..., HttpResponseBase]


def membership_for(user: Any, urn: str) -> StaffMembership:
    """The user's membership of the school with this URN, or 404 (also when there is no such
    school: the two must look the same).

    Only an account with a confirmed email holds a role: a membership attached to an account
    nobody proved the address of (someone who registered a future colleague's address first)
    grants nothing, however it was made (:mod:`homelink.staff.invitations`)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Http404("no such school")
    membership = (
        confirmed_memberships().select_related("school").filter(user=user, school__urn=urn).first()
    )
    if membership is None:
        raise Http404("no such school")
    return membership


def get_member(school: School, pk: int) -> Member:
    try:
        return Member.objects.get(school=school, pk=pk)
    except Member.DoesNotExist:
        raise Http404("no such member") from None


def _one(found: Any, what: str) -> Any:
    if found is None:
        raise Http404(f"no such {what}")
    return found


def get_adult(school: School, pk: int, *, student: Member | None = None) -> Adult:
    """An adult of the school; with ``student``, only one linked to that student."""
    adults = Adult.objects.filter(school=school, pk=pk)
    if student is not None:
        adults = adults.filter(links__student=student)
    adult: Adult = _one(adults.first(), "adult")
    return adult


def get_link(school: School, pk: int, *, student: Member | None = None) -> Link:
    """A link of the school; with ``student``, only one of that student's links."""
    links = Link.objects.select_related("adult", "student").filter(school=school, pk=pk)
    if student is not None:
        links = links.filter(student=student)
    link: Link = _one(links.first(), "link")
    return link


def get_pending_link(school: School, pk: int, *, student: Member | None = None) -> PendingLink:
    pending = PendingLink.objects.select_related("adult", "student").filter(school=school, pk=pk)
    if student is not None:
        pending = pending.filter(student=student)
    found: PendingLink = _one(pending.first(), "waiting link")
    return found


def get_import_run(school: School, pk: int) -> ImportRun:
    run: ImportRun = _one(ImportRun.objects.filter(school=school, pk=pk).first(), "import")
    return run


def get_code(school: School, pk: int, *, member: Member | None = None) -> SecurityCode:
    """A letter's code of the school (never its clear text: only its hash is kept)."""
    codes = SecurityCode.objects.filter(school=school, pk=pk)
    if member is not None:
        codes = codes.filter(member=member)
    code: SecurityCode = _one(codes.first(), "letter")
    return code


def get_duplicate(school: School, pk: int) -> LikelyDuplicate:
    found = LikelyDuplicate.objects.select_related("adult", "other").filter(school=school, pk=pk)
    duplicate: LikelyDuplicate = _one(found.first(), "likely duplicate")
    return duplicate


def get_staff_membership(school: School, pk: int) -> StaffMembership:
    found = StaffMembership.objects.select_related("user").filter(school=school, pk=pk)
    staff: StaffMembership = _one(found.first(), "staff member")
    return staff


def get_invitation(school: School, pk: int) -> StaffInvitation:
    """One of the school's invitations (the token's hash stays out of every page)."""
    found = StaffInvitation.objects.select_related("school").filter(school=school, pk=pk)
    invitation: StaffInvitation = _one(found.first(), "invitation")
    return invitation


def get_message(school: School, pk: int) -> Message:
    found = Message.objects.select_related("created_by", "cancelled_by").filter(
        school=school, pk=pk
    )
    message: Message = _one(found.first(), "message")
    return message


def get_template(school: School, pk: int) -> Template:
    template: Template = _one(Template.objects.filter(school=school, pk=pk).first(), "template")
    return template


class StaffRequest(HttpRequest):
    """What a console view receives: the request with the school it is about."""

    school: School
    membership: StaffMembership


#: URL parameters every console pattern may use, and how each is resolved for the school.
#: ``staff_view`` refuses to serve a pattern with any other parameter, so a page added later
#: cannot fetch a record by id without going through one of these (the separation test fills
#: exactly these names).
URL_PARAMETERS = (
    "urn",
    "member_id",
    "adult_id",
    "link_id",
    "pending_id",
    "run_id",
    "code_id",
    "duplicate_id",
    "staff_id",
    "invitation_id",
    "message_id",
    "template_id",
)


def staff_view(
    *,
    min_role: str = Role.VIEWER,
    post_role: str = Role.ADMINISTRATOR,
    methods: tuple[str, ...] = ("GET", "HEAD"),
) -> Callable[[ViewFunc], ViewFunc]:
    """Wrap a console view: sign-in, the school from the URL, the records from their ids, the
    role, then the method, in that order, so that another school's ids are 404 whatever the
    method and a viewer's POST is 403 whatever the page.

    ``post_role`` is what any POST needs (administrator; a sender where it is about messages).
    The view receives ``member``, ``adult``, ``link``, ``pending``, ``message``, ``template``
    (…) objects instead of ids, each checked against the school, and the adult, link or pending
    link against the member.
    """

    def decorate(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            # Every console form carries personal data (names, addresses, numbers, a message
            # to parents): none of it goes into an error report, as sensitive_post_parameters()
            # would arrange view by view.
            request.sensitive_post_parameters = "__ALL__"  # type: ignore[attr-defined]
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            unknown = set(kwargs) - set(URL_PARAMETERS)
            if unknown:
                raise TypeError(
                    f"{view.__name__}: URL parameter(s) {sorted(unknown)} have no school-scoped "
                    "resolver in homelink.console.permissions"
                )
            membership = membership_for(request.user, kwargs.pop("urn"))
            if (second := second_factor_redirect(request, membership)) is not None:
                return second
            school = membership.school
            objects: dict[str, Any] = {}
            member = None
            if "member_id" in kwargs:
                member = objects["member"] = get_member(school, kwargs.pop("member_id"))
            if "adult_id" in kwargs:
                objects["adult"] = get_adult(school, kwargs.pop("adult_id"), student=member)
            if "link_id" in kwargs:
                objects["link"] = get_link(school, kwargs.pop("link_id"), student=member)
            if "pending_id" in kwargs:
                objects["pending"] = get_pending_link(
                    school, kwargs.pop("pending_id"), student=member
                )
            if "run_id" in kwargs:
                objects["run"] = get_import_run(school, kwargs.pop("run_id"))
            if "code_id" in kwargs:
                objects["code"] = get_code(school, kwargs.pop("code_id"), member=member)
            if "duplicate_id" in kwargs:
                objects["duplicate"] = get_duplicate(school, kwargs.pop("duplicate_id"))
            if "staff_id" in kwargs:
                objects["staff"] = get_staff_membership(school, kwargs.pop("staff_id"))
            if "invitation_id" in kwargs:
                objects["invitation"] = get_invitation(school, kwargs.pop("invitation_id"))
            if "message_id" in kwargs:
                objects["message"] = get_message(school, kwargs.pop("message_id"))
            if "template_id" in kwargs:
                objects["template"] = get_template(school, kwargs.pop("template_id"))
            needed = post_role if request.method not in ("GET", "HEAD") else min_role
            if not membership.can(needed):
                raise PermissionDenied("your role at this school does not allow this")
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            staff_request: StaffRequest = request  # type: ignore[assignment]
            staff_request.school = school
            staff_request.membership = membership
            return view(staff_request, **objects)

        wrapper.console_staff_view = True  # type: ignore[attr-defined]
        # The separation test reads it: a sender's POST is refused except where it is theirs.
        wrapper.console_post_role = post_role  # type: ignore[attr-defined]
        # And a viewer's GET of an administrators' page (the audit trail) is refused.
        wrapper.console_min_role = min_role  # type: ignore[attr-defined]
        return wrapper

    return decorate
