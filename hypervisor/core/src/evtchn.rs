//! Event channels: the two-level event ABI as pure logic.
