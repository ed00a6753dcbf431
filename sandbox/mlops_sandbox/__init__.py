"""Local AWS stand-in used by the mlops.deploy demo and integration tests.

It is not part of the Ansible collection (excluded from the build). See README.md,
section "The sandbox".
"""
