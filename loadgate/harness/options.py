"""loadgate's settings on Locust's parser: every option of scope ``locust`` in :mod:`loadgate.options`.

Registered on ``init_command_line_parser``, so each can be given on the command line, in ``locust.conf``
(key without dashes), as an environment variable (``LOADGATE_*``) and, where marked, in the web UI's
start form. Validated at ``init`` by :func:`loadgate.options.load` (exit 2 on a bad one).
"""

from __future__ import annotations

from typing import Any

from locust import events

from loadgate.options import LOCUST, OPTIONS


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kw: Any) -> None:
    # On the parser itself: Locust's include_in_web_ui only exists there, not on argument groups.
    for option in OPTIONS:
        if option.scope != LOCUST:
            continue
        help_text = f"{option.help} (default: {option.default or 'empty'}; env {option.env})".replace(
            "%", "%%"
        )
        if option.switch:
            parser.add_argument(
                option.flag, action="store_true", default=False, env_var=option.env,
                include_in_web_ui=option.web_ui, help=help_text,
            )  # fmt: skip
        else:
            parser.add_argument(
                option.flag, type=str, default=option.default, env_var=option.env,
                include_in_web_ui=option.web_ui, help=help_text,
            )  # fmt: skip
