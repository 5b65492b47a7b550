//! Grant tables (`grant_table.h`), version 1: sub-op numbers, entry flags and layouts.
