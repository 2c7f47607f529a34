"""The testbed's implementation, behind testbed/testbed (usage: `cli.USAGE`).

Modules: `state` (paths, state.json, lifetimes), `certs` (the cluster's PKI and kubeconfigs),
`api` (a minimal API client), `components` (each program's command line), `kwok` (the fake
Nodes), `traefik` (Traefik against the API server: its flags, its ServiceAccount token, the
CRDs; also for tests that start their own), `up` (the start sequence), `cli` (the commands).
Shared with the test suites: `testkit` (PKI, processes, ports), next to this package.
"""
