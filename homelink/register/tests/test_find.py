"""What a search typed into the members list means (register/find.py): a mobile however it is
written, an address in any case, a name however it is accented or punctuated."""

from __future__ import annotations

import pytest

from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.find import search_q, terms_of
from homelink.register.models import Member
from homelink.schools.models import School


@pytest.mark.parametrize(
    "typed",
    [
        "07700 900123",
        "07700900123",
        "+447700900123",
        "+44 7700 900123",
        "+44 (0)7700 900123",
        "0044 7700 900 123",
        "07700-900-123",
        " 07700 900123 ",
    ],
)
def test_a_whole_mobile_however_written_is_one_number(typed: str) -> None:
    terms = terms_of(typed, "GB")
    assert (terms.mobile, terms.suffix, terms.words) == ("+447700900123", "", ())


def test_part_of_a_number_is_matched_by_its_end_and_a_short_one_is_not_a_number() -> None:
    assert terms_of("900123").suffix == "900123"
    assert terms_of("900 123").suffix == "900123"
    assert terms_of("0123").is_number is False  # four digits: a name or MIS id search
    assert terms_of("0123").words == ("0123",)


def test_an_address_in_any_case_and_a_name_however_written() -> None:
    email = terms_of("Pat.Okafor@Example.ORG")
    assert (email.email, email.email_whole) == ("pat.okafor@example.org", True)
    assert terms_of("okafor@").email_whole is False
    assert terms_of("Zoë  O'Brien").name_words == ("zoe", "obrien")


def found(school: School, q: str) -> set[str]:
    return set(
        Member.objects.filter(school=school)
        .filter(search_q(school, q))
        .values_list("forename", flat=True)
    )


@pytest.mark.django_db
def test_names_are_compared_as_the_importer_compares_them(school: School) -> None:
    zoe = contact(1, "Zoë", "O'Brien", email="zoe@example.org")
    run_import(school, [pupil("A1", "Amy", "Smith", zoe), pupil("123456", "Bo", "Lee")])
    assert found(school, "zoe obrien") == {"Amy"}
    assert found(school, "O'BRIEN") == {"Amy"}
    # Six digits are a number to look for at the end of mobiles, and still a MIS id.
    assert found(school, "123456") == {"Bo"}
    # Another school's parent of the same name finds nothing here.
    other = School.objects.create(urn="100002", name="Other")
    run_import(other, [pupil("B1", "Cy", "Dee", contact(1, "Zoë", "O'Brien"))])
    assert found(school, "zoe obrien") == {"Amy"}


def test_the_start_of_a_number_typed_the_national_way_is_its_e164_start() -> None:
    terms = terms_of("07700 900")
    assert terms.prefix == "+447700900"
    assert terms.mobile_matches("+447700900123")
    assert not terms.mobile_matches("+447911900123")
    assert terms_of("900123").prefix == ""
