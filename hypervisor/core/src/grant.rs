//! Grant tables, version 1, as pure logic.
