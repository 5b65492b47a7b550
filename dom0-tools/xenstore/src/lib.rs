//! The oxen XenStore engine.
//!
//! XenStore is the small hierarchical database Xen domains use to find
//! their devices and talk to the toolstack. This crate holds everything but
//! the operating-system glue: the node tree with Xen's path and permission
//! rules ([`path`], [`perms`], [`tree`], [`ops`]), watches ([`watch`]),
//! transactions ([`transaction`]), domains ([`domain`]), quotas ([`quota`]),
//! the `xs_wire` codec ([`wire`]), per-connection state ([`connection`]) and
//! the shared-memory ring protocol ([`ring`]), tied together by the
//! [`Engine`]. It needs only `alloc`, so the same engine serves the host
//! daemon (`oxen-xenstored`, over Unix sockets) and, later, dom0's guest
//! rings.
//!
//! With the `fuzzing` feature, the module `fuzz` holds the fuzz harness: one
//! input judged against the engine's invariants, for the `fuzz` test and
//! the libFuzzer target in `fuzz/`.
//!
//! A transport adapter does three things:
//!
//! ```
//! use oxen_xenstore::{ConnKind, Engine, Quotas};
//! use oxen_xenstore::wire::{Message, MsgType};
//!
//! let mut engine = Engine::new(Quotas::default());
//! let id = engine.connect(ConnKind::privileged_socket());
//! // 1. feed what arrived,
//! let request = Message::new(MsgType::Write, 1, 0, b"/vm\0hello".to_vec());
//! engine.feed(id, &request.to_bytes()).unwrap();
//! // 2. send what is queued (replies and watch events),
//! let bytes = engine.output(id).to_vec();
//! engine.consume(id, bytes.len());
//! assert_eq!(&bytes[16..], b"OK\0");
//! // 3. disconnect when the peer goes away.
//! engine.disconnect(id);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod account;
pub mod connection;
pub mod domain;
pub mod engine;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod ops;
pub mod path;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod transaction;
pub mod tree;
pub mod watch;
pub mod wire;

pub use account::Usage;
pub use connection::{CloseReason, ConnId, ConnKind, Connection};
pub use domain::Domain;
pub use engine::Engine;
pub use error::{XsError, XsResult};
pub use quota::Quotas;

/// A Xen domain id.
pub type DomId = u32;
