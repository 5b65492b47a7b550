//! The front end: produces requests, consumes responses.

use crate::shared::{mb, rmb, wmb};
use crate::{Pod, RingError, RingIdx, SharedIndex, Sring};

/// ring.h's `X_front_ring`: the front end's private indices over a shared
/// ring. Peer-written indices (`rsp_prod`, `req_event`) are read once per
/// use and validated before any entry is read.
#[derive(Debug)]
pub struct FrontRing<'a, Req: Pod, Rsp: Pod> {
    sring: Sring<'a, Req, Rsp>,
    /// Next request slot we will fill (`req_prod_pvt`).
    req_prod_pvt: RingIdx,
    /// Next response we will consume (`rsp_cons`).
    rsp_cons: RingIdx,
    /// The `req_prod` we last published. ring.h re-reads `sring->req_prod`;
    /// we keep our own copy so the peer cannot rewrite it.
    req_prod_pub: RingIdx,
    /// Last `rsp_prod` that passed validation.
    rsp_prod_seen: RingIdx,
}

impl<'a, Req: Pod, Rsp: Pod> FrontRing<'a, Req, Rsp> {
    /// `XEN_FRONT_RING_INIT`: initialise the shared area
    /// (`SHARED_RING_INIT`) and attach at index 0.
    pub fn new(sring: Sring<'a, Req, Rsp>) -> Self {
        sring.init();
        Self::attach(sring, 0)
    }

    /// `FRONT_RING_ATTACH`: attach to an already initialised area with all
    /// private indices at `start`. Does not write the shared area.
    pub fn attach(sring: Sring<'a, Req, Rsp>, start: RingIdx) -> Self {
        FrontRing {
            sring,
            req_prod_pvt: start,
            rsp_cons: start,
            req_prod_pub: start,
            rsp_prod_seen: start,
        }
    }

    /// The shared area.
    pub fn sring(&self) -> Sring<'a, Req, Rsp> {
        self.sring
    }

    /// `RING_SIZE`.
    pub fn size(&self) -> u32 {
        self.sring.size()
    }

    /// Private request producer (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// Response consumer (`rsp_cons`).
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// `RING_FREE_REQUESTS`: slots neither holding a request nor awaiting
    /// its response.
    pub fn free_requests(&self) -> u32 {
        self.size() - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Requests produced but not yet published with a push.
    pub fn unpushed_requests(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_pub)
    }

    /// Write `req` into the next free slot (`RING_GET_REQUEST(r,
    /// req_prod_pvt++)`); the back sees it after a push.
    pub fn produce_request(&mut self, req: Req) -> Result<(), RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        self.sring.write_req(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS`: publish produced requests, entries first.
    pub fn push_requests(&mut self) {
        wmb();
        self.sring.store(SharedIndex::ReqProd, self.req_prod_pvt);
        self.req_prod_pub = self.req_prod_pvt;
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publish, then tell whether the
    /// back asked (via `req_event`) to be notified of any of the requests
    /// just published. Any `req_event` value is acceptable: a bad one only
    /// costs the peer a missed or spurious notification.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod_pub;
        let new = self.req_prod_pvt;
        self.push_requests();
        mb();
        let event = self.sring.load(SharedIndex::ReqEvent);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Read and validate `rsp_prod`: the back cannot have answered more
    /// requests than we published, nor take back responses it published.
    /// Returns the number of unconsumed responses.
    fn check_rsp_prod(&mut self) -> Result<u32, RingError> {
        let prod = self.sring.load(SharedIndex::RspProd);
        let ahead = prod.wrapping_sub(self.rsp_cons);
        let max_ahead = self.req_prod_pub.wrapping_sub(self.rsp_cons);
        if ahead > max_ahead {
            return Err(RingError::Overrun {
                index: SharedIndex::RspProd,
                value: prod,
                consumer: self.rsp_cons,
                max_ahead,
            });
        }
        if ahead < self.rsp_prod_seen.wrapping_sub(self.rsp_cons) {
            return Err(RingError::Regressed {
                index: SharedIndex::RspProd,
                value: prod,
                previous: self.rsp_prod_seen,
            });
        }
        // Responses are read only after the index that covers them.
        rmb();
        self.rsp_prod_seen = prod;
        Ok(ahead)
    }

    /// `XEN_RING_NR_UNCONSUMED_RESPONSES`, validated.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.check_rsp_prod()
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`, validated.
    pub fn has_unconsumed_responses(&mut self) -> Result<bool, RingError> {
        Ok(self.check_rsp_prod()? != 0)
    }

    /// Copy out the next response, if the back has published one
    /// (`RING_COPY_RESPONSE(r, rsp_cons++)`). `rsp_prod` is re-read only
    /// when the responses validated last time are used up.
    pub fn consume_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.rsp_cons == self.rsp_prod_seen && self.check_rsp_prod()? == 0 {
            return Ok(None);
        }
        let rsp = self.sring.read_rsp(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Copy up to `out.len()` published responses into `out` (oldest
    /// first) and consume them; returns how many. Reads and validates
    /// `rsp_prod` once for the whole batch.
    pub fn take_responses(&mut self, out: &mut [Rsp]) -> Result<usize, RingError> {
        let avail = self.check_rsp_prod()? as usize;
        let n = avail.min(out.len());
        for slot in &mut out[..n] {
            *slot = self.sring.read_rsp(self.rsp_cons);
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        Ok(n)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if nothing is pending, ask for a
    /// notification on the next response (`rsp_event = rsp_cons + 1`) and
    /// check again, closing the race with a response published meanwhile.
    /// `Ok(true)` means there is work: don't sleep.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.check_rsp_prod()? != 0 {
            return Ok(true);
        }
        self.sring
            .store(SharedIndex::RspEvent, self.rsp_cons.wrapping_add(1));
        mb();
        Ok(self.check_rsp_prod()? != 0)
    }
}
