"""Helpers shared by the pytest suites (importable as ``support``: pytest puts tests/ on sys.path).

Stdlib only, like tests/conftest.py: ansible-test units loads that file and so this package.
"""
