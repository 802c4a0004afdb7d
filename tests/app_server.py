"""Run ``python app.py`` as a subprocess on a free loopback port for the app tests, and stop it afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"Newsdesk is ready at (\S+)")


class AppProcess:
    """``with AppProcess(corpus, index, port) as app: app.url`` — the real app, started once, as a user would."""

    def __init__(self, corpus: Path, index: Path, port: int, log: Path, *extra: str, env: dict | None = None,
                 timeout: float = 300) -> None:
        self.cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--corpus", str(corpus),
                    "--index", str(index), *extra]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "GRADIO_ANALYTICS_ENABLED": "False", "ANONYMIZED_TELEMETRY": "False", **(env or {})}
        self.log = log
        self.timeout = timeout
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "AppProcess":
        # Output goes to a file, not a pipe, so a chatty app can never block on a full pipe.
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            m = READY.search(self.output())
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"app did not become ready ({' '.join(self.cmd)}):\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
