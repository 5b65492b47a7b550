//! Every domain by id: lookups in O(log n) under a reader lock (they happen on every
//! interdomain event and grant operation), ids from 1 up as Xen gives them to domains
//! other than the control domain. Finished domains stay until the final report (ids are
//! not reused yet: nothing creates domains at run time).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::RwLock;

use super::Domain;

/// The highest id an ordinary domain can have (Xen's `DOMID_FIRST_RESERVED` - 1).
const MAX_ID: u32 = 0x7fef;

static DOMAINS: RwLock<BTreeMap<u32, Arc<Domain>>> = RwLock::new(BTreeMap::new());

/// The lowest id from 1 that no domain has, if any is left.
pub fn free_id() -> Option<u32> {
    let map = DOMAINS.read();
    (1..=MAX_ID).find(|id| !map.contains_key(id))
}

/// Adds a built domain (its id must be free).
pub fn insert(d: Arc<Domain>) {
    let previous = DOMAINS.write().insert(d.id, d);
    debug_assert!(previous.is_none(), "a domain id is used twice");
}

/// The domain with id `id`, if it exists (finished ones included).
pub fn by_id(id: u32) -> Option<Arc<Domain>> {
    DOMAINS.read().get(&id).cloned()
}

/// Every domain, in id order.
pub fn all() -> Vec<Arc<Domain>> {
    DOMAINS.read().values().cloned().collect()
}
