"""testkit's PKI and process runner do what their callers (testbed, auth flow, Azure fake) rely on."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from testkit.pki import CertificateAuthority, write_key_pair
from testkit.process import ManagedProcess, ProcessExited, alive, session_members, stop_recorded


def tls_handshake(ca: Path, server: tuple[Path, Path], client: tuple[Path, Path] | None, name: str) -> str:
    """Handshake with Python's strictest default verification; returns the TLS version."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*server)
    if client:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(ca)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _address = listener.accept()
        # The client's refusal shows on its side; here it is only a failed handshake.
        with contextlib.suppress(ssl.SSLError), server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # wants AKI/SKI, as Python 3.13 does by default
    if client:
        client_ctx.load_cert_chain(*client)
    with (
        listener,
        client_ctx.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname=name) as tls,
    ):
        tls.send(b"x")
        version = tls.version()
    thread.join(5)
    return str(version)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_server_and_client_certificates_pass_strict_verification(tmp_path: Path, name: str) -> None:
    ca = CertificateAuthority("testkit test CA")
    ca_file = ca.write(tmp_path / "ca.crt")
    server = ca.issue_server("server", dns=["localhost"]).write(tmp_path / "s.crt", tmp_path / "s.key")
    client = ca.issue_client("jane", organizations=["system:masters", "devs"]).write(
        tmp_path / "c.crt", tmp_path / "c.key"
    )
    assert tls_handshake(ca_file, server, client, name).startswith("TLS")


def test_server_certificate_is_refused_for_a_name_it_does_not_hold(tmp_path: Path) -> None:
    ca = CertificateAuthority("testkit test CA")
    ca_file = ca.write(tmp_path / "ca.crt")
    server = ca.issue_server("server", dns=["a.example"], ips=()).write(tmp_path / "s.crt", tmp_path / "s.key")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        tls_handshake(ca_file, server, None, "127.0.0.1")


def test_certificates_carry_what_kubernetes_reads(tmp_path: Path) -> None:
    ca = CertificateAuthority("testkit test CA", valid_for=datetime.timedelta(hours=5))
    client = ca.issue_client("system:kube-scheduler", organizations=["g1", "g2"])
    subject = client.cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["system:kube-scheduler"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["g1", "g2"]
    validity = client.cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=4, minutes=59) < validity <= datetime.timedelta(hours=5)
    _cert, key = client.write(tmp_path / "c.crt", tmp_path / "c.key")
    assert key.stat().st_mode & 0o777 == 0o600
    private, public = write_key_pair(tmp_path / "sa.key", tmp_path / "sa.pub", algorithm="rsa")
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    assert isinstance(
        ca.issue_server("s").cert.extensions.get_extension_for_class(x509.SubjectAlternativeName), x509.Extension
    )


def test_stop_ends_the_whole_session_and_nothing_else(tmp_path: Path) -> None:
    outsider = subprocess.Popen(["sleep", "300"])
    try:
        # A shell with a child of its own, the way nginx has workers.
        process = ManagedProcess("tree", ["sh", "-c", "sleep 300 & wait"], tmp_path, lifetime=120)
        members = process.wait_until(lambda: len(session_members(process.pid)) == 3 and session_members(process.pid))
        assert members is not False  # wait_until returns a truthy result
        process.stop(grace_s=5)
        assert not any(alive(p) for p in members)
        assert outsider.poll() is None
    finally:
        outsider.kill()
        outsider.wait()


def test_stop_recorded_leaves_a_pid_alone_that_no_longer_runs_our_program(tmp_path: Path) -> None:
    process = ManagedProcess("sleeper", ["sleep", "300"], tmp_path, lifetime=120)
    try:
        assert not stop_recorded(process.pid, "/some/other/binary")
        assert process.running()
        assert stop_recorded(**{k: process.record[k] for k in ("pid", "binary")})
        assert not process.running()
    finally:
        process.stop()


def test_lifetime_ends_a_process_nobody_stops(tmp_path: Path) -> None:
    process = ManagedProcess("short", ["sleep", "300"], tmp_path, lifetime=1, kill_after="1s")
    process_started = time.monotonic()
    with pytest.raises(ProcessExited, match="short exited with 124"):
        process.wait_until(lambda: False, timeout_s=10)
    assert time.monotonic() - process_started < 5


def test_environment_is_only_path_plus_env_when_not_inherited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTKIT_LEAK", "secret")
    # coreutils env, not Python: Python adds LC_CTYPE to its own environment.
    process = ManagedProcess("env", ["env"], tmp_path, env={"ONLY": "1"}, inherit_env=False)
    with pytest.raises(ProcessExited):
        process.wait_until(lambda: False, timeout_s=10)
    assert sorted(line.split("=", 1)[0] for line in process.log_tail().splitlines()) == ["ONLY", "PATH"]
