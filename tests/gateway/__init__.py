"""The gateway-api edge (real Traefik) tested with the real login flow, in a private network namespace."""
