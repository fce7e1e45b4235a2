"""Concurrent publishes of one prompt never give two versions one number, on SQLite and on
PostgreSQL: through the API (whose writers also hold their workspace's lock) and through the
domain alone (a background job's units of work, which hold only the prompt row's lock)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from generated import models
from server.domain import prompts
from server.domain.errors import RuleError
from server.domain.unit import SYSTEM, unit_of_work
from server.storage.prompt_models import PromptVersion
from tests.reliability.conftest import RACE_TIMEOUT_S, ROUNDS, Answer, Scene, Send

Race = Callable[..., list[Answer]]
WRITERS = 4
_keys = itertools.count(1)


def _prompt(scene: Scene, workspace_id: str) -> str:
    key = f"raced-{next(_keys)}"
    with unit_of_work(scene.database.write_sessionmaker, SYSTEM) as uow:
        request = models.PromptCreate.model_validate({"key": key, "content": "v0"})
        return prompts.create_prompt(uow, workspace_id, request).id


def _numbers(scene: Scene, prompt_id: str) -> list[int]:
    with scene.session() as s:
        stmt = select(PromptVersion.version).where(PromptVersion.prompt_id == prompt_id)
        return sorted(s.scalars(stmt).all())


def test_concurrent_publishes_through_the_api_number_versions_once(
    scene: Scene, race: Race
) -> None:
    """Editors publish one changed draft at once: one publish is served, with the next number,
    and every other finds nothing left to publish; the numbers run 1, 2, … without a gap."""
    editors = [scene.person() for _ in range(WRITERS)]
    ws = scene.workspace(dict.fromkeys(editors, "editor"))
    for _ in range(ROUNDS // 4):
        prompt_id = _prompt(scene, ws)
        published: list[Answer] = []
        for step in range(3):
            for n, editor in enumerate(editors):
                scene.request(editor, "PATCH", f"/prompts/{prompt_id}", {"content": f"{step}-{n}"})
            answers = race(*(Send(e, "POST", f"/prompts/{prompt_id}/publish") for e in editors))
            # The changed draft is published once; the others find it published.
            assert sorted((a.status, a.code) for a in answers) == [(201, None)] + [
                (409, "no_changes")
            ] * (WRITERS - 1), answers
            published.extend(a for a in answers if a.status == 201)
        assert _numbers(scene, prompt_id) == list(range(1, len(published) + 1))


def test_concurrent_publishes_in_units_of_work_each_get_a_number(scene: Scene) -> None:
    """Units of work that each edit the draft and publish it, released together: all of them
    succeed, in turn, with the numbers 1 … N (the prompt row's lock orders them; without it
    two would read the same highest number and the unique constraint would refuse one)."""
    owner = scene.person()
    ws = scene.workspace({owner: "owner"})
    pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="publish")
    try:
        for _ in range(ROUNDS // 4):
            prompt_id = _prompt(scene, ws)
            barrier = threading.Barrier(WRITERS, timeout=RACE_TIMEOUT_S)

            def edit_and_publish(
                n: int, prompt_id: str = prompt_id, barrier: threading.Barrier = barrier
            ) -> int | str:
                barrier.wait()
                edit = models.PromptUpdate.model_validate({"content": f"writer {n}"})
                try:
                    with unit_of_work(scene.database.write_sessionmaker, SYSTEM) as uow:
                        prompts.update_prompt(uow, ws, prompt_id, edit)
                        return prompts.publish(uow, ws, prompt_id, None).version
                except RuleError as refused:
                    return refused.code

            futures = [pool.submit(edit_and_publish, n) for n in range(WRITERS)]
            outcomes = [f.result(timeout=RACE_TIMEOUT_S) for f in futures]
            assert sorted(map(str, outcomes)) == [str(n) for n in range(1, WRITERS + 1)], outcomes
            assert _numbers(scene, prompt_id) == list(range(1, WRITERS + 1))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
