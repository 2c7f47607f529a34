"""A real browser: headless Chromium driven through the DevTools protocol over a pipe.

Debian's ``chromium`` (scripts/install-system-packages) runs with ``--remote-debugging-pipe``:
the DevTools protocol (CDP) travels as NUL-terminated JSON messages on the browser's file
descriptors 3 (commands in) and 4 (answers and events out). No debugging port is opened and no
driver program (chromedriver, Selenium) is needed: :class:`Chromium` is a small CDP client.

The browser reaches only what the test maps (``--host-resolver-rules``: every other name fails
to resolve) and trusts the edge's certificate by the SHA-256 of its public key
(``--ignore-certificate-errors-spki-list``, :func:`spki_sha256`), so the site's real host names,
SNI and ``https://`` origins are kept — the cookie jar applies its rules (``__Host-`` prefix,
``Secure``, ``SameSite``) to exactly what a user's browser would see.

Everything the browser does on the network is kept (:attr:`Page.events`): the tests read the
cookies each request carried and each response set, and why Chromium refused one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import typing as t
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from testkit.process import is_ours, stop_recorded

# Debian's launcher (/usr/bin/chromium) adds flags from /etc/chromium.d and $CHROMIUM_FLAGS:
# the binary itself keeps the command line exactly the test's.
DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")


class BrowserError(RuntimeError):
    """Chromium exited, answered a command with an error, or did not do what was asked in time."""


def chromium_binary() -> Path | None:
    """Debian's chromium binary, or None when the package is not installed."""
    if DEBIAN_CHROMIUM.exists():
        return DEBIAN_CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def spki_sha256(certificate_pem: bytes) -> str:
    """base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (``--ignore-certificate-errors-spki-list``)."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class Event:
    method: str
    params: dict[str, t.Any]
    session: str | None


@dataclass
class Page:
    """One tab, attached with its own CDP session (Page, Network and Runtime domains enabled)."""

    browser: Chromium
    session: str
    target: str
    events: list[Event] = field(default_factory=list)

    def send(self, method: str, params: Mapping[str, t.Any] | None = None, timeout_s: float = 30) -> dict[str, t.Any]:
        return self.browser.send(method, params, session=self.session, timeout_s=timeout_s)

    def _loads(self) -> int:
        return sum(1 for e in self.events if e.method == "Page.loadEventFired")

    def _wait_for_load(self, before: int, timeout_s: float, what: str) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._loads() > before and self.evaluate("document.readyState") == "complete":
                return self.url()
            self.browser.check_running()
            time.sleep(0.05)
        raise BrowserError(f"no page load after {what} within {timeout_s:g} s (now at {self.url()})")

    def navigate(self, url: str, timeout_s: float = 30) -> str:
        """Open URL, follow its redirects as Chromium does; the URL of the page it ends on."""
        before = self._loads()
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"navigating to {url}: {answer['errorText']}")
        return self._wait_for_load(before, timeout_s, f"opening {url}")

    def run_and_wait_for_load(self, expression: str, timeout_s: float = 30) -> str:
        """Evaluate EXPRESSION (e.g. a form submit) and wait for the navigation it starts."""
        before = self._loads()
        self.evaluate(expression)
        return self._wait_for_load(before, timeout_s, f"running {expression!r}")

    def evaluate(self, expression: str) -> t.Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def text(self) -> str:
        """What the page shows (``document.body.innerText``)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def cookies(self) -> list[dict[str, t.Any]]:
        """Every cookie in the browser's jar (CDP ``Network.Cookie`` objects)."""
        return list(self.send("Network.getAllCookies")["cookies"])

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def network(self, method: str) -> list[dict[str, t.Any]]:
        """The params of every ``Network.<method>`` event so far, oldest first."""
        return [e.params for e in self.events if e.method == f"Network.{method}"]

    def requests_to(self, url_prefix: str) -> list[dict[str, t.Any]]:
        """``Network.requestWillBeSent`` of every request whose URL starts with URL_PREFIX."""
        return [p for p in self.network("requestWillBeSent") if p["request"]["url"].startswith(url_prefix)]

    def cookies_sent(self, request_id: str) -> list[dict[str, t.Any]]:
        """The cookies Chromium considered for a request (``associatedCookies``: each with the
        cookie and ``blockedReasons``, empty when it was sent). A redirect hop reuses the id:
        the entries of every hop with that id."""
        return [
            entry
            for p in self.network("requestWillBeSentExtraInfo")
            if p["requestId"] == request_id
            for entry in p.get("associatedCookies", [])
        ]

    def cookies_set(self) -> list[dict[str, t.Any]]:
        """Every ``Set-Cookie`` line of every response so far: ``{"url", "line", "blocked"}``
        with the reasons Chromium refused it (``blockedCookies`` of responseReceivedExtraInfo)."""
        urls = {p["requestId"]: p["request"]["url"] for p in self.network("requestWillBeSent")}
        found = []
        for p in self.network("responseReceivedExtraInfo"):
            blocked = {b["cookieLine"]: b["blockedReasons"] for b in p.get("blockedCookies", [])}
            header = next((v for k, v in p["headers"].items() if k.lower() == "set-cookie"), "")
            for line in filter(None, header.split("\n")):
                found.append({"url": urls.get(p["requestId"], ""), "line": line, "blocked": blocked.get(line, [])})
        return found


