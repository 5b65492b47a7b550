//! Every domain by id, under a reader-writer lock (lookups happen on every interdomain
//! event and grant operation): `oxen_core::domid::Registry`'s rules (0 for the control
//! domain, others from 1, the lowest free first, free again once released), holding
//! counted references. Domains built at boot stay until the final report.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;

use oxen_core::domid::Registry;
pub use oxen_core::domid::{IdError, MAX_ID};
use spin::RwLock;

use super::Domain;

static DOMAINS: RwLock<Registry<Arc<Domain>>> = RwLock::new(Registry::new());

/// Reserves the lowest free id from 1 for a domain about to be built.
pub fn reserve_free() -> Result<u32, IdError> {
    DOMAINS.write().reserve_free()
}

/// Reserves id `id` (0 for the control domain, or one a control domain asks for).
pub fn reserve(id: u32) -> Result<u32, IdError> {
    DOMAINS.write().reserve(id)
}

/// Gives back a reserved id whose domain was never built.
pub fn unreserve(id: u32) {
    DOMAINS.write().unreserve(id)
}

/// Adds a built domain under the id reserved for it.
pub fn insert(d: Arc<Domain>) {
    let id = d.id;
    let inserted = DOMAINS.write().insert(id, d);
    debug_assert!(inserted, "domain id {id} was not reserved");
}

/// Forgets a released domain: its id is free again.
pub fn remove(id: u32) {
    DOMAINS.write().remove(id);
}

/// The domain with id `id`, if it exists (finished ones included).
pub fn by_id(id: u32) -> Option<Arc<Domain>> {
    DOMAINS.read().get(id).cloned()
}

/// Every domain, in id order.
pub fn all() -> Vec<Arc<Domain>> {
    DOMAINS.read().values().cloned().collect()
}

/// Up to `max` domains with ids from `first`, in id order, as a control domain sees
/// them (`getdomaininfo`, `getdomaininfolist`): a released boot-time domain, kept here
/// for the final report only, no longer exists.
pub fn from(first: u32, max: usize) -> Vec<Arc<Domain>> {
    DOMAINS
        .read()
        .range(first, usize::MAX)
        .filter(|(_, d)| !d.released())
        .take(max)
        .map(|(_, d)| d.clone())
        .collect()
}
