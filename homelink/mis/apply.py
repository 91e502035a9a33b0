"""A plan → the register, in one short write transaction.

The plan was built from a snapshot read without locks, so a parent may have registered, opted
out or become prime while the file was being read. Before writing, the few facts the rules hang
on are read again under the write lock, and the plan yields to them: the import never overwrites
what a person did in the meantime (rules 1, 4 and 5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from homelink.mis.plan import ADULT_CREATE, MEMBER_CREATE, Plan, Ref
from homelink.register.models import Adult, Link, Member, Source
from homelink.schools.models import School

BATCH = 500
PERSONAL = ("email", "mobile", "title", "forename", "surname")

M = TypeVar("M", bound=models.Model)


def apply_plan(plan: Plan) -> dict[str, int]:
    """Write ``plan``; returns how many changes yielded to concurrent registrations."""
    yielded = {"members": 0, "adults": 0, "primes": 0}
    with transaction.atomic():
        # Serialises with staff and registration actions that lock the school (PostgreSQL); on
        # SQLite the IMMEDIATE transaction already holds the database's write lock.
        School.objects.select_for_update().filter(pk=plan.school_id).exists()
        now = timezone.now()
        yielded["members"] = _yield_to_people(Member, plan.member_updates)
        yielded["adults"] = _yield_to_people(Adult, plan.adult_updates)
        yielded["primes"] = _yield_staff_primes(plan) + _yield_primes(plan)

        member_ids = _create(
            Member, MEMBER_CREATE, plan.member_creates, school_id=plan.school_id, now=now
        )
        _update(Member, plan.member_updates, now)
        if plan.leaving:
            for chunk in _chunks(plan.leaving):
                Member.objects.filter(pk__in=chunk, status=Member.Status.CURRENT).update(
                    status=Member.Status.LEFT, left_at=now, updated_at=now
                )

        adult_ids = _create(
            Adult, ADULT_CREATE, plan.adult_creates, school_id=plan.school_id, now=now
        )
        _update(Adult, plan.adult_updates, now)

        for chunk in _chunks(plan.link_deletes):
            # Only imported links: a link that became web or manual meanwhile stays (rule 5).
            # Nor one whose prime staff set meanwhile (rule 5): it is left for staff.
            Link.objects.filter(pk__in=chunk, source=Source.IMPORT, prime_set_by="").delete()
        _update(Link, plan.link_updates, now)
        stamp = connection.ops.adapt_datetimefield_value(now)
        rows = (
            (
                plan.school_id,
                member_ids.get(student, student),
                adult_ids.get(adult, adult),
                Source.IMPORT.value,
                priority,
                prime,
                "",
                relationship,
                responsibility,
                stamp,
                stamp,
            )
            for student, adult, priority, prime, relationship, responsibility in plan.link_creates
        )
        # A registration may have linked the same pair meanwhile: theirs stands.
        _insert(Link, LINK_COLUMNS, rows, ignore_conflicts=True)
    return yielded


LINK_COLUMNS = [
    "school_id",
    "student_id",
    "adult_id",
    "source",
    "priority",
    "prime",
    "prime_set_by",
    "relationship",
    "parental_responsibility",
    "created_at",
    "updated_at",
]


def _insert(
    model: type[models.Model],
    columns: list[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Plain multi-row INSERT through Django's connection.

    A first import writes hundreds of thousands of rows; building a model instance per row and
    compiling each batch costs several times the insert itself (see ``make bench``)."""
    qn = connection.ops.quote_name
    verb = (
        "INSERT OR IGNORE INTO"
        if ignore_conflicts and connection.vendor == "sqlite"
        else "INSERT INTO"
    )
    suffix = " ON CONFLICT DO NOTHING" if ignore_conflicts and connection.vendor != "sqlite" else ""
    sql = (
        f"{verb} {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}){suffix}"
    )
    with connection.cursor() as cursor:
        for batch in _batches(rows, 5000):
            cursor.executemany(sql, batch)


