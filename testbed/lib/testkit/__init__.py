"""Shared helpers for the testbed and the test suites: one PKI, one process runner, one port rule.

Import root: ``testbed/lib`` (not a package itself; put it on ``sys.path``). ``testbed/testbed.py``
does so for the CLI, ``tests/conftest.py`` for every pytest suite; by hand:
``PYTHONPATH=testbed/lib``. Needs ``cryptography`` (in .venv) for ``testkit.pki`` only; the
rest is standard library.

``testkit.pki`` — throw-away X.509, EC P-256 unless asked otherwise:
    ca = CertificateAuthority("my CA", valid_for=timedelta(days=1))
    ca.write(cert_path[, key_path]) -> cert_path
    ca.issue_server(cn, dns=(...), ips=("127.0.0.1",)) -> Issued   (SANs: DNS names + IPs)
    ca.issue_client(cn, organizations=("system:masters",)) -> Issued   (O = Kubernetes groups)
    ca.issue(cn, organizations=, server=, client=, dns=, ips=, algorithm="ec"|"rsa") -> Issued
    Issued.cert / .key / .cert_pem / .key_pem; Issued.write(cert_path, key_path) (key 0600)
    write_key_pair(private_path, public_path, algorithm="rsa") — e.g. ServiceAccount signing keys

``testkit.ports`` — ports outside the kernel's ephemeral range (which outgoing connections use):
    free_port(host="127.0.0.1", exclude=set()) -> int    random, checked free by binding
    ephemeral_range() -> (low, high); port_pool() -> range; is_free(port) -> bool

``testkit.process`` — programs under coreutils ``timeout`` in their own session, stopped by PID:
    p = ManagedProcess(name, argv, log_dir, env=None, inherit_env=True, lifetime=600 | "4h",
                       kill_after="10s", cwd=None)          # starts it; log_dir/NAME.{log,cmd}
    p.check_running()  (raises ProcessExited with the log tail)
    p.wait_until(probe, timeout_s, what, also_running=())   (OSError from probe = not yet)
    p.stop(grace_s=10); with-statement; p.running(); p.log_tail(); p.listens_on(*ports)
    p.record -> {"name", "pid", "binary", "log"}; stop_recorded(pid, binary, grace_s=20) from
    another Python process; is_ours(pid, binary); alive(pid)
    start_on_free_ports(start=lambda ports: ManagedProcess(...), port_names=("http",),
                        ready=lambda p, ports: ..., taken=set()) -> (process, ports)
        restarts on new ports when the bind failed ("address already in use")
"""
