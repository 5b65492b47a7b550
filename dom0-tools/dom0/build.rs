include!("../../guests/rt/build-guest.rs");
