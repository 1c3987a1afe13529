import pytest

# The contract's assertions (in a helper module, not a test module) report their values too.
pytest.register_assert_rewrite("tests.store.contract")
