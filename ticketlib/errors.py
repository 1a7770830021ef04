"""The one exception type the CLI turns into a clear message and a non-zero exit."""


class TicketError(ValueError):
    """Bad input: an unknown name, an out-of-range value, a missing or malformed file."""


def unknown(kind: str, name: str, valid) -> TicketError:
    return TicketError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
