"""Test suites for code built on Atlas, such as a third-party storage backend.

This package needs pytest and is never imported by ``import atlas``:

* :mod:`atlas.testing.storage`: ``StorageSuite``, the behaviour every
  :class:`atlas.storage.Storage` must have, as a pytest test class to subclass.
"""
