# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation fragments for the modules' attributes."""

from __future__ import annotations


class ModuleDocFragment:
    # Modules that only read (AWS APIs or files): check mode runs them in full, and they
    # never change anything, so they are idempotent and have nothing to diff.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode runs it in full.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: Reading changes nothing.
"""
