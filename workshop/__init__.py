"""The workshop harness: real services, real nodes, checks and the `workshop` CLI."""