class Chromium:
    """Headless Chromium under ``timeout LIFETIME`` in a session of its own, profile in WORK_DIR.

    HOST_RULES: ``{"colors.example": "10.96.0.10"}`` or with a port (``"127.0.0.1:8443"``); every
    other host fails to resolve, except the DIRECT ones (default: 127.0.0.1, where the test's IdP
    listens). SPKI_HASHES: :func:`spki_sha256` of the certificates to accept.
    ``--no-sandbox`` when running as root (Chromium refuses to start otherwise; the browser only
    ever loads the test's own pages).
    """

    def __init__(
        self,
        binary: Path,
        work_dir: Path,
        *,
        host_rules: Mapping[str, str],
        direct: Sequence[str] = ("127.0.0.1",),
        spki_hashes: Sequence[str] = (),
        lifetime_s: float = 300,
        window: tuple[int, int] = (1000, 700),
    ) -> None:
        self.work_dir = work_dir
        profile = work_dir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        rules = [
            *(f"MAP {host} {target}" for host, target in host_rules.items()),
            *(f"EXCLUDE {host}" for host in direct),
            "MAP * ~NOTFOUND",
        ]
        args = [
            str(binary),
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules={', '.join(rules)}",
            f"--window-size={window[0]},{window[1]}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--password-store=basic",
            "--use-mock-keychain",
            "--metrics-recording-only",
            "about:blank",
        ]
        if spki_hashes:
            args.insert(2, f"--ignore-certificate-errors-spki-list={','.join(spki_hashes)}")
        if os.geteuid() == 0:
            args.insert(2, "--no-sandbox")
        self.argv = args
        self.binary = str(binary)
        self.log_path = work_dir / "chromium.log"
        (work_dir / "chromium.cmd").write_text(shlex.join(args) + "\n")
        # Our ends: we write commands to to_browser, read from from_browser. The browser's ends
        # become its fds 3 and 4: bash moves them there (from numbers above 100, so that neither
        # is 3 or 4 already), then execs `timeout` and Chromium.
        browser_in, self._to_browser = os.pipe()
        self._from_browser, browser_out = os.pipe()
        browser_in, browser_out = (_move_above_100(fd) for fd in (browser_in, browser_out))
        launcher = 'exec 3<&"$1" 4>&"$2"; eval "exec $1<&- $2>&-"; shift 2; exec "$@"'
        command = [
            "bash", "-c", launcher, "chromium", str(browser_in), str(browser_out),
            "timeout", "--signal=TERM", "--kill-after=10s", f"{lifetime_s:g}s", *args,
        ]  # fmt: skip
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work_dir), "LANG": "C.UTF-8"}
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(browser_in, browser_out),
                start_new_session=True,
            )
        os.close(browser_in)
        os.close(browser_out)
        self.pid = self._popen.pid
        self._next_id = 0
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, t.Any]] = {}
        self._answered = threading.Condition()
        self._pages: dict[str, Page] = {}
        self._reader = threading.Thread(target=self._read, name="chromium-cdp", daemon=True)
        self._reader.start()
        self.version = self.send("Browser.getVersion", timeout_s=60)

    # ---- the pipe ----------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        with open(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._dispatch(json.loads(raw))
        with self._answered:
            self._answered.notify_all()

    def _dispatch(self, message: dict[str, t.Any]) -> None:
        if "id" in message:
            with self._answered:
                self._answers[message["id"]] = message
                self._answered.notify_all()
            return
        page = self._pages.get(message.get("sessionId", ""))
        if page is not None:
            page.events.append(Event(message["method"], message.get("params", {}), message.get("sessionId")))

    def send(
        self,
        method: str,
        params: Mapping[str, t.Any] | None = None,
        *,
        session: str | None = None,
        timeout_s: float = 30,
    ) -> dict[str, t.Any]:
        """Send one CDP command; its result (BrowserError on an error answer or no answer)."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            message: dict[str, t.Any] = {"id": ident, "method": method, "params": dict(params or {})}
            if session:
                message["sessionId"] = session
            try:
                os.write(self._to_browser, json.dumps(message).encode() + b"\0")
            except OSError as e:
                raise BrowserError(f"{method}: the browser's pipe is closed ({e}); log {self.log_path}") from e
        deadline = time.monotonic() + timeout_s
        with self._answered:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BrowserError(f"{method}: no answer within {timeout_s:g} s; log {self.log_path}")
                self._answered.wait(min(left, 0.5))
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method} {dict(params or {})}: {answer['error']}")
        result: dict[str, t.Any] = answer.get("result", {})
        return result

    # ---- pages -------------------------------------------------------------------------------

    def new_page(self) -> Page:
        """A new tab with a session of its own and the Page, Network and Runtime domains on."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        self._pages[session] = page
        for domain in ("Page", "Network", "Runtime"):
            page.send(f"{domain}.enable")
        return page

    # ---- the process -------------------------------------------------------------------------

    def check_running(self) -> None:
        if self._popen.poll() is not None:
            raise BrowserError(f"chromium exited with {self._popen.returncode}; log {self.log_path}")

    def stop(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close", timeout_s=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(10)
        # Chromium's helper processes (zygote, GPU, network service) share its session.
        if self._popen.poll() is None and is_ours(self.pid, self.binary):
            stop_recorded(self.pid, self.binary, grace_s=10, name="chromium")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(5)
        with contextlib.suppress(OSError):
            os.close(self._to_browser)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _move_above_100(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return moved


@contextlib.contextmanager
def chromium(binary: Path, work_dir: Path, **kwargs: t.Any) -> Iterator[Chromium]:
    """:class:`Chromium`, stopped on exit."""
    browser = Chromium(binary, work_dir, **kwargs)
    try:
        yield browser
    finally:
        browser.stop()


def wait_for(probe: Callable[[], t.Any], timeout_s: float, what: str) -> t.Any:
    """PROBE's first truthy result, polled every 50 ms; BrowserError after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.05)
    raise BrowserError(f"timed out after {timeout_s:g} s waiting for {what}")
