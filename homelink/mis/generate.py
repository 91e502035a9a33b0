"""Generate a realistic, wholly fictional SIMS-shaped CTF for demos and load tests.

Every number that could take an SMS is a fictional mobile (mis-formats.md §4): Ofcom's drama
range 07700 900000 to 900999 first, then the rest of the unallocated 07700 9 block, each given to
one adult only. Landlines come from Ofcom's drama landline ranges and emails from example.org and
example.com, so nothing generated here can reach a real person.

The file carries the quirks of real SIMS exports (shared/samples/ctf) so that importers are
exercised on them: contacts out of Order, a duplicate Order, a missing Relationship, a pager-like
invalid mobile before the real one, spaced and padded text, the odd court order.

A CTF carries no registration groups (mis-formats.md §1): a school that wants them imports a
members CSV keyed by UPN as well. ``groups_out`` writes that CSV for the same pupils, so the demo
school has registration groups and group messaging can be tried.

``name_pool`` draws every name from a small pool (25 forenames x 40 surnames is what a trust- or
LA-wide export looks like, with hundreds of "Olivia Smith"s): the load on identifying an adult
across siblings (product.md, import rule 7), where a name is shared by many adults who are not
the same person. Each adult still has an email and a mobile of their own.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import os
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO
from xml.sax.saxutils import escape

from homelink.mis.formats.ctf import upn_check_letter

__all__ = ["GROUPS_CSV_HEADER", "MAX_NAME_POOL", "GeneratedStats", "NamePool", "generate_ctf"]

ACADEMIC_YEAR = 2024
YEARS = ("R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11")
#: About this many pupils to a registration group (a class of 30); at least two groups a year, so
#: that choosing one group in the demo is not the same as choosing the year, and at most 26.
FORM_SIZE = 30
#: The members CSV ``groups_out`` writes: the preset the importer picks from this header joins
#: students on UPN (Role ID 1 is a student).
GROUPS_CSV_HEADER = ("UPN", "Forename", "Surname", "Registration group", "Year", "Role ID")

# Ofcom numbers reserved for drama (https://www.ofcom.org.uk, "TV and radio drama numbers"):
# (prefix as dialled, how it is spaced, first, last). Nottingham's 0115 496 0xxx is left out:
# libphonenumber calls it invalid, and generated landlines should read as plain landlines.
_DRAMA_LANDLINES: tuple[tuple[str, str, int, int], ...] = (
    ("0113496", "0113 496 {}", 0, 999),
    ("0114496", "0114 496 {}", 0, 999),
    ("0116496", "0116 496 {}", 0, 999),
    ("0117496", "0117 496 {}", 0, 999),
    ("0118496", "0118 496 {}", 0, 999),
    ("0121496", "0121 496 {}", 0, 999),
    ("0131496", "0131 496 {}", 0, 999),
    ("0141496", "0141 496 {}", 0, 999),
    ("0151496", "0151 496 {}", 0, 999),
    ("0161496", "0161 496 {}", 0, 999),
    ("0207946", "020 7946 {}", 0, 999),
    ("0191498", "0191 498 {}", 0, 999),
)

_GIRLS = (
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Willow",
    "Freya",
    "Florence",
    "Emily",
    "Ella",
    "Poppy",
    "Evie",
    "Elsie",
    "Charlotte",
    "Evelyn",
    "Sienna",
    "Daisy",
    "Phoebe",
    "Sophie",
    "Alice",
    "Harper",
    "Matilda",
    "Ruby",
    "Emilia",
    "Maya",
    "Millie",
    "Isabelle",
    "Chloe",
    "Layla",
    "Aisha",
    "Amira",
    "Fatima",
    "Zara",
    "Hannah",
    "Jessica",
    "Niamh",
    "Megan",
    "Zoë",
    "Renée",
    "Siobhán",
    "Anaïs",
    "Maria",
    "Priya",
    "Leah",
    "Eleanor",
    "Esme",
    "Bethany",
)
_BOYS = (
    "Muhammad",
    "Noah",
    "Oliver",
    "George",
    "Leo",
    "Arthur",
    "Oscar",
    "Harry",
    "Archie",
    "Jack",
    "Henry",
    "Charlie",
    "Freddie",
    "Theodore",
    "Thomas",
    "Finley",
    "Theo",
    "Alfie",
    "Jacob",
    "William",
    "Isaac",
    "Tommy",
    "Joshua",
    "James",
    "Lucas",
    "Alexander",
    "Arlo",
    "Roman",
    "Edward",
    "Mohammed",
    "Max",
    "Teddy",
    "Ethan",
    "Adam",
    "Ibrahim",
    "Hugo",
    "Reuben",
    "Elijah",
    "Louis",
    "Dylan",
    "Samuel",
    "Rory",
    "Daniel",
    "Joseph",
    "Kai",
    "Zachary",
    "Benjamin",
    "Aaron",
    "Rhys",
    "Callum",
    "Owen",
    "Jake",
    "Łukasz",
    "Mateusz",
    "Darragh",
    "Ciarán",
)
_SURNAMES = (
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "James",
    "Scott",
    "Phillips",
    "Watson",
    "Davis",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Richardson",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Miller",
    "Cox",
    "Richards",
    "Khan",
    "Marshall",
    "Anderson",
    "Simpson",
    "Ellis",
    "Adams",
    "Singh",
    "Begum",
    "Wilkinson",
    "Foster",
    "Chapman",
    "Powell",
    "Webb",
    "Rogers",
    "Gray",
    "Mason",
    "Ali",
    "Hussain",
    "Campbell",
    "Matthews",
    "Owen",
    "Palmer",
    "Holmes",
    "Mills",
    "Barnes",
    "Knight",
    "Lloyd",
    "Butler",
    "Russell",
    "Barker",
    "Fisher",
    "Stevens",
    "Jenkins",
    "O'Brien",
    "O'Connor",
    "Smith-Jones",
    "Nowak",
    "Kowalski",
    "Okafor",
    "Mensah",
    "Nguyen",
    "Ahmed",
    "Rahman",
    "Chowdhury",
    "Fernandes",
    "da Silva",
)
_STREETS = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Park Avenue",
    "Mill Lane",
    "The Green",
    "Queens Road",
    "Manor Close",
    "Kings Way",
    "Orchard Drive",
    "Meadow View",
    "School Lane",
    "Chapel Street",
    "Elm Grove",
    "Ash Close",
    "Willow Way",
    "Beech Road",
    "Oak Crescent",
    "Cedar Court",
)
_TOWNS = (
    ("Leeds", "LS"),
    ("Sheffield", "S"),
    ("Nottingham", "NG"),
    ("Leicester", "LE"),
    ("Bristol", "BS"),
    ("Reading", "RG"),
    ("Birmingham", "B"),
    ("Liverpool", "L"),
    ("Manchester", "M"),
    ("Newcastle upon Tyne", "NE"),
)
_HOUSE_NAMES = ("Rose Cottage", "The Old Forge", "Holly House", "Fernlea", "The Laurels")
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_SUBJECTS = ("ENG", "MAT", "SCI", "REA", "WRI", "COM", "PSE", "LIT")
_LEAVING = ("IM", "PM", "OR", "ST")
_MOBILE_FORMATS: tuple[Callable[[str], str], ...] = (
    lambda d: d,
    lambda d: f"{d[:5]} {d[5:]}",
    lambda d: f"{d[:5]} {d[5:8]} {d[8:]}",
    lambda d: f"+44 {d[1:5]} {d[5:]}",
    lambda d: f"+44{d[1:]}",
    lambda d: f"+44 (0){d[1:5]} {d[5:]}",
    lambda d: f"0044 {d[1:5]} {d[5:]}",
)
_MOBILE_FORMAT_WEIGHTS = (30, 35, 15, 8, 5, 4, 3)


@dataclass(frozen=True, slots=True)
class NamePool:
    """The names a generated file draws from: every forename (pupils' and adults', women's
    and men's) and every surname."""

    girls: tuple[str, ...]
    boys: tuple[str, ...]
    surnames: tuple[str, ...]

    @classmethod
    def full(cls) -> NamePool:
        return cls(_GIRLS, _BOYS, _SURNAMES)

    @classmethod
    def small(cls, forenames: int, surnames: int) -> NamePool:
        """The first ``forenames`` forenames, women's and men's in turn (a pool of one gives
        everyone the same forename), and the first ``surnames`` surnames."""
        most_forenames, most_surnames = MAX_NAME_POOL
        if not 1 <= forenames <= most_forenames:
            raise ValueError(f"the name pool needs 1 to {most_forenames} forenames")
        if not 1 <= surnames <= most_surnames:
            raise ValueError(f"the name pool needs 1 to {most_surnames} surnames")
        taken = [
            name
            for pair in itertools.zip_longest(_GIRLS, _BOYS)
            for name in pair
            if name is not None
        ][:forenames]
        girls, boys = tuple(taken[0::2]), tuple(taken[1::2])
        return cls(girls, boys or girls, _SURNAMES[:surnames])

    def forename(self, rng: random.Random, gender: str) -> str:
        return rng.choice(self.girls if gender == "F" else self.boys)

    def surname(self, rng: random.Random) -> str:
        return rng.choice(self.surnames)


#: The largest pool ``NamePool.small`` makes: (forenames, surnames).
MAX_NAME_POOL = (len(_GIRLS) + len(_BOYS), len(_SURNAMES))


@dataclass(frozen=True, slots=True)
class GeneratedStats:
    pupils: int
    #: Contact entries written, one per contact under each pupil.
    contacts: int
    families: int
    #: Distinct adults (a parent of three siblings counts once).
    adults: int
    #: Distinct fictional mobiles handed out (adults and pupils).
    mobiles: int
    bytes: int
    #: True when the 100,000 fictional mobiles ran out and later adults were given none.
    mobiles_exhausted: bool = False
    #: Registration groups in the CSV written to ``groups_out`` (0 when none was asked for).
    reg_groups: int = 0


class _MobilePool:
    """Fictional mobiles, each handed out once: the drama range first, then the rest of the
    07700 9 block in a scrambled but complete order."""

    _REST_START = 901000
    _REST_SIZE = 99000
    # Prime and not a factor of 99,000, so the walk visits every number of the block once.
    _STEP = 7919

    def __init__(self, rng: random.Random) -> None:
        self._drama = list(range(900000, 901000))
        rng.shuffle(self._drama)
        self._offset = rng.randrange(self._REST_SIZE)
        self.used = 0
        self.exhausted = False

    def take(self) -> str:
        """National digits ("07700900123"), or "" once every number has been used."""
        if self.used < len(self._drama):
            number = self._drama[self.used]
        elif self.used < len(self._drama) + self._REST_SIZE:
            k = self.used - len(self._drama)
            number = self._REST_START + (self._offset + k * self._STEP) % self._REST_SIZE
        else:
            self.exhausted = True
            return ""
        self.used += 1
        return f"07700{number}"


@dataclass(slots=True)
class _Adult:
    title: str
    forename: str
    surname: str
    gender: str
    relationship: str
    responsibility: bool
    email: str
    mobile: str  # as typed in the file, "" for none
    bad_mobile: str  # a mistyped number entered before the real one, or ""
    home: str
    work: str
    court_order: bool
    address: str  # the contact's <Address> block, already rendered


@dataclass(slots=True)
class _Family:
    number: int
    surname: str
    address: str
    home: str
    adults: list[_Adult] = field(default_factory=list)


@dataclass(slots=True)
class _Pupil:
    serial: int
    family: _Family
    forename: str
    surname: str
    gender: str
    year: int  # 0 is reception


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower())


