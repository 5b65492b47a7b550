//! Event channels (`event_channel.h`): sub-op numbers and argument layouts.
