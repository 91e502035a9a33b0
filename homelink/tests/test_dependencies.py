"""The console is the top of the house: it imports the domain apps, and nothing imports it.

Staff identity (memberships, roles, invitations, the ``Actor`` of every audited service, the
second factor) lives in ``homelink.staff``, beneath the screens, so that delivery and the
parents' side never depend on the staff console's pages. This walks every module under
homelink/ (its syntax tree, not its text: an import inside a function counts, a mention in a
docstring or a URL include's string does not) and names each one outside homelink/console/ that
imports ``homelink.console``.

And the console holds only pages: views, forms, URL maps (and templates), with the few modules
that are about pages themselves. Writes and the reads of a domain belong to the app that owns
the data (register, registration, messaging, mis, staff), where the CLI, the worker and the
tests reach them without a page; a new kind of module in the console fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent
CONSOLE = PACKAGE / "console"
FORBIDDEN = "homelink.console"


def module_name(path: Path, base: Path = ROOT) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the tree, relative ones resolved against
    ``module``. ``from a import b`` yields ``a.b`` too, since ``b`` may be a submodule."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def names(target: str, found: str) -> bool:
    return found == target or found.startswith(target + ".")


def offenders(package: Path, *, allowed: Path, target: str = FORBIDDEN) -> list[str]:
    """ "path:line imports name" for the first import of ``target`` in each module of
    ``package`` outside ``allowed``."""
    base = package.parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.is_relative_to(allowed):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = module_name(path, base)
        for line, name in imported(tree, module, is_package=path.name == "__init__.py"):
            if names(target, name):
                found.append(f"{path.relative_to(base)}:{line} imports {name}")
                break
    return found


def test_no_module_outside_the_console_imports_it() -> None:
    problems = offenders(PACKAGE, allowed=CONSOLE)
    assert not problems, (
        "Only the console imports homelink.console (its pages sit above everything else). "
        "Move what these need beneath it (staff identity is in homelink.staff):\n  "
        + "\n  ".join(problems)
    )


#: The modules the console may hold, by name, anywhere under homelink/console/ (besides each
#: package's ``__init__.py``, its migrations and its tests). Each is about pages: nothing here
#: writes to a domain's tables or answers a domain's question.
CONSOLE_MODULES = {
    "views": "pages",
    "forms": "what a page's form accepts",
    "urls": "a URL map",
    "invitation_urls": "the URL map of the page an invitation's link opens",
    "permissions": "staff_view: who may open a page, and the school and records from its URL",
    "refusals": "a service's refusal shown on a page",
    "search": "a search's terms kept in the session rather than in a page's address",
    "admin_site": "the operators' admin site, behind the second factor",
    "admin_config": "the admin app with that site as its default",
    "apps": "the app's configuration",
}


def console_modules_out_of_place(console: Path) -> list[str]:
    """The console's modules that are none of :data:`CONSOLE_MODULES`."""
    found = []
    for path in sorted(console.rglob("*.py")):
        parts = path.relative_to(console).parts
        if path.name == "__init__.py" or parts[0] in ("migrations", "tests"):
            continue
        if path.stem not in CONSOLE_MODULES:
            found.append(str(path.relative_to(console.parent)))
    return found


def test_the_console_holds_only_pages() -> None:
    problems = console_modules_out_of_place(CONSOLE)
    assert not problems, (
        "The console holds views, forms, URL maps and the modules about pages "
        f"({', '.join(sorted(CONSOLE_MODULES))}). Move writes (a named service, one "
        "transaction) and a domain's reads to the app that owns the data (register, "
        "registration, messaging, mis, staff):\n  " + "\n  ".join(problems)
    )


def test_a_service_in_the_console_is_named(tmp_path: Path) -> None:
    console = tmp_path / "homelink" / "console"
    for relative in (
        "views.py",
        "members/views.py",
        "members/services.py",
        "selectors.py",
        "imports/tasks.py",
        "migrations/0001_initial.py",
        "tests/test_views.py",
        "members/__init__.py",
    ):
        (console / relative).parent.mkdir(parents=True, exist_ok=True)
        (console / relative).write_text("")
    assert console_modules_out_of_place(console) == [
        "console/imports/tasks.py",
        "console/members/services.py",
        "console/selectors.py",
    ]


def test_the_walk_sees_every_module_and_the_apps_beneath_the_console() -> None:
    """Guards the guard: a walk that found no files would pass whatever anyone imported."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    for expected in (
        "homelink.staff.models",
        "homelink.staff.actor",
        "homelink.messaging.services",
        "homelink.accounts.views",
        "homelink.schools.management.commands.demo",
    ):
        assert expected in modules


@pytest.mark.parametrize(
    ("source", "module", "is_package", "caught"),
    [
        ("import homelink.console", "homelink.home", False, True),
        ("import homelink.console.views as v", "homelink.home", False, True),
        ("from homelink.console.permissions import staff_view", "homelink.home", False, True),
        ("from homelink import console", "homelink.home", False, True),
        ("def f():\n    from homelink.console import views", "homelink.home", False, True),
        ("from ..console import views", "homelink.accounts.views", False, True),
        ("from .. import console", "homelink.accounts", True, True),
        ("from . import console", "homelink", True, True),
        ("from homelink.staff.models import Role", "homelink.home", False, False),
        ("from homelink import consoles", "homelink.home", False, False),
        ('"""See homelink.console.permissions."""', "homelink.home", False, False),
        ('x = "homelink.console.urls"', "homelink.urls", False, False),
        ("from . import views", "homelink.accounts.urls", False, False),
    ],
)
def test_what_counts_as_importing_the_console(
    source: str, module: str, is_package: bool, caught: bool
) -> None:
    found = [
        name
        for _, name in imported(ast.parse(source), module, is_package=is_package)
        if names(FORBIDDEN, name)
    ]
    assert bool(found) is caught, found


def test_an_offender_is_named_with_its_line(tmp_path: Path) -> None:
    package = tmp_path / "homelink"
    (package / "console").mkdir(parents=True)
    (package / "messaging").mkdir()
    (package / "console" / "views.py").write_text("from homelink.console import forms\n")
    (package / "messaging" / "services.py").write_text(
        '"""Delivery."""\n\nfrom homelink.console.services import Actor\n'
    )
    found = offenders(package, allowed=package / "console")
    assert found == ["homelink/messaging/services.py:3 imports homelink.console.services"]