class _Writer:
    def __init__(
        self,
        rng: random.Random,
        *,
        urn: str,
        la: str,
        estab: str,
        school_name: str,
        qualifier: str,
        version: str,
        names: NamePool,
    ) -> None:
        self.rng = rng
        self.names = names
        self.urn = urn
        self.la = la
        self.estab = estab
        self.school_name = escape(school_name)
        self.partial = qualifier == "partial"
        self.qualifier = qualifier
        self.version = version
        self.sex_tag = "Sex" if _major(version) >= 25 else "Gender"
        self.mobiles = _MobilePool(rng)
        self.adults = 0
        self.contacts = 0
        self.families = 0
        self.emails = 0

    # -- people --

    def landline(self) -> str:
        digits, spaced, low, high = self.rng.choice(_DRAMA_LANDLINES)
        tail = f"{self.rng.randint(low, high):04d}"
        return spaced.format(tail) if self.rng.random() < 0.7 else digits + tail

    def mobile(self) -> tuple[str, str]:
        """A fresh fictional mobile: (national digits, as a person typed it), or ("", "")."""
        digits = self.mobiles.take()
        if not digits:
            return "", ""
        return digits, self.rng.choices(_MOBILE_FORMATS, _MOBILE_FORMAT_WEIGHTS)[0](digits)

    def email(self, forename: str, surname: str) -> str:
        self.emails += 1
        fn, sn = _ascii(forename) or "parent", _ascii(surname) or "family"
        n = self.emails
        local = self.rng.choice((f"{fn}.{sn}{n}", f"{fn[0]}{sn}{n}", f"{fn}{sn}.{n}"))
        return f"{local}@{self.rng.choice(('example.org', 'example.com'))}"

    def address(self) -> str:
        rng = self.rng
        town, area = rng.choice(_TOWNS)
        inward = "".join(rng.choices(_POSTCODE_LETTERS, k=2))
        postcode = f"{area}{rng.randint(1, 28)} {rng.randint(1, 9)}{inward}"
        street = rng.choice(_STREETS)
        if rng.random() < 0.05:
            # IRIS and some SIMS configurations write plain lines instead of BS7666.
            return (
                "<Address>\n<AddressLines>\n"
                f"<AddressLine1>{rng.randint(1, 180)} {street}</AddressLine1>\n"
                f"<AddressLine2>{town}</AddressLine2>\n"
                f"</AddressLines>\n<PostCode>{postcode}</PostCode>\n"
                "<Country>United Kingdom</Country>\n</Address>\n"
            )
        if rng.random() < 0.15:
            # SIMS pads house names to a fixed width with leading spaces.
            paon = f"          {rng.choice(_HOUSE_NAMES)}"
        else:
            paon = str(rng.randint(1, 180))
        return (
            "<Address>\n<BS7666Address>\n"
            f"<PAON>{escape(paon)}</PAON>\n<Street>{street}</Street>\n"
            f"<Town>{town}</Town>\n<PostTown>{town}</PostTown>\n"
            f"<UniquePropertyReferenceNumber>{rng.randint(10**10, 10**11 - 1)}"
            "</UniquePropertyReferenceNumber>\n"
            f"</BS7666Address><PostCode>{postcode}</PostCode>\n"
            "<Country>United Kingdom</Country>\n</Address>\n"
        )

    def adult(
        self,
        family: _Family,
        *,
        gender: str,
        relationship: str,
        responsibility: bool,
        surname: str,
        older: bool = False,
    ) -> _Adult:
        rng = self.rng
        self.adults += 1
        forename = self.names.forename(rng, gender)
        if gender == "F":
            title = rng.choices(("Mrs", "Ms", "Miss", "Dr"), (55, 30, 12, 3))[0]
        else:
            title = rng.choices(("Mr", "Dr"), (97, 3))[0]
        digits, mobile = self.mobile() if rng.random() < (0.8 if older else 0.97) else ("", "")
        bad = ""
        if digits and rng.random() < 0.02:
            # The real quirk: a number typed M with a digit missing, before the real mobile.
            bad = f"{digits[:5]} {digits[5:10]}"
        roll = rng.random()
        if roll < 0.8:
            address = "<Address>\n<AddressAsPupil>true</AddressAsPupil>\n</Address>\n"
        elif roll < 0.9:
            address = ""
        else:
            address = self.address()
        return _Adult(
            title=title,
            forename=forename,
            surname=surname,
            gender=gender,
            relationship=relationship,
            responsibility=responsibility,
            email=self.email(forename, surname) if rng.random() < 0.85 else "",
            mobile=mobile,
            bad_mobile=bad,
            home=family.home if rng.random() < 0.6 else "",
            work=self.landline() if rng.random() < 0.25 else "",
            court_order=rng.random() < 0.005,
            address=address,
        )

    def family(self) -> _Family:
        rng = self.rng
        self.families += 1
        surname = self.names.surname(rng)
        family = _Family(
            number=self.families,
            surname=surname,
            address=self.address(),
            home=self.landline() if rng.random() < 0.75 else "",
        )
        count = rng.choices((1, 2, 3, 4), (10, 25, 30, 35))[0]
        mother_first = rng.random() < 0.85
        parents = [("F", "PAM"), ("M", "PAF")]
        if not mother_first:
            parents.reverse()
        for gender, code in parents[: min(count, 2)]:
            # Separated or unmarried parents often have different surnames.
            other = bool(family.adults) and rng.random() < 0.2
            family.adults.append(
                self.adult(
                    family,
                    gender=gender,
                    relationship=code,
                    responsibility=True,
                    surname=self.names.surname(rng) if other else surname,
                )
            )
        for _ in range(count - len(family.adults)):
            relationship = rng.choices(("REL", "OTH"), (70, 30))[0]
            if rng.random() < 0.1:
                relationship = ""  # real files leave Relationship out for some contacts
            family.adults.append(
                self.adult(
                    family,
                    gender=rng.choice("MF"),
                    relationship=relationship,
                    responsibility=False,
                    surname=surname if rng.random() < 0.5 else self.names.surname(rng),
                    older=True,
                )
            )
        return family

    # -- XML --

    def header(self) -> str:
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<CTfile>\n<Header>\n'
            "<DocumentName>Common Transfer File</DocumentName>\n"
            f"<CTFversion>{escape(self.version)}</CTFversion>\n"
            f"<DateTime>{ACADEMIC_YEAR + 1}-01-15T09:30:00</DateTime>\n"
            f"<DocumentQualifier>{self.qualifier}</DocumentQualifier>\n"
            "<SupplierID>SIMS</SupplierID>\n"
            f"<SourceSchool>\n<LEA>{self.la}</LEA>\n<Estab>{self.estab}</Estab>\n"
            f"<URN>{self.urn}</URN>\n<SchoolName>{self.school_name}</SchoolName>\n"
            f"<AcademicYear>{ACADEMIC_YEAR}</AcademicYear>\n</SourceSchool>\n"
            # An export for another system names no real destination school.
            f"<DestSchool>\n<LEA>{self.la}</LEA>\n<Estab>XXXX</Estab>\n<URN>XXXXXX</URN>\n"
            "</DestSchool>\n</Header>\n<CTFpupilData>\n"
        )

    def upn(self, serial: int, year: int, *, former: bool = False) -> str:
        # LA, allocating establishment, allocation year, serial: unique per pupil, and former
        # UPNs (establishments 9000 up) never equal a current one.
        entry = (ACADEMIC_YEAR - year) % 100
        place = (9000 if former else 2000) + serial // 1000
        body = f"{self.la}{place:04d}{entry:02d}{serial % 1000:03d}"
        return upn_check_letter("?" + body) + body

    def pupil(self, pupil: _Pupil) -> str:
        rng = self.rng
        family = pupil.family
        year = pupil.year
        upn = self.upn(pupil.serial, year)
        born_from = dt.date(ACADEMIC_YEAR - year - 5, 9, 1).toordinal()
        dob = dt.date.fromordinal(born_from + rng.randrange(365))
        nc_year = YEARS[year]
        preferred = pupil.forename
        if rng.random() < 0.05 and len(pupil.forename) > 4:
            preferred = pupil.forename[:3]
        parts = [
            f"<Pupil>\n<UPN>{upn}</UPN>\n",
            f"<Surname>{escape(pupil.surname)}</Surname>\n",
            f"<Forename>{escape(pupil.forename)}</Forename>\n",
            f"<DOB>{dob.isoformat()}</DOB>\n<{self.sex_tag}>{pupil.gender}</{self.sex_tag}>\n",
            "<BasicDetails>\n",
        ]
        if rng.random() < 0.02:
            parts.append(f"<FormerUPN>{self.upn(pupil.serial, year, former=True)}</FormerUPN>\n")
        parts.append(
            f"<PreferredSurname>{escape(pupil.surname)}</PreferredSurname>\n"
            f"<PreferredForename>{escape(preferred)}</PreferredForename>\n"
        )
        if rng.random() < 0.6:
            middle = self.names.forename(rng, pupil.gender)
            parts.append(f"<MiddleNames>{escape(middle)}</MiddleNames>\n")
        parts.append(
            f"<NCyearActual>{nc_year}</NCyearActual>\n"
            "<Ethnicity>WBRI</Ethnicity>\n<EthnicitySource>P</EthnicitySource>\n"
            "<Languages>\n<Type>\n<LanguageType>F</LanguageType>\n<Language>ENG</Language>\n"
            "</Type>\n</Languages>\n"
            f"<MedicalFlag>{'true' if rng.random() < 0.1 else 'false'}</MedicalFlag>\n"
            "<EnrolStatus>C</EnrolStatus>\n"
            "<SuppInfo>\n<SuppID>SIMS</SuppID>\n<BirthCertificate>false</BirthCertificate>\n"
            "<Religion>NO</Religion>\n<Language>ENG</Language>\n</SuppInfo>\n"
            "</BasicDetails>\n"
        )
        if rng.random() < 0.12:
            parts.append(
                "<SENhistory>\n<SEN>\n"
                f"<StartDate>{ACADEMIC_YEAR - rng.randint(0, 3)}-09-0{rng.randint(1, 9)}"
                "</StartDate>\n"
                "<SENprovision>K</SENprovision>\n</SEN>\n</SENhistory>\n"
            )
        parts.append(family.address)
        if not self.partial:
            phones = []
            if family.home:
                phones.append(("H", family.home))
            if year >= 9 and rng.random() < 0.25:
                digits, mobile = self.mobile()
                if digits:
                    phones.append(("M", mobile))
            if phones:
                parts.append(_phones(phones))
            if year >= 7 and rng.random() < 0.4:
                parts.append(
                    f"<Email>{(ACADEMIC_YEAR - year + 7) % 100:02d}{_ascii(pupil.surname)}"
                    f"{_ascii(pupil.forename)[:1]}{pupil.serial}@example.org</Email>\n"
                )
            parts.append(self.contacts_xml(family))
        parts.append(self.history(year))
        parts.append(
            "<SuppInfo>\n<SuppID>SIMS</SuppID>\n<BirthCertificate>false</BirthCertificate>\n"
            "<Language>ENG</Language>\n<Religion>NO</Religion>\n</SuppInfo>\n</Pupil>\n"
        )
        return "".join(parts)

    def contacts_xml(self, family: _Family) -> str:
        rng = self.rng
        orders = list(range(1, len(family.adults) + 1))
        if len(orders) > 1 and rng.random() < 0.01:
            orders[1] = orders[0]  # the same Order twice: real files have it
        listed = list(zip(orders, family.adults, strict=True))
        if rng.random() < 0.2:
            rng.shuffle(listed)  # SIMS lists contacts in the order they were entered
        parts = ["<Contacts>\n"]
        for order, adult in listed:
            self.contacts += 1
            forename = escape(adult.forename)
            if rng.random() < 0.02:
                forename = f"  {forename} "
            parts.append(
                f"<Contact>\n<Order>{order}</Order>\n<Title>{adult.title}</Title>\n"
                f"<Surname>{escape(adult.surname)}</Surname>\n<Forename>{forename}</Forename>\n"
                f"<{self.sex_tag}>{adult.gender}</{self.sex_tag}>\n"
            )
            if adult.relationship:
                parts.append(f"<Relationship>{adult.relationship}</Relationship>\n")
            parts.append(
                f"<Responsibility>{'true' if adult.responsibility else 'false'}</Responsibility>\n"
            )
            parts.append(adult.address)
            phones = []
            if adult.home:
                phones.append(("H", adult.home))
            if adult.bad_mobile:
                phones.append(("M", adult.bad_mobile))
            if adult.mobile:
                phones.append(("M", adult.mobile))
            if adult.work:
                phones.append(("W", adult.work))
            if phones:
                parts.append(_phones(phones))
            if adult.email:
                parts.append(f"<Email>{adult.email}</Email>\n")
            parts.append(
                "<SuppInfo>\n<SuppID>SIMS</SuppID>\n"
                f"<CourtOrder>{'Y' if adult.court_order else 'N'}</CourtOrder></SuppInfo>\n"
                "</Contact>\n"
            )
        parts.append("</Contacts>\n")
        return "".join(parts)

    def history(self, year: int) -> str:
        """Attendance, assessments and school history: importers skip them, but they make up
        most of a real export's size."""
        rng = self.rng
        parts = ["<Attendance>\n"]
        for back in range(min(year, 2) + 1):
            possible = rng.choice((376, 378, 380)) if back else rng.randint(150, 250)
            authorised = rng.randint(0, 20)
            unauthorised = rng.randint(0, 6) if rng.random() < 0.3 else 0
            parts.append(
                f"<YearData>\n<Year>{ACADEMIC_YEAR - back}</Year>\n<LEA>{self.la}</LEA>\n"
                f"<Estab>{self.estab}</Estab>\n<URN>{self.urn}</URN>\n"
                f"<SchoolName>{self.school_name}</SchoolName>\n"
                f"<SessionsPossible>{possible}</SessionsPossible>\n"
                f"<SessionsAuthorised>{authorised}</SessionsAuthorised>\n"
                f"<SessionsAttended>{possible - authorised - unauthorised}</SessionsAttended>\n"
                f"<SessionsUnauthorised>{unauthorised}</SessionsUnauthorised>\n</YearData>\n"
            )
        parts.append("</Attendance>\n<StageAssessments>\n")
        stages = [("EYF", ACADEMIC_YEAR - year)]
        if year >= 3:
            stages.append(("KS1", ACADEMIC_YEAR - year + 3))
        if year >= 7:
            stages.append(("KS2", ACADEMIC_YEAR - year + 7))
        for stage, when in stages:
            parts.append(f"<KeyStage>\n<Stage>{stage}</Stage>\n")
            for subject in rng.sample(_SUBJECTS, 3):
                parts.append(
                    "<StageAssessment>\n<Locale>ENG</Locale>\n"
                    f"<Year>{when}</Year>\n<Subject>{subject}</Subject>\n<Method>TA</Method>\n"
                    f"<Component>{subject}</Component>\n<ResultStatus>R</ResultStatus>\n"
                    "<ResultQualifier>NC</ResultQualifier>\n"
                    f"<Result>{rng.choice(('EXS', 'GDS', 'WTS', 'HNM'))}</Result>\n"
                    f"<ResultDate>{when}-06-{rng.randint(10, 28)}</ResultDate>\n"
                    "</StageAssessment>\n"
                )
            parts.append("</KeyStage>\n")
        entry = ACADEMIC_YEAR - year if year < 7 else ACADEMIC_YEAR - year + 7
        parts.append(
            "</StageAssessments>\n<SchoolHistory>\n<School>\n"
            f"<LEA>{self.la}</LEA>\n<Estab>{self.estab}</Estab>\n<URN>{self.urn}</URN>\n"
            f"<SchoolName>{self.school_name}</SchoolName>\n"
            f"<EntryDate>{entry}-09-0{rng.randint(1, 7)}</EntryDate>\n"
            "</School>\n"
        )
        if year >= 7 or rng.random() < 0.1:
            parts.append(
                "<School>\n"
                f"<LEA>{self.la}</LEA>\n<Estab>{rng.randint(2000, 3999)}</Estab>\n"
                f"<URN>{rng.randint(100000, 149999)}</URN>\n"
                "<SchoolName>Previous Primary School</SchoolName>\n"
                f"<EntryDate>{ACADEMIC_YEAR - year}-09-01</EntryDate>\n"
                f"<LeavingDate>{entry}-07-20</LeavingDate>\n"
                f"<LeavingReason>{rng.choice(_LEAVING)}</LeavingReason>\n</School>\n"
            )
        parts.append("</SchoolHistory>\n")
        return "".join(parts)


