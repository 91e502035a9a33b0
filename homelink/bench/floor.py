"""The floor for an import: lxml iterparse of the same CTF plus sqlite3 executemany of the same
rows into the same tables, with nothing of homelink in between. Run as a separate process by
``make bench`` so that its time and peak memory compare with ``homelink import``'s."""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import UTC, datetime

from lxml import etree


def main(path: str, db: str, school_id: int) -> None:
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    members, adults, links = [], [], []
    adult_id = 0
    pupils = etree.iterparse(
        path, events=("end",), tag="Pupil", resolve_entities=False, no_network=True
    )
    for member_id, (_event, pupil) in enumerate(pupils, 1):
        members.append(
            (
                member_id,
                school_id,
                "student",
                "student",
                pupil.findtext("UPN") or "",
                "",
                "",
                (pupil.findtext("Forename") or "").strip(),
                (pupil.findtext("Surname") or "").strip(),
                pupil.findtext("BasicDetails/NCyearActual") or "",
                "",
                pupil.findtext("Email") or "",
                "",
                "current",
                None,
                False,
                False,
                now,
                now,
            )
        )
        for contact in pupil.iterfind("Contacts/Contact"):
            adult_id += 1
            mobile = next(
                (
                    p.findtext("PhoneNo")
                    for p in contact.iterfind("Phones/Phone")
                    if p.findtext("TelephoneType") == "M"
                ),
                "",
            )
            forename = (contact.findtext("Forename") or "").strip()
            surname = (contact.findtext("Surname") or "").strip()
            adults.append(
                (
                    adult_id,
                    school_id,
                    contact.findtext("Title") or "",
                    forename,
                    surname,
                    f"{forename} {surname}".lower(),
                    contact.findtext("Email") or "",
                    (mobile or "").replace(" ", ""),
                    "import",
                    False,
                    False,
                    False,
                    False,
                    False,
                    False,
                    "",
                    now,
                    now,
                )
            )
            links.append(
                (
                    school_id,
                    member_id,
                    adult_id,
                    "import",
                    int(contact.findtext("Order") or 0),
                    contact.findtext("Order") == "1",
                    "",
                    contact.findtext("Relationship") or "",
                    contact.findtext("Responsibility") == "true",
                    now,
                    now,
                )
            )
        pupil.clear()
        while pupil.getprevious() is not None:
            del pupil.getparent()[0]
    with conn:
        conn.executemany(
            "INSERT INTO register_member (id, school_id, kind, role, mis_id, former_upn, admission_no, forename, surname,"
            " year, reg_group, email, mobile, status, left_at, registered, opted_out, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            members,
        )
        conn.executemany(
            "INSERT INTO register_adult (id, school_id, title, forename, surname, name_key, email, mobile, source,"
            " registered, opted_out, email_off, sms_off, court_order, held, mis_id, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            adults,
        )
        conn.executemany(
            "INSERT INTO register_link (school_id, student_id, adult_id, source, priority, prime, prime_set_by,"
            " relationship, parental_responsibility, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            links,
        )
    print(f"{len(members)} {len(adults)} {len(links)} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
