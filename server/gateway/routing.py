"""Which route serves a model, and in which order its backends are tried.

Resolution works like Bifrost's domain routes: the first enabled route, by priority (lower
first), with a pattern that matches the requested model. Patterns are globs (``gpt-4o*``,
``claude-?-*``, or a literal alias such as ``fast``), matched case-sensitively.

``failover`` tries the enabled backends by their priority within the route; ``weighted``
draws the order at random by weight, so the first choice follows the weights and the others
still stand in for it when it fails.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from server.gateway.config import BackendConfig, RouteConfig

_GLOB_CHARS = frozenset("*?[")


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` names one model (an alias) rather than a family."""
    return not (_GLOB_CHARS & set(pattern))


def ordered(routes: Iterable[RouteConfig]) -> list[RouteConfig]:
    """The enabled routes in the order they are tried (priority, then as listed)."""
    return sorted((r for r in routes if r.enabled), key=lambda r: r.priority)


def resolve(routes: Iterable[RouteConfig], model: str) -> RouteConfig | None:
    """The route that serves ``model``, or None."""
    for route in ordered(routes):
        if any(fnmatchcase(model, pattern) for pattern in route.model_patterns):
            return route
    return None


def attempt_order(route: RouteConfig, rng: random.Random) -> list[BackendConfig]:
    """The route's enabled backends in the order they are tried."""
    enabled = [b for b in route.backends if b.enabled]
    if route.strategy == "weighted":
        return _weighted_order(enabled, rng)
    return sorted(enabled, key=lambda b: b.priority)


def _weighted_order(backends: Sequence[BackendConfig], rng: random.Random) -> list[BackendConfig]:
    """A random order drawn without replacement, each draw in proportion to the weights."""
    left = list(backends)
    order = []
    while left:
        weights = [max(0, b.weight) for b in left]
        if sum(weights) <= 0:
            order.extend(sorted(left, key=lambda b: b.priority))
            break
        pick = rng.choices(range(len(left)), weights=weights)[0]
        order.append(left.pop(pick))
    return order


def routable_models(routes: Iterable[RouteConfig]) -> list[tuple[str, RouteConfig]]:
    """The model names a client may ask for and the route each resolves to: every enabled
    route's literal patterns (aliases) and its enabled backends' upstream models, kept only
    when they resolve (to this route or an earlier one)."""
    live = ordered(routes)
    seen: dict[str, RouteConfig] = {}
    for route in live:
        names = [p for p in route.model_patterns if is_literal(p)]
        names += [b.upstream_model for b in route.backends if b.enabled]
        for name in names:
            if name in seen:
                continue
            target = resolve(live, name)
            if target is not None:
                seen[name] = target
    return list(seen.items())
