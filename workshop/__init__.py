"""The workshop harness: real services, real nodes, checks and the `workshop` CLI."""

from workshop.bytecode import cache_bytecode

cache_bytecode()  # before anything is imported or started: see workshop/bytecode.py
