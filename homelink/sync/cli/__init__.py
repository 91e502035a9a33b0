"""``homelink sync``: one module per subcommand (``add``, ``remove``, ``list``, ``run``), each
with ``HELP``, ``add_arguments(parser)`` and ``run(options, stdout, style) -> None`` (raising
``CommandError`` to refuse); :mod:`homelink.sync.management.commands.sync` dispatches to them."""