def _phones(phones: list[tuple[str, str]]) -> str:
    items = "".join(
        f"<Phone>\n<TelephoneType>{kind}</TelephoneType>\n<PhoneNo>{number}</PhoneNo>\n</Phone>\n"
        for kind, number in phones
    )
    return f"<Phones>\n{items}</Phones>\n"


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _open_out(out: Path | BinaryIO) -> tuple[IO[bytes] | BinaryIO, bool]:
    """The stream to write to, and whether it is ours to close."""
    if isinstance(out, str | os.PathLike):
        return open(out, "wb", buffering=1 << 20), True
    return out, False


def _forms_per_year(pupils: int) -> int:
    return min(26, max(2, math.ceil(pupils / len(YEARS) / FORM_SIZE)))


def _reg_group(pupil: _Pupil, forms: int) -> str:
    # "7A", "7B", "RA": the year, then a letter. From the serial, not the random generator, so
    # asking for the groups leaves the CTF's bytes exactly as they were.
    return f"{YEARS[pupil.year]}{chr(ord('A') + pupil.serial % forms)}"


def _write_groups(out: Path | BinaryIO, writer: _Writer, roll: list[_Pupil], pupils: int) -> int:
    """The members CSV that gives ``roll`` its registration groups, by group and name as a
    SIMS report lists them; returns how many groups it names."""
    forms = _forms_per_year(pupils)
    rows = sorted(
        (
            (_reg_group(p, forms), p.surname, p.forename, writer.upn(p.serial, p.year), p.year)
            for p in roll
        ),
        key=lambda row: (row[4], row[0], row[1], row[2], row[3]),
    )
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\r\n")
    table.writerow(GROUPS_CSV_HEADER)
    for group, surname, forename, upn, year in rows:
        table.writerow((upn, forename, surname, group, YEARS[year], "1"))
    stream, owned = _open_out(out)
    try:
        stream.write(text.getvalue().encode("utf-8"))
    finally:
        if owned:
            stream.close()
    return len({row[0] for row in rows})


