"""irctest controller for natter's IRC gateway (docs/IRC.md).

Starts natter-server with its IRC gateway on the port irctest chose (plaintext, on
loopback), natter's own protocol on a second free port, the web interface off and a
temporary data directory. Accounts for `registerUser` are created over natter's own
protocol (JSON lines), since the gateway has no account registration yet.

Use: PYTHONPATH=e2e/irctest python -m pytest -p no:cacheprovider \
        --controller natter_controller ... irctest/server_tests/FILE.py
(from a copy of the irctest suite). NATTER_SERVER names the binary; by default the
workspace's target/release or target/debug build.
"""

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Optional, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities, OptionalBehaviors

ROOT = Path(__file__).resolve().parents[2]


def server_binary() -> str:
    """The natter-server to run: $NATTER_SERVER, else the newest workspace build, else
    PATH."""
    if os.environ.get("NATTER_SERVER"):
        return os.environ["NATTER_SERVER"]
    builds = [ROOT / "target" / p / "natter-server" for p in ("release", "debug")]
    builds = [b for b in builds if b.exists()]
    if builds:
        # The newest: a stale release build would lack the gateway's latest changes.
        return str(max(builds, key=lambda b: b.stat().st_mtime))
    found = shutil.which("natter-server")
    if not found:
        raise RuntimeError("natter-server not found; build it or set NATTER_SERVER")
    return found


class NatterController(BaseServerController, DirectoryBasedController):
    software_name = "natter"
    _port_wait_interval = 0.05
    supported_sasl_mechanisms = {"PLAIN"}
    supports_sts = False

    capabilities = frozenset(
        (
            Capabilities.ECHO_MESSAGE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.MULTI_PREFIX,
            Capabilities.SERVER_TIME,
        )
    )
    optional_behaviors = frozenset(
        (
            OptionalBehaviors.CAP_REQ_MINUS,
            OptionalBehaviors.MULTI_JOIN,
            OptionalBehaviors.MULTI_PRIVMSG,
            OptionalBehaviors.NO_CTCP,
        )
    )
    isupport = {
        "CASEMAPPING": "ascii",
        "UTF8ONLY": None,
    }

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str] = None,
        websocket_port: Optional[int] = None,
    ) -> None:
        if ssl:
            raise NotImplementedByController("TLS in irctest (natter is plaintext on loopback)")
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        self.create_config()
        assert self.directory
        self.port = port
        self.hostname = hostname
        _, self.chat_port = self.get_hostname_and_port()
        # irctest picks the wildcard address; natter listens on loopback only (guests
        # are allowed there alone), where connections to 0.0.0.0 arrive too.
        irc_host = "127.0.0.1" if hostname in ("", "0.0.0.0") else hostname
        # irctest's LIST tests run the server on a clock 30 times as fast (faketime);
        # natter's pings would then time clients out: they are spaced out instead.
        faketime_cmd = []
        if faketime and shutil.which("faketime"):
            faketime_cmd = ["faketime", "-f", faketime]
            self.faketime_enabled = True
        self.proc = self.execute(
            [
                *faketime_cmd,
                server_binary(),
                *(["--ping-interval-secs", "86400"] if faketime_cmd else []),
                "--plaintext",
                "--data-dir",
                self.directory / "data",
                "--listen",
                f"127.0.0.1:{self.chat_port}",
                "--irc-listen",
                f"{irc_host}:{port}",
                "--web-listen",
                "off",
                # irctest connects most clients with NICK and USER alone; natter has no
                # anonymous users, so each gets a throwaway account named after its nick.
                "--irc-conformance-guests",
                *(["--irc-password", password] if password is not None else []),
                # The names and passwords irctest's tests expect.
                "--irc-server-name",
                "My.Little.Server",
                "--admin-password",
                "operpassword",
            ],
        )

    def wait_for_services(self) -> None:
        """natter's accounts are its own (no separate services to wait for)."""

    def kill(self) -> None:
        """Stops natter and removes its directory. Under faketime the process irctest
        waits for is faketime's; natter may still be closing its database while the
        directory goes, so files vanishing under the removal are not an error."""
        try:
            super().kill()
        except OSError:
            if self.directory:
                shutil.rmtree(self.directory, ignore_errors=True)

    def registerUser(
        self,
        case,  # irctest.cases.BaseServerTestCase
        username: str,
        password: Optional[str] = None,
    ) -> None:
        """Creates the account over natter's own protocol."""
        self.wait_for_port()
        with socket.create_connection(("127.0.0.1", self.chat_port), timeout=10) as s:
            lines = s.makefile("r", encoding="utf-8")
            lines.readline()  # hello
            auth = {
                "type": "auth",
                "user": username,
                "password": password or "",
                "register": True,
            }
            s.sendall((json.dumps(auth) + "\n").encode())
            while True:
                line = lines.readline()
                if not line:
                    raise RuntimeError(f"natter closed while registering {username}")
                frame = json.loads(line)
                if frame["type"] == "auth_ok":
                    break
                if frame["type"] == "error":
                    raise NotImplementedByController(
                        f"natter refused the account {username}: {frame['message']}"
                    )
            s.sendall(b'{"type":"quit"}\n')


def get_irctest_controller_class() -> Type[NatterController]:
    return NatterController