def _allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """Primary keys for rows about to be inserted, so links can refer to them without a read."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: the import's IMMEDIATE transaction is the only writer. AUTOINCREMENT never
        # reuses a deleted row's id, so start above both the table and its sequence.
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        top = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        top = max(top, row[0] if row else 0)
        return list(range(top + 1, top + 1 + count))


def _yield_to_people(model: type[Member] | type[Adult], updates: dict[int, dict[str, Any]]) -> int:
    """Drop personal-detail changes for people who registered or opted out since planning."""
    candidates = [pk for pk, changes in updates.items() if any(f in changes for f in PERSONAL)]
    count = 0
    for chunk in _chunks(candidates):
        owners = model.objects.filter(Q(registered=True) | Q(opted_out=True), pk__in=chunk)
        for pk in owners.values_list("pk", flat=True):
            changes = updates[pk]
            for name in PERSONAL:
                changes.pop(name, None)
            if not changes:
                del updates[pk]
            count += 1
    return count


def _yield_staff_primes(plan: Plan) -> int:
    """Prime changes the plan makes to links whose prime staff or a registration set meanwhile
    are dropped: an import never changes a prime set by a person (rule 5)."""
    touching = [pk for pk, changes in plan.link_updates.items() if "prime" in changes]
    count = 0
    for chunk in _chunks(touching):
        for pk in (
            Link.objects.filter(pk__in=chunk).exclude(prime_set_by="").values_list("pk", flat=True)
        ):
            del plan.link_updates[pk]["prime"]
            count += 1
    return count


def _yield_primes(plan: Plan) -> int:
    """A student who gained a prime parent from a registration or staff meanwhile keeps it, and
    this import's priority-1 contacts for them do not become prime (rule 2)."""
    taken: set[int] = set()
    for chunk in _chunks(sorted(plan.new_prime_students)):
        taken.update(
            Link.objects.filter(student_id__in=chunk, prime=True)
            .filter(~Q(source=Source.IMPORT) | ~Q(prime_set_by=""))
            .values_list("student_id", flat=True)
        )
    if not taken:
        return 0
    # (student, adult, priority, prime, …): drop the prime links planned for those students.
    plan.link_creates = [row for row in plan.link_creates if not (row[0] in taken and row[3])]
    promoting = [pk for pk, changes in plan.link_updates.items() if changes.get("prime") is True]
    student_of = dict(Link.objects.filter(pk__in=promoting).values_list("pk", "student_id"))
    for pk in promoting:
        if student_of.get(pk) in taken:
            del plan.link_updates[pk]["prime"]
    return len(taken)


def _create(
    model: type[M],
    given: tuple[str, ...],
    creates: dict[Ref, tuple[Any, ...]],
    *,
    school_id: int,
    now: Any,
) -> dict[Ref, int]:
    """Insert planned rows (tuples in ``given`` column order); what they leave out takes the
    model's default. Returns the new ids by planned ref."""
    if not creates:
        return {}
    refs = list(creates)
    ids = _allocate_ids(model, len(refs))
    fields = {f.attname: f for f in model._meta.concrete_fields}
    columns = ["id", "school_id", *given, "created_at", "updated_at"]
    defaults = [name for name in fields if name not in columns]
    default_values = [
        fields[f].get_db_prep_save(fields[f].get_default(), connection) for f in defaults
    ]
    stamp = connection.ops.adapt_datetimefield_value(now)
    rows = (
        (pk, school_id, *creates[ref], stamp, stamp, *default_values)
        for pk, ref in zip(ids, refs, strict=True)
    )
    _insert(model, columns + defaults, rows)
    return dict(zip(refs, ids, strict=True))


def _update(model: type[M], updates: dict[int, dict[str, Any]], now: Any) -> None:
    """Grouped by the set of fields changed, so each group is one bulk statement per batch."""
    groups: dict[tuple[str, ...], list[M]] = defaultdict(list)
    for pk, changes in updates.items():
        if not changes:
            continue
        fields = (*sorted(changes), "updated_at")
        groups[fields].append(model(pk=pk, updated_at=now, **changes))
    for fields, objs in groups.items():
        model._default_manager.bulk_update(objs, list(fields), batch_size=BATCH)


T = TypeVar("T")


def _batches(items: Iterable[T], size: int) -> Iterable[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _chunks(items: Iterable[int], size: int = BATCH) -> Iterable[list[int]]:
    return _batches(items, size)
