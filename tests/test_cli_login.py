"""login prompts on a terminal (never echoing the password), keeps --password-stdin, refuses a missing password
without a terminal; logout forgets the entry."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realenv import oci_conda, one_error_line
from registry_fixtures import Servers, htpasswd, servers  # noqa: F401

USER, PASSWORD = "carol", "tty-Secret-77"


@pytest.fixture
def basic(servers: Servers):  # noqa: F811
    return servers.registry("basic", auth=htpasswd(servers.root / "htpasswd", USER, PASSWORD))


def _login_on_pty(args: list[str], answers: dict[str, str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``oci-conda login ...`` on a pseudo-terminal, answering prompts; returns (exit code, screen)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-m", "oci_conda", "login", *args], env)
        finally:
            os._exit(127)
    screen, pending = "", dict(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        screen += data.decode("utf-8", "replace")
        for prompt in list(pending):
            if screen.rstrip().endswith(prompt):
                os.write(fd, (pending.pop(prompt) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen


def test_prompt_on_a_terminal_then_logout(basic, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    env = dict(os.environ, REGISTRY_AUTH_FILE=str(authfile))
    code, screen = _login_on_pty([basic.host], {"Username:": USER, "Password:": PASSWORD}, env)
    assert code == 0, screen
    assert PASSWORD not in screen  # not echoed
    assert basic.host in json.loads(authfile.read_text())["auths"]
    code, screen = _login_on_pty([basic.host, "-u", USER], {"Password:": "wrong-one-1"}, env)
    assert code == 4 and "401" in screen and "wrong-one-1" not in screen
    p = oci_conda("logout", basic.host, env=env)
    assert basic.host not in json.loads(authfile.read_text())["auths"] and str(authfile) in p.stderr
    p = oci_conda("logout", basic.host, env=env)
    assert "no credentials" in p.stderr


def test_no_terminal_needs_password_stdin(basic, tmp_path: Path) -> None:
    env = dict(os.environ, REGISTRY_AUTH_FILE=str(tmp_path / "auth.json"))
    p = subprocess.run([sys.executable, "-m", "oci_conda", "login", basic.host, "-u", USER], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert p.returncode == 2 and "--password-stdin" in one_error_line(p)
    p = subprocess.run([sys.executable, "-m", "oci_conda", "login", basic.host, "-u", USER, "--password-stdin"],
                       input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60, check=False)
    assert p.returncode == 0 and PASSWORD not in p.stdout + p.stderr
    assert not (tmp_path / "auth.json").read_text().count(PASSWORD)  # stored base64, as docker does
