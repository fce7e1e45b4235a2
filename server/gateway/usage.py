"""What a call costs.

The product brief gives no model prices, so a call's cost is known only where it is free: the
built-in ``local`` provider. Everything else is recorded with ``cost_usd`` null rather than a
guess; tokens are always recorded (``server.gateway.chat.Usage``: cached input counted once).
"""

from __future__ import annotations

from server.gateway.chat import Usage


def cost_usd(provider_type: str, usage: Usage) -> float | None:
    """The cost of ``usage`` on a provider of ``provider_type``, when known."""
    return 0.0 if provider_type == "local" else None
