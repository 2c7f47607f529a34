#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cookie_secret
short_description: Generate or keep the oauth2-proxy cookie secret
version_added: 0.1.0
description:
  - Generates the secret oauth2-proxy uses to sign and encrypt its session cookie, from the
    operating system's cryptographically secure random number generator.
  - Keeps an existing value that oauth2-proxy would accept, so the secret is generated once and
    survives re-runs. Feed the value stored last time (a Kubernetes Secret, a Key Vault secret)
    back in as O(existing).
  - Validates with the same rule as oauth2-proxy. A value is valid when its base64url decoding
    (padded or not) is 16, 24 or 32 bytes long, or else when its raw length is 16, 24 or 32 bytes.
  - Note that 32 hexadecimal characters (what C(openssl rand -hex 16) prints) are also valid
    base64url, which decodes to 24 bytes, so oauth2-proxy uses them as a 24-byte AES key.
  - Returns the secret in RV(secret) and, for comparisons, only non-secret metadata.
  - The action plugin in front of the module marks every successful result as C(no_log), so the
    result (with the secret) is hidden from the display at any verbosity, from diffs and from
    callbacks such as AWX job events, even on a task without C(no_log). C(register) still holds
    the value. A failed result stays visible, and its message gives the cause, never the value.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - The module changes nothing outside itself, so check mode computes the same result,
        including a newly generated value.
  diff_mode:
    support: full
    details:
      - The module computes a diff of fingerprints only; the action plugin hides it with the rest of
        a successful result.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
options:
  size:
    description:
      - Number of random bytes in a newly generated secret.
      - With O(encoding=base64url) this is also the AES key length oauth2-proxy uses.
      - Ignored when an existing valid value is kept.
    type: int
    choices: [16, 24, 32]
    default: 32
  encoding:
    description:
      - How a newly generated secret is written.
      - V(base64url) is what oauth2-proxy's documentation generates (unpadded here).
      - V(hex) reproduces the seed's C(openssl rand -hex 16). It is only valid with O(size=16),
        because 48 or 64 hex characters are rejected by oauth2-proxy.
    type: str
    choices: [base64url, hex]
    default: base64url
  existing:
    description:
      - The current secret, if there is one. An empty string counts as no secret.
      - When valid it is returned unchanged with RV(ignore:changed=false).
    type: str
  rotate:
    description:
      - Always generate a new secret, even when O(existing) is valid.
    type: bool
    default: false
  replace_invalid:
    description:
      - When O(existing) is not a valid oauth2-proxy secret, generate a new one instead of failing.
    type: bool
    default: false
notes:
  - Changing the cookie secret logs every user out. oauth2-proxy only reads it at start,
    so the Deployment must roll after a change.
seealso:
  - name: oauth2-proxy cookie secret
    description: How oauth2-proxy generates and validates cookie secrets.
    link: https://oauth2-proxy.github.io/oauth2-proxy/configuration/overview#generating-a-cookie-secret
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
"""

EXAMPLES = r"""
# The result is hidden from output even without no_log (the action plugin marks it no_log);
# no_log: true on the task stays good practice.
- name: Generate the cookie secret once and keep it on later runs
  zerotrust.aks.cookie_secret:
    existing: "{{ current_cookie_secret | default('') }}"
  register: cookie
  no_log: true

- name: Show whether the secret changed, without showing it
  ansible.builtin.debug:
    msg: "Cookie secret {{ cookie.fingerprint }} ({{ cookie.key_length }}-byte key)"

- name: Rotate the cookie secret (logs every user out)
  zerotrust.aks.cookie_secret:
    existing: "{{ current_cookie_secret }}"
    rotate: true
  register: cookie
  no_log: true

- name: Replace a secret that oauth2-proxy would reject, such as a 48-character hex string
  zerotrust.aks.cookie_secret:
    existing: "{{ current_cookie_secret }}"
    replace_invalid: true
  register: cookie
  no_log: true
"""

RETURN = r"""
secret:
  description:
    - The cookie secret to give oauth2-proxy. The only field that contains it.
  returned: success
  type: str
  sample: "VALUE_HIDDEN"
key_length:
  description: Length in bytes of the AES key oauth2-proxy derives from RV(secret).
  returned: success
  type: int
  sample: 32
encoding:
  description:
    - Encoding of RV(secret). V(raw) means an existing value that oauth2-proxy uses as raw bytes.
  returned: success
  type: str
  sample: base64url
fingerprint:
  description:
    - First 12 hexadecimal digits of the SHA-256 of RV(secret), to compare runs without
      revealing the secret.
  returned: success
  type: str
  sample: "sha256:3f1c0e9a7b2d"
reason:
  description: Why the module kept or generated the secret.
  returned: success
  type: str
  sample: existing secret is valid
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.aks.plugins.module_utils._cookie_secret import (
    AES_KEY_LENGTHS,
    ENCODINGS,
    detect_encoding,
    fingerprint,
    generate,
    invalid_reason,
    is_valid,
    key_length,
)

NO_LOG_PLACEHOLDER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            size=dict(type="int", default=32, choices=list(AES_KEY_LENGTHS)),
            encoding=dict(type="str", default="base64url", choices=list(ENCODINGS)),
            existing=dict(type="str", no_log=True),
            rotate=dict(type="bool", default=False),
            replace_invalid=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    size: int = module.params["size"]
    encoding: str = module.params["encoding"]
    existing: str = module.params["existing"] or ""

    if encoding == "hex" and size != 16:
        module.fail_json(
            msg=f"encoding=hex is only valid with size=16: {size} random bytes are {2 * size} hex characters, "
            f"which oauth2-proxy rejects. Use encoding=base64url for size={size}."
        )

    if existing and not module.params["rotate"]:
        if is_valid(existing):
            # The value is returned on purpose, so AnsibleModule must not mask it in
            # `secret`; the echo of the arguments is masked here instead, since
            # `secret` is the only field allowed to hold the value.
            module.no_log_values.discard(existing)
            module.exit_json(
                invocation=dict(module_args=dict(module.params, existing=NO_LOG_PLACEHOLDER)),
                changed=False,
                secret=existing,
                key_length=key_length(existing)[0],
                encoding=detect_encoding(existing),
                fingerprint=fingerprint(existing),
                reason="existing secret is valid",
            )
        if not module.params["replace_invalid"]:
            module.fail_json(
                msg=f"existing cookie secret is not valid: {invalid_reason(existing)}. Set replace_invalid=true to "
                "generate a new one, or fix the stored value."
            )
        reason = f"existing secret was invalid ({invalid_reason(existing)}) and was replaced"
    elif existing:
        reason = "rotation was requested"
    else:
        reason = "no existing secret"

    secret = generate(size, encoding)
    result = dict(
        changed=True,
        secret=secret,
        key_length=key_length(secret)[0],
        encoding=encoding,
        fingerprint=fingerprint(secret),
        reason=reason,
    )
    if module._diff:
        before = f"fingerprint: {fingerprint(existing)}\n" if existing else ""
        result["diff"] = dict(before=before, after="fingerprint: {}\n".format(result["fingerprint"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
