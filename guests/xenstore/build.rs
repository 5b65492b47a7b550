include!("../rt/build-guest.rs");