def generate_ctf(
    out: Path | BinaryIO,
    *,
    pupils: int,
    seed: int = 0,
    urn: str = "100001",
    la: str = "838",
    estab: str = "4512",
    school_name: str = "Example Academy",
    qualifier: str = "full",
    version: str = "19.0",
    groups_out: Path | BinaryIO | None = None,
    name_pool: tuple[int, int] | None = None,
) -> GeneratedStats:
    """Write a school's own CTF export of ``pupils`` fictional pupils to ``out``.

    The same arguments always give the same bytes. ``version`` 25 or later writes <Sex> where
    older versions write <Gender>. Raises ValueError for an impossible school identity.
    With ``groups_out``, also writes a members CSV of the same pupils' registration groups
    (the CTF's bytes are the same either way). ``name_pool`` (forenames, surnames) draws every
    name from that many of each (see :class:`NamePool`) instead of the full lists.
    """
    if pupils < 0:
        raise ValueError("pupils must be 0 or more")
    if not re.fullmatch(r"\d{6}|XXXXXX", urn):
        raise ValueError(f"URN {urn!r} is not 6 digits")
    if not re.fullmatch(r"\d{3}", la):
        raise ValueError(f"LA code {la!r} is not 3 digits")
    if not re.fullmatch(r"\d{4}", estab):
        raise ValueError(f"establishment number {estab!r} is not 4 digits")
    if qualifier not in ("full", "partial"):
        raise ValueError("qualifier must be full or partial")
    names = NamePool.full() if name_pool is None else NamePool.small(*name_pool)

    rng = random.Random(seed)
    writer = _Writer(
        rng,
        urn=urn,
        la=la,
        estab=estab,
        school_name=school_name,
        qualifier=qualifier,
        version=version,
        names=names,
    )
    stream, owned = _open_out(out)
    size = 0

    def write(text: str) -> None:
        nonlocal size
        data = text.encode("utf-8")
        size += len(data)
        stream.write(data)

    # The pupils in the order written, kept only when their groups are wanted: a load test's
    # 100,000 pupils need not stay in memory.
    roll: list[_Pupil] = []

    def roll_call(pupil: _Pupil) -> _Pupil:
        if groups_out is not None:
            roll.append(pupil)
        return pupil

    try:
        write(writer.header())
        # Siblings sit near each other, not always side by side, as in a file sorted by name.
        pending: list[_Pupil] = []
        made = 0
        while made < pupils:
            family = writer.family()
            children = rng.choices((1, 2, 3), (70, 20, 10))[0]
            year = rng.randrange(len(YEARS))
            for _ in range(min(children, pupils - made)):
                gender = rng.choice("MF")
                pending.append(
                    _Pupil(
                        serial=made,
                        family=family,
                        forename=names.forename(rng, gender),
                        surname=family.surname,
                        gender=gender,
                        year=year,
                    )
                )
                made += 1
                year = max(0, year - rng.randint(1, 4))
            while len(pending) > 24:
                write(writer.pupil(roll_call(pending.pop(rng.randrange(len(pending))))))
        while pending:
            write(writer.pupil(roll_call(pending.pop(rng.randrange(len(pending))))))
        write("</CTFpupilData>\n</CTfile>\n")
    finally:
        if owned:
            stream.close()
    reg_groups = 0
    if groups_out is not None:
        reg_groups = _write_groups(groups_out, writer, roll, pupils)
    return GeneratedStats(
        pupils=pupils,
        contacts=writer.contacts,
        families=writer.families,
        adults=writer.adults,
        mobiles=writer.mobiles.used,
        bytes=size,
        mobiles_exhausted=writer.mobiles.exhausted,
        reg_groups=reg_groups,
    )
