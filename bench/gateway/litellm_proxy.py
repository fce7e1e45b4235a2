"""LiteLLM's proxy for the gateway bench: its own virtualenv, its config and its process.

The virtualenv (``var/bench/litellm-venv``) gets ``litellm[proxy]`` at a pinned version from
the package index on first use and is kept; a venv that cannot be made leaves a reason, and
the bench runs without this column. The version is the newest whose ``proxy`` extra resolves
from the package index: later releases require ``litellm-proxy`` or a
``litellm-proxy-extras`` post-release that the index does not have.

The proxy is configured for speed and fairness: the same upstream through a ``model_list``
entry, a ``master_key`` (checked in memory: no database, so no spend logs or key lookups), no
callbacks, no message logging, ``LITELLM_LOG=ERROR`` (which also silences uvicorn's access
log), ``LITELLM_MODE=PRODUCTION``, the bundled model cost map (no fetch at start-up), and
``--num_workers 2`` on its default server (uvicorn with uvloop).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.gateway.servers import (
    HOST,
    MODEL,
    ROOT,
    UPSTREAM_KEY,
    Process,
    free_port,
    responds,
    wait_until,
)

VERSION = "1.106.12"
VENV = ROOT / "var" / "bench" / "litellm-venv"
MASTER_KEY = "sk-bench-master-key"
INSTALL_TIMEOUT_S = 900
# A worker of this size takes tens of seconds to import on a busy machine; uvicorn's
# supervisor would otherwise kill and restart it before it ever answers.
HEALTHCHECK_TIMEOUT_S = 180

CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://{host}:{upstream_port}/v1
      api_key: {upstream_key}
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  callbacks: []
  success_callback: []
  failure_callback: []
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  disable_error_logs: true
"""


def _stamp() -> Path:
    return VENV / f".installed-{VERSION}"


def ensure_installed(log: Callable[[str], None]) -> tuple[Path | None, str | None]:
    """The ``litellm`` executable of the bench's venv (installing it if needed), or why not."""
    executable = VENV / "bin" / "litellm"
    if _stamp().exists() and executable.exists():
        return executable, None
    shown = VENV.relative_to(ROOT) if VENV.is_relative_to(ROOT) else VENV
    log(f"installing litellm[proxy]=={VERSION} into {shown} (once; a few minutes)")
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(VENV)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            subprocess.run(
                [str(VENV / "bin" / "python"), "-m", "ensurepip", "--upgrade"],
                check=True,
                capture_output=True,
                timeout=300,
            )
        done = subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"litellm[proxy]=={VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"its virtualenv could not be made ({exc.__class__.__name__}: {exc})"
    if done.returncode != 0 or not executable.exists():
        lines = [
            line
            for line in (done.stderr or done.stdout or "").splitlines()
            if line.strip() and not line.startswith("WARNING")
        ]
        reason = lines[-1] if lines else f"pip exited {done.returncode}"
        return None, f"pip could not install litellm[proxy]=={VERSION}: {reason}"
    _stamp().touch()
    return executable, None


def start(executable: Path, work: Path, upstream_port: int) -> tuple[Process, int]:
    """The proxy in the background (``wait_ready`` before use)."""
    port = free_port()
    config = work / "litellm-config.yaml"
    config.write_text(
        CONFIG.format(
            model=MODEL,
            host=HOST,
            upstream_port=upstream_port,
            upstream_key=UPSTREAM_KEY,
            master_key=MASTER_KEY,
        ),
        encoding="utf-8",
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_", "LITELLM_", "PYTHONPATH"))
    }
    env |= {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
    }
    process = Process(
        "litellm",
        [
            str(executable),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
            "--num_workers",
            "2",
            "--timeout_worker_healthcheck",
            str(HEALTHCHECK_TIMEOUT_S),
        ],
        work / "litellm.log",
        env,
        cwd=work,
    )
    process.start()
    return process, port


def wait_ready(process: Process, port: int, timeout_s: float = 240) -> None:
    """Until both workers have loaded the config and one answers its liveness probe."""

    def ready() -> bool:
        return process.tail(100_000).count("Proxy initialized") >= 2 and responds(
            f"http://{HOST}:{port}/health/liveliness"
        )

    wait_until(ready, process, timeout_s, "the LiteLLM proxy")


def version_of(executable: Path) -> str:
    python = executable.with_name("python")
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() or VERSION
