# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retry bound every Azure module of the collection takes."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  azure_retry_timeout:
    description:
      - Seconds to keep retrying a request Azure throttles (429, waiting as its C(Retry-After) asks), fails with a
        server error (500, 502, 503, 504) or that cannot connect - including a new Key Vault whose host name does
        not resolve yet. Backoff is exponential.
      - When the time is up the task fails naming the request, the last status or network error, the attempts and
        the seconds spent.
    type: int
    default: 600
"""
