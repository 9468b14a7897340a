"""Test-session setup: the harness keeps its state (progress, run directories) in a
temporary folder, so `make test` never touches a learner's progress or files."""

import os
import tempfile

_state = tempfile.TemporaryDirectory(prefix="workshop-test-state-")
os.environ["WORKSHOP_STATE_DIR"] = _state.name
# Marks every process this session starts (children inherit the environment), so the
# last test can prove that none is left behind.
os.environ["WORKSHOP_TEST_SESSION"] = f"{os.getpid()}"
